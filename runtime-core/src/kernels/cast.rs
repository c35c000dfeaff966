//! Element type conversion with ONNX `Cast` semantics.
use crate::element::{CastFrom, Numeric, to_bool};

/// `out[i] = x[i] as U`.
pub fn cast<T: Copy, U: CastFrom<T>>(x: &[T], out: &mut [U]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = U::cast_from(v);
    }
}

/// `out[i] = (x[i] != 0)` as a byte boolean.
pub fn cast_to_bool<T: Numeric>(x: &[T], out: &mut [u8]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = to_bool(v);
    }
}

/// IEEE binary16 bits → f32.
pub fn f16_to_f32(x: &[u16], out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = crate::math::f16_to_f32(v);
    }
}

/// f32 → IEEE binary16 bits (round to nearest even).
pub fn f32_to_f16(x: &[f32], out: &mut [u16]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = crate::math::f32_to_f16(v);
    }
}

/// bfloat16 bits → f32.
pub fn bf16_to_f32(x: &[u16], out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = crate::math::bf16_to_f32(v);
    }
}

/// f32 → bfloat16 bits (round to nearest even).
pub fn f32_to_bf16(x: &[f32], out: &mut [u16]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = crate::math::f32_to_bf16(v);
    }
}
