//! f32 matrix–vector product over weights packed for the GEMM (`[panel][k][nr]`): the
//! `m = 1` case of a `Linear` (one decode step), without the GEMM's blocking and `A` packing,
//! plus the epilogues a fused one-row `Linear` needs (SwiGLU over a gate/up pair, a residual
//! add). The panel widths the GEMM variants use have their own loops: 32 (AVX-512F) and 16
//! (AVX2+FMA) with FMA intrinsics, 8 with NEON FMA on aarch64, when compiled for them; else a
//! portable loop over fixed-width accumulator arrays that the compiler vectorises; other
//! widths take the generic loop. The portable loop is the reference the variants are tested
//! against.
use super::gemm::{Activation, BMatrix, epilogue};

/// The widest panel [`gemv_swiglu`] accepts (its up-projection tile lives on the stack).
pub const MAX_SWIGLU_NR: usize = 64;

fn check(x: &[f32], b: &BMatrix<'_>, y_len: usize, k: usize, n: usize) {
    assert!(b.padded && b.row_stride == b.nr && b.panel_stride == k * b.nr && b.nr > 0);
    assert!(x.len() >= k && y_len >= n && b.data.len() >= n.div_ceil(b.nr) * k * b.nr);
}

/// `y = act(x · B + bias)` for `x: [k]`, `B` a `k×n` matrix packed by
/// [`super::gemm::pack_b`] (panel width `b.nr`), `y: [n]`, `bias: [n]`.
pub fn gemv(
    x: &[f32],
    b: BMatrix<'_>,
    y: &mut [f32],
    k: usize,
    n: usize,
    bias: Option<&[f32]>,
    activation: Activation,
) {
    check(x, &b, y.len(), k, n);
    let x = &x[..k];
    for (p, out) in y[..n].chunks_mut(b.nr).enumerate() {
        panel(x, &b.data[p * k * b.nr..(p + 1) * k * b.nr], b.nr, out);
    }
    if n > 0 {
        epilogue(&mut y[..n], bias, activation);
    }
}

/// SwiGLU: `y = silu(x · G + bias_gate) ⊙ (x · U + bias_up)` for `G`, `U` two `k×n`
/// matrices packed with the same panel width (at most [`MAX_SWIGLU_NR`]); the same numbers
/// as a [`gemv`] with a SiLU epilogue times a plain one.
#[allow(clippy::too_many_arguments)]
pub fn gemv_swiglu(
    x: &[f32],
    gate: BMatrix<'_>,
    up: BMatrix<'_>,
    y: &mut [f32],
    k: usize,
    n: usize,
    bias_gate: Option<&[f32]>,
    bias_up: Option<&[f32]>,
) {
    check(x, &up, y.len(), k, n);
    assert!(up.nr <= MAX_SWIGLU_NR);
    gemv(x, gate, y, k, n, bias_gate, Activation::Silu);
    let (x, nr) = (&x[..k], up.nr);
    let mut tile = [0.0f32; MAX_SWIGLU_NR];
    for (p, out) in y[..n].chunks_mut(nr).enumerate() {
        let u = &mut tile[..out.len()];
        panel(x, &up.data[p * k * nr..(p + 1) * k * nr], nr, u);
        if let Some(bias) = bias_up {
            for (u, &b) in u.iter_mut().zip(&bias[p * nr..]) {
                *u += b;
            }
        }
        for (o, &u) in out.iter_mut().zip(u.iter()) {
            *o *= u;
        }
    }
}

/// `y += r` elementwise (a residual add after a product, `r` at least as long as `y`).
pub fn add_assign(y: &mut [f32], r: &[f32]) {
    assert!(r.len() >= y.len());
    for (o, &v) in y.iter_mut().zip(r) {
        *o += v;
    }
}

/// `y *= u` elementwise (the SwiGLU product of the many-row path, `u` at least as long as `y`).
pub fn mul_assign(y: &mut [f32], u: &[f32]) {
    assert!(u.len() >= y.len());
    for (o, &v) in y.iter_mut().zip(u) {
        *o *= v;
    }
}

