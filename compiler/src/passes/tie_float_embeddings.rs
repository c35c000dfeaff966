//! Store a float embedding table once when a classifier `Linear` multiplies by its transpose
//! (tied input/output embeddings): the `Gather` reads its rows as columns of the classifier's
//! weight, in whatever layout `pack_linear_weights` left it.
//!
//! Before: `e = Gather{axis=0}(T: f32[rows, cols], ids)` and
//! `y = Linear{k=cols, n=rows, nr}(x, W: f32[..], ..)` with `W` holding exactly `Tᵀ`
//! (bit for bit; packed by `gemm::pack_b` for `nr`, or row-major when `nr == 0`).
//! After: `e = TiedGather{rows, cols, nr}(W, ids)`; `T` is dropped when nothing else reads it.
//! Runs right after `pack_linear_weights`, before passes that merge `Linear` weights.
use super::Pass;
use super::quantize_int8::{embedding_table, replace_node};
use crate::error::{Error, Result};
use crate::ir::{Data, Graph, ValueId};
use crate::ops::Op;
use crate::ops::tied_gather::TiedGather;
use runtime_core::kernels::gemm::{self, BMatrix};

pub struct TieFloatEmbeddings;

/// The weight of a single-output float `Linear` `[rows → cols]`-shaped as `Tᵀ` for
/// `T: [rows, cols]` whose elements equal `table`'s transpose bit for bit, with its `nr`.
fn tied_classifier(
    graph: &Graph,
    table: &[f32],
    rows: usize,
    cols: usize,
) -> Option<(ValueId, usize)> {
    graph.node_ids().into_iter().find_map(|id| {
        let node = graph.node(id);
        let Op::Linear(l) = &node.op else { return None };
        if l.k != cols || l.n != rows || !l.parts.is_empty() || l.swiglu {
            return None;
        }
        let Data::F32(w) = &graph.constant(node.inputs[1])?.data else {
            return None;
        };
        let b = if l.nr == 0 {
            BMatrix::row_major(w, rows, gemm::native_nr())
        } else {
            BMatrix::packed(w, cols, l.nr)
        };
        let len = if l.nr == 0 {
            rows * cols
        } else {
            gemm::packed_len(cols, rows, l.nr)
        };
        let same = w.len() == len
            && (0..rows).all(|j| {
                (0..cols).all(|p| w[b.index(p, j)].to_bits() == table[j * cols + p].to_bits())
            });
        same.then_some((node.inputs[1], l.nr))
    })
}

impl Pass for TieFloatEmbeddings {
    fn name(&self) -> &'static str {
        "tie_float_embeddings"
    }

    fn run(&self, graph: &mut Graph) -> Result<bool> {
        let order = graph
            .topo_order()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let mut changed = false;
        for id in order {
            let Some((rows, cols)) = embedding_table(graph, id) else {
                continue;
            };
            let node = graph.node(id);
            let Some(Data::F32(table)) = graph.constant(node.inputs[0]).map(|t| &t.data) else {
                continue;
            };
            let Some((w, nr)) = tied_classifier(graph, table, rows, cols) else {
                continue;
            };
            let ids = node.inputs[1];
            let op = Op::TiedGather(TiedGather { rows, cols, nr });
            replace_node(graph, id, op, vec![w, ids], &[])?;
            changed = true;
        }
        if changed {
            graph.rebuild_edges();
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::printer::print;
    use crate::ir::{DType, Graph, Tensor, TensorType};
    use crate::ops::gather::Gather;
    use crate::ops::linear::Linear;
    use crate::passes::eliminate_dead_nodes::EliminateDeadNodes;
    use crate::passes::pack_linear_weights::PackLinearWeights;

    /// An embedding `T: [5, 3]` and a classifier over `W` (`Tᵀ`, or `Tᵀ` with one element
    /// changed in its last bit when `tied` is false).
    fn model(tied: bool) -> Graph {
        let (rows, cols) = (5, 3);
        let mut g = Graph::new(17);
        let ids = g.add_value("ids", TensorType::new(DType::I64, vec![2]));
        g.inputs.push(ids);
        let t: Vec<f32> = (0..rows * cols).map(|v| v as f32 * 0.25 - 1.0).collect();
        let mut w = vec![0.0f32; rows * cols];
        for j in 0..rows {
            for p in 0..cols {
                w[p * rows + j] = t[j * cols + p];
            }
        }
        if !tied {
            w[7] = f32::from_bits(w[7].to_bits() ^ 1);
        }
        let t = g.add_constant(
            "embed.weight",
            Tensor::from_f32s(vec![rows, cols], t).unwrap(),
        );
        let w = g.add_constant(
            "lm_head.weight",
            Tensor::from_f32s(vec![cols, rows], w).unwrap(),
        );
        let gather = Op::Gather(Gather { axis: 0 });
        let (_, e) = g
            .add_node("embed", "Gather", gather, vec![t, ids], &["e".into()])
            .unwrap();
        let lin = Op::Linear(Linear::new(cols, rows));
        let (_, y) = g
            .add_node("lm_head", "MatMul", lin, vec![e[0], w], &["logits".into()])
            .unwrap();
        g.outputs.push(y[0]);
        g
    }

    fn packed(mut g: Graph, target: &str) -> Graph {
        let tiling = crate::target::TargetProfile::load(target)
            .unwrap()
            .gemm_tiling();
        PackLinearWeights { tiling }.run(&mut g).unwrap();
        g
    }

    #[test]
    fn tied_table_is_read_from_the_packed_classifier() {
        let mut g = packed(model(true), "x86");
        let want = crate::eval::evaluate(&g, &[Tensor::from_i64s(vec![2], vec![4, -5]).unwrap()]);
        assert!(TieFloatEmbeddings.run(&mut g).unwrap());
        EliminateDeadNodes.run(&mut g).unwrap();
        g.drop_unread_constants();
        crate::ir::verify::verify(&g).unwrap();
        insta::assert_snapshot!(print(&g).unwrap());
        let got = crate::eval::evaluate(&g, &[Tensor::from_i64s(vec![2], vec![4, -5]).unwrap()]);
        assert_eq!(got.unwrap(), want.unwrap());
    }

    #[test]
    fn row_major_portable_weight_is_tied_too() {
        let mut g = packed(model(true), "cortex-m55");
        assert!(TieFloatEmbeddings.run(&mut g).unwrap());
        assert!(
            g.node_ids()
                .iter()
                .any(|&id| matches!(g.node(id).op, Op::TiedGather(TiedGather { nr: 0, .. })))
        );
    }

    #[test]
    fn a_table_differing_in_one_bit_stays_a_gather() {
        let mut g = packed(model(false), "x86");
        assert!(!TieFloatEmbeddings.run(&mut g).unwrap());
    }
}
