//! x86-64 AVX-512F row kernels: 16 lanes per vector (the primitives; the kernels are
//! `rowwise_kernels!`'s).
use core::arch::x86_64::*;

type V = __m512;
const W: usize = 16;

#[inline]
#[target_feature(enable = "avx512f")]
fn splat(x: f32) -> V {
    _mm512_set1_ps(x)
}
#[inline]
#[target_feature(enable = "avx512f")]
fn add(a: V, b: V) -> V {
    _mm512_add_ps(a, b)
}
#[inline]
#[target_feature(enable = "avx512f")]
fn sub(a: V, b: V) -> V {
    _mm512_sub_ps(a, b)
}
#[inline]
#[target_feature(enable = "avx512f")]
fn mul(a: V, b: V) -> V {
    _mm512_mul_ps(a, b)
}
#[inline]
#[target_feature(enable = "avx512f")]
fn div(a: V, b: V) -> V {
    _mm512_div_ps(a, b)
}
/// `a > b ? a : b` (`vmaxps` returns its second operand on NaN).
#[inline]
#[target_feature(enable = "avx512f")]
fn max(a: V, b: V) -> V {
    _mm512_max_ps(a, b)
}
/// `a < b ? a : b`.
#[inline]
#[target_feature(enable = "avx512f")]
fn min(a: V, b: V) -> V {
    _mm512_min_ps(a, b)
}
/// `2^n` for `t = 1.5 · 2^23 + n`.
#[inline]
#[target_feature(enable = "avx512f")]
fn pow2n(t: V) -> V {
    let n = _mm512_add_epi32(
        _mm512_castps_si512(t),
        _mm512_set1_epi32(127i32.wrapping_sub(0x4B40_0000)),
    );
    _mm512_castsi512_ps(_mm512_slli_epi32::<23>(n))
}
/// # Safety
/// AVX-512F; `p` has 16 readable elements.
#[inline]
#[target_feature(enable = "avx512f")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
unsafe fn load(p: *const f32) -> V {
    // SAFETY: the caller's contract.
    unsafe { _mm512_loadu_ps(p) }
}
/// # Safety
/// AVX-512F; `p` has 16 writable elements.
#[inline]
#[target_feature(enable = "avx512f")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
unsafe fn store(p: *mut f32, v: V) {
    // SAFETY: the caller's contract.
    unsafe { _mm512_storeu_ps(p, v) }
}

rowwise_kernels!("avx512f");
