//! `RmsNorm`: RMS normalisation of f32 tensors over the last axis (made by the pass
//! `fuse_rms_norm` from the exported `x / sqrt(mean(x²) + eps) · w` chain).
use super::OpDef;
use super::util::{self, EmitCtx, expect_inputs, lit_float, lit_usize};
use crate::error::OpError;
use crate::invalid;
use crate::ir::{DType, Tensor, TensorType};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::layer_norm;

/// Inputs `[x]` or `[x, scale]`, f32. Each row of the last axis is divided by
/// `sqrt(mean(row²) + epsilon)`, then multiplied by `scale` (as many elements as the last
/// axis, or one).
#[derive(Debug, Clone, PartialEq)]
pub struct RmsNorm {
    pub epsilon: f32,
    /// Divide by the root (`x / r`) rather than multiply by its reciprocal (`x * (1 / r)`),
    /// as the matched chain did: the rounding then matches it.
    pub divide: bool,
}

fn cols(shape: &[usize]) -> usize {
    shape.last().copied().unwrap_or(1)
}

impl OpDef for RmsNorm {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        expect_inputs(inputs, 1, 2)?;
        let x = inputs[0];
        if let Some(t) = inputs.iter().find(|t| t.dtype != DType::F32) {
            return invalid!("RmsNorm needs f32 operands, got {}", t.dtype);
        }
        if x.rank() == 0 {
            return invalid!("RmsNorm needs an axis, got a scalar");
        }
        crate::ir::checked_numel(&x.shape)?;
        if let Some(s) = inputs.get(1) {
            let n = crate::ir::checked_numel(&s.shape)?;
            if n != cols(&x.shape) && n != 1 {
                return invalid!("scale {s} must have the last axis of {x} or one element");
            }
        }
        Ok(vec![x.clone()])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let x = inputs[0];
        let mut out = util::zeros(&outputs[0])?;
        let scale = match inputs.get(1) {
            Some(s) => Some(util::data::<f32>(s)?),
            None => None,
        };
        layer_norm::rms_norm(
            util::data::<f32>(x)?,
            scale,
            util::data_mut::<f32>(&mut out)?,
            cols(&x.ty.shape),
            self.epsilon,
            self.divide,
        );
        Ok(vec![out])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        if ctx.outputs[0].numel() == 0 {
            return Ok(TokenStream::new());
        }
        let n = lit_usize(cols(&ctx.inputs[0].shape));
        let eps = lit_float(f64::from(self.epsilon), DType::F32);
        let (x, o) = (ctx.input(0), ctx.output(0));
        let scale = if ctx.inputs.len() > 1 {
            let s = ctx.input(1);
            quote!(Some(#s))
        } else {
            quote!(None)
        };
        let divide = self.divide;
        Ok(quote! { rt::kernels::layer_norm::rms_norm(#x, #scale, #o, #n, #eps, #divide); })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("epsilon", format!("{:?}", self.epsilon)),
            ("divide", self.divide.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_rows_and_rejects_a_bad_scale() {
        let x = Tensor::from_f32s(vec![2, 2], vec![3.0, 4.0, 0.0, 2.0]).unwrap();
        let w = Tensor::from_f32s(vec![2], vec![1.0, 2.0]).unwrap();
        let op = RmsNorm {
            epsilon: 0.0,
            divide: true,
        };
        let ty = op.infer(&[&x.ty, &w.ty]).unwrap();
        let out = op.eval(&[&x, &w], &ty).unwrap();
        let a = 12.5f64.sqrt();
        let b = 2.0f64.sqrt();
        let want = [3.0 / a, 8.0 / a, 0.0, 4.0 / b];
        for (o, w) in out[0].data.to_f64_vec().iter().zip(want) {
            assert!((o - w).abs() < 1e-6);
        }
        let bad = TensorType::new(DType::F32, vec![3]);
        assert!(op.infer(&[&x.ty, &bad]).is_err());
    }
}
