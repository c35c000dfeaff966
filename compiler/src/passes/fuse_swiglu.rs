//! Fuse a SwiGLU feed-forward's gate and up projections and their product into one `Linear`.
//!
//! Before (after `fuse_linear_activation` folded the SiLU): `g = Linear{k, n, nr,
//! activation: Silu}(x, Wg.packed, bg?)`, `u = Linear{k, n, nr}(x, Wu.packed, bu?)`, `y =
//! Mul(g, u)` (either order), `g` and `u` read only by the `Mul`, the two `Linear`s alike in
//! `k`, `n`, `nr`, tiles and bias presence. After: `y = Linear{k, 2n, nr, parts: [n, n],
//! swiglu}(x, concat(Wg.packed, Wu.packed), concat(bg, bu)?)`: one row runs
//! `kernels::gemv::gemv_swiglu` (no gate/up intermediates in the arena), more rows run the
//! two GEMMs into the output and a scratch output, then the product. Runs before
//! `merge_linears`, whose merging needs equal activations.
//!
//! The same for two `QLinear`s alike also in activation quantization: `y, qa, qa_scales,
//! qa_zero_points = QLinear{k, 2n, nr, activation: Silu (the gate's), parts: [n, n],
//! swiglu}(x, concat(Wg.q8, Wu.q8), concat(bg, bu)?)`, `x` quantized once; one row runs
//! `kernels::qgemv::qgemv_swiglu`.
use super::fuse_linear::sole_consumer;
use super::merge_linears::{Packed, replace_by_merged};
use super::{Pass, rewrite_each};
use crate::error::Result;
use crate::ir::{Graph, NodeId};
use crate::ops::Op;
use crate::ops::binary::BinaryKind;
use runtime_core::kernels::gemm::Activation;

pub struct FuseSwiGlu;

/// A plain packed layer producing `node`'s input `i`, read only by `node`.
fn linear_feeding(graph: &Graph, node: NodeId, i: usize) -> Option<(NodeId, Packed)> {
    let v = graph.node(node).inputs[i];
    let producer = graph.value(v).producer?;
    if sole_consumer(graph, v) != Some(node) {
        return None;
    }
    Some((producer, Packed::plain(graph, producer)?))
}

/// The gate and up layers of a SwiGLU product `id`, gate first.
fn match_swiglu(graph: &Graph, id: NodeId) -> Option<[(NodeId, Packed); 2]> {
    let Op::Binary(b) = &graph.node(id).op else {
        return None;
    };
    if b.kind != BinaryKind::Mul || graph.node(id).inputs.len() != 2 {
        return None;
    }
    let a = linear_feeding(graph, id, 0)?;
    let c = linear_feeding(graph, id, 1)?;
    let (gate, up) = match (a.1.activation(), c.1.activation()) {
        (Activation::Silu, Activation::None) => (a, c),
        (Activation::None, Activation::Silu) => (c, a),
        _ => return None,
    };
    // Alike but for the activation: the same key once the gate's SiLU is set on the up.
    let up_as_gate = match &up.1 {
        Packed::F32(l) => Packed::F32(crate::ops::linear::Linear {
            activation: Activation::Silu,
            ..l.clone()
        }),
        Packed::I8(l) => Packed::I8(crate::ops::qlinear::QLinear {
            activation: Activation::Silu,
            ..l.clone()
        }),
    };
    let alike = gate.1.key() == up_as_gate.key()
        && gate.1.n() == up.1.n()
        && graph.node(gate.0).inputs[0] == graph.node(up.0).inputs[0];
    let out = graph.node(id).outputs[0];
    (alike && graph.ty(out) == graph.ty(graph.node(gate.0).outputs[0])).then_some([gate, up])
}

impl Pass for FuseSwiGlu {
    fn name(&self) -> &'static str {
        "fuse_swiglu"
    }

    fn run(&self, graph: &mut Graph) -> Result<bool> {
        rewrite_each(graph, |graph, id| {
            let Some([(gate, g), (up, _)]) = match_swiglu(graph, id) else {
                return Ok(false);
            };
            let out = graph.node(id).outputs[0];
            graph.remove_node(id);
            let parts = (vec![g.n(), g.n()], true);
            replace_by_merged(graph, &[gate, up], &g, parts, &[out], "swiglu")?;
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::printer::print;
    use crate::ir::{DType, Graph, Tensor, TensorType};
    use crate::ops::binary::Binary;
    use crate::passes::test_util::{linear, pack_for_x86};

    /// `y = Mul(Linear{silu}(x), Linear(x))` (operands swapped with `swap`) for `x: [rows,
    /// 3]`, `n = 5`, with biases, packed for `x86` (`int8`: quantized).
    fn ffn(rows: usize, swap: bool, int8: bool) -> Graph {
        let mut g = Graph::new(17);
        let x = g.add_value("x", TensorType::new(DType::F32, vec![rows, 3]));
        g.inputs.push(x);
        let mut outs = Vec::new();
        for (name, act) in [("gate", Activation::Silu), ("up", Activation::None)] {
            let w: Vec<f32> = (0..15).map(|i| (i as f32 - 7.0) * 0.13).collect();
            let b: Vec<f32> = (0..5).map(|i| i as f32 * 0.2 - 0.3).collect();
            outs.push(linear(&mut g, name, x, (3, 5), w, Some(b), act));
        }
        if swap {
            outs.reverse();
        }
        let mul = Op::Binary(Binary {
            kind: BinaryKind::Mul,
        });
        let (_, y) = g.add_node("mul", "Mul", mul, outs, &["y".into()]).unwrap();
        g.outputs.push(y[0]);
        pack_for_x86(&mut g, int8);
        g
    }

    fn fused(mut g: Graph) -> Graph {
        assert!(FuseSwiGlu.run(&mut g).unwrap());
        crate::passes::eliminate_dead_nodes::EliminateDeadNodes
            .run(&mut g)
            .unwrap();
        crate::ir::verify::verify(&g).unwrap();
        assert_eq!(g.node_count(), 1);
        g
    }

    #[test]
    fn gate_up_and_product_become_one_linear() {
        insta::assert_snapshot!(print(&fused(ffn(1, false, false))).unwrap());
    }

    #[test]
    fn int8_gate_up_and_product_become_one_qlinear() {
        insta::assert_snapshot!(print(&fused(ffn(1, false, true))).unwrap());
    }

    #[test]
    fn fused_output_equals_the_unfused_for_one_and_many_rows() {
        for int8 in [false, true] {
            for (rows, swap) in [(1, false), (1, true), (4, false), (4, true)] {
                let x: Vec<f32> = (0..rows * 3).map(|i| i as f32 * 0.37 - 1.1).collect();
                let x = Tensor::from_f32s(vec![rows, 3], x).unwrap();
                let g = ffn(rows, swap, int8);
                let want = crate::eval::evaluate(&g, std::slice::from_ref(&x)).unwrap();
                let got = crate::eval::evaluate(&fused(g), &[x]).unwrap();
                assert_eq!(
                    got[0].data.to_f64_vec(),
                    want[0].data.to_f64_vec(),
                    "rows {rows} swap {swap} int8 {int8}"
                );
            }
        }
    }

    #[test]
    fn a_gate_read_elsewhere_is_left_alone() {
        for int8 in [false, true] {
            let mut g = ffn(1, false, int8);
            let mul = g
                .node_ids()
                .into_iter()
                .find(|&id| g.node(id).name == "mul")
                .unwrap();
            let gate_out = g.node(mul).inputs[0];
            g.outputs.push(gate_out);
            assert!(!FuseSwiGlu.run(&mut g).unwrap());
        }
    }
}
