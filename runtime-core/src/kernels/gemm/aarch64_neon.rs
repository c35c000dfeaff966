//! aarch64 NEON micro-kernel: tiles of up to 12 rows × 8 columns (two q registers per row,
//! 24 accumulators), FMA by one `A` element per row and depth step. Armv8.0 only (runs on
//! Cortex-A72); tail columns go through a small stack buffer, NEON having no masked loads.
use super::{BMatrix, Gemm, Tile, TilePtrs, check_bounds, drive};
use core::arch::aarch64::*;

/// Panel width read by this variant.
pub const NR: usize = 8;
/// The largest register block of rows.
pub const MAX_MR: usize = 12;

/// `C = act(A · B + bias)`; `b.nr` must be [`NR`].
pub fn gemm(a: &[f32], b: BMatrix<'_>, c: &mut [f32], g: &Gemm<'_>) {
    assert_eq!(b.nr, NR);
    check_bounds(a, &b, c, g);
    drive(a, &b, c, g, MAX_MR, |t: Tile, a: &[f32], c: &mut [f32]| {
        let ptrs = t.ptrs(a, g.lda, &b, c, g.ldc);
        dispatch_tile!(micro, t, NR, ptrs, [1 2 3 4 5 6 7 8 9 10 11 12]);
    });
}

/// One `R×8` tile: `C = (first ? 0 : C) + A[R×kb] · B[kb×8]`; `PARTIAL` touches only the
/// first `cols` columns of `B` and `C`.
///
/// # Safety
/// Every row `r < R` of `A` has `kb` readable elements at `a + r·lda`, every depth step of
/// `B` 8 (or `cols` when `PARTIAL`) at `b + p·ldb`, and `C` the same at `c + r·ldc`.
#[inline]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
unsafe fn micro<const R: usize, const PARTIAL: bool>(tile: TilePtrs) {
    let (a, lda, b, ldb, kb, c, ldc, first, cols) = tile.parts();
    // SAFETY: the caller guarantees the accesses (see above); partial rows are copied
    // through `buf`, which has 8 elements.
    unsafe {
        let mut acc0 = [vdupq_n_f32(0.0); R];
        let mut acc1 = [vdupq_n_f32(0.0); R];
        let mut buf = [0.0f32; 8];
        for p in 0..kb {
            let mut row = b.add(p * ldb);
            if PARTIAL {
                core::ptr::copy_nonoverlapping(row, buf.as_mut_ptr(), cols);
                row = buf.as_ptr();
            }
            let (b0, b1) = (vld1q_f32(row), vld1q_f32(row.add(4)));
            for r in 0..R {
                let x = *a.add(r * lda + p);
                acc0[r] = vfmaq_n_f32(acc0[r], b0, x);
                acc1[r] = vfmaq_n_f32(acc1[r], b1, x);
            }
        }
        for r in 0..R {
            let out = c.add(r * ldc);
            let mut tile = [0.0f32; 8];
            if !first {
                if PARTIAL {
                    core::ptr::copy_nonoverlapping(out, tile.as_mut_ptr(), cols);
                } else {
                    core::ptr::copy_nonoverlapping(out, tile.as_mut_ptr(), 8);
                }
            }
            let v0 = vaddq_f32(acc0[r], vld1q_f32(tile.as_ptr()));
            let v1 = vaddq_f32(acc1[r], vld1q_f32(tile.as_ptr().add(4)));
            vst1q_f32(tile.as_mut_ptr(), v0);
            vst1q_f32(tile.as_mut_ptr().add(4), v1);
            core::ptr::copy_nonoverlapping(tile.as_ptr(), out, if PARTIAL { cols } else { 8 });
        }
    }
}
