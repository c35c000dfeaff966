//! Fold a residual add after a packed `Linear` into its epilogue.
//!
//! Before: `y = Linear{k, n, nr, epilogue e}(x, W.packed, b?)` (one part, no SwiGLU, no
//! residual yet), `z = Add(y, r)` (either order) with `r` a computed value of `y`'s exact type
//! (no broadcast), `y` read only by the `Add`. After: `z = Linear{.., e, residual}(x,
//! W.packed, b?, r)`, i.e. `z = act(x·W + b) + r`, the add done on the product's output while
//! it is still in cache (one row: right after `kernels::gemv::gemv`). The `Linear` keeps its
//! name. Weights still row-major (`nr == 0`) are left alone.
use super::fuse_linear::sole_consumer;
use super::{Pass, replace_nodes, rewrite_each};
use crate::error::Result;
use crate::ir::{Graph, NodeId, ValueId};
use crate::ops::Op;
use crate::ops::binary::BinaryKind;

pub struct FuseResidual;

/// For an `Add` node: the `Linear` feeding one operand (read only there) and the other
/// operand, the residual.
fn match_residual(graph: &Graph, add: NodeId) -> Option<(NodeId, ValueId)> {
    let node = graph.node(add);
    let Op::Binary(b) = &node.op else { return None };
    if b.kind != BinaryKind::Add || node.inputs.len() != 2 {
        return None;
    }
    let z = node.outputs[0];
    for (y, r) in [
        (node.inputs[0], node.inputs[1]),
        (node.inputs[1], node.inputs[0]),
    ] {
        let Some(lin) = graph.value(y).producer else {
            continue;
        };
        let Op::Linear(l) = &graph.node(lin).op else {
            continue;
        };
        let plain = l.nr != 0 && l.parts.is_empty() && !l.swiglu && !l.residual;
        if plain
            && y != r
            && sole_consumer(graph, y) == Some(add)
            && graph.constant(r).is_none()
            && graph.ty(r) == graph.ty(y)
            && graph.ty(z) == graph.ty(y)
        {
            return Some((lin, r));
        }
    }
    None
}

impl Pass for FuseResidual {
    fn name(&self) -> &'static str {
        "fuse_residual"
    }

    fn run(&self, graph: &mut Graph) -> Result<bool> {
        rewrite_each(graph, |graph, add| {
            let Some((lin, r)) = match_residual(graph, add) else {
                return Ok(false);
            };
            let Op::Linear(l) = &graph.node(lin).op else {
                return Ok(false);
            };
            let mut op = l.clone();
            op.residual = true;
            let node = graph.node(lin);
            let (name, source) = (node.name.clone(), node.source_op.clone());
            let mut inputs = node.inputs.clone();
            inputs.push(r);
            let z = graph.node(add).outputs[0];
            let (pass, op) = (self.name(), Op::Linear(op));
            replace_nodes(graph, pass, &[add, lin], z, name, &source, op, inputs, &[])?;
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
    use crate::ops::linear::Linear;
    use crate::passes::pack_linear_weights::PackLinearWeights;

    /// `z = Add(r, Linear(x))` for `x: [rows, 3]`, `r: [rows, 4]`, packed for `x86`.
    fn block(rows: usize) -> Graph {
        let mut g = Graph::new(17);
        let x = g.add_value("x", TensorType::new(DType::F32, vec![rows, 3]));
        let r = g.add_value("r", TensorType::new(DType::F32, vec![rows, 4]));
        g.inputs.extend([x, r]);
        let w: Vec<f32> = (0..12).map(|i| (i as f32 - 5.0) * 0.21).collect();
        let w = g.add_constant("o.w", Tensor::from_f32s(vec![3, 4], w).unwrap());
        let (_, y) = g
            .add_node(
                "o_proj",
                "MatMul",
                Op::Linear(Linear::new(3, 4)),
                vec![x, w],
                &["o.out".into()],
            )
            .unwrap();
        let add = Op::Binary(Binary {
            kind: BinaryKind::Add,
        });
        let (_, z) = g
            .add_node("add", "Add", add, vec![r, y[0]], &["z".into()])
            .unwrap();
        g.outputs.push(z[0]);
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
    fn residual_add_becomes_the_epilogue() {
        let mut g = block(1);
        assert!(FuseResidual.run(&mut g).unwrap());
        crate::ir::verify::verify(&g).unwrap();
        insta::assert_snapshot!(print(&g).unwrap());
    }

    #[test]
    fn fused_output_equals_the_unfused_for_one_and_many_rows() {
        for rows in [1, 3] {
            let x: Vec<f32> = (0..rows * 3).map(|i| i as f32 * 0.31 - 0.7).collect();
            let r: Vec<f32> = (0..rows * 4).map(|i| i as f32 * -0.11 + 0.4).collect();
            let inputs = [
                Tensor::from_f32s(vec![rows, 3], x).unwrap(),
                Tensor::from_f32s(vec![rows, 4], r).unwrap(),
            ];
            let g = block(rows);
            let want = crate::eval::evaluate(&g, &inputs).unwrap();
            let mut fused = g.clone();
            assert!(FuseResidual.run(&mut fused).unwrap());
            assert_eq!(fused.node_count(), 1);
            let got = crate::eval::evaluate(&fused, &inputs).unwrap();
            assert_eq!(got[0].data.to_f64_vec(), want[0].data.to_f64_vec());
        }
    }

    #[test]
    fn a_broadcast_add_is_left_alone() {
        let mut g = block(1);
        let r = g.inputs[1];
        g.value_mut(r).ty = TensorType::new(DType::F32, vec![4]);
        assert!(!FuseResidual.run(&mut g).unwrap());
    }
}
