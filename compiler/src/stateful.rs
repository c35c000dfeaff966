//! Stateful decoders: turn a one-step decoder export with a KV cache (`past_key_values.*`
//! inputs, `present.*` outputs) into a graph whose cache is model state, updated in place.
//!
//! Two export styles are recognised, per present/past pair:
//! - **fixed-slot cache** (`past [.., S, ..]` → `present [.., S, ..]`): the export writes the
//!   step's entries with `Where(slot == position, new, past)`, where `slot` is the constant
//!   `0..S` laid along the slot axis. That becomes `KvWrite(state, new, position)`.
//! - **growing cache** (`past [.., P, ..]` → `present [.., P+1, ..]` by
//!   `Concat(past, new)`): compiled with `P = max_context - 1`, so `present` has
//!   `max_context` slots. The concat becomes `KvWrite(state, new, position_ids)` (the step's
//!   slot is its position), and every softmax over those slots gets a mask that hides slots
//!   after the position, which the export (seeing a full cache) does not have.
//!
//! Either way the `past` input and the `present` output leave the graph's interface and
//! become one [`StateSlot`]; attention reads the state after the write. The remaining
//! inputs must have a known role (token id, position, attention mask) so the generated
//! `step(token)` can fill them, and one output (the logits) must remain.
use crate::error::{Error, Result};
use crate::ir::{DType, Graph, NodeId, StateSlot, Tensor, TensorType, ValueId};
use crate::ops::Op;
use crate::ops::binary::{Binary, BinaryKind};
use crate::ops::kv_write::KvWrite;
use crate::ops::where_::Where;
use std::collections::BTreeSet;

/// Name prefixes of cache inputs, longest first.
const PAST_PREFIXES: &[&str] = &["past_key_values", "past_key_value", "past"];
/// Name prefixes of cache outputs, longest first.
const PRESENT_PREFIXES: &[&str] = &["present_key_values", "present"];

/// What a non-state input of a stateful decoder carries; the generated `step` fills it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputRole {
    /// The step's token id (one element).
    TokenId,
    /// The step's position (one element): `position_ids` or `cache_position`.
    Position,
    /// 1 for every slot up to and including the step's position, 0 after.
    AttentionMask,
}

/// The role of a decoder input, by its name.
pub fn input_role(name: &str) -> Option<InputRole> {
    match name {
        "input_ids" | "input_id" | "tokens" | "token" => Some(InputRole::TokenId),
        "position_ids" | "cache_position" | "position" | "pos" => Some(InputRole::Position),
        "attention_mask" => Some(InputRole::AttentionMask),
        _ => None,
    }
}

/// The key that pairs `past_key_values.0.key` with `present.0.key`: the name without its
/// cache prefix, separators unified; `None` if `name` has none of `prefixes`.
fn cache_key(name: &str, prefixes: &[&str]) -> Option<String> {
    let rest = prefixes.iter().find_map(|p| name.strip_prefix(p))?;
    let rest = rest.trim_start_matches(['.', '_', '/', ':']);
    if rest.is_empty() {
        return None;
    }
    Some(rest.replace(['_', '/', ':'], "."))
}

/// True when `name` looks like a cache input (`past_key_values.N.key`, `past.N.value`, ..).
pub fn is_cache_input(name: &str) -> bool {
    cache_key(name, PAST_PREFIXES).is_some()
}

/// The size a still-unbound symbolic dim gets when building a stateful decoder with
/// `max_context` slots: batch and sequence of the step's inputs are 1, a cache input's
/// past length is `max_context - 1`, an attention mask covers `max_context` slots.
pub fn default_dim(input: &str, axis: usize, max_context: usize) -> Option<usize> {
    if axis == 0 {
        return Some(1);
    }
    if is_cache_input(input) {
        return Some(max_context.saturating_sub(1));
    }
    match input_role(input)? {
        InputRole::TokenId | InputRole::Position => Some(1),
        InputRole::AttentionMask => Some(max_context),
    }
}

/// The number of cache slots of a stateful graph (the smallest over its states).
pub fn slots(graph: &Graph) -> Option<usize> {
    graph
        .states
        .iter()
        .map(|s| graph.ty(s.input).shape[s.axis])
        .min()
}

fn invalid(reason: String) -> Error {
    Error::InvalidModel(reason)
}

