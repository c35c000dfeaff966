//! `Cast`: element type conversion with ONNX semantics.
use super::OpDef;
use super::util::{self, EmitCtx, expect_inputs, storage_ty};
use crate::error::OpError;
use crate::for_dtype;
use crate::ir::{DType, Tensor, TensorType};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::cast;

/// `out = x as to`. Float to int truncates toward zero and saturates, int to int wraps,
/// anything to bool tests `!= 0`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cast {
    pub to: DType,
}

impl OpDef for Cast {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        expect_inputs(inputs, 1, 1)?;
        Ok(vec![TensorType::new(self.to, inputs[0].shape.clone())])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let x = inputs[0];
        let mut out = util::zeros(&outputs[0])?;
        if self.to == DType::Bool {
            for_dtype!(x.ty.dtype, S => cast::cast_to_bool(util::data::<S>(x)?, util::data_mut::<u8>(&mut out)?));
        } else {
            for_dtype!(x.ty.dtype, S => {
                let src = util::data::<S>(x)?;
                for_dtype!(self.to, D => cast::cast::<S, D>(src, util::data_mut::<D>(&mut out)?));
            });
        }
        Ok(vec![out])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        let (x, o) = (ctx.input(0), ctx.output(0));
        let from = storage_ty(ctx.inputs[0].dtype);
        if self.to == DType::Bool {
            return Ok(quote! { rt::kernels::cast::cast_to_bool::<#from>(#x, #o); });
        }
        let to = storage_ty(self.to);
        Ok(quote! { rt::kernels::cast::cast::<#from, #to>(#x, #o); })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![("to", self.to.to_string())]
    }
}
