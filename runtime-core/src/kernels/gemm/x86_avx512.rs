//! x86-64 AVX-512F micro-kernel: tiles of up to 14 rows × 32 columns (two zmm registers per
//! row, 28 accumulators), FMA broadcast of one `A` element per row and depth step.
use super::{BMatrix, Gemm, Tile, TilePtrs, check_bounds, drive};
use core::arch::x86_64::*;

/// Panel width read by this variant.
pub const NR: usize = 32;
/// The largest register block of rows.
pub const MAX_MR: usize = 14;
/// How far ahead of the current depth step of `B` the micro-kernel prefetches, in elements.
const PREFETCH: usize = 16 * NR;

/// `C = act(A · B + bias)`; `b.nr` must be [`NR`].
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
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
#[target_feature(enable = "avx512f")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
unsafe fn run(a: &[f32], b: &BMatrix<'_>, c: &mut [f32], g: &Gemm<'_>) {
    drive(a, b, c, g, MAX_MR, |t: Tile, a: &[f32], c: &mut [f32]| {
        let ptrs = t.ptrs(a, g.lda, b, c, g.ldc);
        dispatch_tile!(micro, t, NR, ptrs, [1 2 3 4 5 6 7 8 9 10 11 12 13 14]);
    });
}

/// One `R×32` tile: `C = (first ? 0 : C) + A[R×kb] · B[kb×32]`.
///
/// # Safety
/// AVX-512F; every row `r < R` of `A` has `kb` readable elements at `a + r·lda`, every depth
/// step of `B` 32 (or the masked columns) at `b + p·ldb`, and `C` the same at `c + r·ldc`.
#[target_feature(enable = "avx512f")]
#[inline]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
unsafe fn micro<const R: usize, const MASKED: bool>(tile: TilePtrs) {
    let (a, lda, b, ldb, kb, c, ldc, first, cols) = tile.parts();
    let (pf, pf_lines) = (tile.pf, tile.pf_lines);
    let lo = if cols >= 16 {
        0xffff
    } else {
        (1u32 << cols) - 1
    } as __mmask16;
    let hi = if cols > 16 {
        ((1u64 << (cols - 16)) - 1) as u32
    } else {
        0
    } as __mmask16;
    // SAFETY: the caller guarantees the accesses (see above).
    unsafe {
        let mut acc0 = [_mm512_setzero_ps(); R];
        let mut acc1 = [_mm512_setzero_ps(); R];
        for p in 0..kb {
            let row = b.add(p * ldb);
            // A share is at most `2·kb` lines (one row block of a 32-wide panel).
            if p < pf_lines {
                _mm_prefetch::<_MM_HINT_T1>(pf.wrapping_add(p * 16) as *const i8);
                if p + kb < pf_lines {
                    _mm_prefetch::<_MM_HINT_T1>(pf.wrapping_add((p + kb) * 16) as *const i8);
                }
            }
            _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(PREFETCH) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(PREFETCH + 16) as *const i8);
            let (b0, b1) = if MASKED {
                (
                    _mm512_maskz_loadu_ps(lo, row),
                    _mm512_maskz_loadu_ps(hi, row.add(16)),
                )
            } else {
                (_mm512_loadu_ps(row), _mm512_loadu_ps(row.add(16)))
            };
            for r in 0..R {
                let x = _mm512_set1_ps(*a.add(r * lda + p));
                acc0[r] = _mm512_fmadd_ps(x, b0, acc0[r]);
                acc1[r] = _mm512_fmadd_ps(x, b1, acc1[r]);
            }
        }
        for r in 0..R {
            let out = c.add(r * ldc);
            let (mut v0, mut v1) = (acc0[r], acc1[r]);
            if MASKED {
                if !first {
                    v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(lo, out));
                    v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(hi, out.add(16)));
                }
                _mm512_mask_storeu_ps(out, lo, v0);
                _mm512_mask_storeu_ps(out.add(16), hi, v1);
            } else {
                if !first {
                    v0 = _mm512_add_ps(v0, _mm512_loadu_ps(out));
                    v1 = _mm512_add_ps(v1, _mm512_loadu_ps(out.add(16)));
                }
                _mm512_storeu_ps(out, v0);
                _mm512_storeu_ps(out.add(16), v1);
            }
        }
    }
}
