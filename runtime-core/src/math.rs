//! Scalar functions that elementwise kernels apply; generated code passes them by path
//! (`rt::math::erf`), so each op's scalar math is written once.
use crate::element::Numeric;

pub fn add<T: Numeric>(a: T, b: T) -> T {
    a.add(b)
}
pub fn sub<T: Numeric>(a: T, b: T) -> T {
    a.sub(b)
}
pub fn mul<T: Numeric>(a: T, b: T) -> T {
    a.mul(b)
}
pub fn div<T: Numeric>(a: T, b: T) -> T {
    a.div(b)
}
pub fn pow<T: Numeric>(a: T, b: T) -> T {
    a.pow(b)
}
pub fn max<T: Numeric>(a: T, b: T) -> T {
    a.max(b)
}
pub fn min<T: Numeric>(a: T, b: T) -> T {
    a.min(b)
}
/// Integer `Mod` with `fmod = 0`: the result takes the sign of the divisor.
pub fn modulo<T: Numeric>(a: T, b: T) -> T {
    let r = a.rem(b);
    if r != T::ZERO && ((r < T::ZERO) != (b < T::ZERO)) {
        r.add(b)
    } else {
        r
    }
}
/// `Mod` with `fmod = 1`: the result takes the sign of the dividend.
pub fn fmod<T: Numeric>(a: T, b: T) -> T {
    a.rem(b)
}
pub fn equal<T: Numeric>(a: T, b: T) -> u8 {
    (a == b) as u8
}
pub fn less<T: Numeric>(a: T, b: T) -> u8 {
    (a < b) as u8
}
pub fn less_or_equal<T: Numeric>(a: T, b: T) -> u8 {
    (a <= b) as u8
}
pub fn greater<T: Numeric>(a: T, b: T) -> u8 {
    (a > b) as u8
}
pub fn greater_or_equal<T: Numeric>(a: T, b: T) -> u8 {
    (a >= b) as u8
}
pub fn and(a: u8, b: u8) -> u8 {
    (a != 0 && b != 0) as u8
}
pub fn or(a: u8, b: u8) -> u8 {
    (a != 0 || b != 0) as u8
}
pub fn xor(a: u8, b: u8) -> u8 {
    ((a != 0) != (b != 0)) as u8
}
pub fn not(a: u8) -> u8 {
    (a == 0) as u8
}

pub fn neg<T: Numeric>(x: T) -> T {
    x.neg()
}
pub fn abs<T: Numeric>(x: T) -> T {
    x.abs()
}
pub fn sign<T: Numeric>(x: T) -> T {
    if x > T::ZERO {
        T::ONE
    } else if x < T::ZERO {
        T::ONE.neg()
    } else {
        x
    }
}
pub fn identity<T: Copy>(x: T) -> T {
    x
}
pub fn relu(x: f32) -> f32 {
    if x > 0.0 { x } else { 0.0 }
}
pub fn exp(x: f32) -> f32 {
    libm::expf(x)
}
pub fn log(x: f32) -> f32 {
    libm::logf(x)
}
pub fn sqrt(x: f32) -> f32 {
    libm::sqrtf(x)
}
pub fn reciprocal(x: f32) -> f32 {
    1.0 / x
}
pub fn erf(x: f32) -> f32 {
    libm::erff(x)
}
pub fn tanh(x: f32) -> f32 {
    libm::tanhf(x)
}
pub fn sigmoid(x: f32) -> f32 {
    // Split by sign so exp never overflows.
    if x >= 0.0 {
        1.0 / (1.0 + libm::expf(-x))
    } else {
        let e = libm::expf(x);
        e / (1.0 + e)
    }
}
pub fn sin(x: f32) -> f32 {
    libm::sinf(x)
}
pub fn cos(x: f32) -> f32 {
    libm::cosf(x)
}
pub fn tan(x: f32) -> f32 {
    libm::tanf(x)
}
pub fn floor(x: f32) -> f32 {
    libm::floorf(x)
}
pub fn ceil(x: f32) -> f32 {
    libm::ceilf(x)
}
/// Round half to even, as ONNX `Round`.
pub fn round(x: f32) -> f32 {
    libm::rintf(x)
}
pub fn softplus(x: f32) -> f32 {
    if x > 20.0 {
        x
    } else {
        libm::log1pf(libm::expf(x))
    }
}
pub fn softsign(x: f32) -> f32 {
    x / (1.0 + x.abs())
}
/// GELU with the exact erf form.
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * core::f32::consts::FRAC_1_SQRT_2))
}
/// GELU with the tanh approximation.
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + libm::tanhf(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)))
}
pub fn silu(x: f32) -> f32 {
    x * sigmoid(x)
}
pub fn is_nan(x: f32) -> u8 {
    x.is_nan() as u8
}
pub fn is_inf(x: f32) -> u8 {
    x.is_infinite() as u8
}
pub fn asin(x: f32) -> f32 {
    libm::asinf(x)
}
pub fn acos(x: f32) -> f32 {
    libm::acosf(x)
}
pub fn atan(x: f32) -> f32 {
    libm::atanf(x)
}
pub fn sinh(x: f32) -> f32 {
    libm::sinhf(x)
}
pub fn cosh(x: f32) -> f32 {
    libm::coshf(x)
}
pub fn asinh(x: f32) -> f32 {
    libm::asinhf(x)
}
pub fn acosh(x: f32) -> f32 {
    libm::acoshf(x)
}
pub fn atanh(x: f32) -> f32 {
    libm::atanhf(x)
}

