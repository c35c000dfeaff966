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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{DType, TensorType, printer::print};
    use crate::ops::Op;
    use crate::ops::binary::{Binary, BinaryKind};

    #[test]
    fn folds_a_constant_subexpression() {
        let mut g = Graph::new(17);
        let x = g.add_value("x", TensorType::new(DType::F32, vec![2]));
        g.inputs.push(x);
        let a = g.add_constant("a", Tensor::from_f32s(vec![2], vec![1.0, 2.0]).unwrap());
        let b = g.add_constant("b", Tensor::from_f32s(vec![2], vec![10.0, 20.0]).unwrap());
        let add = Op::Binary(Binary {
            kind: BinaryKind::Add,
        });
        let (_, c) = g
            .add_node("c", "Add", add.clone(), vec![a, b], &["c".into()])
            .unwrap();
        let (_, y) = g
            .add_node("y", "Add", add, vec![x, c[0]], &["y".into()])
            .unwrap();
        g.outputs.push(y[0]);
        assert!(FoldConstants.run(&mut g).unwrap());
        crate::ir::verify::verify(&g).unwrap();
        assert_eq!(
            print(&g).unwrap(),
            "graph(%x: f32[2]) -> (%y)\n  const %c: f32[2] = [11.0, 22.0]\n  y: %y: f32[2] = Binary{kind=Add}(%x, %c)\n"
        );
    }
}
