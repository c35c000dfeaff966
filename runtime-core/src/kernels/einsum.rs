//! Einstein summation over labelled axes (ONNX Einsum): every combination of label values
//! is visited once; output labels come first, so each output element is one contiguous run
//! of the visit.
use crate::element::Numeric;

/// At most this many distinct labels.
pub const MAX_LABELS: usize = 16;

/// `out[o] = Σ_{summed labels} Π_k inputs[k][Σ_l idx[l] · strides[k][l]]`, where labels
/// `0..out_labels` index the (row-major) output and the rest are summed. `sizes` holds
/// every label's extent; `strides[k]` one entry per label (0 where operand k lacks it).
pub fn einsum<T: Numeric>(
    inputs: &[&[T]],
    strides: &[&[isize]],
    sizes: &[usize],
    out: &mut [T],
    out_labels: usize,
) {
    let labels = sizes.len();
    debug_assert!(labels <= MAX_LABELS);
    let inner: usize = sizes[out_labels..].iter().product();
    let mut idx = [0usize; MAX_LABELS];
    for o in out.iter_mut() {
        let mut acc = T::ZERO;
        for _ in 0..inner {
            let mut prod = T::ONE;
            for (x, s) in inputs.iter().zip(strides) {
                let mut off = 0isize;
                for l in 0..labels {
                    off += idx[l] as isize * s[l];
                }
                prod = prod.mul(x[off as usize]);
            }
            acc = acc.add(prod);
            let mut l = labels;
            while l > 0 {
                l -= 1;
                idx[l] += 1;
                if idx[l] < sizes[l] {
                    break;
                }
                idx[l] = 0;
            }
        }
        *o = acc;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_and_trace() {
        // "ij,jk->ik" with labels i=0, k=1, j=2.
        let a = [1, 2, 3, 4];
        let b = [5, 6, 7, 8];
        let mut out = [0; 4];
        einsum(
            &[&a, &b],
            &[&[2, 0, 1], &[0, 1, 2]],
            &[2, 2, 2],
            &mut out,
            2,
        );
        assert_eq!(out, [19, 22, 43, 50]);
        // "ii->": the trace, one label with stride 2 + 1.
        let mut t = [0];
        einsum(&[&a], &[&[3]], &[2], &mut t, 0);
        assert_eq!(t, [5]);
    }
}
