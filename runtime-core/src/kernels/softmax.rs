//! Softmax and LogSoftmax over one axis of a tensor viewed as `[outer, axis_len, inner]`;
//! contiguous rows run the [`rowwise`] kernels (ISA variants chosen at compile time).

use super::rowwise;

/// `out = softmax(x)` along the middle axis; `log` gives LogSoftmax.
pub fn softmax(x: &[f32], out: &mut [f32], outer: usize, axis_len: usize, inner: usize, log: bool) {
    if inner == 1 && axis_len > 0 {
        for (row, out_row) in x
            .chunks_exact(axis_len)
            .zip(out.chunks_exact_mut(axis_len))
            .take(outer)
        {
            softmax_row(row, out_row, log);
        }
        return;
    }
    for o in 0..outer {
        for j in 0..inner {
            let at = |i: usize| (o * axis_len + i) * inner + j;
            let mut max = f32::NEG_INFINITY;
            for i in 0..axis_len {
                max = max.max(x[at(i)]);
            }
            let mut sum = 0.0f32;
            for i in 0..axis_len {
                let e = libm::expf(x[at(i)] - max);
                out[at(i)] = e;
                sum += e;
            }
            if log {
                let log_sum = libm::logf(sum);
                for i in 0..axis_len {
                    out[at(i)] = x[at(i)] - max - log_sum;
                }
            } else {
                let scale = 1.0 / sum;
                for i in 0..axis_len {
                    out[at(i)] *= scale;
                }
            }
        }
    }
}

/// Largest element of a row (NaN-ignoring, like `f32::max`).
#[inline]
pub fn row_max(row: &[f32]) -> f32 {
    rowwise::row_max(row)
}

/// `row[i] = exp(row[i] - max)` (by [`crate::math::fast_exp`]); returns the sum.
#[inline]
pub fn exp_sub_sum_in_place(row: &mut [f32], max: f32) -> f32 {
    rowwise::exp_sub_sum_in_place(row, max)
}

/// `out[i] = exp(row[i] - max)` (by [`crate::math::fast_exp`]); returns the sum.
#[inline]
pub fn exp_sub_sum(row: &[f32], max: f32, out: &mut [f32]) -> f32 {
    rowwise::exp_sub_sum(row, max, out)
}

/// Softmax (or LogSoftmax) of one contiguous row.
#[inline]
pub fn softmax_row(row: &[f32], out: &mut [f32], log: bool) {
    let max = row_max(row);
    let sum = exp_sub_sum(row, max, out);
    if log {
        let shift = max + libm::logf(sum);
        for (o, &v) in out.iter_mut().zip(row) {
            *o = v - shift;
        }
    } else {
        rowwise::scale(out, 1.0 / sum);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rows_sum_to_one() {
        let x = [1.0f32, 2.0, 3.0, -1.0, 0.0, 1000.0];
        let mut out = [0.0f32; 6];
        super::softmax(&x, &mut out, 2, 3, 1, false);
        assert!((out[0] + out[1] + out[2] - 1.0).abs() < 1e-6);
        assert!((out[5] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn contiguous_rows_match_the_strided_path() {
        let x: std::vec::Vec<f32> = (0..3 * 37)
            .map(|i| ((i * 7919) % 101) as f32 * 0.1 - 5.0)
            .collect();
        for log in [false, true] {
            let mut fast = std::vec![0.0f32; x.len()];
            super::softmax(&x, &mut fast, 3, 37, 1, log);
            // The same rows as one strided tensor: [1, 37, 3] transposed.
            let mut t = std::vec![0.0f32; x.len()];
            for r in 0..3 {
                for i in 0..37 {
                    t[i * 3 + r] = x[r * 37 + i];
                }
            }
            let mut slow = std::vec![0.0f32; x.len()];
            super::softmax(&t, &mut slow, 1, 37, 3, log);
            for r in 0..3 {
                for i in 0..37 {
                    let (a, b) = (fast[r * 37 + i], slow[i * 3 + r]);
                    assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{a} vs {b}");
                }
            }
        }
    }
}
