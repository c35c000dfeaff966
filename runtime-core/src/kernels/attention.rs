//! Fused scaled-dot-product attention: `out = softmax(Q · Kᵀ + mask) · V` per head, a tile
//! of query rows at a time, so only `rows × kv` scores are ever materialised (in `scratch`).
//! Both products run the blocked GEMM with the key and value matrices read in place, except
//! for decode-shaped calls (keys stored as rows, or only the first `live` key slots attended),
//! which run direct loops over the live slots. With keys as rows and a head size of 8 those
//! loops have explicit ISA variants (`x86_avx512`, `x86_avx2`, `aarch64_neon`, chosen at
//! compile time; `reference` is the portable oracle of their shared test battery) that score
//! several key slots per step — each slot's 8 products summed by a shuffle/add tree across
//! the vector, never a transposed copy — and accumulate the weighted values of several slots
//! into independent registers.
use super::gemm::{self, Activation, BMatrix, Gemm, Tiles};
use super::softmax::{exp_sub_sum_in_place, row_max};

/// How the key operand is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keys {
    /// `[heads, d, skv]` (keys already transposed).
    Transposed,
    /// `[heads, skv, d]` (one key per row, as a KV cache holds them).
    Rows,
}

/// Geometry of one call. `q` is `[heads, sq, d]`, the keys `[heads, d, skv]` or
/// `[heads, skv, d]` (see [`Keys`]), `v` `[heads, skv, dv]`, `out` `[heads, sq, dv]`, all contiguous; the mask's element
/// `(h, i, j)` is at `h·mask_head_stride + i·mask_row_stride + j`.
#[derive(Clone, Copy, Debug)]
pub struct AttentionSpec {
    pub heads: usize,
    pub sq: usize,
    pub skv: usize,
    pub d: usize,
    pub dv: usize,
    pub mask_head_stride: usize,
    pub mask_row_stride: usize,
    /// Factor applied to `Q · Kᵀ` before the mask is added.
    pub scale: f32,
    /// Replace NaN probabilities (rows masked entirely with `-inf`) by 0.
    pub nan_to_zero: bool,
    /// Query rows per tile; `scratch` holds `rows × skv` scores.
    pub rows: usize,
    pub tiles: Tiles,
    pub keys: Keys,
}

/// The number of leading key slots a step attends to when slot `j` is unmasked iff
/// `j < position + offset`: `min(position + offset, skv)`, or all `skv` slots when none is
/// unmasked (then every slot carries the same mask and all must be kept).
#[inline]
pub fn live_slots(position: i64, offset: i64, skv: usize) -> usize {
    let n = position.saturating_add(offset);
    if n <= 0 {
        skv
    } else {
        usize::try_from(n).map_or(skv, |n| n.min(skv))
    }
}

/// Fused attention over the first `live` key slots (clamped to `1..=skv`); see
/// [`AttentionSpec`]. The slots past `live` are skipped: the caller guarantees their
/// probabilities would be zero (masked with a large negative number).
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &[f32],
    k: &[f32],
    mask: Option<&[f32]>,
    v: &[f32],
    out: &mut [f32],
    scratch: &mut [f32],
    s: &AttentionSpec,
    live: usize,
) {
    let live = live.clamp(1, s.skv.max(1));
    if s.keys == Keys::Rows || live < s.skv {
        direct(q, k, mask, v, out, scratch, s, live);
        return;
    }
    let kt = k;
    let (sq, skv, d, dv) = (s.sq, s.skv, s.d, s.dv);
    let rows = s.rows.clamp(1, sq.max(1));
    let nr = gemm::native_nr();
    let plain = |m, k, n| Gemm {
        m,
        k,
        n,
        lda: k,
        ldc: n,
        bias: None,
        activation: Activation::None,
        tiles: s.tiles,
    };
    for h in 0..s.heads {
        let kt_h = BMatrix::row_major(&kt[h * d * skv..(h + 1) * d * skv], skv, nr);
        let v_h = BMatrix::row_major(&v[h * skv * dv..(h + 1) * skv * dv], dv, nr);
        let mut r0 = 0;
        while r0 < sq {
            let m = rows.min(sq - r0);
            let scores = &mut scratch[..m * skv];
            let q_rows = &q[(h * sq + r0) * d..(h * sq + r0 + m) * d];
            gemm::gemm(q_rows, kt_h, scores, &plain(m, d, skv));
            for (i, row) in scores.chunks_exact_mut(skv.max(1)).enumerate() {
                if let Some(mask) = mask {
                    let at = h * s.mask_head_stride + (r0 + i) * s.mask_row_stride;
                    for (x, &b) in row.iter_mut().zip(&mask[at..at + skv]) {
                        *x = *x * s.scale + b;
                    }
                } else if s.scale != 1.0 {
                    for x in row.iter_mut() {
                        *x *= s.scale;
                    }
                }
                let max = row_max(row);
                let sum = exp_sub_sum_in_place(row, max);
                let scale = 1.0 / sum;
                for x in row.iter_mut() {
                    *x *= scale;
                }
                if s.nan_to_zero {
                    for x in row.iter_mut() {
                        if x.is_nan() {
                            *x = 0.0;
                        }
                    }
                }
            }
            let o = &mut out[(h * sq + r0) * dv..(h * sq + r0 + m) * dv];
            gemm::gemm(scores, v_h, o, &plain(m, skv, dv));
            r0 += m;
        }
    }
}

