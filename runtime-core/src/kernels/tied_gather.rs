//! Embedding lookups that read a tied classifier's packed weight: the rows of an embedding
//! table `T[rows, cols]` are the columns of the classifier weight `W = Tᵀ [cols, rows]`, so
//! one packed blob (f32: `gemm::pack_b`, int4: `qgemm::pack_q4`, int8: `qgemm::pack_i8`,
//! made for the GEMM) serves both the `Gather` and the `MatMul` instead of a second copy of
//! the table.
use crate::error::Error;
use crate::kernels::gather::{Index, fill_rows};
use crate::kernels::gemm::BMatrix;
use crate::kernels::qgemm::{Q4Weights, QWeights, i8_panel_index};

/// `out[r][p] = W[p][indices[r]]` for `p < k`: row `indices[r]` of the table `T[n, k]` whose
/// transpose `W: [k, n]` the f32 GEMM operand `w` holds (packed by `gemm::pack_b`, or row
/// major); element `(p, j)` is wherever [`BMatrix::index`] puts it, so the gather follows
/// the GEMM's layout. Negative indices count from the end; anything else outside `0..n` is
/// `Error::IndexOutOfRange` naming `node`. `out` holds at least `indices.len() · k` values.
pub fn gather_cols_f32<I: Index>(
    node: &'static str,
    w: BMatrix<'_>,
    k: usize,
    n: usize,
    indices: &[I],
    out: &mut [f32],
) -> Result<(), Error> {
    assert!(
        out.len() >= indices.len() * k,
        "gather_cols_f32 output too short"
    );
    fill_rows(node, indices, n, k, out, |j, row| {
        for (p, o) in row.iter_mut().enumerate() {
            *o = w.data[w.index(p, j)];
        }
    })?;
    Ok(())
}

/// `out[r][p] = W[p][indices[r]]` dequantized (`(q - zp) · scale` of group `p / group`),
/// for `p < w.k`: row `indices[r]` of the table whose transpose `w` holds. Negative indices
/// count from the end; anything else outside `0..w.n` is `Error::IndexOutOfRange` naming
/// `node`. `out` holds at least `indices.len() · w.k` values.
pub fn gather_cols_q4<I: Index>(
    node: &'static str,
    w: Q4Weights<'_>,
    indices: &[I],
    out: &mut [f32],
) -> Result<(), Error> {
    let (k, half) = (w.k, w.nr / 2);
    assert!(
        out.len() >= indices.len() * k,
        "gather_cols_q4 output too short"
    );
    fill_rows(node, indices, w.n, k, out, |j, row| {
        let (panel, c) = (w.panel(j / w.nr), j % w.nr);
        let (byte, shift) = (c % half, if c < half { 0 } else { 4 });
        for (p, o) in row.iter_mut().enumerate() {
            let (s, zp) = w.scale_zp(p / w.group, j);
            let q = (panel[p * half + byte] >> shift) & 15;
            *o = (q as f32 - zp) * s;
        }
    })
}