/// Rewrite `graph` into a stateful decoder (see the module docs).
pub fn make_stateful(graph: &mut Graph, max_context: usize) -> Result<()> {
    if max_context == 0 {
        return Err(Error::Usage("--max-context must be at least 1".into()));
    }
    // Pair past inputs with present outputs.
    let mut pairs: Vec<(ValueId, usize)> = Vec::new();
    let mut unpaired = Vec::new();
    for &p in &graph.inputs {
        let name = &graph.value(p).name;
        let Some(key) = cache_key(name, PAST_PREFIXES) else {
            continue;
        };
        let found = (0..graph.outputs.len())
            .find(|&k| cache_key(graph.output_name(k), PRESENT_PREFIXES).as_ref() == Some(&key));
        match found {
            Some(k) => pairs.push((p, k)),
            None => unpaired.push(name.clone()),
        }
    }
    if !unpaired.is_empty() {
        return Err(invalid(format!(
            "cache inputs {unpaired:?} have no matching `present` output"
        )));
    }
    if pairs.is_empty() {
        return Err(Error::Usage(
            "--max-context makes a stateful decoder, but the model has no `past_key_values.*` \
             inputs paired with `present.*` outputs"
                .into(),
        ));
    }
    bypass_single_input_concats(graph, &pairs);
    let position_input = graph
        .inputs
        .iter()
        .copied()
        .find(|&v| input_role(&graph.value(v).name) == Some(InputRole::Position));

    let mut growing: Vec<(ValueId, usize)> = Vec::new();
    let mut removed_outputs = BTreeSet::new();
    for &(past, k) in &pairs {
        let present = graph.outputs[k];
        let past_name = graph.value(past).name.clone();
        let present_name = graph.output_name(k).to_string();
        let Some(producer) = graph.value(present).producer else {
            return Err(invalid(format!(
                "`{present_name}` is not computed by a node"
            )));
        };
        let users = graph.consumers(past);
        if users != [producer] || graph.outputs.contains(&past) {
            return Err(invalid(format!(
                "cache input `{past_name}` is read by other nodes than the one writing \
                 `{present_name}`; it cannot be updated in place"
            )));
        }
        let node = graph.node(producer).clone();
        let (state, new, position, axis) = match &node.op {
            Op::Concat(c) if node.inputs.len() == 2 && node.inputs[0] == past => {
                let position = position_input.ok_or_else(|| {
                    invalid(format!(
                        "`{present_name}` grows the cache, which needs a `position_ids` input \
                         to know the step's slot"
                    ))
                })?;
                let state = graph.add_value(past_name.clone(), graph.ty(present).clone());
                growing.push((state, c.axis));
                (state, node.inputs[1], position, c.axis)
            }
            Op::Where(_) if node.inputs.len() == 3 && node.inputs[2] == past => {
                let (axis, position) = slot_select(graph, node.inputs[0], graph.ty(past))
                    .ok_or_else(|| {
                        invalid(format!(
                            "`{present_name}` is written by Where `{}` whose condition is not \
                             `slot == position`",
                            node.name
                        ))
                    })?;
                let new_ty = graph.ty(node.inputs[1]);
                if new_ty.rank() != graph.ty(past).rank() || new_ty.shape[axis] != 1 {
                    return Err(invalid(format!(
                        "`{present_name}`: the new entries {new_ty} are not one slot of {}",
                        graph.ty(past)
                    )));
                }
                (past, node.inputs[1], position, axis)
            }
            other => {
                return Err(invalid(format!(
                    "`{present_name}` is computed by {} `{}`; only Concat(past, new) and \
                     Where(slot == position, new, past) cache updates are recognised",
                    other.name(),
                    node.name
                )));
            }
        };
        let (_, outs) = graph
            .add_node(
                format!("{}/kv_write", node.name),
                node.source_op.clone(),
                Op::KvWrite(KvWrite { axis }),
                vec![state, new, position],
                &[format!("{present_name}:state")],
            )
            .map_err(|e| invalid(format!("`{present_name}`: {e}")))?;
        graph.remove_node(producer);
        graph.replace_uses(present, outs[0]);
        graph.inputs.retain(|&v| v != past);
        removed_outputs.insert(k);
        graph.states.push(StateSlot {
            name: past_name,
            input: state,
            output: outs[0],
            axis,
        });
    }
    let names: Vec<String> = (0..graph.outputs.len())
        .map(|k| graph.output_name(k).to_string())
        .collect();
    let outputs = std::mem::take(&mut graph.outputs);
    graph.output_names.clear();
    for (k, (v, name)) in outputs.into_iter().zip(names).enumerate() {
        if !removed_outputs.contains(&k) {
            graph.outputs.push(v);
            graph.output_names.push(name);
        }
    }

    if let (Some(&(first, axis)), Some(position)) = (growing.first(), position_input) {
        let slots = graph.ty(first).shape[axis];
        mask_unused_slots(graph, &growing, slots, position)?;
    }
    let slots = slots(graph).unwrap_or(0);
    if max_context > slots {
        return Err(Error::Usage(format!(
            "--max-context {max_context} is more than the {slots} cache slots the model has"
        )));
    }
    check_interface(graph)
}

