//! `ScatterNd` and `ScatterElements`: a copy of the data with updates written or combined at
//! indexed positions (ONNX ScatterND, ScatterElements, Scatter).
use super::OpDef;
use super::util::{self, EmitCtx, expect_inputs, lit_usize, usize_slice};
use crate::error::OpError;
use crate::ir::{DType, Tensor, TensorType};
use crate::{for_dtype, invalid, unsupported};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::scatter;

/// How an update combines with the value already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduction {
    None,
    Add,
    Mul,
    Max,
    Min,
}

impl Reduction {
    pub fn code(self) -> u8 {
        match self {
            Reduction::None => scatter::REDUCE_NONE,
            Reduction::Add => scatter::REDUCE_ADD,
            Reduction::Mul => scatter::REDUCE_MUL,
            Reduction::Max => scatter::REDUCE_MAX,
            Reduction::Min => scatter::REDUCE_MIN,
        }
    }
}

fn check_data(data: &TensorType, updates: &TensorType) -> Result<(), OpError> {
    if data.dtype != updates.dtype {
        return invalid!("data is {} but updates are {}", data.dtype, updates.dtype);
    }
    if data.dtype == DType::Bool {
        return unsupported!("scatter into bool data");
    }
    if data.rank() > runtime_core::MAX_RANK {
        return unsupported!("scatter into rank {}", data.rank());
    }
    crate::ir::checked_numel(&data.shape)?;
    Ok(())
}

/// `data` `[d0..]`, i64 `indices` `[.., k]`, `updates` `[.., d_k..]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScatterNd {
    pub reduction: Reduction,
}

impl OpDef for ScatterNd {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        expect_inputs(inputs, 3, 3)?;
        let (data, idx, upd) = (inputs[0], inputs[1], inputs[2]);
        check_data(data, upd)?;
        if idx.dtype != DType::I64 || idx.rank() == 0 {
            return invalid!("indices must be i64 of rank >= 1, got {idx}");
        }
        let k = idx.shape[idx.rank() - 1];
        if k > data.rank() {
            return invalid!("index depth {k} exceeds data rank {}", data.rank());
        }
        let mut want = idx.shape[..idx.rank() - 1].to_vec();
        want.extend_from_slice(&data.shape[k..]);
        if upd.shape != want {
            return invalid!("updates {upd} must have shape {want:?}");
        }
        Ok(vec![data.clone()])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let (data, idx, upd) = (inputs[0], inputs[1], inputs[2]);
        let mut out = util::zeros(&outputs[0])?;
        let k = idx.ty.shape[idx.ty.rank() - 1];
        for_dtype!(data.ty.dtype, T => scatter::scatter_nd(util::data::<T>(data)?, &data.ty.shape, util::data::<i64>(idx)?, k, util::data::<T>(upd)?, util::data_mut::<T>(&mut out)?, self.reduction.code()));
        Ok(vec![out])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        let (d, i, u, o) = (ctx.input(0), ctx.input(1), ctx.input(2), ctx.output(0));
        let it = &ctx.inputs[1];
        let k = lit_usize(it.shape[it.rank() - 1]);
        let shape = usize_slice(&ctx.inputs[0].shape);
        let r = self.reduction.code();
        Ok(quote! { rt::kernels::scatter::scatter_nd(#d, #shape, #i, #k, #u, #o, #r); })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![("reduction", format!("{:?}", self.reduction))]
    }
}

/// `data`, i64 `indices` and `updates` of one shape (no larger than data's), `axis`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScatterElements {
    pub axis: usize,
    pub reduction: Reduction,
}

impl OpDef for ScatterElements {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        expect_inputs(inputs, 3, 3)?;
        let (data, idx, upd) = (inputs[0], inputs[1], inputs[2]);
        check_data(data, upd)?;
        if idx.dtype != DType::I64 || idx.shape != upd.shape || idx.rank() != data.rank() {
            return invalid!("indices {idx} and updates {upd} must be i64 / data-ranked and alike");
        }
        if self.axis >= data.rank() {
            return invalid!("axis {} out of range for {data}", self.axis);
        }
        if idx
            .shape
            .iter()
            .zip(&data.shape)
            .enumerate()
            .any(|(d, (&i, &n))| d != self.axis && i > n)
        {
            return invalid!("indices {idx} exceed data {data}");
        }
        Ok(vec![data.clone()])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let (data, idx, upd) = (inputs[0], inputs[1], inputs[2]);
        let mut out = util::zeros(&outputs[0])?;
        for_dtype!(data.ty.dtype, T => scatter::scatter_elements(util::data::<T>(data)?, &data.ty.shape, util::data::<i64>(idx)?, &idx.ty.shape, util::data::<T>(upd)?, self.axis, util::data_mut::<T>(&mut out)?, self.reduction.code()));
        Ok(vec![out])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        let (d, i, u, o) = (ctx.input(0), ctx.input(1), ctx.input(2), ctx.output(0));
        let shape = usize_slice(&ctx.inputs[0].shape);
        let ishape = usize_slice(&ctx.inputs[1].shape);
        let (axis, r) = (lit_usize(self.axis), self.reduction.code());
        Ok(
            quote! { rt::kernels::scatter::scatter_elements(#d, #shape, #i, #ishape, #u, #axis, #o, #r); },
        )
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("axis", self.axis.to_string()),
            ("reduction", format!("{:?}", self.reduction)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scatter_nd_replaces_rows() {
        let data = Tensor::from_i64s(vec![2, 2], vec![1, 2, 3, 4]).unwrap();
        let idx = Tensor::from_i64s(vec![1, 1], vec![1]).unwrap();
        let upd = Tensor::from_i64s(vec![1, 2], vec![8, 9]).unwrap();
        let op = ScatterNd {
            reduction: Reduction::None,
        };
        let ty = op.infer(&[&data.ty, &idx.ty, &upd.ty]).unwrap();
        let out = op.eval(&[&data, &idx, &upd], &ty).unwrap();
        assert_eq!(out[0].data.to_f64_vec(), vec![1.0, 2.0, 8.0, 9.0]);
        let bad = Tensor::from_i64s(vec![1, 3], vec![8, 9, 7]).unwrap();
        assert!(op.infer(&[&data.ty, &idx.ty, &bad.ty]).is_err());
    }
}
