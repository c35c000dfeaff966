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
    if g.m != 1 || !native(qa, &w, c, g, Store::Write) {
        qgemm::qgemm(qa, w, c, g);
    }
}

/// `c[..n] = act(qa · W + bias) + r[..n]` for one activation row (a residual add in the
/// epilogue; the same bits as [`qgemv`] followed by the addition). Any row count: more rows
/// run [`qgemm::qgemm_residual`].
pub fn qgemv_residual(qa: &[i8], w: QWeights<'_>, c: &mut [f32], g: &QGemm<'_>, r: &[f32]) {
    let len = g.m * g.n;
    assert!(r.len() >= len && g.ldc == g.n);
    if g.m != 1 {
        qgemm::qgemm_residual(qa, w, c, g, r);
    } else if !native(qa, &w, c, g, Store::Add(r)) {
        qgemm::qgemm(qa, w, c, g);
        super::gemv::add_assign(&mut c[..len], r);
    }
}

/// SwiGLU over one activation row: `c[..n] = act_g(qa · G + bias_g) ⊙ act_u(qa · U +
/// bias_u)` for the gate `(G, g)` and up `(U, u)` products of the same quantized row (equal
/// `n`; the compiler passes a SiLU gate), each panel of the up-projection multiplied in while
/// it is in registers: the same bits as two [`qgemv`]s and an elementwise product.
pub fn qgemv_swiglu(
    qa: &[i8],
    (gw, g): (QWeights<'_>, &QGemm<'_>),
    (uw, u): (QWeights<'_>, &QGemm<'_>),
    c: &mut [f32],
) {
    assert!(g.m == 1 && u.m == 1 && g.n == u.n);
    qgemv(qa, gw, c, g);
    if !native(qa, &uw, c, u, Store::Mul) {
        drive(qa, &uw, c, u, 0, reference::panel_sums, Store::Mul);
    }
}

/// Columns finished per activation call (a stack tile of f32, at least one panel).
const BLOCK: usize = 256;

/// How a finished panel of the product reaches `c`.
#[derive(Clone, Copy)]
enum Store<'a> {
    /// `c = p`.
    Write,
    /// `c = p + r` (the residual, `n` long).
    Add(&'a [f32]),
    /// `c = c ⊙ p` (SwiGLU's up-projection times the gate already in `c`).
    Mul,
}

/// [`drive`] over the panel sums compiled in for `w.nr`; false when there is none (the
/// caller runs [`qgemm::qgemm`] or the portable sums).
#[inline(always)]
#[allow(unused_variables)]
fn native(qa: &[i8], w: &QWeights<'_>, c: &mut [f32], g: &QGemm<'_>, store: Store<'_>) -> bool {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx512f",
        target_feature = "avx512bw",
        target_feature = "avx512vnni"
    ))]
    if w.nr == x86_avx512::NR {
        // SAFETY: this code is compiled with AVX-512F/BW/VNNI enabled, so the CPU has them.
        let sums = |a: &[i8], p: &[i8], s: &mut [i32]| unsafe { x86_avx512::panel_sums(a, p, s) };
        drive(qa, w, c, g, x86_avx512::OFFSET, sums, store);
        return true;
    }
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    if w.nr == x86_avx2::NR {
        // SAFETY: this code is compiled with AVX2 enabled, so the CPU has it.
        let sums = |a: &[i8], p: &[i8], s: &mut [i32]| unsafe { x86_avx2::panel_sums(a, p, s) };
        drive(qa, w, c, g, 0, sums, store);
        return true;
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    if w.nr == aarch64_neon::NR {
        drive(qa, w, c, g, 0, aarch64_neon::panel_sums, store);
        return true;
    }
    false
}

