//! Fold the transpose of the keys into a decode-shaped `Attention`, which then reads the keys
//! one per row (as a KV cache stores them) instead of a transposed copy made every step.
//!
//! Before: `kt = Transpose{perm swaps the last two axes}(k)`,
//! `o = Attention{key_rows=false}(q, kt, ...)` with `kt` read only there and at most
//! [`MAX_ROWS`] query rows per head. After: `o = Attention{key_rows=true}(q, k, ...)`.
//! Attention with more query rows keeps the transposed operand, which its GEMM path reads.
use super::fuse_linear::sole_consumer;
use super::{Pass, rewrite_each};
use crate::error::Result;
use crate::ir::Graph;
use crate::ops::Op;

/// Query rows per head up to which the keys are read as rows.
pub const MAX_ROWS: usize = 8;

pub struct FoldKeyTranspose;

impl Pass for FoldKeyTranspose {
    fn name(&self) -> &'static str {
        "fold_key_transpose"
    }

    fn run(&self, graph: &mut Graph) -> Result<bool> {
        rewrite_each(graph, |graph, id| {
            let node = graph.node(id);
            let Op::Attention(a) = &node.op else {
                return Ok(false);
            };
            if a.key_rows {
                return Ok(false);
            }
            let (q, kt) = (node.inputs[0], node.inputs[1]);
            let rank = graph.ty(q).rank();
            if rank < 2 || graph.ty(q).shape[rank - 2] > MAX_ROWS {
                return Ok(false);
            }
            let Some(t) = graph.value(kt).producer else {
                return Ok(false);
            };
            let Op::Transpose(tr) = &graph.node(t).op else {
                return Ok(false);
            };
            let swaps_last_two = tr.perm.len() == rank
                && tr.perm[..rank - 2].iter().enumerate().all(|(i, &p)| p == i)
                && tr.perm[rank - 2] == rank - 1
                && tr.perm[rank - 1] == rank - 2;
            if !swaps_last_two
                || sole_consumer(graph, kt) != Some(id)
                || graph.outputs.contains(&kt)
            {
                return Ok(false);
            }
            let k = graph.node(t).inputs[0];
            let mut folded = a.clone();
            folded.key_rows = true;
            let n = graph.node_mut(id);
            n.op = Op::Attention(folded);
            n.inputs[1] = k;
            graph.rebuild_edges();
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{DType, TensorType, printer::print};
    use crate::ops::attention::Attention;
    use crate::ops::transpose::Transpose;
    use runtime_core::kernels::gemm::Tiles;

    fn graph(sq: usize) -> Graph {
        let mut g = Graph::new(17);
        let f = |s: Vec<usize>| TensorType::new(DType::F32, s);
        let q = g.add_value("q", f(vec![1, 4, sq, 8]));
        let k = g.add_value("k", f(vec![1, 4, 16, 8]));
        let v = g.add_value("v", f(vec![1, 4, 16, 8]));
        g.inputs.extend([q, k, v]);
        let kt = g
            .add_node(
                "t",
                "Transpose",
                Op::Transpose(Transpose {
                    perm: vec![0, 1, 3, 2],
                }),
                vec![k],
                &["kt".into()],
            )
            .unwrap()
            .1[0];
        let att = Attention {
            mask: false,
            scale: 0.5,
            nan_to_zero: false,
            rows: 4,
            tiles: Tiles {
                mr: 4,
                kc: 64,
                mc: 64,
            },
            key_rows: false,
            live_offset: None,
        };
        let o = g
            .add_node(
                "att",
                "Attention",
                Op::Attention(att),
                vec![q, kt, v],
                &["o".into(), "att.scores".into()],
            )
            .unwrap()
            .1[0];
        g.outputs.push(o);
        g
    }

    #[test]
    fn decode_attention_reads_the_keys_as_rows() {
        let mut g = graph(2);
        assert!(FoldKeyTranspose.run(&mut g).unwrap());
        crate::passes::eliminate_dead_nodes::EliminateDeadNodes
            .run(&mut g)
            .unwrap();
        crate::ir::verify::verify(&g).unwrap();
        insta::assert_snapshot!(print(&g).unwrap());
    }

    #[test]
    fn many_query_rows_keep_the_transpose() {
        let mut g = graph(MAX_ROWS + 1);
        assert!(!FoldKeyTranspose.run(&mut g).unwrap());
    }
}
