//! `Pad`: pad or crop every axis, filling with a constant or from the input's edges
//! (ONNX Pad, all modes).
use super::OpDef;
use super::util::{self, EmitCtx, expect_inputs, isize_slice, usize_slice};
use crate::error::OpError;
use crate::ir::{DType, Tensor, TensorType};
use crate::{for_dtype, invalid, unsupported};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::element::Numeric;
use runtime_core::kernels::layout;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PadMode {
    Constant,
    Reflect,
    Edge,
    Wrap,
}

impl PadMode {
    fn code(self) -> u8 {
        match self {
            PadMode::Constant => layout::PAD_CONSTANT,
            PadMode::Reflect => layout::PAD_REFLECT,
            PadMode::Edge => layout::PAD_EDGE,
            PadMode::Wrap => layout::PAD_WRAP,
        }
    }
}

/// `out.shape[d] = x.shape[d] + before[d] + after[d]` (negative amounts crop); positions
/// outside the input are `value` (constant mode, converted like `Fill`'s value) or mapped
/// back into it. Any dtype except bool for non-zero constants; rank <= `MAX_RANK`;
/// non-constant modes need non-empty axes wherever they pad.
#[derive(Debug, Clone, PartialEq)]
pub struct Pad {
    pub before: Vec<isize>,
    pub after: Vec<isize>,
    pub mode: PadMode,
    pub value: f64,
}

impl OpDef for Pad {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        expect_inputs(inputs, 1, 1)?;
        let x = inputs[0];
        if self.before.len() != x.rank() || self.after.len() != x.rank() {
            return invalid!(
                "pads {:?}/{:?} do not fit rank {}",
                self.before,
                self.after,
                x.rank()
            );
        }
        if x.rank() > runtime_core::MAX_RANK {
            return unsupported!(
                "Pad of rank {} (at most {})",
                x.rank(),
                runtime_core::MAX_RANK
            );
        }
        let mut shape = Vec::with_capacity(x.rank());
        for (d, &n) in x.shape.iter().enumerate() {
            let size = n as isize + self.before[d] + self.after[d];
            if size < 0 {
                return invalid!(
                    "pads {:?}/{:?} crop axis {d} of {x} below zero",
                    self.before,
                    self.after
                );
            }
            let pads = self.before[d] > 0 || self.after[d] > 0;
            if pads && n == 0 && self.mode != PadMode::Constant {
                return invalid!("{:?} padding of the empty axis {d}", self.mode);
            }
            shape.push(size as usize);
        }
        crate::ir::checked_numel(&x.shape)?;
        crate::ir::checked_numel(&shape)?;
        Ok(vec![TensorType::new(x.dtype, shape)])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let x = inputs[0];
        let mut out = util::zeros(&outputs[0])?;
        let (mode, shape) = (self.mode.code(), &outputs[0].shape);
        if x.ty.dtype == DType::Bool {
            let v = u8::from(self.value != 0.0);
            layout::pad(
                util::data::<u8>(x)?,
                &x.ty.shape,
                &self.before,
                mode,
                v,
                util::data_mut::<u8>(&mut out)?,
                shape,
            );
        } else {
            for_dtype!(x.ty.dtype, T => {
                let v = <T as Numeric>::from_f64(self.value);
                layout::pad(util::data::<T>(x)?, &x.ty.shape, &self.before, mode, v, util::data_mut::<T>(&mut out)?, shape)
            });
        }
        Ok(vec![out])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        if ctx.outputs[0].numel() == 0 {
            return Ok(TokenStream::new());
        }
        let (x, o) = (ctx.input(0), ctx.output(0));
        let dtype = ctx.inputs[0].dtype;
        let value = if dtype == DType::Bool {
            let v = u8::from(self.value != 0.0);
            quote!(#v)
        } else {
            super::fill::lit_value(self.value, dtype)
        };
        let (in_shape, before, out_shape) = (
            usize_slice(&ctx.inputs[0].shape),
            isize_slice(&self.before),
            usize_slice(&ctx.outputs[0].shape),
        );
        let mode = self.mode.code();
        Ok(
            quote! { rt::kernels::layout::pad(#x, #in_shape, #before, #mode, #value, #o, #out_shape); },
        )
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("before", format!("{:?}", self.before).replace(' ', "")),
            ("after", format!("{:?}", self.after).replace(' ', "")),
            ("mode", format!("{:?}", self.mode)),
            ("value", format!("{}", self.value)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_pads_a_matrix() {
        // [[1,2],[3,4]] reflect-padded by one column on the left: [[2,1,2],[4,3,4]].
        let x = Tensor::from_i64s(vec![2, 2], vec![1, 2, 3, 4]).unwrap();
        let op = Pad {
            before: vec![0, 1],
            after: vec![0, 0],
            mode: PadMode::Reflect,
            value: 0.0,
        };
        let ty = op.infer(&[&x.ty]).unwrap();
        assert_eq!(ty[0].shape, vec![2, 3]);
        let out = op.eval(&[&x], &ty).unwrap();
        assert_eq!(out[0].data.to_f64_vec(), vec![2.0, 1.0, 2.0, 4.0, 3.0, 4.0]);
    }

    #[test]
    fn rejects_over_cropping_and_edge_padding_of_empty_axes() {
        let x = TensorType::new(DType::F32, vec![2, 0]);
        let crop = Pad {
            before: vec![-3, 0],
            after: vec![0, 0],
            mode: PadMode::Constant,
            value: 0.0,
        };
        assert!(crop.infer(&[&x]).is_err());
        let edge = Pad {
            before: vec![0, 1],
            after: vec![0, 0],
            mode: PadMode::Edge,
            value: 0.0,
        };
        assert!(edge.infer(&[&x]).is_err());
    }
}
