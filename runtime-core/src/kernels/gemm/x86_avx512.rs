//! x86-64 AVX-512F micro-kernel: tiles of up to 14 rows × 32 columns (two zmm registers per
//! row, 28 accumulators), FMA broadcast of one `A` element per row and depth step.
use super::{Activation, BMatrix, Gemm, Tile, TilePtrs, check_bounds, drive};
use crate::math::{ERF_DENOMINATOR, ERF_NUMERATOR};
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
    // The activations with a vector form here run in registers; the others after the store.
    let fused = matches!(
        g.activation,
        Activation::None | Activation::Relu | Activation::Gelu
    );
    drive(
        a,
        b,
        c,
        g,
        MAX_MR,
        fused,
        |t: Tile, a: &[f32], c: &mut [f32]| {
            let mut ptrs = t.ptrs(a, g.lda, b, c, g.ldc);
            if fused && t.last {
                if let Some(bias) = g.bias {
                    ptrs.bias = bias[t.col0..t.col0 + t.cols].as_ptr();
                }
                ptrs.act = g.activation;
            }
            dispatch_tile!(micro, t, NR, ptrs, [1 2 3 4 5 6 7 8 9 10 11 12 13 14]);
        },
    );
}

/// One `R×32` tile: `C = act((first ? 0 : C) + A[R×kb] · B[kb×32] + bias)`, where `bias`
/// (when not null) and `act` come from `tile` (`act` is `None`, `Relu` or `Gelu`).
///
/// # Safety
/// AVX-512F; every row `r < R` of `A` has `kb` readable elements at `a + r·lda`, every depth
/// step of `B` 32 (or the masked columns) at `b + p·ldb`, `C` the same at `c + r·ldc`, and a
/// non-null `bias` as many.
#[target_feature(enable = "avx512f")]
#[inline]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
unsafe fn micro<const R: usize, const MASKED: bool>(tile: TilePtrs) {
    let (a, lda, b, ldb, kb, c, ldc, first, cols) = tile.parts();
    let (pf, pf_lines, bias, act) = (tile.pf, tile.pf_lines, tile.bias, tile.act);
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
        let (bias0, bias1) = if bias.is_null() {
            (_mm512_setzero_ps(), _mm512_setzero_ps())
        } else if MASKED {
            (
                _mm512_maskz_loadu_ps(lo, bias),
                _mm512_maskz_loadu_ps(hi, bias.add(16)),
            )
        } else {
            (_mm512_loadu_ps(bias), _mm512_loadu_ps(bias.add(16)))
        };
        for r in 0..R {
            let out = c.add(r * ldc);
            let (mut v0, mut v1) = (acc0[r], acc1[r]);
            if !first {
                let (c0, c1) = if MASKED {
                    (
                        _mm512_maskz_loadu_ps(lo, out),
                        _mm512_maskz_loadu_ps(hi, out.add(16)),
                    )
                } else {
                    (_mm512_loadu_ps(out), _mm512_loadu_ps(out.add(16)))
                };
                v0 = _mm512_add_ps(v0, c0);
                v1 = _mm512_add_ps(v1, c1);
            }
            if !bias.is_null() {
                v0 = _mm512_add_ps(v0, bias0);
                v1 = _mm512_add_ps(v1, bias1);
            }
            match act {
                Activation::Relu => {
                    v0 = _mm512_max_ps(v0, _mm512_setzero_ps());
                    v1 = _mm512_max_ps(v1, _mm512_setzero_ps());
                }
                Activation::Gelu => {
                    v0 = gelu(v0);
                    v1 = gelu(v1);
                }
                _ => {}
            }
            if MASKED {
                _mm512_mask_storeu_ps(out, lo, v0);
                _mm512_mask_storeu_ps(out.add(16), hi, v1);
            } else {
                _mm512_storeu_ps(out, v0);
                _mm512_storeu_ps(out.add(16), v1);
            }
        }
    }
}

/// [`crate::math::fast_gelu`] on 16 lanes: the same operations in the same order (no FMA),
/// so bit-identical to it and to `kernels::rowwise`'s GELU, as the fast-math invariant asks.
#[target_feature(enable = "avx512f")]
#[inline]
fn gelu(x: __m512) -> __m512 {
    let horner = |x2: __m512, cs: &[f32]| {
        let mut p = _mm512_set1_ps(cs[0]);
        for &c in &cs[1..] {
            p = _mm512_add_ps(_mm512_mul_ps(p, x2), _mm512_set1_ps(c));
        }
        p
    };
    let t = _mm512_mul_ps(x, _mm512_set1_ps(core::f32::consts::FRAC_1_SQRT_2));
    // `f32::clamp`: the lower bound first, so a NaN passes through.
    let t = _mm512_min_ps(_mm512_set1_ps(4.0), _mm512_max_ps(_mm512_set1_ps(-4.0), t));
    let t2 = _mm512_mul_ps(t, t);
    let erf = _mm512_div_ps(
        _mm512_mul_ps(t, horner(t2, &ERF_NUMERATOR)),
        horner(t2, &ERF_DENOMINATOR),
    );
    _mm512_mul_ps(
        _mm512_mul_ps(_mm512_set1_ps(0.5), x),
        _mm512_add_ps(_mm512_set1_ps(1.0), erf),
    )
}
