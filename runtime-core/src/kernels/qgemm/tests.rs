//! The quantized-kernel test battery: every int8 and int4 variant this machine can run
//! against ground truth (an i64 triple loop for qgemm, explicitly dequantized weights through
//! the f32 reference GEMM for gemm_q4) over odd shapes, tails, full i8 ranges, zero points,
//! groups and epilogues; the quantizers against their specs; the row tables.
use super::*;
use crate::arena::{Aligned64, from_blocks};
use crate::kernels::gemm::{self, BMatrix, Gemm};
use std::vec;
use std::vec::Vec;

type I8Variant = (
    &'static str,
    usize,
    fn(&[i8], QWeights<'_>, &mut [f32], &QGemm<'_>),
);
type Q4Variant = (
    &'static str,
    usize,
    fn(&[f32], Q4Weights<'_>, &mut [f32], &Gemm<'_>),
);

/// The int8 variants runnable here, with the panel width each reads.
fn i8_variants() -> Vec<I8Variant> {
    #[allow(unused_mut)]
    let mut v: Vec<I8Variant> = vec![
        ("reference8", 8, reference::qgemm),
        ("reference16", 16, reference::qgemm),
        ("reference32", 32, reference::qgemm),
        ("reference5", 5, reference::qgemm),
        ("reference1", 1, reference::qgemm),
        ("dispatch", native_i8_nr(), qgemm),
    ];
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        v.push(("x86_avx2", x86_avx2::NR, |a, w, c, g| {
            // SAFETY: AVX2 was detected above.
            unsafe { x86_avx2::qgemm(a, w, c, g) }
        }));
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512vnni")
    {
        v.push(("x86_avx512_vnni", x86_avx512::NR, |a, w, c, g| {
            // SAFETY: AVX-512F/BW/VNNI were detected above.
            unsafe { x86_avx512::qgemm(a, w, c, g) }
        }));
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    v.push(("aarch64_neon", aarch64_neon::NR, aarch64_neon::qgemm));
    #[cfg(all(target_arch = "aarch64", target_feature = "dotprod"))]
    v.push((
        "aarch64_dotprod",
        aarch64_dotprod::NR,
        aarch64_dotprod::qgemm,
    ));
    v
}

/// The int4 variants runnable here.
fn q4_variants() -> Vec<Q4Variant> {
    #[allow(unused_mut)]
    let mut v: Vec<Q4Variant> = vec![
        ("reference16", 16, reference::gemm_q4),
        ("reference32", 32, reference::gemm_q4),
        ("reference6", 6, reference::gemm_q4),
        ("reference2", 2, reference::gemm_q4),
        ("dispatch", native_q4_nr(), gemm_q4),
    ];
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        v.push(("x86_avx2", x86_avx2::Q4_NR, |a, w, c, g| {
            // SAFETY: AVX2 and FMA were detected above.
            unsafe { x86_avx2::gemm_q4(a, w, c, g) }
        }));
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        v.push(("x86_avx512", x86_avx512::Q4_NR, |a, w, c, g| {
            // SAFETY: AVX-512F was detected above.
            unsafe { x86_avx512::gemm_q4(a, w, c, g) }
        }));
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    v.push(("aarch64_neon", aarch64_neon::Q4_NR, aarch64_neon::gemm_q4));
    v
}

/// A 64-byte aligned zeroed buffer of at least `len` bytes (weight blobs are aligned so).
fn aligned(len: usize) -> Vec<Aligned64<[u8; 64]>> {
    vec![Aligned64([0u8; 64]); len.div_ceil(64).max(1)]
}

struct Rng(u32);
impl Rng {
    fn new(seed: u32) -> Self {
        Rng(seed.wrapping_mul(2_654_435_761).wrapping_add(1))
    }
    fn next(&mut self) -> u32 {
        let s = &mut self.0;
        *s ^= *s << 13;
        *s ^= *s >> 17;
        *s ^= *s << 5;
        *s
    }
    /// In [-1, 1).
    fn f32(&mut self) -> f32 {
        (self.next() >> 8) as f32 / (1u32 << 23) as f32 - 1.0
    }
    /// Any i8; every fourth value is an extreme (-128 or 127).
    fn i8(&mut self) -> i8 {
        let v = self.next();
        match v % 8 {
            0 => -128,
            1 => 127,
            _ => (v >> 8) as u8 as i8,
        }
    }
}

const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 64, 64),
    (1, 7, 33),
    (3, 5, 17),
    (6, 16, 16),
    (7, 9, 31),
    (13, 100, 47),
    (14, 33, 32),
    (15, 64, 65),
    (29, 130, 97),
    (2, 1027, 40),
    (20, 1500, 9),
    (5, 0, 9),
];

const ACTIVATIONS: &[Activation] = &[
    Activation::None,
    Activation::Relu,
    Activation::Gelu,
    Activation::GeluTanh,
    Activation::Silu,
];

