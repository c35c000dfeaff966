//! `ArgExtreme`: index of the largest or smallest element along an axis (ONNX ArgMax,
//! ArgMin).
use super::OpDef;
use super::util::{self, EmitCtx, expect_inputs, lit_usize, split_at_axis};
use crate::error::OpError;
use crate::ir::{DType, Tensor, TensorType};
use crate::{for_dtype, invalid};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::reduce;

/// i64 index of the maximum (`max`) or minimum along `axis` (`< rank`) of a numeric input;
/// ties pick the first index, or the last with `select_last`. With `keepdims` the axis stays
/// as 1, otherwise it is dropped. The axis must not be empty unless the output is.
#[derive(Debug, Clone, PartialEq)]
pub struct ArgExtreme {
    pub axis: usize,
    pub keepdims: bool,
    pub select_last: bool,
    pub max: bool,
}

impl OpDef for ArgExtreme {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        expect_inputs(inputs, 1, 1)?;
        let x = inputs[0];
        if x.dtype == DType::Bool {
            return invalid!(
                "{} needs a numeric input, got bool",
                if self.max { "ArgMax" } else { "ArgMin" }
            );
        }
        if self.axis >= x.rank() {
            return invalid!("axis {} out of range for rank {}", self.axis, x.rank());
        }
        let mut shape = x.shape.clone();
        if self.keepdims {
            shape[self.axis] = 1;
        } else {
            shape.remove(self.axis);
        }
        crate::ir::checked_numel(&x.shape)?;
        if crate::ir::checked_numel(&shape)? > 0 && x.shape[self.axis] == 0 {
            return invalid!("arg-reduction over the empty axis {} of {x}", self.axis);
        }
        Ok(vec![TensorType::new(DType::I64, shape)])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let x = inputs[0];
        let mut out = util::zeros(&outputs[0])?;
        let (outer, len, inner) = split_at_axis(&x.ty.shape, self.axis);
        if !out.data.is_empty() {
            let dst = util::data_mut::<i64>(&mut out)?;
            for_dtype!(x.ty.dtype, T => {
                reduce::arg_extreme(util::data::<T>(x)?, dst, outer, len, inner, self.max, self.select_last)
            });
        }
        Ok(vec![out])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        if ctx.outputs[0].numel() == 0 {
            return Ok(TokenStream::new());
        }
        let (outer, len, inner) = split_at_axis(&ctx.inputs[0].shape, self.axis);
        let (outer, len, inner) = (lit_usize(outer), lit_usize(len), lit_usize(inner));
        let (x, o, max, last) = (ctx.input(0), ctx.output(0), self.max, self.select_last);
        Ok(quote! { rt::kernels::reduce::arg_extreme(#x, #o, #outer, #len, #inner, #max, #last); })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("axis", self.axis.to_string()),
            ("keepdims", self.keepdims.to_string()),
            ("select_last", self.select_last.to_string()),
            ("max", self.max.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_extremes_with_ties() {
        // [[3,1,3],[0,5,-2]]: argmax per row = [0,1], with select_last = [2,1]; argmin = [1,2].
        let x = Tensor::from_f32s(vec![2, 3], vec![3.0, 1.0, 3.0, 0.0, 5.0, -2.0]).unwrap();
        let op = ArgExtreme {
            axis: 1,
            keepdims: false,
            select_last: false,
            max: true,
        };
        let ty = op.infer(&[&x.ty]).unwrap();
        assert_eq!((ty[0].dtype, ty[0].shape.clone()), (DType::I64, vec![2]));
        assert_eq!(
            op.eval(&[&x], &ty).unwrap()[0].data.to_f64_vec(),
            vec![0.0, 1.0]
        );
        let last = ArgExtreme {
            select_last: true,
            ..op.clone()
        };
        assert_eq!(
            last.eval(&[&x], &ty).unwrap()[0].data.to_f64_vec(),
            vec![2.0, 1.0]
        );
        let min = ArgExtreme {
            max: false,
            ..op.clone()
        };
        assert_eq!(
            min.eval(&[&x], &ty).unwrap()[0].data.to_f64_vec(),
            vec![1.0, 2.0]
        );
        // Down the columns with keepdims: [0,1,0] of shape [1,3].
        let cols = ArgExtreme {
            axis: 0,
            keepdims: true,
            ..op
        };
        let ty = cols.infer(&[&x.ty]).unwrap();
        assert_eq!(ty[0].shape, vec![1, 3]);
        assert_eq!(
            cols.eval(&[&x], &ty).unwrap()[0].data.to_f64_vec(),
            vec![0.0, 1.0, 0.0]
        );
    }

    #[test]
    fn rejects_bad_axis_and_empty_axis() {
        let op = ArgExtreme {
            axis: 1,
            keepdims: true,
            select_last: false,
            max: true,
        };
        assert!(op.infer(&[&TensorType::new(DType::F32, vec![3])]).is_err());
        assert!(
            op.infer(&[&TensorType::new(DType::F32, vec![3, 0])])
                .is_err()
        );
    }
}
