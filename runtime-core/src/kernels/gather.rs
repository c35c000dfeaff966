//! Index-driven reads: `Gather` (embedding lookup), `GatherElements` and `GatherND`.
use crate::error::{Error, IndexError};

/// Integer types usable as indices.
pub trait Index: Copy {
    fn to_i64(self) -> i64;
}
impl Index for i64 {
    fn to_i64(self) -> i64 {
        self
    }
}
impl Index for i32 {
    fn to_i64(self) -> i64 {
        self as i64
    }
}

#[inline]
pub(crate) fn resolve(index: i64, bound: usize) -> Result<usize, IndexError> {
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

/// For each `indices[r]` resolved against `bound` (negative indices count from the end), calls
/// `fill(i, row)` with `row = out[r·width..(r+1)·width]`; an index out of range is
/// `Error::IndexOutOfRange` naming `node`. The row gathers of the quantized, half and tied
/// tables share it.
pub(crate) fn fill_rows<I: Index>(
    node: &'static str,
    indices: &[I],
    bound: usize,
    width: usize,
    out: &mut [f32],
    mut fill: impl FnMut(usize, &mut [f32]),
) -> Result<(), Error> {
    for (r, &index) in indices.iter().enumerate() {
        let i = resolve(index.to_i64(), bound).map_err(|e| e.at(node))?;
        fill(i, &mut out[r * width..(r + 1) * width]);
    }
    Ok(())
}

/// `data` viewed as `[outer, axis_len, inner]`; `out` is `[outer, indices.len(), inner]`.
/// Negative indices count from the end; anything else out of range is an error.
pub fn gather<T: Copy, I: Index>(
    data: &[T],
    indices: &[I],
    out: &mut [T],
    outer: usize,
    axis_len: usize,
    inner: usize,
) -> Result<(), IndexError> {
    let n = indices.len();
    for o in 0..outer {
        for (k, &index) in indices.iter().enumerate() {
            let i = resolve(index.to_i64(), axis_len)?;
            let src = (o * axis_len + i) * inner;
            let dst = (o * n + k) * inner;
            out[dst..dst + inner].copy_from_slice(&data[src..src + inner]);
        }
    }
    Ok(())
}

/// `GatherElements`: `out` and `indices` share the shape `[outer, index_len, inner]`,
/// `data` is `[outer, axis_len, inner]`; element (o, k, j) reads data (o, indices(o,k,j), j).
pub fn gather_elements<T: Copy, I: Index>(
    data: &[T],
    indices: &[I],
    out: &mut [T],
    outer: usize,
    axis_len: usize,
    index_len: usize,
    inner: usize,
) -> Result<(), IndexError> {
    for o in 0..outer {
        for k in 0..index_len {
            for j in 0..inner {
                let at = (o * index_len + k) * inner + j;
                let i = resolve(indices[at].to_i64(), axis_len)?;
                out[at] = data[(o * axis_len + i) * inner + j];
            }
        }
    }
    Ok(())
}

/// ONNX `GatherND`. `data` is `[batch, dims.., inner]` and `indices` is
/// `[batch, rows, dims.len()]`; out is `[batch, rows, inner]`. Row `(b, r)` copies the
/// `inner` slice of `data` at the index tuple `indices(b, r, ..)`, each component resolved
/// against its axis in `dims` (negative values count from the end).
pub fn gather_nd<T: Copy, I: Index>(
    data: &[T],
    indices: &[I],
    out: &mut [T],
    batch: usize,
    dims: &[usize],
    rows: usize,
    inner: usize,
) -> Result<(), IndexError> {
    let depth = dims.len();
    let block: usize = dims.iter().product::<usize>() * inner;
    for b in 0..batch {
        for r in 0..rows {
            let row = b * rows + r;
            let mut at = 0usize;
            for (j, &dim) in dims.iter().enumerate() {
                at = at * dim + resolve(indices[row * depth + j].to_i64(), dim)?;
            }
            let src = b * block + at * inner;
            out[row * inner..(row + 1) * inner].copy_from_slice(&data[src..src + inner]);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_rows_and_reject_out_of_range() {
        let table = [0.0f32, 1.0, 10.0, 11.0, 20.0, 21.0];
        let mut out = [0.0f32; 4];
        gather(&table, &[2i64, -3], &mut out, 1, 3, 2).unwrap();
        assert_eq!(out, [20.0, 21.0, 0.0, 1.0]);
        assert_eq!(
            gather(&table, &[3i64], &mut out[..2], 1, 3, 2),
            Err(IndexError { index: 3, bound: 3 })
        );
    }

    #[test]
    fn gather_nd_points_slices_and_batches() {
        // data [[0,1],[2,3]]: index pairs pick elements, single indices pick rows.
        let data = [0i32, 1, 2, 3];
        let mut out = [0i32; 2];
        gather_nd(&data, &[0i64, 0, 1, 1], &mut out, 1, &[2, 2], 2, 1).unwrap();
        assert_eq!(out, [0, 3]);
        let mut rows = [0i32; 4];
        gather_nd(&data, &[1i32, 0], &mut rows, 1, &[2], 2, 2).unwrap();
        assert_eq!(rows, [2, 3, 0, 1]);
        // batch_dims = 1: batch 0 picks its row 1, batch 1 picks its row -2 (= 0).
        let data = [0i64, 1, 2, 3, 4, 5, 6, 7]; // [2, 2, 2]
        let mut out = [0i64; 4];
        gather_nd(&data, &[1i64, -2], &mut out, 2, &[2], 1, 2).unwrap();
        assert_eq!(out, [2, 3, 4, 5]);
        assert_eq!(
            gather_nd(&data, &[2i64, 0], &mut out, 2, &[2], 1, 2),
            Err(IndexError { index: 2, bound: 2 })
        );
    }
}
