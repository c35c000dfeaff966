//! `Trilu`: keep the upper or lower triangle of the last two axes.

/// `x` and `out` are `[batch, rows, cols]`. Upper keeps `j - i >= k`, lower keeps `j - i <= k`.
pub fn trilu<T: Copy + Default>(
    x: &[T],
    out: &mut [T],
    rows: usize,
    cols: usize,
    k: i64,
    upper: bool,
) {
    if rows == 0 || cols == 0 {
        return;
    }
    for (mat_in, mat_out) in x
        .chunks_exact(rows * cols)
        .zip(out.chunks_exact_mut(rows * cols))
    {
        for i in 0..rows {
            for j in 0..cols {
                let d = j as i64 - i as i64;
                let keep = if upper { d >= k } else { d <= k };
                mat_out[i * cols + j] = if keep {
                    mat_in[i * cols + j]
                } else {
                    T::default()
                };
            }
        }
    }
}
