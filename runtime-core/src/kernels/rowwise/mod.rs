//! Row kernels with ISA variants: softmax's max / exp-and-sum / scale passes, LayerNorm,
//! RMSNorm, rotate-half rotary, and the transcendental maps (exp, erf, tanh, sigmoid, GELU
//! both forms, SiLU) that activations, GEMM epilogues and fused elementwise programs run.
//!
//! Variants: [`reference`] (portable, the oracle of the test battery and what the compiler's
//! reference evaluator runs), `x86_avx512` (16 lanes), `x86_avx2` (AVX2 + FMA, 8 lanes),
//! `aarch64_neon` (4 lanes, Armv8.0). The functions here pick one at compile time from the
//! enabled target features, as [`super::gemm::gemm`] does. Every variant evaluates the
//! `math::fast_*` approximations with the same operations in the same order (no fused
//! multiply-adds) and keeps the reference's 16 partial sums, so its results are
//! bit-identical to the reference's, except [`rms_norm`]'s sum of squares, which the
//! reference adds in order and the variants in 16 partial sums (a few ulp apart).

/// The kernels shared by the ISA variants, written once over a module's primitives: `V`
/// (a vector of `W` f32 lanes), `splat`, `add`, `sub`, `mul`, `div`, `max` / `min`
/// (`a > b ? a : b` / `a < b ? a : b`, so a NaN in `a` yields `b`), `pow2n` (the power of two
/// whose exponent sits in the low mantissa bits of `1.5 · 2^23 + n`), `load` and `store`
/// (unaligned). `$feat` is the variant's `target_feature` list.
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(unused_macros)
)]
macro_rules! rowwise_kernels {
    ($feat:literal) => {
        use super::{Unary, reference};
        use crate::math;

        /// Vectors per 16-element chunk of the reductions (the reference's 16 lanes).
        const ACC: usize = reference::LANES / W;

        #[inline]
        #[target_feature(enable = $feat)]
        fn clamp(x: V, lo: f32, hi: f32) -> V {
            // `lo` first, so a NaN `x` passes through as in `f32::clamp`.
            min(splat(hi), max(splat(lo), x))
        }

        #[inline]
        #[target_feature(enable = $feat)]
        fn horner(x: V, cs: &[f32]) -> V {
            let mut p = splat(cs[0]);
            for &c in &cs[1..] {
                p = add(mul(p, x), splat(c));
            }
            p
        }

        /// [`math::fast_exp`].
        #[inline]
        #[target_feature(enable = $feat)]
        fn exp(x: V) -> V {
            let x = clamp(x, math::EXP_MIN, math::EXP_MAX);
            let round = splat(math::EXP_ROUND);
            let t = add(mul(x, splat(core::f32::consts::LOG2_E)), round);
            let n = sub(t, round);
            let r = sub(
                sub(x, mul(n, splat(math::EXP_LN2[0]))),
                mul(n, splat(math::EXP_LN2[1])),
            );
            let p = horner(r, &math::EXP_POLY);
            let y = add(add(mul(mul(p, r), r), r), splat(1.0));
            mul(y, pow2n(t))
        }

        /// [`math::fast_erf`].
        #[inline]
        #[target_feature(enable = $feat)]
        fn erf(x: V) -> V {
            let x = clamp(x, -4.0, 4.0);
            let x2 = mul(x, x);
            div(
                mul(x, horner(x2, &math::ERF_NUMERATOR)),
                horner(x2, &math::ERF_DENOMINATOR),
            )
        }

        /// [`math::rational_tanh`].
        #[inline]
        #[target_feature(enable = $feat)]
        fn tanh(x: V) -> V {
            let x = clamp(x, -math::TANH_MAX, math::TANH_MAX);
            let x2 = mul(x, x);
            div(
                mul(x, horner(x2, &math::TANH_NUMERATOR)),
                horner(x2, &math::TANH_DENOMINATOR),
            )
        }

        /// [`math::fast_tanh`].
        #[inline]
        #[target_feature(enable = $feat)]
        fn exp_tanh(x: V) -> V {
            let e = exp(mul(splat(2.0), x));
            sub(splat(1.0), div(splat(2.0), add(e, splat(1.0))))
        }

        /// [`math::fast_sigmoid`].
        #[inline]
        #[target_feature(enable = $feat)]
        fn sigmoid(x: V) -> V {
            // `x · -1` is an exact negation.
            div(splat(1.0), add(splat(1.0), exp(mul(x, splat(-1.0)))))
        }

        /// [`math::fast_gelu`].
        #[inline]
        #[target_feature(enable = $feat)]
        fn gelu(x: V) -> V {
            let e = erf(mul(x, splat(core::f32::consts::FRAC_1_SQRT_2)));
            mul(mul(splat(0.5), x), add(splat(1.0), e))
        }

        /// [`math::fast_gelu_tanh`].
        #[inline]
        #[target_feature(enable = $feat)]
        fn gelu_tanh(x: V) -> V {
            let cube = mul(mul(mul(splat(math::GELU_TANH_CUBIC), x), x), x);
            let t = exp_tanh(mul(splat(math::SQRT_2_OVER_PI), add(x, cube)));
            mul(mul(splat(0.5), x), add(splat(1.0), t))
        }

        /// [`math::fast_silu`].
        #[inline]
        #[target_feature(enable = $feat)]
        fn silu(x: V) -> V {
            mul(x, sigmoid(x))
        }

        /// `dst[i] = f(src[i])` for `i < n`.
        ///
        /// # Safety
        /// The CPU has the features; `src` and `dst` have `n` elements (they may be equal).
        #[target_feature(enable = $feat)]
        // SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
        unsafe fn map_raw(src: *const f32, dst: *mut f32, n: usize, f: Unary) {
            let full = n - n % W;
            // SAFETY: every index is below `n` (the caller's contract).
            unsafe {
                match f {
                    Unary::Exp => rowwise_each!(exp, src, dst, full),
                    Unary::Erf => rowwise_each!(erf, src, dst, full),
                    Unary::Tanh => rowwise_each!(tanh, src, dst, full),
                    Unary::Sigmoid => rowwise_each!(sigmoid, src, dst, full),
                    Unary::Gelu => rowwise_each!(gelu, src, dst, full),
                    Unary::GeluTanh => rowwise_each!(gelu_tanh, src, dst, full),
                    Unary::Silu => rowwise_each!(silu, src, dst, full),
                }
                for i in full..n {
                    *dst.add(i) = f.scalar(*src.add(i));
                }
            }
        }

        /// [`reference::map`].
        ///
        /// # Safety
        /// The CPU must support the variant's features.
        #[target_feature(enable = $feat)]
        // SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
        pub unsafe fn map(x: &[f32], out: &mut [f32], f: Unary) {
            let n = x.len().min(out.len());
            // SAFETY: both slices have `n` elements.
            unsafe { map_raw(x.as_ptr(), out.as_mut_ptr(), n, f) }
        }

        /// [`reference::map_in_place`].
        ///
        /// # Safety
        /// The CPU must support the variant's features.
        #[target_feature(enable = $feat)]
        // SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
        pub unsafe fn map_in_place(row: &mut [f32], f: Unary) {
            let p = row.as_mut_ptr();
            // SAFETY: `row` has `row.len()` elements; each is read before it is written.
            unsafe { map_raw(p, p, row.len(), f) }
        }

        /// [`reference::row_max`].
        ///
        /// # Safety
        /// The CPU must support the variant's features.
        #[target_feature(enable = $feat)]
        // SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
        pub unsafe fn row_max(row: &[f32]) -> f32 {
            let full = row.len() - row.len() % reference::LANES;
            let p = row.as_ptr();
            let mut acc = [splat(f32::NEG_INFINITY); ACC];
            let mut lanes = [0.0f32; reference::LANES];
            // SAFETY: the loads stay below `full ≤ row.len()`; the stores fill `lanes`.
            unsafe {
                let mut i = 0;
                while i < full {
                    for (k, a) in acc.iter_mut().enumerate() {
                        *a = max(load(p.add(i + k * W)), *a);
                    }
                    i += reference::LANES;
                }
                for (k, &a) in acc.iter().enumerate() {
                    store(lanes.as_mut_ptr().add(k * W), a);
                }
            }
            reference::finish_max(&row[full..], lanes)
        }

        /// `dst[i] = exp(src[i] - max)`; returns the sum, rounded as the reference rounds it.
        ///
        /// # Safety
        /// The CPU has the features; `src` and `dst` have `n` elements (they may be equal).
        #[target_feature(enable = $feat)]
        // SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
        unsafe fn exp_sub_sum_raw(src: *const f32, dst: *mut f32, n: usize, max: f32) -> f32 {
            let full = n - n % reference::LANES;
            let m = splat(max);
            let mut acc = [splat(0.0); ACC];
            let mut lanes = [0.0f32; reference::LANES];
            let mut sum = 0.0f32;
            // SAFETY: every index is below `n` (the caller's contract); the stores fill `lanes`.
            unsafe {
                let mut i = 0;
                while i < full {
                    for (k, a) in acc.iter_mut().enumerate() {
                        let e = exp(sub(load(src.add(i + k * W)), m));
                        store(dst.add(i + k * W), e);
                        *a = add(*a, e);
                    }
                    i += reference::LANES;
                }
                for j in full..n {
                    let e = math::fast_exp(*src.add(j) - max);
                    *dst.add(j) = e;
                    sum += e;
                }
                for (k, &a) in acc.iter().enumerate() {
                    store(lanes.as_mut_ptr().add(k * W), a);
                }
            }
            sum + lanes.iter().sum::<f32>()
        }

        /// [`reference::exp_sub_sum`].
        ///
        /// # Safety
        /// The CPU must support the variant's features.
        #[target_feature(enable = $feat)]
        // SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
        pub unsafe fn exp_sub_sum(row: &[f32], max: f32, out: &mut [f32]) -> f32 {
            let n = row.len().min(out.len());
            // SAFETY: both slices have `n` elements.
            unsafe { exp_sub_sum_raw(row.as_ptr(), out.as_mut_ptr(), n, max) }
        }

        /// [`reference::exp_sub_sum_in_place`].
        ///
        /// # Safety
        /// The CPU must support the variant's features.
        #[target_feature(enable = $feat)]
        // SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
        pub unsafe fn exp_sub_sum_in_place(row: &mut [f32], max: f32) -> f32 {
            let p = row.as_mut_ptr();
            // SAFETY: `row` has `row.len()` elements; each is read before it is written.
            unsafe { exp_sub_sum_raw(p, p, row.len(), max) }
        }

        /// [`reference::scale`].
        ///
        /// # Safety
        /// The CPU must support the variant's features.
        #[target_feature(enable = $feat)]
        // SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
        pub unsafe fn scale(row: &mut [f32], s: f32) {
            let full = row.len() - row.len() % W;
            let (p, sv) = (row.as_mut_ptr(), splat(s));
            // SAFETY: the accesses stay below `full ≤ row.len()`.
            unsafe {
                let mut i = 0;
                while i < full {
                    store(p.add(i), mul(load(p.add(i)), sv));
                    i += W;
                }
            }
            for v in &mut row[full..] {
                *v *= s;
            }
        }

        /// `Σ row[i]` and `Σ (row[i] - mean)²` in the reference's 16 partial sums.
        ///
        /// # Safety
        /// The CPU must support the variant's features.
        #[target_feature(enable = $feat)]
        // SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
        unsafe fn lane_sum(row: &[f32], center: Option<f32>) -> f32 {
            let full = row.len() - row.len() % reference::LANES;
            let p = row.as_ptr();
            let mut acc = [splat(0.0); ACC];
            let mut lanes = [0.0f32; reference::LANES];
            let c = splat(center.unwrap_or(0.0));
            // SAFETY: the loads stay below `full ≤ row.len()`; the stores fill `lanes`.
            unsafe {
                let mut i = 0;
                while i < full {
                    for (k, a) in acc.iter_mut().enumerate() {
                        let v = load(p.add(i + k * W));
                        let f = match center {
                            Some(_) => {
                                let d = sub(v, c);
                                mul(d, d)
                            }
                            None => v,
                        };
                        *a = add(*a, f);
                    }
                    i += reference::LANES;
                }
                for (k, &a) in acc.iter().enumerate() {
                    store(lanes.as_mut_ptr().add(k * W), a);
                }
            }
            let tail: f32 = match center {
                Some(m) => row[full..].iter().map(|&v| (v - m) * (v - m)).sum(),
                None => row[full..].iter().sum(),
            };
            tail + lanes.iter().sum::<f32>()
        }

        /// [`reference::layer_norm`] (same contract: `scale` and `bias` have the row's length).
        ///
        /// # Safety
        /// The CPU must support the variant's features.
        #[target_feature(enable = $feat)]
        // SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
        pub unsafe fn layer_norm(
            row: &[f32],
            scale: &[f32],
            bias: Option<&[f32]>,
            out: &mut [f32],
            eps: f32,
        ) {
            let n = row.len();
            assert!(out.len() >= n && scale.len() >= n && bias.is_none_or(|b| b.len() >= n));
            let cols = n as f32;
            // SAFETY: the CPU has the features (this function's contract).
            let mean = unsafe { lane_sum(row, None) } / cols;
            // SAFETY: as above.
            let var = unsafe { lane_sum(row, Some(mean)) } / cols;
            let inv = 1.0 / libm::sqrtf(var + eps);
            let full = n - n % W;
            let (mv, iv) = (splat(mean), splat(inv));
            let (x, s, o) = (row.as_ptr(), scale.as_ptr(), out.as_mut_ptr());
            // SAFETY: the accesses stay below `full ≤ n`, and every slice has `n` elements.
            unsafe {
                let mut i = 0;
                while i < full {
                    let v = mul(mul(sub(load(x.add(i)), mv), iv), load(s.add(i)));
                    let v = match bias {
                        Some(b) => add(v, load(b.as_ptr().add(i))),
                        None => v,
                    };
                    store(o.add(i), v);
                    i += W;
                }
            }
            for j in full..n {
                let v = (row[j] - mean) * inv * scale[j];
                out[j] = match bias {
                    Some(b) => v + b[j],
                    None => v,
                };
            }
        }

        /// [`reference::rms_norm`], except that the squares are summed in 16 partial sums.
        ///
        /// # Safety
        /// The CPU must support the variant's features.
        #[target_feature(enable = $feat)]
        // SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
        pub unsafe fn rms_norm(
            row: &[f32],
            scale: Option<&[f32]>,
            out: &mut [f32],
            eps: f32,
            divide: bool,
        ) {
            let n = row.len();
            assert!(out.len() >= n && scale.is_none_or(|s| s.len() >= n));
            let full16 = n - n % reference::LANES;
            let x = row.as_ptr();
            let mut acc = [splat(0.0); ACC];
            let mut lanes = [0.0f32; reference::LANES];
            // SAFETY: the loads stay below `full16 ≤ n`; the stores fill `lanes`.
            unsafe {
                let mut i = 0;
                while i < full16 {
                    for (k, a) in acc.iter_mut().enumerate() {
                        let v = load(x.add(i + k * W));
                        *a = add(*a, mul(v, v));
                    }
                    i += reference::LANES;
                }
                for (k, &a) in acc.iter().enumerate() {
                    store(lanes.as_mut_ptr().add(k * W), a);
                }
            }
            let tail: f32 = row[full16..].iter().map(|&v| v * v).sum();
            let r = reference::rms(tail + lanes.iter().sum::<f32>(), n, eps);
            let inv = 1.0 / r;
            let full = n - n % W;
            let (rv, iv, o) = (splat(r), splat(inv), out.as_mut_ptr());
            // SAFETY: the accesses stay below `full ≤ n`, and every slice has `n` elements.
            unsafe {
                let mut i = 0;
                while i < full {
                    let v = load(x.add(i));
                    let v = if divide { div(v, rv) } else { mul(v, iv) };
                    let v = match scale {
                        Some(s) => mul(v, load(s.as_ptr().add(i))),
                        None => v,
                    };
                    store(o.add(i), v);
                    i += W;
                }
            }
            reference::rms_norm_apply(
                &row[full..],
                scale.map(|s| &s[full..n]),
                &mut out[full..n],
                r,
                divide,
            );
        }

        /// [`reference::rotary_half`].
        ///
        /// # Safety
        /// The CPU must support the variant's features.
        #[target_feature(enable = $feat)]
        // SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
        pub unsafe fn rotary_half(x: &[f32], c: &[f32], s: &[f32], out: &mut [f32]) {
            let d = x.len();
            let h = d / 2;
            assert!(c.len() >= d && s.len() >= d && out.len() >= d);
            let full = h - h % W;
            let (xp, cp, sp, op) = (x.as_ptr(), c.as_ptr(), s.as_ptr(), out.as_mut_ptr());
            // SAFETY: every index is below `h + full ≤ d`, and every slice has `d` elements.
            unsafe {
                let mut j = 0;
                while j < full {
                    let (x1, x2) = (load(xp.add(j)), load(xp.add(h + j)));
                    // `a + -b` is `a - b` exactly.
                    let o1 = sub(mul(x1, load(cp.add(j))), mul(x2, load(sp.add(j))));
                    let o2 = add(mul(x2, load(cp.add(h + j))), mul(x1, load(sp.add(h + j))));
                    store(op.add(j), o1);
                    store(op.add(h + j), o2);
                    j += W;
                }
            }
            for j in full..h {
                out[j] = x[j] * c[j] + -x[h + j] * s[j];
                out[h + j] = x[h + j] * c[h + j] + x[j] * s[h + j];
            }
        }
    };
}