/// One query row at a time with plain loops over the first `live` slots: for the small
/// heads and few query rows of a decode step, where the GEMM's blocking costs more than it
/// saves. `scratch` holds the row's `live` scores. Keys stored as rows with a head size of
/// 8, 16, 32 or 64 take a path specialised to that size.
#[allow(clippy::too_many_arguments)]
fn direct(
    q: &[f32],
    k: &[f32],
    mask: Option<&[f32]>,
    v: &[f32],
    out: &mut [f32],
    scratch: &mut [f32],
    s: &AttentionSpec,
    live: usize,
) {
    let (sq, skv, d, dv) = (s.sq, s.skv, s.d, s.dv);
    for h in 0..s.heads {
        let k_h = &k[h * skv * d..(h + 1) * skv * d];
        let v_h = &v[h * skv * dv..(h + 1) * skv * dv];
        for i in 0..sq {
            let q_i = &q[(h * sq + i) * d..(h * sq + i + 1) * d];
            let row = &mut scratch[..live];
            let bias = mask.map(|m| {
                let at = h * s.mask_head_stride + i * s.mask_row_stride;
                &m[at..at + live]
            });
            let max = match (s.keys, d) {
                (Keys::Rows, 8) => scores_d8(q_i, k_h, row, s.scale, bias),
                (keys, _) => {
                    match (keys, d) {
                        (Keys::Rows, 16) => scores_rows::<16>(q_i, k_h, row),
                        (Keys::Rows, 32) => scores_rows::<32>(q_i, k_h, row),
                        (Keys::Rows, 64) => scores_rows::<64>(q_i, k_h, row),
                        (Keys::Rows, _) => {
                            for (x, k_j) in row.iter_mut().zip(k_h.chunks_exact(d.max(1))) {
                                *x = q_i.iter().zip(k_j).map(|(a, b)| a * b).sum();
                            }
                        }
                        (Keys::Transposed, _) => {
                            row.fill(0.0);
                            for (t, &qt) in q_i.iter().enumerate() {
                                for (x, &kv) in row.iter_mut().zip(&k_h[t * skv..t * skv + live]) {
                                    *x += qt * kv;
                                }
                            }
                        }
                    }
                    scale_bias_max(row, s.scale, bias)
                }
            };
            let o = &mut out[(h * sq + i) * dv..(h * sq + i + 1) * dv];
            let inv = if dv == 8 {
                softmax_weighted_sum_d8(row, max, v_h, o)
            } else {
                let inv = 1.0 / exp_sub_sum_in_place(row, max);
                match dv {
                    16 => weighted_sum::<16>(row, inv, v_h, o),
                    32 => weighted_sum::<32>(row, inv, v_h, o),
                    64 => weighted_sum::<64>(row, inv, v_h, o),
                    _ => {
                        o.fill(0.0);
                        for (&p, v_j) in row.iter().zip(v_h.chunks_exact(dv.max(1))) {
                            for (o, &x) in o.iter_mut().zip(v_j) {
                                *o += p * inv * x;
                            }
                        }
                    }
                }
                inv
            };
            if s.nan_to_zero && inv.is_nan() {
                o.fill(0.0);
            }
        }
    }
}

/// `row[j] = q · k_j` for the first `row.len()` keys of `k` (rows of `D`), summed in the
/// order of the reference GEMM (so fusing does not change the rounding).
#[inline(always)]
fn scores_rows<const D: usize>(q: &[f32], k: &[f32], row: &mut [f32]) {
    let Ok(q) = <&[f32; D]>::try_from(q) else {
        return;
    };
    for (x, k_j) in row.iter_mut().zip(k.chunks_exact(D)) {
        let mut acc = 0.0f32;
        for (&a, &b) in q.iter().zip(k_j) {
            acc += a * b;
        }
        *x = acc;
    }
}

/// `o = Σ_j (p_j · inv) · v_j` over the first `p.len()` rows of `v` (rows of `DV`).
#[inline(always)]
fn weighted_sum<const DV: usize>(p: &[f32], inv: f32, v: &[f32], o: &mut [f32]) {
    let mut acc = [0.0f32; DV];
    for (&p, v_j) in p.iter().zip(v.chunks_exact(DV)) {
        let w = p * inv;
        for (a, &x) in acc.iter_mut().zip(v_j) {
            *a += w * x;
        }
    }
    o.copy_from_slice(&acc);
}

/// `row[j] = row[j] · scale (+ bias[j])`; returns the row's maximum (NaN-ignoring).
#[inline]
fn scale_bias_max(row: &mut [f32], scale: f32, bias: Option<&[f32]>) -> f32 {
    match bias {
        Some(bias) => {
            for (x, &b) in row.iter_mut().zip(bias) {
                *x = *x * scale + b;
            }
        }
        None if scale != 1.0 => {
            for x in row.iter_mut() {
                *x *= scale;
            }
        }
        None => {}
    }
    row_max(row)
}

/// The frame of a head-size-8 score loop that scores `B` key slots per step: `step` gets the
/// `8·B` values of `B` keys and fills their `B` scores; a tail of fewer than `B` slots runs
/// the reference loop; then the scale, the bias and the maximum as [`scale_bias_max`].
#[inline(always)]
fn scores_blocked<const B: usize>(
    q: &[f32],
    k: &[f32],
    row: &mut [f32],
    scale: f32,
    bias: Option<&[f32]>,
    mut step: impl FnMut(&[f32], &mut [f32]),
) -> f32 {
    let full = row.len() / B * B;
    for (kb, rb) in k.chunks_exact(8 * B).zip(row[..full].chunks_exact_mut(B)) {
        step(kb, rb);
    }
    scores_rows::<8>(q, &k[8 * full..], &mut row[full..]);
    scale_bias_max(row, scale, bias)
}

