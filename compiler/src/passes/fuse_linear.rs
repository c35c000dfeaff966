//! Turn a product with a constant weight, and the bias add after it, into one `Linear`.
//!
//! Before: `y = MatMul(x, W)` with constant `W: f32[k, n]`, then `z = Add(y, b)` (either
//! operand order) with constant `b` of `n` elements broadcast along the last axis, `y` read
//! only there. After: `z = Linear{k, n, bias}(x, W, b)` (the bias add runs in the GEMM's
//! epilogue). A MatMul without such an add still becomes a bias-free `Linear`.
use super::{Pass, replace_nodes, rewrite_each};
use crate::error::Result;
use crate::ir::{DType, Graph, NodeId, Tensor, ValueId};
use crate::ops::Op;
use crate::ops::linear::Linear;

pub struct FuseLinear;

/// The single node reading `v`, if `v` is not a graph output and has exactly one reader.
pub(crate) fn sole_consumer(graph: &Graph, v: ValueId) -> Option<NodeId> {
    if graph.use_count(v) != 1 || graph.outputs.contains(&v) {
        return None;
    }
    graph.consumers(v).first().copied()
}

/// `b` as an `n`-vector if it is a constant f32 that broadcasts along the last axis only.
fn bias_vector(graph: &Graph, b: ValueId, n: usize) -> Option<Tensor> {
    let t = graph.constant(b)?;
    let shape = &t.ty.shape;
    let trailing_ok = shape.last() == Some(&n) && shape.iter().rev().skip(1).all(|&d| d == 1);
    if t.ty.dtype != DType::F32 || !trailing_ok {
        return None;
    }
    Tensor::new(
        crate::ir::TensorType::new(DType::F32, vec![n]),
        t.data.clone(),
    )
    .ok()
}

impl Pass for FuseLinear {
    fn name(&self) -> &'static str {
        "fuse_linear"
    }

    fn run(&self, graph: &mut Graph) -> Result<bool> {
        rewrite_each(graph, |graph, id| {
            let node = graph.node(id);
            let Op::MatMul(_) = node.op else {
                return Ok(false);
            };
            let (x, w, y) = (node.inputs[0], node.inputs[1], node.outputs[0]);
            let wt = graph.ty(w);
            let Some(_) = graph.constant(w) else {
                return Ok(false);
            };
            if wt.dtype != DType::F32 || wt.rank() != 2 || graph.ty(x).rank() == 0 {
                return Ok(false);
            }
            let (k, n) = (wt.shape[0], wt.shape[1]);
            if graph.ty(x).shape.last() != Some(&k) {
                return Ok(false);
            }
            let mut op = Linear::new(k, n);
            let mut inputs = vec![x, w];
            let mut result = y;
            let mut add_node = None;
            if let Some(c) = sole_consumer(graph, y)
                && let Op::Binary(b) = &graph.node(c).op
                && b.kind == crate::ops::binary::BinaryKind::Add
            {
                let add = graph.node(c);
                let other = if add.inputs[0] == y {
                    add.inputs[1]
                } else {
                    add.inputs[0]
                };
                let add_out = add.outputs[0];
                let same_shape = graph.ty(add_out).shape == graph.ty(y).shape;
                if same_shape && let Some(bias) = bias_vector(graph, other, n) {
                    if graph.ty(other).shape == [n] {
                        inputs.push(other);
                    } else {
                        let name = format!("{}.bias", graph.value(other).name);
                        inputs.push(graph.add_constant(name, bias));
                    }
                    op.bias = true;
                    result = add_out;
                    add_node = Some(c);
                }
            }
            let name = format!("{}.linear", graph.node(id).name);
            let mut nodes = vec![id];
            nodes.extend(add_node);
            let (pass, op) = (self.name(), Op::Linear(op));
            replace_nodes(graph, pass, &nodes, result, name, "MatMul", op, inputs, &[])?;
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{TensorType, printer::print};
    use crate::ops::binary::{Binary, BinaryKind};
    use crate::ops::matmul::MatMul;

    #[test]
    fn matmul_and_bias_become_one_linear() {
        let mut g = Graph::new(17);
        let x = g.add_value("x", TensorType::new(DType::F32, vec![2, 3]));
        g.inputs.push(x);
        let w = g.add_constant("w", Tensor::from_f32s(vec![3, 4], vec![0.5; 12]).unwrap());
        let b = g.add_constant("b", Tensor::from_f32s(vec![1, 4], vec![1.0; 4]).unwrap());
        let (_, y) = g
            .add_node(
                "mm",
                "MatMul",
                Op::MatMul(MatMul {}),
                vec![x, w],
                &["y".into()],
            )
            .unwrap();
        let add = Op::Binary(Binary {
            kind: BinaryKind::Add,
        });
        let (_, z) = g
            .add_node("add", "Add", add, vec![b, y[0]], &["z".into()])
            .unwrap();
        g.outputs.push(z[0]);
        assert!(FuseLinear.run(&mut g).unwrap());
        crate::passes::eliminate_dead_nodes::EliminateDeadNodes
            .run(&mut g)
            .unwrap();
        crate::ir::verify::verify(&g).unwrap();
        insta::assert_snapshot!(print(&g).unwrap());
    }

    #[test]
    fn a_non_constant_weight_stays_a_matmul() {
        let mut g = Graph::new(17);
        let x = g.add_value("x", TensorType::new(DType::F32, vec![2, 3]));
        let w = g.add_value("w", TensorType::new(DType::F32, vec![3, 4]));
        g.inputs.extend([x, w]);
        let (_, y) = g
            .add_node(
                "mm",
                "MatMul",
                Op::MatMul(MatMul {}),
                vec![x, w],
                &["y".into()],
            )
            .unwrap();
        g.outputs.push(y[0]);
        assert!(!FuseLinear.run(&mut g).unwrap());
    }
}
