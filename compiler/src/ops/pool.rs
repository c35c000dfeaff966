//! `Pool`: max, average and Lp pooling over spatial windows (ONNX MaxPool, AveragePool,
//! LpPool).
use super::OpDef;
use super::conv::Geometry;
use super::util::{self, EmitCtx, expect_inputs, lit_usize, storage_ty};
use crate::error::OpError;
use crate::ir::{DType, Tensor, TensorType};
use crate::{for_dtype, invalid};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::conv;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PoolKind {
    /// Maximum; with `indices`, a second i64 output holds each maximum's flat input index
    /// (spatial part column-major when `column_major`).
    Max { indices: bool, column_major: bool },
    /// Mean of the window's input positions, or of its padded positions (`include_pad`).
    Avg { include_pad: bool },
    /// `(Σ |x|^p)^(1/p)`, f32 only.
    Lp { p: f32 },
}

/// `x` `[N, C, spatial..]` → `[N, C, output spatial..]`. Max takes any numeric non-bool
/// dtype, Avg floats, Lp f32.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub kind: PoolKind,
    pub geometry: Geometry,
}

impl OpDef for Pool {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        expect_inputs(inputs, 1, 1)?;
        let x = inputs[0];
        if x.rank() < 3 {
            return invalid!("pooling needs [N, C, spatial..], got {x}");
        }
        let ok = match self.kind {
            PoolKind::Max { .. } => x.dtype != DType::Bool,
            PoolKind::Avg { .. } => x.dtype.is_float(),
            PoolKind::Lp { .. } => x.dtype == DType::F32,
        };
        if !ok {
            return invalid!("{:?} pooling of {}", self.kind, x.dtype);
        }
        let mut shape = x.shape[..2].to_vec();
        shape.extend(self.geometry.output(&x.shape[2..])?);
        crate::ir::checked_numel(&x.shape)?;
        crate::ir::checked_numel(&shape)?;
        let mut out = vec![TensorType::new(x.dtype, shape.clone())];
        if let PoolKind::Max { indices: true, .. } = self.kind {
            out.push(TensorType::new(DType::I64, shape));
        }
        Ok(out)
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let x = inputs[0];
        let mut out = util::zeros(&outputs[0])?;
        let (xs, os) = (&x.ty.shape, &outputs[0].shape);
        let planes = xs[0] * xs[1];
        let win = self.geometry.window(&xs[2..], &os[2..]);
        match self.kind {
            PoolKind::Max {
                indices,
                column_major,
            } => {
                let mut idx = match outputs.get(1) {
                    Some(t) if indices => Some(util::zeros(t)?),
                    _ => None,
                };
                let idx_slice: &mut [i64] = match idx.as_mut() {
                    Some(t) => util::data_mut::<i64>(t)?,
                    None => &mut [],
                };
                for_dtype!(x.ty.dtype, T => conv::max_pool(util::data::<T>(x)?, util::data_mut::<T>(&mut out)?, idx_slice, planes, column_major, &win));
                return Ok(std::iter::once(out).chain(idx).collect());
            }
            PoolKind::Avg { include_pad } => {
                for_dtype!(x.ty.dtype, T => conv::avg_pool(util::data::<T>(x)?, util::data_mut::<T>(&mut out)?, planes, include_pad, &win));
            }
            PoolKind::Lp { p } => {
                conv::lp_pool(
                    util::data::<f32>(x)?,
                    util::data_mut::<f32>(&mut out)?,
                    planes,
                    p,
                    &win,
                );
            }
        }
        Ok(vec![out])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        if ctx.outputs[0].numel() == 0 {
            return Ok(TokenStream::new());
        }
        let (x, o) = (ctx.input(0), ctx.output(0));
        let (xs, os) = (&ctx.inputs[0].shape, &ctx.outputs[0].shape);
        let win = self.geometry.window_tokens(&xs[2..], &os[2..]);
        let planes = lit_usize(xs[0] * xs[1]);
        let t = storage_ty(ctx.inputs[0].dtype);
        Ok(match self.kind {
            PoolKind::Max {
                indices,
                column_major,
            } => {
                let idx = if indices {
                    let i = ctx.output(1);
                    quote!(#i)
                } else {
                    quote!(&mut [])
                };
                quote! { rt::kernels::conv::max_pool::<#t>(#x, #o, #idx, #planes, #column_major, #win); }
            }
            PoolKind::Avg { include_pad } => {
                quote! { rt::kernels::conv::avg_pool::<#t>(#x, #o, #planes, #include_pad, #win); }
            }
            PoolKind::Lp { p } => {
                quote! { rt::kernels::conv::lp_pool(#x, #o, #planes, #p, #win); }
            }
        })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        let mut a = vec![("kind", format!("{:?}", self.kind))];
        a.extend(self.geometry.attrs());
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_pool_with_indices_and_avg_pool() {
        let x = Tensor::from_f32s(vec![1, 1, 4], vec![1., 5., 2., 3.]).unwrap();
        let geometry = Geometry {
            kernel: vec![2],
            strides: vec![2],
            dilations: vec![1],
            pads_begin: vec![0],
            pads_end: vec![0],
            ceil_mode: false,
        };
        let op = Pool {
            kind: PoolKind::Max {
                indices: true,
                column_major: false,
            },
            geometry: geometry.clone(),
        };
        let ty = op.infer(&[&x.ty]).unwrap();
        let out = op.eval(&[&x], &ty).unwrap();
        assert_eq!(out[0].data.to_f64_vec(), vec![5.0, 3.0]);
        assert_eq!(out[1].data.to_f64_vec(), vec![1.0, 3.0]);
        let avg = Pool {
            kind: PoolKind::Avg { include_pad: false },
            geometry,
        };
        let ty = avg.infer(&[&x.ty]).unwrap();
        assert_eq!(
            avg.eval(&[&x], &ty).unwrap()[0].data.to_f64_vec(),
            vec![3.0, 2.5]
        );
        let ints = TensorType::new(DType::I32, vec![1, 1, 4]);
        assert!(avg.infer(&[&ints]).is_err());
    }
}
