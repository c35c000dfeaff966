//! `Reshape`: the same elements under a new shape (ONNX Reshape, Flatten, Squeeze,
//! Unsqueeze and Identity all lower to it). A view: the planner aliases the input buffer.
use super::OpDef;
use super::util::{EmitCtx, expect_inputs};
use crate::error::OpError;
use crate::invalid;
use crate::ir::{Tensor, TensorType};
use proc_macro2::TokenStream;
use quote::quote;

/// `out = x` reinterpreted with `shape` (fully resolved: no -1 or 0 placeholders).
#[derive(Debug, Clone, PartialEq)]
pub struct Reshape {
    pub shape: Vec<usize>,
}

impl OpDef for Reshape {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        expect_inputs(inputs, 1, 1)?;
        let n = crate::ir::checked_numel(&self.shape)?;
        if n != inputs[0].numel() {
            return invalid!(
                "cannot reshape {} ({} elements) to {:?}",
                inputs[0],
                inputs[0].numel(),
                self.shape
            );
        }
        Ok(vec![TensorType::new(inputs[0].dtype, self.shape.clone())])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        Ok(vec![Tensor::new(
            outputs[0].clone(),
            inputs[0].data.clone(),
        )?])
    }

    /// Used only where the planner cannot alias (e.g. the output is a graph output).
    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        let (x, o) = (ctx.input(0), ctx.output(0));
        Ok(quote! { rt::kernels::layout::copy(#x, #o); })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![("shape", format!("{:?}", self.shape))]
    }

    fn is_view(&self) -> bool {
        true
    }
}