/// Exporters of `DynamicCache` models emit `Concat(past)` (one input: an identity) before the
/// real `Concat(.., new)`; make its readers read `past` itself.
fn bypass_single_input_concats(graph: &mut Graph, pairs: &[(ValueId, usize)]) {
    for &(past, _) in pairs {
        for id in graph.consumers(past) {
            let node = graph.node(id);
            let identity = matches!(node.op, Op::Concat(_))
                && node.inputs.len() == 1
                && node.outputs.len() == 1
                && graph.ty(node.outputs[0]) == graph.ty(past);
            if identity && !graph.outputs.contains(&node.outputs[0]) {
                let out = node.outputs[0];
                graph.replace_uses(out, past);
                graph.remove_node(id);
            }
        }
    }
    graph.rebuild_edges();
}

/// If `cond` is `slot == position` over a cache of type `cache` (through reshapes), the
/// slot axis and the position value.
fn slot_select(graph: &Graph, cond: ValueId, cache: &TensorType) -> Option<(usize, ValueId)> {
    let cond_ty = graph.ty(cond);
    let pad = cache.rank().checked_sub(cond_ty.rank())?;
    let axis = (0..cond_ty.rank()).find(|&d| cond_ty.shape[d] != 1)? + pad;
    let slots = cache.shape[axis];
    if cond_ty.numel() != slots {
        return None;
    }
    let mut v = cond;
    loop {
        let node = graph.node(graph.value(v).producer?);
        match &node.op {
            Op::Reshape(_) => v = node.inputs[0],
            Op::Binary(Binary {
                kind: BinaryKind::Equal,
            }) => {
                let (a, b) = (node.inputs[0], node.inputs[1]);
                let (range, position) = if graph.constant(a).is_some() {
                    (a, b)
                } else {
                    (b, a)
                };
                let values = graph.constant(range)?.data.to_f64_vec();
                let is_arange =
                    values.len() == slots && values.iter().enumerate().all(|(i, &x)| x == i as f64);
                let pos_ty = graph.ty(position);
                let int = matches!(pos_ty.dtype, DType::I64 | DType::I32);
                return (is_arange && int && pos_ty.numel() == 1).then_some((axis, position));
            }
            _ => return None,
        }
    }
}

