//! `LayerNorm`: layer normalisation of f32 tensors over trailing axes (ONNX
//! LayerNormalization, first output only).
use super::OpDef;
use super::util::{self, EmitCtx, expect_inputs, lit_float, lit_usize, product};
use crate::error::OpError;
use crate::invalid;
use crate::ir::{DType, Tensor, TensorType};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::layer_norm;

/// Inputs `[x, scale]` or `[x, scale, bias]`, all f32. Each slice `x[i.., axis..]` of
/// `prod(shape[axis..])` elements is normalised to zero mean and unit variance (with
/// `epsilon` added to the variance), then multiplied by `scale` and shifted by `bias`.
/// `scale` and `bias` hold exactly `prod(shape[axis..])` elements (any shape) or one.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerNorm {
    pub axis: usize,
    pub epsilon: f32,
}

impl LayerNorm {
    fn cols(&self, shape: &[usize]) -> usize {
        product(&shape[self.axis.min(shape.len())..])
    }
}

impl OpDef for LayerNorm {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        expect_inputs(inputs, 2, 3)?;
        let x = inputs[0];
        if let Some(t) = inputs.iter().find(|t| t.dtype != DType::F32) {
            return invalid!("LayerNorm needs f32 operands, got {}", t.dtype);
        }
        if self.axis >= x.rank() {
            return invalid!("axis {} out of range for rank {}", self.axis, x.rank());
        }
        crate::ir::checked_numel(&x.shape)?;
        let cols = self.cols(&x.shape);
        for (name, t) in ["scale", "bias"].iter().zip(&inputs[1..]) {
            let n = crate::ir::checked_numel(&t.shape)?;
            if n != cols && n != 1 {
                return invalid!(
                    "{name} has {n} elements ({t}), expected {cols} (the normalised axes of {x}) or 1"
                );
            }
        }
        Ok(vec![x.clone()])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let x = inputs[0];
        let mut out = util::zeros(&outputs[0])?;
        let scale = util::data::<f32>(inputs[1])?;
        let bias = match inputs.get(2) {
            Some(b) => Some(util::data::<f32>(b)?),
            None => None,
        };
        let cols = self.cols(&x.ty.shape);
        layer_norm::layer_norm(
            util::data::<f32>(x)?,
            scale,
            bias,
            util::data_mut::<f32>(&mut out)?,
            cols,
            self.epsilon,
        );
        Ok(vec![out])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        if ctx.outputs[0].numel() == 0 {
            return Ok(TokenStream::new());
        }
        let cols = lit_usize(self.cols(&ctx.inputs[0].shape));
        let eps = lit_float(f64::from(self.epsilon), DType::F32);
        let (x, scale, o) = (ctx.input(0), ctx.input(1), ctx.output(0));
        let bias = if ctx.inputs.len() > 2 {
            let b = ctx.input(2);
            quote!(Some(#b))
        } else {
            quote!(None)
        };
        Ok(quote! { rt::kernels::layer_norm::layer_norm(#x, #scale, #bias, #o, #cols, #eps); })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("axis", self.axis.to_string()),
            ("epsilon", format!("{:?}", self.epsilon)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_rows_with_scale_and_bias() {
        // Row [1, 3]: mean 2, variance 1 -> [-1, 1]; scaled by [2, 3] and shifted by [0, 1].
        let x = Tensor::from_f32s(vec![2, 2], vec![1.0, 3.0, 4.0, 8.0]).unwrap();
        let scale = Tensor::from_f32s(vec![2], vec![2.0, 3.0]).unwrap();
        let bias = Tensor::from_f32s(vec![2], vec![0.0, 1.0]).unwrap();
        let op = LayerNorm {
            axis: 1,
            epsilon: 0.0,
        };
        let ty = op.infer(&[&x.ty, &scale.ty, &bias.ty]).unwrap();
        let out = op.eval(&[&x, &scale, &bias], &ty).unwrap();
        // Row [4, 8]: mean 6, standard deviation 2 -> [-1, 1] as well.
        assert_eq!(out[0].data.to_f64_vec(), vec![-2.0, 4.0, -2.0, 4.0]);
    }

    #[test]
    fn rejects_mismatched_scale() {
        let x = TensorType::new(DType::F32, vec![2, 4]);
        let scale = TensorType::new(DType::F32, vec![3]);
        assert!(
            LayerNorm {
                axis: 1,
                epsilon: 1e-5
            }
            .infer(&[&x, &scale])
            .is_err()
        );
        assert!(
            LayerNorm {
                axis: 2,
                epsilon: 1e-5
            }
            .infer(&[&x, &x])
            .is_err()
        );
    }
}
