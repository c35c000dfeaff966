//! Fold a residual add after a packed `Linear` into its epilogue.
//!
//! Before: `y = Linear{k, n, nr, epilogue e}(x, W.packed, b?)` (one part, no SwiGLU, no
//! residual yet), `z = Add(y, r)` (either order) with `r` a computed value of `y`'s exact type
//! (no broadcast), `y` read only by the `Add`. After: `z = Linear{.., e, residual}(x,
//! W.packed, b?, r)`, i.e. `z = act(x·W + b) + r`, the add done on the product's output while
//! it is still in cache (one row: right after `kernels::gemv::gemv`). The `Linear` keeps its
//! name. Weights still row-major (`nr == 0`) are left alone. A one-part `QLinear` takes its
//! residual the same way (`z, qa, qa_scales, qa_zero_points = QLinear{.., residual}(x, W.q8,
//! b?, r)`; one row: `kernels::qgemv::qgemv_residual`).
use super::fuse_linear::sole_consumer;
use super::merge_linears::Packed;
use super::{Pass, replace_nodes, rewrite_each};
use crate::error::Result;
use crate::ir::{Graph, NodeId, ValueId};
use crate::ops::Op;
use crate::ops::binary::BinaryKind;

pub struct FuseResidual;

/// For an `Add` node: the plain packed layer feeding one operand (read only there), its op,
/// and the other operand, the residual.
fn match_residual(graph: &Graph, add: NodeId) -> Option<(NodeId, Packed, ValueId)> {
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
        // Only the product itself (output 0), never a scratch output.
        if graph.node(lin).outputs.first() != Some(&y) {
            continue;
        }
        if let Some(p) = Packed::plain(graph, lin)
            && y != r
            && sole_consumer(graph, y) == Some(add)
            && graph.constant(r).is_none()
            && graph.ty(r) == graph.ty(y)
            && graph.ty(z) == graph.ty(y)
        {
            return Some((lin, p, r));
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
            let Some((lin, p, r)) = match_residual(graph, add) else {
                return Ok(false);
            };
            let node = graph.node(lin);
            let (name, source) = (node.name.clone(), node.source_op.clone());
            let mut inputs = node.inputs.clone();
            inputs.push(r);
            let z = graph.node(add).outputs[0];
            let (pass, op, extra) = (self.name(), p.with_residual(), p.scratch_suffixes());
            replace_nodes(
                graph,
                pass,
                &[add, lin],
                z,
                name,
                &source,
                op,
                inputs,
                extra,
            )?;
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
    use crate::passes::test_util::{linear, pack_for_x86};
    use runtime_core::kernels::gemm::Activation;

    /// `z = Add(r, Linear(x))` for `x: [rows, 3]`, `r: [rows, 4]`, packed for `x86`
    /// (`int8`: quantized).
    fn block(rows: usize, int8: bool) -> Graph {
        let mut g = Graph::new(17);
        let x = g.add_value("x", TensorType::new(DType::F32, vec![rows, 3]));
        let r = g.add_value("r", TensorType::new(DType::F32, vec![rows, 4]));
        g.inputs.extend([x, r]);
        let w: Vec<f32> = (0..12).map(|i| (i as f32 - 5.0) * 0.21).collect();
        let y = linear(&mut g, "o", x, (3, 4), w, None, Activation::None);
        let add = Op::Binary(Binary {
            kind: BinaryKind::Add,
        });
        let (_, z) = g
            .add_node("add", "Add", add, vec![r, y], &["z".into()])
            .unwrap();
        g.outputs.push(z[0]);
        pack_for_x86(&mut g, int8);
        g
    }

    fn fused(int8: bool) -> String {
        let mut g = block(1, int8);
        assert!(FuseResidual.run(&mut g).unwrap());
        crate::ir::verify::verify(&g).unwrap();
        print(&g).unwrap()
    }

    #[test]
    fn residual_add_becomes_the_epilogue() {
        insta::assert_snapshot!(fused(false));
    }

    #[test]
    fn int8_residual_add_becomes_the_epilogue() {
        insta::assert_snapshot!(fused(true));
    }

    #[test]
    fn fused_output_equals_the_unfused_for_one_and_many_rows() {
        for (rows, int8) in [(1, false), (3, false), (1, true), (3, true)] {
            let x: Vec<f32> = (0..rows * 3).map(|i| i as f32 * 0.31 - 0.7).collect();
            let r: Vec<f32> = (0..rows * 4).map(|i| i as f32 * -0.11 + 0.4).collect();
            let inputs = [
                Tensor::from_f32s(vec![rows, 3], x).unwrap(),
                Tensor::from_f32s(vec![rows, 4], r).unwrap(),
            ];
            let g = block(rows, int8);
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
        for int8 in [false, true] {
            let mut g = block(1, int8);
            let r = g.inputs[1];
            g.value_mut(r).ty = TensorType::new(DType::F32, vec![4]);
            assert!(!FuseResidual.run(&mut g).unwrap());
        }
    }
}
