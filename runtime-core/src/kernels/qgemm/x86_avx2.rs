//! x86-64 AVX2 quantized kernels: the int8 GEMM (tiles of up to 6 rows × 8 columns) and the
//! int4 GEMM/GEMV (16 columns, up to 4 rows per pass over the weights).
//!
//! int8 products take the widening path, exact for the full i8 range: `vpmaddubsw` would
//! saturate (`2·255·128` does not fit i16), so both operands are sign-extended to i16 and
//! `vpmaddwd` sums pairs of products into i32 (`2·128·128` fits). Each block of rows of `A`
//! is widened once into a stack buffer and read by every panel with 64-bit broadcasts.
use super::{
    Q4Weights, QGemm, QWeights, check_q4, check_qgemm, drive_i8, drive_q4_blocked, reference,
    write_tile_row,
};
use crate::kernels::gemm::{Gemm, epilogue};
use core::arch::x86_64::*;

/// int8 panel width read by [`qgemm`].
pub const NR: usize = 8;
/// int4 panel width read by [`gemm_q4`].
pub const Q4_NR: usize = 16;
/// The largest register block of rows of [`qgemm`].
pub const MAX_MR: usize = 6;
/// From this many rows of `A` on, [`gemm_q4`] dequantizes blocks of a panel to f32 once and
/// runs an f32 register tile over them.
const BLOCKED_MIN_M: usize = 8;
/// Depths per dequantized block (16 KiB of f32).
const KB: usize = 256;
/// Rows of the f32 register tile (12 accumulators).
const BLOCK_MR: usize = 6;
/// i16 elements of the widened-`A` buffer; deeper products run the portable kernel.
const WIDE: usize = 16 * 1024;

/// The int8 GEMM; `w.nr` must be [`NR`].
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
pub unsafe fn qgemm(qa: &[i8], w: QWeights<'_>, c: &mut [f32], g: &QGemm<'_>) {
    assert_eq!(w.nr, NR);
    check_qgemm(qa, &w, c, g);
    let kp = w.kp;
    if kp == 0 || kp > WIDE || g.m == 0 || g.n == 0 {
        reference::qgemm(qa, w, c, g);
        return;
    }
    let mut wide = [0i16; WIDE];
    let chunk = (WIDE / kp).min(g.tiles.mc).max(1);
    let mut ic = 0;
    while ic < g.m {
        let rows = chunk.min(g.m - ic);
        for (d, &s) in wide.iter_mut().zip(&qa[ic * kp..(ic + rows) * kp]) {
            *d = s as i16;
        }
        let sub = QGemm {
            m: rows,
            a_scales: &g.a_scales[ic..],
            a_zero_points: &g.a_zero_points[ic..],
            tiles: crate::kernels::gemm::Tiles {
                mc: rows,
                ..g.tiles
            },
            ..*g
        };
        let wide = &wide[..rows * kp];
        drive_i8(
            &qa[ic * kp..],
            &w,
            &mut c[ic * g.ldc..],
            &sub,
            MAX_MR,
            |ir, _, rows, panel, acc| {
                let a = &wide[ir * kp..(ir + rows) * kp];
                // SAFETY: `a` holds `rows` widened rows of `kp`, `panel` `kp·NR` bytes and
                // `acc` `rows·NR` sums; the CPU features are this function's.
                unsafe { by_rows!(rows, tile, (a, kp, panel, acc), [1 2 3 4 5] _ => 6) }
            },
        );
        ic += rows;
    }
}

