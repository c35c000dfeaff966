//! The GEMM test battery: every ISA variant this machine can run, against the portable
//! reference, over odd shapes, tails, both operand layouts, cache-block sizes and epilogues.
use super::*;
use crate::kernels::test_values as values;
use std::vec;
use std::vec::Vec;

type Variant = (
    &'static str,
    usize,
    fn(&[f32], BMatrix<'_>, &mut [f32], &Gemm<'_>),
);

/// The variants runnable here, with the panel width each reads.
fn variants() -> Vec<Variant> {
    let mut v: Vec<Variant> = vec![
        ("reference8", 8, reference::gemm),
        ("reference5", 5, reference::gemm),
    ];
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            v.push(("x86_avx2", x86_avx2::NR, |a, b, c, g| {
                // SAFETY: AVX2 and FMA were detected above.
                unsafe { x86_avx2::gemm(a, b, c, g) }
            }));
        }
        if std::is_x86_feature_detected!("avx512f") {
            v.push(("x86_avx512", x86_avx512::NR, |a, b, c, g| {
                // SAFETY: AVX-512F was detected above.
                unsafe { x86_avx512::gemm(a, b, c, g) }
            }));
        }
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    v.push(("aarch64_neon", aarch64_neon::NR, aarch64_neon::gemm));
    v
}

/// The plain triple loop in f64, the ground truth for the reference itself.
fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, lda: usize) -> Vec<f32> {
    let mut c = vec![0.0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f64;
            for p in 0..k {
                s += a[i * lda + p] as f64 * b[p * n + j] as f64;
            }
            c[i * n + j] = s as f32;
        }
    }
    c
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
    (64, 257, 96),
    (5, 0, 9),
];

const ACTIVATIONS: &[Activation] = &[
    Activation::None,
    Activation::Relu,
    Activation::Gelu,
    Activation::GeluTanh,
    Activation::Silu,
];

#[test]
fn reference_matches_the_naive_product() {
    for &(m, k, n) in SHAPES {
        let (a, b) = (values(m * k, 1), values(k * n, 2));
        let want = naive(&a, &b, m, k, n, k);
        let mut packed = vec![0.0; packed_len(k, n, 8)];
        pack_b(&b, k, n, 8, &mut packed);
        let mut got = vec![0.0; m * n];
        let g = Gemm {
            m,
            k,
            n,
            lda: k,
            ldc: n,
            bias: None,
            activation: Activation::None,
            tiles: Tiles {
                mr: 4,
                kc: 64,
                mc: 16,
            },
        };
        reference::gemm(&a, BMatrix::packed(&packed, k, 8), &mut got, &g);
        for (x, y) in got.iter().zip(&want) {
            assert!(
                (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                "{m}x{k}x{n}: {x} vs {y}"
            );
        }
        let mut unpacked = vec![0.0; k * n];
        unpack_b(&packed, k, n, 8, &mut unpacked);
        assert_eq!(unpacked, b);
    }
}

#[test]
fn every_variant_matches_the_reference() {
    let tiles = [
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
    for (name, nr, run) in variants() {
        for &(m, k, n) in SHAPES {
            let lda = k + 3;
            let (a, b, bias) = (values(m * lda, 3), values(k * n, 4), values(n, 5));
            let mut packed = vec![0.0; packed_len(k, n, nr)];
            pack_b(&b, k, n, nr, &mut packed);
            for (case, act) in ACTIVATIONS.iter().enumerate() {
                let t = tiles[case % tiles.len()];
                let ldc = n + 2;
                let g = Gemm {
                    m,
                    k,
                    n,
                    lda,
                    ldc,
                    bias: if case % 2 == 0 { Some(&bias) } else { None },
                    activation: *act,
                    tiles: t,
                };
                let mut want = vec![7.0; m * ldc];
                let mut rb = vec![0.0; packed_len(k, n, 8)];
                pack_b(&b, k, n, 8, &mut rb);
                reference::gemm(&a, BMatrix::packed(&rb, k, 8), &mut want, &g);
                for layout in ["packed", "row-major"] {
                    let bm = if layout == "packed" {
                        BMatrix::packed(&packed, k, nr)
                    } else {
                        BMatrix::row_major(&b, n, nr)
                    };
                    let mut got = vec![7.0; m * ldc];
                    run(&a, bm, &mut got, &g);
                    for (i, (x, y)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                            "{name} {layout} {m}x{k}x{n} {act:?} {t:?}: element {i}: {x} vs {y}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn fast_math_is_close_to_libm() {
    let mut x = -30.0f32;
    while x < 30.0 {
        let e = libm::expf(x);
        let f = crate::math::fast_exp(x);
        assert!((f - e).abs() <= 4e-7 * e, "exp({x}) {f} {e}");
        let r = libm::erff(x);
        let f = crate::math::fast_erf(x);
        assert!((f - r).abs() <= 4e-7, "erf({x}) {f} {r}");
        let t = libm::tanhf(x);
        let f = crate::math::fast_tanh(x);
        assert!((f - t).abs() <= 2e-6, "tanh({x}) {f} {t}");
        x += 0.0137;
    }
    assert!(crate::math::fast_exp(-1000.0) < 1e-37);
    assert!(crate::math::fast_exp(1000.0).is_finite());
}
