//! `Fill`: a tensor of one repeated value, with no inputs (ONNX ConstantOfShape).
use super::OpDef;
use super::util::{self, EmitCtx, lit_float};
use crate::error::OpError;
use crate::ir::{DType, Tensor, TensorType};
use crate::{for_dtype, invalid};
use proc_macro2::{Literal, TokenStream};
use quote::quote;
use runtime_core::element::Numeric;
use runtime_core::kernels::fill;

/// Output of `shape` and `dtype` (any, bool included) with every element `value`. The value
/// converts like a Rust `as` cast from f64 (floats round, integers truncate and saturate,
/// NaN gives 0); for bool any non-zero value is true.
#[derive(Debug, Clone, PartialEq)]
pub struct Fill {
    pub dtype: DType,
    pub value: f64,
    pub shape: Vec<usize>,
}

/// `value` in the storage type of `dtype`, as eval computes it, widened to i128 (integers
/// and bool only).
fn int_value(value: f64, dtype: DType) -> i128 {
    if dtype == DType::Bool {
        return i128::from(value != 0.0);
    }
    for_dtype!(dtype, T => <T as Numeric>::from_f64(value) as i128)
}

/// Write `value` (converted to `dtype`'s storage type) into every element of `out`.
pub(super) fn fill_value(out: &mut Tensor, value: f64) -> Result<(), OpError> {
    let dtype = out.ty.dtype;
    if dtype == DType::Bool {
        fill::fill(util::data_mut::<u8>(out)?, u8::from(value != 0.0));
        return Ok(());
    }
    for_dtype!(dtype, T => fill::fill(util::data_mut::<T>(out)?, <T as Numeric>::from_f64(value)));
    Ok(())
}

/// A literal of `value` converted exactly as [`fill_value`] converts it. Integer literals are
/// unsuffixed (the kernel's element type fixes their type) and always in range, so the
/// generated code compiles and matches the reference evaluation bit for bit.
pub(super) fn lit_value(value: f64, dtype: DType) -> TokenStream {
    if dtype.is_float() {
        return lit_float(value, dtype);
    }
    let v = int_value(value, dtype);
    let mag = Literal::u128_unsuffixed(v.unsigned_abs());
    if v < 0 { quote!(-#mag) } else { quote!(#mag) }
}

impl OpDef for Fill {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        if !inputs.is_empty() {
            return invalid!("Fill takes no inputs, got {}", inputs.len());
        }
        crate::ir::checked_numel(&self.shape)?;
        Ok(vec![TensorType::new(self.dtype, self.shape.clone())])
    }

    fn eval(&self, _inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let mut out = util::zeros(&outputs[0])?;
        fill_value(&mut out, self.value)?;
        Ok(vec![out])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        if ctx.outputs[0].numel() == 0 {
            return Ok(TokenStream::new());
        }
        let (o, value) = (ctx.output(0), lit_value(self.value, self.dtype));
        Ok(quote! { rt::kernels::fill::fill(#o, #value); })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("dtype", self.dtype.to_string()),
            ("value", format!("{:?}", self.value)),
            ("shape", format!("{:?}", self.shape).replace(' ', "")),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_with_converted_values() {
        let op = Fill {
            dtype: DType::I32,
            value: -2.7,
            shape: vec![2, 2],
        };
        let ty = op.infer(&[]).unwrap();
        assert_eq!(
            op.eval(&[], &ty).unwrap()[0].data.to_f64_vec(),
            vec![-2.0; 4]
        );
        let op = Fill {
            dtype: DType::Bool,
            value: 0.5,
            shape: vec![3],
        };
        let ty = op.infer(&[]).unwrap();
        assert_eq!(
            op.eval(&[], &ty).unwrap()[0].data.to_f64_vec(),
            vec![1.0; 3]
        );
        // Saturating conversion, negative literal with a separate minus sign.
        assert_eq!(lit_value(1e10, DType::I32).to_string(), "2147483647");
        assert_eq!(lit_value(-1.0, DType::U8).to_string(), "0");
        assert_eq!(lit_value(-3.0, DType::I64).to_string(), "- 3");
    }

    #[test]
    fn rejects_inputs() {
        let x = TensorType::new(DType::I64, vec![2]);
        assert!(
            Fill {
                dtype: DType::F32,
                value: 0.0,
                shape: vec![2]
            }
            .infer(&[&x])
            .is_err()
        );
    }
}