/// Before every softmax over the slots of a growing cache, hide the slots after the
/// position: `scores + Where(slot > position, -inf, 0)` (an additive mask, so
/// `fuse_attention` takes it as the attention's mask and `attention_live_length` skips the
/// hidden slots).
fn mask_unused_slots(
    graph: &mut Graph,
    growing: &[(ValueId, usize)],
    slots: usize,
    position: ValueId,
) -> Result<()> {
    // Nodes downstream of a cache state.
    let order = graph
        .topo_order()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let mut reached: BTreeSet<ValueId> = growing.iter().map(|&(v, _)| v).collect();
    let mut softmaxes: Vec<NodeId> = Vec::new();
    for &id in &order {
        let node = graph.node(id);
        if node.inputs.iter().any(|v| reached.contains(v)) {
            reached.extend(node.outputs.iter().copied());
            if let Op::Softmax(s) = &node.op {
                let ty = graph.ty(node.inputs[0]);
                if s.axis + 1 == ty.rank() && ty.shape[s.axis] == slots {
                    softmaxes.push(id);
                }
            }
        }
    }
    if softmaxes.is_empty() {
        return Err(invalid(
            "the growing cache is never read by a softmax over its slots: cannot mask the \
             unused slots"
                .into(),
        ));
    }
    let range = Tensor::from_i64s(vec![slots], (0..slots as i64).collect())
        .map_err(|e| Error::Internal(e.to_string()))?;
    let range = graph.add_constant("kv_cache:slot_index", range);
    let position = if graph.ty(position).dtype == DType::I64 {
        position
    } else {
        let (_, outs) = graph
            .add_node(
                "kv_cache:position_i64",
                "Cast",
                Op::Cast(crate::ops::cast::Cast { to: DType::I64 }),
                vec![position],
                &["kv_cache:position_i64".into()],
            )
            .map_err(|e| Error::Internal(e.to_string()))?;
        outs[0]
    };
    let (_, hidden) = graph
        .add_node(
            "kv_cache:unused_slots",
            "Greater",
            Op::Binary(Binary {
                kind: BinaryKind::Greater,
            }),
            vec![range, position],
            &["kv_cache:unused_slots".into()],
        )
        .map_err(|e| Error::Internal(e.to_string()))?;
    let constant = |graph: &mut Graph, name: &str, v: f32| -> Result<ValueId> {
        let t = Tensor::from_f32s(vec![], vec![v]).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(graph.add_constant(name, t))
    };
    let neg_inf = constant(graph, "kv_cache:-inf", f32::NEG_INFINITY)?;
    let zero = constant(graph, "kv_cache:zero", 0.0)?;
    let (_, bias) = graph
        .add_node(
            "kv_cache:slot_bias",
            "Where",
            Op::Where(Where {}),
            vec![hidden[0], neg_inf, zero],
            &["kv_cache:slot_bias".into()],
        )
        .map_err(|e| Error::Internal(e.to_string()))?;
    for id in softmaxes {
        let node = graph.node(id).clone();
        let scores = node.inputs[0];
        if graph.ty(scores).dtype != DType::F32 {
            return Err(invalid(format!(
                "softmax `{}` over the cache is not f32: cannot mask the unused slots",
                node.name
            )));
        }
        let (_, masked) = graph
            .add_node(
                format!("{}/mask", node.name),
                "Add",
                Op::Binary(Binary {
                    kind: BinaryKind::Add,
                }),
                vec![scores, bias[0]],
                &[format!("{}/masked", node.name)],
            )
            .map_err(|e| Error::Internal(e.to_string()))?;
        graph.node_mut(id).inputs[0] = masked[0];
    }
    graph.rebuild_edges();
    Ok(())
}

/// Every remaining input has a role; one output (the logits) remains, one step's worth.
fn check_interface(graph: &Graph) -> Result<()> {
    for &v in &graph.inputs {
        let value = graph.value(v);
        let role = input_role(&value.name).ok_or_else(|| {
            invalid(format!(
                "decoder input `{}` has no known role (expected input_ids, position_ids, \
                 cache_position or attention_mask besides the cache)",
                value.name
            ))
        })?;
        let ty = &value.ty;
        let int = matches!(ty.dtype, DType::I64 | DType::I32);
        let ok = match role {
            InputRole::TokenId | InputRole::Position => int && ty.numel() == 1,
            InputRole::AttentionMask => int || ty.dtype == DType::F32,
        };
        if !ok {
            return Err(invalid(format!(
                "decoder input `{}` is {ty}; a step takes one token (bind its batch and \
                 sequence dims to 1)",
                value.name
            )));
        }
    }
    if graph.outputs.len() != 1 {
        let names: Vec<&str> = (0..graph.outputs.len())
            .map(|k| graph.output_name(k))
            .collect();
        return Err(invalid(format!(
            "a stateful decoder must have one output besides the cache (the logits), found {names:?}"
        )));
    }
    let logits = graph.ty(graph.outputs[0]);
    if logits.dtype != DType::F32 || logits.shape.last() != Some(&logits.numel()) {
        return Err(invalid(format!(
            "the logits output is {logits}; expected f32 `[1, 1, vocab]` for one step"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_cache_names_across_export_styles() {
        let past = |n| cache_key(n, PAST_PREFIXES);
        let present = |n| cache_key(n, PRESENT_PREFIXES);
        assert_eq!(past("past_key_values.3.key"), present("present.3.key"));
        assert_eq!(past("past.0.value"), present("present.0.value"));
        assert_eq!(past("past_key_values_1_value"), present("present_1_value"));
        assert_ne!(past("past_key_values.0.key"), present("present.0.value"));
        assert_eq!(past("input_ids"), None);
        assert_eq!(default_dim("past_key_values.0.key", 2, 256), Some(255));
        assert_eq!(default_dim("attention_mask", 1, 256), Some(256));
        assert_eq!(default_dim("input_ids", 1, 256), Some(1));
        assert_eq!(default_dim("pixel_values", 1, 256), None);
    }
}
