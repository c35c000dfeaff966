//! `Q4Linear`: `y = act(x · W + bias)` with W stored as 4-bit integers per group of `group`
//! rows of k and output column (f32 or f16 scales, optional zero points), dequantized inside
//! the GEMM/GEMV kernel (made by the pass `quantize_int4` or by the import of
//! `MatMulNBits`; no ONNX op maps to it one to one).
use super::OpDef;
use super::linear::activation_path;
use super::util::{self, EmitCtx, lit_usize};
use crate::error::OpError;
use crate::invalid;
use crate::ir::{Tensor, TensorType};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::gemm::{Activation, Gemm, Tiles};
use runtime_core::kernels::qgemm::{self, Q4Weights};

/// Inputs: `x: f32[..., k]`, the weight blob
/// `w: u8[qgemm::packed_q4_bytes(k, n, group, nr, f16_scales, zero_points)]` and (when
/// `bias`) `bias: f32[n]`; output `f32[..., n]`.
/// `W[p][j] = (q[p][j] - zp[p / group][j]) · scale[p / group][j]`, `zp` = 8 unless
/// `zero_points`.
#[derive(Debug, Clone, PartialEq)]
pub struct Q4Linear {
    pub k: usize,
    pub n: usize,
    /// Rows of k per scale.
    pub group: usize,
    /// Panel width the blob was packed for.
    pub nr: usize,
    /// Scales stored as IEEE half (else f32).
    pub f16_scales: bool,
    /// An explicit zero point (0..=15) per group and column (else 8).
    pub zero_points: bool,
    pub bias: bool,
    pub activation: Activation,
    pub tiles: Tiles,
    /// The kernel the blob was packed for (for reports).
    pub kernel: &'static str,
}

impl Q4Linear {
    /// Bytes of this layer's weight blob.
    pub fn weight_bytes(&self) -> usize {
        qgemm::packed_q4_bytes(
            self.k,
            self.n,
            self.group,
            self.nr,
            self.f16_scales,
            self.zero_points,
        )
    }

    fn rows(&self, x: &TensorType) -> usize {
        x.numel().checked_div(self.k).unwrap_or(0)
    }
}

