//! Tensors computed from scalars: constant fill and arithmetic ranges.
use crate::element::Numeric;

/// `out[i] = value`.
pub fn fill<T: Copy>(out: &mut [T], value: T) {
    out.fill(value);
}

/// `out[i] = start + i * delta` (ONNX `Range`).
pub fn range<T: Numeric>(out: &mut [T], start: T, delta: T) {
    for (i, o) in out.iter_mut().enumerate() {
        *o = start.add(T::from_usize(i).mul(delta));
    }
}
