//! Normalisation over the trailing axes of a tensor viewed as `[rows, cols]`.

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
    for (row, out_row) in x.chunks_exact(cols).zip(out.chunks_exact_mut(cols)) {
        let mean = lane_sum(row, |v| v) / cols as f32;
        let var = lane_sum(row, |v| (v - mean) * (v - mean)) / cols as f32;
        let inv = 1.0 / libm::sqrtf(var + eps);
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
/// (or one, broadcast). Rounded as the exported chain is: the squares summed in order, then
/// divided by `cols`; with `divide` each element is `x / r`, else `x * (1 / r)`.
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
        let mut sum = 0.0f32;
        for &v in row {
            sum += v * v;
        }
        let r = libm::sqrtf(sum / cols as f32 + eps);
        let inv = 1.0 / r;
        let norm = |v: f32| if divide { v / r } else { v * inv };
        match scale {
            Some(s) if s.len() == cols => {
                for ((o, &v), &w) in out_row.iter_mut().zip(row).zip(s) {
                    *o = norm(v) * w;
                }
            }
            _ => {
                let w = scale.map_or(1.0, |s| s[0]);
                for (o, &v) in out_row.iter_mut().zip(row) {
                    *o = if scale.is_some() {
                        norm(v) * w
                    } else {
                        norm(v)
                    };
                }
            }
        }
    }
}

/// `Σ f(v)` with 16 partial sums, so the loop vectorises.
#[inline]
fn lane_sum(row: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; 16];
    let chunks = row.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for chunk in chunks {
        for (l, &v) in lanes.iter_mut().zip(chunk) {
            *l += f(v);
        }
    }
    tail + lanes.iter().sum::<f32>()
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
