//! The half-weight test battery: every variant this machine can run against the portable
//! reference on awkward shapes, both row paths (one-row GEMV, convert-then-GEMM), every
//! epilogue; the conversions bit for bit over all 65536 halves; half specials (subnormals,
//! values that round to zero, the largest half, infinities); and the Jetson half-arithmetic
//! GEMV and multi-row kernel against their documented error bound.
use super::*;
use crate::kernels::gemm::{Activation, Tiles};
use crate::kernels::test_values as values;
use std::vec;
use std::vec::Vec;

type Run = fn(&[f32], HWeights<'_>, &mut [f32], &Gemm<'_>, &mut [f32]);

/// Whether a variant reading panels of `nr` multiplies in half precision (the Jetson GEMV
/// and multi-row kernel; `hgemm` dispatches to them on `fp16` builds): its results are
/// checked against its error bound instead of f32 rounding.
fn half_arithmetic(name: &str, nr: usize) -> bool {
    cfg!(all(target_arch = "aarch64", target_feature = "fp16"))
        && nr == 8
        && (name.starts_with("dispatch") || name == "aarch64_fp16")
}

/// The variants runnable here, with the panel width each reads.
fn variants() -> Vec<(&'static str, usize, Run)> {
    let mut v: Vec<(&'static str, usize, Run)> = vec![
        ("dispatch8", 8, hgemm),
        ("dispatch5", 5, hgemm),
        ("reference-rows", 8, |a, w, c, g, s| {
            if g.m == 1 {
                reference::gemv(a, w, c, g)
            } else {
                rows(a, w, c, g, s, reference::convert)
            }
        }),
    ];
    #[cfg(target_arch = "x86_64")]
    {
        let f16c = std::is_x86_feature_detected!("f16c") && std::is_x86_feature_detected!("avx");
        if f16c && std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            v.push(("x86_avx2", x86::NR_AVX2, |a, w, c, g, s| {
                if g.m == 1 {
                    // SAFETY: AVX2, FMA and F16C were detected above.
                    unsafe { x86::gemv_avx2(a, w, c, g) }
                } else {
                    rows(a, w, c, g, s, |p, o| {
                        // SAFETY: F16C and AVX were detected above.
                        unsafe { x86::convert_f16c(p, o) }
                    })
                }
            }));
        }
        if f16c && std::is_x86_feature_detected!("avx512f") {
            v.push(("x86_avx512", x86::NR_AVX512, |a, w, c, g, s| {
                if g.m == 1 {
                    // SAFETY: AVX-512F was detected above.
                    unsafe { x86::gemv_avx512(a, w, c, g) }
                } else {
                    rows(a, w, c, g, s, |p, o| {
                        // SAFETY: F16C and AVX were detected above.
                        unsafe { x86::convert_f16c(p, o) }
                    })
                }
            }));
        }
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    v.push(("aarch64_neon", aarch64_neon::NR, |a, w, c, g, s| {
        if g.m == 1 {
            aarch64_neon::gemv(a, w, c, g)
        } else {
            rows(a, w, c, g, s, aarch64_neon::convert)
        }
    }));
    #[cfg(all(target_arch = "aarch64", target_feature = "fp16"))]
    v.push(("aarch64_fp16", aarch64_fp16::NR, |a, w, c, g, s| {
        if g.m == 1 {
            aarch64_fp16::gemv(a, w, c, g)
        } else {
            aarch64_fp16::rows(a, w, c, g, s)
        }
    }));
    v
}

fn packed(w: &[f32], k: usize, n: usize, nr: usize) -> Vec<u8> {
    let mut out = vec![0u8; packed_h_bytes(k, n, nr)];
    pack_h(w, k, n, nr, &mut out);
    out
}

/// `w` as stored (rounded to half).
fn stored(w: &[f32]) -> Vec<f32> {
    w.iter()
        .map(|&v| math::f16_to_f32(math::f32_to_f16(v)))
        .collect()
}

const MS: &[usize] = &[1, 3, 17, 128];
const KS: &[usize] = &[1, 7, 64, 385];
const NS: &[usize] = &[1, 15, 16, 33];
const ACTIVATIONS: &[Activation] = &[
    Activation::None,
    Activation::Relu,
    Activation::Gelu,
    Activation::GeluTanh,
    Activation::Silu,
];

