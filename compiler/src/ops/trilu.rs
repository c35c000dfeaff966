//! `Trilu`: keep the upper or lower triangle of the last two axes (ONNX Trilu).
use super::OpDef;
use super::util::{self, EmitCtx, expect_inputs, lit_i64, lit_usize};
use crate::error::OpError;
use crate::ir::{Tensor, TensorType};
use crate::{for_dtype, invalid};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::trilu;

/// On every `[rows, cols]` matrix of the last two axes (rank >= 2), element (i, j) is kept
/// when `j - i >= k` (`upper`) or `j - i <= k` (lower) and zeroed otherwise. `k` is the
/// value of ONNX's optional `k` input (0 when absent). Any dtype.
#[derive(Debug, Clone, PartialEq)]
pub struct Trilu {
    pub upper: bool,
    pub k: i64,
}

fn matrix(shape: &[usize]) -> (usize, usize) {
    match shape {
        [.., rows, cols] => (*rows, *cols),
        _ => (0, 0),
    }
}

impl OpDef for Trilu {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        expect_inputs(inputs, 1, 1)?;
        let x = inputs[0];
        if x.rank() < 2 {
            return invalid!("Trilu needs rank >= 2, got {x}");
        }
        crate::ir::checked_numel(&x.shape)?;
        Ok(vec![x.clone()])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let x = inputs[0];
        let mut out = util::zeros(&outputs[0])?;
        let (rows, cols) = matrix(&x.ty.shape);
        for_dtype!(x.ty.dtype, T => {
            trilu::trilu(util::data::<T>(x)?, util::data_mut::<T>(&mut out)?, rows, cols, self.k, self.upper)
        });
        Ok(vec![out])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        if ctx.outputs[0].numel() == 0 {
            return Ok(TokenStream::new());
        }
        let (rows, cols) = matrix(&ctx.inputs[0].shape);
        // j - i lies in [1 - rows, cols - 1]: clamping k to [-rows, cols] changes nothing.
        let k = self.k.clamp(-(rows as i64), cols as i64);
        let (x, o, upper) = (ctx.input(0), ctx.output(0), self.upper);
        let (rows, cols, k) = (lit_usize(rows), lit_usize(cols), lit_i64(k));
        Ok(quote! { rt::kernels::trilu::trilu(#x, #o, #rows, #cols, #k, #upper); })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![("upper", self.upper.to_string()), ("k", self.k.to_string())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::DType;

    #[test]
    fn keeps_triangles() {
        // [[1,2,3],[4,5,6]]: upper (k=0) zeroes 4 (i=1,j=0); lower with k=-1 keeps only 4.
        let x = Tensor::from_i64s(vec![2, 3], vec![1, 2, 3, 4, 5, 6]).unwrap();
        let upper = Trilu { upper: true, k: 0 };
        let ty = upper.infer(&[&x.ty]).unwrap();
        assert_eq!(
            upper.eval(&[&x], &ty).unwrap()[0].data.to_f64_vec(),
            vec![1.0, 2.0, 3.0, 0.0, 5.0, 6.0]
        );
        let lower = Trilu {
            upper: false,
            k: -1,
        };
        assert_eq!(
            lower.eval(&[&x], &ty).unwrap()[0].data.to_f64_vec(),
            vec![0.0, 0.0, 0.0, 4.0, 0.0, 0.0]
        );
    }

    #[test]
    fn rejects_vectors() {
        let x = TensorType::new(DType::F32, vec![4]);
        assert!(Trilu { upper: true, k: 0 }.infer(&[&x]).is_err());
    }
}
