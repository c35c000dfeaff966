//! `Cast`: element type conversion with ONNX semantics.
use super::OpDef;
use super::util::{self, EmitCtx, expect_inputs, storage_ty};
use crate::error::OpError;
use crate::ir::{DType, Tensor, TensorType};
use crate::{for_dtype, unsupported};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::cast;

/// `out = x as to`. Float to int truncates toward zero and saturates, int to int wraps,
/// anything to bool tests `!= 0`. Half-precision types (`F16`, `BF16`) convert only to and
/// from `F32` (rounding to nearest even); the frontend goes through f32 for other pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct Cast {
    pub to: DType,
}

impl OpDef for Cast {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        expect_inputs(inputs, 1, 1)?;
        let from = inputs[0].dtype;
        if (from.is_half() || self.to.is_half())
            && from != self.to
            && from != DType::F32
            && self.to != DType::F32
        {
            return unsupported!(
                "Cast from {from} to {} (half precision converts via f32)",
                self.to
            );
        }
        Ok(vec![TensorType::new(self.to, inputs[0].shape.clone())])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let x = inputs[0];
        let mut out = util::zeros(&outputs[0])?;
        let from = x.ty.dtype;
        if from == self.to {
            out.data = x.data.clone();
            return Ok(vec![out]);
        }
        if from.is_half() || self.to.is_half() {
            match (from, self.to) {
                (DType::F16, _) => {
                    cast::f16_to_f32(util::data::<u16>(x)?, util::data_mut::<f32>(&mut out)?)
                }
                (DType::BF16, _) => {
                    cast::bf16_to_f32(util::data::<u16>(x)?, util::data_mut::<f32>(&mut out)?)
                }
                (_, DType::F16) => {
                    cast::f32_to_f16(util::data::<f32>(x)?, util::data_mut::<u16>(&mut out)?)
                }
                _ => cast::f32_to_bf16(util::data::<f32>(x)?, util::data_mut::<u16>(&mut out)?),
            }
            return Ok(vec![out]);
        }
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
        let from_dtype = ctx.inputs[0].dtype;
        if from_dtype == self.to {
            return Ok(quote! { rt::kernels::layout::copy(#x, #o); });
        }
        let half = match (from_dtype, self.to) {
            (DType::F16, _) => Some(quote!(f16_to_f32)),
            (DType::BF16, _) => Some(quote!(bf16_to_f32)),
            (_, DType::F16) => Some(quote!(f32_to_f16)),
            (_, DType::BF16) => Some(quote!(f32_to_bf16)),
            _ => None,
        };
        if let Some(f) = half {
            return Ok(quote! { rt::kernels::cast::#f(#x, #o); });
        }
        let from = storage_ty(from_dtype);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_round_trips_through_f32_only() {
        let x = Tensor::from_f32s(vec![3], vec![1.0, -2.5, 65504.0]).unwrap();
        let to_half = Cast { to: DType::F16 };
        let ty = to_half.infer(&[&x.ty]).unwrap();
        let h = to_half.eval(&[&x], &ty).unwrap().remove(0);
        assert_eq!(h.data, crate::ir::Data::U16(vec![0x3c00, 0xc100, 0x7bff]));
        assert_eq!(h.to_f64_vec(), vec![1.0, -2.5, 65504.0]);
        let back = Cast { to: DType::F32 };
        let ty = back.infer(&[&h.ty]).unwrap();
        assert_eq!(back.eval(&[&h], &ty).unwrap()[0], x);
        let i = TensorType::new(DType::I32, vec![3]);
        assert!(to_half.infer(&[&i]).is_err());
    }
}