/// `exp` without libm, branch-free so loops over it vectorise: Cephes' degree-6 polynomial
/// after reduction by powers of two; inputs are clamped to the finite range of the result.
#[inline(always)]
pub fn fast_exp(x: f32) -> f32 {
    let x = x.clamp(EXP_MIN, EXP_MAX);
    // Adding and subtracting 1.5 · 2^23 rounds to the nearest integer.
    let t = x * core::f32::consts::LOG2_E + EXP_ROUND;
    let n = t - EXP_ROUND;
    let r = x - n * EXP_LN2[0] - n * EXP_LN2[1];
    let mut p = EXP_POLY[0];
    for c in &EXP_POLY[1..] {
        p = p * r + c;
    }
    let y = p * r * r + r + 1.0;
    // `n` is in [-126, 127] after the clamp, so the exponent field is valid. It is read from
    // the low mantissa bits of `t` (`1.5 · 2^23 + n`) rather than by a float-to-int cast,
    // which does not vectorise.
    let ni = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    y * f32::from_bits((ni.wrapping_add(127) as u32) << 23)
}

/// [`fast_exp`]'s input range.
pub const EXP_MIN: f32 = -87.336_55;
/// See [`EXP_MIN`].
pub const EXP_MAX: f32 = 88.0;
/// `1.5 · 2^23`, [`fast_exp`]'s rounding constant.
pub const EXP_ROUND: f32 = 12_582_912.0;
/// `ln 2` split in two parts for [`fast_exp`]'s argument reduction.
pub const EXP_LN2: [f32; 2] = [0.693_359_4, -2.121_944_4e-4];
/// [`fast_exp`]'s polynomial (highest degree first): `exp(r) ≈ 1 + r + r²·p(r)`.
pub const EXP_POLY: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    0.166_666_65,
    0.5,
];

/// `erf` without libm, branch-free: a rational approximation (odd degree-13 numerator,
/// even degree-8 denominator) on [-4, 4], where erf reaches ±1 in f32.
#[inline(always)]
pub fn fast_erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let horner = |cs: &[f32]| cs[1..].iter().fold(cs[0], |p, &c| p * x2 + c);
    x * horner(&ERF_NUMERATOR) / horner(&ERF_DENOMINATOR)
}

