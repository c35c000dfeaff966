//! x86-64 AVX-512 quantized kernels: the int8 GEMM on VNNI `vpdpbusd` (tiles of up to 12
//! rows × 32 columns) and the int4 GEMM/GEMV (32 columns, up to 4 rows per pass over the
//! weights).
//!
//! `vpdpbusd` multiplies unsigned by signed bytes. The weights are made unsigned in the
//! register (`w ^ 0x80` = `w + 128`), so each sum is `Σ a·w + 128·Σ a`, exact in i32 for any
//! i8 inputs; the row sum of `a` is subtracted afterwards.
use super::{
    Q4Scales, Q4Weights, QGemm, QWeights, check_q4, check_qgemm, drive_i8, drive_q4_blocked,
};
use crate::kernels::gemm::{Gemm, epilogue};
use core::arch::x86_64::*;

/// int8 panel width read by [`qgemm`].
pub const NR: usize = 32;
/// int4 panel width read by [`gemm_q4`].
pub const Q4_NR: usize = 32;
/// The largest register block of rows of [`qgemm`].
pub const MAX_MR: usize = 12;
/// From this many rows of `A` on, [`gemm_q4`] dequantizes blocks of a panel to f32 once and
/// runs an f32 register tile over them.
const BLOCKED_MIN_M: usize = 8;
/// Depths per dequantized block (32 KiB of f32).
const KB: usize = 256;
/// Rows of the f32 register tile (16 accumulators).
const BLOCK_MR: usize = 8;

/// The int8 GEMM; `w.nr` must be [`NR`].
///
/// # Safety
/// The CPU must support AVX-512F, AVX-512BW and AVX-512 VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
pub unsafe fn qgemm(qa: &[i8], w: QWeights<'_>, c: &mut [f32], g: &QGemm<'_>) {
    assert_eq!(w.nr, NR);
    check_qgemm(qa, &w, c, g);
    let kp = w.kp;
    drive_i8(qa, &w, c, g, MAX_MR, |_, a, rows, panel, acc| {
        // SAFETY: `a` holds `rows` rows of `kp` bytes, `panel` holds `kp·NR` bytes and `acc`
        // `rows·NR` sums (slices built by `drive_i8`); the CPU features are this function's.
        unsafe { by_rows!(rows, tile, (a, kp, panel, acc), [1 2 3 4 5 6 7 8 9 10 11] _ => 12) }
    });
}

/// `R` rows × 32 columns of exact sums.
///
/// # Safety
/// AVX-512F/BW/VNNI; `a.len() >= R·kp`, `panel.len() >= kp·NR`, `acc.len() >= R·NR`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
unsafe fn tile<const R: usize>(a: &[i8], kp: usize, panel: &[i8], acc: &mut [i32]) {
    debug_assert!(a.len() >= R * kp && panel.len() >= kp * NR && acc.len() >= R * NR);
    let (ap, wp) = (a.as_ptr(), panel.as_ptr());
    let flip = _mm512_set1_epi8(-128);
    let mut c = [[_mm512_setzero_si512(); 2]; R];
    for gi in 0..kp / 4 {
        // SAFETY: group `gi < kp/4` of the panel is 128 bytes at `gi·128` (length above).
        let (w0, w1) = unsafe {
            (
                _mm512_loadu_si512(wp.add(gi * 128).cast()),
                _mm512_loadu_si512(wp.add(gi * 128 + 64).cast()),
            )
        };
        let (w0, w1) = (_mm512_xor_si512(w0, flip), _mm512_xor_si512(w1, flip));
        for (r, cr) in c.iter_mut().enumerate() {
            // SAFETY: bytes `4·gi..4·gi+4` of row `r < R` lie inside `a` (length above).
            let x = unsafe { ap.add(r * kp + 4 * gi).cast::<i32>().read_unaligned() };
            let x = _mm512_set1_epi32(x);
            cr[0] = _mm512_dpbusd_epi32(cr[0], w0, x);
            cr[1] = _mm512_dpbusd_epi32(cr[1], w1, x);
        }
    }
    for (r, cr) in c.iter().enumerate() {
        let sum: i32 = a[r * kp..(r + 1) * kp].iter().map(|&x| x as i32).sum();
        let fix = _mm512_set1_epi32(sum.wrapping_mul(128));
        // SAFETY: `acc` holds `R·NR` values (length above).
        unsafe {
            let out = acc.as_mut_ptr().add(r * NR);
            _mm512_storeu_si512(out.cast(), _mm512_sub_epi32(cr[0], fix));
            _mm512_storeu_si512(out.add(16).cast(), _mm512_sub_epi32(cr[1], fix));
        }
    }
}