/// As [`gather_cols_q4`] for an int8 blob: `out[r][p] = q[p][j] · scale[j]`, `j =
/// indices[r]` — the values a per-row int8 table (`qgemm::pack_rows_i8`) of `Wᵀ` holds.
pub fn gather_cols_i8<I: Index>(
    node: &'static str,
    w: QWeights<'_>,
    indices: &[I],
    out: &mut [f32],
) -> Result<(), Error> {
    let k = w.k;
    assert!(
        out.len() >= indices.len() * k,
        "gather_cols_i8 output too short"
    );
    fill_rows(node, indices, w.n, k, out, |j, row| {
        for (p, o) in row.iter_mut().enumerate() {
            *o = w.panels[i8_panel_index(p, j, w.kp, w.nr)] as f32 * w.scales[j];
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::qgemm;
    use std::vec;
    use std::vec::Vec;

    /// Rows gathered out of `gemm::pack_b` panels (and out of the row-major operand the
    /// portable kernel reads) equal the rows of the table, bit for bit, for panel widths
    /// that do and do not divide `n` (a zero-padded last panel) and several depths.
    #[test]
    fn f32_columns_of_packed_panels_equal_the_table_rows() {
        use crate::kernels::gemm;
        for (k, n) in [(1, 1), (7, 5), (64, 512), (13, 33), (40, 16)] {
            // The table T[n, k] and the classifier weight W = Tᵀ [k, n].
            let t: Vec<f32> = (0..n * k)
                .map(|i| ((i * 41 % 37) as f32 - 18.0) / 5.0)
                .collect();
            let mut w = vec![0.0f32; k * n];
            for j in 0..n {
                for p in 0..k {
                    w[p * n + j] = t[j * k + p];
                }
            }
            let mut ids: Vec<i64> = (0..n as i64).collect();
            ids.extend([-1, -(n as i64), (n as i64) / 2]);
            let want: Vec<f32> = ids
                .iter()
                .flat_map(|&i| {
                    let j = if i < 0 { i + n as i64 } else { i } as usize;
                    t[j * k..(j + 1) * k].iter().copied()
                })
                .collect();
            let mut out = vec![0.0f32; ids.len() * k];
            for nr in [1, 4, 8, 16, 32, gemm::native_nr()] {
                let mut packed = vec![f32::NAN; gemm::packed_len(k, n, nr)];
                gemm::pack_b(&w, k, n, nr, &mut packed);
                let b = BMatrix::packed(&packed, k, nr);
                out.fill(f32::NAN);
                gather_cols_f32("t", b, k, n, &ids, &mut out).unwrap();
                assert!(
                    out.iter()
                        .zip(&want)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "k {k} n {n} nr {nr}"
                );
                let ids32: Vec<i32> = ids.iter().map(|&i| i as i32).collect();
                out.fill(f32::NAN);
                gather_cols_f32("t", b, k, n, &ids32, &mut out).unwrap();
                assert_eq!(out, want, "i32 ids, k {k} n {n} nr {nr}");
                assert!(gather_cols_f32("t", b, k, n, &[n as i64], &mut out).is_err());
                assert!(gather_cols_f32("t", b, k, n, &[-(n as i32) - 1], &mut out).is_err());
            }
            out.fill(f32::NAN);
            let b = BMatrix::row_major(&w, n, gemm::native_nr());
            gather_cols_f32("t", b, k, n, &ids, &mut out).unwrap();
            assert_eq!(out, want, "row major, k {k} n {n}");
        }
    }

    /// Every column of a packed blob, gathered, equals the dequantized weight the GEMM
    /// multiplies by (identity rows through the reference `gemm_q4`), for several panel
    /// widths, with and without zero points and f16 scales.
    #[test]
    fn columns_equal_the_gemm_weight() {
        let (k, n, group) = (40, 21, 16);
        let w: Vec<f32> = (0..k * n)
            .map(|i| ((i * 37 % 29) as f32 - 14.0) / 9.0)
            .collect();
        let mut q = vec![0u8; k * n];
        let mut scales = vec![0.0f32; k.div_ceil(group) * n];
        qgemm::quantize_weights_q4(&w, k, n, group, &mut q, &mut scales);
        let zps: Vec<u8> = (0..scales.len()).map(|i| (i % 16) as u8).collect();
        let mut eye = vec![0.0f32; k * k];
        for p in 0..k {
            eye[p * k + p] = 1.0;
        }
        for (nr, f16, zero_points) in [(16, true, true), (32, false, false), (4, true, false)] {
            let mut blob = vec![0u8; qgemm::packed_q4_bytes(k, n, group, nr, f16, zero_points)];
            let zp = zero_points.then_some(zps.as_slice());
            qgemm::pack_q4(&q, &scales, zp, k, n, group, nr, f16, &mut blob);
            let weights = Q4Weights::new(&blob, k, n, group, nr, f16, zero_points);
            let mut dense = vec![0.0f32; k * n];
            let g = crate::kernels::gemm::Gemm {
                m: k,
                k,
                n,
                lda: k,
                ldc: n,
                bias: None,
                activation: crate::kernels::gemm::Activation::None,
                tiles: crate::kernels::gemm::Tiles {
                    mr: 4,
                    kc: 256,
                    mc: 64,
                },
            };
            qgemm::reference::gemm_q4(&eye, weights, &mut dense, &g);
            let ids: Vec<i64> = vec![0, 20, -1, 7, 16];
            let mut out = vec![0.0f32; ids.len() * k];
            gather_cols_q4("t", weights, &ids, &mut out).unwrap();
            for (r, &i) in ids.iter().enumerate() {
                let j = if i < 0 {
                    (i + n as i64) as usize
                } else {
                    i as usize
                };
                for p in 0..k {
                    assert_eq!(out[r * k + p], dense[p * n + j], "nr {nr} id {i} p {p}");
                }
            }
            let bad = [21i32];
            assert!(gather_cols_q4("t", weights, &bad, &mut out).is_err());
        }
    }

    /// Gathered columns of an int8 blob equal the rows of the per-row int8 table of `Wᵀ`.
    #[test]
    fn int8_columns_equal_the_per_row_table_of_the_transpose() {
        let (k, n) = (13, 21);
        let w: Vec<f32> = (0..k * n)
            .map(|i| ((i * 53 % 31) as f32 - 15.0) / 7.0)
            .collect();
        let mut wt = vec![0.0f32; k * n];
        for p in 0..k {
            for j in 0..n {
                wt[j * k + p] = w[p * n + j];
            }
        }
        let mut table = vec![0u8; qgemm::packed_rows_i8_bytes(n, k)];
        qgemm::pack_rows_i8(&wt, n, k, &mut table);
        let mut q = vec![0i8; k * n];
        let mut scales = vec![0.0f32; n];
        qgemm::quantize_weights_i8(&w, k, n, &mut q, &mut scales);
        let ids: Vec<i32> = vec![3, 0, 20, -2];
        let mut want = vec![0.0f32; ids.len() * k];
        qgemm::gather_rows_i8("t", &table, n, k, &ids, &mut want).unwrap();
        for nr in [8, 16, 32, 5] {
            let mut blob = vec![0u8; qgemm::packed_i8_bytes(k, n, nr)];
            qgemm::pack_i8(&q, &scales, k, n, nr, &mut blob);
            let weights = QWeights::new(&blob, k, n, nr);
            let mut out = vec![0.0f32; ids.len() * k];
            gather_cols_i8("t", weights, &ids, &mut out).unwrap();
            assert_eq!(out, want, "nr {nr}");
            assert!(gather_cols_i8("t", weights, &[-22i64], &mut out).is_err());
        }
    }
}