/// `dst[i] = $f(src[i])` for the whole vectors below `full` (inside an `unsafe` block of
/// `rowwise_kernels!`'s `map_raw`).
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(unused_macros)
)]
macro_rules! rowwise_each {
    ($f:ident, $src:expr, $dst:expr, $full:expr) => {{
        let mut i = 0;
        while i < $full {
            store($dst.add(i), $f(load($src.add(i))));
            i += W;
        }
    }};
}

#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
pub mod aarch64_neon;
pub mod reference;
#[cfg(target_arch = "x86_64")]
pub mod x86_avx2;
#[cfg(target_arch = "x86_64")]
pub mod x86_avx512;

#[cfg(test)]
mod tests;

use crate::math;

/// A transcendental map with a vector form in every variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unary {
    /// [`math::fast_exp`].
    Exp,
    /// [`math::fast_erf`].
    Erf,
    /// [`math::rational_tanh`].
    Tanh,
    /// [`math::fast_sigmoid`].
    Sigmoid,
    /// [`math::fast_gelu`] (erf form).
    Gelu,
    /// [`math::fast_gelu_tanh`].
    GeluTanh,
    /// [`math::fast_silu`].
    Silu,
}

impl Unary {
    /// The scalar function.
    #[inline(always)]
    pub fn scalar(self, x: f32) -> f32 {
        match self {
            Unary::Exp => math::fast_exp(x),
            Unary::Erf => math::fast_erf(x),
            Unary::Tanh => math::rational_tanh(x),
            Unary::Sigmoid => math::fast_sigmoid(x),
            Unary::Gelu => math::fast_gelu(x),
            Unary::GeluTanh => math::fast_gelu_tanh(x),
            Unary::Silu => math::fast_silu(x),
        }
    }
}

