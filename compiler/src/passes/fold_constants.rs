//! Fold nodes whose inputs are all constants.
//!
//! Before: `y = Op(c1, c2)` with constant `c1`, `c2`. After: `y` is a constant computed by
//! the reference evaluator; the node is gone. Like import-time folding, outputs larger than
//! 1 MiB and twice their inputs stay ops (a broadcast must not bloat the weights).
use super::Pass;
use crate::error::{NodeRef, Result};
use crate::ir::{Graph, Tensor};

pub struct FoldConstants;

const FOLD_BYTES: usize = 1 << 20;

impl Pass for FoldConstants {
    fn name(&self) -> &'static str {
        "fold_constants"
    }

    fn run(&self, graph: &mut Graph) -> Result<bool> {
        let mut changed = false;
        let order = graph
            .topo_order()
            .map_err(|e| crate::Error::Internal(e.to_string()))?;
        for id in order {
            let node = graph.node(id);
            let Some(consts) = node
                .inputs
                .iter()
                .map(|&v| graph.constant(v).cloned())
                .collect::<Option<Vec<_>>>()
            else {
                continue;
            };
            let in_bytes: usize = consts.iter().map(|t| t.ty.size_bytes()).sum();
            let out_types: Vec<_> = node.outputs.iter().map(|&v| graph.ty(v).clone()).collect();
            let out_bytes: usize = out_types.iter().map(|t| t.size_bytes()).sum();
            if out_bytes > FOLD_BYTES.max(in_bytes.saturating_mul(2)) {
                continue;
            }
            let refs: Vec<&Tensor> = consts.iter().map(|t| t.as_ref()).collect();
            let outs = node.op.eval(&refs, &out_types).map_err(|e| {
                e.at(NodeRef {
                    name: node.name.clone(),
                    op_type: node.source_op.clone(),
                    opset: graph.opset,
                })
            })?;
            let outputs = node.outputs.clone();
            graph.remove_node(id);
            for (v, t) in outputs.into_iter().zip(outs) {
                graph.value_mut(v).constant = Some(std::sync::Arc::new(t));
            }
            changed = true;
        }
        if changed {
            graph.rebuild_edges();
        }
        Ok(changed)
    }
}
