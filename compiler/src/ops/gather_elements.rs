//! `GatherElements`: pick one element per index along an axis (ONNX GatherElements).
use super::OpDef;
use super::util::{self, EmitCtx, expect_inputs, lit_usize, product};
use crate::error::OpError;
use crate::ir::{DType, Tensor, TensorType};
use crate::{for_dtype, invalid, unsupported};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::gather;

/// Inputs `[data, indices]` of one rank; indices are i64 or i32 and the output has their
/// shape and data's dtype: `out[.., k, ..] = data[.., indices[.., k, ..], ..]` along `axis`
/// (`< rank`). Indices must match data's dims on every other axis (ONNX allows smaller
/// ones; those are reported unsupported). Negative indices count from the end;
/// out-of-range ones are a run-time error.
#[derive(Debug, Clone, PartialEq)]
pub struct GatherElements {
    pub axis: usize,
}

impl GatherElements {
    /// `(outer, axis_len, index_len, inner)` for the kernel.
    fn dims(&self, data: &[usize], indices: &[usize]) -> (usize, usize, usize, usize) {
        let axis = self.axis.min(data.len());
        let len = |s: &[usize]| s.get(axis).copied().unwrap_or(1);
        (
            product(&data[..axis]),
            len(data),
            len(indices),
            product(data.get(axis + 1..).unwrap_or(&[])),
        )
    }
}

impl OpDef for GatherElements {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        expect_inputs(inputs, 2, 2)?;
        let (data, idx) = (inputs[0], inputs[1]);
        if !matches!(idx.dtype, DType::I64 | DType::I32) {
            return invalid!("indices must be int64 or int32, got {}", idx.dtype);
        }
        if self.axis >= data.rank() {
            return invalid!(
                "axis {} out of range for data of rank {}",
                self.axis,
                data.rank()
            );
        }
        if idx.rank() != data.rank() {
            return invalid!("indices {idx} and data {data} differ in rank");
        }
        for d in (0..data.rank()).filter(|&d| d != self.axis) {
            if idx.shape[d] > data.shape[d] {
                return invalid!("indices {idx} exceed data {data} on axis {d}");
            }
            if idx.shape[d] != data.shape[d] {
                return unsupported!(
                    "GatherElements with indices {idx} smaller than data {data} on axis {d}"
                );
            }
        }
        crate::ir::checked_numel(&data.shape)?;
        crate::ir::checked_numel(&idx.shape)?;
        Ok(vec![TensorType::new(data.dtype, idx.shape.clone())])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let (data, idx) = (inputs[0], inputs[1]);
        let mut out = util::zeros(&outputs[0])?;
        let (outer, axis_len, index_len, inner) = self.dims(&data.ty.shape, &idx.ty.shape);
        let result = for_dtype!(data.ty.dtype, T => {
            let (d, o) = (util::data::<T>(data)?, util::data_mut::<T>(&mut out)?);
            match idx.ty.dtype {
                DType::I32 => gather::gather_elements(d, util::data::<i32>(idx)?, o, outer, axis_len, index_len, inner),
                _ => gather::gather_elements(d, util::data::<i64>(idx)?, o, outer, axis_len, index_len, inner),
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
        if ctx.outputs[0].numel() == 0 {
            return Ok(TokenStream::new());
        }
        let (outer, axis_len, index_len, inner) =
            self.dims(&ctx.inputs[0].shape, &ctx.inputs[1].shape);
        let (outer, axis_len, index_len, inner) = (
            lit_usize(outer),
            lit_usize(axis_len),
            lit_usize(index_len),
            lit_usize(inner),
        );
        let (d, i, o, name) = (ctx.input(0), ctx.input(1), ctx.output(0), ctx.name_lit());
        Ok(quote! {
            rt::kernels::gather::gather_elements(#d, #i, #o, #outer, #axis_len, #index_len, #inner)
                .map_err(|e| e.at(#name))?;
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
    fn picks_along_rows_and_rejects_bad_index() {
        // ONNX example: data [[1,2],[3,4]], indices [[0,0],[1,0]], axis 1 -> [[1,1],[4,3]]
        let data = Tensor::from_f32s(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let idx = Tensor::from_i64s(vec![2, 2], vec![0, 0, 1, 0]).unwrap();
        let op = GatherElements { axis: 1 };
        let ty = op.infer(&[&data.ty, &idx.ty]).unwrap();
        assert_eq!(
            op.eval(&[&data, &idx], &ty).unwrap()[0].data.to_f64_vec(),
            vec![1.0, 1.0, 4.0, 3.0]
        );
        // Axis 0 with fewer rows of indices: [[1, -1]] reads data[1][0], data[-1 = 1][1].
        let op = GatherElements { axis: 0 };
        let idx = Tensor::from_i64s(vec![1, 2], vec![1, -1]).unwrap();
        let ty = op.infer(&[&data.ty, &idx.ty]).unwrap();
        assert_eq!(
            op.eval(&[&data, &idx], &ty).unwrap()[0].data.to_f64_vec(),
            vec![3.0, 4.0]
        );
        let bad = Tensor::from_i64s(vec![1, 2], vec![2, 0]).unwrap();
        assert!(op.eval(&[&data, &bad], &ty).is_err());
    }

    #[test]
    fn rejects_bad_indices() {
        let data = TensorType::new(DType::F32, vec![2, 3]);
        assert!(
            GatherElements { axis: 0 }
                .infer(&[&data, &TensorType::new(DType::I64, vec![6])])
                .is_err()
        );
        assert!(
            GatherElements { axis: 0 }
                .infer(&[&data, &TensorType::new(DType::F32, vec![2, 3])])
                .is_err()
        );
        assert!(GatherElements { axis: 2 }.infer(&[&data, &data]).is_err());
    }
}