/// Every panel of `w`: `sums(a, panel, out)` fills the panel's `nr` column sums
/// `Σ_p a[p] · w(p, c) + offset · Σ_p w(p, c)` (wrapping i32; `offset` is how far the variant
/// shifted the activations, taken out with the blob's column sums), then the GEMM's epilogue
/// finishes the panel's columns and `store` puts them into `c`.
#[inline(always)]
fn drive(
    qa: &[i8],
    w: &QWeights<'_>,
    c: &mut [f32],
    g: &QGemm<'_>,
    offset: i32,
    mut sums: impl FnMut(&[i8], &[i8], &mut [i32]),
    store: Store<'_>,
) {
    check(qa, w, c, g);
    if let Store::Add(r) = store {
        assert!(r.len() >= g.n);
    }
    let (n, nr, kp) = (g.n, w.nr, w.kp);
    let a = &qa[..kp];
    let zp = (g.a_scales[0], g.a_zero_points[0].wrapping_add(offset));
    let mut acc = [0i32; MAX_NR];
    // Several panels are finished into `tile` before the activation runs over them at once
    // (whole vectors, independent chains); their padding columns are zero here.
    let mut tile = [0f32; BLOCK];
    let per_block = (BLOCK / nr).max(1);
    let panels = n.div_ceil(nr);
    let mut first = 0;
    while first < panels {
        let count = per_block.min(panels - first);
        let col0 = first * nr;
        let cols = (count * nr).min(n - col0);
        for (i, t) in tile[..count * nr].chunks_exact_mut(nr).enumerate() {
            let c0 = col0 + i * nr;
            let pc = nr.min(n - c0);
            sums(a, w.panel(first + i), &mut acc[..nr]);
            finish_row(
                &mut t[..pc],
                &acc[..pc],
                &w.scales[c0..c0 + pc],
                &w.sums[c0..c0 + pc],
                zp,
                g.bias.map(|b| &b[c0..c0 + pc]),
            );
            t[pc..].fill(0.0);
        }
        epilogue(&mut tile[..count * nr], None, g.activation);
        let (out, t) = (&mut c[col0..col0 + cols], &tile[..cols]);
        match store {
            Store::Write => out.copy_from_slice(t),
            Store::Add(r) => {
                for ((o, &p), &r) in out.iter_mut().zip(t).zip(&r[col0..]) {
                    *o = p + r;
                }
            }
            Store::Mul => {
                for (o, &p) in out.iter_mut().zip(t) {
                    *o *= p;
                }
            }
        }
        first += count;
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
        drive(qa, &w, c, g, 0, panel_sums, Store::Write);
    }
}

/// AVX-512 VNNI over 32-column panels: a depth group of 4 is 128 bytes (two registers);
/// `vpdpbusd` multiplies the group's four activations made unsigned (`a ^ 0x80` = `a + 128`,
/// broadcast) by the signed weights, four groups in flight in independent accumulators. The
/// sums are `Σ a·w + 128 · Σ w` ([`OFFSET`]): the driver takes the second term out with the
/// blob's column sums.
#[cfg(target_arch = "x86_64")]
pub mod x86_avx512 {
    use core::arch::x86_64::*;

    /// Panel width.
    pub const NR: usize = 32;
    /// The activation shift of [`panel_sums`].
    pub const OFFSET: i32 = 128;

