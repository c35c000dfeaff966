//! Softmax and LogSoftmax over one axis of a tensor viewed as `[outer, axis_len, inner]`.

/// `out = softmax(x)` along the middle axis; `log` gives LogSoftmax.
pub fn softmax(x: &[f32], out: &mut [f32], outer: usize, axis_len: usize, inner: usize, log: bool) {
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
}
