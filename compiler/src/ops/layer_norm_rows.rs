//! `LayerNormRows`: a `LayerNorm` that also quantizes each normalised row for the int8
//! `QLinear`s reading it (made only by the pass `fuse_layer_norm_rows`; no ONNX op).
use super::OpDef;
use super::layer_norm::LayerNorm;
use super::util::{self, EmitCtx, lit_float, lit_usize, product};
use crate::error::OpError;
use crate::ir::{DType, Tensor, TensorType};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::{layer_norm, qgemm};

/// Inputs as [`LayerNorm`]'s (`[x, scale]` or `[x, scale, bias]`). Outputs: `y` (the
/// `LayerNorm` of `x`), then `y` quantized per row, symmetric int8, exactly as
/// `QLinear{act: dynamic-row}` quantizes its input: `qa: i8[m · qa_stride(cols)]`,
/// `scales: f32[m]`, `zero_points: i32[m]` (`m` rows of `cols` normalised elements).
#[derive(Debug, Clone, PartialEq)]
pub struct LayerNormRows {
    pub axis: usize,
    pub epsilon: f32,
}

impl LayerNormRows {
    fn norm(&self) -> LayerNorm {
        LayerNorm {
            axis: self.axis,
            epsilon: self.epsilon,
        }
    }

    /// `(rows, cols)` of `x`.
    fn dims(&self, x: &TensorType) -> (usize, usize) {
        let cols = product(&x.shape[self.axis.min(x.shape.len())..]);
        (x.numel().checked_div(cols).unwrap_or(0), cols)
    }
}

impl OpDef for LayerNormRows {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        let mut outs = self.norm().infer(inputs)?;
        let (m, cols) = self.dims(inputs[0]);
        let qa = m
            .checked_mul(qgemm::qa_stride(cols))
            .ok_or_else(|| OpError::Invalid("quantized rows overflow".into()))?;
        outs.extend([
            TensorType::new(DType::I8, vec![qa]),
            TensorType::new(DType::F32, vec![m]),
            TensorType::new(DType::I32, vec![m]),
        ]);
        Ok(outs)
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let mut outs = outputs
            .iter()
            .map(util::zeros)
            .collect::<Result<Vec<_>, _>>()?;
        let bias = match inputs.get(2) {
            Some(b) => Some(util::data::<f32>(b)?),
            None => None,
        };
        let (_, cols) = self.dims(&inputs[0].ty);
        let [y, qa, s, z] = &mut outs[..] else {
            return Err(OpError::Invalid("LayerNormRows has four outputs".into()));
        };
        layer_norm::layer_norm_quantize_rows(
            util::data::<f32>(inputs[0])?,
            util::data::<f32>(inputs[1])?,
            bias,
            util::data_mut::<f32>(y)?,
            cols,
            self.epsilon,
            util::data_mut::<i8>(qa)?,
            util::data_mut::<f32>(s)?,
            util::data_mut::<i32>(z)?,
        );
        Ok(outs)
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        if ctx.outputs[0].numel() == 0 {
            return Ok(TokenStream::new());
        }
        let cols = lit_usize(self.dims(&ctx.inputs[0]).1);
        let eps = lit_float(f64::from(self.epsilon), DType::F32);
        let (x, scale) = (ctx.input(0), ctx.input(1));
        let (y, qa, s, z) = (ctx.output(0), ctx.output(1), ctx.output(2), ctx.output(3));
        let bias = if ctx.inputs.len() > 2 {
            let b = ctx.input(2);
            quote!(Some(#b))
        } else {
            quote!(None)
        };
        Ok(quote! {
            rt::kernels::layer_norm::layer_norm_quantize_rows(
                #x, #scale, #bias, #y, #cols, #eps, #qa, #s, #z,
            );
        })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        self.norm().attrs()
    }
}
