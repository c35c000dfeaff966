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
