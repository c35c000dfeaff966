//! The row-kernel test battery: every ISA variant this machine can run against the portable
//! reference, on awkward lengths (tails of every vector width), unaligned and strided rows,
//! and extreme values (huge, infinite, NaN, signed zeros, zero rows). Maps, softmax passes,
//! LayerNorm and rotary must be bit-identical to the reference (both NaN counts as equal);
//! RMSNorm, whose variants sum the squares in 16 partial sums, within 1e-6 relative.
use super::*;
use crate::kernels::test_values as values;
use std::vec;
use std::vec::Vec;

type LayerNormFn = fn(&[f32], &[f32], Option<&[f32]>, &mut [f32], f32);
type RmsNormFn = fn(&[f32], Option<&[f32]>, &mut [f32], f32, bool);
type RotaryFn = fn(&[f32], &[f32], &[f32], &mut [f32]);

/// One variant's entry points, as safe function pointers.
struct Variant {
    name: &'static str,
    row_max: fn(&[f32]) -> f32,
    exp_sub_sum: fn(&[f32], f32, &mut [f32]) -> f32,
    exp_sub_sum_in_place: fn(&mut [f32], f32) -> f32,
    scale: fn(&mut [f32], f32),
    map: fn(&[f32], &mut [f32], Unary),
    map_in_place: fn(&mut [f32], Unary),
    layer_norm: LayerNormFn,
    rms_norm: RmsNormFn,
    rotary_half: RotaryFn,
}

/// A [`Variant`] of module `$m`.
macro_rules! variant {
    ($m:ident) => {
        Variant {
            name: stringify!($m),
            // SAFETY: `variants` lists this variant only if the CPU has its features.
            row_max: |r| unsafe { $m::row_max(r) },
            // SAFETY: as above.
            exp_sub_sum: |r, m, o| unsafe { $m::exp_sub_sum(r, m, o) },
            // SAFETY: as above.
            exp_sub_sum_in_place: |r, m| unsafe { $m::exp_sub_sum_in_place(r, m) },
            // SAFETY: as above.
            scale: |r, s| unsafe { $m::scale(r, s) },
            // SAFETY: as above.
            map: |x, o, f| unsafe { $m::map(x, o, f) },
            // SAFETY: as above.
            map_in_place: |r, f| unsafe { $m::map_in_place(r, f) },
            // SAFETY: as above.
            layer_norm: |r, s, b, o, e| unsafe { $m::layer_norm(r, s, b, o, e) },
            // SAFETY: as above.
            rms_norm: |r, s, o, e, d| unsafe { $m::rms_norm(r, s, o, e, d) },
            // SAFETY: as above.
            rotary_half: |x, c, s, o| unsafe { $m::rotary_half(x, c, s, o) },
        }
    };
}

/// The ISA variants runnable here (the reference is the oracle, not in the list).
fn variants() -> Vec<Variant> {
    #[allow(unused_mut)]
    let mut v: Vec<Variant> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            v.push(variant!(x86_avx2));
        }
        if std::is_x86_feature_detected!("avx512f") {
            v.push(variant!(x86_avx512));
        }
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    v.push(variant!(aarch64_neon));
    v
}

/// The lengths every kernel runs: empty, below one vector, every width's tails, BERT rows.
const LENGTHS: &[usize] = &[
    0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 384, 1000,
];

const UNARIES: &[Unary] = &[
    Unary::Exp,
    Unary::Erf,
    Unary::Tanh,
    Unary::Sigmoid,
    Unary::Gelu,
    Unary::GeluTanh,
    Unary::Silu,
];

/// Values where the approximations clamp, saturate or break: around each clamp bound, huge,
/// infinite, NaN, signed zeros and denormals.
const EXTREMES: &[f32] = &[
    0.0,
    -0.0,
    1e-40,
    -1e-40,
    1e-7,
    -3.9,
    -4.0,
    -4.5,
    4.5,
    7.9,
    -8.0,
    20.0,
    -20.0,
    87.0,
    88.0,
    88.5,
    -87.3,
    -87.4,
    -100.0,
    100.0,
    1e30,
    -1e30,
    f32::MAX,
    f32::MIN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::NAN,
];

/// Rows to test: random at several magnitudes, and the extremes cycled to length `n`.
fn rows(n: usize, seed: u32) -> Vec<Vec<f32>> {
    let base = values(n, seed);
    let mut out: Vec<Vec<f32>> = [0.5f32, 6.0, 120.0]
        .iter()
        .map(|&m| base.iter().map(|v| v * m).collect())
        .collect();
    out.push(
        (0..n)
            .map(|i| EXTREMES[(i + seed as usize) % EXTREMES.len()])
            .collect(),
    );
    out
}

fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fn assert_same(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(same(g, w), "{what} at {i}: {g:e} vs reference {w:e}");
    }
}

/// A slice of `n` elements starting `off` elements into a fresh buffer (unaligned rows),
/// the rest of the buffer filled with a sentinel the kernels must neither read nor write.
fn placed(row: &[f32], off: usize) -> Vec<f32> {
    let mut buf = vec![-7.25f32; off + row.len() + 5];
    buf[off..off + row.len()].copy_from_slice(row);
    buf
}

#[test]
fn maps_are_bit_identical_to_the_reference() {
    for v in variants() {
        for &n in LENGTHS {
            for (k, x) in rows(n, n as u32).iter().enumerate() {
                for &f in UNARIES {
                    let mut want = vec![0.0f32; n];
                    reference::map(x, &mut want, f);
                    for off in [0, 1, 3] {
                        let what = std::format!("{} {f:?} n={n} row {k} offset {off}", v.name);
                        let mut buf = placed(&vec![0.0; n], off);
                        (v.map)(x, &mut buf[off..off + n], f);
                        assert_same(&what, &buf[off..off + n], &want);
                        assert!(
                            buf[..off]
                                .iter()
                                .chain(&buf[off + n..])
                                .all(|&s| s == -7.25)
                        );
                        let mut buf = placed(x, off);
                        (v.map_in_place)(&mut buf[off..off + n], f);
                        assert_same(&what, &buf[off..off + n], &want);
                    }
                }
            }
        }
    }
}

#[test]
fn softmax_passes_are_bit_identical_to_the_reference() {
    for v in variants() {
        for &n in LENGTHS {
            for (k, x) in rows(n, 7 + n as u32).iter().enumerate() {
                let what = std::format!("{} n={n} row {k}", v.name);
                let max = reference::row_max(x);
                assert!(same((v.row_max)(x), max), "{what}: max");
                // Also with a max that is not the row's (attention subtracts a masked max).
                for m in [max, 0.5, f32::NEG_INFINITY] {
                    let mut want = vec![0.0f32; n];
                    let sum = reference::exp_sub_sum(x, m, &mut want);
                    let mut got = vec![0.0f32; n];
                    assert!(same((v.exp_sub_sum)(x, m, &mut got), sum), "{what}: sum");
                    assert_same(&what, &got, &want);
                    let mut got = x.clone();
                    assert!(same((v.exp_sub_sum_in_place)(&mut got, m), sum), "{what}");
                    assert_same(&what, &got, &want);
                    let s = 1.0 / sum;
                    reference::scale(&mut want, s);
                    (v.scale)(&mut got, s);
                    assert_same(&what, &got, &want);
                }
            }
        }
    }
}

#[test]
fn layer_norm_is_bit_identical_to_the_reference() {
    for v in variants() {
        for &n in LENGTHS.iter().filter(|&&n| n > 0) {
            let (scale, bias) = (values(n, 3), values(n, 4));
            let mut cases = rows(n, 11 + n as u32);
            cases.push(vec![0.0; n]);
            cases.push(vec![1e20; n]);
            for (k, x) in cases.iter().enumerate() {
                for b in [Some(&bias[..]), None] {
                    for eps in [1e-12f32, 1e-5, 0.0] {
                        let what =
                            std::format!("{} n={n} row {k} bias {} eps {eps}", v.name, b.is_some());
                        let mut want = vec![0.0f32; n];
                        reference::layer_norm(x, &scale, b, &mut want, eps);
                        let mut got = placed(&vec![0.0; n], 1);
                        (v.layer_norm)(x, &scale, b, &mut got[1..=n], eps);
                        assert_same(&what, &got[1..=n], &want);
                    }
                }
            }
        }
    }
}

/// `want` is the reference's result; 1e-6 relative (the sums of squares differ in order).
fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = same(g, w) || (g - w).abs() <= 1e-6 * w.abs().max(f32::MIN_POSITIVE);
        assert!(ok, "{what} at {i}: {g:e} vs reference {w:e}");
    }
}

