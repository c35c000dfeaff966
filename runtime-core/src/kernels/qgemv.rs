//! One-row int8 product (a decode step's `QLinear`): `y = act(x · W + bias)` for one
//! quantized activation row over the int8 blob [`qgemm::pack_i8`] lays out, without the
//! GEMM's row blocking. Each variant sums a panel's columns exactly in i32 with several
//! independent accumulators over the depth groups; the shared epilogue
//! ([`qgemm::finish_row`], then the activation) is the GEMM's, so results are bit-identical
//! to [`qgemm::qgemm`] with `m = 1`. Variants, chosen at compile time by the blob's panel
//! width: `x86_avx512` (VNNI `vpdpbusd`, 32 columns), `x86_avx2` (widened to i16 for
//! `vpmaddwd`, 8 columns), `aarch64_neon` (`smull` + `sadalp`, 8 columns, Armv8.0), and
//! [`reference`] (portable, any width; the oracle of the test battery). Other widths (the
//! `sdot` blob of aarch64 `dotprod`) run [`qgemm::qgemm`].
use super::gemm::epilogue;
use super::qgemm::{self, MAX_NR, QGemm, QWeights, finish_row};

/// `c[..n] = act(qa · W + bias)` for one activation row (`g.m == 1`; other row counts run
/// [`qgemm::qgemm`]); the arguments as for [`qgemm::qgemm`].
pub fn qgemv(qa: &[i8], w: QWeights<'_>, c: &mut [f32], g: &QGemm<'_>) {
    if g.m != 1 {
        qgemm::qgemm(qa, w, c, g);
        return;
    }
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx512f",
        target_feature = "avx512bw",
        target_feature = "avx512vnni"
    ))]
    if w.nr == x86_avx512::NR {
        // SAFETY: this code is compiled with AVX-512F/BW/VNNI enabled, so the CPU has them.
        drive(qa, &w, c, g, |a, p, s| unsafe {
            x86_avx512::panel_sums(a, p, s)
        });
        return;
    }
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    if w.nr == x86_avx2::NR {
        // SAFETY: this code is compiled with AVX2 enabled, so the CPU has it.
        drive(qa, &w, c, g, |a, p, s| unsafe {
            x86_avx2::panel_sums(a, p, s)
        });
        return;
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    if w.nr == aarch64_neon::NR {
        drive(qa, &w, c, g, aarch64_neon::panel_sums);
        return;
    }
    qgemm::qgemm(qa, w, c, g);
}

/// Every panel of `w`: `sums(a, panel, out)` fills the panel's `nr` exact column sums
/// `Σ_p a[p] · w(p, c)`, then the GEMM's epilogue writes the panel's columns of `c`.
#[inline(always)]
fn drive(
    qa: &[i8],
    w: &QWeights<'_>,
    c: &mut [f32],
    g: &QGemm<'_>,
    mut sums: impl FnMut(&[i8], &[i8], &mut [i32]),
) {
    check(qa, w, c, g);
    let (n, nr, kp) = (g.n, w.nr, w.kp);
    let a = &qa[..kp];
    let mut acc = [0i32; MAX_NR];
    for panel in 0..n.div_ceil(nr) {
        let col0 = panel * nr;
        let cols = nr.min(n - col0);
        sums(a, w.panel(panel), &mut acc[..nr]);
        let out = &mut c[col0..col0 + cols];
        finish_row(
            out,
            &acc[..cols],
            &w.scales[col0..col0 + cols],
            &w.sums[col0..col0 + cols],
            (g.a_scales[0], g.a_zero_points[0]),
            g.bias.map(|b| &b[col0..col0 + cols]),
        );
        epilogue(out, None, g.activation);
    }
}

/// The bounds every access of [`drive`] and the variants relies on (one row).
fn check(qa: &[i8], w: &QWeights<'_>, c: &[f32], g: &QGemm<'_>) {
    assert!(g.m == 1 && g.k == w.k && g.n == w.n && w.nr > 0 && w.nr <= MAX_NR);
    assert!(qa.len() >= w.kp && w.kp.is_multiple_of(qgemm::DEPTH_GROUP) && c.len() >= g.n);
    assert!(w.panels.len() >= g.n.div_ceil(w.nr) * w.kp * w.nr);
    assert!(w.scales.len() >= g.n && w.sums.len() >= g.n);
    assert!(!g.a_scales.is_empty() && !g.a_zero_points.is_empty());
    if let Some(bias) = g.bias {
        assert!(bias.len() >= g.n);
    }
}