/// `out = x · panel` for one `k×nr` panel (`out` may be shorter: the padded tail), by the
/// variant compiled for this width.
#[inline(always)]
fn panel(x: &[f32], panel: &[f32], nr: usize, out: &mut [f32]) {
    match nr {
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        8 => neon::panel_dot_8(x, panel, out),
        #[cfg(not(all(target_arch = "aarch64", target_feature = "neon")))]
        8 => panel_dot::<8>(x, panel, out),
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        16 => x86::panel_dot_16(x, panel, out),
        #[cfg(not(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        )))]
        16 => panel_dot::<16>(x, panel, out),
        #[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
        32 => x86::panel_dot_32(x, panel, out),
        #[cfg(not(all(target_arch = "x86_64", target_feature = "avx512f")))]
        32 => panel_dot::<32>(x, panel, out),
        nr => panel_dot_any(x, panel, nr, out),
    }
}

/// The generic-width loop (any `nr`).
fn panel_dot_any(x: &[f32], panel: &[f32], nr: usize, out: &mut [f32]) {
    out.fill(0.0);
    for (&xp, row) in x.iter().zip(panel.chunks_exact(nr)) {
        for (o, &w) in out.iter_mut().zip(row) {
            *o += xp * w;
        }
    }
}

/// `out = x · panel` for one `k×NR` panel (`out` may be shorter: the padded tail).
#[inline(always)]
fn panel_dot<const NR: usize>(x: &[f32], panel: &[f32], out: &mut [f32]) {
    let mut acc = [0.0f32; NR];
    for (&xp, row) in x.iter().zip(panel.chunks_exact(NR)) {
        for (a, &w) in acc.iter_mut().zip(row) {
            *a += xp * w;
        }
    }
    let n = out.len();
    out.copy_from_slice(&acc[..n]);
}

/// FMA variants of [`panel_dot`]: four rows of the panel per step into independent
/// accumulators.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
mod x86 {
    use core::arch::x86_64::*;

    /// `out = x · panel` for a `k×16` panel, `k = x.len()`.
    pub fn panel_dot_16(x: &[f32], panel: &[f32], out: &mut [f32]) {
        let k = x.len();
        assert!(panel.len() >= k * 16 && out.len() <= 16);
        let mut res = [0.0f32; 16];
        // SAFETY: AVX2 and FMA are enabled at compile time; every load reads
        // `panel[p * 16 .. p * 16 + 16]` for `p < k` (checked above) and `x[p]`; the stores
        // write `out[0..16]` when `out` has 16 elements, else `res`.
        unsafe {
            let mut acc = [_mm256_setzero_ps(); 8];
            let w = panel.as_ptr();
            let mut p = 0;
            while p + 4 <= k {
                for r in 0..4 {
                    let xv = _mm256_set1_ps(x[p + r]);
                    let row = w.add((p + r) * 16);
                    acc[2 * r] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(row), acc[2 * r]);
                    acc[2 * r + 1] =
                        _mm256_fmadd_ps(xv, _mm256_loadu_ps(row.add(8)), acc[2 * r + 1]);
                }
                p += 4;
            }
            while p < k {
                let xv = _mm256_set1_ps(x[p]);
                let row = w.add(p * 16);
                acc[0] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(row), acc[0]);
                acc[1] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(row.add(8)), acc[1]);
                p += 1;
            }
            let lo = _mm256_add_ps(_mm256_add_ps(acc[0], acc[2]), _mm256_add_ps(acc[4], acc[6]));
            let hi = _mm256_add_ps(_mm256_add_ps(acc[1], acc[3]), _mm256_add_ps(acc[5], acc[7]));
            if out.len() == 16 {
                _mm256_storeu_ps(out.as_mut_ptr(), lo);
                _mm256_storeu_ps(out.as_mut_ptr().add(8), hi);
                return;
            }
            _mm256_storeu_ps(res.as_mut_ptr(), lo);
            _mm256_storeu_ps(res.as_mut_ptr().add(8), hi);
        }
        let n = out.len();
        out.copy_from_slice(&res[..n]);
    }

    /// `out = x · panel` for a `k×32` panel, `k = x.len()`.
    #[cfg(target_feature = "avx512f")]
    pub fn panel_dot_32(x: &[f32], panel: &[f32], out: &mut [f32]) {
        let k = x.len();
        assert!(panel.len() >= k * 32 && out.len() <= 32);
        // SAFETY: AVX-512F is enabled at compile time; every load reads
        // `panel[p * 32 .. p * 32 + 32]` for `p < k` (checked above) and `x[p]`; the masked
        // stores write `out[..out.len()]` only.
        unsafe {
            let mut acc = [_mm512_setzero_ps(); 8];
            let w = panel.as_ptr();
            let mut p = 0;
            while p + 4 <= k {
                for r in 0..4 {
                    let xv = _mm512_set1_ps(x[p + r]);
                    let row = w.add((p + r) * 32);
                    acc[2 * r] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(row), acc[2 * r]);
                    acc[2 * r + 1] =
                        _mm512_fmadd_ps(xv, _mm512_loadu_ps(row.add(16)), acc[2 * r + 1]);
                }
                p += 4;
            }
            while p < k {
                let xv = _mm512_set1_ps(x[p]);
                let row = w.add(p * 32);
                acc[0] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(row), acc[0]);
                acc[1] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(row.add(16)), acc[1]);
                p += 1;
            }
            let lo = _mm512_add_ps(_mm512_add_ps(acc[0], acc[2]), _mm512_add_ps(acc[4], acc[6]));
            let hi = _mm512_add_ps(_mm512_add_ps(acc[1], acc[3]), _mm512_add_ps(acc[5], acc[7]));
            // Masked stores write the first `out.len()` columns straight to `out`.
            let n = out.len();
            let lanes = |from: usize| ((1u32 << n.saturating_sub(from).min(16)) - 1) as __mmask16;
            _mm512_mask_storeu_ps(out.as_mut_ptr(), lanes(0), lo);
            if n > 16 {
                _mm512_mask_storeu_ps(out.as_mut_ptr().add(16), lanes(16), hi);
            }
        }
    }
}

