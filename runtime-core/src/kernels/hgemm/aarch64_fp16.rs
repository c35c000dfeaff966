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
//!
//! Several rows ([`rows`], prefill) keep the same arithmetic and bound per row: the
//! activations of a chunk of rows are scaled and rounded to half once per call (into the
//! caller's scratch, one `σ` per row and block), then a [`MR`]×[`NR`] micro-kernel multiplies
//! each 8-deep block of a weight panel by [`MR`] rows with `fmla v.8h, w.8h, x.h[lane]` (one
//! weight vector load serves [`MR`] rows) and widens each row's block sums into f32
//! accumulators times `1/σ`. A row whose panel result is not finite (a half block overflowed,
//! or an input or weight was not finite) is recomputed in f32 for that panel, so it is then
//! the reference's; a block whose activations cannot be scaled runs in f32 at once.
use super::{HWeights, check_bounds, store_panel};
use crate::kernels::gemm::Gemm;
use core::arch::aarch64::*;
use core::arch::asm;

/// Panel width (eight half lanes).
pub const NR: usize = 8;
/// Depth steps summed in half precision before widening.
pub const BLOCK: usize = 8;
/// Rows of the multi-row micro-kernel.
pub const MR: usize = 4;

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

/// Eight f32 values (`x`, zero-padded past its length) times `σ`, rounded to half.
#[inline(always)]
fn scaled_halves(x: &[f32], sigma: f32) -> uint16x8_t {
    let mut xs = [0.0f32; BLOCK];
    for (d, &v) in xs.iter_mut().zip(x) {
        *d = v * sigma;
    }
    // SAFETY: `xs` holds eight values.
    unsafe { narrow(vld1q_f32(xs.as_ptr()), vld1q_f32(xs.as_ptr().add(4))) }
}