/// The portable loops: the oracle of the test battery.
pub mod reference {
    use super::*;

    /// `out[c] = Σ_p a[p] · panel(p, c)` (wrapping i32) for one panel of `out.len()` columns.
    pub fn panel_sums(a: &[i8], panel: &[i8], out: &mut [i32]) {
        let nr = out.len();
        out.fill(0);
        for (a4, w) in a.chunks_exact(4).zip(panel.chunks_exact(4 * nr)) {
            let (a0, a1, a2, a3) = (a4[0] as i32, a4[1] as i32, a4[2] as i32, a4[3] as i32);
            for (o, w4) in out.iter_mut().zip(w.chunks_exact(4)) {
                let dot =
                    a0 * w4[0] as i32 + a1 * w4[1] as i32 + a2 * w4[2] as i32 + a3 * w4[3] as i32;
                *o = o.wrapping_add(dot);
            }
        }
    }

    /// [`super::qgemv`] over [`panel_sums`], for any panel width.
    pub fn qgemv(qa: &[i8], w: QWeights<'_>, c: &mut [f32], g: &QGemm<'_>) {
        drive(qa, &w, c, g, panel_sums);
    }
}

/// AVX-512 VNNI over 32-column panels: a depth group of 4 is 128 bytes (two registers);
/// `vpdpbusd` multiplies the weights made unsigned (`w ^ 0x80` = `w + 128`) by the
/// broadcast activations, four groups in flight in independent accumulators, and
/// `128 · Σ a` is subtracted at the end (exact in wrapping i32).
#[cfg(target_arch = "x86_64")]
pub mod x86_avx512 {
    use core::arch::x86_64::*;

    /// Panel width.
    pub const NR: usize = 32;

    /// See [`super::reference::panel_sums`] (`out.len() == NR`).
    ///
    /// # Safety
    /// The CPU must support AVX-512F, AVX-512BW and AVX-512 VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    // SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
    pub unsafe fn panel_sums(a: &[i8], panel: &[i8], out: &mut [i32]) {
        let groups = a.len() / 4;
        assert!(out.len() == NR && panel.len() >= groups * 4 * NR);
        // SAFETY: group `g < groups` reads `a[4g..4g + 4]` and `panel[128g..128g + 128]`
        // (checked above); the stores write `out[0..32]`.
        unsafe {
            let flip = _mm512_set1_epi8(-128);
            let ones = _mm512_set1_epi8(1);
            let (ap, wp) = (a.as_ptr(), panel.as_ptr());
            let mut fix = _mm512_setzero_si512();
            let mut p = 0;
            while p < a.len() {
                let left = a.len() - p;
                let mask = if left >= 64 { !0 } else { (1u64 << left) - 1 };
                fix = _mm512_dpbusd_epi32(fix, ones, _mm512_maskz_loadu_epi8(mask, ap.add(p)));
                p += 64;
            }
            let group = |g: usize, acc: &mut [__m512i; 2]| {
                let x = _mm512_set1_epi32(ap.add(4 * g).cast::<i32>().read_unaligned());
                let w0 = _mm512_xor_si512(_mm512_loadu_si512(wp.add(128 * g).cast()), flip);
                let w1 = _mm512_xor_si512(_mm512_loadu_si512(wp.add(128 * g + 64).cast()), flip);
                acc[0] = _mm512_dpbusd_epi32(acc[0], w0, x);
                acc[1] = _mm512_dpbusd_epi32(acc[1], w1, x);
            };
            // Four groups in flight, each in its own named accumulators (kept in registers).
            let (mut a0, mut a1, mut a2, mut a3) = (
                [_mm512_setzero_si512(); 2],
                [_mm512_setzero_si512(); 2],
                [_mm512_setzero_si512(); 2],
                [_mm512_setzero_si512(); 2],
            );
            let mut g = 0;
            while g + 4 <= groups {
                group(g, &mut a0);
                group(g + 1, &mut a1);
                group(g + 2, &mut a2);
                group(g + 3, &mut a3);
                g += 4;
            }
            while g < groups {
                group(g, &mut a0);
                g += 1;
            }
            let acc = [a0[0], a0[1], a1[0], a1[1], a2[0], a2[1], a3[0], a3[1]];
            let fix = _mm512_set1_epi32(_mm512_reduce_add_epi32(fix).wrapping_mul(128));
            let lo = _mm512_add_epi32(
                _mm512_add_epi32(acc[0], acc[2]),
                _mm512_add_epi32(acc[4], acc[6]),
            );
            let hi = _mm512_add_epi32(
                _mm512_add_epi32(acc[1], acc[3]),
                _mm512_add_epi32(acc[5], acc[7]),
            );
            let o = out.as_mut_ptr();
            _mm512_storeu_si512(o.cast(), _mm512_sub_epi32(lo, fix));
            _mm512_storeu_si512(o.add(16).cast(), _mm512_sub_epi32(hi, fix));
        }
    }
}

