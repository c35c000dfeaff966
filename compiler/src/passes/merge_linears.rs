//! Merge packed `Linear`s (or `QLinear`s) that read the same input into one node over their
//! weights side by side (attention's Q/K/V projections), so one node computes them all.
//!
//! Before: `y_i = Linear{k, n_i, nr, epilogue e}(x, W_i.packed, b_i?)` for `i = 1..p`, `p ≥ 2`,
//! every `W_i`/`b_i` constant, the same `k`, `nr`, tiles, bias presence and activation, none
//! merged, SwiGLU or residual already. After: `y_1, …, y_p = Linear{k, Σn_i, nr, e,
//! parts: [n_1, …, n_p]}(x, concat(W_i.packed), concat(b_i)?)`: each part stays packed as it
//! was (the blobs are concatenated, so no column of one part shares a panel with another) and
//! writes its own output, so no split or view is needed and any number of rows works.
//! Weights still row-major (`nr == 0`, the portable target) are left alone.
//!
//! The same for `QLinear`s with the same activation quantization too: `y_1, …, y_p, qa,
//! qa_scales, qa_zero_points = QLinear{.., parts}(x, concat(W_i.q8), concat(b_i)?)`, so `x`
//! is quantized once for every part.
use super::Pass;
use crate::error::{Error, Result};
use crate::ir::{DType, Data, Graph, NodeId, Tensor, TensorType, ValueId};
use crate::ops::Op;
use crate::ops::linear::Linear;
use crate::ops::qlinear::QLinear;
use std::collections::BTreeMap;

pub struct MergeLinears;

/// A packed float `Linear` or int8 `QLinear`, as the passes that fuse them (`fuse_swiglu`,
/// `merge_linears`, `fuse_residual`) see it.
#[derive(Clone)]
pub(crate) enum Packed {
    F32(Linear),
    I8(QLinear),
}

/// The activation-quantization scratch outputs of a `QLinear`, as name suffixes.
const QA_SCRATCH: [&str; 3] = ["qa", "qa_scales", "qa_zero_points"];

impl Packed {
    /// Node `id`'s op if it is a packed `Linear`/`QLinear` of one part, no SwiGLU or residual
    /// yet, with constant weight (and bias).
    pub(crate) fn plain(graph: &Graph, id: NodeId) -> Option<Packed> {
        let node = graph.node(id);
        let (p, plain) = match &node.op {
            Op::Linear(l) => (
                Packed::F32(l.clone()),
                l.nr != 0 && l.parts.is_empty() && !l.swiglu && !l.residual,
            ),
            Op::QLinear(l) => (
                Packed::I8(l.clone()),
                l.fused.parts.is_empty() && !l.fused.swiglu && !l.fused.residual,
            ),
            _ => return None,
        };
        let constant_operands = node.inputs[1..]
            .iter()
            .all(|&v| graph.constant(v).is_some());
        (plain && constant_operands).then_some(p)
    }

    pub(crate) fn n(&self) -> usize {
        match self {
            Packed::F32(l) => l.n,
            Packed::I8(l) => l.n,
        }
    }

    pub(crate) fn activation(&self) -> runtime_core::kernels::gemm::Activation {
        match self {
            Packed::F32(l) => l.activation,
            Packed::I8(l) => l.activation,
        }
    }

    pub(crate) fn bias(&self) -> bool {
        match self {
            Packed::F32(l) => l.bias,
            Packed::I8(l) => l.bias,
        }
    }

    /// Every setting but `n` (and the bias values), in words: layers with equal keys and
    /// the same input can share one node.
    pub(crate) fn key(&self) -> String {
        match self {
            Packed::F32(l) => format!(
                "f32 {} {} {:?} {} {:?} {}",
                l.k, l.nr, l.tiles, l.bias, l.activation, l.kernel
            ),
            Packed::I8(l) => format!(
                "i8 {} {} {:?} {} {:?} {} {:?}",
                l.k, l.nr, l.tiles, l.bias, l.activation, l.kernel, l.act_quant
            ),
        }
    }

    /// This layer with `parts` side by side (`swiglu`: combined as gate ⊙ up).
    fn with_parts(&self, parts: Vec<usize>, swiglu: bool) -> Op {
        let n = parts.iter().sum();
        match self {
            Packed::F32(l) => {
                let mut op = l.clone();
                if swiglu {
                    op.activation = runtime_core::kernels::gemm::Activation::None;
                }
                (op.n, op.parts, op.swiglu) = (n, parts, swiglu);
                Op::Linear(op)
            }
            Packed::I8(l) => {
                let mut op = l.clone();
                (op.n, op.fused.parts, op.fused.swiglu) = (n, parts, swiglu);
                Op::QLinear(op)
            }
        }
    }