/// The int4 GEMM; `w.nr` must be [`Q4_NR`].
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
pub unsafe fn gemm_q4(a: &[f32], w: Q4Weights<'_>, c: &mut [f32], g: &Gemm<'_>) {
    assert_eq!(w.nr, Q4_NR);
    check_q4(a, &w, c, g);
    if g.n == 0 {
        return;
    }
    // Panel by panel, so a panel's nibbles stay in cache while every block of rows reads it.
    for panel in 0..g.n.div_ceil(Q4_NR) {
        if g.m >= BLOCKED_MIN_M {
            // SAFETY: as for this function.
            unsafe { blocked(a, &w, c, g, panel) };
            continue;
        }
        let mut i = 0;
        while i < g.m {
            let rows = (g.m - i).min(4);
            // SAFETY: rows `i..i+rows` exist in `a` and `c` (checked by `check_q4`).
            unsafe { by_rows!(rows, rows_q4, (a, &w, c, g, i, panel), [1 2 3] _ => 4) }
            i += rows;
        }
    }
    for r in 0..g.m {
        epilogue(&mut c[r * g.ldc..r * g.ldc + g.n], g.bias, g.activation);
    }
}

/// Rows `i0..i0+R` × the columns of `panel` of `C` (before the epilogue).
///
/// # Safety
/// AVX-512F; `check_q4` passed for these operands and `i0 + R <= g.m`.
#[inline]
#[target_feature(enable = "avx512f")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
unsafe fn rows_q4<const R: usize>(
    a: &[f32],
    w: &Q4Weights<'_>,
    c: &mut [f32],
    g: &Gemm<'_>,
    i0: usize,
    panel: usize,
) {
    let (k, n, lda) = (g.k, g.n, g.lda);
    let ap = a.as_ptr();
    let m15 = _mm512_set1_epi32(15);
    {
        let bytes = w.panel(panel).as_ptr();
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        let mut p0 = 0;
        let mut gi = 0;
        while p0 < k {
            let p1 = k.min(p0 + w.group);
            // Two sets of partial sums (even and odd depths) hide the FMA latency.
            let (mut even, mut odd) =
                ([[_mm512_setzero_ps(); 2]; R], [[_mm512_setzero_ps(); 2]; R]);
            let mut sa = [0.0f32; R];
            let mut step = |p: usize, set: &mut [[__m512; 2]; R]| {
                // SAFETY: row `p < k` of the panel is 16 bytes at `16·p` (`Q4Weights::new`).
                let v = unsafe { _mm512_cvtepu8_epi32(_mm_loadu_si128(bytes.add(16 * p).cast())) };
                let lo = _mm512_cvtepi32_ps(_mm512_and_si512(v, m15));
                let hi = _mm512_cvtepi32_ps(_mm512_srli_epi32::<4>(v));
                for r in 0..R {
                    // SAFETY: `(i0 + r, p)` is inside `A` (`check_q4`).
                    let x = unsafe { *ap.add((i0 + r) * lda + p) };
                    sa[r] += x;
                    let xv = _mm512_set1_ps(x);
                    set[r][0] = _mm512_fmadd_ps(xv, lo, set[r][0]);
                    set[r][1] = _mm512_fmadd_ps(xv, hi, set[r][1]);
                }
            };
            let mut p = p0;
            while p + 1 < p1 {
                step(p, &mut even);
                step(p + 1, &mut odd);
                p += 2;
            }
            if p < p1 {
                step(p, &mut even);
            }
            let e = gi * w.n_pad + panel * Q4_NR;
            // SAFETY: scales and zero points hold `groups × n_pad` entries, `n_pad` a multiple
            // of 32, so entries `e..e+32` exist.
            let (s, z) = unsafe {
                let s = match w.scales {
                    Q4Scales::F32(s) => [
                        _mm512_loadu_ps(s.as_ptr().add(e)),
                        _mm512_loadu_ps(s.as_ptr().add(e + 16)),
                    ],
                    Q4Scales::F16(s) => [
                        _mm512_cvtph_ps(_mm256_loadu_si256(s.as_ptr().add(e).cast())),
                        _mm512_cvtph_ps(_mm256_loadu_si256(s.as_ptr().add(e + 16).cast())),
                    ],
                };
                let z = match w.zero_points {
                    Some(z) => [
                        _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(
                            z.as_ptr().add(e).cast(),
                        ))),
                        _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(
                            z.as_ptr().add(e + 16).cast(),
                        ))),
                    ],
                    None => [_mm512_set1_ps(8.0); 2],
                };
                (s, z)
            };
            for r in 0..R {
                let sa = _mm512_set1_ps(sa[r]);
                for h in 0..2 {
                    let q = _mm512_add_ps(even[r][h], odd[r][h]);
                    acc[r][h] = _mm512_fmadd_ps(s[h], _mm512_fnmadd_ps(z[h], sa, q), acc[r][h]);
                }
            }
            p0 = p1;
            gi += 1;
        }
        let col0 = panel * Q4_NR;
        let cols = Q4_NR.min(n - col0);
        let lo = if cols >= 16 {
            0xffff
        } else {
            (1u32 << cols) - 1
        } as __mmask16;
        let hi = if cols > 16 {
            ((1u64 << (cols - 16)) - 1) as __mmask16
        } else {
            0
        };
        for (r, ar) in acc.iter().enumerate() {
            let row = &mut c[(i0 + r) * g.ldc + col0..(i0 + r) * g.ldc + col0 + cols];
            // SAFETY: the masks cover exactly `cols` elements of `row`.
            unsafe {
                _mm512_mask_storeu_ps(row.as_mut_ptr(), lo, ar[0]);
                _mm512_mask_storeu_ps(row.as_mut_ptr().wrapping_add(16), hi, ar[1]);
            }
        }
    }
}