/// AVX2 over 8-column panels: a depth group is 32 bytes; each 16-byte half (4 columns × 4
/// depths) is widened to i16 and multiplied by the group's 4 activations (repeated) with
/// `vpmaddwd`, two groups in flight; the pair sums are added horizontally at the end.
#[cfg(target_arch = "x86_64")]
pub mod x86_avx2 {
    use core::arch::x86_64::*;

    /// Panel width.
    pub const NR: usize = 8;

    /// See [`super::reference::panel_sums`] (`out.len() == NR`).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    // SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
    pub unsafe fn panel_sums(a: &[i8], panel: &[i8], out: &mut [i32]) {
        let groups = a.len() / 4;
        assert!(out.len() == NR && panel.len() >= groups * 4 * NR);
        // SAFETY: group `g < groups` reads `a[4g..4g + 4]` and `panel[32g..32g + 32]`
        // (checked above); the store writes `out[0..8]`.
        unsafe {
            let (ap, wp) = (a.as_ptr(), panel.as_ptr());
            let group = |g: usize, acc: &mut [__m256i; 2]| {
                let x4 = _mm_set1_epi32(ap.add(4 * g).cast::<i32>().read_unaligned());
                let x = _mm256_cvtepi8_epi16(x4);
                let w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(wp.add(32 * g).cast()));
                let w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(wp.add(32 * g + 16).cast()));
                acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(w0, x));
                acc[1] = _mm256_add_epi32(acc[1], _mm256_madd_epi16(w1, x));
            };
            let (mut a0, mut a1) = ([_mm256_setzero_si256(); 2], [_mm256_setzero_si256(); 2]);
            let mut g = 0;
            while g + 2 <= groups {
                group(g, &mut a0);
                group(g + 1, &mut a1);
                g += 2;
            }
            if g < groups {
                group(g, &mut a0);
            }
            let acc = [a0[0], a0[1], a1[0], a1[1]];
            // Lanes of `lo`: columns 0,0,1,1 | 2,2,3,3 (two pair sums each); `hi` 4..7.
            let lo = _mm256_add_epi32(acc[0], acc[2]);
            let hi = _mm256_add_epi32(acc[1], acc[3]);
            let s = _mm256_hadd_epi32(lo, hi);
            let s = _mm256_permute4x64_epi64::<0b11_01_10_00>(s);
            _mm256_storeu_si256(out.as_mut_ptr().cast(), s);
        }
    }
}

/// NEON (Armv8.0, so the Cortex-A72 build runs it) over 8-column panels: a depth group is
/// 32 bytes; `smull` multiplies 2 columns × 4 depths by the group's activations (repeated)
/// to i16 and `sadalp` adds the pairs into one accumulator per column pair.
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
pub mod aarch64_neon {
    use core::arch::aarch64::*;

    /// Panel width.
    pub const NR: usize = 8;

