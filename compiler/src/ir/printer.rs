//! A stable textual form of the IR, used by pass snapshots and `slm-aot inspect --ir`.
//!
//! ```text
//! graph(%x: f32[1,4]) -> (%y)
//!   const %w: f32[4,4]
//!   fc: %y: f32[1,4] = MatMul(%x, %w)
//! ```
use super::graph::{Graph, ValueId};
use crate::error::OpError;

fn value_ref(graph: &Graph, v: ValueId) -> String {
    format!("%{}", graph.value(v).name)
}

/// Print the graph in schedule order. Fails only on a cyclic graph.
pub fn print(graph: &Graph) -> Result<String, OpError> {
    let order = graph.topo_order()?;
    let mut out = String::new();
    let inputs: Vec<String> = graph
        .inputs
        .iter()
        .map(|&v| format!("{}: {}", value_ref(graph, v), graph.ty(v)))
        .collect();
    let outputs: Vec<String> = graph
        .outputs
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let value = value_ref(graph, v);
            if graph.output_name(i) == graph.value(v).name {
                value
            } else {
                format!("{}={value}", graph.output_name(i))
            }
        })
        .collect();
    out.push_str(&format!(
        "graph({}) -> ({})\n",
        inputs.join(", "),
        outputs.join(", ")
    ));
    for state in &graph.states {
        out.push_str(&format!(
            "  state {}: {} -> {} (slots on axis {})\n",
            value_ref(graph, state.input),
            graph.ty(state.input),
            value_ref(graph, state.output),
            state.axis
        ));
    }
    for v in graph.used_constants(&order) {
        let shown = match graph.constant(v) {
            Some(t) if t.ty.numel() <= 8 => format!(" = {:?}", t.data.to_f64_vec()),
            _ => String::new(),
        };
        out.push_str(&format!(
            "  const {}: {}{}\n",
            value_ref(graph, v),
            graph.ty(v),
            shown
        ));
    }
    for id in order {
        let node = graph.node(id);
        let outs: Vec<String> = node
            .outputs
            .iter()
            .map(|&v| format!("{}: {}", value_ref(graph, v), graph.ty(v)))
            .collect();
        let ins: Vec<String> = node.inputs.iter().map(|&v| value_ref(graph, v)).collect();
        let attrs = node.op.attrs();
        let attrs = if attrs.is_empty() {
            String::new()
        } else {
            let parts: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{{{}}}", parts.join(", "))
        };
        out.push_str(&format!(
            "  {}: {} = {}{}({})\n",
            node.name,
            outs.join(", "),
            node.op.name(),
            attrs,
            ins.join(", ")
        ));
    }
    Ok(out)
}
