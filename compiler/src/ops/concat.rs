//! `Concat`: join tensors along one axis (ONNX Concat).
use super::OpDef;
use super::util::{self, EmitCtx, lit_usize, product, usize_slice};
use crate::error::OpError;
use crate::ir::{Tensor, TensorType};
use crate::{for_dtype, invalid};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::layout;

/// Concatenate one or more inputs of one dtype and rank along `axis` (`< rank`); every
/// other dim must be equal. Inputs may have length 0 along the axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Concat {
    pub axis: usize,
}

impl Concat {
    /// `outer` and the per-input block lengths `dim_k(axis) * inner`.
    fn blocks<'a>(&self, shapes: impl Iterator<Item = &'a [usize]>) -> (usize, Vec<usize>) {
        let mut outer = 1;
        let blocks = shapes
            .map(|s| {
                let axis = self.axis.min(s.len());
                outer = product(&s[..axis]);
                product(&s[axis..])
            })
            .collect();
        (outer, blocks)
    }
}

impl OpDef for Concat {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        let Some(first) = inputs.first() else {
            return invalid!("Concat needs at least one input");
        };
        if self.axis >= first.rank() {
            return invalid!("axis {} out of range for rank {}", self.axis, first.rank());
        }
        let mut shape = first.shape.clone();
        shape[self.axis] = 0;
        for t in inputs {
            if t.dtype != first.dtype || t.rank() != first.rank() {
                return invalid!("inputs {first} and {t} differ in dtype or rank");
            }
            let other = (0..t.rank()).find(|&d| d != self.axis && t.shape[d] != first.shape[d]);
            if let Some(d) = other {
                return invalid!(
                    "inputs {first} and {t} differ on axis {d} (concat axis is {})",
                    self.axis
                );
            }
            crate::ir::checked_numel(&t.shape)?;
            shape[self.axis] = shape[self.axis]
                .checked_add(t.shape[self.axis])
                .ok_or_else(|| OpError::Invalid("concatenated axis overflows usize".into()))?;
        }
        crate::ir::checked_numel(&shape)?;
        Ok(vec![TensorType::new(first.dtype, shape)])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let mut out = util::zeros(&outputs[0])?;
        if out.data.is_empty() {
            return Ok(vec![out]);
        }
        let (outer, blocks) = self.blocks(inputs.iter().map(|t| t.ty.shape.as_slice()));
        for_dtype!(outputs[0].dtype, T => {
            let srcs = inputs.iter().map(|t| util::data::<T>(t)).collect::<Result<Vec<_>, _>>()?;
            layout::concat(&srcs, &blocks, util::data_mut::<T>(&mut out)?, outer);
        });
        Ok(vec![out])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        if ctx.outputs[0].numel() == 0 {
            return Ok(TokenStream::new());
        }
        let (outer, blocks) = self.blocks(ctx.inputs.iter().map(|t| t.shape.as_slice()));
        let srcs = (0..ctx.inputs.len()).map(|i| ctx.input(i));
        let (blocks, outer, o) = (usize_slice(&blocks), lit_usize(outer), ctx.output(0));
        Ok(quote! { rt::kernels::layout::concat(&[#(#srcs),*], #blocks, #o, #outer); })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![("axis", self.axis.to_string())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::DType;

    #[test]
    fn concatenates_along_the_last_axis() {
        // [[1,2],[3,4]] ++ [[5],[6]] on axis 1 = [[1,2,5],[3,4,6]]
        let a = Tensor::from_i64s(vec![2, 2], vec![1, 2, 3, 4]).unwrap();
        let b = Tensor::from_i64s(vec![2, 1], vec![5, 6]).unwrap();
        let op = Concat { axis: 1 };
        let ty = op.infer(&[&a.ty, &b.ty]).unwrap();
        assert_eq!(ty[0].shape, vec![2, 3]);
        assert_eq!(
            op.eval(&[&a, &b], &ty).unwrap()[0].data.to_f64_vec(),
            vec![1.0, 2.0, 5.0, 3.0, 4.0, 6.0]
        );
        // Axis 0 appends rows.
        let op = Concat { axis: 0 };
        let ty = op.infer(&[&a.ty, &a.ty]).unwrap();
        assert_eq!(
            op.eval(&[&a, &a], &ty).unwrap()[0].data.to_f64_vec(),
            vec![1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0]
        );
    }

    #[test]
    fn rejects_mismatched_inputs() {
        let a = TensorType::new(DType::F32, vec![2, 2]);
        let b = TensorType::new(DType::F32, vec![3, 1]);
        assert!(Concat { axis: 1 }.infer(&[&a, &b]).is_err());
        assert!(Concat { axis: 2 }.infer(&[&a]).is_err());
        assert!(Concat { axis: 0 }.infer(&[]).is_err());
        let c = TensorType::new(DType::I64, vec![2, 2]);
        assert!(Concat { axis: 0 }.infer(&[&a, &c]).is_err());
    }
}