const TILES: &[Tiles] = &[
    Tiles {
        mr: 64,
        kc: 4096,
        mc: 4096,
    },
    Tiles {
        mr: 3,
        kc: 17,
        mc: 5,
    },
    Tiles {
        mr: 1,
        kc: 1,
        mc: 1,
    },
    Tiles {
        mr: 6,
        kc: 64,
        mc: 12,
    },
];

#[test]
fn pack_i8_places_every_weight_and_column_sum() {
    let (k, n, nr) = (7, 11, 4);
    let mut rng = Rng::new(9);
    let q: Vec<i8> = (0..k * n).map(|_| rng.i8()).collect();
    let scales: Vec<f32> = (0..n).map(|j| j as f32 + 0.5).collect();
    let len = packed_i8_bytes(k, n, nr);
    let mut buf = aligned(len);
    let blob = &mut from_blocks(&mut buf)[..len];
    pack_i8(&q, &scales, k, n, nr, blob);
    let w = QWeights::new(blob, k, n, nr);
    assert_eq!(w.kp, 8);
    for p in 0..w.kp {
        for j in 0..w.panels.len() / w.kp {
            let want = if p < k && j < n { q[p * n + j] } else { 0 };
            assert_eq!(w.panels[i8_panel_index(p, j, w.kp, nr)], want, "({p}, {j})");
        }
    }
    for j in 0..n {
        assert_eq!(w.scales[j], scales[j]);
        let sum: i32 = (0..k).map(|p| q[p * n + j] as i32).sum();
        assert_eq!(w.sums[j], sum);
    }
}

#[test]
fn every_qgemm_variant_matches_the_exact_triple_loop() {
    for (name, nr, run) in i8_variants() {
        for (shape, &(m, k, n)) in SHAPES.iter().enumerate() {
            let seed = shape as u32 * 31;
            let kp = qa_stride(k);
            let mut rng = Rng::new(seed + 1);
            let mut qa = vec![0i8; m * kp];
            for i in 0..m {
                for p in 0..k {
                    qa[i * kp + p] = rng.i8();
                }
            }
            let qw: Vec<i8> = (0..k * n).map(|_| rng.i8()).collect();
            let w_scales: Vec<f32> = (0..n).map(|_| rng.f32().abs() * 0.01 + 1e-4).collect();
            let a_scales: Vec<f32> = (0..m).map(|_| rng.f32().abs() * 0.01 + 1e-4).collect();
            let bias: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
            let len = packed_i8_bytes(k, n, nr);
            let mut buf = aligned(len);
            let blob = &mut from_blocks(&mut buf)[..len];
            pack_i8(&qw, &w_scales, k, n, nr, blob);
            for (case, &act) in ACTIVATIONS.iter().enumerate() {
                // Zero points: none, the extremes, and random ones.
                let zps: Vec<i32> = (0..m)
                    .map(|i| match case % 3 {
                        0 => 0,
                        1 if i % 2 == 0 => -128,
                        1 => 127,
                        _ => rng.i8() as i32,
                    })
                    .collect();
                let ldc = n + 2;
                let g = QGemm {
                    m,
                    k,
                    n,
                    ldc,
                    a_scales: &a_scales,
                    a_zero_points: &zps,
                    bias: (case % 2 == 0).then_some(&bias[..]),
                    activation: act,
                    tiles: TILES[case % TILES.len()],
                };
                let mut want = vec![7.0f32; m * ldc];
                for i in 0..m {
                    for j in 0..n {
                        let mut s = 0i64;
                        for p in 0..k {
                            s += (qa[i * kp + p] as i64 - zps[i] as i64) * qw[p * n + j] as i64;
                        }
                        let s = i32::try_from(s).expect("test sums fit i32");
                        want[i * ldc + j] = s as f32 * (a_scales[i] * w_scales[j]);
                    }
                    let row = &mut want[i * ldc..i * ldc + n];
                    gemm::epilogue(row, g.bias, act);
                }
                let mut got = vec![7.0f32; m * ldc];
                run(&qa, QWeights::new(blob, k, n, nr), &mut got, &g);
                for (e, (x, y)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        x.to_bits() == y.to_bits(),
                        "{name} {m}x{k}x{n} {act:?} zp case {}: element {e}: {x} vs {y}",
                        case % 3
                    );
                }
            }
        }
    }
}

