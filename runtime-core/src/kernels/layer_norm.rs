//! Normalisation over the trailing axes of a tensor viewed as `[rows, cols]`; rows with
//! full-length scale and bias run the [`rowwise`] kernels (ISA variants chosen at compile time).
use super::{qgemm, rowwise};

/// LayerNormalization: `out = (x - mean) / sqrt(var + eps) * scale + bias` per row.
/// `scale` and `bias` have `cols` elements (or one, broadcast).
pub fn layer_norm(
    x: &[f32],
    scale: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    cols: usize,
    eps: f32,
) {
    if cols == 0 {
        return;
    }
    let pick = |v: &[f32], j: usize| if v.len() == 1 { v[0] } else { v[j] };
    let full = scale.len() == cols && bias.is_none_or(|b| b.len() == cols);
    for (row, out_row) in x.chunks_exact(cols).zip(out.chunks_exact_mut(cols)) {
        if full {
            rowwise::layer_norm(row, scale, bias, out_row, eps);
            continue;
        }
        let (mean, inv) = rowwise::reference::mean_inv_std(row, eps);
        for (j, (o, v)) in out_row.iter_mut().zip(row).enumerate() {
            let normed = (v - mean) * inv * pick(scale, j);
            *o = match bias {
                Some(b) => normed + pick(b, j),
                None => normed,
            };
        }
    }
}

/// [`layer_norm`] whose every row is also quantized for an int8 product while it is in cache:
/// `out` as [`layer_norm`], and `q`, `scales`, `zero_points` as
/// [`qgemm::quantize_rows_symmetric`]`(out, m, cols, cols, ..)` with `m = x.len() / cols`
/// (`q`: `m` rows of [`qgemm::qa_stride`]`(cols)` bytes) — the same bits as the two calls.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_quantize_rows(
    x: &[f32],
    scale: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    cols: usize,
    eps: f32,
    q: &mut [i8],
    scales: &mut [f32],
    zero_points: &mut [i32],
) {
    if cols == 0 {
        return;
    }
    let kp = qgemm::qa_stride(cols);
    let rows = x.len() / cols;
    assert!(out.len() >= rows * cols && q.len() >= rows * kp);
    assert!(scales.len() >= rows && zero_points.len() >= rows);
    for i in 0..rows {
        let span = i * cols..(i + 1) * cols;
        layer_norm(
            &x[span.clone()],
            scale,
            bias,
            &mut out[span.clone()],
            cols,
            eps,
        );
        qgemm::quantize_rows_symmetric(
            &out[span],
            1,
            cols,
            cols,
            &mut q[i * kp..(i + 1) * kp],
            &mut scales[i..=i],
            &mut zero_points[i..=i],
        );
    }
}

/// RMSNorm: `out = x / sqrt(mean(x²) + eps) * scale` per row, `scale` with `cols` elements
/// (or one, broadcast). The portable path rounds as the exported chain does (the squares
/// summed in order, then divided by `cols`); the ISA variants sum the squares in 16 partial
/// sums (a few ulp apart). With `divide` each element is `x / r`, else `x * (1 / r)`.
pub fn rms_norm(
    x: &[f32],
    scale: Option<&[f32]>,
    out: &mut [f32],
    cols: usize,
    eps: f32,
    divide: bool,
) {
    if cols == 0 {
        return;
    }
    for (row, out_row) in x.chunks_exact(cols).zip(out.chunks_exact_mut(cols)) {
        match scale {
            Some(s) if s.len() == cols => rowwise::rms_norm(row, Some(s), out_row, eps, divide),
            None => rowwise::rms_norm(row, None, out_row, eps, divide),
            Some(s) => {
                let mut sum = 0.0f32;
                for &v in row {
                    sum += v * v;
                }
                let r = libm::sqrtf(sum / cols as f32 + eps);
                let inv = 1.0 / r;
                for (o, &v) in out_row.iter_mut().zip(row) {
                    *o = if divide { v / r } else { v * inv } * s[0];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn normalises_each_row() {
        let x = [1.0f32, 3.0, 10.0, 30.0];
        let mut out = [0.0f32; 4];
        super::layer_norm(&x, &[1.0], Some(&[0.5]), &mut out, 2, 0.0);
        assert_eq!(out, [-0.5, 1.5, -0.5, 1.5]);
    }

    /// The fused row quantization gives the bits of LayerNorm then the quantizer, for full
    /// and broadcast scale/bias, column counts with and without a depth-group tail.
    #[test]
    fn quantized_rows_match_layer_norm_then_the_quantizer() {
        use crate::kernels::qgemm;
        use std::vec;
        for cols in [1usize, 3, 16, 37, 384] {
            let m = 5;
            let x: std::vec::Vec<f32> = (0..m * cols)
                .map(|i| ((i * 7919) % 263) as f32 * 0.037 - 4.0 + (i / cols) as f32)
                .collect();
            let full: std::vec::Vec<f32> = (0..cols).map(|j| 0.5 + j as f32 * 0.01).collect();
            let bias: std::vec::Vec<f32> = (0..cols).map(|j| j as f32 * -0.02).collect();
            for (scale, b) in [(&full[..], Some(&bias[..])), (&[1.5f32][..], None)] {
                let kp = qgemm::qa_stride(cols);
                let mut want = vec![0.0f32; m * cols];
                super::layer_norm(&x, scale, b, &mut want, cols, 1e-5);
                let (mut wq, mut ws, mut wz) = (vec![1i8; m * kp], vec![0.0; m], vec![1; m]);
                qgemm::quantize_rows_symmetric(&want, m, cols, cols, &mut wq, &mut ws, &mut wz);
                let mut got = vec![0.0f32; m * cols];
                let (mut q, mut s, mut z) = (vec![1i8; m * kp], vec![0.0; m], vec![1; m]);
                super::layer_norm_quantize_rows(
                    &x, scale, b, &mut got, cols, 1e-5, &mut q, &mut s, &mut z,
                );
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<std::vec::Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "cols {cols}");
                assert_eq!((q, bits(&s), z), (wq, bits(&ws), wz), "cols {cols}");
            }
        }
    }

    #[test]
    fn rms_normalises_each_row() {
        // Row [3, 4]: mean square 12.5; row [-6, 8]: 50. Scaled by [1, 2].
        let x = [3.0f32, 4.0, -6.0, 8.0];
        let mut out = [0.0f32; 4];
        super::rms_norm(&x, Some(&[1.0, 2.0]), &mut out, 2, 0.0, true);
        let (a, b) = (12.5f32.sqrt(), 50.0f32.sqrt());
        let want = [3.0 / a, 8.0 / a, -6.0 / b, 16.0 / b];
        for (o, w) in out.iter().zip(want) {
            assert!((o - w).abs() < 1e-6, "{out:?} vs {want:?}");
        }
        let x: std::vec::Vec<f32> = (0..37).map(|i| i as f32 * 0.25 - 4.0).collect();
        let mut out = std::vec![0.0f32; 37];
        super::rms_norm(&x, None, &mut out, 37, 1e-5, false);
        let ms = x.iter().map(|v| v * v).sum::<f32>() / 37.0;
        for (o, v) in out.iter().zip(&x) {
            assert!((o - v / (ms + 1e-5).sqrt()).abs() < 1e-5);
        }
    }
}