    /// See [`super::reference::panel_sums`] (`out.len() == NR`).
    pub fn panel_sums(a: &[i8], panel: &[i8], out: &mut [i32]) {
        let groups = a.len() / 4;
        assert!(out.len() == NR && panel.len() >= groups * 4 * NR);
        // SAFETY: NEON is enabled at compile time; group `g < groups` reads `a[4g..4g + 4]`
        // and `panel[32g..32g + 32]` (checked above); the stores write `out[0..8]`.
        unsafe {
            let (ap, wp) = (a.as_ptr(), panel.as_ptr());
            let mut acc = [vdupq_n_s32(0); 4];
            for g in 0..groups {
                let x =
                    vreinterpret_s8_s32(vdup_n_s32(ap.add(4 * g).cast::<i32>().read_unaligned()));
                for (c, acc) in acc.iter_mut().enumerate() {
                    let w = vld1_s8(wp.add(32 * g + 8 * c));
                    *acc = vpadalq_s16(*acc, vmull_s8(w, x));
                }
            }
            let o = out.as_mut_ptr();
            vst1q_s32(o, vpaddq_s32(acc[0], acc[1]));
            vst1q_s32(o.add(4), vpaddq_s32(acc[2], acc[3]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::gemm::{Activation, Tiles};
    use crate::kernels::qgemm::{pack_i8, packed_i8_bytes, qa_stride, quantize_rows_symmetric};
    use crate::kernels::test_values as values;
    use std::vec;
    use std::vec::Vec;

    type Sums = fn(&[i8], &[i8], &mut [i32]);

    /// The panel-sum variants runnable here, with the panel width each reads.
    fn variants() -> Vec<(&'static str, usize, Sums)> {
        let mut v: Vec<(&'static str, usize, Sums)> = vec![
            ("reference8", 8, reference::panel_sums),
            ("reference5", 5, reference::panel_sums),
        ];
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 was detected above.
                v.push(("x86_avx2", x86_avx2::NR, |a, p, s| unsafe {
                    x86_avx2::panel_sums(a, p, s)
                }));
            }
            if std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vnni")
            {
                // SAFETY: AVX-512F/BW/VNNI were detected above.
                v.push(("x86_avx512", x86_avx512::NR, |a, p, s| unsafe {
                    x86_avx512::panel_sums(a, p, s)
                }));
            }
        }
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        v.push(("aarch64_neon", aarch64_neon::NR, aarch64_neon::panel_sums));
        v
    }

    /// Every variant (its panel sums driven as [`qgemv`] drives them) against the
    /// portable int8 GEMM with one row, bit for bit: depths that are not a multiple of 4 or
    /// of 64, column counts with partial panels, extreme bytes (−128 activations and
    /// weights), bias and activation epilogues.
    #[test]
    fn variants_match_the_gemm_bit_for_bit() {
        for (name, nr, sums) in variants() {
            for &(k, n) in &[
                (1, 1),
                (3, 7),
                (4, 8),
                (64, 32),
                (64, 172),
                (172, 64),
                (257, 33),
            ] {
                for case in 0..3 {
                    let mut wf = values(k * n, (k * 31 + n) as u32);
                    let mut x = values(k, (k + 7 * n) as u32);
                    if case == 1 {
                        // Saturated bytes: every weight column and the row reach ±127/−128.
                        wf.iter_mut().for_each(|v| *v = v.signum());
                        x.iter_mut()
                            .for_each(|v| *v = if *v < 0.0 { -1.0 } else { 1.0 });
                    }
                    let mut q = vec![0i8; k * n];
                    let mut scales = vec![0f32; n];
                    qgemm::quantize_weights_i8(&wf, k, n, &mut q, &mut scales);
                    if case == 1 {
                        q.iter_mut()
                            .for_each(|v| *v = if *v < 0 { -128 } else { *v });
                    }
                    let mut blob = vec![0u8; packed_i8_bytes(k, n, nr) + 4];
                    let at = blob.as_ptr().align_offset(4);
                    let blob = &mut blob[at..at + packed_i8_bytes(k, n, nr)];
                    pack_i8(&q, &scales, k, n, nr, blob);
                    let w = QWeights::new(blob, k, n, nr);
                    let mut qa = vec![0i8; qa_stride(k)];
                    let (mut sa, mut zp) = ([0f32], [0i32]);
                    quantize_rows_symmetric(&x, 1, k, k, &mut qa, &mut sa, &mut zp);
                    if case == 1 {
                        qa[..k]
                            .iter_mut()
                            .for_each(|v| *v = if *v < 0 { -128 } else { *v });
                    }
                    let bias = values(n, 3);
                    let g = QGemm {
                        m: 1,
                        k,
                        n,
                        ldc: n,
                        a_scales: &sa,
                        a_zero_points: &zp,
                        bias: (case != 0).then_some(&bias[..]),
                        activation: if case == 2 {
                            Activation::Silu
                        } else {
                            Activation::None
                        },
                        tiles: Tiles {
                            mr: 4,
                            kc: 64,
                            mc: 8,
                        },
                    };
                    let mut want = vec![0f32; n];
                    qgemm::reference::qgemm(&qa, w, &mut want, &g);
                    let mut got = vec![f32::NAN; n];
                    drive(&qa, &w, &mut got, &g, sums);
                    assert_eq!(
                        got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        "{name} k {k} n {n} case {case}"
                    );
                    // The compiled-in dispatch gives the same bits for any panel width.
                    let mut got = vec![f32::NAN; n];
                    qgemv(&qa, w, &mut got, &g);
                    assert_eq!(
                        got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        "qgemv nr {nr} k {k} n {n} case {case}"
                    );
                }
            }
        }
    }
}
