//! `PermutedMatMul`: a `MatMul` that reads its operands through axis permutations (the
//! transposes that fed it, folded by `passes::fold_matmul_transpose`), so no transposed copy
//! is made.
use super::OpDef;
use super::util::{
    self, EmitCtx, broadcast_shapes, coalesce, isize_slice, lit_isize, lit_usize, usize_slice,
};
use crate::error::OpError;
use crate::ir::{DType, Tensor, TensorType};
use crate::{for_dtype, invalid, unsupported};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::matmul::{self, MatMulSpec};

/// `out = MatMul(Transpose{a_perm}(a), Transpose{b_perm}(b))` with MatMul's broadcasting of
/// the leading axes. Both operands have rank ≥ 2 and each permutation keeps the last axis
/// last, so a row of a permuted operand is a contiguous run of its source (the blocked GEMM
/// reads it in place with a row stride).
#[derive(Debug, Clone, PartialEq)]
pub struct PermutedMatMul {
    pub a_perm: Vec<usize>,
    pub b_perm: Vec<usize>,
}

/// One operand seen through its permutation: shape and element strides of the source.
struct Operand {
    shape: Vec<usize>,
    strides: Vec<isize>,
}

fn permuted(shape: &[usize], perm: &[usize]) -> Result<Operand, OpError> {
    let r = shape.len();
    if r < 2 || perm.len() != r {
        return invalid!("permutation {perm:?} of an operand of shape {shape:?}");
    }
    let mut seen = vec![false; r];
    for &p in perm {
        match seen.get_mut(p) {
            Some(s) if !*s => *s = true,
            _ => return invalid!("{perm:?} is not a permutation of {r} axes"),
        }
    }
    if perm.last() != Some(&(r - 1)) {
        return unsupported!("permutation {perm:?} moves the last axis");
    }
    let mut source = vec![0isize; r];
    let mut acc = 1isize;
    for (s, &n) in source.iter_mut().zip(shape).rev() {
        *s = acc;
        acc *= n as isize;
    }
    Ok(Operand {
        shape: perm.iter().map(|&p| shape[p]).collect(),
        strides: perm.iter().map(|&p| source[p]).collect(),
    })
}

/// The product's geometry, shared by infer, eval and emit.
struct Geometry {
    m: usize,
    k: usize,
    n: usize,
    a_row: isize,
    b_row: isize,
    batch: Vec<usize>,
    a_batch_strides: Vec<isize>,
    b_batch_strides: Vec<isize>,
    out_shape: Vec<usize>,
}

impl PermutedMatMul {
    fn geometry(&self, a: &[usize], b: &[usize]) -> Result<Geometry, OpError> {
        let (a, b) = (permuted(a, &self.a_perm)?, permuted(b, &self.b_perm)?);
        let (ra, rb) = (a.shape.len(), b.shape.len());
        let (m, k) = (a.shape[ra - 2], a.shape[ra - 1]);
        let (k2, n) = (b.shape[rb - 2], b.shape[rb - 1]);
        if k != k2 {
            return invalid!("inner dimensions differ: {:?} · {:?}", a.shape, b.shape);
        }
        let batch = broadcast_shapes(&[&a.shape[..ra - 2], &b.shape[..rb - 2]])?;
        // Batch strides aligned from the right; a broadcast axis (length 1) has stride 0.
        let batch_strides = |o: &Operand| -> Vec<isize> {
            let own = o.shape.len() - 2;
            let skip = batch.len() - own;
            (0..batch.len())
                .map(|i| match i.checked_sub(skip) {
                    Some(d) if o.shape[d] != 1 => o.strides[d],
                    _ => 0,
                })
                .collect()
        };
        let (a_batch_strides, b_batch_strides) = (batch_strides(&a), batch_strides(&b));
        let mut out_shape = batch.clone();
        out_shape.extend([m, n]);
        Ok(Geometry {
            m,
            k,
            n,
            a_row: a.strides[ra - 2],
            b_row: b.strides[rb - 2],
            batch,
            a_batch_strides,
            b_batch_strides,
            out_shape,
        })
    }
}

