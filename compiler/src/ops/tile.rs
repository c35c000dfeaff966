//! `Tile`: repeat a tensor along every axis (ONNX Tile).
use super::OpDef;
use super::util::{self, EmitCtx, expect_inputs, usize_slice};
use crate::error::OpError;
use crate::ir::{Tensor, TensorType};
use crate::{for_dtype, invalid, unsupported};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::layout;

/// `out.shape[d] = x.shape[d] * repeats[d]`, the input laid out `repeats[d]` times along
/// each axis d; `repeats` has one entry per axis (ONNX's `repeats` input, checked
/// non-negative by the frontend). Any dtype; rank <= `runtime_core::MAX_RANK`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    pub repeats: Vec<usize>,
}

impl OpDef for Tile {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        expect_inputs(inputs, 1, 1)?;
        let x = inputs[0];
        if self.repeats.len() != x.rank() {
            return invalid!(
                "repeats {:?} has {} entries for an input of rank {}",
                self.repeats,
                self.repeats.len(),
                x.rank()
            );
        }
        if x.rank() > runtime_core::MAX_RANK {
            return unsupported!(
                "Tile of rank {} (at most {})",
                x.rank(),
                runtime_core::MAX_RANK
            );
        }
        crate::ir::checked_numel(&x.shape)?;
        let shape = x
            .shape
            .iter()
            .zip(&self.repeats)
            .map(|(&d, &r)| {
                d.checked_mul(r).ok_or_else(|| {
                    OpError::Invalid(format!("tiling {x} by {:?} overflows", self.repeats))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        crate::ir::checked_numel(&shape)?;
        Ok(vec![TensorType::new(x.dtype, shape)])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let x = inputs[0];
        let mut out = util::zeros(&outputs[0])?;
        for_dtype!(x.ty.dtype, T => {
            layout::tile(util::data::<T>(x)?, &x.ty.shape, &self.repeats, util::data_mut::<T>(&mut out)?)
        });
        Ok(vec![out])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        if ctx.outputs[0].numel() == 0 {
            return Ok(TokenStream::new());
        }
        let (x, o) = (ctx.input(0), ctx.output(0));
        let (shape, repeats) = (
            usize_slice(&ctx.inputs[0].shape),
            usize_slice(&self.repeats),
        );
        Ok(quote! { rt::kernels::layout::tile(#x, #shape, #repeats, #o); })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![("repeats", format!("{:?}", self.repeats).replace(' ', ""))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::DType;

    #[test]
    fn tiles_rows_and_columns() {
        // [[1,2]] tiled (2,2) = [[1,2,1,2],[1,2,1,2]]; [[1],[2]] tiled (1,3) = [[1,1,1],[2,2,2]].
        let x = Tensor::from_i64s(vec![1, 2], vec![1, 2]).unwrap();
        let op = Tile {
            repeats: vec![2, 2],
        };
        let ty = op.infer(&[&x.ty]).unwrap();
        assert_eq!(ty[0].shape, vec![2, 4]);
        assert_eq!(
            op.eval(&[&x], &ty).unwrap()[0].data.to_f64_vec(),
            vec![1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0]
        );
        let x = Tensor::from_i64s(vec![2, 1], vec![1, 2]).unwrap();
        let op = Tile {
            repeats: vec![1, 3],
        };
        let ty = op.infer(&[&x.ty]).unwrap();
        assert_eq!(
            op.eval(&[&x], &ty).unwrap()[0].data.to_f64_vec(),
            vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
        );
    }

    #[test]
    fn rejects_wrong_repeat_count() {
        let x = TensorType::new(DType::F32, vec![2, 3]);
        assert!(Tile { repeats: vec![2] }.infer(&[&x]).is_err());
    }
}
