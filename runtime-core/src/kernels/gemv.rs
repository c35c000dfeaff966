//! f32 matrix–vector product over weights packed for the GEMM (`[panel][k][nr]`): the
//! `m = 1` case of a `Linear` (one decode step), without the GEMM's blocking and `A` packing.
//! The panel widths the GEMM variants use have their own loops: 32 (AVX-512F) and 16
//! (AVX2+FMA) with FMA intrinsics when compiled for them, else (and for NEON's 8) a portable
//! loop over fixed-width accumulator arrays that the compiler vectorises; other widths take
//! the generic loop. The portable loop is the reference the variants are tested against.
use super::gemm::{Activation, BMatrix, epilogue};

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
    assert!(b.padded && b.row_stride == b.nr && b.panel_stride == k * b.nr && b.nr > 0);
    assert!(x.len() >= k && y.len() >= n && b.data.len() >= n.div_ceil(b.nr) * k * b.nr);
    let x = &x[..k];
    for (p, out) in y[..n].chunks_mut(b.nr).enumerate() {
        let panel = &b.data[p * k * b.nr..(p + 1) * k * b.nr];
        match b.nr {
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
            nr => {
                out.fill(0.0);
                for (&xp, row) in x.iter().zip(panel.chunks_exact(nr)) {
                    for (o, &w) in out.iter_mut().zip(row) {
                        *o += xp * w;
                    }
                }
            }
        }
    }
    if n > 0 {
        epilogue(&mut y[..n], bias, activation);
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
        // `panel[p * 16 .. p * 16 + 16]` for `p < k` (checked above) and `x[p]`.
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
        let mut res = [0.0f32; 32];
        // SAFETY: AVX-512F is enabled at compile time; every load reads
        // `panel[p * 32 .. p * 32 + 32]` for `p < k` (checked above) and `x[p]`.
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
            _mm512_storeu_ps(res.as_mut_ptr(), lo);
            _mm512_storeu_ps(res.as_mut_ptr().add(16), hi);
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
}