impl OpDef for PermutedMatMul {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        super::matmul::product_type(inputs, |a, b| {
            self.geometry(a, b).map(|g| (g.out_shape, g.batch.len()))
        })
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let (a, b) = (inputs[0], inputs[1]);
        let g = self.geometry(&a.ty.shape, &b.ty.shape)?;
        let spec = MatMulSpec {
            m: g.m,
            k: g.k,
            n: g.n,
            a_strides: [g.a_row, 1],
            b_strides: [g.b_row, 1],
            batch: &g.batch,
            a_batch_strides: &g.a_batch_strides,
            b_batch_strides: &g.b_batch_strides,
        };
        let mut out = util::zeros(&outputs[0])?;
        for_dtype!(a.ty.dtype, T => matmul::matmul(util::data::<T>(a)?, util::data::<T>(b)?, util::data_mut::<T>(&mut out)?, &spec));
        Ok(vec![out])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        let g = self.geometry(&ctx.inputs[0].shape, &ctx.inputs[1].shape)?;
        let (batch, strides) = coalesce(&g.batch, &[g.a_batch_strides, g.b_batch_strides]);
        let (m, k, n) = (lit_usize(g.m), lit_usize(g.k), lit_usize(g.n));
        let (ra, rb) = (lit_isize(g.a_row), lit_isize(g.b_row));
        let (batch, sa, sb) = (
            usize_slice(&batch),
            isize_slice(&strides[0]),
            isize_slice(&strides[1]),
        );
        let (a, b, o) = (ctx.input(0), ctx.input(1), ctx.output(0));
        let spec = quote! {
            &rt::kernels::matmul::MatMulSpec {
                m: #m, k: #k, n: #n,
                a_strides: [#ra, 1], b_strides: [#rb, 1],
                batch: #batch, a_batch_strides: #sa, b_batch_strides: #sb,
            }
        };
        if ctx.inputs[0].dtype == DType::F32 {
            // The blocked GEMM reads both operands in place with these row strides; `mr` is
            // capped by the kernel the crate is compiled with.
            return Ok(quote! {
                rt::kernels::matmul::matmul_f32(#a, #b, #o, #spec,
                    rt::kernels::gemm::Tiles { mr: 16, kc: 256, mc: 256 });
            });
        }
        Ok(quote! { rt::kernels::matmul::matmul(#a, #b, #o, #spec); })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        let list = |p: &[usize]| format!("{p:?}").replace(' ', "");
        vec![
            ("a_perm", list(&self.a_perm)),
            ("b_perm", list(&self.b_perm)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::matmul::MatMul;
    use crate::ops::transpose::Transpose;

    /// Values `0, 1, 2, …` of a shape.
    fn iota(shape: Vec<usize>) -> Tensor {
        let n = shape.iter().product();
        Tensor::from_f32s(shape, (0..n).map(|x| x as f32 * 0.25 - 3.0).collect()).unwrap()
    }

    fn transposed(x: &Tensor, perm: &[usize]) -> Tensor {
        let t = Transpose {
            perm: perm.to_vec(),
        };
        let ty = t.infer(&[&x.ty]).unwrap();
        t.eval(&[x], &ty).unwrap().remove(0)
    }

    #[test]
    fn equals_transpose_then_matmul() {
        // Head split of both operands ([b, s, h, d] → [b, h, s, d]), a broadcast batch
        // operand, and an identity permutation on one side.
        type Case = (Vec<usize>, Vec<usize>, Vec<usize>, Vec<usize>);
        let cases: Vec<Case> = vec![
            (
                vec![1, 5, 3, 4],
                vec![0, 2, 1, 3],
                vec![1, 4, 3, 6],
                vec![0, 2, 1, 3],
            ),
            (
                vec![2, 3, 5, 4],
                vec![0, 1, 2, 3],
                vec![2, 4, 3, 6],
                vec![0, 2, 1, 3],
            ),
            (vec![3, 5, 4], vec![1, 0, 2], vec![4, 6], vec![0, 1]),
        ];
        for (sa, pa, sb, pb) in cases {
            let (a, b) = (iota(sa), iota(sb));
            let (ta, tb) = (transposed(&a, &pa), transposed(&b, &pb));
            let want_ty = MatMul {}.infer(&[&ta.ty, &tb.ty]).unwrap();
            let want = MatMul {}.eval(&[&ta, &tb], &want_ty).unwrap();
            let op = PermutedMatMul {
                a_perm: pa,
                b_perm: pb,
            };
            let ty = op.infer(&[&a.ty, &b.ty]).unwrap();
            assert_eq!(ty, want_ty);
            let got = op.eval(&[&a, &b], &ty).unwrap();
            assert_eq!(got[0].data.to_f64_vec(), want[0].data.to_f64_vec());
        }
    }

    #[test]
    fn refuses_a_permutation_that_moves_the_last_axis() {
        let a = TensorType::new(DType::F32, vec![2, 3, 4]);
        let op = PermutedMatMul {
            a_perm: vec![0, 2, 1],
            b_perm: vec![0, 1, 2],
        };
        assert!(op.infer(&[&a, &a]).is_err());
    }
}
