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
