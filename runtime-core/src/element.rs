//! Element traits: what kernels may assume of the types they are instantiated with.
//!
//! Booleans are stored as `u8` (0 or 1) everywhere inside the runtime.

/// Any tensor element.
pub trait Element: Copy + Default + PartialOrd + 'static {}

/// Arithmetic element types. Integer operations wrap and never trap (division by zero gives
/// 0), so neither constant folding in the compiler nor generated code can panic on data.
pub trait Numeric: Element {
    const ZERO: Self;
    const ONE: Self;
    /// The smallest value (negative infinity for floats), the identity of max-reduction.
    const LOWEST: Self;
    /// The largest value (infinity for floats), the identity of min-reduction.
    const HIGHEST: Self;
    fn add(self, other: Self) -> Self;
    fn sub(self, other: Self) -> Self;
    fn mul(self, other: Self) -> Self;
    fn div(self, other: Self) -> Self;
    fn rem(self, other: Self) -> Self;
    fn pow(self, other: Self) -> Self;
    fn neg(self) -> Self;
    fn abs(self) -> Self;
    fn max(self, other: Self) -> Self;
    fn min(self, other: Self) -> Self;
    fn from_usize(value: usize) -> Self;
    fn to_f64(self) -> f64;
    fn from_f64(value: f64) -> Self;
}

macro_rules! float_numeric {
    ($t:ty, $pow:path, $fmod:path) => {
        impl Element for $t {}
        impl Numeric for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const LOWEST: Self = <$t>::NEG_INFINITY;
            const HIGHEST: Self = <$t>::INFINITY;
            fn add(self, o: Self) -> Self {
                self + o
            }
            fn sub(self, o: Self) -> Self {
                self - o
            }
            fn mul(self, o: Self) -> Self {
                self * o
            }
            fn div(self, o: Self) -> Self {
                self / o
            }
            fn rem(self, o: Self) -> Self {
                $fmod(self, o)
            }
            fn pow(self, o: Self) -> Self {
                $pow(self, o)
            }
            fn neg(self) -> Self {
                -self
            }
            fn abs(self) -> Self {
                if self < 0.0 { -self } else { self }
            }
            // NaN propagates, as in ONNX Max/Min.
            fn max(self, o: Self) -> Self {
                if self.is_nan() || o.is_nan() {
                    <$t>::NAN
                } else if o > self {
                    o
                } else {
                    self
                }
            }
            fn min(self, o: Self) -> Self {
                if self.is_nan() || o.is_nan() {
                    <$t>::NAN
                } else if o < self {
                    o
                } else {
                    self
                }
            }
            fn from_usize(v: usize) -> Self {
                v as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
        }
    };
}
float_numeric!(f32, libm::powf, libm::fmodf);
float_numeric!(f64, libm::pow, libm::fmod);

macro_rules! int_numeric {
    ($($t:ty),*) => {$(
        impl Element for $t {}
        impl Numeric for $t {
            const ZERO: Self = 0;
            const ONE: Self = 1;
            const LOWEST: Self = <$t>::MIN;
            const HIGHEST: Self = <$t>::MAX;
            fn add(self, o: Self) -> Self { self.wrapping_add(o) }
            fn sub(self, o: Self) -> Self { self.wrapping_sub(o) }
            fn mul(self, o: Self) -> Self { self.wrapping_mul(o) }
            fn div(self, o: Self) -> Self { self.checked_div(o).unwrap_or(0) }
            fn rem(self, o: Self) -> Self { self.checked_rem(o).unwrap_or(0) }
            fn pow(self, o: Self) -> Self {
                // Integer Pow with a negative exponent truncates towards zero like C.
                if o < 0 as $t { return if self == 1 as $t { 1 as $t } else { 0 as $t }; }
                let mut result: $t = 1 as $t;
                let mut base = self;
                let mut exp = o as u64;
                while exp > 0 {
                    if exp & 1 == 1 { result = result.wrapping_mul(base); }
                    base = base.wrapping_mul(base);
                    exp >>= 1;
                }
                result
            }
            fn neg(self) -> Self { (0 as $t).wrapping_sub(self) }
            #[allow(unused_comparisons)]
            fn abs(self) -> Self { if self < 0 as $t { self.neg() } else { self } }
            fn max(self, o: Self) -> Self { if o > self { o } else { self } }
            fn min(self, o: Self) -> Self { if o < self { o } else { self } }
            fn from_usize(v: usize) -> Self { v as $t }
            fn to_f64(self) -> f64 { self as f64 }
            fn from_f64(v: f64) -> Self { v as $t }
        }
    )*};
}
int_numeric!(i64, i32, i16, i8, u8, u16, u32, u64);

/// Numeric conversion with ONNX `Cast` semantics (float to int truncates and saturates,
/// int to int wraps). Booleans are `u8` and go through [`to_bool`].
pub trait CastFrom<T> {
    fn cast_from(value: T) -> Self;
}

macro_rules! cast_all {
    ($($from:ty),*) => {$(
        impl CastFrom<$from> for f32 { fn cast_from(v: $from) -> Self { v as f32 } }
        impl CastFrom<$from> for f64 { fn cast_from(v: $from) -> Self { v as f64 } }
        impl CastFrom<$from> for i64 { fn cast_from(v: $from) -> Self { v as i64 } }
        impl CastFrom<$from> for i32 { fn cast_from(v: $from) -> Self { v as i32 } }
        impl CastFrom<$from> for i16 { fn cast_from(v: $from) -> Self { v as i16 } }
        impl CastFrom<$from> for i8 { fn cast_from(v: $from) -> Self { v as i8 } }
        impl CastFrom<$from> for u8 { fn cast_from(v: $from) -> Self { v as u8 } }
        impl CastFrom<$from> for u16 { fn cast_from(v: $from) -> Self { v as u16 } }
        impl CastFrom<$from> for u32 { fn cast_from(v: $from) -> Self { v as u32 } }
        impl CastFrom<$from> for u64 { fn cast_from(v: $from) -> Self { v as u64 } }
    )*};
}
cast_all!(f32, f64, i64, i32, i16, i8, u8, u16, u32, u64);

/// Truthiness of any numeric element, as a stored boolean.
pub fn to_bool<T: Numeric>(value: T) -> u8 {
    (value != T::ZERO) as u8
}

/// Integer element types: bitwise operations (ONNX BitShift, Bitwise*). Shifts by the
/// type's width or more give 0.
pub trait Bits: Element {
    fn bit_and(self, other: Self) -> Self;
    fn bit_or(self, other: Self) -> Self;
    fn bit_xor(self, other: Self) -> Self;
    fn bit_not(self) -> Self;
    fn shift_left(self, by: Self) -> Self;
    fn shift_right(self, by: Self) -> Self;
}

macro_rules! bits {
    ($($t:ty),*) => {$(
        impl Bits for $t {
            fn bit_and(self, o: Self) -> Self { self & o }
            fn bit_or(self, o: Self) -> Self { self | o }
            fn bit_xor(self, o: Self) -> Self { self ^ o }
            fn bit_not(self) -> Self { !self }
            fn shift_left(self, by: Self) -> Self {
                u32::try_from(by).ok().and_then(|b| self.checked_shl(b)).unwrap_or(0)
            }
            fn shift_right(self, by: Self) -> Self {
                u32::try_from(by).ok().and_then(|b| self.checked_shr(b)).unwrap_or(0)
            }
        }
    )*};
}
bits!(u8, u16, u32, u64, i8, i16, i32, i64);