/// `row[j] = (q · k_j) · scale (+ bias[j])` over the first `row.len()` key rows of `k` (head
/// size 8, `q.len() == 8`, `bias` at least as long as `row`), by the variant compiled in;
/// returns the row's maximum.
#[inline]
fn scores_d8(q: &[f32], k: &[f32], row: &mut [f32], scale: f32, bias: Option<&[f32]>) -> f32 {
    assert!(q.len() == 8 && k.len() >= row.len() * 8);
    assert!(bias.is_none_or(|b| b.len() >= row.len()));
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
    // SAFETY: this code is compiled with AVX-512F enabled, so the CPU running it has it.
    unsafe {
        return x86_avx512::scores_d8(q, k, row, scale, bias);
    }
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma",
        not(target_feature = "avx512f")
    ))]
    // SAFETY: this code is compiled with AVX2 and FMA enabled, so the CPU running it has them.
    unsafe {
        return x86_avx2::scores_d8(q, k, row, scale, bias);
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    return aarch64_neon::scores_d8(q, k, row, scale, bias);
    #[cfg(not(any(
        all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ),
        all(target_arch = "x86_64", target_feature = "avx512f"),
        all(target_arch = "aarch64", target_feature = "neon")
    )))]
    reference::scores_d8(q, k, row, scale, bias)
}

/// `o = Σ_j (p_j · inv) · v_j` over the first `p.len()` value rows of `v` (8 wide,
/// `o.len() == 8`), by the variant compiled in.
#[inline]
#[cfg_attr(
    all(target_arch = "x86_64", target_feature = "avx512f"),
    allow(dead_code)
)]
fn weighted_sum_d8(p: &[f32], inv: f32, v: &[f32], o: &mut [f32]) {
    assert!(o.len() == 8 && v.len() >= p.len() * 8);
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
    // SAFETY: this code is compiled with AVX-512F enabled, so the CPU running it has it.
    unsafe {
        x86_avx512::weighted_sum_d8(p, inv, v, o)
    }
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma",
        not(target_feature = "avx512f")
    ))]
    // SAFETY: this code is compiled with AVX2 and FMA enabled, so the CPU running it has them.
    unsafe {
        x86_avx2::weighted_sum_d8(p, inv, v, o)
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    aarch64_neon::weighted_sum_d8(p, inv, v, o);
    #[cfg(not(any(
        all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ),
        all(target_arch = "x86_64", target_feature = "avx512f"),
        all(target_arch = "aarch64", target_feature = "neon")
    )))]
    reference::weighted_sum_d8(p, inv, v, o);
}

