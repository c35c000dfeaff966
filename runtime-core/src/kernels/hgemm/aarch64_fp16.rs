//! aarch64 one-row half-weight product in half-precision arithmetic (Armv8.2 `fp16`: Jetson /
//! Cortex-A78AE): 8 columns per `fmla v.8h`, no widening per depth step. The depth runs in
//! blocks of [`BLOCK`] steps; per block the activations are scaled by a power of two `σ`
//! with `max|x·σ| ∈ [0.5, 1)` (exact), rounded to half, multiplied and summed in half lanes,
//! and the block's sums are widened (`fcvtl`) and added, times `1/σ`, to f32 accumulators.
//!
//! Error bound, per output `j` (`u = 2⁻¹¹` half's unit roundoff, `η = 2⁻²⁵` half's smallest
//! subnormal over two, `B` = [`BLOCK`]); against the exact sum of `x_p·w_pj` (`w` as stored):
//! `|ŷ_j − y_j| ≤ Σ_blocks [ (B+1)·u·Σ_{p∈blk}|x_p·w_pj| + 2·max_{p∈blk}|x_p|·η·(Σ_{p∈blk}|w_pj| + B) ]`
//! plus the f32 accumulation of the widened block sums. The first term is the rounding of
//! each `x_p·σ` (≤ u relative) and of the `B` fused multiply-adds of the block (each ≤ u
//! relative to a partial sum bounded by `Σ|x·σ·w|`); the second covers results in half's
//! subnormal range, where the rounding is absolute (≤ η before the `1/σ` ≤ 2·max|x| scale).
//! A block whose half sums overflow (weights above 65504/B) or are not finite is recomputed
//! in f32 (the `fcvtl` path), so the result is then the reference's.
//! Several rows run the shared convert-then-f32-GEMM path.
use super::{HWeights, check_bounds, store_panel};
use crate::kernels::gemm::Gemm;
use core::arch::aarch64::*;
use core::arch::asm;

/// Panel width (eight half lanes).
pub const NR: usize = 8;
/// Depth steps summed in half precision before widening.
pub const BLOCK: usize = 8;

/// `acc + w·x` in eight half lanes (`fmla .8h`, one rounding per lane).
#[inline(always)]
fn fmla_h(acc: uint16x8_t, w: uint16x8_t, x: uint16x8_t) -> uint16x8_t {
    let mut acc = acc;
    // SAFETY: `fmla .8h` (Armv8.2 `fp16`, which this module's callers are compiled with)
    // reads and writes only the three registers named; no memory, no flags (FPCR default:
    // round to nearest, no traps).
    unsafe {
        asm!(
            "fmla {acc:v}.8h, {w:v}.8h, {x:v}.8h",
            acc = inout(vreg) acc,
            w = in(vreg) w,
            x = in(vreg) x,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

/// Four f32 values rounded to half (nearest even) in the low four lanes, `hi` in the high four.
#[inline(always)]
fn narrow(lo: float32x4_t, hi: float32x4_t) -> uint16x8_t {
    let h: uint16x8_t;
    // SAFETY: `fcvtn`/`fcvtn2` (Armv8.0 FP/SIMD) read two registers and write one; no memory.
    unsafe {
        asm!(
            "fcvtn {h:v}.4h, {lo:v}.4s",
            "fcvtn2 {h:v}.8h, {hi:v}.4s",
            lo = in(vreg) lo,
            hi = in(vreg) hi,
            h = out(vreg) h,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    h
}

/// The power of two `σ` with `max·σ ∈ [0.5, 1)`, and `1/σ`; `None` when `max` is not finite
/// or too large for `1/σ` to be an f32.
#[inline(always)]
fn block_scale(max: f32) -> Option<(f32, f32)> {
    if !max.is_finite() {
        return None;
    }
    let e = ((max.to_bits() >> 23) & 0xff) as i32 - 127;
    let e = e.max(-100);
    if e > 125 {
        return None;
    }
    let sigma = f32::from_bits(((126 - e) as u32) << 23);
    let inv = f32::from_bits(((128 + e) as u32) << 23);
    Some((sigma, inv))
}

/// The one-row product on panels of [`NR`] halves, in half arithmetic per depth block.
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
            let (mut lo, mut hi) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
            let mut p0 = 0;
            while p0 < k {
                let b = BLOCK.min(k - p0);
                let x = &a[p0..p0 + b];
                let max = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                let mut done = false;
                if let Some((sigma, inv)) = block_scale(max) {
                    let mut xs = [0.0f32; BLOCK];
                    for (d, &v) in xs.iter_mut().zip(x) {
                        *d = v * sigma;
                    }
                    let xh = narrow(vld1q_f32(xs.as_ptr()), vld1q_f32(xs.as_ptr().add(4)));
                    let mut lanes = [0u16; BLOCK];
                    vst1q_u16(lanes.as_mut_ptr(), xh);
                    let mut acc = vdupq_n_u16(0);
                    for (u, &xb) in lanes.iter().enumerate().take(b) {
                        let wv = vreinterpretq_u16_u8(vld1q_u8(wp.add(16 * (p0 + u))));
                        acc = fmla_h(acc, wv, vdupq_n_u16(xb));
                    }
                    let (sl, sh) = super::aarch64_neon::widen(acc);
                    let big = vmaxvq_f32(vmaxq_f32(vabsq_f32(sl), vabsq_f32(sh)));
                    if big < f32::INFINITY {
                        lo = vfmaq_n_f32(lo, sl, inv);
                        hi = vfmaq_n_f32(hi, sh, inv);
                        done = true;
                    }
                }
                if !done {
                    for (u, &xv) in x.iter().enumerate() {
                        let wv = vreinterpretq_u16_u8(vld1q_u8(wp.add(16 * (p0 + u))));
                        let (wl, wh) = super::aarch64_neon::widen(wv);
                        lo = vfmaq_n_f32(lo, wl, xv);
                        hi = vfmaq_n_f32(hi, wh, xv);
                    }
                }
                p0 += b;
            }
            vst1q_f32(out.as_mut_ptr(), lo);
            vst1q_f32(out.as_mut_ptr().add(4), hi);
        }
        store_panel(panel, NR, &out, c, g);
    }
}