fn geometry<'a>(
    m: usize,
    k: usize,
    n: usize,
    bias: Option<&'a [f32]>,
    act: Activation,
) -> Gemm<'a> {
    Gemm {
        m,
        k,
        n,
        lda: k + 3,
        ldc: n + 2,
        bias,
        activation: act,
        tiles: Tiles {
            mr: 6,
            kc: 64,
            mc: 24,
        },
    }
}

#[test]
fn reference_matches_the_exact_product_of_the_stored_weights() {
    for &m in MS {
        for &k in KS {
            for &n in NS {
                let g = geometry(m, k, n, None, Activation::None);
                let (a, w) = (values(m * g.lda, 1), values(k * n, 2));
                let ws = stored(&w);
                let blob = packed(&w, k, n, 8);
                let mut got = vec![0.0; m * g.ldc];
                reference::hgemm(&a, HWeights::new(&blob, k, n, 8), &mut got, &g);
                for i in 0..m {
                    for j in 0..n {
                        let (mut s, mut s_abs) = (0.0f64, 0.0f64);
                        for p in 0..k {
                            let t = a[i * g.lda + p] as f64 * ws[p * n + j] as f64;
                            s += t;
                            s_abs += t.abs();
                        }
                        let x = got[i * g.ldc + j] as f64;
                        let tol = (k as f64 + 1.0) * f32::EPSILON as f64 * s_abs + 1e-30;
                        assert!((x - s).abs() <= tol, "{m}x{k}x{n} ({i},{j}): {x} vs {s}");
                    }
                }
            }
        }
    }
}

#[test]
fn every_variant_matches_the_reference() {
    for (name, nr, run) in variants() {
        let mut case = 0;
        for &m in MS {
            for &k in KS {
                for &n in NS {
                    case += 1;
                    let act = ACTIVATIONS[case % ACTIVATIONS.len()];
                    let g0 = geometry(m, k, n, None, act);
                    let (a, w, bias) = (values(m * g0.lda, 3), values(k * n, 4), values(n, 5));
                    let g = Gemm {
                        bias: (case % 2 == 0).then_some(&bias[..]),
                        ..g0
                    };
                    let blob = packed(&w, k, n, nr);
                    let mut want = vec![7.0; m * g.ldc];
                    reference::hgemm(&a, HWeights::new(&blob, k, n, nr), &mut want, &g);
                    let mut got = vec![7.0; m * g.ldc];
                    let mut scratch = vec![f32::NAN; scratch_len(m, k, nr)];
                    run(
                        &a,
                        HWeights::new(&blob, k, n, nr),
                        &mut got,
                        &g,
                        &mut scratch,
                    );
                    // f32 sums in another order: within k roundings of Σ|a·w| ≤ k.
                    let f32_tol = (k as f32 + 2.0) * f32::EPSILON * (1.0 + k as f32);
                    let half = half_arithmetic(name, nr);
                    let ws = stored(&w);
                    for (i, (x, y)) in got.iter().zip(&want).enumerate() {
                        let pad = i % g.ldc >= n;
                        // The activations' slopes are below 1.2.
                        let tol = if half && !pad {
                            let row = &a[(i / g.ldc) * g.lda..][..k];
                            f32_tol + 1.2 * half_bound(row, &ws, n, i % g.ldc) as f32
                        } else {
                            f32_tol
                        };
                        assert!(
                            if pad { x == y } else { (x - y).abs() <= tol },
                            "{name} {m}x{k}x{n} {act:?}: element {i}: {x} vs {y}"
                        );
                    }
                }
            }
        }
    }
}