/// `o = Σ_j exp(row_j − max) · v_j / Σ_j exp(row_j − max)` over the first `row.len()`
/// value rows of `v` (8 wide, `o.len() == 8`); returns `1 / Σ_j exp(row_j − max)` (NaN when
/// every score is `-inf`). `row` holds scores on entry and is scratch afterwards. The
/// AVX-512F build runs one fused pass with its own FMA exponential; the others the row
/// kernels' `exp_sub_sum_in_place` and then [`weighted_sum_d8`].
#[inline]
fn softmax_weighted_sum_d8(row: &mut [f32], max: f32, v: &[f32], o: &mut [f32]) -> f32 {
    assert!(o.len() == 8 && v.len() >= row.len() * 8);
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
    // SAFETY: this code is compiled with AVX-512F enabled, so the CPU running it has it.
    unsafe {
        x86_avx512::softmax_weighted_sum_d8(row, max, v, o)
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx512f")))]
    {
        let inv = 1.0 / exp_sub_sum_in_place(row, max);
        weighted_sum_d8(row, inv, v, o);
        inv
    }
}

/// The portable head-size-8 decode loops: one serial sum per slot, in the order of the
/// reference GEMM. The oracle of the variants' test battery.
pub mod reference {
    /// See [`super::scores_d8`].
    pub fn scores_d8(
        q: &[f32],
        k: &[f32],
        row: &mut [f32],
        scale: f32,
        bias: Option<&[f32]>,
    ) -> f32 {
        super::scores_rows::<8>(q, k, row);
        super::scale_bias_max(row, scale, bias)
    }

    /// See [`super::weighted_sum_d8`].
    pub fn weighted_sum_d8(p: &[f32], inv: f32, v: &[f32], o: &mut [f32]) {
        super::weighted_sum::<8>(p, inv, v, o);
    }

    /// See [`super::softmax_weighted_sum_d8`].
    pub fn softmax_weighted_sum_d8(row: &mut [f32], max: f32, v: &[f32], o: &mut [f32]) -> f32 {
        let inv = 1.0 / crate::kernels::rowwise::reference::exp_sub_sum_in_place(row, max);
        weighted_sum_d8(row, inv, v, o);
        inv
    }
}

/// AVX-512F: 16 key slots per step (two slots of 8 per register); the 16 × 8 products are
/// summed by a three-level tree of even/odd lane permutes and adds into one register of 16
/// scores, scaled, biased by the mask and folded into a running maximum in registers. Tails
/// run the same step with masked loads and stores.
#[cfg(target_arch = "x86_64")]
pub mod x86_avx512 {
    use core::arch::x86_64::*;

    const EVEN: [i32; 16] = [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30];
    const ODD: [i32; 16] = [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31];

    /// Mask of the lanes `16·i ..` of a block whose first `len` elements are valid.
    #[inline(always)]
    fn lanes(len: usize, i: usize) -> __mmask16 {
        let valid = len.saturating_sub(16 * i).min(16);
        ((1u32 << valid) - 1) as __mmask16
    }

    /// See [`super::scores_d8`].
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `q.len() == 8` and `k.len() >= 8 · row.len()`.
    #[target_feature(enable = "avx512f")]
    // SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
    pub unsafe fn scores_d8(
        q: &[f32],
        k: &[f32],
        row: &mut [f32],
        scale: f32,
        bias: Option<&[f32]>,
    ) -> f32 {
        assert!(q.len() == 8 && k.len() >= row.len() * 8);
        assert!(bias.is_none_or(|b| b.len() >= row.len()));
        let n = row.len();
        // SAFETY: block `j0` reads `k[8·j0 .. 8·(j0 + len)]` and `bias[j0 .. j0 + len]` and
        // writes `row[j0 .. j0 + len]`, `j0 + len <= n` (masked lanes are neither read nor
        // written; full blocks, `len == 16`, read and write all their lanes).
        unsafe {
            let scale = _mm512_set1_ps(scale);
            let mut max = _mm512_set1_ps(f32::NEG_INFINITY);
            // The even and the odd dimensions of `q`, four times over.
            let qe = _mm512_set4_ps(q[6], q[4], q[2], q[0]);
            let qo = _mm512_set4_ps(q[7], q[5], q[3], q[1]);
            let even = _mm512_loadu_si512(EVEN.as_ptr().cast());
            let odd = _mm512_loadu_si512(ODD.as_ptr().cast());
            let pair = |a: __m512, b: __m512| {
                _mm512_add_ps(
                    _mm512_permutex2var_ps(a, even, b),
                    _mm512_permutex2var_ps(a, odd, b),
                )
            };
            // 16 slots whose keys are `kv[0..8]` (two slots per register) into 16 scores:
            // the first level of the sum tree splits the keys (not the products) into even
            // and odd dimensions, so it is one multiply and one FMA per pair of registers.
            let block = |kv: [__m512; 8]| {
                let a: [__m512; 4] = core::array::from_fn(|i| {
                    let (x, y) = (kv[2 * i], kv[2 * i + 1]);
                    let e = _mm512_mul_ps(_mm512_permutex2var_ps(x, even, y), qe);
                    _mm512_fmadd_ps(_mm512_permutex2var_ps(x, odd, y), qo, e)
                });
                let b = [pair(a[0], a[1]), pair(a[2], a[3])];
                _mm512_mul_ps(pair(b[0], b[1]), scale)
            };
            let full = n / 16 * 16;
            let mut j0 = 0;
            while j0 < full {
                let kp = k.as_ptr().add(8 * j0);
                let mut s = block(core::array::from_fn(|i| _mm512_loadu_ps(kp.add(16 * i))));
                if let Some(bias) = bias {
                    s = _mm512_add_ps(s, _mm512_loadu_ps(bias.as_ptr().add(j0)));
                }
                _mm512_storeu_ps(row.as_mut_ptr().add(j0), s);
                // `max(s, m)` keeps `m` where `s` is NaN (NaN-ignoring, like `row_max`).
                max = _mm512_max_ps(s, max);
                j0 += 16;
            }
            if j0 < n {
                let len = n - j0;
                let kp = k.as_ptr().add(8 * j0);
                let mut s = block(core::array::from_fn(|i| {
                    _mm512_maskz_loadu_ps(lanes(8 * len, i), kp.add(16 * i))
                }));
                let live = lanes(len, 0);
                if let Some(bias) = bias {
                    s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(live, bias.as_ptr().add(j0)));
                }
                _mm512_mask_storeu_ps(row.as_mut_ptr().add(j0), live, s);
                max = _mm512_mask_max_ps(max, live, s, max);
            }
            _mm512_reduce_max_ps(max)
        }
    }

    /// See [`super::weighted_sum_d8`].
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `o.len() == 8` and `v.len() >= 8 · p.len()`.
    #[target_feature(enable = "avx512f")]
    // SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
    pub unsafe fn weighted_sum_d8(p: &[f32], inv: f32, v: &[f32], o: &mut [f32]) {
        assert!(o.len() == 8 && v.len() >= p.len() * 8);
        let inv = _mm512_set1_ps(inv);
        // SAFETY: `weights` reads `p[j0 .. j0 + 16]` for full blocks, the `mask` lanes of
        // it for the tail (`j0 + len <= p.len()`); `o` has 8 elements.
        unsafe {
            let r = spread_sum(v, p.len(), |j0, mask| {
                _mm512_mul_ps(load(p.as_ptr().add(j0), mask), inv)
            });
            _mm256_storeu_ps(o.as_mut_ptr(), r);
        }
    }

    /// `_mm512_loadu_ps`, or with `Some(mask)` only the mask's lanes (the others 0).
    ///
    /// # Safety
    /// AVX-512F; the 16 elements at `p` (the mask's lanes with a mask) are readable.
    #[inline]
    #[target_feature(enable = "avx512f")]
    // SAFETY: an unsafe fn; callers uphold the `# Safety` contract above.
    unsafe fn load(p: *const f32, mask: Option<__mmask16>) -> __m512 {
        // SAFETY: the caller's contract.
        unsafe {
            match mask {
                None => _mm512_loadu_ps(p),
                Some(m) => _mm512_maskz_loadu_ps(m, p),
            }
        }
    }

    /// `Σ_j w_j · v_j` over the first `n` value rows of `v` (8 wide), 16 slots at a time:
    /// `weights(j0, mask)` gives slots `j0 .. j0 + 16`'s weights (`mask`: `None` for a full
    /// block, else the tail's lanes, whose weights past it must be 0); each pair of slots'
    /// weights is spread over a register of two value rows and summed into independent
    /// accumulators.
    ///
    /// # Safety
    /// AVX-512F; `v.len() >= 8 · n`; `weights` is safe to call for those blocks.
    #[inline]
    #[target_feature(enable = "avx512f")]
    // SAFETY: an unsafe fn; callers uphold the `# Safety` contract above.
    unsafe fn spread_sum(
        v: &[f32],
        n: usize,
        mut weights: impl FnMut(usize, Option<__mmask16>) -> __m512,
    ) -> __m256 {
        // Lanes 0..8 take weight 2i, lanes 8..16 weight 2i + 1.
        let spread: [__m512i; 8] = core::array::from_fn(|i| {
            let (a, b) = (2 * i as i32, 2 * i as i32 + 1);
            _mm512_setr_epi32(a, a, a, a, a, a, a, a, b, b, b, b, b, b, b, b)
        });
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut j0 = 0;
        while j0 < n {
            let len = (n - j0).min(16);
            let mask = (len < 16).then(|| lanes(len, 0));
            let w = weights(j0, mask);
            // SAFETY: block `j0` reads `v[8·j0 .. 8·(j0 + len)]`, `j0 + len <= n` (masked
            // lanes are not read).
            let vp = unsafe { v.as_ptr().add(8 * j0) };
            for (i, s) in spread.iter().enumerate() {
                let m = mask.map(|_| lanes(8 * len, i));
                // SAFETY: see above.
                let x = unsafe { load(vp.add(16 * i), m) };
                acc[i % 4] = _mm512_fmadd_ps(_mm512_permutexvar_ps(*s, w), x, acc[i % 4]);
            }
            j0 += len;
        }
        let s = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
        // The high half via the f64 view: `vextractf64x4` is AVX-512F, `vextractf32x8` DQ.
        let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(s)));
        _mm256_add_ps(_mm512_castps512_ps256(s), hi)
    }

    /// `exp(x)` as [`crate::math::fast_exp`] evaluates it (the same reduction and polynomial),
    /// with fused multiply-adds: within a few ulp of it, not bit-identical.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn exp_fma(x: __m512) -> __m512 {
        use crate::math::{EXP_LN2, EXP_MAX, EXP_MIN, EXP_POLY, EXP_ROUND};
        // `max(lo, x)` then `min(hi, ·)`: a NaN `x` passes through both.
        let x = _mm512_max_ps(_mm512_set1_ps(EXP_MIN), x);
        let x = _mm512_min_ps(_mm512_set1_ps(EXP_MAX), x);
        let round = _mm512_set1_ps(EXP_ROUND);
        let t = _mm512_fmadd_ps(x, _mm512_set1_ps(core::f32::consts::LOG2_E), round);
        let n = _mm512_sub_ps(t, round);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2[0]), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2[1]), r);
        let mut p = _mm512_set1_ps(EXP_POLY[0]);
        for &c in &EXP_POLY[1..] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        let y = _mm512_add_ps(
            _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r),
            _mm512_set1_ps(1.0),
        );
        // 2^n: `t` carries `n` in its low mantissa bits.
        let e = _mm512_add_epi32(
            _mm512_castps_si512(t),
            _mm512_set1_epi32(127i32.wrapping_sub(0x4B40_0000)),
        );
        _mm512_mul_ps(y, _mm512_castsi512_ps(_mm512_slli_epi32::<23>(e)))
    }

    /// See [`super::softmax_weighted_sum_d8`]: one pass over 16 slots at a time, the
    /// exponentials summed and spread over the value registers as [`weighted_sum_d8`] does.
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `o.len() == 8` and `v.len() >= 8 · row.len()`.
    #[target_feature(enable = "avx512f")]
    // SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
    pub unsafe fn softmax_weighted_sum_d8(
        row: &mut [f32],
        max: f32,
        v: &[f32],
        o: &mut [f32],
    ) -> f32 {
        assert!(o.len() == 8 && v.len() >= row.len() * 8);
        let m = _mm512_set1_ps(max);
        let mut sum = _mm512_setzero_ps();
        // SAFETY: `weights` reads `row[j0 .. j0 + 16]` for full blocks, the `mask` lanes of
        // it for the tail (`j0 + len <= row.len()`); `o` has 8 elements.
        unsafe {
            let r = spread_sum(v, row.len(), |j0, mask| {
                let e = exp_fma(_mm512_sub_ps(load(row.as_ptr().add(j0), mask), m));
                let e = mask.map_or(e, |mask| _mm512_maskz_mov_ps(mask, e));
                sum = _mm512_add_ps(sum, e);
                e
            });
            let inv = 1.0 / _mm512_reduce_add_ps(sum);
            _mm256_storeu_ps(o.as_mut_ptr(), _mm256_mul_ps(r, _mm256_set1_ps(inv)));
            inv
        }
    }
}

