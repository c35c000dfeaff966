//! Data movement: strided copies (Transpose, Slice, Expand, Tile), Concat and Split.
use super::{for_each_row, inner_stride, split_inner};
use crate::MAX_RANK;

/// `out[idx] = src[offset + Σ idx[d] * strides[d]]` for every index of `shape`; `out` is
/// contiguous. Negative strides read backwards (reversed slices).
pub fn copy_strided<T: Copy>(
    src: &[T],
    offset: isize,
    strides: &[isize],
    out: &mut [T],
    shape: &[usize],
) {
    let (outer, len) = split_inner(shape);
    let step = inner_stride(strides);
    let mut start = 0usize;
    for_each_row(outer, [&strides[..outer.len()]], [offset], |[at]| {
        let row = &mut out[start..start + len];
        start += len;
        if step == 1 {
            let from = at as usize;
            row.copy_from_slice(&src[from..from + len]);
        } else {
            for (j, o) in row.iter_mut().enumerate() {
                *o = src[(at + j as isize * step) as usize];
            }
        }
    });
}

/// `out = src` (a copy where a view cannot alias, e.g. into a graph output).
pub fn copy<T: Copy>(src: &[T], out: &mut [T]) {
    out.copy_from_slice(src);
}

/// Concatenate along an axis: `out` is `[outer, Σ blocks]` in units of `inner`; input k is
/// `[outer, blocks[k]]`, where `blocks[k]` is its axis length times the inner size.
pub fn concat<T: Copy>(inputs: &[&[T]], blocks: &[usize], out: &mut [T], outer: usize) {
    let total: usize = blocks.iter().sum();
    for o in 0..outer {
        let mut at = o * total;
        for (input, &block) in inputs.iter().zip(blocks) {
            out[at..at + block].copy_from_slice(&input[o * block..(o + 1) * block]);
            at += block;
        }
    }
}

/// Inverse of [`concat`]: split `x` (`[outer, Σ blocks]`) into the outputs.
pub fn split<T: Copy>(x: &[T], blocks: &[usize], outputs: &mut [&mut [T]], outer: usize) {
    let total: usize = blocks.iter().sum();
    for o in 0..outer {
        let mut at = o * total;
        for (output, &block) in outputs.iter_mut().zip(blocks) {
            output[o * block..(o + 1) * block].copy_from_slice(&x[at..at + block]);
            at += block;
        }
    }
}

