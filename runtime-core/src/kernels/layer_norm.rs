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
        let mean = row.iter().sum::<f32>() / cols as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / cols as f32;
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
