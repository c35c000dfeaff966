//! Embedding lookups that read a tied classifier's packed weight: the rows of an embedding
//! table `T[rows, cols]` are the columns of the classifier weight `W = Tᵀ [cols, rows]`, so
//! one int4 blob (`qgemm::pack_q4` layout, made for the GEMM) serves both the `Gather` and
//! the `MatMul` instead of a second copy of the table.
use crate::error::{Error, IndexError};
use crate::kernels::gather::Index;
use crate::kernels::qgemm::Q4Weights;

#[inline]
fn resolve(index: i64, bound: usize) -> Result<usize, IndexError> {
    let wrapped = if index < 0 {
        index + bound as i64
    } else {
        index
    };
    if wrapped < 0 || wrapped >= bound as i64 {
        return Err(IndexError { index, bound });
    }
    Ok(wrapped as usize)
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
    for (r, &index) in indices.iter().enumerate() {
        let j = resolve(index.to_i64(), w.n).map_err(|e| e.at(node))?;
        let (panel, c) = (w.panel(j / w.nr), j % w.nr);
        let (byte, shift) = (c % half, if c < half { 0 } else { 4 });
        let row = &mut out[r * k..(r + 1) * k];
        for (p, o) in row.iter_mut().enumerate() {
            let (s, zp) = w.scale_zp(p / w.group, j);
            let q = (panel[p * half + byte] >> shift) & 15;
            *o = (q as f32 - zp) * s;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::qgemm;
    use std::vec;
    use std::vec::Vec;

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
}
