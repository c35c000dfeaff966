//! aarch64 int8 GEMM on the Armv8.2 dot product (`sdot`, Jetson / Cortex-A78AE): tiles of up
//! to 6 rows × 16 columns. A depth group of a column is one 32-bit lane of the panel, so one
//! `sdot` adds four exact i8 products per lane for four columns. Stable Rust has no `sdot`
//! intrinsic yet, so it is one `asm!` instruction.
use super::{QGemm, QWeights, check_qgemm, drive_i8};
use core::arch::aarch64::*;
use core::arch::asm;

/// int8 panel width read by [`qgemm`].
pub const NR: usize = 16;
/// The largest register block of rows.
pub const MAX_MR: usize = 6;

/// The int8 GEMM; `w.nr` must be [`NR`].
pub fn qgemm(qa: &[i8], w: QWeights<'_>, c: &mut [f32], g: &QGemm<'_>) {
    assert_eq!(w.nr, NR);
    check_qgemm(qa, &w, c, g);
    let kp = w.kp;
    drive_i8(qa, &w, c, g, MAX_MR, |_, a, rows, panel, acc| {
        assert!(a.len() >= rows * kp && panel.len() >= kp * NR && acc.len() >= rows * NR);
        // SAFETY: lengths checked above; this module is compiled only with `dotprod`.
        unsafe { by_rows!(rows, tile, (a, kp, panel, acc), [1 2 3 4 5] _ => 6) }
    });
}

/// `acc += Σ` of four i8 products per lane of `w` and `x`.
#[inline(always)]
fn sdot(acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: `sdot` reads and writes only the three registers named (no memory, no
    // flags); this module is compiled only when the target has `dotprod`.
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {w:v}.16b, {x:v}.16b",
            acc = inout(vreg) acc,
            w = in(vreg) w,
            x = in(vreg) x,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

/// `R` rows × 16 columns of exact sums.
///
/// # Safety
/// `a.len() >= R·kp`, `panel.len() >= kp·NR`, `acc.len() >= R·NR`.
#[inline]
#[target_feature(enable = "neon")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
unsafe fn tile<const R: usize>(a: &[i8], kp: usize, panel: &[i8], acc: &mut [i32]) {
    let (ap, wp) = (a.as_ptr(), panel.as_ptr());
    // SAFETY: group `gi < kp/4` of the panel is 64 bytes at `64·gi`, row `r < R` of `a` has
    // bytes `4·gi..4·gi+4`, `acc` holds `R·16` values (the caller's contract).
    unsafe {
        let mut c = [[vdupq_n_s32(0); 4]; R];
        for gi in 0..kp / 4 {
            let w = [
                vld1q_s8(wp.add(64 * gi)),
                vld1q_s8(wp.add(64 * gi + 16)),
                vld1q_s8(wp.add(64 * gi + 32)),
                vld1q_s8(wp.add(64 * gi + 48)),
            ];
            for (r, cr) in c.iter_mut().enumerate() {
                let x = ap.add(r * kp + 4 * gi).cast::<u32>().read_unaligned();
                let x = vreinterpretq_s8_u32(vdupq_n_u32(x));
                for h in 0..4 {
                    cr[h] = sdot(cr[h], w[h], x);
                }
            }
        }
        for (r, cr) in c.iter().enumerate() {
            for (h, v) in cr.iter().enumerate() {
                vst1q_s32(acc.as_mut_ptr().add(r * NR + 4 * h), *v);
            }
        }
    }
}
