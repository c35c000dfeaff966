//! Schedule and static memory plan: a topological order, liveness of every intermediate,
//! and an offset in one arena for each, reused once its value is dead. Views (reshapes)
//! alias their input. Constants go to one aligned weight blob.
use crate::error::{Error, Result};
use crate::ir::{Graph, NodeId, ValueId};
use std::collections::{BTreeMap, BTreeSet};

/// Alignment of every arena offset and weight offset.
pub const ALIGN: usize = 64;

/// `n` rounded up to [`ALIGN`].
pub fn align_up(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// Where a value's bytes live at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// Graph input `i` (the caller's array).
    Input(usize),
    /// Graph output `i` (the caller's array), written in place by its producer.
    Output(usize),
    /// Byte offset in the weight blob.
    Weight(usize),
    /// Byte offset in the arena.
    Arena(usize),
    /// Model state `i` (`Graph::states`), kept by the model between runs.
    State(usize),
}

/// A graph output filled by a copy after all nodes ran (it is a constant, a graph input,
/// a duplicate of another output, or a bool held as bytes in the arena).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputCopy {
    pub output: usize,
    pub source: ValueId,
}

/// One arena buffer: a value (with its aliases) and its live range in schedule steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffer {
    pub value: ValueId,
    pub bytes: usize,
    pub first: usize,
    pub last: usize,
    pub offset: usize,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub order: Vec<NodeId>,
    pub locations: BTreeMap<ValueId, Location>,
    /// View nodes that emit no code: their output aliases their input.
    pub aliased: BTreeSet<NodeId>,
    pub output_copies: Vec<OutputCopy>,
    pub buffers: Vec<Buffer>,
    /// Constants in blob order with their byte offsets.
    pub weights: Vec<(ValueId, usize)>,
    pub weight_bytes: usize,
    pub arena_bytes: usize,
    /// The most bytes simultaneously live at any step: no static plan can use less.
    pub lower_bound_bytes: usize,
    /// The sum of all intermediate buffers: what a plan without reuse would take.
    pub naive_bytes: usize,
}

impl Plan {
    pub fn location(&self, v: ValueId) -> Result<Location> {
        self.locations
            .get(&v)
            .copied()
            .ok_or_else(|| Error::Internal(format!("value {v:?} has no location")))
    }
}

/// Plan a verified graph.
pub fn plan(graph: &Graph) -> Result<Plan> {
    let order = graph
        .topo_order()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let mut locations: BTreeMap<ValueId, Location> = BTreeMap::new();

    // Weights: constants in first-use order.
    let mut weights = Vec::new();
    let mut weight_bytes = 0usize;
    for v in graph.used_constants(&order) {
        locations.insert(v, Location::Weight(weight_bytes));
        weights.push((v, weight_bytes));
        weight_bytes = weight_bytes
            .checked_add(align_up(graph.ty(v).size_bytes()))
            .ok_or_else(|| Error::Limit("weight bytes overflow usize".into()))?;
    }
    for (i, &v) in graph.inputs.iter().enumerate() {
        locations.insert(v, Location::Input(i));
    }
    // State is read and written in place: an in-place op's output takes its state input's
    // buffer.
    for (i, state) in graph.states.iter().enumerate() {
        locations.insert(state.input, Location::State(i));
    }
    for &id in &order {
        let node = graph.node(id);
        let Some(k) = node.op.in_place_input() else {
            continue;
        };
        if let (Some(&input), Some(&out)) = (node.inputs.get(k), node.outputs.first())
            && let Some(&Location::State(i)) = locations.get(&input)
        {
            locations.insert(out, Location::State(i));
        }
    }
    for (i, state) in graph.states.iter().enumerate() {
        if locations.get(&state.output) != Some(&Location::State(i)) {
            return Err(Error::Internal(format!(
                "state `{}` is not written in place",
                state.name
            )));
        }
    }

    // Graph outputs written in place by their producer; the rest are copied at the end.
    let mut output_copies = Vec::new();
    let mut direct: BTreeMap<ValueId, usize> = BTreeMap::new();
    for (i, &v) in graph.outputs.iter().enumerate() {
        let produced = graph.value(v).producer.is_some() && graph.constant(v).is_none();
        let is_bool = graph.ty(v).dtype == crate::ir::DType::Bool;
        if produced && !is_bool && !direct.contains_key(&v) && !graph.inputs.contains(&v) {
            direct.insert(v, i);
            locations.insert(v, Location::Output(i));
        } else {
            output_copies.push(OutputCopy {
                output: i,
                source: v,
            });
        }
    }

    // A view whose output goes to a caller's array makes its producer write there too.
    let mut aliased = BTreeSet::new();
    for &id in &order {
        let node = graph.node(id);
        if !(node.op.is_view() && node.inputs.len() == 1 && node.outputs.len() == 1) {
            continue;
        }
        let (x, y) = (node.inputs[0], node.outputs[0]);
        let (Some(&i), Some(p)) = (direct.get(&y), graph.value(x).producer) else {
            continue;
        };
        let producer_is_view = graph.node(p).op.is_view();
        if !producer_is_view
            && !locations.contains_key(&x)
            && graph.ty(x).dtype == graph.ty(y).dtype
        {
            locations.insert(x, Location::Output(i));
            aliased.insert(id);
        }
    }

    // Other views alias their input unless their output is written to a caller's array.
    let mut alias_root: BTreeMap<ValueId, ValueId> = BTreeMap::new();
    for &id in &order {
        let node = graph.node(id);
        if node.op.is_view() && node.inputs.len() == 1 && node.outputs.len() == 1 {
            let (x, y) = (node.inputs[0], node.outputs[0]);
            if !direct.contains_key(&y) && !aliased.contains(&id) {
                aliased.insert(id);
                let root = alias_root.get(&x).copied().unwrap_or(x);
                alias_root.insert(y, root);
            }
        }
    }

    // Liveness of arena roots, in schedule steps.
    let mut first: BTreeMap<ValueId, usize> = BTreeMap::new();
    let mut last: BTreeMap<ValueId, usize> = BTreeMap::new();
    let root_of = |v: ValueId| alias_root.get(&v).copied().unwrap_or(v);
    for (step, &id) in order.iter().enumerate() {
        let node = graph.node(id);
        for &out in &node.outputs {
            let r = root_of(out);
            if !locations.contains_key(&r) {
                first.entry(r).or_insert(step);
                let l = last.entry(r).or_insert(step);
                *l = (*l).max(step);
            }
        }
        for &input in &node.inputs {
            let r = root_of(input);
            if let Some(l) = last.get_mut(&r) {
                *l = (*l).max(step);
            }
        }
    }
    // Values copied into outputs at the end stay live to the end.
    let end = order.len();
    for copy in &output_copies {
        if let Some(l) = last.get_mut(&root_of(copy.source)) {
            *l = end;
        }
    }

    let mut buffers: Vec<Buffer> = first
        .iter()
        .map(|(&v, &f)| Buffer {
            value: v,
            bytes: align_up(graph.ty(v).size_bytes()),
            first: f,
            last: last.get(&v).copied().unwrap_or(f),
            offset: 0,
        })
        .collect();
    let naive_bytes = buffers.iter().map(|b| b.bytes).sum();
    let lower_bound_bytes = (0..=end)
        .map(|t| {
            buffers
                .iter()
                .filter(|b| b.first <= t && t <= b.last)
                .map(|b| b.bytes)
                .sum::<usize>()
        })
        .max()
        .unwrap_or(0);
    let arena_bytes = assign_offsets(&mut buffers);

    for b in &buffers {
        locations.insert(b.value, Location::Arena(b.offset));
    }
    for (&alias, &root) in &alias_root {
        let loc = locations
            .get(&root)
            .copied()
            .ok_or_else(|| Error::Internal(format!("alias root {root:?} has no location")))?;
        locations.insert(alias, loc);
    }
    check_disjoint(&buffers)?;
    Ok(Plan {
        order,
        locations,
        aliased,
        output_copies,
        buffers,
        weights,
        weight_bytes,
        arena_bytes,
        lower_bound_bytes,
        naive_bytes,
    })
}