/// `MR` rows × `NR` columns over one full block: `Σ_u w_u · x_i[u]` in half lanes, for the
/// block's eight weight vectors `w` and each row's eight scaled activations `x[i]`.
#[inline(always)]
fn block_4x8(w: &[uint16x8_t; BLOCK], x: &[uint16x8_t; MR]) -> [uint16x8_t; MR] {
    let (a0, a1, a2, a3): (uint16x8_t, uint16x8_t, uint16x8_t, uint16x8_t);
    macro_rules! step {
        ($l:literal) => {
            concat!(
                "fmla {a0:v}.8h, {w",
                $l,
                ":v}.8h, {x0:v}.h[",
                $l,
                "]\n",
                "fmla {a1:v}.8h, {w",
                $l,
                ":v}.8h, {x1:v}.h[",
                $l,
                "]\n",
                "fmla {a2:v}.8h, {w",
                $l,
                ":v}.8h, {x2:v}.h[",
                $l,
                "]\n",
                "fmla {a3:v}.8h, {w",
                $l,
                ":v}.8h, {x3:v}.h[",
                $l,
                "]\n",
            )
        };
    }
    // SAFETY: Armv8.2 `fp16` arithmetic (this module is compiled only with it) on the named
    // registers; the by-element operands are in v0–v15 (`vreg_low16`) as the encoding needs;
    // no memory, no flags (FPCR default: round to nearest, no traps).
    unsafe {
        asm!(
            "fmul {a0:v}.8h, {w0:v}.8h, {x0:v}.h[0]",
            "fmul {a1:v}.8h, {w0:v}.8h, {x1:v}.h[0]",
            "fmul {a2:v}.8h, {w0:v}.8h, {x2:v}.h[0]",
            "fmul {a3:v}.8h, {w0:v}.8h, {x3:v}.h[0]",
            step!(1),
            step!(2),
            step!(3),
            step!(4),
            step!(5),
            step!(6),
            step!(7),
            w0 = in(vreg) w[0],
            w1 = in(vreg) w[1],
            w2 = in(vreg) w[2],
            w3 = in(vreg) w[3],
            w4 = in(vreg) w[4],
            w5 = in(vreg) w[5],
            w6 = in(vreg) w[6],
            w7 = in(vreg) w[7],
            x0 = in(vreg_low16) x[0],
            x1 = in(vreg_low16) x[1],
            x2 = in(vreg_low16) x[2],
            x3 = in(vreg_low16) x[3],
            a0 = out(vreg) a0,
            a1 = out(vreg) a1,
            a2 = out(vreg) a2,
            a3 = out(vreg) a3,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    [a0, a1, a2, a3]
}

/// Scratch `f32` values [`rows`] needs per row of a chunk: the scaled activations as halves
/// (`BLOCK` per block, two per value) and one `1/σ` per block.
const fn per_row(k: usize) -> usize {
    k.div_ceil(BLOCK) * (BLOCK / 2 + 1)
}

/// Several rows on panels of [`NR`] halves in half arithmetic per depth block (the bound of
/// the module doc, per row). `scratch` is the convert-then-GEMM path's (`k·NR` values,
/// [`super::scratch_len`]); when it cannot hold [`MR`] rows of scaled activations (depth
/// below 5) that path runs instead.
pub fn rows(a: &[f32], w: HWeights<'_>, c: &mut [f32], g: &Gemm<'_>, scratch: &mut [f32]) {
    assert!(w.nr == NR);
    check_bounds(a, &w, c, g);
    let (m, k) = (g.m, g.k);
    if m == 0 || g.n == 0 {
        return;
    }
    let (kb, per) = (k.div_ceil(BLOCK), per_row(k));
    let fit = scratch.len() / per / MR * MR;
    if fit == 0 {
        super::rows(a, w, c, g, scratch, super::aarch64_neon::convert);
        return;
    }
    let mut i0 = 0;
    while i0 < m {
        let here = fit.min(m - i0);
        let padded = here.next_multiple_of(MR);
        let (xh, inv) = scratch[..padded * per].split_at_mut(padded * kb * BLOCK / 2);
        // Scale and round the chunk's activations: row `r`, block `q` → halves at
        // `(r·kb + q)·BLOCK`, `1/σ` at `inv[q·padded + r]` (0: the block runs in f32; 1 for
        // the zero rows padding the last group), so a group's four scales are one vector.
        let xp = xh.as_mut_ptr() as *mut u16;
        for r in 0..padded {
            for q in 0..kb {
                let (h, s) = match (r < here).then(|| {
                    let row = &a[(i0 + r) * g.lda..][..k];
                    let x = &row[q * BLOCK..k.min((q + 1) * BLOCK)];
                    (x, block_scale(x.iter().fold(0.0f32, |m, v| m.max(v.abs()))))
                }) {
                    Some((x, Some((sigma, inv)))) => (Some((x, sigma)), inv),
                    Some((_, None)) => (None, 0.0),
                    None => (None, 1.0),
                };
                // SAFETY: `xh` holds `padded·kb·BLOCK` halves (two per f32, which is at
                // least as aligned as u16); this writes halves `(r·kb + q)·BLOCK ..+ 8`.
                unsafe {
                    let h = match h {
                        Some((x, sigma)) => scaled_halves(x, sigma),
                        None => vdupq_n_u16(0),
                    };
                    vst1q_u16(xp.add((r * kb + q) * BLOCK), h);
                }
                inv[q * padded + r] = s;
            }
        }
        let xh = &*xh;
        let xp = xh.as_ptr() as *const u16;
        for panel in 0..g.n.div_ceil(NR) {
            let bytes = w.panel(panel);
            assert!(bytes.len() >= 16 * k);
            let wp = bytes.as_ptr();
            for r0 in (0..here).step_by(MR) {
                let mut acc = [[0.0f32; NR]; MR];
                // SAFETY: depth step `p < k` reads bytes `16p..16p+16` of the panel (checked
                // above); row `r0 + i < padded`, block `q < kb` reads halves inside `xh`.
                unsafe {
                    let mut f = [[vdupq_n_f32(0.0); 2]; MR];
                    for q in 0..kb {
                        let p0 = q * BLOCK;
                        let b = BLOCK.min(k - p0);
                        let xv: [uint16x8_t; MR] = core::array::from_fn(|i| {
                            vld1q_u16(xp.add(((r0 + i) * kb + q) * BLOCK))
                        });
                        let sums = if b == BLOCK {
                            let wv: [uint16x8_t; BLOCK] = core::array::from_fn(|u| {
                                vreinterpretq_u16_u8(vld1q_u8(wp.add(16 * (p0 + u))))
                            });
                            block_4x8(&wv, &xv)
                        } else {
                            let mut s = [vdupq_n_u16(0); MR];
                            let mut lanes = [[0u16; BLOCK]; MR];
                            for (l, v) in lanes.iter_mut().zip(&xv) {
                                vst1q_u16(l.as_mut_ptr(), *v);
                            }
                            for u in 0..b {
                                let wv = vreinterpretq_u16_u8(vld1q_u8(wp.add(16 * (p0 + u))));
                                for (s, l) in s.iter_mut().zip(&lanes) {
                                    *s = fmla_h(*s, wv, vdupq_n_u16(l[u]));
                                }
                            }
                            s
                        };
                        let scales = &inv[q * padded + r0..][..MR];
                        if scales.iter().all(|&s| s != 0.0) {
                            let sv = vld1q_f32(scales.as_ptr());
                            macro_rules! widen_row {
                                ($i:literal) => {
                                    let (sl, sh) = super::aarch64_neon::widen(sums[$i]);
                                    f[$i][0] = vfmaq_laneq_f32::<$i>(f[$i][0], sl, sv);
                                    f[$i][1] = vfmaq_laneq_f32::<$i>(f[$i][1], sh, sv);
                                };
                            }
                            widen_row!(0);
                            widen_row!(1);
                            widen_row!(2);
                            widen_row!(3);
                            continue;
                        }
                        for (i, (f, s)) in f.iter_mut().zip(sums).enumerate() {
                            let scale = scales[i];
                            if scale != 0.0 {
                                let (sl, sh) = super::aarch64_neon::widen(s);
                                f[0] = vfmaq_n_f32(f[0], sl, scale);
                                f[1] = vfmaq_n_f32(f[1], sh, scale);
                            } else if r0 + i < here {
                                let row = &a[(i0 + r0 + i) * g.lda..][..k];
                                for (u, &xv) in row[p0..p0 + b].iter().enumerate() {
                                    let wv = vld1q_u8(wp.add(16 * (p0 + u)));
                                    let (wl, wh) =
                                        super::aarch64_neon::widen(vreinterpretq_u16_u8(wv));
                                    f[0] = vfmaq_n_f32(f[0], wl, xv);
                                    f[1] = vfmaq_n_f32(f[1], wh, xv);
                                }
                            }
                        }
                    }
                    for (o, f) in acc.iter_mut().zip(&f) {
                        vst1q_f32(o.as_mut_ptr(), f[0]);
                        vst1q_f32(o.as_mut_ptr().add(4), f[1]);
                    }
                }
                for (i, out) in acc.iter_mut().enumerate().take(here - r0) {
                    let row = i0 + r0 + i;
                    if !out.iter().all(|v| v.is_finite()) {
                        f32_panel(&a[row * g.lda..][..k], bytes, out);
                    }
                    store_panel(panel, NR, out, &mut c[row * g.ldc..], g);
                }
            }
        }
        i0 += here;
    }
}

/// One row times one panel in f32 (`fcvtl` + f32 `fmla`, the reference's arithmetic up to
/// summation order): the fallback of a row whose half blocks did not stay finite.
fn f32_panel(x: &[f32], panel: &[u8], out: &mut [f32; NR]) {
    assert!(panel.len() >= 16 * x.len());
    // SAFETY: depth step `p < x.len()` reads bytes `16p..16p+16` of the panel (checked above).
    unsafe {
        let (mut lo, mut hi) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
        for (p, &xv) in x.iter().enumerate() {
            let wv = vreinterpretq_u16_u8(vld1q_u8(panel.as_ptr().add(16 * p)));
            let (wl, wh) = super::aarch64_neon::widen(wv);
            lo = vfmaq_n_f32(lo, wl, xv);
            hi = vfmaq_n_f32(hi, wh, xv);
        }
        vst1q_f32(out.as_mut_ptr(), lo);
        vst1q_f32(out.as_mut_ptr().add(4), hi);
    }
}
