//! The portable row kernels: the oracle of the test battery and what targets without an ISA
//! variant run. Reductions keep 16 partial sums or maxima (lane `l` takes the elements
//! `≡ l mod 16` of the whole 16-element chunks, the tail is folded in order), so the loops
//! auto-vectorise and the ISA variants can reproduce the same rounding.
use super::Unary;
use crate::math;

/// Partial accumulators of the reductions.
pub const LANES: usize = 16;

/// Largest element of a row (NaN-ignoring, like `f32::max`; `-inf` for an empty row).
pub fn row_max(row: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (l, &v) in lanes.iter_mut().zip(chunk) {
            // `>` rather than `f32::max`: the same for non-NaN input, and it vectorises.
            *l = if v > *l { v } else { *l };
        }
    }
    finish_max(tail, lanes)
}

/// Fold the tail and then the lanes into one maximum.
pub(crate) fn finish_max(tail: &[f32], lanes: [f32; LANES]) -> f32 {
    let mut max = tail.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for l in lanes {
        max = max.max(l);
    }
    max
}

/// `row[i] = exp(row[i] - max)` (by [`math::fast_exp`]); returns the sum.
pub fn exp_sub_sum_in_place(row: &mut [f32], max: f32) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        for (v, l) in chunk.iter_mut().zip(lanes.iter_mut()) {
            *v = math::fast_exp(*v - max);
            *l += *v;
        }
    }
    let mut sum = 0.0f32;
    for v in chunks.into_remainder() {
        *v = math::fast_exp(*v - max);
        sum += *v;
    }
    sum + lanes.iter().sum::<f32>()
}

/// `out[i] = exp(row[i] - max)` (by [`math::fast_exp`]); returns the sum.
pub fn exp_sub_sum(row: &[f32], max: f32, out: &mut [f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let mut chunks = out.chunks_exact_mut(LANES);
    let mut rows = row.chunks_exact(LANES);
    for (o, r) in (&mut chunks).zip(&mut rows) {
        for ((o, &v), l) in o.iter_mut().zip(r).zip(lanes.iter_mut()) {
            *o = math::fast_exp(v - max);
            *l += *o;
        }
    }
    let mut sum = 0.0f32;
    for (o, &v) in chunks.into_remainder().iter_mut().zip(rows.remainder()) {
        *o = math::fast_exp(v - max);
        sum += *o;
    }
    sum + lanes.iter().sum::<f32>()
}

/// `row[i] *= s`.
pub fn scale(row: &mut [f32], s: f32) {
    for v in row.iter_mut() {
        *v *= s;
    }
}

/// `out[i] = f(x[i])`.
pub fn map(x: &[f32], out: &mut [f32], f: Unary) {
    macro_rules! each {
        ($g:path) => {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = $g(v);
            }
        };
    }
    match f {
        Unary::Exp => each!(math::fast_exp),
        Unary::Erf => each!(math::fast_erf),
        Unary::Tanh => each!(math::rational_tanh),
        Unary::Sigmoid => each!(math::fast_sigmoid),
        Unary::Gelu => each!(math::fast_gelu),
        Unary::GeluTanh => each!(math::fast_gelu_tanh),
        Unary::Silu => each!(math::fast_silu),
    }
}

/// `row[i] = f(row[i])`.
pub fn map_in_place(row: &mut [f32], f: Unary) {
    macro_rules! each {
        ($g:path) => {
            for v in row.iter_mut() {
                *v = $g(*v);
            }
        };
    }
    match f {
        Unary::Exp => each!(math::fast_exp),
        Unary::Erf => each!(math::fast_erf),
        Unary::Tanh => each!(math::rational_tanh),
        Unary::Sigmoid => each!(math::fast_sigmoid),
        Unary::Gelu => each!(math::fast_gelu),
        Unary::GeluTanh => each!(math::fast_gelu_tanh),
        Unary::Silu => each!(math::fast_silu),
    }
}

/// `Σ f(v)` over 16 partial sums.
#[inline(always)]
fn lane_sum(row: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for chunk in chunks {
        for (l, &v) in lanes.iter_mut().zip(chunk) {
            *l += f(v);
        }
    }
    tail + lanes.iter().sum::<f32>()
}

/// The mean and `1 / sqrt(var + eps)` of a non-empty row, as [`layer_norm`] computes them.
pub fn mean_inv_std(row: &[f32], eps: f32) -> (f32, f32) {
    let cols = row.len() as f32;
    let mean = lane_sum(row, |v| v) / cols;
    let var = lane_sum(row, |v| (v - mean) * (v - mean)) / cols;
    (mean, 1.0 / libm::sqrtf(var + eps))
}

/// LayerNorm of one non-empty row: `out = (x - mean) · inv · scale + bias`, `scale` (and
/// `bias`) with the row's length.
pub fn layer_norm(row: &[f32], scale: &[f32], bias: Option<&[f32]>, out: &mut [f32], eps: f32) {
    let (mean, inv) = mean_inv_std(row, eps);
    match bias {
        Some(b) => {
            for (((o, &v), &s), &b) in out.iter_mut().zip(row).zip(scale).zip(b) {
                *o = (v - mean) * inv * s + b;
            }
        }
        None => {
            for ((o, &v), &s) in out.iter_mut().zip(row).zip(scale) {
                *o = (v - mean) * inv * s;
            }
        }
    }
}

/// RMSNorm of one non-empty row: `r = sqrt(Σx² / n + eps)` with the squares summed in
/// order (as the exported `Pow`/`ReduceMean` chain rounds); each element `x / r` with
/// `divide`, else `x · (1 / r)`; then times `scale` (the row's length) if given.
pub fn rms_norm(row: &[f32], scale: Option<&[f32]>, out: &mut [f32], eps: f32, divide: bool) {
    let mut sum = 0.0f32;
    for &v in row {
        sum += v * v;
    }
    rms_norm_apply(row, scale, out, rms(sum, row.len(), eps), divide);
}

/// `sqrt(sum / n + eps)`.
#[inline]
pub(crate) fn rms(sum: f32, n: usize, eps: f32) -> f32 {
    libm::sqrtf(sum / n as f32 + eps)
}

/// The elementwise half of [`rms_norm`], given the root `r`.
pub(crate) fn rms_norm_apply(
    row: &[f32],
    scale: Option<&[f32]>,
    out: &mut [f32],
    r: f32,
    divide: bool,
) {
    let inv = 1.0 / r;
    let norm = |v: f32| if divide { v / r } else { v * inv };
    match scale {
        Some(s) => {
            for ((o, &v), &w) in out.iter_mut().zip(row).zip(s) {
                *o = norm(v) * w;
            }
        }
        None => {
            for (o, &v) in out.iter_mut().zip(row) {
                *o = norm(v);
            }
        }
    }
}

/// Rotate-half rotary embedding of one row of even length `d = x.len()`:
/// `out[j] = x[j]·c[j] + -x[j+h]·s[j]`, `out[h+j] = x[h+j]·c[h+j] + x[j]·s[h+j]`.
pub fn rotary_half(x: &[f32], c: &[f32], s: &[f32], out: &mut [f32]) {
    let h = x.len() / 2;
    let (x1, x2) = x.split_at(h);
    let (o1, o2) = out.split_at_mut(h);
    for j in 0..h {
        o1[j] = x1[j] * c[j] + -x2[j] * s[j];
        o2[j] = x2[j] * c[h + j] + x1[j] * s[h + j];
    }
}