/// Every half bit pattern converts exactly as `math::f16_to_f32` (NaNs as NaNs).
#[test]
fn conversions_are_exact_over_all_halves() {
    let bytes: Vec<u8> = (0..=u16::MAX).flat_map(|h| h.to_le_bytes()).collect();
    let mut want = vec![0.0f32; 65536];
    reference::convert(&bytes, &mut want);
    let mut got = vec![0.0f32; 65536 - 3];
    convert_panel(&bytes, &mut got);
    for (h, (x, y)) in got.iter().zip(&want).enumerate() {
        assert!(
            x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
            "{h:#06x}: {x} vs {y}"
        );
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("f16c") && std::is_x86_feature_detected!("avx") {
        let mut got = vec![0.0f32; 65536];
        // SAFETY: F16C and AVX were detected above.
        unsafe { x86::convert_f16c(&bytes, &mut got) };
        for (h, (x, y)) in got.iter().zip(&want).enumerate() {
            assert!(
                x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
                "{h:#06x}"
            );
        }
    }
}

/// Subnormal weights are kept (exactly as half stores them), weights below half's smallest
/// subnormal become zero, the largest half and infinities go through as IEEE arithmetic
/// says (`0·∞` is NaN), on every variant.
#[test]
fn half_specials() {
    let (k, n) = (5, 9);
    let w = [
        6.0e-8, -6.0e-8, 1.0e-5, -3.0e-7, 1.0e-9, 65504.0, -65504.0, 1.0, 0.5,
    ];
    let w: Vec<f32> = (0..k * n)
        .map(|i| w[i % w.len()] * if i / n == 2 { -1.0 } else { 1.0 })
        .collect();
    let ws = stored(&w);
    assert_eq!(ws[4], 0.0);
    assert_eq!(ws[0], 5.960_464_5e-8);
    assert_eq!(ws[5], 65504.0);
    for (name, nr, run) in variants() {
        for m in [1, 3] {
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
                    kc: 8,
                    mc: 8,
                },
            };
            let a: Vec<f32> = (0..m * k).map(|i| 1.0 + i as f32 * 0.25).collect();
            let mut inf = w.clone();
            inf[3] = f32::INFINITY;
            inf[n + 3] = 70000.0; // rounds to +inf
            for weights in [&w, &inf] {
                let blob = packed(weights, k, n, nr);
                let mut want = vec![0.0; m * n];
                reference::hgemm(&a, HWeights::new(&blob, k, n, nr), &mut want, &g);
                let mut got = vec![0.0; m * n];
                let mut scratch = vec![0.0; scratch_len(m, k, nr)];
                run(
                    &a,
                    HWeights::new(&blob, k, n, nr),
                    &mut got,
                    &g,
                    &mut scratch,
                );
                for (x, y) in got.iter().zip(&want) {
                    assert!(
                        (x - y).abs() <= 1e-5 * y.abs() + 1e-12
                            || x.to_bits() == y.to_bits()
                            || (x.is_nan() && y.is_nan()),
                        "{name} m={m}: {got:?} vs {want:?}"
                    );
                }
            }
        }
    }
}

/// Depth steps per half-precision block of the Jetson GEMV (`aarch64_fp16::BLOCK`).
const HALF_BLOCK: usize = 8;
#[cfg(all(target_arch = "aarch64", target_feature = "fp16"))]
const _: () = assert!(HALF_BLOCK == aarch64_fp16::BLOCK);

/// The documented bound of `aarch64_fp16` for one output column `j` (see its module doc),
/// plus the f32 accumulation of the widened block sums.
fn half_bound(x: &[f32], ws: &[f32], n: usize, j: usize) -> f64 {
    let (u, eta, b) = (2f64.powi(-11), 2f64.powi(-25), HALF_BLOCK);
    let mut bound = 0.0;
    let mut s_abs = 0.0;
    for (bi, blk) in x.chunks(b).enumerate() {
        let max = blk.iter().fold(0.0f64, |m, v| m.max(v.abs() as f64));
        let (mut xw, mut wsum) = (0.0, 0.0);
        for (q, &v) in blk.iter().enumerate() {
            let wv = ws[(bi * b + q) * n + j].abs() as f64;
            xw += v.abs() as f64 * wv;
            wsum += wv;
        }
        bound += (b as f64 + 1.0) * u * xw + 2.0 * max * eta * (wsum + b as f64);
        s_abs += xw;
    }
    bound + (x.len().div_ceil(b) as f64 + 1.0) * f32::EPSILON as f64 * s_abs * 1.01
}