    /// `out[c] = Σ_p (a[p] + 128) · panel(p, c)` (wrapping i32), `out.len() == NR`.
    ///
    /// # Safety
    /// The CPU must support AVX-512F, AVX-512BW and AVX-512 VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    // SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
    pub unsafe fn panel_sums(a: &[i8], panel: &[i8], out: &mut [i32]) {
        let groups = a.len() / 4;
        assert!(out.len() == NR && panel.len() >= groups * 4 * NR);
        // SAFETY: group `g < groups` reads `a[4g..4g + 4]` and `panel[128g..128g + 128]`
        // (checked above); the stores write `out[0..32]`.
        unsafe {
            let (ap, wp) = (a.as_ptr(), panel.as_ptr());
            let group = |g: usize, acc: &mut [__m512i; 2]| {
                let a4 = ap.add(4 * g).cast::<u32>().read_unaligned() ^ 0x8080_8080;
                let x = _mm512_set1_epi32(a4 as i32);
                let w0 = _mm512_loadu_si512(wp.add(128 * g).cast());
                let w1 = _mm512_loadu_si512(wp.add(128 * g + 64).cast());
                acc[0] = _mm512_dpbusd_epi32(acc[0], x, w0);
                acc[1] = _mm512_dpbusd_epi32(acc[1], x, w1);
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
            let lo = _mm512_add_epi32(
                _mm512_add_epi32(a0[0], a1[0]),
                _mm512_add_epi32(a2[0], a3[0]),
            );
            let hi = _mm512_add_epi32(
                _mm512_add_epi32(a0[1], a1[1]),
                _mm512_add_epi32(a2[1], a3[1]),
            );
            let o = out.as_mut_ptr();
            _mm512_storeu_si512(o.cast(), lo);
            _mm512_storeu_si512(o.add(16).cast(), hi);
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
    #[inline]
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
    #[inline]
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

    /// The panel-sum variants runnable here: name, panel width, activation offset, sums.
    fn variants() -> Vec<(&'static str, usize, i32, Sums)> {
        let mut v: Vec<(&'static str, usize, i32, Sums)> = vec![
            ("reference8", 8, 0, reference::panel_sums),
            ("reference5", 5, 0, reference::panel_sums),
        ];
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 was detected above.
                v.push(("x86_avx2", x86_avx2::NR, 0, |a, p, s| unsafe {
                    x86_avx2::panel_sums(a, p, s)
                }));
            }
            if std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vnni")
            {
                v.push((
                    "x86_avx512",
                    x86_avx512::NR,
                    x86_avx512::OFFSET,
                    // SAFETY: AVX-512F/BW/VNNI were detected above.
                    |a, p, s| unsafe { x86_avx512::panel_sums(a, p, s) },
                ));
            }
        }
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        v.push((
            "aarch64_neon",
            aarch64_neon::NR,
            0,
            aarch64_neon::panel_sums,
        ));
        v
    }

    /// One battery case: a packed `k×n` layer for panel width `nr` and a quantized row.
    struct Case {
        blob: Vec<u8>,
        qa: Vec<i8>,
        scale: [f32; 1],
        zp: [i32; 1],
        bias: Vec<f32>,
        k: usize,
        n: usize,
        nr: usize,
    }

    impl Case {
        /// `case` 0: plain values; 1: saturated bytes (every weight column and the row reach
        /// ±127/−128); 2: plain values again (the tests give it another epilogue). `seed`
        /// varies the weights.
        fn new(k: usize, n: usize, nr: usize, case: usize, seed: u32) -> Case {
            let mut wf = values(k * n, (k * 31 + n) as u32 + seed);
            let mut x = values(k, (k + 7 * n) as u32);
            if case == 1 {
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
            let mut blob = vec![0u8; packed_i8_bytes(k, n, nr)];
            pack_i8(&q, &scales, k, n, nr, &mut blob);
            let mut qa = vec![0i8; qa_stride(k)];
            let (mut scale, mut zp) = ([0f32], [0i32]);
            quantize_rows_symmetric(&x, 1, k, k, &mut qa, &mut scale, &mut zp);
            if case == 1 {
                qa[..k]
                    .iter_mut()
                    .for_each(|v| *v = if *v < 0 { -128 } else { *v });
            }
            let bias = values(n, 3 + seed);
            Case {
                blob,
                qa,
                scale,
                zp,
                bias,
                k,
                n,
                nr,
            }
        }

        /// The blob as weights, 4-byte aligned (a copy at an aligned offset of `buf`).
        fn weights<'a>(&self, buf: &'a mut Vec<u8>) -> QWeights<'a> {
            let len = self.blob.len();
            *buf = vec![0u8; len + 4];
            let at = buf.as_ptr().align_offset(4);
            buf[at..at + len].copy_from_slice(&self.blob);
            QWeights::new(&buf[at..at + len], self.k, self.n, self.nr)
        }

        fn gemm(&self, case: usize, activation: Activation) -> QGemm<'_> {
            QGemm {
                m: 1,
                k: self.k,
                n: self.n,
                ldc: self.n,
                a_scales: &self.scale,
                a_zero_points: &self.zp,
                bias: (case != 0).then_some(&self.bias[..]),
                activation,
                tiles: Tiles {
                    mr: 4,
                    kc: 64,
                    mc: 8,
                },
            }
        }
    }

    const SHAPES: [(usize, usize); 7] = [
        (1, 1),
        (3, 7),
        (4, 8),
        (64, 32),
        (64, 172),
        (172, 64),
        (257, 33),
    ];

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|v| v.to_bits()).collect()
    }

    /// Every variant (its panel sums driven as [`qgemv`] drives them) against the
    /// portable int8 GEMM with one row, bit for bit: depths that are not a multiple of 4 or
    /// of 64, column counts with partial panels, extreme bytes (−128 activations and
    /// weights), bias and activation epilogues; and the residual and SwiGLU stores against
    /// the GEMM followed by the elementwise addition / product.
    #[test]
    fn variants_match_the_gemm_bit_for_bit() {
        for (name, nr, offset, sums) in variants() {
            for &(k, n) in &SHAPES {
                for case in 0..3 {
                    let act = if case == 2 {
                        Activation::Silu
                    } else {
                        Activation::None
                    };
                    let t = Case::new(k, n, nr, case, 0);
                    let mut buf = Vec::new();
                    let w = t.weights(&mut buf);
                    let g = t.gemm(case, act);
                    let mut want = vec![0f32; n];
                    qgemm::reference::qgemm(&t.qa, w, &mut want, &g);
                    let mut got = vec![f32::NAN; n];
                    drive(&t.qa, &w, &mut got, &g, offset, sums, Store::Write);
                    assert_eq!(bits(&got), bits(&want), "{name} k {k} n {n} case {case}");
                    // The compiled-in dispatch gives the same bits for any panel width.
                    let mut got = vec![f32::NAN; n];
                    qgemv(&t.qa, w, &mut got, &g);
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "qgemv nr {nr} k {k} n {n} case {case}"
                    );

                    let r = values(n, 11);
                    let sum: Vec<f32> = want.iter().zip(&r).map(|(y, r)| y + r).collect();
                    let mut got = vec![f32::NAN; n];
                    drive(&t.qa, &w, &mut got, &g, offset, sums, Store::Add(&r));
                    assert_eq!(bits(&got), bits(&sum), "{name} residual k {k} n {n}");
                    let mut got = vec![f32::NAN; n];
                    qgemv_residual(&t.qa, w, &mut got, &g, &r);
                    assert_eq!(bits(&got), bits(&sum), "qgemv_residual nr {nr} k {k} n {n}");

                    // SwiGLU: a SiLU gate and this case's layer as the up-projection.
                    let gate = Case::new(k, n, nr, case, 5);
                    let mut gbuf = Vec::new();
                    let gw = gate.weights(&mut gbuf);
                    let gg = QGemm {
                        a_scales: &t.scale,
                        a_zero_points: &t.zp,
                        ..gate.gemm(1, Activation::Silu)
                    };
                    let mut prod = vec![0f32; n];
                    qgemm::reference::qgemm(&t.qa, gw, &mut prod, &gg);
                    prod.iter_mut().zip(&want).for_each(|(p, u)| *p *= u);
                    let mut got = vec![f32::NAN; n];
                    qgemv(&t.qa, gw, &mut got, &gg);
                    drive(&t.qa, &w, &mut got, &g, offset, sums, Store::Mul);
                    assert_eq!(bits(&got), bits(&prod), "{name} swiglu k {k} n {n}");
                    let mut got = vec![f32::NAN; n];
                    qgemv_swiglu(&t.qa, (gw, &gg), (w, &g), &mut got);
                    assert_eq!(bits(&got), bits(&prod), "qgemv_swiglu nr {nr} k {k} n {n}");
                }
            }
        }
    }

    /// More rows: the residual entry point runs the GEMM and the addition.
    #[test]
    fn residual_with_many_rows_is_the_gemm_plus_the_residual() {
        let (k, n, m) = (37, 19, 3);
        let t = Case::new(k, n, 8, 0, 0);
        let mut buf = Vec::new();
        let w = t.weights(&mut buf);
        let mut qa = vec![0i8; m * qa_stride(k)];
        let (mut s, mut z) = (vec![0f32; m], vec![0i32; m]);
        quantize_rows_symmetric(&values(m * k, 9), m, k, k, &mut qa, &mut s, &mut z);
        let g = QGemm {
            m,
            a_scales: &s,
            a_zero_points: &z,
            ..t.gemm(1, Activation::None)
        };
        let mut want = vec![0f32; m * n];
        qgemm::qgemm(&qa, w, &mut want, &g);
        let r = values(m * n, 4);
        want.iter_mut().zip(&r).for_each(|(y, r)| *y += r);
        let mut got = vec![f32::NAN; m * n];
        qgemv_residual(&qa, w, &mut got, &g, &r);
        assert_eq!(bits(&got), bits(&want));
    }
}
