//! The IR verifier: run after import and after every pass in tests; codegen accepts only a
//! verified graph.
use super::graph::Graph;
use crate::error::{Error, Result};
use std::collections::HashSet;

/// Check structural and type invariants: acyclic, every read value defined before use,
/// recorded output types equal to re-inferred ones, outputs produced by their node, graph
/// outputs defined.
pub fn verify(graph: &Graph) -> Result<()> {
    let order = graph
        .topo_order()
        .map_err(|e| Error::Internal(format!("verify: {e}")))?;
    let mut defined: HashSet<_> = graph.inputs.iter().copied().collect();
    for state in &graph.states {
        if graph.value(state.input).producer.is_some() || graph.inputs.contains(&state.input) {
            return Err(Error::Internal(format!(
                "verify: state `{}` is read from a computed value or a graph input",
                state.name
            )));
        }
        if graph.ty(state.input) != graph.ty(state.output) {
            return Err(Error::Internal(format!(
                "verify: state `{}` is read as {} but written as {}",
                state.name,
                graph.ty(state.input),
                graph.ty(state.output)
            )));
        }
        defined.insert(state.input);
    }
    for &id in &order {
        let node = graph.node(id);
        for &input in &node.inputs {
            if input.0 as usize >= graph.value_count() {
                return Err(Error::Internal(format!(
                    "verify: node `{}` reads an unknown value",
                    node.name
                )));
            }
            if graph.constant(input).is_none() && !defined.contains(&input) {
                return Err(Error::Internal(format!(
                    "verify: node `{}` reads `{}` before it is defined",
                    node.name,
                    graph.value(input).name
                )));
            }
        }
        let in_types: Vec<_> = node.inputs.iter().map(|&v| graph.ty(v)).collect();
        let is_cast = matches!(node.op, crate::ops::Op::Cast(_));
        let touches_half = node
            .inputs
            .iter()
            .chain(&node.outputs)
            .any(|&v| graph.ty(v).dtype.is_half());
        if touches_half && !is_cast {
            return Err(Error::Internal(format!(
                "verify: node `{}` ({}) computes on a half-precision value; only Cast may",
                node.name,
                node.op.name()
            )));
        }
        let inferred = node.op.infer(&in_types).map_err(|e| {
            Error::Internal(format!(
                "verify: node `{}` no longer type-checks: {e}",
                node.name
            ))
        })?;
        let recorded: Vec<_> = node.outputs.iter().map(|&v| graph.ty(v).clone()).collect();
        if inferred != recorded {
            return Err(Error::Internal(format!(
                "verify: node `{}` records output types {:?} but infers {:?}",
                node.name, recorded, inferred
            )));
        }
        for &out in &node.outputs {
            if graph.value(out).producer != Some(id) {
                return Err(Error::Internal(format!(
                    "verify: output `{}` of node `{}` names another producer",
                    graph.value(out).name,
                    node.name
                )));
            }
            defined.insert(out);
        }
    }
    for state in &graph.states {
        if graph.value(state.output).producer.is_none() {
            return Err(Error::Internal(format!(
                "verify: state `{}` is never written",
                state.name
            )));
        }
    }
    for &out in &graph.outputs {
        if graph.constant(out).is_none() && !defined.contains(&out) {
            return Err(Error::Internal(format!(
                "verify: graph output `{}` is never defined",
                graph.value(out).name
            )));
        }
    }
    Ok(())
}