/// Call the variant compiled in for this target: `$name($args…)` of `x86_avx512`, `x86_avx2`
/// or `aarch64_neon` when its features are enabled, else of [`reference`].
macro_rules! pick {
    ($name:ident($($arg:expr),*)) => {{
        #[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
        // SAFETY: this code is compiled with AVX-512F enabled, so the CPU running it has it.
        return unsafe { x86_avx512::$name($($arg),*) };
        #[cfg(all(
            target_arch = "x86_64",
            not(target_feature = "avx512f"),
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        // SAFETY: this code is compiled with AVX2 and FMA enabled, so the CPU running it has them.
        return unsafe { x86_avx2::$name($($arg),*) };
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        // SAFETY: this code is compiled with NEON enabled, so the CPU running it has it.
        return unsafe { aarch64_neon::$name($($arg),*) };
        #[cfg(not(any(
            all(target_arch = "x86_64", target_feature = "avx512f"),
            all(target_arch = "x86_64", target_feature = "avx2", target_feature = "fma"),
            all(target_arch = "aarch64", target_feature = "neon")
        )))]
        return reference::$name($($arg),*);
    }};
}

/// Largest element of a row (NaN-ignoring; `-inf` for an empty row).
#[inline]
pub fn row_max(row: &[f32]) -> f32 {
    pick!(row_max(row))
}