/// The residual entry points (the dispatch and every ISA kernel with its own residual
/// store) give the bits of the plain product followed by `gemv::add_assign`, for every
/// activation (in-register and stored epilogues), zero points, tails and a row stride.
#[test]
fn qgemm_residual_is_the_product_then_the_addition() {
    type Residual = fn(&[i8], QWeights<'_>, &mut [f32], &QGemm<'_>, &[f32]);
    #[allow(unused_mut)]
    let mut runs: Vec<(&str, usize, Residual)> = vec![
        ("dispatch", native_i8_nr(), qgemm_residual),
        ("reference16", 16, qgemm_residual),
    ];
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512vnni")
    {
        runs.push(("x86_avx512_vnni", x86_avx512::NR, |a, w, c, g, r| {
            // SAFETY: AVX-512F/BW/VNNI were detected above.
            unsafe { x86_avx512::qgemm_residual(a, w, c, g, Some(r)) }
        }));
    }
    for (name, nr, run) in runs {
        for (shape, &(m, k, n)) in SHAPES.iter().enumerate() {
            let mut rng = Rng::new(shape as u32 * 17 + 3);
            let kp = qa_stride(k);
            let qa: Vec<i8> = (0..m * kp)
                .map(|i| if i % kp < k { rng.i8() } else { 0 })
                .collect();
            let qw: Vec<i8> = (0..k * n).map(|_| rng.i8()).collect();
            let w_scales: Vec<f32> = (0..n).map(|_| rng.f32().abs() * 0.01 + 1e-4).collect();
            let a_scales: Vec<f32> = (0..m).map(|_| rng.f32().abs() * 0.01 + 1e-4).collect();
            let zps: Vec<i32> = (0..m).map(|_| rng.i8() as i32).collect();
            let bias: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
            let len = packed_i8_bytes(k, n, nr);
            let mut buf = aligned(len);
            let blob = &mut from_blocks(&mut buf)[..len];
            pack_i8(&qw, &w_scales, k, n, nr, blob);
            let w = QWeights::new(blob, k, n, nr);
            let ldc = n + 3;
            let r: Vec<f32> = (0..m * ldc).map(|_| rng.f32() * 4.0).collect();
            for (case, &act) in ACTIVATIONS.iter().enumerate() {
                let g = QGemm {
                    m,
                    k,
                    n,
                    ldc,
                    a_scales: &a_scales,
                    a_zero_points: &zps,
                    bias: (case % 2 == 0).then_some(&bias[..]),
                    activation: act,
                    tiles: TILES[case % TILES.len()],
                };
                let mut want = vec![5.0f32; m * ldc];
                qgemm(&qa, w, &mut want, &g);
                for i in 0..m {
                    let span = i * ldc..i * ldc + n;
                    crate::kernels::gemv::add_assign(&mut want[span.clone()], &r[span]);
                }
                let mut got = vec![5.0f32; m * ldc];
                run(&qa, w, &mut got, &g, &r);
                for (e, (x, y)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        x.to_bits() == y.to_bits(),
                        "{name} {m}x{k}x{n} {act:?}: element {e}: {x} vs {y}"
                    );
                }
            }
        }
    }
}

#[test]
fn quantized_linear_tracks_the_float_product() {
    let (m, k, n) = (9, 70, 21);
    let mut rng = Rng::new(5);
    let a: Vec<f32> = (0..m * k).map(|_| rng.f32()).collect();
    let w: Vec<f32> = (0..k * n).map(|_| rng.f32()).collect();
    let mut qw = vec![0i8; k * n];
    let mut ws = vec![0.0; n];
    quantize_weights_i8(&w, k, n, &mut qw, &mut ws);
    let len = packed_i8_bytes(k, n, 16);
    let mut buf = aligned(len);
    let blob = &mut from_blocks(&mut buf)[..len];
    pack_i8(&qw, &ws, k, n, 16, blob);
    let mut packed = vec![0.0; gemm::packed_len(k, n, 8)];
    gemm::pack_b(&w, k, n, 8, &mut packed);
    let fg = Gemm {
        m,
        k,
        n,
        lda: k,
        ldc: n,
        bias: None,
        activation: Activation::None,
        tiles: TILES[0],
    };
    let mut want = vec![0.0; m * n];
    gemm::reference::gemm(&a, BMatrix::packed(&packed, k, 8), &mut want, &fg);
    type Quantizer = fn(&[f32], usize, usize, usize, &mut [i8], &mut [f32], &mut [i32]);
    let quantizers: [(&str, Quantizer); 2] = [
        ("symmetric", quantize_rows_symmetric),
        ("dynamic u8", quantize_tensor_dynamic_u8),
    ];
    for (name, quantize) in quantizers {
        let mut qa = vec![0i8; m * qa_stride(k)];
        let (mut sa, mut za) = (vec![0.0; m], vec![0; m]);
        quantize(&a, m, k, k, &mut qa, &mut sa, &mut za);
        let g = QGemm {
            m,
            k,
            n,
            ldc: n,
            a_scales: &sa,
            a_zero_points: &za,
            bias: None,
            activation: Activation::None,
            tiles: TILES[0],
        };
        let mut got = vec![0.0; m * n];
        qgemm(&qa, QWeights::new(blob, k, n, 16), &mut got, &g);
        for (x, y) in got.iter().zip(&want) {
            // Two 8-bit roundings of values in [-1, 1) over k = 70 products.
            assert!((x - y).abs() < 0.15, "{name}: {x} vs {y}");
        }
    }
}

