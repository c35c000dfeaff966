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
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    // 1.5 · 2^23: adding and subtracting it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.336_55, 88.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // `n` is in [-126, 127] after the clamp, so the exponent field is valid. It is read from
    // the low mantissa bits of `t` (`1.5 · 2^23 + n`) rather than by a float-to-int cast,
    // which does not vectorise.
    let ni = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    y * f32::from_bits((ni.wrapping_add(127) as u32) << 23)
}

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
    let x = x.clamp(-7.905_311, 7.905_311);
    let x2 = x * x;
    let mut p = -2.760_768_5e-16f32;
    p = p * x2 + 2.000_188e-13;
    p = p * x2 + -8.604_672e-11;
    p = p * x2 + 5.122_297e-8;
    p = p * x2 + 1.485_722_4e-5;
    p = p * x2 + 6.372_619_3e-4;
    p = p * x2 + 4.893_524_6e-3;
    let mut q = 1.198_258_4e-6f32;
    q = q * x2 + 1.185_347_1e-4;
    q = q * x2 + 2.268_434_6e-3;
    q = q * x2 + 4.893_525e-3;
    x * p / q
}

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
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + fast_tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)))
}

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
