//! aarch64 NEON row kernels (Armv8.0, so they run on Cortex-A72): 4 lanes per vector (the
//! primitives; the kernels are `rowwise_kernels!`'s).
use core::arch::aarch64::*;

type V = float32x4_t;
const W: usize = 4;

#[inline]
#[target_feature(enable = "neon")]
fn splat(x: f32) -> V {
    vdupq_n_f32(x)
}
#[inline]
#[target_feature(enable = "neon")]
fn add(a: V, b: V) -> V {
    vaddq_f32(a, b)
}
#[inline]
#[target_feature(enable = "neon")]
fn sub(a: V, b: V) -> V {
    vsubq_f32(a, b)
}
#[inline]
#[target_feature(enable = "neon")]
fn mul(a: V, b: V) -> V {
    vmulq_f32(a, b)
}
#[inline]
#[target_feature(enable = "neon")]
fn div(a: V, b: V) -> V {
    vdivq_f32(a, b)
}
/// `a > b ? a : b` (a compare and select: `fmax` would propagate a NaN).
#[inline]
#[target_feature(enable = "neon")]
fn max(a: V, b: V) -> V {
    vbslq_f32(vcgtq_f32(a, b), a, b)
}
/// `a < b ? a : b`.
#[inline]
#[target_feature(enable = "neon")]
fn min(a: V, b: V) -> V {
    vbslq_f32(vcltq_f32(a, b), a, b)
}
/// `2^n` for `t = 1.5 · 2^23 + n`.
#[inline]
#[target_feature(enable = "neon")]
fn pow2n(t: V) -> V {
    let n = vaddq_s32(
        vreinterpretq_s32_f32(t),
        vdupq_n_s32(127i32.wrapping_sub(0x4B40_0000)),
    );
    vreinterpretq_f32_s32(vshlq_n_s32::<23>(n))
}
/// # Safety
/// `p` has 4 readable elements.
#[inline]
#[target_feature(enable = "neon")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
unsafe fn load(p: *const f32) -> V {
    // SAFETY: the caller's contract.
    unsafe { vld1q_f32(p) }
}
/// # Safety
/// `p` has 4 writable elements.
#[inline]
#[target_feature(enable = "neon")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
unsafe fn store(p: *mut f32, v: V) {
    // SAFETY: the caller's contract.
    unsafe { vst1q_f32(p, v) }
}

rowwise_kernels!("neon");
