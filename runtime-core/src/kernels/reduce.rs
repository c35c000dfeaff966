//! Reductions over any set of axes.
use super::{for_each_row, inner_stride, split_inner};
use crate::element::Numeric;

/// What a reduction computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceKind {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
    SumSquare,
    L1,
    L2,
    LogSum,
    LogSumExp,
}

/// Reduce `x` (contiguous, `shape`) into `out`. `out_strides` are the output's strides read
/// in `x`'s index space: 0 on reduced axes. `count` is the number of elements folded into
/// each output (for `Mean`).
pub fn reduce<T: Numeric>(
    x: &[T],
    shape: &[usize],
    out: &mut [T],
    out_strides: &[isize],
    count: usize,
    kind: ReduceKind,
) {
    let init = match kind {
        ReduceKind::Max => T::LOWEST,
        ReduceKind::Min => T::HIGHEST,
        ReduceKind::Prod => T::ONE,
        _ => T::ZERO,
    };
    out.fill(init);
    match kind {
        ReduceKind::Sum | ReduceKind::Mean | ReduceKind::LogSum => {
            fold(x, shape, out, out_strides, |s, v| s.add(v))
        }
        ReduceKind::Max => fold(x, shape, out, out_strides, |s, v| s.max(v)),
        ReduceKind::Min => fold(x, shape, out, out_strides, |s, v| s.min(v)),
        ReduceKind::Prod => fold(x, shape, out, out_strides, |s, v| s.mul(v)),
        ReduceKind::SumSquare | ReduceKind::L2 => {
            fold(x, shape, out, out_strides, |s, v| s.add(v.mul(v)))
        }
        ReduceKind::L1 => fold(x, shape, out, out_strides, |s, v| s.add(v.abs())),
        ReduceKind::LogSumExp => fold(x, shape, out, out_strides, |s, v| {
            s.add(T::from_f64(libm::exp(v.to_f64())))
        }),
    }
    match kind {
        ReduceKind::Mean if count > 0 => {
            let n = T::from_usize(count);
            out.iter_mut().for_each(|v| *v = v.div(n));
        }
        ReduceKind::L2 => out
            .iter_mut()
            .for_each(|v| *v = T::from_f64(libm::sqrt(v.to_f64()))),
        ReduceKind::LogSum | ReduceKind::LogSumExp => out
            .iter_mut()
            .for_each(|v| *v = T::from_f64(libm::log(v.to_f64()))),
        _ => {}
    }
}

/// Fold every element of `x` into its output slot with `f(slot, v)`, rows in order, so
/// each slot sees its elements in index order whatever the output layout. A kept innermost
/// axis (output stride 1) folds a whole row into a contiguous output run at once.
#[inline(always)]
fn fold<T: Numeric>(
    x: &[T],
    shape: &[usize],
    out: &mut [T],
    out_strides: &[isize],
    f: impl Fn(T, T) -> T,
) {
    let (outer, len) = split_inner(shape);
    let step = inner_stride(out_strides);
    let rank = outer.len();
    let mut start = 0usize;
    for_each_row(outer, [&out_strides[..rank]], [0], |[at]| {
        let row = &x[start..start + len];
        start += len;
        let at = at as usize;
        match step {
            1 => out[at..at + len]
                .iter_mut()
                .zip(row)
                .for_each(|(slot, &v)| *slot = f(*slot, v)),
            0 => {
                let slot = &mut out[at];
                *slot = row.iter().fold(*slot, |s, &v| f(s, v));
            }
            _ => {
                for (j, &v) in row.iter().enumerate() {
                    let slot = &mut out[at + j * step as usize];
                    *slot = f(*slot, v);
                }
            }
        }
    });
}

/// ArgMax / ArgMin along the middle axis of `[outer, axis_len, inner]`; ties resolve to the
/// first index unless `select_last`.
pub fn arg_extreme<T: Numeric>(
    x: &[T],
    out: &mut [i64],
    outer: usize,
    axis_len: usize,
    inner: usize,
    max: bool,
    select_last: bool,
) {
    for o in 0..outer {
        for j in 0..inner {
            let mut best = 0usize;
            for i in 1..axis_len {
                let (v, b) = (
                    x[(o * axis_len + i) * inner + j],
                    x[(o * axis_len + best) * inner + j],
                );
                let better = if max { v > b } else { v < b };
                if better || (select_last && v == b) {
                    best = i;
                }
            }
            out[o * inner + j] = best as i64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_over_last_axis_and_max_over_first() {
        let x = [1.0f32, 3.0, 5.0, 7.0]; // [2,2]
        let mut mean = [0.0f32; 2];
        reduce(&x, &[2, 2], &mut mean, &[1, 0], 2, ReduceKind::Mean);
        assert_eq!(mean, [2.0, 6.0]);
        let mut max = [0.0f32; 2];
        reduce(&x, &[2, 2], &mut max, &[0, 1], 2, ReduceKind::Max);
        assert_eq!(max, [5.0, 7.0]);
    }
}
