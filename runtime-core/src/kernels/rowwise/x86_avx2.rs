//! x86-64 AVX2 + FMA row kernels: 8 lanes per vector (the primitives; the kernels are
//! `rowwise_kernels!`'s).
use core::arch::x86_64::*;

type V = __m256;
const W: usize = 8;

#[inline]
#[target_feature(enable = "avx2,fma")]
fn splat(x: f32) -> V {
    _mm256_set1_ps(x)
}
#[inline]
#[target_feature(enable = "avx2,fma")]
fn add(a: V, b: V) -> V {
    _mm256_add_ps(a, b)
}
#[inline]
#[target_feature(enable = "avx2,fma")]
fn sub(a: V, b: V) -> V {
    _mm256_sub_ps(a, b)
}
#[inline]
#[target_feature(enable = "avx2,fma")]
fn mul(a: V, b: V) -> V {
    _mm256_mul_ps(a, b)
}
#[inline]
#[target_feature(enable = "avx2,fma")]
fn div(a: V, b: V) -> V {
    _mm256_div_ps(a, b)
}
/// `a > b ? a : b` (`vmaxps` returns its second operand on NaN).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn max(a: V, b: V) -> V {
    _mm256_max_ps(a, b)
}
/// `a < b ? a : b`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn min(a: V, b: V) -> V {
    _mm256_min_ps(a, b)
}
/// `2^n` for `t = 1.5 · 2^23 + n`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn pow2n(t: V) -> V {
    let n = _mm256_add_epi32(
        _mm256_castps_si256(t),
        _mm256_set1_epi32(127i32.wrapping_sub(0x4B40_0000)),
    );
    _mm256_castsi256_ps(_mm256_slli_epi32::<23>(n))
}
/// # Safety
/// AVX2; `p` has 8 readable elements.
#[inline]
#[target_feature(enable = "avx2,fma")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
unsafe fn load(p: *const f32) -> V {
    // SAFETY: the caller's contract.
    unsafe { _mm256_loadu_ps(p) }
}
/// # Safety
/// AVX2; `p` has 8 writable elements.
#[inline]
#[target_feature(enable = "avx2,fma")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
unsafe fn store(p: *mut f32, v: V) {
    // SAFETY: the caller's contract.
    unsafe { _mm256_storeu_ps(p, v) }
}

rowwise_kernels!("avx2,fma");