#[test]
fn weight_quantizer_follows_its_spec() {
    // Columns: max 127 (scale 1), all zero (scale 1, q 0), max 254 (scale 2); halves round
    // away from zero.
    let (k, n) = (4, 3);
    let w = [
        127.0, 0.0, 254.0, //
        2.5, 0.0, 5.0, //
        -2.5, 0.0, -1.0, //
        -126.6, 0.0, 3.0,
    ];
    let mut q = [0i8; 12];
    let mut s = [0.0f32; 3];
    quantize_weights_i8(&w, k, n, &mut q, &mut s);
    assert_eq!(s, [1.0, 1.0, 2.0]);
    assert_eq!(q, [127, 0, 127, 3, 0, 3, -3, 0, -1, -127, 0, 2]);
}

#[test]
fn symmetric_rows_follow_their_spec() {
    let (m, k) = (2, 5);
    let a = [127.0, -63.5, 0.5, 0.49, -127.0, 0.0, 0.0, 0.0, 0.0, 0.0];
    let mut q = [9i8; 16];
    let (mut s, mut z) = ([0.0f32; 2], [5i32; 2]);
    quantize_rows_symmetric(&a, m, k, k, &mut q, &mut s, &mut z);
    assert_eq!(s, [1.0, 0.0]);
    assert_eq!(z, [0, 0]);
    assert_eq!(q, [127, -64, 1, 0, -127, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
}

/// Inputs and outputs of the ONNX backend tests `test_dynamicquantizelinear`,
/// `_max_adjusted` and `_min_adjusted`: (x, scale, zero point, y), all uint8.
#[allow(clippy::type_complexity)]
const DYNAMIC_CASES: &[(&[f32], f32, i32, &[i32])] = &[
    (
        &[0.0, 2.0, -3.0, -2.5, 1.34, 0.5],
        0.019_607_844,
        153,
        &[153, 255, 0, 26, 221, 179],
    ),
    (
        &[-1.0, -2.1, -1.3, -2.5, -3.34, -4.0],
        0.015_686_275,
        255,
        &[191, 121, 172, 96, 42, 0],
    ),
    (
        &[
            1.0, 2.1, 1.3, 2.5, 3.34, 4.0, 1.5, 2.6, 3.9, 4.0, 3.0, 2.345,
        ],
        0.015_686_275,
        0,
        &[64, 134, 83, 159, 213, 255, 96, 166, 249, 255, 191, 149],
    ),
];

#[test]
fn dynamic_u8_matches_the_onnx_backend_tests() {
    for &(x, scale, zp, y) in DYNAMIC_CASES {
        // As 2 rows with a padded stride, and as one row.
        for (m, k, lda) in [(2, x.len() / 2, x.len() / 2), (1, x.len(), x.len())] {
            let kp = qa_stride(k);
            let mut q = vec![9i8; m * kp];
            let (mut s, mut z) = (vec![0.0; m], vec![0; m]);
            quantize_tensor_dynamic_u8(x, m, k, lda, &mut q, &mut s, &mut z);
            for i in 0..m {
                assert_eq!(s[i], scale);
                assert_eq!(z[i], zp - 128);
                for p in 0..kp {
                    let want = if p < k { (y[i * k + p] - 128) as i8 } else { 0 };
                    assert_eq!(q[i * kp + p], want, "{x:?} row {i} element {p}");
                }
            }
        }
    }
    // All zero: scale 1 and zero point 0 (as ONNX Runtime), so q is 0 - 128.
    let mut q = [5i8; 4];
    let (mut s, mut z) = ([0.0], [0]);
    quantize_tensor_dynamic_u8(&[0.0; 3], 1, 3, 3, &mut q, &mut s, &mut z);
    assert_eq!((s, z, q), ([1.0], [-128], [-128, -128, -128, 0]));
}

#[test]
fn static_quantization_rounds_half_to_even_and_saturates() {
    let x = [0.5, 1.5, 2.5, -0.5, -1.5, 200.0, -200.0];
    let mut q = [0i8; 8];
    let (mut s, mut z) = ([0.0], [9]);
    quantize_rows_static(&x, 1, 7, 7, 1.0, 0, false, &mut q, &mut s, &mut z);
    assert_eq!((s, z), ([1.0], [0]));
    assert_eq!(q, [0, 2, 2, 0, -2, 127, -128, 0]);
    // uint8 with zero point 128 and scale 0.5: 0.75/0.5 = 1.5 → 2, -1.25/0.5 = -2.5 → -2.
    let x = [0.75, -1.25, 300.0, -300.0, 0.0];
    let mut q = [0i8; 8];
    quantize_rows_static(&x, 1, 5, 5, 0.5, 128, true, &mut q, &mut s, &mut z);
    assert_eq!((s, z), ([0.5], [0]));
    assert_eq!(q, [2, -2, 127, -128, 0, 0, 0, 0]);
    // int8 with a negative zero point.
    let mut q = [0i8; 4];
    quantize_rows_static(
        &[1.0, -1.0, 0.0],
        1,
        3,
        3,
        0.25,
        -3,
        false,
        &mut q,
        &mut s,
        &mut z,
    );
    assert_eq!(z, [-3]);
    assert_eq!(q, [1, -7, -3, 0]);
}

#[test]
fn q4_zero_points_are_packed_two_per_byte() {
    // Every (group, column)'s zero point reads back through `scale_zp` and `group_params`
    // for odd and even panel widths and column tails; the section is half a byte per entry.
    let cases: [(usize, usize, usize, usize); 4] = [
        (64, 172, 32, 16),
        (100, 33, 7, 32),
        (9, 5, 4, 6),
        (3, 3, 2, 2),
    ];
    for (k, n, group, nr) in cases {
        let mut rng = Rng::new((k * n + nr) as u32);
        let groups = k.div_ceil(group);
        let q: Vec<u8> = (0..k * n).map(|_| (rng.next() % 16) as u8).collect();
        let scales: Vec<f32> = (0..groups * n).map(|i| i as f32 + 0.5).collect();
        let zps: Vec<u8> = (0..groups * n).map(|_| (rng.next() % 16) as u8).collect();
        let len = packed_q4_bytes(k, n, group, nr, false, true);
        let n_pad = n.div_ceil(nr) * nr;
        assert_eq!(
            len - packed_q4_bytes(k, n, group, nr, false, false),
            align64(groups * n_pad / 2)
        );
        let mut buf = aligned(len);
        let blob = &mut from_blocks(&mut buf)[..len];
        pack_q4(&q, &scales, Some(&zps), k, n, group, nr, false, blob);
        let w = Q4Weights::new(blob, k, n, group, nr, false, true);
        let (mut s, mut z) = (vec![0.0; nr], vec![0.0; nr]);
        for gi in 0..groups {
            for panel in 0..n_pad / nr {
                w.group_params(gi, panel * nr, &mut s, &mut z);
                for c in 0..nr.min(n - panel * nr) {
                    let j = panel * nr + c;
                    let want = (scales[gi * n + j], zps[gi * n + j] as f32);
                    assert_eq!(w.scale_zp(gi, j), want, "k {k} n {n} nr {nr} ({gi}, {j})");
                    assert_eq!((s[c], z[c]), want, "k {k} n {n} nr {nr} ({gi}, {j})");
                }
            }
        }
    }
}

#[test]
fn q4_weight_quantizer_follows_its_spec() {
    // One column, group 5 then a tail group of 2: max 7 (scale 1), then a zero group.
    let w = [7.0, 3.5, -3.5, 0.49, -7.0, 0.0, 0.0];
    let mut q = [0u8; 7];
    let mut s = [0.0f32; 2];
    quantize_weights_q4(&w, 7, 1, 5, &mut q, &mut s);
    assert_eq!(s, [1.0, 1.0]);
    assert_eq!(q, [15, 12, 4, 8, 1, 8, 8]);
}

/// `(q - zp) · scale` per element, with scales as the blob stores them.
fn dequantize_q4(
    q: &[u8],
    scales: &[f32],
    zps: Option<&[u8]>,
    k: usize,
    n: usize,
    group: usize,
    f16: bool,
) -> Vec<f32> {
    let mut w = vec![0.0; k * n];
    for p in 0..k {
        for j in 0..n {
            let e = (p / group) * n + j;
            let s = if f16 {
                crate::math::f16_to_f32(crate::math::f32_to_f16(scales[e]))
            } else {
                scales[e]
            };
            let zp = zps.map_or(8, |z| z[e]);
            w[p * n + j] = (q[p * n + j] as f32 - zp as f32) * s;
        }
    }
    w
}

#[test]
fn every_gemm_q4_variant_matches_dequantized_weights() {
    let shapes: &[(usize, usize, usize)] = &[
        (1, 1, 1),
        (1, 64, 64),
        (1, 100, 33),
        (1, 257, 96),
        (3, 130, 17),
        (7, 33, 31),
        (13, 192, 47),
        (9, 600, 40),
        (70, 130, 33),
        (4, 0, 5),
        (8, 0, 5),
    ];
    for (name, nr, run) in q4_variants() {
        for (shape, &(m, k, n)) in shapes.iter().enumerate() {
            for (case, &(group, f16, with_zp)) in [
                (32, false, false),
                (64, true, false),
                (128, false, true),
                (32, true, true),
                (7, false, true),
            ]
            .iter()
            .enumerate()
            {
                let mut rng = Rng::new(shape as u32 * 7 + case as u32);
                let groups = k.div_ceil(group);
                let lda = k + 1;
                let a: Vec<f32> = (0..m * lda).map(|_| rng.f32()).collect();
                let q: Vec<u8> = (0..k * n).map(|_| (rng.next() % 16) as u8).collect();
                let scales: Vec<f32> = (0..groups * n).map(|_| rng.f32().abs() * 0.1).collect();
                let zps: Vec<u8> = (0..groups * n).map(|_| (rng.next() % 16) as u8).collect();
                let zps = with_zp.then_some(&zps[..]);
                let bias: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
                let len = packed_q4_bytes(k, n, group, nr, f16, with_zp);
                let mut buf = aligned(len);
                let blob = &mut from_blocks(&mut buf)[..len];
                pack_q4(&q, &scales, zps, k, n, group, nr, f16, blob);
                let wd = dequantize_q4(&q, &scales, zps, k, n, group, f16);
                let mut packed = vec![0.0; gemm::packed_len(k, n, 8)];
                gemm::pack_b(&wd, k, n, 8, &mut packed);
                let act = ACTIVATIONS[(shape + case) % ACTIVATIONS.len()];
                let ldc = n + 3;
                let g = Gemm {
                    m,
                    k,
                    n,
                    lda,
                    ldc,
                    bias: (case % 2 == 0).then_some(&bias[..]),
                    activation: act,
                    tiles: TILES[case % TILES.len()],
                };
                let mut want = vec![7.0; m * ldc];
                gemm::reference::gemm(&a, BMatrix::packed(&packed, k, 8), &mut want, &g);
                let mut got = vec![7.0; m * ldc];
                let w = Q4Weights::new(blob, k, n, group, nr, f16, with_zp);
                run(&a, w, &mut got, &g);
                for i in 0..m {
                    for j in 0..ldc {
                        let (x, y) = (got[i * ldc + j], want[i * ldc + j]);
                        if j >= n {
                            assert_eq!(x, 7.0, "{name}: wrote past the row");
                            continue;
                        }
                        // The kernel factors the zero point out of each group: its error
                        // scales with Σ|a|·(|q| + |zp|)·scale.
                        let bound: f32 = (0..k)
                            .map(|p| {
                                let e = (p / group) * n + j;
                                let zp = zps.map_or(8.0, |z| z[e] as f32);
                                a[i * lda + p].abs() * (q[p * n + j] as f32 + zp) * scales[e]
                            })
                            .sum();
                        assert!(
                            (x - y).abs() <= 2e-5 * bound + 1e-5,
                            "{name} {m}x{k}x{n} group {group} f16 {f16} zp {with_zp} {act:?}: \
                             ({i}, {j}): {x} vs {y}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn int8_rows_gather_and_reject_out_of_range() {
    let (rows, cols) = (5, 37);
    let mut rng = Rng::new(3);
    let mut table: Vec<f32> = (0..rows * cols).map(|_| rng.f32() * 3.0).collect();
    table[2 * cols..3 * cols].fill(0.0);
    let len = packed_rows_i8_bytes(rows, cols);
    let mut buf = aligned(len);
    let blob = &mut from_blocks(&mut buf)[..len];
    pack_rows_i8(&table, rows, cols, blob);
    let ids: [i64; 4] = [4, 0, 2, -1];
    let mut out = vec![0.0; ids.len() * cols];
    gather_rows_i8("g", blob, rows, cols, &ids, &mut out).unwrap();
    for (r, &id) in ids.iter().enumerate() {
        let src = if id < 0 { rows - 1 } else { id as usize };
        let row = &table[src * cols..(src + 1) * cols];
        let mut q = vec![0i8; cols];
        let mut s = vec![0.0; 1];
        // The per-row rule is the per-column weight rule on a k×1 matrix.
        quantize_weights_i8(row, cols, 1, &mut q, &mut s);
        for c in 0..cols {
            assert_eq!(out[r * cols + c], q[c] as f32 * s[0]);
            assert!((out[r * cols + c] - row[c]).abs() <= s[0] * 0.5 + 1e-6);
        }
    }
    let ids32: [i32; 2] = [1, 3];
    let mut out32 = vec![0.0; 2 * cols];
    gather_rows_i8("g", blob, rows, cols, &ids32, &mut out32).unwrap();
    let mut out64 = vec![0.0; 2 * cols];
    gather_rows_i8("g", blob, rows, cols, &[1i64, 3], &mut out64).unwrap();
    assert_eq!(out32, out64);
    for bad in [5i64, -6] {
        assert_eq!(
            gather_rows_i8("emb", blob, rows, cols, &[0, bad], &mut out),
            Err(Error::IndexOutOfRange {
                node: "emb",
                index: bad,
                bound: rows
            })
        );
    }
}

#[test]
fn int4_rows_gather_and_reject_out_of_range() {
    let (rows, cols) = (4, 75);
    let mut rng = Rng::new(4);
    let table: Vec<f32> = (0..rows * cols).map(|_| rng.f32()).collect();
    for group in [32, 64, 128, 5] {
        for f16 in [false, true] {
            let len = packed_rows_q4_bytes(rows, cols, group, f16);
            let mut buf = aligned(len);
            let blob = &mut from_blocks(&mut buf)[..len];
            pack_rows_q4(&table, rows, cols, group, f16, blob);
            let ids: [i64; 3] = [3, 0, -2];
            let mut out = vec![0.0; ids.len() * cols];
            gather_rows_q4("g", blob, rows, cols, group, f16, &ids, &mut out).unwrap();
            for (r, &id) in ids.iter().enumerate() {
                let src = if id < 0 {
                    (rows as i64 + id) as usize
                } else {
                    id as usize
                };
                let row = &table[src * cols..(src + 1) * cols];
                // The per-(row, group) rule is the per-(group, column) weight rule on k×1.
                let mut q = vec![0u8; cols];
                let mut s = vec![0.0; cols.div_ceil(group)];
                quantize_weights_q4(row, cols, 1, group, &mut q, &mut s);
                let want = dequantize_q4(&q, &s, None, cols, 1, group, f16);
                assert_eq!(&out[r * cols..(r + 1) * cols], &want[..], "group {group}");
            }
            assert_eq!(
                gather_rows_q4("emb", blob, rows, cols, group, f16, &[7i32], &mut out),
                Err(Error::IndexOutOfRange {
                    node: "emb",
                    index: 7,
                    bound: rows
                })
            );
        }
    }
}

#[test]
fn panel_width_rule() {
    assert_eq!(
        qgemm_nr_for("x86_64", &["avx512f", "avx512bw", "avx512vnni", "fma"]),
        32
    );
    assert_eq!(qgemm_nr_for("x86_64", &["avx2", "fma"]), 8);
    assert_eq!(qgemm_nr_for("aarch64", &["neon", "fp16", "dotprod"]), 16);
    assert_eq!(qgemm_nr_for("aarch64", &["neon"]), 8);
    assert_eq!(qgemm_nr_for("thumbv8m.main", &["mve.fp"]), 16);
    assert_eq!(q4_nr_for("x86_64", &["avx512f"]), 32);
    assert_eq!(q4_nr_for("aarch64", &["neon"]), 16);
}

#[test]
fn branch_free_rounding_matches_libm() {
    let below_half = f32::from_bits(0.5f32.to_bits() - 1);
    for x in [
        0.5,
        1.5,
        2.5,
        -0.5,
        -2.5,
        below_half,
        -below_half,
        126.5,
        3.2,
        -3.7,
        0.0,
    ] {
        assert_eq!(round_away(x), libm::roundf(x), "away {x}");
        assert_eq!(round_even(x), libm::rintf(x), "even {x}");
    }
    let mut rng = Rng::new(11);
    for _ in 0..10_000 {
        let x = rng.f32() * 300.0;
        assert_eq!(round_away(x), libm::roundf(x), "away {x}");
        assert_eq!(round_even(x), libm::rintf(x), "even {x}");
    }
    assert_eq!(round_even(1e30), 4_194_304.0);
    for v in [
        -128.0,
        -127.0,
        -1.0,
        0.0,
        1.0,
        127.0,
        255.0,
        4_194_304.0,
        -4_194_304.0,
    ] {
        assert_eq!(rint_i32(v), v as i32);
    }
    assert_eq!(max_abs(&[1.0, -3.5, 2.0]), 3.5);
    assert_eq!(from_ordered(ordered(-3.5).min(ordered(-0.25))), -3.5);
    assert_eq!(from_ordered(ordered(-3.5).max(ordered(-0.25))), -0.25);
}

#[test]
fn extreme_operands_accumulate_exactly_over_a_long_depth() {
    // Every product at its largest magnitude: (-128 - 127)·(-128) and 127·(-128), k = 8191.
    let (m, k, n) = (3, 8191, 37);
    let kp = qa_stride(k);
    let mut qa = vec![0i8; m * kp];
    for i in 0..m {
        qa[i * kp..i * kp + k].fill(if i == 1 { 127 } else { -128 });
    }
    let qw = vec![-128i8; k * n];
    let zps = [127, 0, -128];
    let (a_scales, w_scales) = (vec![1.0f32; m], vec![1.0f32; n]);
    for (name, nr, run) in i8_variants() {
        let len = packed_i8_bytes(k, n, nr);
        let mut buf = aligned(len);
        let blob = &mut from_blocks(&mut buf)[..len];
        pack_i8(&qw, &w_scales, k, n, nr, blob);
        let g = QGemm {
            m,
            k,
            n,
            ldc: n,
            a_scales: &a_scales,
            a_zero_points: &zps,
            bias: None,
            activation: Activation::None,
            tiles: TILES[0],
        };
        let mut got = vec![0.0f32; m * n];
        run(&qa, QWeights::new(blob, k, n, nr), &mut got, &g);
        for i in 0..m {
            let a = if i == 1 { 127i64 } else { -128 };
            let want = ((a - zps[i] as i64) * -128 * k as i64) as f32;
            for j in 0..n {
                assert_eq!(got[i * n + j], want, "{name} row {i} column {j}");
            }
        }
    }
}

#[test]
fn branch_free_half_conversion_is_exact() {
    for h in 0..=u16::MAX {
        let (got, want) = (half_to_f32(h), crate::math::f16_to_f32(h));
        if want.is_nan() {
            assert!(got.is_nan(), "{h:#06x}");
        } else {
            assert_eq!(got.to_bits(), want.to_bits(), "{h:#06x}");
        }
    }
}

/// Rows for the quantizer variants: random values, exact ties of the symmetric scale
/// (`(j + 0.5)·max/127`), zeros, an all-zero row, lengths around the 16- and 64-value blocks,
/// and values next to the halves at scale 1.
fn quantizer_rows() -> Vec<Vec<f32>> {
    let mut rng = Rng::new(5);
    let mut rows = Vec::new();
    for k in [1, 3, 15, 16, 17, 33, 64, 100, 127, 128, 129, 200, 384, 1536] {
        rows.push((0..k).map(|_| rng.f32() * 7.0).collect());
        let mut ties: Vec<f32> = (0..k)
            .map(|j| (j as f32 % 127.0 + 0.5) * (2.0 / 127.0) * if j % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        ties[0] = 2.0;
        rows.push(ties);
        rows.push(vec![0.0; k]);
        rows.push(
            (0..k)
                .map(|j| if j % 3 == 0 { 0.0 } else { rng.f32() * 1e3 })
                .collect(),
        );
    }
    // Scale 1: values just below, at and above the halves, where `|t| + 0.5` rounds.
    let h = 0.5f32;
    rows.push(vec![
        127.0,
        h,
        -h,
        f32::from_bits(h.to_bits() - 1),
        -f32::from_bits(h.to_bits() - 1),
        f32::from_bits(h.to_bits() - 2),
        f32::from_bits(h.to_bits() + 1),
        1.5,
        -2.5,
        f32::from_bits(1.5f32.to_bits() - 1),
        126.5,
        -126.5,
        f32::from_bits(126.5f32.to_bits() + 1),
        0.25,
        -0.0,
        1e-30,
    ]);
    // A maximum whose reciprocal overflows.
    rows.push(vec![1e-38, -1e-38, 3e-39, -2e-45]);
    rows
}

#[test]
fn every_row_quantizer_variant_matches_the_portable_one() {
    #[allow(unused_mut)]
    let mut variants: Vec<(&str, RowQuantizers)> =
        vec![("portable", (symmetric_row, affine_row, ordered_range))];
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw") {
        variants.push((
            "x86_avx512",
            (
                // SAFETY: AVX-512F/BW were detected above.
                |r, o| unsafe { x86_avx512::symmetric_row(r, o) },
                // SAFETY: as above.
                |r, s, z, range, o| unsafe { x86_avx512::affine_row(r, s, z, range, o) },
                // SAFETY: as above.
                |a, m, k, lda| unsafe { x86_avx512::ordered_range(a, m, k, lda) },
            ),
        ));
    }
    let rows = quantizer_rows();
    for (name, (sym, affine, range)) in variants {
        for row in &rows {
            let k = row.len();
            let (mut want, mut got) = (vec![9i8; k + 1], vec![9i8; k + 1]);
            let s = symmetric_row(row, &mut want);
            assert_eq!(sym(row, &mut got).to_bits(), s.to_bits(), "{name} scale");
            assert_eq!(got, want, "{name} symmetric {row:?}");
            for (scale, zp, lim) in [
                (0.03, 131, (0, 255, -128)),
                (0.5, -3, (-128, 127, 0)),
                (1e-3, 0, (-128, 127, 0)),
            ] {
                affine_row(row, scale, zp, lim, &mut want);
                affine(row, scale, zp, lim, &mut got);
                assert_eq!(got, want, "{name} affine {scale} {row:?}");
            }
            for m in [1, 2] {
                let lda = k / m;
                if lda > 0 {
                    let want = ordered_range(row, m, lda - lda / 3, lda);
                    assert_eq!(range(row, m, lda - lda / 3, lda), want, "{name} range");
                }
            }
        }
    }
}

type RowQuantizers = (
    fn(&[f32], &mut [i8]) -> f32,
    fn(&[f32], f32, i32, (i32, i32, i32), &mut [i8]),
    fn(&[f32], usize, usize, usize) -> (i32, i32),
);