/// AVX2+FMA: 8 key slots per step (one slot per register), their products summed by two
/// levels of horizontal adds and one exchange of 128-bit halves into one register of 8
/// scores. Tails of fewer than 8 slots run the reference loop.
#[cfg(target_arch = "x86_64")]
pub mod x86_avx2 {
    use core::arch::x86_64::*;

    /// See [`super::scores_d8`].
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; `q.len() == 8` and `k.len() >= 8 · row.len()`.
    #[target_feature(enable = "avx2,fma")]
    // SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
    pub unsafe fn scores_d8(
        q: &[f32],
        k: &[f32],
        row: &mut [f32],
        scale: f32,
        bias: Option<&[f32]>,
    ) -> f32 {
        assert!(q.len() == 8 && k.len() >= row.len() * 8);
        // SAFETY: AVX is enabled (the caller's contract) and `q` has 8 elements.
        let qv = unsafe { _mm256_loadu_ps(q.as_ptr()) };
        super::scores_blocked::<8>(q, k, row, scale, bias, |kb, rb| {
            // SAFETY: AVX2 and FMA are enabled (the caller's contract); `kb` holds the 64
            // values of 8 keys, `rb` their 8 scores.
            unsafe {
                let p: [__m256; 8] = core::array::from_fn(|i| {
                    _mm256_mul_ps(_mm256_loadu_ps(kb.as_ptr().add(8 * i)), qv)
                });
                let s0123 = _mm256_hadd_ps(_mm256_hadd_ps(p[0], p[1]), _mm256_hadd_ps(p[2], p[3]));
                let s4567 = _mm256_hadd_ps(_mm256_hadd_ps(p[4], p[5]), _mm256_hadd_ps(p[6], p[7]));
                let s = _mm256_add_ps(
                    _mm256_permute2f128_ps::<0x20>(s0123, s4567),
                    _mm256_permute2f128_ps::<0x31>(s0123, s4567),
                );
                _mm256_storeu_ps(rb.as_mut_ptr(), s);
            }
        })
    }

