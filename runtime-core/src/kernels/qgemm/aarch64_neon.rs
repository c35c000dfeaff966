//! aarch64 NEON quantized kernels, Armv8.0 only (Cortex-A72): the int8 GEMM with widening
//! multiplies (tiles of up to 6 rows × 8 columns) and the int4 GEMM/GEMV (16 columns, up to
//! 2 rows per pass over the weights).
//!
//! int8: `smull`/`smull2` multiply a 4-deep group of two columns by the broadcast activation
//! group into i16 (`128·128` fits), `sadalp` adds adjacent pairs into i32 accumulators:
//! exact for the full i8 range.
use super::{
    Q4Weights, QGemm, QWeights, check_q4, check_qgemm, drive_i8, drive_q4_blocked, write_tile_row,
};
use crate::kernels::gemm::{Gemm, epilogue};
use core::arch::aarch64::*;

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
/// Rows of the f32 register tile (16 accumulators).
const BLOCK_MR: usize = 4;

/// The int8 GEMM; `w.nr` must be [`NR`].
pub fn qgemm(qa: &[i8], w: QWeights<'_>, c: &mut [f32], g: &QGemm<'_>) {
    assert_eq!(w.nr, NR);
    check_qgemm(qa, &w, c, g);
    let kp = w.kp;
    drive_i8(qa, &w, c, g, MAX_MR, |_, a, rows, panel, acc| {
        assert!(a.len() >= rows * kp && panel.len() >= kp * NR && acc.len() >= rows * NR);
        // SAFETY: lengths checked above; NEON is part of aarch64.
        unsafe { by_rows!(rows, tile, (a, kp, panel, acc), [1 2 3 4 5] _ => 6) }
    });
}

/// `R` rows × 8 columns of exact sums.
///
/// # Safety
/// `a.len() >= R·kp`, `panel.len() >= kp·NR`, `acc.len() >= R·NR`.
#[inline]
#[target_feature(enable = "neon")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
unsafe fn tile<const R: usize>(a: &[i8], kp: usize, panel: &[i8], acc: &mut [i32]) {
    let (ap, wp) = (a.as_ptr(), panel.as_ptr());
    // SAFETY: group `gi < kp/4` of the panel is 32 bytes at `32·gi`, row `r < R` of `a` has
    // bytes `4·gi..4·gi+4`, `acc` holds `R·8` values (the caller's contract).
    unsafe {
        // Per row: columns (0,1), (2,3), (4,5), (6,7), each as two half sums per column.
        let mut c = [[vdupq_n_s32(0); 4]; R];
        for gi in 0..kp / 4 {
            let w0 = vld1q_s8(wp.add(32 * gi));
            let w1 = vld1q_s8(wp.add(32 * gi + 16));
            for (r, cr) in c.iter_mut().enumerate() {
                let x = ap.add(r * kp + 4 * gi).cast::<u32>().read_unaligned();
                let x = vreinterpretq_s8_u32(vdupq_n_u32(x));
                cr[0] = vpadalq_s16(cr[0], vmull_s8(vget_low_s8(w0), vget_low_s8(x)));
                cr[1] = vpadalq_s16(cr[1], vmull_high_s8(w0, x));
                cr[2] = vpadalq_s16(cr[2], vmull_s8(vget_low_s8(w1), vget_low_s8(x)));
                cr[3] = vpadalq_s16(cr[3], vmull_high_s8(w1, x));
            }
        }
        for (r, cr) in c.iter().enumerate() {
            let out = acc.as_mut_ptr().add(r * NR);
            vst1q_s32(out, vpaddq_s32(cr[0], cr[1]));
            vst1q_s32(out.add(4), vpaddq_s32(cr[2], cr[3]));
        }
    }
}