/// [`fast_erf`]'s numerator polynomial in `x²` (highest degree first; times `x`).
pub const ERF_NUMERATOR: [f32; 7] = [
    -2.726_142_3e-10,
    2.770_681_4e-8,
    -2.101_024e-6,
    -5.692_506_3e-5,
    -7.349_906_3e-4,
    -2.954_600_1e-3,
    -1.609_603_3e-2,
];
/// [`fast_erf`]'s denominator polynomial in `x²` (highest degree first).
pub const ERF_DENOMINATOR: [f32; 5] = [
    -1.456_607_2e-5,
    -2.133_740_6e-4,
    -1.682_827e-3,
    -7.373_329_2e-3,
    -1.426_474e-2,
];

/// `tanh` from [`fast_exp`]: `1 - 2 / (e^{2x} + 1)`.
#[inline(always)]
pub fn fast_tanh(x: f32) -> f32 {
    1.0 - 2.0 / (fast_exp(2.0 * x) + 1.0)
}

/// `tanh` without libm, branch-free and accurate to a few ulp relative also near zero
/// (where [`fast_tanh`]'s `1 - 2 / (e^{2x} + 1)` cancels): a 13/6 rational approximation on
/// [-7.9, 7.9], where tanh reaches ±1 in f32.
#[inline(always)]
pub fn rational_tanh(x: f32) -> f32 {
    let x = x.clamp(-TANH_MAX, TANH_MAX);
    let x2 = x * x;
    let horner = |cs: &[f32]| cs[1..].iter().fold(cs[0], |p, &c| p * x2 + c);
    x * horner(&TANH_NUMERATOR) / horner(&TANH_DENOMINATOR)
}

/// [`rational_tanh`]'s input range is `[-TANH_MAX, TANH_MAX]`.
pub const TANH_MAX: f32 = 7.905_311;
/// [`rational_tanh`]'s numerator polynomial in `x²` (highest degree first; times `x`).
pub const TANH_NUMERATOR: [f32; 7] = [
    -2.760_768_5e-16,
    2.000_188e-13,
    -8.604_672e-11,
    5.122_297e-8,
    1.485_722_4e-5,
    6.372_619_3e-4,
    4.893_524_6e-3,
];
/// [`rational_tanh`]'s denominator polynomial in `x²` (highest degree first).
pub const TANH_DENOMINATOR: [f32; 4] =
    [1.198_258_4e-6, 1.185_347_1e-4, 2.268_434_6e-3, 4.893_525e-3];

/// `1 / (1 + e^{-x})` from [`fast_exp`].
#[inline(always)]
pub fn fast_sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + fast_exp(-x))
}

/// GELU (erf form) from [`fast_erf`].
#[inline(always)]
pub fn fast_gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + fast_erf(x * core::f32::consts::FRAC_1_SQRT_2))
}

/// GELU (tanh approximation) from [`fast_tanh`].
#[inline(always)]
pub fn fast_gelu_tanh(x: f32) -> f32 {
    0.5 * x * (1.0 + fast_tanh(SQRT_2_OVER_PI * (x + GELU_TANH_CUBIC * x * x * x)))
}

/// `sqrt(2 / π)` in f32, as exported GELU graphs write it.
pub const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// The cubic coefficient of the tanh form of GELU.
pub const GELU_TANH_CUBIC: f32 = 0.044715;

/// SiLU from [`fast_sigmoid`].
#[inline(always)]
pub fn fast_silu(x: f32) -> f32 {
    x * fast_sigmoid(x)
}

/// IEEE binary16 bits → f32 (exact).
pub fn f16_to_f32(bits: u16) -> f32 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((bits >> 10) & 0x1f) as i32;
    let man = (bits & 0x3ff) as u32;
    match exp {
        0 => sign * man as f32 * (1.0 / 16_777_216.0),
        0x1f if man == 0 => sign * f32::INFINITY,
        0x1f => f32::from_bits(((bits as u32 & 0x8000) << 16) | 0x7fc0_0000 | (man << 13)),
        _ => f32::from_bits(
            ((bits as u32 & 0x8000) << 16) | (((exp + 112) as u32) << 23) | (man << 13),
        ),
    }
}

