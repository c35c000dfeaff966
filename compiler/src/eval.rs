//! The reference evaluator: runs a graph op by op on heap buffers with runtime-core's
//! portable kernels. It is the constant folder's engine and the differential oracle.
use crate::error::{Error, NodeRef, Result};
use crate::ir::{Graph, Tensor, ValueId};
use std::collections::HashMap;
use std::sync::Arc;

/// Evaluate `graph` on `inputs` (one tensor per graph input, in order); returns one tensor
/// per graph output.
pub fn evaluate(graph: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    if inputs.len() != graph.inputs.len() {
        return Err(Error::Usage(format!(
            "expected {} inputs, got {}",
            graph.inputs.len(),
            inputs.len()
        )));
    }
    let mut values: HashMap<ValueId, Arc<Tensor>> = HashMap::new();
    for (&id, t) in graph.inputs.iter().zip(inputs) {
        let want = graph.ty(id);
        if &t.ty != want {
            return Err(Error::Usage(format!(
                "input `{}` must be {want}, got {}",
                graph.value(id).name,
                t.ty
            )));
        }
        values.insert(id, Arc::new(t.clone()));
    }
    // State starts as a model starts: zeroed.
    for state in &graph.states {
        let zero = Tensor::zeros(graph.ty(state.input).clone())
            .map_err(|e| Error::Internal(e.to_string()))?;
        values.insert(state.input, Arc::new(zero));
    }
    let fetch = |values: &HashMap<ValueId, Arc<Tensor>>, v: ValueId| -> Result<Arc<Tensor>> {
        if let Some(c) = graph.constant(v) {
            return Ok(c.clone());
        }
        values.get(&v).cloned().ok_or_else(|| {
            Error::Internal(format!(
                "evaluate: `{}` read before it was computed",
                graph.value(v).name
            ))
        })
    };
    let order = graph
        .topo_order()
        .map_err(|e| Error::Internal(e.to_string()))?;
    for id in order {
        let node = graph.node(id);
        let ins: Vec<Arc<Tensor>> = node
            .inputs
            .iter()
            .map(|&v| fetch(&values, v))
            .collect::<Result<_>>()?;
        let refs: Vec<&Tensor> = ins.iter().map(|t| t.as_ref()).collect();
        let out_types: Vec<_> = node.outputs.iter().map(|&v| graph.ty(v).clone()).collect();
        let outs = node.op.eval(&refs, &out_types).map_err(|e| {
            e.at(NodeRef {
                name: node.name.clone(),
                op_type: node.source_op.clone(),
                opset: graph.opset,
            })
        })?;
        for (&v, t) in node.outputs.iter().zip(outs) {
            values.insert(v, Arc::new(t));
        }
    }
    graph
        .outputs
        .iter()
        .map(|&v| fetch(&values, v).map(|t| t.as_ref().clone()))
        .collect()
}
