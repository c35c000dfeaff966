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
            if let Some(p) = graph.value(x).producer {
                if let Op::Reshape(_) = graph.node(p).op {
                    let source = graph.node(p).inputs[0];
                    graph.node_mut(id).inputs[0] = source;
                    graph.rebuild_edges();
                    changed = true;
                }
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
