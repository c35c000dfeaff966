//! `Expand`: broadcast a tensor to a larger shape (ONNX Expand).
use super::OpDef;
use super::util::{self, EmitCtx, broadcast_shapes, broadcast_strides, coalesce, expect_inputs};
use crate::error::OpError;
use crate::ir::{Tensor, TensorType};
use crate::unsupported;
use proc_macro2::TokenStream;

/// `out = broadcast(x, shape)`: the output shape is the NumPy broadcast of `x.shape` and
/// `shape` (ONNX Expand is bidirectional, so a 1 in `shape` keeps `x`'s dim). Any dtype.
#[derive(Debug, Clone, PartialEq)]
pub struct Expand {
    pub shape: Vec<usize>,
}

/// Coalesced output shape and the source strides of the strided copy.
fn plan(input: &[usize], out: &[usize]) -> (Vec<usize>, Vec<isize>) {
    let (shape, mut strides) = coalesce(out, &[broadcast_strides(input, out)]);
    (shape, strides.pop().unwrap_or_default())
}

impl OpDef for Expand {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        expect_inputs(inputs, 1, 1)?;
        let x = inputs[0];
        let shape = broadcast_shapes(&[&x.shape, &self.shape])?;
        crate::ir::checked_numel(&shape)?;
        let (walked, _) = plan(&x.shape, &shape);
        if walked.len() > runtime_core::MAX_RANK {
            return unsupported!(
                "expand walking {} axes (at most {})",
                walked.len(),
                runtime_core::MAX_RANK
            );
        }
        Ok(vec![TensorType::new(x.dtype, shape)])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let (shape, strides) = plan(&inputs[0].ty.shape, &outputs[0].shape);
        util::eval_strided_copy(inputs[0], &outputs[0], 0, &strides, &shape)
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        let (shape, strides) = plan(&ctx.inputs[0].shape, &ctx.outputs[0].shape);
        Ok(util::emit_strided_copy(ctx, 0, &strides, &shape))
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![("shape", format!("{:?}", self.shape).replace(' ', ""))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::DType;

    #[test]
    fn expands_a_column_both_ways() {
        // [[1],[2]] expanded to [2,3] repeats each row value; target [3] broadcasts too.
        let x = Tensor::from_i64s(vec![2, 1], vec![1, 2]).unwrap();
        let op = Expand { shape: vec![2, 3] };
        let ty = op.infer(&[&x.ty]).unwrap();
        assert_eq!(
            op.eval(&[&x], &ty).unwrap()[0].data.to_f64_vec(),
            vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
        );
        let op = Expand {
            shape: vec![1, 1, 3],
        };
        let ty = op.infer(&[&x.ty]).unwrap();
        assert_eq!(ty[0].shape, vec![1, 2, 3]);
    }

    #[test]
    fn rejects_incompatible_shape() {
        let x = TensorType::new(DType::F32, vec![2, 3]);
        assert!(Expand { shape: vec![4, 3] }.infer(&[&x]).is_err());
    }
}