/// One panel of `C` (before the epilogue) for many rows: blocks of [`KB`] depths dequantized
/// to f32 (`q·s - zp·s`), then [`f32_tile`]s of up to [`BLOCK_MR`] rows over each block.
///
/// # Safety
/// AVX-512F; `check_q4` passed for these operands.
#[target_feature(enable = "avx512f")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
unsafe fn blocked(a: &[f32], w: &Q4Weights<'_>, c: &mut [f32], g: &Gemm<'_>, panel: usize) {
    let n = g.n;
    let bytes = w.panel(panel).as_ptr();
    let col0 = panel * Q4_NR;
    let cols = Q4_NR.min(n - col0);
    let m15 = _mm512_set1_epi32(15);
    let mut block = [0.0f32; KB * Q4_NR];
    let bp = block.as_mut_ptr();
    drive_q4_blocked(
        c,
        g,
        w.group,
        (col0, cols),
        (KB, BLOCK_MR),
        |gi, d, end, pc| {
            let e = gi * w.n_pad + col0;
            // SAFETY: entries `e..e+32` of scales and zero points exist (`n_pad` is a multiple
            // of 32); rows `d < k` of the panel are 16 bytes at `16·d`; the block holds `KB`
            // rows of 32 floats and `d - pc < KB`.
            unsafe {
                let s = match w.scales {
                    Q4Scales::F32(s) => [
                        _mm512_loadu_ps(s.as_ptr().add(e)),
                        _mm512_loadu_ps(s.as_ptr().add(e + 16)),
                    ],
                    Q4Scales::F16(s) => [
                        _mm512_cvtph_ps(_mm256_loadu_si256(s.as_ptr().add(e).cast())),
                        _mm512_cvtph_ps(_mm256_loadu_si256(s.as_ptr().add(e + 16).cast())),
                    ],
                };
                let z = match w.zero_points {
                    Some(z) => [
                        _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(
                            z.as_ptr().add(e).cast(),
                        ))),
                        _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(
                            z.as_ptr().add(e + 16).cast(),
                        ))),
                    ],
                    None => [_mm512_set1_ps(8.0); 2],
                };
                let zs = [_mm512_mul_ps(z[0], s[0]), _mm512_mul_ps(z[1], s[1])];
                for dd in d..end {
                    let v = _mm512_cvtepu8_epi32(_mm_loadu_si128(bytes.add(16 * dd).cast()));
                    let lo = _mm512_cvtepi32_ps(_mm512_and_si512(v, m15));
                    let hi = _mm512_cvtepi32_ps(_mm512_srli_epi32::<4>(v));
                    let out = bp.add((dd - pc) * Q4_NR);
                    _mm512_storeu_ps(out, _mm512_fmsub_ps(lo, s[0], zs[0]));
                    _mm512_storeu_ps(out.add(16), _mm512_fmsub_ps(hi, s[1], zs[1]));
                }
            }
        },
        |c, rows, t| {
            // SAFETY: rows `i..i+rows` and depths `pc..pc+kb` exist in `a`, columns
            // `col0..col0+cols` of those rows in `c` (`check_q4`); the block holds `kb` rows.
            unsafe { by_rows!(rows, f32_tile, (a, &block, c, g, t), [1 2 3 4 5 6 7] _ => 8) }
        },
    );
}