    /// See [`super::weighted_sum_d8`]: four slots per step into independent accumulators.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; `o.len() == 8` and `v.len() >= 8 · p.len()`.
    #[target_feature(enable = "avx2,fma")]
    // SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
    pub unsafe fn weighted_sum_d8(p: &[f32], inv: f32, v: &[f32], o: &mut [f32]) {
        assert!(o.len() == 8 && v.len() >= p.len() * 8);
        // SAFETY: step `j` reads `v[8·j .. 8·j + 8]`, `j < p.len()`; the store writes `o[0..8]`.
        unsafe {
            let slot = |j: usize, acc: __m256| {
                let x = _mm256_loadu_ps(v.as_ptr().add(8 * j));
                _mm256_fmadd_ps(_mm256_set1_ps(p[j] * inv), x, acc)
            };
            let (mut a0, mut a1, mut a2, mut a3) = (
                _mm256_setzero_ps(),
                _mm256_setzero_ps(),
                _mm256_setzero_ps(),
                _mm256_setzero_ps(),
            );
            let n = p.len();
            let mut j = 0;
            while j + 4 <= n {
                a0 = slot(j, a0);
                a1 = slot(j + 1, a1);
                a2 = slot(j + 2, a2);
                a3 = slot(j + 3, a3);
                j += 4;
            }
            while j < n {
                a0 = slot(j, a0);
                j += 1;
            }
            let s = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
            _mm256_storeu_ps(o.as_mut_ptr(), s);
        }
    }
}

/// NEON (Armv8.0, so the Cortex-A72 build runs it): 4 key slots per step, each slot's two
/// 4-lane products fused into one register, the 4 registers reduced by two levels of
/// pairwise adds into 4 scores. Tails of fewer than 4 slots run the reference loop.
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
pub mod aarch64_neon {
    use core::arch::aarch64::*;

    /// See [`super::scores_d8`].
    pub fn scores_d8(
        q: &[f32],
        k: &[f32],
        row: &mut [f32],
        scale: f32,
        bias: Option<&[f32]>,
    ) -> f32 {
        assert!(q.len() == 8 && k.len() >= row.len() * 8);
        // SAFETY: NEON is enabled at compile time and `q` has 8 elements.
        let (q0, q1) = unsafe { (vld1q_f32(q.as_ptr()), vld1q_f32(q.as_ptr().add(4))) };
        super::scores_blocked::<4>(q, k, row, scale, bias, |kb, rb| {
            // SAFETY: NEON is enabled at compile time; `kb` holds the 32 values of 4 keys,
            // `rb` their 4 scores.
            unsafe {
                let kp = kb.as_ptr();
                let s: [float32x4_t; 4] = core::array::from_fn(|i| {
                    let lo = vmulq_f32(vld1q_f32(kp.add(8 * i)), q0);
                    vfmaq_f32(lo, vld1q_f32(kp.add(8 * i + 4)), q1)
                });
                let r = vpaddq_f32(vpaddq_f32(s[0], s[1]), vpaddq_f32(s[2], s[3]));
                vst1q_f32(rb.as_mut_ptr(), r);
            }
        })
    }

