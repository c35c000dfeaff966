//! `CumSum` along the middle axis of `[outer, len, inner]`.
use crate::element::Numeric;

/// Running sum; `exclusive` leaves out the current element, `reverse` runs from the end.
pub fn cumsum<T: Numeric>(
    x: &[T],
    out: &mut [T],
    outer: usize,
    len: usize,
    inner: usize,
    exclusive: bool,
    reverse: bool,
) {
    for o in 0..outer {
        for j in 0..inner {
            let mut acc = T::ZERO;
            for step in 0..len {
                let i = if reverse { len - 1 - step } else { step };
                let at = (o * len + i) * inner + j;
                if exclusive {
                    out[at] = acc;
                    acc = acc.add(x[at]);
                } else {
                    acc = acc.add(x[at]);
                    out[at] = acc;
                }
            }
        }
    }
}
