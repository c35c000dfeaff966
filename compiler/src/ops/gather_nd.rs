//! `GatherNd`: gather slices addressed by index tuples (ONNX GatherND).
use super::OpDef;
use super::util::{self, EmitCtx, expect_inputs, lit_usize, product, usize_slice};
use crate::error::OpError;
use crate::ir::{DType, Tensor, TensorType};
use crate::{for_dtype, invalid};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::gather;

/// Inputs `[data, indices]`, data of rank r >= 1, indices (i64 or i32) of rank q >= 1 with
/// last dim m. The first `batch_dims` (b < min(q, r)) dims of both must be equal, and
/// b + m <= r. Output shape: `indices.shape[..q-1] ++ data.shape[b+m..]`; each index tuple
/// of m values selects a `data.shape[b+m..]` slice within its batch. Negative indices count
/// from the end; out-of-range ones are a run-time error.
#[derive(Debug, Clone, PartialEq)]
pub struct GatherNd {
    pub batch_dims: usize,
}

/// Kernel parameters: batch count, indexed dims, index rows per batch, slice length.
struct Plan {
    batch: usize,
    dims: Vec<usize>,
    rows: usize,
    inner: usize,
}

impl GatherNd {
    fn plan(&self, data: &[usize], indices: &[usize]) -> Plan {
        let b = self.batch_dims.min(data.len());
        let m = indices.last().copied().unwrap_or(0);
        let end = (b + m).min(data.len());
        let idx_end = indices.len().saturating_sub(1).max(b.min(indices.len()));
        Plan {
            batch: product(&data[..b]),
            dims: data[b..end].to_vec(),
            rows: product(indices.get(b..idx_end).unwrap_or(&[])),
            inner: product(&data[end..]),
        }
    }
}

impl OpDef for GatherNd {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        expect_inputs(inputs, 2, 2)?;
        let (data, idx) = (inputs[0], inputs[1]);
        if !matches!(idx.dtype, DType::I64 | DType::I32) {
            return invalid!("indices must be int64 or int32, got {}", idx.dtype);
        }
        let (r, q, b) = (data.rank(), idx.rank(), self.batch_dims);
        if r == 0 || q == 0 {
            return invalid!("data {data} and indices {idx} must both have rank >= 1");
        }
        if b >= r.min(q) {
            return invalid!(
                "batch_dims {b} must be below the ranks of data {data} and indices {idx}"
            );
        }
        if data.shape[..b] != idx.shape[..b] {
            return invalid!("data {data} and indices {idx} differ in the first {b} (batch) dims");
        }
        let m = idx.shape[q - 1];
        if m > r - b {
            return invalid!(
                "index tuples of {m} values exceed the {} indexable axes of {data}",
                r - b
            );
        }
        crate::ir::checked_numel(&data.shape)?;
        crate::ir::checked_numel(&idx.shape)?;
        let mut shape = idx.shape[..q - 1].to_vec();
        shape.extend_from_slice(&data.shape[b + m..]);
        crate::ir::checked_numel(&shape)?;
        Ok(vec![TensorType::new(data.dtype, shape)])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let (data, idx) = (inputs[0], inputs[1]);
        let mut out = util::zeros(&outputs[0])?;
        if out.data.is_empty() {
            return Ok(vec![out]);
        }
        let p = self.plan(&data.ty.shape, &idx.ty.shape);
        let result = for_dtype!(data.ty.dtype, T => {
            let (d, o) = (util::data::<T>(data)?, util::data_mut::<T>(&mut out)?);
            match idx.ty.dtype {
                DType::I32 => gather::gather_nd(d, util::data::<i32>(idx)?, o, p.batch, &p.dims, p.rows, p.inner),
                _ => gather::gather_nd(d, util::data::<i64>(idx)?, o, p.batch, &p.dims, p.rows, p.inner),
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
        let p = self.plan(&ctx.inputs[0].shape, &ctx.inputs[1].shape);
        let (batch, dims, rows, inner) = (
            lit_usize(p.batch),
            usize_slice(&p.dims),
            lit_usize(p.rows),
            lit_usize(p.inner),
        );
        let (d, i, o, name) = (ctx.input(0), ctx.input(1), ctx.output(0), ctx.name_lit());
        Ok(quote! {
            rt::kernels::gather::gather_nd(#d, #i, #o, #batch, #dims, #rows, #inner).map_err(|e| e.at(#name))?;
        })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![("batch_dims", self.batch_dims.to_string())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(op: &GatherNd, data: &Tensor, idx: &Tensor) -> (Vec<usize>, Vec<f64>) {
        let ty = op.infer(&[&data.ty, &idx.ty]).unwrap();
        (
            ty[0].shape.clone(),
            op.eval(&[data, idx], &ty).unwrap()[0].data.to_f64_vec(),
        )
    }

    #[test]
    fn onnx_examples() {
        // data [[0,1],[2,3]]: indices [[0,0],[1,1]] -> [0,3]; [[1],[0]] -> rows [[2,3],[0,1]].
        let data = Tensor::from_i64s(vec![2, 2], vec![0, 1, 2, 3]).unwrap();
        let op = GatherNd { batch_dims: 0 };
        let pairs = Tensor::from_i64s(vec![2, 2], vec![0, 0, 1, 1]).unwrap();
        assert_eq!(run(&op, &data, &pairs), (vec![2], vec![0.0, 3.0]));
        let rows = Tensor::from_i64s(vec![2, 1], vec![1, 0]).unwrap();
        assert_eq!(
            run(&op, &data, &rows),
            (vec![2, 2], vec![2.0, 3.0, 0.0, 1.0])
        );
        // batch_dims 1: data [[[0,1],[2,3]],[[4,5],[6,7]]], indices [[1],[0]] -> [[2,3],[4,5]].
        let data = Tensor::from_i64s(vec![2, 2, 2], (0..8).collect()).unwrap();
        let op = GatherNd { batch_dims: 1 };
        assert_eq!(
            run(&op, &data, &rows),
            (vec![2, 2], vec![2.0, 3.0, 4.0, 5.0])
        );
    }

    #[test]
    fn rejects_bad_shapes() {
        let data = TensorType::new(DType::F32, vec![2, 2]);
        let long = TensorType::new(DType::I64, vec![1, 3]);
        assert!(GatherNd { batch_dims: 0 }.infer(&[&data, &long]).is_err());
        let idx = TensorType::new(DType::I64, vec![3, 1]);
        assert!(GatherNd { batch_dims: 1 }.infer(&[&data, &idx]).is_err());
        assert!(GatherNd { batch_dims: 2 }.infer(&[&data, &data]).is_err());
    }
}