/// f32 → IEEE binary16 bits, rounding to nearest even (overflow gives infinity).
pub fn f32_to_f16(value: f32) -> u16 {
    let x = value.to_bits();
    let sign = ((x >> 16) & 0x8000) as u16;
    let exp = ((x >> 23) & 0xff) as i32;
    let man = x & 0x7f_ffff;
    if exp == 0xff {
        let nan = if man != 0 {
            0x200 | (man >> 13) as u16
        } else {
            0
        };
        return sign | 0x7c00 | nan;
    }
    let half_exp = exp - 127 + 15;
    if half_exp >= 0x1f {
        return sign | 0x7c00;
    }
    if half_exp <= 0 {
        if 14 - half_exp > 24 {
            return sign;
        }
        let man = man | 0x80_0000;
        let shift = (14 - half_exp) as u32;
        let mut half_man = man >> shift;
        let round_bit = 1u32 << (shift - 1);
        if man & round_bit != 0 && man & (3 * round_bit - 1) != 0 {
            half_man += 1;
        }
        return sign | half_man as u16;
    }
    let bits = ((half_exp as u32) << 10) | (man >> 13);
    let round_bit = 0x1000u32;
    let rounded = if man & round_bit != 0 && man & (3 * round_bit - 1) != 0 {
        bits + 1
    } else {
        bits
    };
    sign | rounded as u16
}

/// bfloat16 bits → f32 (exact).
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}

/// f32 → bfloat16 bits, rounding to nearest even (NaN stays NaN).
pub fn f32_to_bf16(value: f32) -> u16 {
    let x = value.to_bits();
    if value.is_nan() {
        return ((x >> 16) | 0x40) as u16;
    }
    let rounding = 0x7fff + ((x >> 16) & 1);
    (x.wrapping_add(rounding) >> 16) as u16
}

pub fn bit_and<T: crate::element::Bits>(a: T, b: T) -> T {
    a.bit_and(b)
}
pub fn bit_or<T: crate::element::Bits>(a: T, b: T) -> T {
    a.bit_or(b)
}
pub fn bit_xor<T: crate::element::Bits>(a: T, b: T) -> T {
    a.bit_xor(b)
}
pub fn bit_not<T: crate::element::Bits>(a: T) -> T {
    a.bit_not()
}
pub fn shift_left<T: crate::element::Bits>(a: T, b: T) -> T {
    a.shift_left(b)
}
pub fn shift_right<T: crate::element::Bits>(a: T, b: T) -> T {
    a.shift_right(b)
}

#[cfg(test)]
mod half_tests {
    use super::*;

    #[test]
    fn half_conversions_round_trip_and_round_to_even() {
        for bits in [
            0u16, 0x8000, 0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x7c00, 0xfc00,
        ] {
            assert_eq!(f32_to_f16(f16_to_f32(bits)), bits, "{bits:#x}");
        }
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8);
        assert!(f16_to_f32(0x7e00).is_nan());
        // 1 + 2^-11 lies halfway between 1 and the next half: ties to even (1.0).
        assert_eq!(f32_to_f16(1.0 + 1.0 / 2048.0), 0x3c00);
        assert_eq!(f32_to_f16(65520.0), 0x7c00);
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
        assert_eq!(f32_to_bf16(1.0), 0x3f80);
        assert_eq!(f32_to_bf16(1.0 + 1.0 / 256.0), 0x3f80);
        assert!(bf16_to_f32(f32_to_bf16(f32::NAN)).is_nan());
    }
}

#[cfg(test)]
mod fast_exp_tests {
    #[test]
    fn exponent_from_mantissa_bits_equals_the_integer_cast() {
        let mut x = -100.0f32;
        while x < 100.0 {
            let c = x.clamp(-87.336_55, 88.0);
            let n = (c * core::f32::consts::LOG2_E + 12_582_912.0) - 12_582_912.0;
            let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
            let y = super::fast_exp(x) / scale;
            // The polynomial part is the same; only the power of two is formed differently.
            assert_eq!(super::fast_exp(x), y * scale, "x = {x}");
            assert!((0.70..1.42).contains(&y), "x = {x}: {y}");
            x += 0.0137;
        }
    }
}
