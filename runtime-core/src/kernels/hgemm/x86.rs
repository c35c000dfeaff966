//! x86-64 half-weight kernels: F16C `vcvtph2ps` widens 8 (AVX2) or 16 (AVX-512F) halves per
//! instruction, then f32 FMA. The one-row products keep four depth steps in flight (four
//! accumulator sets) so the FMA latency does not serialise the loop.
use super::{HWeights, check_bounds, store_panel as store};
use crate::kernels::gemm::Gemm;
use core::arch::x86_64::*;

/// Panel width of [`gemv_avx2`] (the AVX2 f32 GEMM's).
pub const NR_AVX2: usize = 16;
/// Panel width of [`gemv_avx512`] (the AVX-512 f32 GEMM's).
pub const NR_AVX512: usize = 32;

/// Convert packed half bytes to f32 (`panel.len() >= 2·out.len()`).
///
/// # Safety
/// The CPU must support F16C and AVX.
#[target_feature(enable = "avx,f16c")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
pub unsafe fn convert_f16c(panel: &[u8], out: &mut [f32]) {
    assert!(panel.len() >= 2 * out.len());
    let n = out.len();
    let mut i = 0;
    // SAFETY: element `i + 7 < n` is in bounds of `out`, and its two bytes of `panel`.
    unsafe {
        while i + 8 <= n {
            let h = _mm_loadu_si128(panel.as_ptr().add(2 * i) as *const __m128i);
            _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
            i += 8;
        }
    }
    super::reference::convert(&panel[2 * i..], &mut out[i..]);
}

/// The one-row product on panels of [`NR_AVX2`] halves.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
pub unsafe fn gemv_avx2(a: &[f32], w: HWeights<'_>, c: &mut [f32], g: &Gemm<'_>) {
    assert!(w.nr == NR_AVX2 && g.m == 1);
    check_bounds(a, &w, c, g);
    let k = g.k;
    for panel in 0..g.n.div_ceil(NR_AVX2) {
        let bytes = w.panel(panel);
        let wp = bytes.as_ptr() as *const __m128i;
        let mut out = [0.0f32; NR_AVX2];
        // SAFETY: the panel holds `k·16` halves (checked by `check_bounds` via `panel`);
        // depth step `p < k` reads halves `16p..16p+16`, `a` has `k` values.
        unsafe {
            let mut acc = [[_mm256_setzero_ps(); 2]; 4];
            let mut p = 0;
            while p + 4 <= k {
                for (u, acc) in acc.iter_mut().enumerate() {
                    let x = _mm256_set1_ps(*a.get_unchecked(p + u));
                    let row = wp.add(2 * (p + u));
                    acc[0] = _mm256_fmadd_ps(x, _mm256_cvtph_ps(_mm_loadu_si128(row)), acc[0]);
                    acc[1] =
                        _mm256_fmadd_ps(x, _mm256_cvtph_ps(_mm_loadu_si128(row.add(1))), acc[1]);
                }
                p += 4;
            }
            while p < k {
                let x = _mm256_set1_ps(*a.get_unchecked(p));
                let row = wp.add(2 * p);
                acc[0][0] = _mm256_fmadd_ps(x, _mm256_cvtph_ps(_mm_loadu_si128(row)), acc[0][0]);
                acc[0][1] =
                    _mm256_fmadd_ps(x, _mm256_cvtph_ps(_mm_loadu_si128(row.add(1))), acc[0][1]);
                p += 1;
            }
            let [a0, a1, a2, a3] = acc;
            for (h, o) in out.chunks_exact_mut(8).enumerate() {
                let s = _mm256_add_ps(_mm256_add_ps(a0[h], a1[h]), _mm256_add_ps(a2[h], a3[h]));
                _mm256_storeu_ps(o.as_mut_ptr(), s);
            }
        }
        store(panel, NR_AVX2, &out, c, g);
    }
}

/// The one-row product on panels of [`NR_AVX512`] halves.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
pub unsafe fn gemv_avx512(a: &[f32], w: HWeights<'_>, c: &mut [f32], g: &Gemm<'_>) {
    assert!(w.nr == NR_AVX512 && g.m == 1);
    check_bounds(a, &w, c, g);
    let k = g.k;
    for panel in 0..g.n.div_ceil(NR_AVX512) {
        let bytes = w.panel(panel);
        let wp = bytes.as_ptr() as *const __m256i;
        let mut out = [0.0f32; NR_AVX512];
        // SAFETY: the panel holds `k·32` halves; depth step `p < k` reads halves
        // `32p..32p+32`, `a` has `k` values.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); 2]; 4];
            let mut p = 0;
            while p + 4 <= k {
                for (u, acc) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_ps(*a.get_unchecked(p + u));
                    let row = wp.add(2 * (p + u));
                    acc[0] = _mm512_fmadd_ps(x, _mm512_cvtph_ps(_mm256_loadu_si256(row)), acc[0]);
                    acc[1] =
                        _mm512_fmadd_ps(x, _mm512_cvtph_ps(_mm256_loadu_si256(row.add(1))), acc[1]);
                }
                p += 4;
            }
            while p < k {
                let x = _mm512_set1_ps(*a.get_unchecked(p));
                let row = wp.add(2 * p);
                acc[0][0] = _mm512_fmadd_ps(x, _mm512_cvtph_ps(_mm256_loadu_si256(row)), acc[0][0]);
                acc[0][1] = _mm512_fmadd_ps(
                    x,
                    _mm512_cvtph_ps(_mm256_loadu_si256(row.add(1))),
                    acc[0][1],
                );
                p += 1;
            }
            let [a0, a1, a2, a3] = acc;
            for (h, o) in out.chunks_exact_mut(16).enumerate() {
                let s = _mm512_add_ps(_mm512_add_ps(a0[h], a1[h]), _mm512_add_ps(a2[h], a3[h]));
                _mm512_storeu_ps(o.as_mut_ptr(), s);
            }
        }
        store(panel, NR_AVX512, &out, c, g);
    }
}
