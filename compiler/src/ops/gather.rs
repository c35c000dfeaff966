//! `Gather`: pick slices along one axis by an index tensor (embedding lookups).
use super::OpDef;
use super::util::{self, EmitCtx, expect_inputs, lit_usize, split_at_axis};
use crate::error::OpError;
use crate::ir::{DType, Tensor, TensorType};
use crate::{for_dtype, invalid};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::gather;

/// `out = data.take(indices, axis)`: output shape is
/// `data[..axis] ++ indices.shape ++ data[axis+1..]`. Indices are i64 or i32; negative ones
/// count from the end; out-of-range indices are a run-time error, never a wild read.
#[derive(Debug, Clone, PartialEq)]
pub struct Gather {
    pub axis: usize,
}

impl OpDef for Gather {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        expect_inputs(inputs, 2, 2)?;
        let (data, idx) = (inputs[0], inputs[1]);
        if self.axis >= data.rank() {
            return invalid!(
                "axis {} out of range for data of rank {}",
                self.axis,
                data.rank()
            );
        }
        if !matches!(idx.dtype, DType::I64 | DType::I32) {
            return invalid!("indices must be int64 or int32, got {}", idx.dtype);
        }
        let mut shape = data.shape[..self.axis].to_vec();
        shape.extend_from_slice(&idx.shape);
        shape.extend_from_slice(&data.shape[self.axis + 1..]);
        crate::ir::checked_numel(&shape)?;
        Ok(vec![TensorType::new(data.dtype, shape)])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let (data, idx) = (inputs[0], inputs[1]);
        let (outer, axis_len, inner) = split_at_axis(&data.ty.shape, self.axis);
        let mut out = util::zeros(&outputs[0])?;
        let result = for_dtype!(data.ty.dtype, T => {
            let (d, o) = (util::data::<T>(data)?, util::data_mut::<T>(&mut out)?);
            match idx.ty.dtype {
                DType::I32 => gather::gather(d, util::data::<i32>(idx)?, o, outer, axis_len, inner),
                _ => gather::gather(d, util::data::<i64>(idx)?, o, outer, axis_len, inner),
            }
        });
        result.map_err(|e| {
            OpError::Invalid(format!(
                "index {} out of range for axis of size {}",
                e.index, e.bound
            ))
        })?;
        Ok(vec![out])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        let (outer, axis_len, inner) = split_at_axis(&ctx.inputs[0].shape, self.axis);
        let (outer, axis_len, inner) = (lit_usize(outer), lit_usize(axis_len), lit_usize(inner));
        let (d, i, o, name) = (ctx.input(0), ctx.input(1), ctx.output(0), ctx.name_lit());
        Ok(quote! {
            rt::kernels::gather::gather(#d, #i, #o, #outer, #axis_len, #inner).map_err(|e| e.at(#name))?;
        })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![("axis", self.axis.to_string())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedding_lookup_and_bad_index() {
        let table = Tensor::from_f32s(vec![3, 2], vec![0.0, 1.0, 10.0, 11.0, 20.0, 21.0]).unwrap();
        let ids = Tensor::from_i64s(vec![1, 2], vec![2, 0]).unwrap();
        let op = Gather { axis: 0 };
        let ty = op.infer(&[&table.ty, &ids.ty]).unwrap();
        assert_eq!(ty[0].shape, vec![1, 2, 2]);
        assert_eq!(
            op.eval(&[&table, &ids], &ty).unwrap()[0].data.to_f64_vec(),
            vec![20.0, 21.0, 0.0, 1.0]
        );
        let bad = Tensor::from_i64s(vec![1], vec![7]).unwrap();
        let ty = op.infer(&[&table.ty, &bad.ty]).unwrap();
        assert!(op.eval(&[&table, &bad], &ty).is_err());
    }
}