/// `C[i0..i0+R, col0..col0+cols] (=|+=) A[i0..i0+R, pc..pc+kb] · block[..kb]` for
/// `(i0, pc, kb, col0, cols, first)`.
///
/// # Safety
/// AVX-512F; the rows, depths and columns exist in `a` and `c`, `block` holds `kb·32` floats.
#[inline]
#[target_feature(enable = "avx512f")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
unsafe fn f32_tile<const R: usize>(
    a: &[f32],
    block: &[f32],
    c: &mut [f32],
    g: &Gemm<'_>,
    (i0, pc, kb, col0, cols, first): (usize, usize, usize, usize, usize, bool),
) {
    let (ap, bp) = (a.as_ptr(), block.as_ptr());
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    for p in 0..kb {
        // SAFETY: the caller's contract.
        unsafe {
            let (b0, b1) = (
                _mm512_loadu_ps(bp.add(32 * p)),
                _mm512_loadu_ps(bp.add(32 * p + 16)),
            );
            for (r, ar) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_ps(*ap.add((i0 + r) * g.lda + pc + p));
                ar[0] = _mm512_fmadd_ps(x, b0, ar[0]);
                ar[1] = _mm512_fmadd_ps(x, b1, ar[1]);
            }
        }
    }
    let lo = if cols >= 16 {
        0xffff
    } else {
        (1u32 << cols) - 1
    } as __mmask16;
    let hi = if cols > 16 {
        ((1u64 << (cols - 16)) - 1) as __mmask16
    } else {
        0
    };
    for (r, ar) in acc.iter().enumerate() {
        let row = &mut c[(i0 + r) * g.ldc + col0..(i0 + r) * g.ldc + col0 + cols];
        let (p0, p1) = (row.as_mut_ptr(), row.as_mut_ptr().wrapping_add(16));
        // SAFETY: the masks cover exactly `cols` elements of `row`.
        unsafe {
            let (mut v0, mut v1) = (ar[0], ar[1]);
            if !first {
                v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(lo, p0));
                v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(hi, p1));
            }
            _mm512_mask_storeu_ps(p0, lo, v0);
            _mm512_mask_storeu_ps(p1, hi, v1);
        }
    }
}
