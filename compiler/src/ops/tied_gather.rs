//! `TiedGather`: embedding lookup whose table `T[rows, cols]` is read out of its tied
//! classifier's f32 weight `Tᵀ: [cols, rows]` in the GEMM's layout (made by
//! `passes::tie_float_embeddings` from a `Gather` on a constant table; no ONNX op maps to it).
use super::OpDef;
use super::util::{self, EmitCtx, expect_inputs, lit_usize};
use crate::error::OpError;
use crate::invalid;
use crate::ir::{DType, Tensor, TensorType};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::gemm::{self, BMatrix};
use runtime_core::kernels::tied_gather::gather_cols_f32;

/// Inputs: the classifier weight `f32[..]` (`Tᵀ` packed by `gemm::pack_b` for panel width
/// `nr`, `gemm::packed_len(cols, rows, nr)` values; row-major `f32[cols · rows]` when
/// `nr == 0`, the portable kernel's layout) and `indices` (i64 or i32, any shape); output
/// `f32[indices.shape ++ [cols]]`, the rows of `T`. Negative indices count from the end;
/// out-of-range ones are a run-time error naming the node.
#[derive(Debug, Clone, PartialEq)]
pub struct TiedGather {
    pub rows: usize,
    pub cols: usize,
    /// The classifier `Linear`'s panel width (0: row-major weight).
    pub nr: usize,
}

impl TiedGather {
    /// Values of the weight input.
    pub fn weight_len(&self) -> usize {
        if self.nr == 0 {
            self.rows * self.cols
        } else {
            gemm::packed_len(self.cols, self.rows, self.nr)
        }
    }
}

impl OpDef for TiedGather {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        expect_inputs(inputs, 2, 2)?;
        if self.rows == 0 || self.cols == 0 {
            return invalid!("rows {} / cols {} unsupported", self.rows, self.cols);
        }
        let weight = TensorType::new(DType::F32, vec![self.weight_len()]);
        let row_major = TensorType::new(DType::F32, vec![self.cols, self.rows]);
        if inputs[0] != &weight && !(self.nr == 0 && inputs[0] == &row_major) {
            return invalid!("classifier weight is {}, expected {weight}", inputs[0]);
        }
        let idx = inputs[1];
        if !matches!(idx.dtype, DType::I64 | DType::I32) {
            return invalid!("indices must be int64 or int32, got {}", idx.dtype);
        }
        let mut shape = idx.shape.clone();
        shape.push(self.cols);
        crate::ir::checked_numel(&shape)?;
        Ok(vec![TensorType::new(DType::F32, shape)])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let w = util::data::<f32>(inputs[0])?;
        let mut out = util::zeros(&outputs[0])?;
        let o = util::data_mut::<f32>(&mut out)?;
        let b = if self.nr == 0 {
            BMatrix::row_major(w, self.rows, gemm::native_nr())
        } else {
            BMatrix::packed(w, self.cols, self.nr)
        };
        let (k, n, node) = (self.cols, self.rows, "TiedGather");
        let result = if inputs[1].ty.dtype == DType::I32 {
            gather_cols_f32(node, b, k, n, util::data::<i32>(inputs[1])?, o)
        } else {
            gather_cols_f32(node, b, k, n, util::data::<i64>(inputs[1])?, o)
        };
        result.map_err(|e| OpError::Invalid(e.to_string()))?;
        Ok(vec![out])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        let (rows, cols) = (lit_usize(self.rows), lit_usize(self.cols));
        let (w, i, o, name) = (ctx.input(0), ctx.input(1), ctx.output(0), ctx.name_lit());
        let b = if self.nr == 0 {
            quote!(rt::kernels::gemm::BMatrix::row_major(#w, #rows, rt::kernels::gemm::native_nr()))
        } else {
            let nr = lit_usize(self.nr);
            quote!(rt::kernels::gemm::BMatrix::packed(#w, #cols, #nr))
        };
        Ok(quote! {
            rt::kernels::tied_gather::gather_cols_f32(#name, #b, #cols, #rows, #i, #o)?;
        })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("rows", self.rows.to_string()),
            ("cols", self.cols.to_string()),
            (
                "tied",
                if self.nr == 0 {
                    "classifier weight row-major".to_string()
                } else {
                    format!("classifier weight nr={}", self.nr)
                },
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows looked up in a packed `Tᵀ` equal the table's rows; a bad index, a weight of the
    /// wrong size and float indices are rejected.
    #[test]
    fn lookups_read_rows_of_the_packed_transpose() {
        let (rows, cols) = (5, 3);
        let t: Vec<f32> = (0..rows * cols).map(|v| v as f32 * 0.5 - 2.0).collect();
        let mut w = vec![0.0f32; rows * cols];
        for j in 0..rows {
            for p in 0..cols {
                w[p * rows + j] = t[j * cols + p];
            }
        }
        let ids = Tensor::from_i64s(vec![2, 2], vec![4, 0, -1, 2]).unwrap();
        for nr in [0, 4, 16] {
            let op = TiedGather { rows, cols, nr };
            let data = if nr == 0 {
                w.clone()
            } else {
                let mut p = vec![0.0f32; gemm::packed_len(cols, rows, nr)];
                gemm::pack_b(&w, cols, rows, nr, &mut p);
                p
            };
            let len = data.len();
            let wt = Tensor::from_f32s(vec![len], data).unwrap();
            let ty = op.infer(&[&wt.ty, &ids.ty]).unwrap();
            assert_eq!(ty[0].shape, vec![2, 2, 3]);
            let got = op.eval(&[&wt, &ids], &ty).unwrap()[0].data.to_f64_vec();
            let want: Vec<f64> = [4, 0, 4, 2]
                .iter()
                .flat_map(|&j| t[j * cols..(j + 1) * cols].iter().map(|&v| v as f64))
                .collect();
            assert_eq!(got, want, "nr {nr}");
            let bad = Tensor::from_i64s(vec![1], vec![5]).unwrap();
            let ty = op.infer(&[&wt.ty, &bad.ty]).unwrap();
            assert!(op.eval(&[&wt, &bad], &ty).is_err());
            let short = TensorType::new(DType::F32, vec![len - 1]);
            assert!(op.infer(&[&short, &ids.ty]).is_err());
            let fids = TensorType::new(DType::F32, vec![2]);
            assert!(op.infer(&[&wt.ty, &fids]).is_err());
        }
    }
}
