//! aarch64 half-weight kernels for Armv8.0 (Raspberry Pi 4 / Cortex-A72): `fcvtl`/`fcvtl2`
//! widen 8 halves to two f32 vectors, then f32 `fmla`. Stable Rust has no half-precision
//! vector types yet, so the widening is one `asm!` pair of instructions on integer vectors.
use super::{HWeights, check_bounds, store_panel};
use crate::kernels::gemm::Gemm;
use core::arch::aarch64::*;
use core::arch::asm;

/// Panel width of [`gemv`] (the NEON f32 GEMM's).
pub const NR: usize = 8;

/// Eight halves (as bits) widened to f32: lanes 0..4 and 4..8.
#[inline(always)]
pub(crate) fn widen(h: uint16x8_t) -> (float32x4_t, float32x4_t) {
    let (lo, hi): (float32x4_t, float32x4_t);
    // SAFETY: `fcvtl`/`fcvtl2` (Armv8.0 FP/SIMD) read one register and write two; no memory,
    // no flags.
    unsafe {
        asm!(
            "fcvtl {lo:v}.4s, {h:v}.4h",
            "fcvtl2 {hi:v}.4s, {h:v}.8h",
            h = in(vreg) h,
            lo = out(vreg) lo,
            hi = out(vreg) hi,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    (lo, hi)
}

/// Convert packed half bytes to f32 (`panel.len() >= 2·out.len()`).
pub fn convert(panel: &[u8], out: &mut [f32]) {
    assert!(panel.len() >= 2 * out.len());
    let n = out.len();
    let mut i = 0;
    // SAFETY: elements `i..i + 8` are in bounds of `out` and their bytes of `panel`.
    unsafe {
        while i + 8 <= n {
            let h = vreinterpretq_u16_u8(vld1q_u8(panel.as_ptr().add(2 * i)));
            let (lo, hi) = widen(h);
            vst1q_f32(out.as_mut_ptr().add(i), lo);
            vst1q_f32(out.as_mut_ptr().add(i + 4), hi);
            i += 8;
        }
    }
    super::reference::convert(&panel[2 * i..], &mut out[i..]);
}

/// The one-row product on panels of [`NR`] halves: two depth steps in flight.
pub fn gemv(a: &[f32], w: HWeights<'_>, c: &mut [f32], g: &Gemm<'_>) {
    assert!(w.nr == NR && g.m == 1);
    check_bounds(a, &w, c, g);
    let k = g.k;
    for panel in 0..g.n.div_ceil(NR) {
        let bytes = w.panel(panel);
        assert!(bytes.len() >= 16 * k && a.len() >= k);
        let wp = bytes.as_ptr();
        let mut out = [0.0f32; NR];
        // SAFETY: depth step `p < k` reads bytes `16p..16p+16` of the panel (checked above).
        unsafe {
            let mut acc = [[vdupq_n_f32(0.0); 2]; 2];
            let mut p = 0;
            while p + 2 <= k {
                for (u, acc) in acc.iter_mut().enumerate() {
                    let x = *a.get_unchecked(p + u);
                    let (lo, hi) = widen(vreinterpretq_u16_u8(vld1q_u8(wp.add(16 * (p + u)))));
                    acc[0] = vfmaq_n_f32(acc[0], lo, x);
                    acc[1] = vfmaq_n_f32(acc[1], hi, x);
                }
                p += 2;
            }
            if p < k {
                let x = *a.get_unchecked(p);
                let (lo, hi) = widen(vreinterpretq_u16_u8(vld1q_u8(wp.add(16 * p))));
                acc[0][0] = vfmaq_n_f32(acc[0][0], lo, x);
                acc[0][1] = vfmaq_n_f32(acc[0][1], hi, x);
            }
            vst1q_f32(out.as_mut_ptr(), vaddq_f32(acc[0][0], acc[1][0]));
            vst1q_f32(out.as_mut_ptr().add(4), vaddq_f32(acc[0][1], acc[1][1]));
        }
        store_panel(panel, NR, &out, c, g);
    }
}