    /// See [`super::weighted_sum_d8`]: two slots per step into independent accumulators.
    pub fn weighted_sum_d8(p: &[f32], inv: f32, v: &[f32], o: &mut [f32]) {
        assert!(o.len() == 8 && v.len() >= p.len() * 8);
        let n = p.len();
        // SAFETY: NEON is enabled at compile time; step `j` reads `v[8·j .. 8·j + 8]`,
        // `j < n`; the stores write `o[0..8]`.
        unsafe {
            let mut acc = [vdupq_n_f32(0.0); 4];
            let vp = v.as_ptr();
            let mut j = 0;
            while j + 2 <= n {
                let (w0, w1) = (vdupq_n_f32(p[j] * inv), vdupq_n_f32(p[j + 1] * inv));
                acc[0] = vfmaq_f32(acc[0], w0, vld1q_f32(vp.add(8 * j)));
                acc[1] = vfmaq_f32(acc[1], w0, vld1q_f32(vp.add(8 * j + 4)));
                acc[2] = vfmaq_f32(acc[2], w1, vld1q_f32(vp.add(8 * j + 8)));
                acc[3] = vfmaq_f32(acc[3], w1, vld1q_f32(vp.add(8 * j + 12)));
                j += 2;
            }
            if j < n {
                let w = vdupq_n_f32(p[j] * inv);
                acc[0] = vfmaq_f32(acc[0], w, vld1q_f32(vp.add(8 * j)));
                acc[1] = vfmaq_f32(acc[1], w, vld1q_f32(vp.add(8 * j + 4)));
            }
            vst1q_f32(o.as_mut_ptr(), vaddq_f32(acc[0], acc[2]));
            vst1q_f32(o.as_mut_ptr().add(4), vaddq_f32(acc[1], acc[3]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// Runs the kernel with keys in `keys` layout attending to `live` slots, the slots from
    /// `masked_from` on masked with `-1e9`, and compares with the unfused definition over all
    /// slots.
    fn check(keys: Keys, sq: usize, skv: usize, masked_from: usize, live: usize, d: usize) {
        let (heads, dv, rows) = (3, if d == 5 { 6 } else { d }, 2);
        let val = |i: usize| ((i * 7919) % 97) as f32 / 97.0 - 0.5;
        let q: Vec<f32> = (0..heads * sq * d).map(val).collect();
        let kt: Vec<f32> = (0..heads * d * skv).map(|i| val(i + 3)).collect();
        let v: Vec<f32> = (0..heads * skv * dv).map(|i| val(i + 5)).collect();
        let k_rows: Vec<f32> = (0..heads * skv * d)
            .map(|i| {
                let (h, j, t) = (i / (skv * d), i / d % skv, i % d);
                kt[(h * d + t) * skv + j]
            })
            .collect();
        // One mask row shared by every head and query.
        let mask: Vec<f32> = (0..skv)
            .map(|j| if j >= masked_from { -1e9 } else { 0.1 })
            .collect();
        let spec = AttentionSpec {
            heads,
            sq,
            skv,
            d,
            dv,
            mask_head_stride: 0,
            mask_row_stride: 0,
            scale: 0.5,
            nan_to_zero: true,
            rows,
            tiles: Tiles {
                mr: 4,
                kc: 8,
                mc: 8,
            },
            keys,
        };
        let mut out = vec![0.0; heads * sq * dv];
        let mut scratch = vec![0.0; rows.clamp(1, sq) * skv];
        let k = if keys == Keys::Rows { &k_rows } else { &kt };
        attention(&q, k, Some(&mask), &v, &mut out, &mut scratch, &spec, live);
        for h in 0..heads {
            for i in 0..sq {
                let mut p: Vec<f32> = (0..skv)
                    .map(|j| {
                        (0..d)
                            .map(|t| q[(h * sq + i) * d + t] * kt[(h * d + t) * skv + j])
                            .sum::<f32>()
                            * 0.5
                            + mask[j]
                    })
                    .collect();
                let max = p.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let sum: f32 = p
                    .iter_mut()
                    .map(|x| {
                        *x = libm::expf(*x - max);
                        *x
                    })
                    .sum();
                for c in 0..dv {
                    let want: f32 = (0..skv)
                        .map(|j| p[j] / sum * v[(h * skv + j) * dv + c])
                        .sum();
                    let got = out[(h * sq + i) * dv + c];
                    assert!(
                        (got - want).abs() < 1e-5,
                        "{keys:?} live {live} head {h} row {i} col {c}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn matches_the_unfused_ops() {
        check(Keys::Transposed, 7, 11, 9, 11, 5);
    }

    #[test]
    fn key_rows_and_live_slots_match_the_unfused_ops() {
        for keys in [Keys::Transposed, Keys::Rows] {
            for (sq, skv, masked_from, live) in [
                (1, 1, 1, 1),
                (2, 11, 4, 4),
                (2, 11, 4, 7),
                (1, 33, 20, 20),
                (7, 11, 9, 11),
                (3, 17, 17, 100),
                (3, 17, 1, 0),
            ] {
                for d in [5, 8, 16, 64] {
                    check(keys, sq, skv, masked_from, live, d);
                }
            }
        }
    }

    type Scores = fn(&[f32], &[f32], &mut [f32], f32, Option<&[f32]>) -> f32;
    type WeightedSum = fn(&[f32], f32, &[f32], &mut [f32]);

    /// The head-size-8 decode variants runnable here, the reference first.
    fn d8_variants() -> Vec<(&'static str, Scores, WeightedSum)> {
        let mut v: Vec<(&'static str, Scores, WeightedSum)> = vec![(
            "reference",
            reference::scores_d8,
            reference::weighted_sum_d8,
        )];
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                v.push((
                    "x86_avx2",
                    // SAFETY: AVX2 and FMA were detected above.
                    |q, k, r, s, b| unsafe { x86_avx2::scores_d8(q, k, r, s, b) },
                    // SAFETY: AVX2 and FMA were detected above.
                    |p, i, x, o| unsafe { x86_avx2::weighted_sum_d8(p, i, x, o) },
                ));
            }
            if std::is_x86_feature_detected!("avx512f") {
                v.push((
                    "x86_avx512",
                    // SAFETY: AVX-512F was detected above.
                    |q, k, r, s, b| unsafe { x86_avx512::scores_d8(q, k, r, s, b) },
                    // SAFETY: AVX-512F was detected above.
                    |p, i, x, o| unsafe { x86_avx512::weighted_sum_d8(p, i, x, o) },
                ));
            }
        }
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        v.push((
            "aarch64_neon",
            aarch64_neon::scores_d8,
            aarch64_neon::weighted_sum_d8,
        ));
        v
    }

    /// Every variant against the reference, for every slot count up to past two 16-slot
    /// blocks and a full 256-slot cache: the scores and weighted sums agree to rounding, and
    /// nothing past the `n` live slots is written.
    #[test]
    fn head_size_8_variants_match_the_reference() {
        let val = |i: usize, seed: usize| (((i + seed) * 7919) % 193) as f32 / 96.5 - 1.0;
        let variants = d8_variants();
        assert!(!variants.is_empty());
        for n in (0..=40).chain([63, 64, 65, 255, 256]) {
            let q: Vec<f32> = (0..8).map(|i| val(i, 1)).collect();
            // One slot more than attended, so a read or write past `n` would change a result.
            let k: Vec<f32> = (0..(n + 1) * 8).map(|i| val(i, 3)).collect();
            let v: Vec<f32> = (0..(n + 1) * 8).map(|i| val(i, 5)).collect();
            let p: Vec<f32> = (0..n).map(|i| (val(i, 7) + 1.0) / 2.0).collect();
            let inv = 1.0 / (p.iter().sum::<f32>() + 1.0);
            // A mask with -inf slots and a NaN score (which the maximum ignores).
            let bias: Vec<f32> = (0..n + 1)
                .map(|j| match j % 7 {
                    3 => f32::NEG_INFINITY,
                    5 if n > 20 && j == 12 => f32::NAN,
                    _ => val(j, 9),
                })
                .collect();
            for (scale, bias) in [(1.0, None), (0.35, None), (0.35, Some(&bias[..n]))] {
                let (mut want_s, mut want_o) = (vec![7.0; n + 1], vec![0.0; 8]);
                let want_max = reference::scores_d8(&q, &k, &mut want_s[..n], scale, bias);
                reference::weighted_sum_d8(&p, inv, &v, &mut want_o);
                for (name, scores, weighted_sum) in &variants {
                    let (mut got_s, mut got_o) = (vec![7.0; n + 1], vec![9.0; 8]);
                    let got_max = scores(&q, &k, &mut got_s[..n], scale, bias);
                    weighted_sum(&p, inv, &v, &mut got_o);
                    assert!(
                        (got_max - want_max).abs() <= 1e-5 * (1.0 + want_max.abs())
                            || got_max == want_max,
                        "{name} n {n} max: {got_max} vs {want_max}"
                    );
                    assert_eq!(
                        got_max,
                        row_max(&got_s[..n]),
                        "{name} n {n}: max of its row"
                    );
                    for (j, (g, w)) in got_s.iter().zip(&want_s).enumerate() {
                        assert!(
                            (g - w).abs() <= 1e-5 * (1.0 + w.abs())
                                || g == w
                                || (g.is_nan() && w.is_nan()),
                            "{name} n {n} score {j}: {g} vs {w}"
                        );
                    }
                    for (c, (g, w)) in got_o.iter().zip(&want_o).enumerate() {
                        assert!(
                            (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                            "{name} n {n} output {c}: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }

    type SoftmaxSum = fn(&mut [f32], f32, &[f32], &mut [f32]) -> f32;

    /// The variants of the fused exponential and weighted sum runnable here, reference first.
    fn softmax_sum_variants() -> Vec<(&'static str, SoftmaxSum)> {
        let mut v: Vec<(&'static str, SoftmaxSum)> =
            vec![("reference", reference::softmax_weighted_sum_d8)];
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx512f") {
            v.push((
                "x86_avx512",
                // SAFETY: AVX-512F was detected above.
                |r, m, x, o| unsafe { x86_avx512::softmax_weighted_sum_d8(r, m, x, o) },
            ));
        }
        v.push(("compiled-in", super::softmax_weighted_sum_d8));
        v
    }

    /// Every variant of the fused exponential and weighted sum against the reference, for
    /// the slot counts of the score battery, scores with `-inf` (masked) slots, and a row
    /// masked entirely (NaN result, which the caller zeroes).
    #[test]
    fn head_size_8_softmax_sum_variants_match_the_reference() {
        let val = |i: usize, seed: usize| (((i + seed) * 7919) % 193) as f32 / 24.0 - 4.0;
        let variants = softmax_sum_variants();
        for n in (1..=40).chain([63, 64, 65, 255, 256]) {
            let v: Vec<f32> = (0..(n + 1) * 8).map(|i| val(i, 5) / 4.0).collect();
            let scores: Vec<f32> = (0..n)
                .map(|j| {
                    if j % 7 == 3 {
                        f32::NEG_INFINITY
                    } else {
                        val(j, 9)
                    }
                })
                .collect();
            for row in [scores.clone(), vec![f32::NEG_INFINITY; n]] {
                let max = row_max(&row);
                let (mut want_row, mut want_o) = (row.clone(), vec![0.0; 8]);
                let want_inv =
                    reference::softmax_weighted_sum_d8(&mut want_row, max, &v, &mut want_o);
                for (name, f) in &variants {
                    let (mut got_row, mut got_o) = (row.clone(), vec![9.0; 8]);
                    let got_inv = f(&mut got_row, max, &v, &mut got_o);
                    if want_inv.is_nan() {
                        assert!(got_inv.is_nan(), "{name} n {n}: {got_inv} for a masked row");
                        continue;
                    }
                    assert!(
                        (got_inv - want_inv).abs() <= 1e-5 * want_inv.abs(),
                        "{name} n {n} inv: {got_inv} vs {want_inv}"
                    );
                    for (c, (g, w)) in got_o.iter().zip(&want_o).enumerate() {
                        assert!(
                            (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                            "{name} n {n} output {c}: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn live_slots_follow_the_position() {
        assert_eq!(live_slots(0, 1, 256), 1);
        assert_eq!(live_slots(9, 1, 256), 10);
        assert_eq!(live_slots(255, 1, 256), 256);
        assert_eq!(live_slots(400, 1, 256), 256);
        assert_eq!(live_slots(0, 0, 256), 256);
        assert_eq!(live_slots(-3, 1, 256), 256);
        assert_eq!(live_slots(i64::MAX, 1, 8), 8);
    }
}