/// ONNX `Tile`: `out` is `x` (contiguous, `shape`) repeated `repeats[d]` times along every
/// axis d, so output axis d has `shape[d] * repeats[d]` elements.
pub fn tile<T: Copy>(x: &[T], shape: &[usize], repeats: &[usize], out: &mut [T]) {
    let rank = shape.len();
    debug_assert!(rank <= MAX_RANK && repeats.len() == rank);
    if out.is_empty() {
        return;
    }
    let Some((&len, outer)) = shape.split_last() else {
        out[0] = x[0];
        return;
    };
    let mut strides = [0usize; MAX_RANK];
    let mut acc = len;
    for d in (0..outer.len()).rev() {
        strides[d] = acc;
        acc *= outer[d];
    }
    let mut index = [0usize; MAX_RANK];
    for out_row in out.chunks_exact_mut(len * repeats[rank - 1]) {
        let at: usize = (0..outer.len())
            .map(|d| (index[d] % outer[d]) * strides[d])
            .sum();
        let src = &x[at..at + len];
        for chunk in out_row.chunks_exact_mut(len) {
            chunk.copy_from_slice(src);
        }
        for d in (0..outer.len()).rev() {
            index[d] += 1;
            if index[d] < outer[d] * repeats[d] {
                break;
            }
            index[d] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_2x3() {
        let x = [1, 2, 3, 4, 5, 6];
        let mut out = [0; 6];
        copy_strided(&x, 0, &[1, 3], &mut out, &[3, 2]);
        assert_eq!(out, [1, 4, 2, 5, 3, 6]);
    }

    #[test]
    fn reversed_slice() {
        let x = [1, 2, 3, 4];
        let mut out = [0; 3];
        copy_strided(&x, 3, &[-1], &mut out, &[3]);
        assert_eq!(out, [4, 3, 2]);
    }

    #[test]
    fn concat_and_split_round_trip() {
        let a = [1, 2, 3, 4];
        let b = [5, 6];
        let mut out = [0; 6];
        concat(&[&a, &b], &[2, 1], &mut out, 2);
        assert_eq!(out, [1, 2, 5, 3, 4, 6]);
        let (mut c, mut d) = ([0; 4], [0; 2]);
        split(&out, &[2, 1], &mut [&mut c, &mut d], 2);
        assert_eq!((c, d), (a, b));
    }

    #[test]
    fn tile_repeats_each_axis() {
        // [[1,2],[3,4]] tiled (2,3) -> 4x6
        let x = [1, 2, 3, 4];
        let mut out = [0; 24];
        tile(&x, &[2, 2], &[2, 3], &mut out);
        let row_a = [1, 2, 1, 2, 1, 2];
        let row_b = [3, 4, 3, 4, 3, 4];
        assert_eq!(out[..6], row_a);
        assert_eq!(out[6..12], row_b);
        assert_eq!(out[12..18], row_a);
        assert_eq!(out[18..], row_b);
        let mut col = [0; 4];
        tile(&[7, 8], &[2, 1], &[2, 1], &mut col);
        assert_eq!(col, [7, 8, 7, 8]);
    }
}

/// How [`pad`] fills positions outside the input.
pub const PAD_CONSTANT: u8 = 0;
/// Mirror without repeating the edge (`[1,2,3]` → `3,2,[1,2,3],2,1`).
pub const PAD_REFLECT: u8 = 1;
/// Repeat the edge element.
pub const PAD_EDGE: u8 = 2;
/// Continue periodically from the other side.
pub const PAD_WRAP: u8 = 3;

/// Pad (or crop, with negative `before`) `x` of `in_shape` into `out` of `out_shape`:
/// output index `i` on axis d reads input index `i - before[d]`, mapped into range by
/// `mode`, or is `value` (constant mode). Non-constant modes need non-empty input axes.
pub fn pad<T: Copy>(
    x: &[T],
    in_shape: &[usize],
    before: &[isize],
    mode: u8,
    value: T,
    out: &mut [T],
    out_shape: &[usize],
) {
    let rank = out_shape.len();
    debug_assert!(rank <= MAX_RANK);
    let mut in_strides = [0usize; MAX_RANK];
    let mut stride = 1;
    for d in (0..rank).rev() {
        in_strides[d] = stride;
        stride *= in_shape[d];
    }
    let mut index = [0usize; MAX_RANK];
    for o in out.iter_mut() {
        let mut src = 0usize;
        let mut inside = true;
        for d in 0..rank {
            let n = in_shape[d] as isize;
            let mut i = index[d] as isize - before[d];
            if i < 0 || i >= n {
                match mode {
                    _ if n == 0 => inside = false,
                    PAD_EDGE => i = i.clamp(0, n - 1),
                    PAD_WRAP => i = i.rem_euclid(n),
                    PAD_REFLECT if n == 1 => i = 0,
                    PAD_REFLECT => {
                        let period = 2 * (n - 1);
                        i = i.rem_euclid(period);
                        if i >= n {
                            i = period - i;
                        }
                    }
                    _ => inside = false,
                }
            }
            if !inside {
                break;
            }
            src += i as usize * in_strides[d];
        }
        *o = if inside { x[src] } else { value };
        let mut axis = rank;
        while axis > 0 {
            axis -= 1;
            index[axis] += 1;
            if index[axis] < out_shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
}

#[cfg(test)]
mod pad_tests {
    use super::*;

    #[test]
    fn pads_in_every_mode_and_crops() {
        let x = [1, 2, 3];
        let mut out = [0; 7];
        pad(&x, &[3], &[2], PAD_CONSTANT, 9, &mut out, &[7]);
        assert_eq!(out, [9, 9, 1, 2, 3, 9, 9]);
        pad(&x, &[3], &[2], PAD_REFLECT, 0, &mut out, &[7]);
        assert_eq!(out, [3, 2, 1, 2, 3, 2, 1]);
        pad(&x, &[3], &[2], PAD_EDGE, 0, &mut out, &[7]);
        assert_eq!(out, [1, 1, 1, 2, 3, 3, 3]);
        pad(&x, &[3], &[2], PAD_WRAP, 0, &mut out, &[7]);
        assert_eq!(out, [2, 3, 1, 2, 3, 1, 2]);
        let mut cropped = [0; 1];
        pad(&x, &[3], &[-1], PAD_CONSTANT, 0, &mut cropped, &[1]);
        assert_eq!(cropped, [2]);
    }
}
