//! `QGather`: embedding lookup in a quantized table — int8 per row or int4 per (row, group
//! of columns) — dequantized to f32 rows (made by the quantization passes from a `Gather` on
//! a constant table; no ONNX op maps to it).
use super::OpDef;
use super::q4linear;
use super::util::{self, EmitCtx, expect_inputs, lit_usize};
use crate::error::OpError;
use crate::invalid;
use crate::ir::{DType, Tensor, TensorType};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::qgemm;
use runtime_core::kernels::tied_gather::{gather_cols_i8, gather_cols_q4};

/// Inputs: the table blob `u8[..]` (`qgemm::packed_rows_i8_bytes(rows, cols)` for 8 bits,
/// `qgemm::packed_rows_q4_bytes(rows, cols, group, f16_scales)` for 4) and `indices`
/// (i64 or i32, any shape); output `f32[indices.shape ++ [cols]]`. Negative indices count
/// from the end; out-of-range ones are a run-time error naming the node.
#[derive(Debug, Clone, PartialEq)]
pub struct QGather {
    pub rows: usize,
    pub cols: usize,
    /// 8 or 4.
    pub bits: u8,
    /// Columns per scale (4 bits only; `cols` for 8 bits).
    pub group: usize,
    /// 4 bits only: scales stored as IEEE half.
    pub f16_scales: bool,
    /// `Some(nr)` when the table is tied to a classifier: the blob is that layer's weight
    /// for `Tᵀ: [cols, rows]` packed for panel width `nr` — a `Q4Linear` blob with zero
    /// points and groups of `group` along `cols` (4 bits), a `QLinear` blob (8 bits) — and
    /// rows are read as its columns (`runtime_core::kernels::tied_gather`), so the table is
    /// stored once.
    pub tied_nr: Option<usize>,
}

impl QGather {
    /// An int8 table read from its tied classifier's `QLinear` blob packed for `nr`.
    pub fn tied_i8(rows: usize, cols: usize, nr: usize) -> QGather {
        QGather {
            rows,
            cols,
            bits: 8,
            group: cols,
            f16_scales: false,
            tied_nr: Some(nr),
        }
    }

    /// Bytes of the table blob.
    pub fn table_bytes(&self) -> usize {
        match (self.tied_nr, self.bits) {
            (Some(nr), 8) => return qgemm::packed_i8_bytes(self.cols, self.rows, nr),
            (Some(nr), _) => {
                return qgemm::packed_q4_bytes(
                    self.cols,
                    self.rows,
                    self.group,
                    nr,
                    self.f16_scales,
                    true,
                );
            }
            (None, _) => {}
        }
        if self.bits == 8 {
            qgemm::packed_rows_i8_bytes(self.rows, self.cols)
        } else {
            qgemm::packed_rows_q4_bytes(self.rows, self.cols, self.group, self.f16_scales)
        }
    }
}

