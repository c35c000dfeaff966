//! Remove nodes none of whose outputs is read.
//!
//! Before: `t = Op(x)` where nothing reads `t` and `t` is not a graph output.
//! After: the node is gone (repeated until nothing changes).
use super::Pass;
use crate::error::Result;
use crate::ir::Graph;
use std::collections::HashSet;

pub struct EliminateDeadNodes;

impl Pass for EliminateDeadNodes {
    fn name(&self) -> &'static str {
        "eliminate_dead_nodes"
    }

    fn run(&self, graph: &mut Graph) -> Result<bool> {
        let mut changed = false;
        loop {
            let mut read: HashSet<_> = graph.outputs.iter().copied().collect();
            for id in graph.node_ids() {
                read.extend(graph.node(id).inputs.iter().copied());
            }
            let dead: Vec<_> = graph
                .node_ids()
                .into_iter()
                .filter(|&id| graph.node(id).outputs.iter().all(|v| !read.contains(v)))
                .collect();
            if dead.is_empty() {
                break;
            }
            for id in dead {
                graph.remove_node(id);
            }
            changed = true;
        }
        if changed {
            graph.rebuild_edges();
        }
        Ok(changed)
    }
}
