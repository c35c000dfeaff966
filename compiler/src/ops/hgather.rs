//! `HGather`: embedding lookup in a half-precision table (`--quantize f16`), widened to f32
//! rows — the table row-major, or read out of its tied classifier's `HLinear` blob so it is
//! stored once (made by `passes::quantize_f16` from a `Gather` on a constant table; no ONNX
//! op maps to it).
use super::OpDef;
use super::util::{self, EmitCtx, lit_usize};
use crate::error::OpError;
use crate::invalid;
use crate::ir::{DType, Tensor, TensorType};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::hgemm::gather::{
    gather_cols_h, gather_rows_h, pack_rows_h, packed_rows_h_bytes,
};
use runtime_core::kernels::hgemm::{self, HWeights};

/// Inputs: the table blob `u8[..]` (`packed_rows_h_bytes(rows, cols)`: half bits, row-major;
/// or, with `tied_nr`, the classifier's `hgemm::packed_h_bytes(cols, rows, nr)` blob of `Tᵀ`)
/// and `indices` (i64 or i32, any shape); output `f32[indices.shape ++ [cols]]`. Negative
/// indices count from the end; out-of-range ones are a run-time error naming the node.
#[derive(Debug, Clone, PartialEq)]
pub struct HGather {
    pub rows: usize,
    pub cols: usize,
    /// `Some(nr)`: the blob is the tied classifier's `HLinear` weight for `Tᵀ: [cols, rows]`
    /// packed for panel width `nr`, and rows are read as its columns.
    pub tied_nr: Option<usize>,
}

impl HGather {
    /// Bytes of the table blob.
    pub fn table_bytes(&self) -> usize {
        match self.tied_nr {
            Some(nr) => hgemm::packed_h_bytes(self.cols, self.rows, nr),
            None => packed_rows_h_bytes(self.rows, self.cols),
        }
    }
}

impl OpDef for HGather {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        if self.rows == 0 || self.cols == 0 || self.tied_nr == Some(0) {
            return invalid!(
                "rows {} / cols {} / tied_nr {:?} unsupported",
                self.rows,
                self.cols,
                self.tied_nr
            );
        }
        let table = TensorType::new(DType::U8, vec![self.table_bytes()]);
        Ok(vec![util::lookup_output(inputs, &table, self.cols)?])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let blob = util::data::<u8>(inputs[0])?;
        let mut out = util::zeros(&outputs[0])?;
        let o = util::data_mut::<f32>(&mut out)?;
        let (rows, cols, node) = (self.rows, self.cols, "HGather");
        let result = match (self.tied_nr, inputs[1].ty.dtype) {
            (Some(nr), dt) => {
                let w = HWeights::new(blob, cols, rows, nr);
                match dt {
                    DType::I32 => gather_cols_h(node, w, util::data::<i32>(inputs[1])?, o),
                    _ => gather_cols_h(node, w, util::data::<i64>(inputs[1])?, o),
                }
            }
            (None, DType::I32) => {
                gather_rows_h(node, blob, rows, cols, util::data::<i32>(inputs[1])?, o)
            }
            (None, _) => gather_rows_h(node, blob, rows, cols, util::data::<i64>(inputs[1])?, o),
        };
        result.map_err(|e| OpError::Invalid(e.to_string()))?;
        Ok(vec![out])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        let (rows, cols) = (lit_usize(self.rows), lit_usize(self.cols));
        let (t, i, o, name) = (ctx.input(0), ctx.input(1), ctx.output(0), ctx.name_lit());
        Ok(match self.tied_nr {
            Some(nr) => {
                let nr = lit_usize(nr);
                quote! {
                    rt::kernels::hgemm::gather::gather_cols_h(#name,
                        rt::kernels::hgemm::HWeights::new(#t, #cols, #rows, #nr), #i, #o)?;
                }
            }
            None => quote! {
                rt::kernels::hgemm::gather::gather_rows_h(#name, #t, #rows, #cols, #i, #o)?;
            },
        })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        let mut a = vec![
            ("rows", self.rows.to_string()),
            ("cols", self.cols.to_string()),
        ];
        if let Some(nr) = self.tied_nr {
            a.push(("tied", format!("classifier blob nr={nr}")));
        }
        a
    }
}

/// Round a row-major `f32[rows, cols]` table to half and store it row-major (build time).
pub fn pack_table(table: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; 2 * table.len()];
    pack_rows_h(table, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows looked up in the row-major half table and in a tied classifier blob equal the
    /// table's rows (values exact in half); a bad index, a blob of the wrong size and float
    /// indices are rejected.
    #[test]
    fn lookups_widen_rows_of_both_layouts() {
        let (rows, cols) = (5, 3);
        let t: Vec<f32> = (0..rows * cols).map(|v| v as f32 * 0.5 - 2.0).collect();
        let tt: Vec<f32> = (0..rows * cols)
            .map(|i| t[(i % rows) * cols + i / rows])
            .collect();
        let ids = Tensor::from_i64s(vec![2, 2], vec![4, 0, -1, 2]).unwrap();
        for tied_nr in [None, Some(4), Some(8)] {
            let op = HGather {
                rows,
                cols,
                tied_nr,
            };
            let blob = match tied_nr {
                None => pack_table(&t),
                Some(nr) => super::super::hlinear::pack_weight(&tt, cols, rows, nr),
            };
            let len = blob.len();
            let bt = Tensor::new(
                TensorType::new(DType::U8, vec![len]),
                crate::ir::Data::U8(blob),
            )
            .unwrap();
            let ty = op.infer(&[&bt.ty, &ids.ty]).unwrap();
            assert_eq!(ty[0].shape, vec![2, 2, 3]);
            let got = op.eval(&[&bt, &ids], &ty).unwrap()[0].data.to_f64_vec();
            let want: Vec<f64> = [4, 0, 4, 2]
                .iter()
                .flat_map(|&j| t[j * cols..(j + 1) * cols].iter().map(|&v| v as f64))
                .collect();
            assert_eq!(got, want, "{tied_nr:?}");
            let bad = Tensor::from_i64s(vec![1], vec![5]).unwrap();
            let ty = op.infer(&[&bt.ty, &bad.ty]).unwrap();
            assert!(op.eval(&[&bt, &bad], &ty).is_err());
            let short = TensorType::new(DType::U8, vec![len - 1]);
            assert!(op.infer(&[&short, &ids.ty]).is_err());
            let fids = TensorType::new(DType::F32, vec![2]);
            assert!(op.infer(&[&bt.ty, &fids]).is_err());
        }
    }
}