impl OpDef for QGather {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        expect_inputs(inputs, 2, 2)?;
        let tied_ok = match self.tied_nr {
            Some(nr) => {
                (1..=qgemm::MAX_NR).contains(&nr) && (self.bits == 8 || nr.is_multiple_of(2))
            }
            None => true,
        };
        if !matches!(self.bits, 4 | 8)
            || !tied_ok
            || self.rows == 0
            || self.cols == 0
            || self.group == 0
        {
            return invalid!(
                "bits {} / rows {} / cols {} / group {} unsupported",
                self.bits,
                self.rows,
                self.cols,
                self.group
            );
        }
        let table = TensorType::new(DType::U8, vec![self.table_bytes()]);
        if inputs[0] != &table {
            return invalid!("table blob is {}, expected {table}", inputs[0]);
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
        let blob = util::data::<u8>(inputs[0])?;
        let mut out = util::zeros(&outputs[0])?;
        let o = util::data_mut::<f32>(&mut out)?;
        let (rows, cols, group, f16) = (self.rows, self.cols, self.group, self.f16_scales);
        let node = "QGather";
        if let Some(nr) = self.tied_nr {
            let i32_ids = inputs[1].ty.dtype == DType::I32;
            let result = if self.bits == 8 {
                let w = qgemm::QWeights::new(blob, cols, rows, nr);
                if i32_ids {
                    gather_cols_i8(node, w, util::data::<i32>(inputs[1])?, o)
                } else {
                    gather_cols_i8(node, w, util::data::<i64>(inputs[1])?, o)
                }
            } else {
                let w = qgemm::Q4Weights::new(blob, cols, rows, group, nr, f16, true);
                if i32_ids {
                    gather_cols_q4(node, w, util::data::<i32>(inputs[1])?, o)
                } else {
                    gather_cols_q4(node, w, util::data::<i64>(inputs[1])?, o)
                }
            };
            result.map_err(|e| OpError::Invalid(e.to_string()))?;
            return Ok(vec![out]);
        }
        let result = match (inputs[1].ty.dtype, self.bits) {
            (DType::I32, 8) => {
                qgemm::gather_rows_i8(node, blob, rows, cols, util::data::<i32>(inputs[1])?, o)
            }
            (_, 8) => {
                qgemm::gather_rows_i8(node, blob, rows, cols, util::data::<i64>(inputs[1])?, o)
            }
            (DType::I32, _) => qgemm::gather_rows_q4(
                node,
                blob,
                rows,
                cols,
                group,
                f16,
                util::data::<i32>(inputs[1])?,
                o,
            ),
            _ => qgemm::gather_rows_q4(
                node,
                blob,
                rows,
                cols,
                group,
                f16,
                util::data::<i64>(inputs[1])?,
                o,
            ),
        };
        result.map_err(|e| OpError::Invalid(e.to_string()))?;
        Ok(vec![out])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        let (rows, cols) = (lit_usize(self.rows), lit_usize(self.cols));
        let (t, i, o, name) = (ctx.input(0), ctx.input(1), ctx.output(0), ctx.name_lit());
        Ok(if let (Some(nr), 8) = (self.tied_nr, self.bits) {
            let nr = lit_usize(nr);
            quote! {
                rt::kernels::tied_gather::gather_cols_i8(#name,
                    rt::kernels::qgemm::QWeights::new(#t, #cols, #rows, #nr), #i, #o)?;
            }
        } else if let Some(nr) = self.tied_nr {
            let (group, nr, f16) = (lit_usize(self.group), lit_usize(nr), self.f16_scales);
            quote! {
                rt::kernels::tied_gather::gather_cols_q4(#name,
                    rt::kernels::qgemm::Q4Weights::new(#t, #cols, #rows, #group, #nr, #f16, true),
                    #i, #o)?;
            }
        } else if self.bits == 8 {
            quote! {
                rt::kernels::qgemm::gather_rows_i8(#name, #t, #rows, #cols, #i, #o)?;
            }
        } else {
            let (group, f16) = (lit_usize(self.group), self.f16_scales);
            quote! {
                rt::kernels::qgemm::gather_rows_q4(#name, #t, #rows, #cols, #group, #f16, #i, #o)?;
            }
        })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        let mut a = vec![
            ("rows", self.rows.to_string()),
            ("cols", self.cols.to_string()),
            ("bits", self.bits.to_string()),
        ];
        if self.bits == 4 {
            a.push(("group", self.group.to_string()));
            a.push((
                "scales",
                if self.f16_scales { "f16" } else { "f32" }.to_string(),
            ));
        }
        if let Some(nr) = self.tied_nr {
            a.push(("tied", format!("classifier blob nr={nr}")));
        }
        a
    }
}

/// Quantize and pack a row-major `f32[rows, cols]` table for `op` (build time).
pub fn pack_table(op: &QGather, table: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; op.table_bytes()];
    if op.bits == 8 {
        qgemm::pack_rows_i8(table, op.rows, op.cols, &mut out);
    } else {
        pack_rows_q4(op, table, &mut out);
    }
    out
}

/// The int4 table layout of `qgemm::pack_rows_q4` (scales, then two columns per byte), each
/// (row, group) quantized by [`q4linear::quantize_group`] (symmetric: the gather kernel has
/// no zero points) instead of the plain `max|v| / 7`.
fn pack_rows_q4(op: &QGather, table: &[f32], out: &mut [u8]) {
    let (rows, cols, group) = (op.rows, op.cols, op.group);
    let gpr = cols.div_ceil(group);
    let stride = cols.div_ceil(2);
    let base = out.len() - rows * stride;
    for r in 0..rows {
        for gi in 0..gpr {
            let span = gi * group..cols.min((gi + 1) * group);
            let vals = &table[r * cols + span.start..r * cols + span.end];
            let (scale, _, levels) =
                q4linear::quantize_group(vals, op.f16_scales, q4linear::Q4Grid::Symmetric);
            let e = r * gpr + gi;
            if op.f16_scales {
                let h = runtime_core::math::f32_to_f16(scale);
                out[2 * e..2 * e + 2].copy_from_slice(&h.to_le_bytes());
            } else {
                out[4 * e..4 * e + 4].copy_from_slice(&scale.to_le_bytes());
            }
            for (col, l) in span.zip(levels) {
                out[base + r * stride + col / 2] |= if col % 2 == 0 { l } else { l << 4 };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_dequantize_rows_and_bad_index_fails() {
        // Rows whose values sit on their grids: row max 127·2⁻⁴ (int8), group max 7·2⁻² (int4).
        let table: Vec<f32> = vec![
            127.0 / 16.0,
            -1.0 / 16.0,
            0.0,
            3.0 / 16.0,
            -7.0 / 4.0,
            1.0 / 4.0,
            7.0 / 4.0,
            0.0,
        ];
        let ids = Tensor::from_i64s(vec![1, 3], vec![1, 0, -1]).unwrap();
        for (bits, group) in [(8u8, 4usize), (4, 2)] {
            let op = QGather {
                rows: 2,
                cols: 4,
                bits,
                group,
                f16_scales: true,
                tied_nr: None,
            };
            let blob = pack_table(&op, &table);
            let bt = Tensor::new(
                TensorType::new(DType::U8, vec![blob.len()]),
                crate::ir::Data::U8(blob),
            )
            .unwrap();
            let ty = op.infer(&[&bt.ty, &ids.ty]).unwrap();
            assert_eq!(ty[0].shape, vec![1, 3, 4]);
            let got = op.eval(&[&bt, &ids], &ty).unwrap()[0].data.to_f64_vec();
            let rows = [&table[4..8], &table[0..4], &table[4..8]];
            let want: Vec<f64> = rows
                .iter()
                .flat_map(|r| r.iter().map(|&v| v as f64))
                .collect();
            if bits == 4 {
                // Row 0 is on the int4 grid only in its second group; check row 1.
                assert_eq!(&got[..4], &want[..4]);
                assert_eq!(&got[8..], &want[8..]);
            } else {
                // Row 0 is on its int8 grid; row 1 is within half a step (7/4 / 127 / 2).
                assert_eq!(&got[4..8], &want[4..8]);
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() <= 7.0 / 4.0 / 254.0, "{got:?} vs {want:?}");
                }
            }
            let bad = Tensor::from_i64s(vec![1], vec![2]).unwrap();
            let ty = op.infer(&[&bt.ty, &bad.ty]).unwrap();
            assert!(op.eval(&[&bt, &bad], &ty).is_err());
        }
    }
}