/// `R` rows × 8 columns of exact sums from widened activations.
///
/// # Safety
/// AVX2; `a.len() >= R·kp`, `panel.len() >= kp·NR`, `acc.len() >= R·NR`.
#[inline]
#[target_feature(enable = "avx2")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
unsafe fn tile<const R: usize>(a: &[i16], kp: usize, panel: &[i8], acc: &mut [i32]) {
    debug_assert!(a.len() >= R * kp && panel.len() >= kp * NR && acc.len() >= R * NR);
    let (ap, wp) = (a.as_ptr(), panel.as_ptr());
    let mut c = [[_mm256_setzero_si256(); 2]; R];
    for gi in 0..kp / 4 {
        // SAFETY: group `gi < kp/4` of the panel is 32 bytes at `32·gi` (length above).
        // Columns 0-3 and 4-7, each as 4 depths × i16.
        let (w0, w1) = unsafe {
            (
                _mm256_cvtepi8_epi16(_mm_loadu_si128(wp.add(32 * gi).cast())),
                _mm256_cvtepi8_epi16(_mm_loadu_si128(wp.add(32 * gi + 16).cast())),
            )
        };
        for (r, cr) in c.iter_mut().enumerate() {
            // SAFETY: depths `4·gi..4·gi+4` of row `r < R` lie inside `a` (length above).
            let x = unsafe { ap.add(r * kp + 4 * gi).cast::<i64>().read_unaligned() };
            let x = _mm256_set1_epi64x(x);
            cr[0] = _mm256_add_epi32(cr[0], _mm256_madd_epi16(w0, x));
            cr[1] = _mm256_add_epi32(cr[1], _mm256_madd_epi16(w1, x));
        }
    }
    for (r, cr) in c.iter().enumerate() {
        // cr[0] = [c0 c0 c1 c1 | c2 c2 c3 c3] (two half sums each), cr[1] likewise for 4-7:
        // hadd gives [c0 c1 c4 c5 | c2 c3 c6 c7], the permute puts them in order.
        let s = _mm256_permute4x64_epi64::<0xD8>(_mm256_hadd_epi32(cr[0], cr[1]));
        // SAFETY: `acc` holds `R·NR` values (length above).
        unsafe { _mm256_storeu_si256(acc.as_mut_ptr().add(r * NR).cast(), s) };
    }
}

/// The int4 GEMM; `w.nr` must be [`Q4_NR`].
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
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
            unsafe {
                match rows {
                    1 => rows_q4::<1, 2>(a, &w, c, g, i, panel),
                    2 => rows_q4::<2, 2>(a, &w, c, g, i, panel),
                    3 => rows_q4::<3, 1>(a, &w, c, g, i, panel),
                    _ => rows_q4::<4, 1>(a, &w, c, g, i, panel),
                }
            }
            i += rows;
        }
    }
    for r in 0..g.m {
        epilogue(&mut c[r * g.ldc..r * g.ldc + g.n], g.bias, g.activation);
    }
}

/// Rows `i0..i0+R` × the columns of `panel` of `C` (before the epilogue), with `U` sets
/// of partial sums over consecutive depths (to hide the FMA latency).
///
/// # Safety
/// AVX2 and FMA; `check_q4` passed for these operands and `i0 + R <= g.m`.
#[inline]
#[target_feature(enable = "avx2,fma")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
unsafe fn rows_q4<const R: usize, const U: usize>(
    a: &[f32],
    w: &Q4Weights<'_>,
    c: &mut [f32],
    g: &Gemm<'_>,
    i0: usize,
    panel: usize,
) {
    let (k, n, lda) = (g.k, g.n, g.lda);
    let ap = a.as_ptr();
    let m15 = _mm256_set1_epi32(15);
    {
        let bytes = w.panel(panel).as_ptr();
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        let mut p0 = 0;
        let mut gi = 0;
        while p0 < k {
            let p1 = k.min(p0 + w.group);
            let mut sets = [[[_mm256_setzero_ps(); 2]; R]; U];
            let mut sa = [0.0f32; R];
            let mut step = |p: usize, set: &mut [[__m256; 2]; R]| {
                // SAFETY: row `p < k` of the panel is 8 bytes at `8·p` (`Q4Weights::new`).
                let v = unsafe { _mm256_cvtepu8_epi32(_mm_loadl_epi64(bytes.add(8 * p).cast())) };
                let lo = _mm256_cvtepi32_ps(_mm256_and_si256(v, m15));
                let hi = _mm256_cvtepi32_ps(_mm256_srli_epi32::<4>(v));
                for r in 0..R {
                    // SAFETY: `(i0 + r, p)` is inside `A` (`check_q4`).
                    let x = unsafe { *ap.add((i0 + r) * lda + p) };
                    sa[r] += x;
                    let xv = _mm256_set1_ps(x);
                    set[r][0] = _mm256_fmadd_ps(xv, lo, set[r][0]);
                    set[r][1] = _mm256_fmadd_ps(xv, hi, set[r][1]);
                }
            };
            let mut p = p0;
            while p + U <= p1 {
                for (u, set) in sets.iter_mut().enumerate() {
                    step(p + u, set);
                }
                p += U;
            }
            while p < p1 {
                step(p, &mut sets[0]);
                p += 1;
            }
            let mut s = [0.0f32; Q4_NR];
            let mut z = [0.0f32; Q4_NR];
            w.group_params(gi, panel * Q4_NR, &mut s, &mut z);
            for r in 0..R {
                let sa = _mm256_set1_ps(sa[r]);
                for h in 0..2 {
                    let mut q = sets[0][r][h];
                    for set in &sets[1..] {
                        q = _mm256_add_ps(q, set[r][h]);
                    }
                    // SAFETY: `s` and `z` hold 16 values.
                    let (sv, zv) = unsafe {
                        (
                            _mm256_loadu_ps(s.as_ptr().add(8 * h)),
                            _mm256_loadu_ps(z.as_ptr().add(8 * h)),
                        )
                    };
                    acc[r][h] = _mm256_fmadd_ps(sv, _mm256_fnmadd_ps(zv, sa, q), acc[r][h]);
                }
            }
            p0 = p1;
            gi += 1;
        }
        let col0 = panel * Q4_NR;
        let cols = Q4_NR.min(n - col0);
        for (r, ar) in acc.iter().enumerate() {
            let mut out = [0.0f32; Q4_NR];
            // SAFETY: `out` holds 16 values.
            unsafe {
                _mm256_storeu_ps(out.as_mut_ptr(), ar[0]);
                _mm256_storeu_ps(out.as_mut_ptr().add(8), ar[1]);
            }
            let at = (i0 + r) * g.ldc + col0;
            c[at..at + cols].copy_from_slice(&out[..cols]);
        }
    }
}