/// `out[i] = exp(row[i] - max)` by [`math::fast_exp`]; returns the sum.
#[inline]
pub fn exp_sub_sum(row: &[f32], max: f32, out: &mut [f32]) -> f32 {
    pick!(exp_sub_sum(row, max, out))
}

/// `row[i] = exp(row[i] - max)` by [`math::fast_exp`]; returns the sum.
#[inline]
pub fn exp_sub_sum_in_place(row: &mut [f32], max: f32) -> f32 {
    pick!(exp_sub_sum_in_place(row, max))
}

/// `row[i] *= s`.
#[inline]
pub fn scale(row: &mut [f32], s: f32) {
    pick!(scale(row, s))
}

/// `out[i] = f(x[i])` over the shorter of the two.
#[inline]
pub fn map(x: &[f32], out: &mut [f32], f: Unary) {
    pick!(map(x, out, f))
}

/// `row[i] = f(row[i])`.
#[inline]
pub fn map_in_place(row: &mut [f32], f: Unary) {
    pick!(map_in_place(row, f))
}

/// LayerNorm of one non-empty row; `scale` and `bias` have the row's length.
#[inline]
pub fn layer_norm(row: &[f32], scale: &[f32], bias: Option<&[f32]>, out: &mut [f32], eps: f32) {
    pick!(layer_norm(row, scale, bias, out, eps))
}

/// RMSNorm of one non-empty row (see [`reference::rms_norm`]); `scale` has the row's length.
#[inline]
pub fn rms_norm(row: &[f32], scale: Option<&[f32]>, out: &mut [f32], eps: f32, divide: bool) {
    pick!(rms_norm(row, scale, out, eps, divide))
}

/// Rotate-half rotary embedding of one row (see [`reference::rotary_half`]).
#[inline]
pub fn rotary_half(x: &[f32], c: &[f32], s: &[f32], out: &mut [f32]) {
    pick!(rotary_half(x, c, s, out))
}