    /// This layer with a residual input added after its activation.
    pub(crate) fn with_residual(&self) -> Op {
        match self {
            Packed::F32(l) => Op::Linear(Linear {
                residual: true,
                ..l.clone()
            }),
            Packed::I8(l) => {
                let mut op = l.clone();
                op.fused.residual = true;
                Op::QLinear(op)
            }
        }
    }

    /// Suffixes of the outputs after the layer's results (the `QLinear` scratch).
    pub(crate) fn scratch_suffixes(&self) -> &'static [&'static str] {
        match self {
            Packed::F32(_) => &[],
            Packed::I8(_) => &QA_SCRATCH,
        }
    }
}

/// The data of constants `values` (all f32 or all u8) concatenated, as a new constant named
/// after the first.
pub(crate) fn concat_constants(
    graph: &mut Graph,
    values: &[ValueId],
    suffix: &str,
) -> Result<ValueId> {
    let internal = |e: String| Error::Internal(format!("concat_constants: {e}"));
    let total: usize = values
        .iter()
        .filter_map(|&v| graph.constant(v))
        .map(|t| t.data.len())
        .sum();
    let mut data = match values.first().and_then(|&v| graph.constant(v)) {
        Some(t) if t.ty.dtype == DType::U8 => Data::U8(Vec::with_capacity(total)),
        _ => Data::F32(Vec::with_capacity(total)),
    };
    for &v in values {
        let t = graph
            .constant(v)
            .ok_or_else(|| internal("not a constant".into()))?;
        match &mut data {
            Data::U8(d) => d.extend_from_slice(
                crate::ops::util::data::<u8>(t).map_err(|e| internal(e.to_string()))?,
            ),
            Data::F32(d) => d.extend_from_slice(
                crate::ops::util::data::<f32>(t).map_err(|e| internal(e.to_string()))?,
            ),
            _ => return Err(internal("neither f32 nor u8".into())),
        }
    }
    let (dtype, len) = match &data {
        Data::U8(d) => (DType::U8, d.len()),
        Data::F32(d) => (DType::F32, d.len()),
        _ => return Err(internal("neither f32 nor u8".into())),
    };
    let tensor = Tensor::new(TensorType::new(dtype, vec![len]), data)
        .map_err(|e| internal(e.to_string()))?;
    let first = values
        .first()
        .ok_or_else(|| internal("nothing to concatenate".into()))?;
    let name = format!("{}.{suffix}", graph.value(*first).name);
    Ok(graph.add_constant(name, tensor))
}

/// Replace `nodes` (plain packed layers alike as `template`, reading the same `x`) by one
/// node over their weights side by side: `parts` their widths, combined as gate ⊙ up when
/// `swiglu`. The new node's results take over `outs` (their names and readers), in order.
pub(crate) fn replace_by_merged(
    graph: &mut Graph,
    nodes: &[NodeId],
    template: &Packed,
    (parts, swiglu): (Vec<usize>, bool),
    outs: &[ValueId],
    suffix: &str,
) -> Result<()> {
    let first = nodes
        .first()
        .copied()
        .ok_or_else(|| Error::Internal("merge: no nodes".into()))?;
    let x = graph.node(first).inputs[0];
    let weights: Vec<ValueId> = nodes.iter().map(|&id| graph.node(id).inputs[1]).collect();
    let mut inputs = vec![x, concat_constants(graph, &weights, suffix)?];
    let mut replaced = weights;
    if template.bias() {
        let biases: Vec<ValueId> = nodes.iter().map(|&id| graph.node(id).inputs[2]).collect();
        inputs.push(concat_constants(graph, &biases, suffix)?);
        replaced.extend(biases);
    }
    let name = format!("{}.{suffix}", graph.node(first).name);
    let source = graph.node(first).source_op.clone();
    let mut names: Vec<String> = outs.iter().map(|&v| graph.value(v).name.clone()).collect();
    let rows = graph.ty(x).numel() / graph.ty(x).shape.last().copied().unwrap_or(1).max(1);
    if swiglu && rows > 1 {
        names.push(format!("{name}:1"));
    }
    let first_out = names.first().cloned().unwrap_or_default();
    names.extend(
        template
            .scratch_suffixes()
            .iter()
            .map(|s| format!("{first_out}.{s}")),
    );
    for &id in nodes {
        graph.remove_node(id);
    }
    let op = template.with_parts(parts, swiglu);
    let (_, new) = graph
        .add_node(name, source, op, inputs, &names)
        .map_err(|e| Error::Internal(format!("merge linear layers: {e}")))?;
    for (&old, new) in outs.iter().zip(new) {
        graph.replace_uses(old, new);
    }
    graph.drop_if_unread(&replaced);
    Ok(())
}

