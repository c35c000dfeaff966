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
            read.extend(graph.states.iter().map(|s| s.output));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{DType, TensorType, printer::print};
    use crate::ops::Op;
    use crate::ops::unary::{Unary, UnaryKind};

    #[test]
    fn removes_chains_nobody_reads() {
        let mut g = Graph::new(17);
        let x = g.add_value("x", TensorType::new(DType::F32, vec![3]));
        g.inputs.push(x);
        let relu = Op::Unary(Unary {
            kind: UnaryKind::Relu,
        });
        let (_, d1) = g
            .add_node("dead1", "Relu", relu.clone(), vec![x], &["d1".into()])
            .unwrap();
        g.add_node("dead2", "Relu", relu.clone(), vec![d1[0]], &["d2".into()])
            .unwrap();
        let (_, y) = g
            .add_node("live", "Relu", relu, vec![x], &["y".into()])
            .unwrap();
        g.outputs.push(y[0]);
        assert!(EliminateDeadNodes.run(&mut g).unwrap());
        crate::ir::verify::verify(&g).unwrap();
        assert_eq!(
            print(&g).unwrap(),
            "graph(%x: f32[3]) -> (%y)\n  live: %y: f32[3] = Unary{kind=Relu}(%x)\n"
        );
    }
}