/// The half-arithmetic GEMV stays within its bound of the exact product for k up to 4096,
/// with activations spanning many binades (so blocks take different scales) and a few large
/// ones; and a block whose half sums overflow falls back to f32 (the reference's result).
#[cfg(all(target_arch = "aarch64", target_feature = "fp16"))]
#[test]
fn fp16_arithmetic_stays_within_its_bound() {
    let n = 19;
    for k in [1, 7, 64, 385, 1024, 4096] {
        let w = values(k * n, 11);
        let ws = stored(&w);
        let x: Vec<f32> = values(k, 12)
            .iter()
            .enumerate()
            .map(|(p, v)| {
                v * [1.0, 1e-3, 37.0, 1e-6][(p / 16) % 4] * if p % 97 == 0 { 300.0 } else { 1.0 }
            })
            .collect();
        let blob = packed(&w, k, n, aarch64_fp16::NR);
        let g = Gemm {
            m: 1,
            k,
            n,
            lda: k,
            ldc: n,
            bias: None,
            activation: Activation::None,
            tiles: Tiles {
                mr: 1,
                kc: 64,
                mc: 1,
            },
        };
        let mut got = vec![0.0; n];
        aarch64_fp16::gemv(
            &x,
            HWeights::new(&blob, k, n, aarch64_fp16::NR),
            &mut got,
            &g,
        );
        let mut worst = 0.0f64;
        for j in 0..n {
            let exact: f64 = (0..k).map(|p| x[p] as f64 * ws[p * n + j] as f64).sum();
            let err = (got[j] as f64 - exact).abs();
            let bound = half_bound(&x, &ws, n, j);
            assert!(
                err <= bound,
                "k={k} j={j}: {} vs {exact}: error {err} > bound {bound}",
                got[j]
            );
            worst = worst.max(err / bound);
        }
        std::println!("k={k}: worst error / bound = {worst:.3}");
        // Several rows (chunks of the scratch, a ragged last group of four), each row's
        // activations at another scale, through the multi-row kernel.
        let m = 23;
        let xs: Vec<f32> = (0..m * k)
            .map(|i| x[i % k] * [1.0, 3e-4, 90.0, 1e-7, 0.5][(i / k) % 5])
            .collect();
        let g = Gemm { m, ..g };
        let mut got = vec![0.0; m * n];
        let mut scratch = vec![f32::NAN; scratch_len(m, k, aarch64_fp16::NR)];
        aarch64_fp16::rows(
            &xs,
            HWeights::new(&blob, k, n, aarch64_fp16::NR),
            &mut got,
            &g,
            &mut scratch,
        );
        let mut worst = 0.0f64;
        for i in 0..m {
            let row = &xs[i * k..(i + 1) * k];
            for j in 0..n {
                let exact: f64 = (0..k).map(|p| row[p] as f64 * ws[p * n + j] as f64).sum();
                let err = (got[i * n + j] as f64 - exact).abs();
                let bound = half_bound(row, &ws, n, j);
                assert!(
                    err <= bound,
                    "rows k={k} ({i},{j}): {} vs {exact}: error {err} > bound {bound}",
                    got[i * n + j]
                );
                worst = worst.max(err / bound);
            }
        }
        std::println!("k={k} m={m}: worst error / bound = {worst:.3}");
    }
    // Weights of 30000 over a block of 8 overflow half sums: the block is redone in f32.
    let (k, n) = (16, 8);
    let w = vec![30000.0f32; k * n];
    let x = vec![0.9f32; k];
    let blob = packed(&w, k, n, aarch64_fp16::NR);
    let g = Gemm {
        m: 1,
        k,
        n,
        lda: k,
        ldc: n,
        bias: None,
        activation: Activation::None,
        tiles: Tiles {
            mr: 1,
            kc: 64,
            mc: 1,
        },
    };
    let (mut got, mut want) = (vec![0.0; n], vec![0.0; n]);
    aarch64_fp16::gemv(&x, HWeights::new(&blob, k, n, 8), &mut got, &g);
    reference::gemv(&x, HWeights::new(&blob, k, n, 8), &mut want, &g);
    for (a, b) in got.iter().zip(&want) {
        assert!(
            a.is_finite() && (a - b).abs() <= 1e-5 * b.abs(),
            "{got:?} vs {want:?}"
        );
    }
    // The same overflow in the multi-row kernel: those rows' panels are redone in f32, the
    // other rows (small activations, no overflow) stay in half arithmetic within the bound;
    // an infinite activation (row 3: its block cannot be scaled) gives the reference's ∞.
    let m = 6;
    let mut xs: Vec<f32> = (0..m * k)
        .map(|i| if (i / k) % 2 == 0 { 0.9 } else { 1e-4 })
        .collect();
    xs[3 * k + 2] = f32::INFINITY;
    let g = Gemm { m, ..g };
    let (mut got, mut want) = (vec![0.0; m * n], vec![0.0; m * n]);
    let mut scratch = vec![0.0; scratch_len(m, k, 8)];
    aarch64_fp16::rows(
        &xs,
        HWeights::new(&blob, k, n, 8),
        &mut got,
        &g,
        &mut scratch,
    );
    reference::hgemm(&xs, HWeights::new(&blob, k, n, 8), &mut want, &g);
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        let ok = if i / n == 3 {
            *a == f32::INFINITY && a == b
        } else {
            a.is_finite() && (a - b).abs() <= 2e-3 * b.abs()
        };
        assert!(ok, "{got:?} vs {want:?}");
    }
}