/// One panel of `C` (before the epilogue) for many rows: blocks of [`KB`] depths dequantized
/// to f32, then [`f32_tile`]s of up to [`BLOCK_MR`] rows over each block.
///
/// # Safety
/// AVX2 and FMA; `check_q4` passed for these operands.
#[target_feature(enable = "avx2,fma")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
unsafe fn blocked(a: &[f32], w: &Q4Weights<'_>, c: &mut [f32], g: &Gemm<'_>, panel: usize) {
    let n = g.n;
    let bytes = w.panel(panel).as_ptr();
    let col0 = panel * Q4_NR;
    let cols = Q4_NR.min(n - col0);
    let m15 = _mm256_set1_epi32(15);
    let mut block = [0.0f32; KB * Q4_NR];
    let bp = block.as_mut_ptr();
    let (mut s, mut z) = ([0.0f32; Q4_NR], [0.0f32; Q4_NR]);
    drive_q4_blocked(
        c,
        g,
        w.group,
        (col0, cols),
        (KB, BLOCK_MR),
        |gi, d, end, pc| {
            w.group_params(gi, col0, &mut s, &mut z);
            // SAFETY: `s` and `z` hold 16 values; rows `d < k` of the panel are 8 bytes at
            // `8·d`; the block holds `KB` rows of 16 floats and `d - pc < KB`.
            unsafe {
                let sv = [
                    _mm256_loadu_ps(s.as_ptr()),
                    _mm256_loadu_ps(s.as_ptr().add(8)),
                ];
                let zs = [
                    _mm256_mul_ps(_mm256_loadu_ps(z.as_ptr()), sv[0]),
                    _mm256_mul_ps(_mm256_loadu_ps(z.as_ptr().add(8)), sv[1]),
                ];
                for dd in d..end {
                    let v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(bytes.add(8 * dd).cast()));
                    let lo = _mm256_cvtepi32_ps(_mm256_and_si256(v, m15));
                    let hi = _mm256_cvtepi32_ps(_mm256_srli_epi32::<4>(v));
                    let out = bp.add((dd - pc) * Q4_NR);
                    _mm256_storeu_ps(out, _mm256_fmsub_ps(lo, sv[0], zs[0]));
                    _mm256_storeu_ps(out.add(8), _mm256_fmsub_ps(hi, sv[1], zs[1]));
                }
            }
        },
        |c, rows, t| {
            // SAFETY: rows `i..i+rows` and depths `pc..pc+kb` exist in `a`, columns
            // `col0..col0+cols` of those rows in `c` (`check_q4`); the block holds `kb` rows.
            unsafe { by_rows!(rows, f32_tile, (a, &block, c, g, t), [1 2 3 4 5] _ => 6) }
        },
    );
}

f32_tile!(
    "avx2,fma",
    8,
    _mm256_setzero_ps(),
    _mm256_loadu_ps,
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    |ar, row, first| {
        let mut out = [0.0f32; Q4_NR];
        // SAFETY: `out` holds 16 values.
        unsafe {
            _mm256_storeu_ps(out.as_mut_ptr(), ar[0]);
            _mm256_storeu_ps(out.as_mut_ptr().add(8), ar[1]);
        }
        write_tile_row(row, &out, first);
    }
);
