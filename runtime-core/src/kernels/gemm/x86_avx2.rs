//! x86-64 AVX2 + FMA micro-kernel: tiles of up to 6 rows × 16 columns (two ymm registers
//! per row, 12 accumulators), FMA broadcast of one `A` element per row and depth step.
use super::{BMatrix, Gemm, Tile, TilePtrs, check_bounds, drive};
use core::arch::x86_64::*;

/// Panel width read by this variant.
pub const NR: usize = 16;
/// The largest register block of rows.
pub const MAX_MR: usize = 6;
/// How far ahead of the current depth step of `B` the micro-kernel prefetches, in elements.
const PREFETCH: usize = 16 * NR;

/// `C = act(A · B + bias)`; `b.nr` must be [`NR`].
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
pub unsafe fn gemm(a: &[f32], b: BMatrix<'_>, c: &mut [f32], g: &Gemm<'_>) {
    assert_eq!(b.nr, NR);
    check_bounds(a, &b, c, g);
    // SAFETY: as for this function.
    unsafe { run(a, &b, c, g) };
}

/// [`gemm`] after its checks.
///
/// # Safety
/// As [`gemm`]; the bounds are checked.
#[target_feature(enable = "avx2,fma")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
unsafe fn run(a: &[f32], b: &BMatrix<'_>, c: &mut [f32], g: &Gemm<'_>) {
    drive(a, b, c, g, MAX_MR, |t: Tile, a: &[f32], c: &mut [f32]| {
        let ptrs = t.ptrs(a, g.lda, b, c, g.ldc);
        dispatch_tile!(micro, t, NR, ptrs, [1 2 3 4 5 6]);
    });
}

/// One `R×16` tile: `C = (first ? 0 : C) + A[R×kb] · B[kb×16]`.
///
/// # Safety
/// AVX2 and FMA; every row `r < R` of `A` has `kb` readable elements at `a + r·lda`, every
/// depth step of `B` 16 (or the masked columns) at `b + p·ldb`, and `C` the same at `c + r·ldc`.
#[target_feature(enable = "avx2,fma")]
#[inline]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
unsafe fn micro<const R: usize, const MASKED: bool>(tile: TilePtrs) {
    let (a, lda, b, ldb, kb, c, ldc, first, cols) = tile.parts();
    let (pf, pf_lines) = (tile.pf, tile.pf_lines);
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let lo = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols as i32), lanes);
    let hi = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols as i32 - 8), lanes);
    // SAFETY: the caller guarantees the accesses (see above).
    unsafe {
        let mut acc0 = [_mm256_setzero_ps(); R];
        let mut acc1 = [_mm256_setzero_ps(); R];
        for p in 0..kb {
            let row = b.add(p * ldb);
            if p < pf_lines {
                _mm_prefetch::<_MM_HINT_T1>(pf.wrapping_add(p * 16) as *const i8);
            }
            _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(PREFETCH) as *const i8);
            let (b0, b1) = if MASKED {
                (
                    _mm256_maskload_ps(row, lo),
                    _mm256_maskload_ps(row.add(8), hi),
                )
            } else {
                (_mm256_loadu_ps(row), _mm256_loadu_ps(row.add(8)))
            };
            for r in 0..R {
                let x = _mm256_set1_ps(*a.add(r * lda + p));
                acc0[r] = _mm256_fmadd_ps(x, b0, acc0[r]);
                acc1[r] = _mm256_fmadd_ps(x, b1, acc1[r]);
            }
        }
        for r in 0..R {
            let out = c.add(r * ldc);
            let (mut v0, mut v1) = (acc0[r], acc1[r]);
            if MASKED {
                if !first {
                    v0 = _mm256_add_ps(v0, _mm256_maskload_ps(out, lo));
                    v1 = _mm256_add_ps(v1, _mm256_maskload_ps(out.add(8), hi));
                }
                _mm256_maskstore_ps(out, lo, v0);
                _mm256_maskstore_ps(out.add(8), hi, v1);
            } else {
                if !first {
                    v0 = _mm256_add_ps(v0, _mm256_loadu_ps(out));
                    v1 = _mm256_add_ps(v1, _mm256_loadu_ps(out.add(8)));
                }
                _mm256_storeu_ps(out, v0);
                _mm256_storeu_ps(out.add(8), v1);
            }
        }
    }
}