impl Pass for MergeLinears {
    fn name(&self) -> &'static str {
        "merge_linears"
    }

    fn run(&self, graph: &mut Graph) -> Result<bool> {
        // Groups keyed by the input and every setting that must agree, in schedule order.
        let mut groups: BTreeMap<(ValueId, String), Vec<(NodeId, Packed)>> = BTreeMap::new();
        for id in super::topo_order(graph)? {
            if let Some(p) = Packed::plain(graph, id) {
                let key = (graph.node(id).inputs[0], p.key());
                groups.entry(key).or_default().push((id, p));
            }
        }
        let mut changed = false;
        for group in groups.into_values().filter(|g| g.len() >= 2) {
            let nodes: Vec<NodeId> = group.iter().map(|(id, _)| *id).collect();
            let parts = group.iter().map(|(_, p)| p.n()).collect();
            let outs: Vec<ValueId> = nodes.iter().map(|&id| graph.node(id).outputs[0]).collect();
            replace_by_merged(graph, &nodes, &group[0].1, (parts, false), &outs, "merged")?;
            changed = true;
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::printer::print;
    use crate::passes::test_util::{linear, pack_for_x86};
    use runtime_core::kernels::gemm::Activation;

    /// `x: [rows, 3]` read by three Linears (widths 4, 2, 2, biases on all), each output a
    /// graph output; packed for `x86` (`int8`: quantized).
    fn qkv(rows: usize, int8: bool) -> Graph {
        let mut g = Graph::new(17);
        let x = g.add_value("x", TensorType::new(DType::F32, vec![rows, 3]));
        g.inputs.push(x);
        for (name, n) in [("q", 4), ("k", 2), ("v", 2)] {
            let w: Vec<f32> = (0..3 * n).map(|i| (i as f32 + n as f32) * 0.1).collect();
            let b: Vec<f32> = (0..n).map(|i| i as f32 - 1.0).collect();
            let y = linear(&mut g, name, x, (3, n), w, Some(b), Activation::None);
            g.outputs.push(y);
        }
        pack_for_x86(&mut g, int8);
        g
    }

    fn outputs(g: &Graph, x: &Tensor) -> Vec<Vec<f64>> {
        let out = crate::eval::evaluate(g, std::slice::from_ref(x)).unwrap();
        out.iter().map(|t| t.data.to_f64_vec()).collect()
    }

    fn merged(mut g: Graph) -> Graph {
        assert!(MergeLinears.run(&mut g).unwrap());
        crate::passes::eliminate_dead_nodes::EliminateDeadNodes
            .run(&mut g)
            .unwrap();
        crate::ir::verify::verify(&g).unwrap();
        g
    }

    #[test]
    fn q_k_v_projections_become_one_linear() {
        insta::assert_snapshot!(print(&merged(qkv(1, false))).unwrap());
    }

    #[test]
    fn q_k_v_int8_projections_become_one_qlinear_quantizing_once() {
        insta::assert_snapshot!(print(&merged(qkv(1, true))).unwrap());
    }

    #[test]
    fn merged_outputs_equal_the_separate_ones_for_one_and_many_rows() {
        for (rows, int8) in [(1, false), (5, false), (1, true), (5, true)] {
            let x: Vec<f32> = (0..rows * 3).map(|i| i as f32 * 0.3 - 1.0).collect();
            let x = Tensor::from_f32s(vec![rows, 3], x).unwrap();
            let g = qkv(rows, int8);
            let want = outputs(&g, &x);
            let merged = merged(g);
            assert_eq!(merged.node_count(), 1);
            assert_eq!(outputs(&merged, &x), want, "rows {rows} int8 {int8}");
        }
    }

    #[test]
    fn linears_with_different_activations_stay_apart() {
        for int8 in [false, true] {
            let mut g = qkv(1, int8);
            let id = g.node_ids()[0];
            match &mut g.node_mut(id).op {
                Op::Linear(l) => l.activation = Activation::Relu,
                Op::QLinear(l) => l.activation = Activation::Relu,
                _ => unreachable!(),
            }
            assert!(MergeLinears.run(&mut g).unwrap());
            assert_eq!(g.node_count(), 2);
        }
    }
}
