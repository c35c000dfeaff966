//! `Transpose`: permute the axes of a tensor (ONNX Transpose).
use super::OpDef;
use super::util::{self, EmitCtx, coalesce, contiguous_strides, expect_inputs};
use crate::error::OpError;
use crate::ir::{Tensor, TensorType};
use crate::{invalid, unsupported};
use proc_macro2::TokenStream;

/// `out.shape[i] = x.shape[perm[i]]`; `perm` is a permutation of `0..rank` (the frontend
/// fills in ONNX's default, the reversed axes). Any dtype.
#[derive(Debug, Clone, PartialEq)]
pub struct Transpose {
    pub perm: Vec<usize>,
}

impl Transpose {
    /// Output shape and the source strides of a strided copy, after coalescing.
    fn plan(&self, shape: &[usize]) -> (Vec<usize>, Vec<isize>) {
        let own = contiguous_strides(shape);
        let out: Vec<usize> = self
            .perm
            .iter()
            .map(|&p| shape.get(p).copied().unwrap_or(1))
            .collect();
        let strides: Vec<isize> = self
            .perm
            .iter()
            .map(|&p| own.get(p).copied().unwrap_or(0))
            .collect();
        let (out, mut strides) = coalesce(&out, &[strides]);
        (out, strides.pop().unwrap_or_default())
    }
}

impl OpDef for Transpose {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        expect_inputs(inputs, 1, 1)?;
        let x = inputs[0];
        let mut seen = vec![false; x.rank()];
        if self.perm.len() != x.rank() {
            return invalid!(
                "perm {:?} has {} entries for an input of rank {}",
                self.perm,
                self.perm.len(),
                x.rank()
            );
        }
        for &p in &self.perm {
            match seen.get_mut(p) {
                Some(s) if !*s => *s = true,
                _ => {
                    return invalid!(
                        "perm {:?} is not a permutation of 0..{}",
                        self.perm,
                        x.rank()
                    );
                }
            }
        }
        let shape: Vec<usize> = self.perm.iter().map(|&p| x.shape[p]).collect();
        crate::ir::checked_numel(&shape)?;
        let (walked, _) = self.plan(&x.shape);
        if walked.len() > runtime_core::MAX_RANK {
            return unsupported!(
                "transpose walking {} axes (at most {})",
                walked.len(),
                runtime_core::MAX_RANK
            );
        }
        Ok(vec![TensorType::new(x.dtype, shape)])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let (shape, strides) = self.plan(&inputs[0].ty.shape);
        util::eval_strided_copy(inputs[0], &outputs[0], 0, &strides, &shape)
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        let (shape, strides) = self.plan(&ctx.inputs[0].shape);
        Ok(util::emit_strided_copy(ctx, 0, &strides, &shape))
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![("perm", format!("{:?}", self.perm).replace(' ', ""))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::DType;

    #[test]
    fn transposes_a_matrix_and_a_3d_tensor() {
        // [[1,2,3],[4,5,6]]^T = [[1,4],[2,5],[3,6]]
        let x = Tensor::from_f32s(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let op = Transpose { perm: vec![1, 0] };
        let ty = op.infer(&[&x.ty]).unwrap();
        assert_eq!(ty[0].shape, vec![3, 2]);
        assert_eq!(
            op.eval(&[&x], &ty).unwrap()[0].data.to_f64_vec(),
            vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
        );
        // x[a][b][c] = 4a + 2b + c over [2,2,2]; perm [2,0,1] gives out[c][a][b].
        let x = Tensor::from_i64s(vec![2, 2, 2], (0..8).collect()).unwrap();
        let op = Transpose {
            perm: vec![2, 0, 1],
        };
        let ty = op.infer(&[&x.ty]).unwrap();
        assert_eq!(
            op.eval(&[&x], &ty).unwrap()[0].data.to_f64_vec(),
            vec![0.0, 2.0, 4.0, 6.0, 1.0, 3.0, 5.0, 7.0]
        );
    }

    #[test]
    fn rejects_non_permutations() {
        let x = TensorType::new(DType::F32, vec![2, 3]);
        assert!(Transpose { perm: vec![0, 0] }.infer(&[&x]).is_err());
        assert!(Transpose { perm: vec![0, 2] }.infer(&[&x]).is_err());
        assert!(Transpose { perm: vec![0] }.infer(&[&x]).is_err());
    }
}
