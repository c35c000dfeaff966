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
use super::fuse_linear::sole_consumer;
use super::merge_linears::replace_by_merged;
use super::{Pass, rewrite_each};
use crate::error::{Error, Result};
use crate::ir::{Graph, NodeId};
use crate::ops::Op;
use crate::ops::binary::BinaryKind;
use crate::ops::linear::Linear;
use runtime_core::kernels::gemm::Activation;

pub struct FuseSwiGlu;

/// A single-part packed `Linear` producing `node`'s input `i`, read only by `node`.
fn linear_feeding(graph: &Graph, node: NodeId, i: usize) -> Option<(NodeId, Linear)> {
    let v = graph.node(node).inputs[i];
    let producer = graph.value(v).producer?;
    if sole_consumer(graph, v) != Some(node) {
        return None;
    }
    let Op::Linear(l) = &graph.node(producer).op else {
        return None;
    };
    let constant_operands = graph.node(producer).inputs[1..]
        .iter()
        .all(|&w| graph.constant(w).is_some());
    let plain = l.nr != 0 && l.parts.is_empty() && !l.swiglu && !l.residual;
    (plain && constant_operands).then(|| (producer, l.clone()))
}

/// The gate and up `Linear`s of a SwiGLU product `id`, gate first.
fn match_swiglu(graph: &Graph, id: NodeId) -> Option<[(NodeId, Linear); 2]> {
    let Op::Binary(b) = &graph.node(id).op else {
        return None;
    };
    if b.kind != BinaryKind::Mul || graph.node(id).inputs.len() != 2 {
        return None;
    }
    let a = linear_feeding(graph, id, 0)?;
    let c = linear_feeding(graph, id, 1)?;
    let (gate, up) = match (a.1.activation, c.1.activation) {
        (Activation::Silu, Activation::None) => (a, c),
        (Activation::None, Activation::Silu) => (c, a),
        _ => return None,
    };
    let (g, u) = (&gate.1, &up.1);
    let alike = g.k == u.k
        && g.n == u.n
        && g.nr == u.nr
        && g.tiles == u.tiles
        && g.bias == u.bias
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
            let mut op = g.clone();
            op.activation = Activation::None;
            op.parts = vec![g.n, g.n];
            op.n = 2 * g.n;
            op.swiglu = true;
            let out = graph.node(id).outputs[0];
            let name = graph.value(out).name.clone();
            graph.remove_node(id);
            let outs = replace_by_merged(graph, &[gate, up], op, vec![name], "swiglu")?;
            let new = outs
                .first()
                .copied()
                .ok_or_else(|| Error::Internal("fuse_swiglu: no output".into()))?;
            graph.replace_uses(out, new);
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::printer::print;
    use crate::ir::{DType, Tensor, TensorType};
    use crate::ops::binary::Binary;
    use crate::passes::pack_linear_weights::PackLinearWeights;

    /// `y = Mul(Linear{silu}(x), Linear(x))` (operands in `order`) for `x: [rows, 3]`,
    /// `n = 5`, with biases, packed for `x86`.
    fn ffn(rows: usize, swap: bool) -> Graph {
        let mut g = Graph::new(17);
        let x = g.add_value("x", TensorType::new(DType::F32, vec![rows, 3]));
        g.inputs.push(x);
        let mut outs = Vec::new();
        for (name, act) in [("gate", Activation::Silu), ("up", Activation::None)] {
            let w: Vec<f32> = (0..15).map(|i| (i as f32 - 7.0) * 0.13).collect();
            let w = g.add_constant(
                format!("{name}.w"),
                Tensor::from_f32s(vec![3, 5], w).unwrap(),
            );
            let b: Vec<f32> = (0..5).map(|i| i as f32 * 0.2 - 0.3).collect();
            let b = g.add_constant(format!("{name}.b"), Tensor::from_f32s(vec![5], b).unwrap());
            let mut op = Linear::new(3, 5);
            op.bias = true;
            op.activation = act;
            let (_, y) = g
                .add_node(
                    format!("{name}_proj"),
                    "MatMul",
                    Op::Linear(op),
                    vec![x, w, b],
                    &[format!("{name}.out")],
                )
                .unwrap();
            outs.push(y[0]);
        }
        if swap {
            outs.reverse();
        }
        let mul = Op::Binary(Binary {
            kind: BinaryKind::Mul,
        });
        let (_, y) = g.add_node("mul", "Mul", mul, outs, &["y".into()]).unwrap();
        g.outputs.push(y[0]);
        let tiling = crate::target::TargetProfile::load("x86")
            .unwrap()
            .gemm_tiling();
        PackLinearWeights { tiling }.run(&mut g).unwrap();
        crate::passes::eliminate_dead_nodes::EliminateDeadNodes
            .run(&mut g)
            .unwrap();
        g
    }

    #[test]
    fn gate_up_and_product_become_one_linear() {
        let mut g = ffn(1, false);
        assert!(FuseSwiGlu.run(&mut g).unwrap());
        crate::passes::eliminate_dead_nodes::EliminateDeadNodes
            .run(&mut g)
            .unwrap();
        crate::ir::verify::verify(&g).unwrap();
        insta::assert_snapshot!(print(&g).unwrap());
    }

    #[test]
    fn fused_output_equals_the_unfused_for_one_and_many_rows() {
        for (rows, swap) in [(1, false), (1, true), (4, false), (4, true)] {
            let x: Vec<f32> = (0..rows * 3).map(|i| i as f32 * 0.37 - 1.1).collect();
            let x = Tensor::from_f32s(vec![rows, 3], x).unwrap();
            let g = ffn(rows, swap);
            let want = crate::eval::evaluate(&g, std::slice::from_ref(&x)).unwrap();
            let mut fused = g.clone();
            assert!(FuseSwiGlu.run(&mut fused).unwrap());
            assert_eq!(fused.node_count(), 1);
            let got = crate::eval::evaluate(&fused, &[x]).unwrap();
            assert_eq!(got[0].data.to_f64_vec(), want[0].data.to_f64_vec());
        }
    }

    #[test]
    fn a_gate_read_elsewhere_is_left_alone() {
        let mut g = ffn(1, false);
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
