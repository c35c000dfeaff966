//! `Where`: elementwise select between two broadcast operands by a boolean condition.
use super::OpDef;
use super::util::{
    self, EmitCtx, broadcast_shapes, broadcast_strides, coalesce, expect_inputs, isize_slice,
    usize_slice,
};
use crate::error::OpError;
use crate::ir::{DType, Tensor, TensorType};
use crate::{for_dtype, invalid};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::elementwise;

/// `out = cond ? x : y` with NumPy broadcasting of all three; `cond` is bool, `x` and `y`
/// share a dtype.
#[derive(Debug, Clone, PartialEq)]
pub struct Where {}

impl OpDef for Where {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        expect_inputs(inputs, 3, 3)?;
        let (c, x, y) = (inputs[0], inputs[1], inputs[2]);
        if c.dtype != DType::Bool {
            return invalid!("condition must be bool, got {}", c.dtype);
        }
        if x.dtype != y.dtype {
            return invalid!("branches have different types: {} and {}", x.dtype, y.dtype);
        }
        let shape = broadcast_shapes(&[&c.shape, &x.shape, &y.shape])?;
        crate::ir::checked_numel(&shape)?;
        Ok(vec![TensorType::new(x.dtype, shape)])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let shape = &outputs[0].shape;
        let s: Vec<Vec<isize>> = inputs
            .iter()
            .map(|t| broadcast_strides(&t.ty.shape, shape))
            .collect();
        let mut out = util::zeros(&outputs[0])?;
        let cond = util::data::<u8>(inputs[0])?;
        for_dtype!(outputs[0].dtype, T => {
            let (x, y) = (util::data::<T>(inputs[1])?, util::data::<T>(inputs[2])?);
            elementwise::select(cond, &s[0], x, &s[1], y, &s[2], util::data_mut::<T>(&mut out)?, shape);
        });
        Ok(vec![out])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        let shape = &ctx.outputs[0].shape;
        let s: Vec<Vec<isize>> = ctx
            .inputs
            .iter()
            .map(|t| broadcast_strides(&t.shape, shape))
            .collect();
        let (shape, s) = coalesce(shape, &s);
        let (c, x, y, o) = (ctx.input(0), ctx.input(1), ctx.input(2), ctx.output(0));
        let (sc, sx, sy, shape) = (
            isize_slice(&s[0]),
            isize_slice(&s[1]),
            isize_slice(&s[2]),
            usize_slice(&shape),
        );
        Ok(quote! { rt::kernels::elementwise::select(#c, #sc, #x, #sx, #y, #sy, #o, #shape); })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![]
    }
}
