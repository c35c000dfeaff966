//! `Range`: an arithmetic sequence, with no inputs (ONNX Range with constant operands).
use super::OpDef;
use super::fill::lit_value;
use super::util::{self, EmitCtx};
use crate::error::OpError;
use crate::ir::{DType, Tensor, TensorType};
use crate::{for_dtype, invalid};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::element::Numeric;
use runtime_core::kernels::fill;

/// Output `[len]` of a numeric `dtype` (not bool): `out[i] = start + i * delta`, computed in
/// the storage type after converting `start` and `delta` like a Rust `as` cast from f64.
/// The frontend computes `len = max(0, ceil((limit - start) / delta))`.
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    pub dtype: DType,
    pub start: f64,
    pub delta: f64,
    pub len: usize,
}

impl OpDef for Range {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        if !inputs.is_empty() {
            return invalid!("Range takes no inputs, got {}", inputs.len());
        }
        if self.dtype == DType::Bool {
            return invalid!("Range needs a numeric dtype, got bool");
        }
        crate::ir::checked_numel(&[self.len])?;
        Ok(vec![TensorType::new(self.dtype, vec![self.len])])
    }

    fn eval(&self, _inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let mut out = util::zeros(&outputs[0])?;
        for_dtype!(self.dtype, T => {
            let (start, delta) = (<T as Numeric>::from_f64(self.start), <T as Numeric>::from_f64(self.delta));
            fill::range(util::data_mut::<T>(&mut out)?, start, delta)
        });
        Ok(vec![out])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        if self.len == 0 {
            return Ok(TokenStream::new());
        }
        let o = ctx.output(0);
        let (start, delta) = (
            lit_value(self.start, self.dtype),
            lit_value(self.delta, self.dtype),
        );
        Ok(quote! { rt::kernels::fill::range(#o, #start, #delta); })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("dtype", self.dtype.to_string()),
            ("start", format!("{:?}", self.start)),
            ("delta", format!("{:?}", self.delta)),
            ("len", self.len.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_up_and_down() {
        let op = Range {
            dtype: DType::I64,
            start: 10.0,
            delta: -3.0,
            len: 4,
        };
        let ty = op.infer(&[]).unwrap();
        assert_eq!(ty[0].shape, vec![4]);
        assert_eq!(
            op.eval(&[], &ty).unwrap()[0].data.to_f64_vec(),
            vec![10.0, 7.0, 4.0, 1.0]
        );
        let op = Range {
            dtype: DType::F32,
            start: 0.5,
            delta: 0.25,
            len: 3,
        };
        let ty = op.infer(&[]).unwrap();
        assert_eq!(
            op.eval(&[], &ty).unwrap()[0].data.to_f64_vec(),
            vec![0.5, 0.75, 1.0]
        );
    }

    #[test]
    fn rejects_inputs_and_bool() {
        let x = TensorType::new(DType::I64, vec![]);
        assert!(
            Range {
                dtype: DType::I64,
                start: 0.0,
                delta: 1.0,
                len: 2
            }
            .infer(&[&x])
            .is_err()
        );
        assert!(
            Range {
                dtype: DType::Bool,
                start: 0.0,
                delta: 1.0,
                len: 2
            }
            .infer(&[])
            .is_err()
        );
    }
}
