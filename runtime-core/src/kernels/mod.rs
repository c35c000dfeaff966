//! Portable kernels, one module per family. Shapes, strides and sizes are compile-time
//! constants in generated code, passed as arguments so one instantiation serves every node.
//!
//! Conventions: outputs are contiguous row-major; "strides" are element strides of an
//! operand read in the output's index space (0 on broadcast axes); booleans are `u8`.

pub mod attention;
pub mod cast;
pub mod conv;
pub mod cumsum;
pub mod einsum;
pub mod elementwise;
pub mod fill;
pub mod gather;
pub mod gemm;
pub mod gemv;
pub mod hgemm;
pub mod kv_cache;
pub mod layer_norm;
pub mod layout;
pub mod matmul;
pub mod qattention;
pub mod qconv;
pub mod qgemm;
pub mod qgemv;
pub mod reduce;
pub mod rotary;
pub mod rowwise;
pub mod scatter;
pub mod softmax;
pub mod tied_gather;
pub mod trilu;

/// Deterministic pseudo-random values in [-1, 1) (xorshift from `seed`), shared by the kernel
/// test batteries.
#[cfg(test)]
pub(crate) fn test_values(n: usize, seed: u32) -> std::vec::Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

use crate::MAX_RANK;

/// Call `row` once per row of `outer` (all axes but the innermost), with the offsets of `K`
/// operands for that row's first element. `strides[k][d]` is operand k's stride on axis d.
#[inline]
pub(crate) fn for_each_row<const K: usize>(
    outer: &[usize],
    strides: [&[isize]; K],
    base: [isize; K],
    mut row: impl FnMut([isize; K]),
) {
    let rank = outer.len();
    debug_assert!(rank <= MAX_RANK);
    if outer.contains(&0) {
        return;
    }
    let mut index = [0usize; MAX_RANK];
    let mut offsets = base;
    loop {
        row(offsets);
        let mut axis = rank;
        loop {
            if axis == 0 {
                return;
            }
            axis -= 1;
            index[axis] += 1;
            for k in 0..K {
                offsets[k] += strides[k][axis];
            }
            if index[axis] < outer[axis] {
                break;
            }
            for k in 0..K {
                offsets[k] -= strides[k][axis] * outer[axis] as isize;
            }
            index[axis] = 0;
        }
    }
}

/// Split a shape into its outer axes and the innermost length (1 for a scalar).
#[inline]
pub(crate) fn split_inner(shape: &[usize]) -> (&[usize], usize) {
    match shape.split_last() {
        Some((&last, outer)) => (outer, last),
        None => (&[], 1),
    }
}

/// The innermost stride of an operand (0 for a scalar).
#[inline]
pub(crate) fn inner_stride(strides: &[isize]) -> isize {
    strides.last().copied().unwrap_or(0)
}