/// Greedy by size: place the largest buffers first, each at the lowest offset that no
/// time-overlapping placed buffer occupies. Returns the arena size.
fn assign_offsets(buffers: &mut [Buffer]) -> usize {
    let mut by_size: Vec<usize> = (0..buffers.len()).collect();
    by_size.sort_by(|&a, &b| {
        let (x, y) = (&buffers[a], &buffers[b]);
        y.bytes
            .cmp(&x.bytes)
            .then(x.first.cmp(&y.first))
            .then(x.value.cmp(&y.value))
    });
    let mut placed: Vec<usize> = Vec::new();
    let mut arena = 0usize;
    for i in by_size {
        let b = buffers[i];
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .map(|&j| buffers[j])
            .filter(|p| p.first <= b.last && b.first <= p.last)
            .map(|p| (p.offset, p.offset + p.bytes))
            .collect();
        busy.sort_unstable();
        let mut offset = 0usize;
        for (start, stop) in busy {
            if offset + b.bytes <= start {
                break;
            }
            offset = offset.max(stop);
        }
        buffers[i].offset = offset;
        arena = arena.max(offset + b.bytes);
        placed.push(i);
    }
    arena
}

/// No two buffers that are live at the same step may share a byte.
fn check_disjoint(buffers: &[Buffer]) -> Result<()> {
    for (i, a) in buffers.iter().enumerate() {
        for b in &buffers[i + 1..] {
            let time = a.first <= b.last && b.first <= a.last;
            let space = a.bytes > 0
                && b.bytes > 0
                && a.offset < b.offset + b.bytes
                && b.offset < a.offset + a.bytes;
            if time && space {
                return Err(Error::Internal(format!(
                    "plan overlaps buffers {a:?} and {b:?}"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_reuses_dead_space() {
        let mk = |v: u32, bytes, first, last| Buffer {
            value: ValueId(v),
            bytes,
            first,
            last,
            offset: 0,
        };
        // a and c never overlap in time, so c reuses a's bytes.
        let mut buffers = vec![mk(0, 128, 0, 1), mk(1, 64, 1, 2), mk(2, 128, 2, 3)];
        let arena = assign_offsets(&mut buffers);
        assert_eq!(arena, 192);
        check_disjoint(&buffers).unwrap();
        assert_eq!(buffers[0].offset, buffers[2].offset);
    }
}
