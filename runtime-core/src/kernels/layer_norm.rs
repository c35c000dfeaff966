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
}
