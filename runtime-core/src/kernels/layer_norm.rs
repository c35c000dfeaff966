//! Normalisation over the trailing axes of a tensor viewed as `[rows, cols]`; rows with
//! full-length scale and bias run the [`rowwise`] kernels (ISA variants chosen at compile time).
use super::rowwise;

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
