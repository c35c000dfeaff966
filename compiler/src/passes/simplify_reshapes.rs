//! Canonicalise reshapes.
//!
//! Before: `y = Reshape[s](x)` with `x` already of shape `s` → after: readers of `y` read `x`.
//! Before: `z = Reshape[s2](Reshape[s1](x))` → after: `z = Reshape[s2](x)`.
//! Graph outputs are never redirected to a graph input or constant here (they keep their
//! own buffer).
use super::Pass;
use crate::error::Result;
use crate::ir::Graph;
use crate::ops::Op;

pub struct SimplifyReshapes;

impl Pass for SimplifyReshapes {
    fn name(&self) -> &'static str {
        "simplify_reshapes"
    }

    fn run(&self, graph: &mut Graph) -> Result<bool> {
        let mut changed = false;
        let order = graph
            .topo_order()
            .map_err(|e| crate::Error::Internal(e.to_string()))?;
        for id in order {
            let node = graph.node(id);
            let Op::Reshape(_) = node.op else { continue };
            let (x, y) = (node.inputs[0], node.outputs[0]);
            // Collapse a chain: read the first reshape's input directly.
            if let Some(p) = graph.value(x).producer
                && let Op::Reshape(_) = graph.node(p).op
            {
                let source = graph.node(p).inputs[0];
                graph.node_mut(id).inputs[0] = source;
                graph.rebuild_edges();
                changed = true;
            }
            let x = graph.node(id).inputs[0];
            if graph.ty(x).shape == graph.ty(y).shape && !graph.outputs.contains(&y) {
                graph.replace_uses(y, x);
                changed = true;
            }
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{DType, TensorType, printer::print};
    use crate::ops::reshape::Reshape;
    use crate::ops::unary::{Unary, UnaryKind};

    /// `x: f32[2,3]` through one Reshape per entry of `shapes` (named a, b, c, ..) into a
    /// Neg `y`, after the pass and dead-node elimination, printed.
    fn simplified(shapes: &[&[usize]]) -> String {
        let mut g = Graph::new(17);
        let mut v = g.add_value("x", TensorType::new(DType::F32, vec![2, 3]));
        g.inputs.push(v);
        for (name, shape) in ["a", "b", "c", "d"].iter().zip(shapes) {
            let op = Op::Reshape(Reshape {
                shape: shape.to_vec(),
            });
            v = g
                .add_node(*name, "Reshape", op, vec![v], &[(*name).into()])
                .unwrap()
                .1[0];
        }
        let neg = Op::Unary(Unary {
            kind: UnaryKind::Neg,
        });
        let (_, y) = g.add_node("y", "Neg", neg, vec![v], &["y".into()]).unwrap();
        g.outputs.push(y[0]);
        assert!(SimplifyReshapes.run(&mut g).unwrap());
        crate::passes::eliminate_dead_nodes::EliminateDeadNodes
            .run(&mut g)
            .unwrap();
        crate::ir::verify::verify(&g).unwrap();
        print(&g).unwrap()
    }

    #[test]
    fn collapses_chains_and_drops_identity_reshapes() {
        assert_eq!(
            simplified(&[&[6], &[3, 2], &[3, 2]]),
            "graph(%x: f32[2,3]) -> (%y)\n  c: %c: f32[3,2] = Reshape{shape=[3, 2]}(%x)\n  y: %y: f32[3,2] = Unary{kind=Neg}(%c)\n"
        );
    }

    #[test]
    fn a_round_trip_reshape_disappears() {
        assert_eq!(
            simplified(&[&[6], &[2, 3]]),
            "graph(%x: f32[2,3]) -> (%y)\n  y: %y: f32[2,3] = Unary{kind=Neg}(%x)\n"
        );
    }
}
