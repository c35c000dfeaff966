//! `Softmax`: Softmax and LogSoftmax of f32 tensors along one axis (ONNX Softmax,
//! LogSoftmax; opset < 13 coerces to 2-D around the axis).
use super::OpDef;
use super::util::{self, EmitCtx, expect_inputs, lit_usize, product};
use crate::error::OpError;
use crate::invalid;
use crate::ir::{DType, Tensor, TensorType};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::softmax;

/// `out = softmax(x)` (or log-softmax when `log`) along `axis`, same shape as `x`, f32
/// only. With `coerce_2d` (ONNX opset < 13) the tensor is viewed as
/// `[prod(shape[..axis]), prod(shape[axis..])]` and normalised along the second axis; then
/// `axis == rank` is also accepted (every element normalises alone). Otherwise `axis < rank`.
#[derive(Debug, Clone, PartialEq)]
pub struct Softmax {
    pub axis: usize,
    pub log: bool,
    pub coerce_2d: bool,
}

impl Softmax {
    /// The `[outer, axis_len, inner]` view the kernel walks.
    fn dims(&self, shape: &[usize]) -> (usize, usize, usize) {
        let (before, after) = shape.split_at(self.axis.min(shape.len()));
        if self.coerce_2d {
            return (product(before), product(after), 1);
        }
        match after.split_first() {
            Some((&len, rest)) => (product(before), len, product(rest)),
            None => (product(before), 1, 1),
        }
    }
}

impl OpDef for Softmax {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        expect_inputs(inputs, 1, 1)?;
        let x = inputs[0];
        if x.dtype != DType::F32 {
            return invalid!("Softmax needs an f32 input, got {}", x.dtype);
        }
        let limit = if self.coerce_2d {
            x.rank()
        } else {
            x.rank().saturating_sub(1)
        };
        if self.axis > limit || (!self.coerce_2d && x.rank() == 0) {
            return invalid!("axis {} out of range for rank {}", self.axis, x.rank());
        }
        crate::ir::checked_numel(&x.shape)?;
        Ok(vec![x.clone()])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let x = inputs[0];
        let mut out = util::zeros(&outputs[0])?;
        let (outer, len, inner) = self.dims(&x.ty.shape);
        if !out.data.is_empty() {
            softmax::softmax(
                util::data::<f32>(x)?,
                util::data_mut::<f32>(&mut out)?,
                outer,
                len,
                inner,
                self.log,
            );
        }
        Ok(vec![out])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        if ctx.outputs[0].numel() == 0 {
            return Ok(TokenStream::new());
        }
        let (outer, len, inner) = self.dims(&ctx.inputs[0].shape);
        let (outer, len, inner) = (lit_usize(outer), lit_usize(len), lit_usize(inner));
        let (x, o, log) = (ctx.input(0), ctx.output(0), self.log);
        Ok(quote! { rt::kernels::softmax::softmax(#x, #o, #outer, #len, #inner, #log); })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("axis", self.axis.to_string()),
            ("log", self.log.to_string()),
            ("coerce_2d", self.coerce_2d.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_along_first_axis_and_coerced_log() {
        // Columns of [[0, ln 3], [0, 0]]: column 0 is uniform, column 1 is (3/4, 1/4).
        let x = Tensor::from_f32s(vec![2, 2], vec![0.0, 3f32.ln(), 0.0, 0.0]).unwrap();
        let op = Softmax {
            axis: 0,
            log: false,
            coerce_2d: false,
        };
        let ty = op.infer(&[&x.ty]).unwrap();
        let got = op.eval(&[&x], &ty).unwrap()[0].data.to_f64_vec();
        for (g, e) in got.iter().zip([0.5, 0.75, 0.5, 0.25]) {
            assert!((g - e).abs() < 1e-6, "{got:?}");
        }
        // Coerced at axis 0 the whole tensor is one row of 4: log(1/6), log(3/6), ...
        let op = Softmax {
            axis: 0,
            log: true,
            coerce_2d: true,
        };
        let got = op.eval(&[&x], &ty).unwrap()[0].data.to_f64_vec();
        for (g, e) in got.iter().zip([1.0 / 6.0, 0.5, 1.0 / 6.0, 1.0 / 6.0]) {
            assert!((g - f64::ln(e)).abs() < 1e-6, "{got:?}");
        }
    }

    #[test]
    fn rejects_bad_axis_and_dtype() {
        let x = TensorType::new(DType::F32, vec![2, 3]);
        assert!(
            Softmax {
                axis: 2,
                log: false,
                coerce_2d: false
            }
            .infer(&[&x])
            .is_err()
        );
        assert!(
            Softmax {
                axis: 2,
                log: false,
                coerce_2d: true
            }
            .infer(&[&x])
            .is_ok()
        );
        let i = TensorType::new(DType::I64, vec![2, 3]);
        assert!(
            Softmax {
                axis: 1,
                log: false,
                coerce_2d: false
            }
            .infer(&[&i])
            .is_err()
        );
    }
}