/// NEON variant of [`panel_dot`] for 8-wide panels (Armv8.0 FMA, so the Cortex-A72 build
/// runs it): four rows per step into independent accumulators.
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
mod neon {
    use core::arch::aarch64::*;

    /// `out = x · panel` for a `k×8` panel, `k = x.len()`.
    pub fn panel_dot_8(x: &[f32], panel: &[f32], out: &mut [f32]) {
        let k = x.len();
        assert!(panel.len() >= k * 8 && out.len() <= 8);
        let mut res = [0.0f32; 8];
        // SAFETY: NEON is enabled at compile time; every load reads
        // `panel[p * 8 .. p * 8 + 8]` for `p < k` (checked above) and `x[p]`; the stores
        // write `res[0..8]`.
        unsafe {
            let mut acc = [vdupq_n_f32(0.0); 8];
            let w = panel.as_ptr();
            let mut p = 0;
            while p + 4 <= k {
                for r in 0..4 {
                    let xv = vdupq_n_f32(x[p + r]);
                    let row = w.add((p + r) * 8);
                    acc[2 * r] = vfmaq_f32(acc[2 * r], xv, vld1q_f32(row));
                    acc[2 * r + 1] = vfmaq_f32(acc[2 * r + 1], xv, vld1q_f32(row.add(4)));
                }
                p += 4;
            }
            while p < k {
                let xv = vdupq_n_f32(x[p]);
                let row = w.add(p * 8);
                acc[0] = vfmaq_f32(acc[0], xv, vld1q_f32(row));
                acc[1] = vfmaq_f32(acc[1], xv, vld1q_f32(row.add(4)));
                p += 1;
            }
            let lo = vaddq_f32(vaddq_f32(acc[0], acc[2]), vaddq_f32(acc[4], acc[6]));
            let hi = vaddq_f32(vaddq_f32(acc[1], acc[3]), vaddq_f32(acc[5], acc[7]));
            vst1q_f32(res.as_mut_ptr(), lo);
            vst1q_f32(res.as_mut_ptr().add(4), hi);
        }
        let n = out.len();
        out.copy_from_slice(&res[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::gemm::{self, Gemm, Tiles};
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn matches_the_reference_gemm() {
        let val = |i: usize| ((i * 7919) % 97) as f32 / 97.0 - 0.5;
        for nr in [8, 16, 32, 12] {
            for (k, n) in [(1, 1), (64, 64), (64, 172), (172, 64), (37, 33), (5, 100)] {
                for activation in [Activation::None, Activation::Silu, Activation::Relu] {
                    let x: Vec<f32> = (0..k).map(val).collect();
                    let w: Vec<f32> = (0..k * n).map(|i| val(i + 7)).collect();
                    let bias: Vec<f32> = (0..n).map(|i| val(i + 13)).collect();
                    let mut packed = vec![0.0; gemm::packed_len(k, n, nr)];
                    gemm::pack_b(&w, k, n, nr, &mut packed);
                    let b = BMatrix::packed(&packed, k, nr);
                    let mut want = vec![0.0; n];
                    let g = Gemm {
                        m: 1,
                        k,
                        n,
                        lda: k,
                        ldc: n,
                        bias: Some(&bias),
                        activation,
                        tiles: Tiles {
                            mr: 4,
                            kc: 256,
                            mc: 64,
                        },
                    };
                    gemm::reference::gemm(&x, b, &mut want, &g);
                    let mut got = vec![0.0; n];
                    gemv(&x, b, &mut got, k, n, Some(&bias), activation);
                    for (j, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                            "nr {nr} k {k} n {n} col {j}: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn swiglu_matches_two_products() {
        let val = |i: usize| ((i * 7919) % 89) as f32 / 89.0 - 0.5;
        for nr in [8, 16, 32, 12] {
            for (k, n) in [(1, 1), (64, 172), (37, 33), (5, 100)] {
                let x: Vec<f32> = (0..k).map(val).collect();
                let pack = |seed: usize| {
                    let w: Vec<f32> = (0..k * n).map(|i| val(i + seed)).collect();
                    let mut packed = vec![0.0; gemm::packed_len(k, n, nr)];
                    gemm::pack_b(&w, k, n, nr, &mut packed);
                    packed
                };
                let (g, u) = (pack(3), pack(11));
                let (bg, bu): (Vec<f32>, Vec<f32>) = (
                    (0..n).map(|i| val(i + 5)).collect(),
                    (0..n).map(val).collect(),
                );
                let (gb, ub) = (BMatrix::packed(&g, k, nr), BMatrix::packed(&u, k, nr));
                let mut want = vec![0.0; n];
                let mut up = vec![0.0; n];
                gemv(&x, gb, &mut want, k, n, Some(&bg), Activation::Silu);
                gemv(&x, ub, &mut up, k, n, Some(&bu), Activation::None);
                mul_assign(&mut want, &up);
                let mut got = vec![0.0; n];
                gemv_swiglu(&x, gb, ub, &mut got, k, n, Some(&bg), Some(&bu));
                assert_eq!(got, want, "nr {nr} k {k} n {n}");
                let mut r = got.clone();
                add_assign(&mut r, &up);
                for j in 0..n {
                    assert_eq!(r[j], got[j] + up[j]);
                }
            }
        }
    }

    #[test]
    fn every_width_matches_the_portable_loop() {
        let val = |i: usize| ((i * 104729) % 101) as f32 / 101.0 - 0.5;
        for nr in [8, 16, 32] {
            for k in [0, 1, 3, 4, 5, 64, 67] {
                let x: Vec<f32> = (0..k).map(val).collect();
                let w: Vec<f32> = (0..k * nr).map(|i| val(i + 1)).collect();
                for width in [nr, nr - 3] {
                    let mut want = vec![0.0; width];
                    panel_dot_any(&x, &w, nr, &mut want);
                    let mut got = vec![0.0; width];
                    panel(&x, &w, nr, &mut got);
                    for (g, w) in got.iter().zip(&want) {
                        assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "nr {nr} k {k}");
                    }
                }
            }
        }
    }
}