/// The int4 GEMM; `w.nr` must be [`Q4_NR`].
pub fn gemm_q4(a: &[f32], w: Q4Weights<'_>, c: &mut [f32], g: &Gemm<'_>) {
    assert_eq!(w.nr, Q4_NR);
    check_q4(a, &w, c, g);
    if g.n == 0 {
        return;
    }
    // Panel by panel, so a panel's nibbles stay in cache while every block of rows reads it.
    for panel in 0..g.n.div_ceil(Q4_NR) {
        if g.m >= BLOCKED_MIN_M {
            // SAFETY: `check_q4` passed; NEON is part of aarch64.
            unsafe { blocked(a, &w, c, g, panel) };
            continue;
        }
        let mut i = 0;
        while i < g.m {
            let rows = (g.m - i).min(2);
            // SAFETY: rows `i..i+rows` exist in `a` and `c` (checked by `check_q4`).
            unsafe {
                match rows {
                    1 => rows_q4::<1, 2>(a, &w, c, g, i, panel),
                    _ => rows_q4::<2, 1>(a, &w, c, g, i, panel),
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
/// of partial sums over consecutive depths.
///
/// # Safety
/// `check_q4` passed for these operands and `i0 + R <= g.m`.
#[inline]
#[target_feature(enable = "neon")]
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
    {
        let bytes = w.panel(panel).as_ptr();
        let mut acc = [[vdupq_n_f32(0.0); 4]; R];
        let mut p0 = 0;
        let mut gi = 0;
        while p0 < k {
            let p1 = k.min(p0 + w.group);
            let mut sets = [[[vdupq_n_f32(0.0); 4]; R]; U];
            let mut sa = [0.0f32; R];
            let mut step = |p: usize, set: &mut [[float32x4_t; 4]; R]| {
                // SAFETY: row `p < k` of the panel is 8 bytes at `8·p` (`Q4Weights::new`);
                // `(i0 + r, p)` is inside `A` (`check_q4`).
                unsafe {
                    let v = vld1_u8(bytes.add(8 * p));
                    let lo = vmovl_u8(vand_u8(v, vdup_n_u8(15)));
                    let hi = vmovl_u8(vshr_n_u8::<4>(v));
                    let q = [
                        vcvtq_f32_u32(vmovl_u16(vget_low_u16(lo))),
                        vcvtq_f32_u32(vmovl_high_u16(lo)),
                        vcvtq_f32_u32(vmovl_u16(vget_low_u16(hi))),
                        vcvtq_f32_u32(vmovl_high_u16(hi)),
                    ];
                    for r in 0..R {
                        let x = *ap.add((i0 + r) * lda + p);
                        sa[r] += x;
                        for h in 0..4 {
                            set[r][h] = vfmaq_n_f32(set[r][h], q[h], x);
                        }
                    }
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
                let sa = vdupq_n_f32(sa[r]);
                for h in 0..4 {
                    let mut q = sets[0][r][h];
                    for set in &sets[1..] {
                        q = vaddq_f32(q, set[r][h]);
                    }
                    // SAFETY: `s` and `z` hold 16 values.
                    let (sv, zv) = unsafe {
                        (
                            vld1q_f32(s.as_ptr().add(4 * h)),
                            vld1q_f32(z.as_ptr().add(4 * h)),
                        )
                    };
                    acc[r][h] = vfmaq_f32(acc[r][h], sv, vfmsq_f32(q, zv, sa));
                }
            }
            p0 = p1;
            gi += 1;
        }
        let col0 = panel * Q4_NR;
        let cols = Q4_NR.min(n - col0);
        for (r, ar) in acc.iter().enumerate() {
            let mut out = [0.0f32; Q4_NR];
            for (h, v) in ar.iter().enumerate() {
                // SAFETY: `out` holds 16 values.
                unsafe { vst1q_f32(out.as_mut_ptr().add(4 * h), *v) };
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
/// `check_q4` passed for these operands.
#[target_feature(enable = "neon")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
unsafe fn blocked(a: &[f32], w: &Q4Weights<'_>, c: &mut [f32], g: &Gemm<'_>, panel: usize) {
    let n = g.n;
    let bytes = w.panel(panel).as_ptr();
    let col0 = panel * Q4_NR;
    let cols = Q4_NR.min(n - col0);
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
                let mut sv = [vdupq_n_f32(0.0); 4];
                let mut zs = [vdupq_n_f32(0.0); 4];
                for h in 0..4 {
                    sv[h] = vld1q_f32(s.as_ptr().add(4 * h));
                    zs[h] = vmulq_f32(vld1q_f32(z.as_ptr().add(4 * h)), sv[h]);
                }
                for dd in d..end {
                    let v = vld1_u8(bytes.add(8 * dd));
                    let lo = vmovl_u8(vand_u8(v, vdup_n_u8(15)));
                    let hi = vmovl_u8(vshr_n_u8::<4>(v));
                    let q = [
                        vcvtq_f32_u32(vmovl_u16(vget_low_u16(lo))),
                        vcvtq_f32_u32(vmovl_high_u16(lo)),
                        vcvtq_f32_u32(vmovl_u16(vget_low_u16(hi))),
                        vcvtq_f32_u32(vmovl_high_u16(hi)),
                    ];
                    let out = bp.add((dd - pc) * Q4_NR);
                    for h in 0..4 {
                        // q·s - zp·s
                        vst1q_f32(out.add(4 * h), vsubq_f32(vmulq_f32(q[h], sv[h]), zs[h]));
                    }
                }
            }
        },
        |c, rows, t| {
            // SAFETY: rows `i..i+rows` and depths `pc..pc+kb` exist in `a`, columns
            // `col0..col0+cols` of those rows in `c` (`check_q4`); the block holds `kb` rows.
            unsafe { by_rows!(rows, f32_tile, (a, &block, c, g, t), [1 2 3] _ => 4) }
        },
    );
}

f32_tile!(
    "neon",
    4,
    vdupq_n_f32(0.0),
    vld1q_f32,
    |x| x,
    |x, b, acc| vfmaq_n_f32(acc, b, x),
    |ar, row, first| {
        let mut out = [0.0f32; Q4_NR];
        for (h, v) in ar.iter().enumerate() {
            // SAFETY: `out` holds 16 values.
            unsafe { vst1q_f32(out.as_mut_ptr().add(4 * h), *v) };
        }
        write_tile_row(row, &out, first);
    }
);
