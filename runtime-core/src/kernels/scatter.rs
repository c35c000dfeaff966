//! Scatter: write (or combine) updates into a copy of the data at indexed positions
//! (ONNX ScatterND, ScatterElements). Indices outside the data are skipped, never trusted.
use crate::MAX_RANK;
use crate::element::Numeric;

/// Overwrite with the update.
pub const REDUCE_NONE: u8 = 0;
pub const REDUCE_ADD: u8 = 1;
pub const REDUCE_MUL: u8 = 2;
pub const REDUCE_MAX: u8 = 3;
pub const REDUCE_MIN: u8 = 4;

#[inline]
fn combine<T: Numeric>(old: T, new: T, reduction: u8) -> T {
    match reduction {
        REDUCE_ADD => old.add(new),
        REDUCE_MUL => old.mul(new),
        REDUCE_MAX => old.max(new),
        REDUCE_MIN => old.min(new),
        _ => new,
    }
}

/// `index` (negative counts from the end) on an axis of `size`, if inside.
#[inline]
fn resolve(index: i64, size: usize) -> Option<usize> {
    let i = if index < 0 {
        index + size as i64
    } else {
        index
    };
    (i >= 0 && (i as usize) < size).then_some(i as usize)
}

/// ScatterND: `indices` is `[n, k]` (k leading data axes per row), `updates` `[n, slice]`
/// where `slice` is the size of the remaining data axes.
pub fn scatter_nd<T: Numeric>(
    data: &[T],
    data_shape: &[usize],
    indices: &[i64],
    k: usize,
    updates: &[T],
    out: &mut [T],
    reduction: u8,
) {
    out.copy_from_slice(data);
    let slice: usize = data_shape[k..].iter().product();
    let rows = indices
        .len()
        .checked_div(k)
        .unwrap_or(updates.len() / slice.max(1));
    'rows: for r in 0..rows {
        let mut off = 0usize;
        for d in 0..k {
            let Some(i) = resolve(indices[r * k + d], data_shape[d]) else {
                continue 'rows;
            };
            off = off * data_shape[d] + i;
        }
        let at = off * slice;
        for j in 0..slice {
            out[at + j] = combine(out[at + j], updates[r * slice + j], reduction);
        }
    }
}

#[allow(clippy::too_many_arguments)]
/// ScatterElements along `axis`: `indices` and `updates` share a shape; element `idx` of
/// updates goes to `idx` with the axis coordinate replaced by the index value.
pub fn scatter_elements<T: Numeric>(
    data: &[T],
    data_shape: &[usize],
    indices: &[i64],
    index_shape: &[usize],
    updates: &[T],
    axis: usize,
    out: &mut [T],
    reduction: u8,
) {
    out.copy_from_slice(data);
    let rank = data_shape.len();
    let mut strides = [0usize; MAX_RANK];
    let mut s = 1;
    for d in (0..rank).rev() {
        strides[d] = s;
        s *= data_shape[d];
    }
    let mut idx = [0usize; MAX_RANK];
    for (&index, &update) in indices.iter().zip(updates) {
        if let Some(i) = resolve(index, data_shape[axis]) {
            let mut off = 0usize;
            for d in 0..rank {
                let coord = if d == axis { i } else { idx[d] };
                off += coord * strides[d];
            }
            out[off] = combine(out[off], update, reduction);
        }
        let mut d = rank;
        while d > 0 {
            d -= 1;
            idx[d] += 1;
            if idx[d] < index_shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scatter_nd_rows_and_elements() {
        let data = [1, 2, 3, 4];
        let mut out = [0; 4];
        scatter_nd(&data, &[4], &[1, -1], 1, &[10, 20], &mut out, REDUCE_NONE);
        assert_eq!(out, [1, 10, 3, 20]);
        scatter_nd(&data, &[4], &[0, 0, 9], 1, &[5, 5, 5], &mut out, REDUCE_ADD);
        assert_eq!(out, [11, 2, 3, 4]);
        let mut out = [0; 4];
        scatter_elements(
            &data,
            &[2, 2],
            &[1, 0],
            &[1, 2],
            &[7, 8],
            1,
            &mut out,
            REDUCE_NONE,
        );
        assert_eq!(out, [8, 7, 3, 4]);
    }
}
