//! Fold transposes that feed a `MatMul` into the product's operand layout: the GEMM reads the
//! untransposed tensor in place with a row stride instead of a transposed copy.
//!
//! Before: `xt = Transpose{perm}(x)`, `y = MatMul(xt, w)` (or `MatMul(w, xt)`, or both
//! operands transposed), where `perm` keeps the last axis last (e.g. a head split
//! `[b, s, h, d] → [b, h, s, d]`) and `xt` is read only there. After:
//! `y = PermutedMatMul{a_perm, b_perm}(x, w)` (identity permutation for an operand that was
//! not transposed). A transpose that moves the last axis (a key transposed for `Q·Kᵀ`) stays:
//! the GEMM reads `B` rows with unit column stride.
use super::fuse_linear::sole_consumer;
use super::{Pass, rewrite_each};
use crate::error::Result;
use crate::ir::Graph;
use crate::ops::Op;
use crate::ops::permuted_matmul::PermutedMatMul;

pub struct FoldMatMulTranspose;

impl Pass for FoldMatMulTranspose {
    fn name(&self) -> &'static str {
        "fold_matmul_transpose"
    }

    fn run(&self, graph: &mut Graph) -> Result<bool> {
        rewrite_each(graph, |graph, id| {
            let node = graph.node(id);
            let Op::MatMul(_) = node.op else {
                return Ok(false);
            };
            let mut inputs = node.inputs.clone();
            let mut perms: Vec<Vec<usize>> = Vec::with_capacity(2);
            let mut folded = false;
            for x in inputs.iter_mut() {
                let rank = graph.ty(*x).rank();
                let identity: Vec<usize> = (0..rank).collect();
                let from = graph
                    .value(*x)
                    .producer
                    .filter(|_| rank >= 2 && sole_consumer(graph, *x) == Some(id))
                    .and_then(|t| match &graph.node(t).op {
                        Op::Transpose(tr)
                            if tr.perm.len() == rank
                                && tr.perm.last() == Some(&(rank - 1))
                                && tr.perm != identity =>
                        {
                            Some((graph.node(t).inputs[0], tr.perm.clone()))
                        }
                        _ => None,
                    });
                match from {
                    Some((source, perm)) => {
                        *x = source;
                        perms.push(perm);
                        folded = true;
                    }
                    None => perms.push(identity),
                }
            }
            if !folded || perms.iter().any(|p| p.len() < 2) {
                return Ok(false);
            }
            let Ok([a_perm, b_perm]) = <[Vec<usize>; 2]>::try_from(perms) else {
                return Ok(false);
            };
            let n = graph.node_mut(id);
            n.op = Op::PermutedMatMul(PermutedMatMul { a_perm, b_perm });
            n.inputs = inputs;
            graph.rebuild_edges();
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{DType, TensorType, ValueId, printer::print};
    use crate::ops::matmul::MatMul;
    use crate::ops::transpose::Transpose;

    fn transpose(g: &mut Graph, name: &str, x: ValueId, perm: Vec<usize>) -> ValueId {
        g.add_node(
            name,
            "Transpose",
            Op::Transpose(Transpose { perm }),
            vec![x],
            &[format!("{name}.out")],
        )
        .unwrap()
        .1[0]
    }

    /// Attention's `P·V` outside fused attention: probabilities `[1, 4, 8, 8]` times the
    /// head split of `v: [1, 8, 4, 16]`; the keys' transpose `[0, 2, 3, 1]` for `Q·Kᵀ`.
    fn graph() -> Graph {
        let mut g = Graph::new(17);
        let f = |s: Vec<usize>| TensorType::new(DType::F32, s);
        let q = g.add_value("q", f(vec![1, 8, 4, 16]));
        let k = g.add_value("k", f(vec![1, 8, 4, 16]));
        let v = g.add_value("v", f(vec![1, 8, 4, 16]));
        g.inputs.extend([q, k, v]);
        let qh = transpose(&mut g, "q_heads", q, vec![0, 2, 1, 3]);
        let kt = transpose(&mut g, "k_heads_t", k, vec![0, 2, 3, 1]);
        let vh = transpose(&mut g, "v_heads", v, vec![0, 2, 1, 3]);
        let s = g
            .add_node(
                "scores",
                "MatMul",
                Op::MatMul(MatMul {}),
                vec![qh, kt],
                &["scores.out".into()],
            )
            .unwrap()
            .1[0];
        let o = g
            .add_node(
                "context",
                "MatMul",
                Op::MatMul(MatMul {}),
                vec![s, vh],
                &["context.out".into()],
            )
            .unwrap()
            .1[0];
        g.outputs.push(o);
        g
    }

    #[test]
    fn head_splits_fold_and_the_key_transpose_stays() {
        let mut g = graph();
        assert!(FoldMatMulTranspose.run(&mut g).unwrap());
        crate::passes::eliminate_dead_nodes::EliminateDeadNodes
            .run(&mut g)
            .unwrap();
        crate::ir::verify::verify(&g).unwrap();
        insta::assert_snapshot!(print(&g).unwrap());
    }

    #[test]
    fn a_transpose_read_elsewhere_stays() {
        let mut g = Graph::new(17);
        let f = |s: Vec<usize>| TensorType::new(DType::F32, s);
        let a = g.add_value("a", f(vec![3, 2, 4]));
        let b = g.add_value("b", f(vec![2, 4, 5]));
        g.inputs.extend([a, b]);
        let at = transpose(&mut g, "a_t", a, vec![1, 0, 2]);
        let y = g
            .add_node(
                "mm",
                "MatMul",
                Op::MatMul(MatMul {}),
                vec![at, b],
                &["mm.out".into()],
            )
            .unwrap()
            .1[0];
        g.outputs.extend([y, at]);
        assert!(!FoldMatMulTranspose.run(&mut g).unwrap());
    }
}
