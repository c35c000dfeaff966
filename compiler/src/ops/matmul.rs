//! `MatMul`: NumPy-style batched matrix product (ONNX MatMul; Gemm lowers to it).
use super::OpDef;
use super::util::{
    self, EmitCtx, broadcast_shapes, broadcast_strides, coalesce, expect_inputs, isize_slice,
    lit_isize, lit_usize, usize_slice,
};
use crate::error::OpError;
use crate::ir::{DType, Tensor, TensorType};
use crate::{for_dtype, invalid, unsupported};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::matmul::{self, MatMulSpec};

/// `out = a · b` over the last two axes, broadcasting the leading (batch) axes. A 1-D `a`
/// is a row vector and a 1-D `b` a column vector; their unit axis is dropped from the
/// output, as in NumPy.
#[derive(Debug, Clone, PartialEq)]
pub struct MatMul {}

/// The product's geometry, shared by eval and emit.
struct Geometry {
    m: usize,
    k: usize,
    n: usize,
    batch: Vec<usize>,
    a_batch_strides: Vec<isize>,
    b_batch_strides: Vec<isize>,
    out_shape: Vec<usize>,
}

fn geometry(a: &[usize], b: &[usize]) -> Result<Geometry, OpError> {
    if a.is_empty() || b.is_empty() {
        return invalid!("operands must have rank >= 1, got {a:?} and {b:?}");
    }
    let a2: Vec<usize> = if a.len() == 1 {
        vec![1, a[0]]
    } else {
        a.to_vec()
    };
    let b2: Vec<usize> = if b.len() == 1 {
        vec![b[0], 1]
    } else {
        b.to_vec()
    };
    let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (k2, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    if k != k2 {
        return invalid!("inner dimensions differ: {a:?} · {b:?}");
    }
    let (a_batch, b_batch) = (&a2[..a2.len() - 2], &b2[..b2.len() - 2]);
    let batch = broadcast_shapes(&[a_batch, b_batch])?;
    let scale =
        |s: Vec<isize>, by: usize| s.into_iter().map(|x| x * by as isize).collect::<Vec<_>>();
    let a_batch_strides = scale(broadcast_strides(a_batch, &batch), m * k);
    let b_batch_strides = scale(broadcast_strides(b_batch, &batch), k * n);
    let mut out_shape = batch.clone();
    if a.len() > 1 {
        out_shape.push(m);
    }
    if b.len() > 1 {
        out_shape.push(n);
    }
    Ok(Geometry {
        m,
        k,
        n,
        batch,
        a_batch_strides,
        b_batch_strides,
        out_shape,
    })
}

/// The result type of a matrix product of the two `inputs` (MatMul and its variants):
/// operands of one numeric type, the shape `geometry` derives from theirs (with its number of
/// batch axes), a result that fits in memory and batch axes the kernels index.
pub(crate) fn product_type(
    inputs: &[&TensorType],
    geometry: impl FnOnce(&[usize], &[usize]) -> Result<(Vec<usize>, usize), OpError>,
) -> Result<Vec<TensorType>, OpError> {
    expect_inputs(inputs, 2, 2)?;
    let (a, b) = (inputs[0], inputs[1]);
    if a.dtype != b.dtype {
        return invalid!("operand types differ: {} and {}", a.dtype, b.dtype);
    }
    if a.dtype == DType::Bool {
        return unsupported!("MatMul on bool tensors");
    }
    let (out_shape, batch_axes) = geometry(&a.shape, &b.shape)?;
    crate::ir::checked_numel(&out_shape)?;
    if batch_axes > runtime_core::MAX_RANK {
        return unsupported!("more than {} batch axes", runtime_core::MAX_RANK);
    }
    Ok(vec![TensorType::new(a.dtype, out_shape)])
}

impl OpDef for MatMul {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        product_type(inputs, |a, b| {
            geometry(a, b).map(|g| (g.out_shape, g.batch.len()))
        })
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let (a, b) = (inputs[0], inputs[1]);
        let g = geometry(&a.ty.shape, &b.ty.shape)?;
        let spec = MatMulSpec {
            m: g.m,
            k: g.k,
            n: g.n,
            a_strides: [g.k as isize, 1],
            b_strides: [g.n as isize, 1],
            batch: &g.batch,
            a_batch_strides: &g.a_batch_strides,
            b_batch_strides: &g.b_batch_strides,
        };
        let mut out = util::zeros(&outputs[0])?;
        for_dtype!(a.ty.dtype, T => matmul::matmul(util::data::<T>(a)?, util::data::<T>(b)?, util::data_mut::<T>(&mut out)?, &spec));
        Ok(vec![out])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        let g = geometry(&ctx.inputs[0].shape, &ctx.inputs[1].shape)?;
        let (batch, strides) = coalesce(&g.batch, &[g.a_batch_strides, g.b_batch_strides]);
        let (m, k, n) = (lit_usize(g.m), lit_usize(g.k), lit_usize(g.n));
        let (ka, nb) = (lit_isize(g.k as isize), lit_isize(g.n as isize));
        let (batch, sa, sb) = (
            usize_slice(&batch),
            isize_slice(&strides[0]),
            isize_slice(&strides[1]),
        );
        let (a, b, o) = (ctx.input(0), ctx.input(1), ctx.output(0));
        if ctx.inputs[0].dtype == DType::F32 {
            // Activation × activation products (attention) run the blocked GEMM with `B` read
            // in place; `mr` is capped by the kernel the crate is compiled with.
            return Ok(quote! {
                rt::kernels::matmul::matmul_f32(#a, #b, #o, &rt::kernels::matmul::MatMulSpec {
                    m: #m, k: #k, n: #n,
                    a_strides: [#ka, 1], b_strides: [#nb, 1],
                    batch: #batch, a_batch_strides: #sa, b_batch_strides: #sb,
                }, rt::kernels::gemm::Tiles { mr: 16, kc: 256, mc: 256 });
            });
        }
        Ok(quote! {
            rt::kernels::matmul::matmul(#a, #b, #o, &rt::kernels::matmul::MatMulSpec {
                m: #m, k: #k, n: #n,
                a_strides: [#ka, 1], b_strides: [#nb, 1],
                batch: #batch, a_batch_strides: #sa, b_batch_strides: #sb,
            });
        })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batched_times_shared_weight() {
        // [2,1,2] · [2,2]: each batch row times the same weight.
        let a = Tensor::from_f32s(vec![2, 1, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let w = Tensor::from_f32s(vec![2, 2], vec![1.0, 0.0, 1.0, 1.0]).unwrap();
        let ty = MatMul {}.infer(&[&a.ty, &w.ty]).unwrap();
        assert_eq!(ty[0].shape, vec![2, 1, 2]);
        let out = MatMul {}.eval(&[&a, &w], &ty).unwrap();
        assert_eq!(out[0].data.to_f64_vec(), vec![3.0, 2.0, 7.0, 4.0]);
    }

    #[test]
    fn vector_operands_drop_unit_axes() {
        let a = TensorType::new(DType::F32, vec![3]);
        let b = TensorType::new(DType::F32, vec![3, 5]);
        assert_eq!(MatMul {}.infer(&[&a, &b]).unwrap()[0].shape, vec![5]);
        let bad = TensorType::new(DType::F32, vec![4, 5]);
        assert!(MatMul {}.infer(&[&a, &bad]).is_err());
    }
}