#[test]
fn rms_norm_is_within_a_few_ulp_of_the_reference() {
    for v in variants() {
        for &n in LENGTHS.iter().filter(|&&n| n > 0) {
            let scale = values(n, 5);
            let mut cases = rows(n, 13 + n as u32);
            cases.push(vec![0.0; n]);
            for (k, x) in cases.iter().enumerate() {
                for s in [Some(&scale[..]), None] {
                    for (eps, divide) in [(1e-6f32, true), (1e-5, false), (0.0, true)] {
                        let what =
                            std::format!("{} n={n} row {k} eps {eps} divide {divide}", v.name);
                        let mut want = vec![0.0f32; n];
                        reference::rms_norm(x, s, &mut want, eps, divide);
                        let mut got = vec![0.0f32; n];
                        (v.rms_norm)(x, s, &mut got, eps, divide);
                        assert_close(&what, &got, &want);
                    }
                }
            }
        }
    }
}

#[test]
fn rotary_is_bit_identical_to_the_reference() {
    for v in variants() {
        for &d in LENGTHS.iter().filter(|&&n| n % 2 == 0) {
            let (c, s) = (values(d, 8), values(d, 9));
            for (k, x) in rows(d, 17 + d as u32).iter().enumerate() {
                let what = std::format!("{} d={d} row {k}", v.name);
                let mut want = vec![0.0f32; d];
                reference::rotary_half(x, &c, &s, &mut want);
                let mut got = placed(&vec![0.0; d], 3);
                (v.rotary_half)(x, &c, &s, &mut got[3..3 + d]);
                assert_same(&what, &got[3..3 + d], &want);
            }
        }
    }
}

/// The reference itself against libm and f64 arithmetic, with the bounds `math` documents.
#[test]
fn the_reference_is_close_to_exact_math() {
    let xs: Vec<f32> = (0..4000).map(|i| -20.0 + i as f32 * 0.01).collect();
    let mut out = vec![0.0f32; xs.len()];
    let bound = |f: Unary| match f {
        Unary::Exp => 4e-7,
        Unary::Sigmoid | Unary::Silu => 1e-6,
        _ => 2e-6,
    };
    for &f in UNARIES {
        reference::map(&xs, &mut out, f);
        for (&x, &got) in xs.iter().zip(&out) {
            let want = match f {
                Unary::Exp => libm::expf(x),
                Unary::Erf => libm::erff(x),
                Unary::Tanh => libm::tanhf(x),
                Unary::Sigmoid => crate::math::sigmoid(x),
                Unary::Gelu => crate::math::gelu(x),
                Unary::GeluTanh => crate::math::gelu_tanh(x),
                Unary::Silu => crate::math::silu(x),
            };
            let err = (got - want).abs() / want.abs().max(1.0);
            assert!(err <= bound(f), "{f:?}({x}): {got} vs libm {want}");
        }
    }
    // Softmax of a row, LayerNorm and RMSNorm against f64.
    let x = values(384, 21).iter().map(|v| v * 8.0).collect::<Vec<_>>();
    let mut e = vec![0.0f32; 384];
    let sum = reference::exp_sub_sum(&x, reference::row_max(&x), &mut e);
    let m64 = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let s64: f64 = x.iter().map(|&v| (v as f64 - m64).exp()).sum();
    assert!(((sum as f64) - s64).abs() <= 1e-6 * s64);
    let ones = vec![1.0f32; 384];
    reference::layer_norm(&x, &ones, None, &mut e, 1e-5);
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / 384.0;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / 384.0;
    for (&g, &v) in e.iter().zip(&x) {
        let want = (v as f64 - mean) / (var + 1e-5).sqrt();
        assert!((g as f64 - want).abs() <= 1e-5, "{g} vs {want}");
    }
    reference::rms_norm(&x, None, &mut e, 1e-5, true);
    let ms = x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / 384.0;
    for (&g, &v) in e.iter().zip(&x) {
        let want = v as f64 / (ms + 1e-5).sqrt();
        assert!((g as f64 - want).abs() <= 1e-5, "{g} vs {want}");
    }
}

/// The dispatching functions run whatever variant this build compiled in; they must agree
/// with the reference too (under `-C target-cpu=native` or a target profile's flags that is
/// an ISA variant, else the reference).
#[test]
fn the_compiled_in_variant_matches_the_reference() {
    let x = values(1000, 31)
        .iter()
        .map(|v| v * 30.0)
        .collect::<Vec<_>>();
    for &f in UNARIES {
        let (mut got, mut want) = (vec![0.0f32; 1000], vec![0.0f32; 1000]);
        map(&x, &mut got, f);
        reference::map(&x, &mut want, f);
        assert_same(&std::format!("{f:?}"), &got, &want);
    }
    assert!(same(row_max(&x), reference::row_max(&x)));
}