impl OpDef for Q4Linear {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        if self.group == 0 {
            return invalid!("group must be positive");
        }
        util::check_blob_linear(
            inputs,
            self.bias,
            [self.k, self.n, self.nr],
            self.weight_bytes(),
        )?;
        let x = inputs[0];
        let output = util::linear_output(x, self.n, self.bias.then(|| inputs[2]))?;
        Ok(vec![output])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let x = util::data::<f32>(inputs[0])?;
        let w = util::data::<u8>(inputs[1])?;
        let bias = util::optional_bias(inputs)?;
        let mut out = util::zeros(&outputs[0])?;
        let g = Gemm {
            m: self.rows(&inputs[0].ty),
            k: self.k,
            n: self.n,
            lda: self.k,
            ldc: self.n,
            bias,
            activation: self.activation,
            tiles: self.tiles,
        };
        let weights = Q4Weights::new(
            w,
            self.k,
            self.n,
            self.group,
            self.nr,
            self.f16_scales,
            self.zero_points,
        );
        qgemm::gemm_q4(x, weights, util::data_mut::<f32>(&mut out)?, &g);
        Ok(vec![out])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        let m = lit_usize(self.rows(&ctx.inputs[0]));
        let (k, n, nr, group) = (
            lit_usize(self.k),
            lit_usize(self.n),
            lit_usize(self.nr),
            lit_usize(self.group),
        );
        let (f16, zps) = (self.f16_scales, self.zero_points);
        let (mr, kc, mc) = (
            lit_usize(self.tiles.mr),
            lit_usize(self.tiles.kc),
            lit_usize(self.tiles.mc),
        );
        let (x, w, y) = (ctx.input(0), ctx.input(1), ctx.output(0));
        let bias = if self.bias {
            let b = ctx.input(2);
            quote!(Some(#b))
        } else {
            quote!(None)
        };
        let act = activation_path(self.activation);
        Ok(quote! {
            rt::kernels::qgemm::gemm_q4(#x,
                rt::kernels::qgemm::Q4Weights::new(#w, #k, #n, #group, #nr, #f16, #zps), #y,
                &rt::kernels::gemm::Gemm {
                    m: #m, k: #k, n: #n, lda: #k, ldc: #n,
                    bias: #bias,
                    activation: #act,
                    tiles: rt::kernels::gemm::Tiles { mr: #mr, kc: #kc, mc: #mc },
                });
        })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("k", self.k.to_string()),
            ("n", self.n.to_string()),
            ("group", self.group.to_string()),
            ("nr", self.nr.to_string()),
            (
                "scales",
                if self.f16_scales { "f16" } else { "f32" }.to_string(),
            ),
            ("zero_points", self.zero_points.to_string()),
            (
                "epilogue",
                super::linear::epilogue(self.bias, self.activation),
            ),
            (
                "tiles",
                format!(
                    "{} {}x{} kc={} mc={}",
                    self.kernel, self.tiles.mr, self.nr, self.tiles.kc, self.tiles.mc
                ),
            ),
        ]
    }
}

/// How [`quantize_group`] may place a group's 16 levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Q4Grid {
    /// Zero point 8: levels `-8..=7` times the scale.
    Symmetric,
    /// A zero point per group (0..=15): the levels cover the group's own `[min, max]`.
    Asymmetric,
}

/// Round half away from zero (the rounding of runtime-core's quantizers), for one value per
/// candidate (a zero point); [`level`] is the per-element form.
fn round_away(r: f32) -> f32 {
    if r >= 0.0 {
        (r + 0.5).floor()
    } else {
        -((-r + 0.5).floor())
    }
}

/// `(round_away(x / s) + zp).clamp(0, 15)`, the level of `x` (as f32), in arithmetic that
/// vectorises (no libm call, no saturating conversion). Bit-identical to that form:
/// `|r| + 0.5` is rounded in f32 as `round_away` rounds it; magnitudes past 64 clamp like any
/// above 15; the floor of `t ∈ [0, 64]` is `t` rounded to nearest by adding and removing
/// 2^23, less one where that rounded up; NaN takes the negative branch and clamps to 0, as
/// `NaN as u8` is 0.
#[inline(always)]
fn level_f32(x: f32, s: f32, zp: f32) -> f32 {
    const ROUND: f32 = 8_388_608.0;
    let r = x / s;
    let t = (r.abs() + 0.5).min(64.0);
    let nearest = (t + ROUND) - ROUND;
    let floor = if nearest > t { nearest - 1.0 } else { nearest };
    let signed = if r >= 0.0 { floor } else { -floor };
    (signed + zp).clamp(0.0, 15.0)
}

/// [`level_f32`] as the stored level.
fn level(x: f32, s: f32, zp: u8) -> u8 {
    level_f32(x, s, zp as f32) as u8
}

/// Candidates scored together: their error sums run side by side (one vector lane each),
/// each still summed in element order.
const LANES: usize = 8;

/// The candidate list of one group search, reused across groups (one per thread).
#[derive(Debug, Default)]
struct GroupScratch {
    candidates: Vec<(f32, u8)>,
}

/// Each candidate's error over `v`: `Σᵢ h[i]·(v[i] - (level - zp)·s)²` in f64, summed in
/// element order (`h[i]` is 1 where absent; multiplying by 1.0 is exact).
fn errors(v: &[f32], h: Option<&[f32]>, candidates: &[(f32, u8)]) -> [f64; LANES] {
    let (mut s, mut zf) = ([1.0f32; LANES], [0.0f32; LANES]);
    for (c, &(scale, z)) in candidates.iter().take(LANES).enumerate() {
        (s[c], zf[c]) = (scale, z as f32);
    }
    let mut total = [0.0f64; LANES];
    for (i, &x) in v.iter().enumerate() {
        let w = h.and_then(|h| h.get(i)).map_or(1.0, |&x| f64::from(x));
        for c in 0..LANES {
            let l = level_f32(x, s[c], zf[c]);
            let d = (x - (l - zf[c]) * s[c]) as f64;
            total[c] += w * d * d;
        }
    }
    total
}

/// The scale search of [`quantize_group_weighted`], writing the levels into `out`
/// (`v.len()` of them) and returning `(scale as stored, zero point, whether any candidate
/// was taken)`. When none has a finite error (a NaN value) `out` is all zeros and the
/// result `(1.0, 8, false)`: the allocating form returns no levels then. Candidates are
/// taken in order, a later one only if its error is strictly lower.
fn search_group(
    v: &[f32],
    h: Option<&[f32]>,
    f16: bool,
    grid: Q4Grid,
    scratch: &mut GroupScratch,
    out: &mut [u8],
) -> (f32, u8, bool) {
    let weight = |i: usize| h.and_then(|h| h.get(i)).map_or(1.0, |&x| f64::from(x));
    let stored = |s: f32| {
        if f16 {
            runtime_core::math::f16_to_f32(runtime_core::math::f32_to_f16(s))
        } else {
            s
        }
    };
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if !(max > 0.0 && max.is_finite()) {
        out.fill(8);
        return (stored(1.0), 8, true);
    }
    let valid = |s: f32| s > 0.0 && s.is_finite();
    let candidates = &mut scratch.candidates;
    candidates.clear();
    for d in std::iter::once(70).chain((56..=80).filter(|&d| d != 70)) {
        candidates.push((stored(max / (d as f32 / 10.0)), 8));
    }
    if grid == Q4Grid::Asymmetric {
        let lo = v.iter().fold(0.0f32, |m, &x| m.min(x));
        let hi = v.iter().fold(0.0f32, |m, &x| m.max(x));
        for a in 0..=10 {
            for b in 0..=10 {
                let (l, h) = (lo * (1.0 - 0.03 * a as f32), hi * (1.0 - 0.03 * b as f32));
                let s = stored((h - l) / 15.0);
                if valid(s) {
                    let zp = round_away(-l / s).clamp(0.0, 15.0) as u8;
                    candidates.push((s, zp));
                }
            }
        }
    }
    candidates.retain(|&(s, _)| valid(s));
    let mut best: (f64, f32, u8) = (f64::INFINITY, 1.0, 8);
    for chunk in candidates.chunks(LANES) {
        for (&(s, zp), e) in chunk.iter().zip(errors(v, h, chunk)) {
            if e < best.0 {
                best = (e, s, zp);
            }
        }
    }
    // A candidate was taken exactly when the best error is finite.
    let found = best.0 < f64::INFINITY;
    if !found {
        out.fill(0);
        return (best.1, best.2, false);
    }
    let (_, s, zp) = best;
    for (o, &x) in out.iter_mut().zip(v) {
        *o = level(x, s, zp);
    }
    // Least-squares scale for the chosen levels, then the levels for that scale.
    let (num, den) =
        v.iter()
            .zip(out.iter())
            .enumerate()
            .fold((0.0f64, 0.0f64), |(nu, de), (i, (&x, &l))| {
                let c = l as f64 - zp as f64;
                (nu + weight(i) * x as f64 * c, de + weight(i) * c * c)
            });
    if den > 0.0 {
        let refit = stored((num / den) as f32);
        if refit != s && valid(refit) && errors(v, h, &[(refit, zp)])[0] < best.0 {
            best = (0.0, refit, zp);
            for (o, &x) in out.iter_mut().zip(v) {
                *o = level(x, refit, zp);
            }
        }
    }
    (best.1, best.2, true)
}

/// The quantization of one group: `(scale as stored, zero point, levels 0..=15)` with
/// `value ≈ (level - zero point) · scale`, chosen for the least squared error over the
/// group. Candidates: symmetric scales `max|v| / d` for `d` from 5.6 to 8 in steps of 0.1
/// (`max|v| / 7` first, so ties keep it; larger `d` clip the extreme value toward the
/// grid's -8..7); with [`Q4Grid::Asymmetric`] also every range `[lo·a, hi·b]` for `a, b`
/// in 0.70..=1.00 (steps of 0.03) over the group's `[min(v, 0), max(v, 0)]`. The best
/// candidate's scale is then refitted by least squares for its levels (kept if better).
/// Scales are compared as stored (f16-rounded when `f16`). A group holding NaN has no
/// candidate: `(1.0, 8, [])`.
pub fn quantize_group(v: &[f32], f16: bool, grid: Q4Grid) -> (f32, u8, Vec<u8>) {
    quantize_group_weighted(v, None, f16, grid)
}

/// [`quantize_group`] with the squared error of value `i` weighed by `h[i]` (its input
/// channel's activation mean square, from `calibrate::activation_moments`; the least-squares
/// refit weighs the same way). `None` weighs every value 1.
pub fn quantize_group_weighted(
    v: &[f32],
    h: Option<&[f32]>,
    f16: bool,
    grid: Q4Grid,
) -> (f32, u8, Vec<u8>) {
    let mut levels = vec![0u8; v.len()];
    let (s, zp, found) = search_group(v, h, f16, grid, &mut GroupScratch::default(), &mut levels);
    if !found {
        levels.clear();
    }
    (s, zp, levels)
}

/// Threads [`pack_weight`] spreads the groups over: the machine's parallelism.
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Quantize a row-major `f32[k, n]` weight to 4 bits per (group of `group` rows of k,
/// column) with [`quantize_group`] and pack it: the `Q4Linear` weight blob (build time).
/// With [`Q4Grid::Asymmetric`] the blob holds zero points (`Q4Linear::zero_points`).
/// `moments` (`k` values): each row's weight in its group's error
/// ([`quantize_group_weighted`]). The groups are spread over the machine's cores; the
/// bytes do not depend on how many there are.
#[allow(clippy::too_many_arguments)]
pub fn pack_weight(
    w: &[f32],
    k: usize,
    n: usize,
    group: usize,
    nr: usize,
    f16: bool,
    grid: Q4Grid,
    moments: Option<&[f32]>,
) -> Vec<u8> {
    let threads = default_threads();
    pack_weight_threads(w, (k, n, group, nr), (f16, grid), moments, threads)
}

/// [`pack_weight`] on at most `threads` threads (each a contiguous run of groups, writing
/// only its own rows of levels, scales and zero points).
fn pack_weight_threads(
    w: &[f32],
    (k, n, group, nr): (usize, usize, usize, usize),
    (f16, grid): (bool, Q4Grid),
    moments: Option<&[f32]>,
    threads: usize,
) -> Vec<u8> {
    let groups = k.div_ceil(group);
    let mut q = vec![0u8; k * n];
    let mut scales = vec![0.0f32; groups * n];
    let mut zps = vec![8u8; groups * n];
    let per = groups.div_ceil(threads.max(1)).max(1);
    // Groups `first..` of the weight into their rows of `q`, `scales`, `zps`.
    let run = |first: usize, q: &mut [u8], scales: &mut [f32], zps: &mut [u8]| {
        let mut scratch = GroupScratch::default();
        let (mut vals, mut out) = (Vec::new(), Vec::new());
        for (local, (s_row, z_row)) in scales.chunks_mut(n).zip(zps.chunks_mut(n)).enumerate() {
            let gi = first + local;
            let rows = gi * group..k.min((gi + 1) * group);
            let h = moments.and_then(|m| m.get(rows.clone()));
            out.resize(rows.len(), 0);
            for j in 0..n {
                vals.clear();
                vals.extend(rows.clone().map(|p| w[p * n + j]));
                let (s, zp, _) = search_group(&vals, h, f16, grid, &mut scratch, &mut out);
                s_row[j] = s;
                z_row[j] = zp;
                for (r, &l) in out.iter().enumerate() {
                    q[(local * group + r) * n + j] = l;
                }
            }
        }
    };
    if per >= groups || n == 0 {
        run(0, &mut q, &mut scales, &mut zps);
    } else {
        std::thread::scope(|scope| {
            let chunks = q
                .chunks_mut(per * group * n)
                .zip(scales.chunks_mut(per * n))
                .zip(zps.chunks_mut(per * n))
                .enumerate();
            for (t, ((q, s), z)) in chunks {
                let run = &run;
                scope.spawn(move || run(t * per, q, s, z));
            }
        });
    }
    pack_levels(&q, &scales, &zps, (k, n, group, nr), (f16, grid))
}

/// The `Q4Linear` blob of levels (`k × n`), scales and zero points (`groups × n` each).
fn pack_levels(
    q: &[u8],
    scales: &[f32],
    zps: &[u8],
    (k, n, group, nr): (usize, usize, usize, usize),
    (f16, grid): (bool, Q4Grid),
) -> Vec<u8> {
    let asym = grid == Q4Grid::Asymmetric;
    let mut out = vec![0u8; qgemm::packed_q4_bytes(k, n, group, nr, f16, asym)];
    let zp = asym.then_some(zps);
    qgemm::pack_q4(q, scales, zp, k, n, group, nr, f16, &mut out);
    out
}

/// Dampening of GPTQ's Hessian: this fraction of its mean diagonal is added to the diagonal.
pub const GPTQ_DAMP: f64 = 0.01;

/// In place, the lower Cholesky factor `L` of the symmetric row-major `k × k` matrix `a`
/// (`a = L·Lᵀ`; the strict upper triangle is zeroed). `false` when `a` is not positive
/// definite (then `a` is garbage).
fn cholesky(a: &mut [f64], k: usize) -> bool {
    for j in 0..k {
        let mut d = a[j * k + j];
        for p in 0..j {
            d -= a[j * k + p] * a[j * k + p];
        }
        if !(d > 0.0 && d.is_finite()) {
            return false;
        }
        let d = d.sqrt();
        a[j * k + j] = d;
        for i in j + 1..k {
            let mut s = a[i * k + j];
            for p in 0..j {
                s -= a[i * k + p] * a[j * k + p];
            }
            a[i * k + j] = s / d;
        }
        for p in j + 1..k {
            a[j * k + p] = 0.0;
        }
    }
    true
}

/// GPTQ's factor of the dampened Hessian `hessian` (`k × k`, `XᵀX` of the layer's
/// calibration inputs): the upper-triangular `U` with `(H + λI)⁻¹ = Uᵀ·U` (row-major),
/// `λ` = [`GPTQ_DAMP`] × the mean diagonal. Channels never active (zero diagonal) get a
/// diagonal of 1 first. The dampening grows tenfold while the matrix is not positive
/// definite (rounding); `None` after five tries.
pub fn gptq_factor(hessian: &[f64], k: usize) -> Option<Vec<f64>> {
    let mut base = hessian.to_vec();
    for p in 0..k {
        if base[p * k + p] <= 0.0 {
            base[p * k + p] = 1.0;
        }
    }
    let mean = (0..k).map(|p| base[p * k + p]).sum::<f64>() / k.max(1) as f64;
    let mut damp = GPTQ_DAMP * mean;
    for _ in 0..5 {
        let mut l = base.clone();
        for p in 0..k {
            l[p * k + p] += damp;
        }
        if cholesky(&mut l, k) {
            // M = L⁻¹ (lower), by forward substitution column by column.
            let mut m = vec![0.0f64; k * k];
            for c in 0..k {
                m[c * k + c] = 1.0 / l[c * k + c];
                for i in c + 1..k {
                    let s: f64 = (c..i).map(|p| l[i * k + p] * m[p * k + c]).sum();
                    m[i * k + c] = -s / l[i * k + i];
                }
            }
            // H⁻¹ = Mᵀ·M.
            let mut inv = vec![0.0f64; k * k];
            for a in 0..k {
                for b in 0..=a {
                    let s: f64 = (a..k).map(|p| m[p * k + a] * m[p * k + b]).sum();
                    inv[a * k + b] = s;
                    inv[b * k + a] = s;
                }
            }
            if cholesky(&mut inv, k) {
                // U = Lᵀ of H⁻¹ = L·Lᵀ.
                let mut u = vec![0.0f64; k * k];
                for a in 0..k {
                    for b in 0..=a {
                        u[b * k + a] = inv[a * k + b];
                    }
                }
                return Some(u);
            }
        }
        damp *= 10.0;
    }
    None
}

/// GPTQ (Frantar et al., 2022) for a row-major `f32[k, n]` weight whose input rows have the
/// second moment `hessian` (`k × k`, `calibrate::LayerInputs::hessian`), packed as
/// [`pack_weight`] packs (same blob layout). The rows of k (input channels) are quantized
/// in order; each row's rounding error, divided by `U[p][p]` ([`gptq_factor`]), is fed into
/// the rows not yet quantized through `U[p][p+1..]`, so that they compensate it on the
/// calibration inputs. A group's scale and zero point are chosen when its first row is
/// reached, by [`quantize_group_weighted`]'s search on the error-updated weights weighed by
/// the Hessian's diagonal. Output columns are independent: they are spread over the cores,
/// and the bytes do not depend on how many there are. `None` when the Hessian cannot be
/// factored (see [`gptq_factor`]).
#[allow(clippy::too_many_arguments)]
pub fn pack_weight_gptq(
    w: &[f32],
    k: usize,
    n: usize,
    group: usize,
    nr: usize,
    f16: bool,
    grid: Q4Grid,
    hessian: &[f64],
) -> Option<Vec<u8>> {
    let threads = default_threads();
    pack_weight_gptq_threads(w, (k, n, group, nr), (f16, grid), hessian, threads)
}

/// [`pack_weight_gptq`] on at most `threads` threads (each a contiguous run of columns).
fn pack_weight_gptq_threads(
    w: &[f32],
    (k, n, group, nr): (usize, usize, usize, usize),
    (f16, grid): (bool, Q4Grid),
    hessian: &[f64],
    threads: usize,
) -> Option<Vec<u8>> {
    let u = gptq_factor(hessian, k)?;
    let diag: Vec<f32> = (0..k).map(|p| hessian[p * k + p] as f32).collect();
    let groups = k.div_ceil(group);
    // Per column: its levels (k), scales and zero points (groups each).
    let column = |j: usize, scratch: &mut GroupScratch| -> (Vec<u8>, Vec<f32>, Vec<u8>) {
        let mut c: Vec<f64> = (0..k).map(|p| f64::from(w[p * n + j])).collect();
        let (mut q, mut s, mut z) = (vec![0u8; k], vec![0.0f32; groups], vec![8u8; groups]);
        let mut out = Vec::new();
        for gi in 0..groups {
            let rows = gi * group..k.min((gi + 1) * group);
            let vals: Vec<f32> = c[rows.clone()].iter().map(|&x| x as f32).collect();
            out.resize(rows.len(), 0);
            let h = Some(&diag[rows.clone()]);
            let (scale, zp, _) = search_group(&vals, h, f16, grid, scratch, &mut out);
            (s[gi], z[gi]) = (scale, zp);
            for p in rows {
                let l = level(c[p] as f32, scale, zp);
                q[p] = l;
                let dq = (f64::from(l) - f64::from(zp)) * f64::from(scale);
                let err = (c[p] - dq) / u[p * k + p];
                for (x, &up) in c[p + 1..].iter_mut().zip(&u[p * k + p + 1..(p + 1) * k]) {
                    *x -= err * up;
                }
            }
        }
        (q, s, z)
    };
    let per = n.div_ceil(threads.clamp(1, n.max(1))).max(1);
    let results: Vec<(Vec<u8>, Vec<f32>, Vec<u8>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .step_by(per)
            .map(|first| {
                let column = &column;
                scope.spawn(move || {
                    let mut scratch = GroupScratch::default();
                    (first..n.min(first + per))
                        .map(|j| column(j, &mut scratch))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    if results.len() != n {
        return None;
    }
    let mut q = vec![0u8; k * n];
    let mut scales = vec![0.0f32; groups * n];
    let mut zps = vec![8u8; groups * n];
    for (j, (cq, cs, cz)) in results.into_iter().enumerate() {
        for p in 0..k {
            q[p * n + j] = cq[p];
        }
        for gi in 0..groups {
            scales[gi * n + j] = cs[gi];
            zps[gi * n + j] = cz[gi];
        }
    }
    Some(pack_levels(
        &q,
        &scales,
        &zps,
        (k, n, group, nr),
        (f16, grid),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::util::blob;

    fn layer(f16_scales: bool, zero_points: bool) -> Q4Linear {
        Q4Linear {
            k: 6,
            n: 3,
            group: 4,
            nr: 4,
            f16_scales,
            zero_points,
            bias: false,
            activation: Activation::Relu,
            tiles: Tiles {
                mr: 4,
                kc: 256,
                mc: 64,
            },
            kernel: "portable",
        }
    }

    /// Weights on the 4-bit grid of their group (scales that are powers of two, exact in
    /// f16) give the float product, with f32 and f16 scales.
    #[test]
    fn grid_weights_give_the_float_product() {
        // Group 0 (rows 0..4): max |w| = 7·0.25 per column; group 1 (rows 4..6): 7·0.5.
        let w: Vec<f32> = (0..18)
            .map(|i| {
                let (p, j) = (i / 3, i % 3);
                let s = if p < 4 { 0.25 } else { 0.5 };
                let q = [7.0, -3.0, 0.0, -6.0, 7.0, 1.0][p] * if j == 1 { -1.0 } else { 1.0 };
                q * s
            })
            .collect();
        let x: Vec<f32> = (0..12).map(|v| v as f32 * 0.5 - 2.0).collect();
        let expect: Vec<f64> = (0..2)
            .flat_map(|i| {
                let (x, w) = (&x, &w);
                (0..3).map(move |j| {
                    let s: f32 = (0..6).map(|p| x[i * 6 + p] * w[p * 3 + j]).sum();
                    s.max(0.0) as f64
                })
            })
            .collect();
        let xt = Tensor::from_f32s(vec![2, 6], x).unwrap();
        for f16 in [false, true] {
            let op = layer(f16, false);
            let wt = blob(pack_weight(&w, 6, 3, 4, 4, f16, Q4Grid::Symmetric, None));
            let ty = op.infer(&[&xt.ty, &wt.ty]).unwrap();
            let got = op.eval(&[&xt, &wt], &ty).unwrap()[0].data.to_f64_vec();
            for (g, e) in got.iter().zip(&expect) {
                assert!((g - e).abs() < 1e-5, "f16={f16}: {got:?} vs {expect:?}");
            }
        }
    }

    /// The scale search never does worse than `max|w| / 7` (runtime-core's quantizer), and
    /// does better on weights with an outlier per group.
    #[test]
    fn weighted_groups_favour_the_heavy_channels() {
        // Channels 0..4 carry 100x the activation energy of the rest: the weighted choice
        // has the least weighted error (it is the search's objective), and a lower error on
        // those channels than the plain one, which it trades for the light ones.
        let v: Vec<f32> = (0..32)
            .map(|i| ((i as f32 * 1.37).sin() * 917.3).fract() * if i == 9 { 4.0 } else { 1.0 })
            .collect();
        let h: Vec<f32> = (0..32).map(|i| if i < 4 { 100.0 } else { 1.0 }).collect();
        let err = |(s, zp, q): &(f32, u8, Vec<u8>), w: &dyn Fn(usize) -> f64| -> f64 {
            v.iter()
                .zip(q)
                .enumerate()
                .map(|(i, (&x, &l))| w(i) * f64::from(x - (l as f32 - *zp as f32) * s).powi(2))
                .sum()
        };
        let plain = quantize_group(&v, true, Q4Grid::Asymmetric);
        let weighted = quantize_group_weighted(&v, Some(&h), true, Q4Grid::Asymmetric);
        assert_ne!(plain, weighted);
        let by_h = |i: usize| f64::from(h[i]);
        assert!(err(&weighted, &by_h) < err(&plain, &by_h));
        let heavy = |i: usize| if i < 4 { 1.0 } else { 0.0 };
        assert!(err(&weighted, &heavy) < err(&plain, &heavy));
        let all_ones = vec![1.0; 32];
        assert_eq!(
            quantize_group_weighted(&v, Some(&all_ones), true, Q4Grid::Asymmetric),
            plain
        );
    }

    /// GPTQ on correlated inputs: the same bytes on 1 and 3 threads, a lower output error
    /// on those inputs than the weighted search, and a factor that inverts the Hessian.
    #[test]
    fn gptq_is_deterministic_and_lowers_the_output_error() {
        let (k, n, m, group) = (40, 7, 96, 16);
        let noise = |i: usize| ((i as f32 * 0.731).sin() * 43758.547).fract() - 0.5;
        // Rows mix 3 shared factors with noise: strongly correlated channels.
        let x: Vec<f32> = (0..m * k)
            .map(|i| {
                let (r, p) = (i / k, i % k);
                let f: f32 = (0..3)
                    .map(|t| noise(r * 3 + t) * noise(1000 + p * 3 + t))
                    .sum();
                4.0 * f + 0.3 * noise(5000 + i)
            })
            .collect();
        let w: Vec<f32> = (0..k * n).map(|i| noise(9000 + i)).collect();
        let inputs = crate::calibrate::LayerInputs { k, rows: x.clone() };
        let h = inputs.hessian();
        let u = gptq_factor(&h, k).unwrap();
        // (H + λI)·UᵀU = I.
        let damp = GPTQ_DAMP * (0..k).map(|p| h[p * k + p]).sum::<f64>() / k as f64;
        for a in 0..k {
            for b in 0..k {
                let v: f64 = (0..k)
                    .map(|c| {
                        let hac = h[a * k + c] + if a == c { damp } else { 0.0 };
                        hac * (0..k).map(|p| u[p * k + c] * u[p * k + b]).sum::<f64>()
                    })
                    .sum();
                let want = if a == b { 1.0 } else { 0.0 };
                assert!((v - want).abs() < 1e-6, "({a}, {b}): {v}");
            }
        }
        let grid = Q4Grid::Asymmetric;
        let one = pack_weight_gptq_threads(&w, (k, n, group, 4), (true, grid), &h, 1).unwrap();
        let three = pack_weight_gptq_threads(&w, (k, n, group, 4), (true, grid), &h, 3).unwrap();
        assert_eq!(one, three);
        let moments = inputs.moments();
        let search = pack_weight(&w, k, n, group, 4, true, grid, Some(&moments));
        let mut op = layer(true, true);
        (op.k, op.n, op.group, op.activation) = (k, n, group, Activation::None);
        let xt = Tensor::from_f32s(vec![m, k], x.clone()).unwrap();
        let error = |bytes: Vec<u8>| -> f64 {
            let wt = blob(bytes);
            let ty = op.infer(&[&xt.ty, &wt.ty]).unwrap();
            let got = op.eval(&[&xt, &wt], &ty).unwrap()[0].data.to_f64_vec();
            (0..m * n)
                .map(|i| {
                    let (r, j) = (i / n, i % n);
                    let want: f64 = (0..k)
                        .map(|p| f64::from(x[r * k + p]) * f64::from(w[p * n + j]))
                        .sum();
                    (want - got[i]).powi(2)
                })
                .sum()
        };
        let (e_gptq, e_search) = (error(one), error(search));
        assert!(e_gptq < e_search, "gptq {e_gptq} vs search {e_search}");
    }

    #[test]
    fn scale_search_lowers_the_weight_error() {
        let (k, n, group) = (64, 8, 32);
        let w: Vec<f32> = (0..k * n)
            .map(|i| {
                let v = ((i as f32 * 0.731).sin() * 43758.547).fract() - 0.5;
                if i % 37 == 0 { v * 6.0 } else { v }
            })
            .collect();
        // x = identity: the output rows are the dequantized weight rows.
        let mut eye = vec![0.0f32; k * k];
        for p in 0..k {
            eye[p * k + p] = 1.0;
        }
        let x = Tensor::from_f32s(vec![k, k], eye).unwrap();
        let mut op = layer(true, false);
        (op.k, op.n, op.group, op.nr, op.activation) = (k, n, group, 16, Activation::None);
        let dequant = |bytes: Vec<u8>| {
            let wt = blob(bytes);
            let ty = op.infer(&[&x.ty, &wt.ty]).unwrap();
            op.eval(&[&x, &wt], &ty).unwrap()[0].data.to_f64_vec()
        };
        let sse =
            |d: &[f64]| -> f64 { d.iter().zip(&w).map(|(a, b)| (a - *b as f64).powi(2)).sum() };
        let searched = sse(&dequant(pack_weight(
            &w,
            k,
            n,
            group,
            16,
            true,
            Q4Grid::Symmetric,
            None,
        )));
        let mut q = vec![0u8; k * n];
        let mut scales = vec![0.0f32; 2 * n];
        qgemm::quantize_weights_q4(&w, k, n, group, &mut q, &mut scales);
        let mut plain = vec![0u8; op.weight_bytes()];
        qgemm::pack_q4(&q, &scales, None, k, n, group, 16, true, &mut plain);
        let plain = sse(&dequant(plain));
        assert!(
            searched < 0.9 * plain,
            "searched {searched} vs plain {plain}"
        );
    }

    /// The group search as it was first written (a `Vec` of levels per candidate, libm
    /// `floor` per element): the fast search must give the same bytes.
    fn reference_search(
        v: &[f32],
        h: Option<&[f32]>,
        f16: bool,
        grid: Q4Grid,
    ) -> (f32, u8, Vec<u8>) {
        let weight = |i: usize| h.and_then(|h| h.get(i)).map_or(1.0, |&x| f64::from(x));
        let stored = |s: f32| {
            if f16 {
                runtime_core::math::f16_to_f32(runtime_core::math::f32_to_f16(s))
            } else {
                s
            }
        };
        let levels = |s: f32, zp: u8| -> Vec<u8> {
            v.iter()
                .map(|&x| (round_away(x / s) + zp as f32).clamp(0.0, 15.0) as u8)
                .collect()
        };
        let error = |s: f32, zp: u8, q: &[u8]| -> f64 {
            v.iter()
                .zip(q)
                .enumerate()
                .map(|(i, (&x, &l))| {
                    let e = (x - (l as f32 - zp as f32) * s) as f64;
                    weight(i) * e * e
                })
                .sum()
        };
        let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        if !(max > 0.0 && max.is_finite()) {
            return (stored(1.0), 8, vec![8; v.len()]);
        }
        let mut best: (f64, f32, u8, Vec<u8>) = (f64::INFINITY, 1.0, 8, Vec::new());
        let consider = |s: f32, zp: u8, best: &mut (f64, f32, u8, Vec<u8>)| {
            if !(s > 0.0 && s.is_finite()) {
                return;
            }
            let q = levels(s, zp);
            let e = error(s, zp, &q);
            if e < best.0 {
                *best = (e, s, zp, q);
            }
        };
        for d in std::iter::once(70).chain((56..=80).filter(|&d| d != 70)) {
            consider(stored(max / (d as f32 / 10.0)), 8, &mut best);
        }
        if grid == Q4Grid::Asymmetric {
            let lo = v.iter().fold(0.0f32, |m, &x| m.min(x));
            let hi = v.iter().fold(0.0f32, |m, &x| m.max(x));
            for a in 0..=10 {
                for b in 0..=10 {
                    let (l, h) = (lo * (1.0 - 0.03 * a as f32), hi * (1.0 - 0.03 * b as f32));
                    let s = stored((h - l) / 15.0);
                    if !(s > 0.0 && s.is_finite()) {
                        continue;
                    }
                    let zp = round_away(-l / s).clamp(0.0, 15.0) as u8;
                    consider(s, zp, &mut best);
                }
            }
        }
        let (_, s, zp, q) = &best;
        let (num, den) =
            v.iter()
                .zip(q)
                .enumerate()
                .fold((0.0f64, 0.0f64), |(n, d), (i, (&x, &l))| {
                    let c = l as f64 - *zp as f64;
                    (n + weight(i) * x as f64 * c, d + weight(i) * c * c)
                });
        if den > 0.0 {
            let refit = stored((num / den) as f32);
            if refit != *s {
                let zp = *zp;
                consider(refit, zp, &mut best);
            }
        }
        (best.1, best.2, best.3)
    }

    /// A seeded generator of awkward groups: normals, outliers, one-signed groups, zeros,
    /// values on rounding ties, denormals, huge and non-finite values.
    fn random_groups(seed: u64, count: usize) -> Vec<Vec<f32>> {
        let mut state = seed;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u32
        };
        (0..count)
            .map(|c| {
                let len = [32, 32, 64, 128, 1, 7, 33, 16][c % 8];
                let kind = next() % 9;
                (0..len)
                    .map(|_| {
                        let u = next() as f32 / (1u64 << 31) as f32 - 1.0;
                        match kind {
                            0 => u,
                            1 if next() % 13 == 0 => u * 40.0,
                            1 => u * 0.1,
                            2 => u.abs() + 0.01,
                            3 => -(u.abs()),
                            4 => (u * 16.0).round() * 0.5 + 0.25,
                            5 => u * 1e-40,
                            6 => u * 3e38,
                            7 if next() % 17 == 0 => f32::NAN,
                            8 if next() % 5 == 0 => 0.0,
                            _ => u * 0.02,
                        }
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn search_gives_the_bytes_of_the_reference_search() {
        for (i, v) in random_groups(7, 800).iter().enumerate() {
            let h: Vec<f32> = (0..v.len()).map(|j| ((i + j) % 11) as f32 * 0.7).collect();
            for grid in [Q4Grid::Asymmetric, Q4Grid::Symmetric] {
                for f16 in [true, false] {
                    for h in [None, Some(h.as_slice()), Some(&h[..v.len() / 2])] {
                        let (a, b) = (
                            quantize_group_weighted(v, h, f16, grid),
                            reference_search(v, h, f16, grid),
                        );
                        assert_eq!(
                            (a.0.to_bits(), a.1, &a.2),
                            (b.0.to_bits(), b.1, &b.2),
                            "group {i} {v:?} {grid:?} f16={f16} h={h:?}"
                        );
                    }
                }
            }
        }
    }

    /// The packed blob does not depend on the thread count, and is what quantizing each
    /// group with the reference search and packing gives.
    #[test]
    fn packing_is_the_same_on_any_thread_count() {
        let (k, n, group, nr) = (100, 37, 32, 16);
        let w: Vec<f32> = random_groups(3, k * n / 32 + 1)
            .into_iter()
            .flatten()
            .map(|x| {
                if x.is_finite() {
                    x.clamp(-4.0, 4.0)
                } else {
                    1.0
                }
            })
            .take(k * n)
            .collect();
        let moments: Vec<f32> = (0..k).map(|p| 0.5 + (p % 5) as f32).collect();
        for moments in [None, Some(moments.as_slice())] {
            let groups = k.div_ceil(group);
            let mut q = vec![0u8; k * n];
            let (mut scales, mut zps) = (vec![0.0f32; groups * n], vec![8u8; groups * n]);
            for gi in 0..groups {
                let rows = gi * group..k.min((gi + 1) * group);
                for j in 0..n {
                    let vals: Vec<f32> = rows.clone().map(|p| w[p * n + j]).collect();
                    let h = moments.and_then(|m| m.get(rows.clone()));
                    let (s, zp, levels) = reference_search(&vals, h, true, Q4Grid::Asymmetric);
                    (scales[gi * n + j], zps[gi * n + j]) = (s, zp);
                    for (p, l) in rows.clone().zip(levels) {
                        q[p * n + j] = l;
                    }
                }
            }
            let mut expect = vec![0u8; qgemm::packed_q4_bytes(k, n, group, nr, true, true)];
            qgemm::pack_q4(&q, &scales, Some(&zps), k, n, group, nr, true, &mut expect);
            for threads in [1, 2, 3, 4, 8] {
                let got = pack_weight_threads(
                    &w,
                    (k, n, group, nr),
                    (true, Q4Grid::Asymmetric),
                    moments,
                    threads,
                );
                assert!(
                    got == expect,
                    "{threads} threads, moments {}",
                    moments.is_some()
                );
            }
        }
    }

    #[test]
    fn explicit_zero_points_shift_the_grid() {
        // All q = 5, zero point 3, scale 0.5: every weight is 1.0.
        let (k, n, group, nr) = (6, 3, 4, 4);
        let q = vec![5u8; k * n];
        let scales = vec![0.5f32; 2 * n];
        let zps = vec![3u8; 2 * n];
        let mut bytes = vec![0u8; qgemm::packed_q4_bytes(k, n, group, nr, false, true)];
        qgemm::pack_q4(&q, &scales, Some(&zps), k, n, group, nr, false, &mut bytes);
        let op = layer(false, true);
        let xt = Tensor::from_f32s(vec![1, 6], vec![1.0, 2.0, 3.0, -1.0, 0.5, 0.5]).unwrap();
        let wt = blob(bytes);
        let ty = op.infer(&[&xt.ty, &wt.ty]).unwrap();
        let got = op.eval(&[&xt, &wt], &ty).unwrap()[0].data.to_f64_vec();
        assert_eq!(got, vec![6.0, 6.0, 6.0]);
        let short = blob(vec![0; 3]);
        assert!(op.infer(&[&xt.ty, &short.ty]).is_err());
    }
}
