//! Merge packed `Linear`s that read the same input into one `Linear` over their weights side
//! by side (attention's Q/K/V projections), so one node computes them all.
//!
//! Before: `y_i = Linear{k, n_i, nr, epilogue e}(x, W_i.packed, b_i?)` for `i = 1..p`, `p ≥ 2`,
//! every `W_i`/`b_i` constant, the same `k`, `nr`, tiles, bias presence and activation, none
//! merged, SwiGLU or residual already. After: `y_1, …, y_p = Linear{k, Σn_i, nr, e,
//! parts: [n_1, …, n_p]}(x, concat(W_i.packed), concat(b_i)?)`: each part stays packed as it
//! was (the blobs are concatenated, so no column of one part shares a panel with another) and
//! writes its own output, so no split or view is needed and any number of rows works.
//! Weights still row-major (`nr == 0`, the portable target) are left alone.
use super::Pass;
use crate::error::{Error, Result};
use crate::ir::{DType, Data, Graph, NodeId, Tensor, TensorType, ValueId};
use crate::ops::Op;
use crate::ops::linear::Linear;
use std::collections::BTreeMap;

pub struct MergeLinears;

/// A single-part packed `Linear` with constant weight (and bias) that may be merged.
fn plain_packed(graph: &Graph, id: NodeId) -> Option<&Linear> {
    let node = graph.node(id);
    let Op::Linear(l) = &node.op else { return None };
    let constant_operands = node.inputs[1..]
        .iter()
        .all(|&v| graph.constant(v).is_some());
    (l.nr != 0 && l.parts.is_empty() && !l.swiglu && !l.residual && constant_operands).then_some(l)
}

/// The f32 data of constants `values` concatenated, as a new constant named after the first.
pub(crate) fn concat_constants(
    graph: &mut Graph,
    values: &[ValueId],
    suffix: &str,
) -> Result<ValueId> {
    let mut data = Vec::new();
    for &v in values {
        let t = graph
            .constant(v)
            .ok_or_else(|| Error::Internal("concat_constants: not a constant".into()))?;
        let d = crate::ops::util::data::<f32>(t)
            .map_err(|e| Error::Internal(format!("concat_constants: {e}")))?;
        data.extend_from_slice(d);
    }
    let ty = TensorType::new(DType::F32, vec![data.len()]);
    let tensor =
        Tensor::new(ty, Data::F32(data)).map_err(|e| Error::Internal(format!("concat: {e}")))?;
    let first = values
        .first()
        .ok_or_else(|| Error::Internal("concat_constants: nothing to concatenate".into()))?;
    let name = format!("{}.{suffix}", graph.value(*first).name);
    Ok(graph.add_constant(name, tensor))
}

/// Replace `nodes` (packed `Linear`s with the same `x`, settings given by `template`) by one
/// `Linear` with `op`'s parts, returning the new node's outputs in the order of `nodes`' .
pub(crate) fn replace_by_merged(
    graph: &mut Graph,
    nodes: &[NodeId],
    op: Linear,
    output_names: Vec<String>,
    suffix: &str,
) -> Result<Vec<ValueId>> {
    let first = nodes
        .first()
        .copied()
        .ok_or_else(|| Error::Internal("merge: no nodes".into()))?;
    let x = graph.node(first).inputs[0];
    let weights: Vec<ValueId> = nodes.iter().map(|&id| graph.node(id).inputs[1]).collect();
    let mut inputs = vec![x, concat_constants(graph, &weights, suffix)?];
    if op.bias {
        let biases: Vec<ValueId> = nodes.iter().map(|&id| graph.node(id).inputs[2]).collect();
        inputs.push(concat_constants(graph, &biases, suffix)?);
    }
    let name = format!("{}.{suffix}", graph.node(first).name);
    let source = graph.node(first).source_op.clone();
    for &id in nodes {
        graph.remove_node(id);
    }
    let (_, outs) = graph
        .add_node(name, source, Op::Linear(op), inputs, &output_names)
        .map_err(|e| Error::Internal(format!("merge Linears: {e}")))?;
    Ok(outs)
}

impl Pass for MergeLinears {
    fn name(&self) -> &'static str {
        "merge_linears"
    }

    fn run(&self, graph: &mut Graph) -> Result<bool> {
        let order = graph
            .topo_order()
            .map_err(|e| Error::Internal(e.to_string()))?;
        // Groups keyed by the input and every setting that must agree, in schedule order.
        let mut groups: BTreeMap<(ValueId, String), Vec<NodeId>> = BTreeMap::new();
        for &id in &order {
            if let Some(l) = plain_packed(graph, id) {
                let key = format!(
                    "{} {} {:?} {} {:?} {}",
                    l.k, l.nr, l.tiles, l.bias, l.activation, l.kernel
                );
                groups
                    .entry((graph.node(id).inputs[0], key))
                    .or_default()
                    .push(id);
            }
        }
        let mut changed = false;
        for nodes in groups.into_values().filter(|g| g.len() >= 2) {
            let Op::Linear(template) = &graph.node(nodes[0]).op else {
                continue;
            };
            let mut op = template.clone();
            let mut old_outputs = Vec::new();
            for &id in &nodes {
                if let Op::Linear(l) = &graph.node(id).op {
                    op.parts.push(l.n);
                }
                old_outputs.push(graph.node(id).outputs[0]);
            }
            op.n = op.parts.iter().sum();
            let names = old_outputs
                .iter()
                .map(|&v| graph.value(v).name.clone())
                .collect();
            let outs = replace_by_merged(graph, &nodes, op, names, "merged")?;
            for (old, new) in old_outputs.into_iter().zip(outs) {
                graph.replace_uses(old, new);
            }
            changed = true;
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::printer::print;
    use crate::passes::pack_linear_weights::PackLinearWeights;

    /// `x: [rows, 3]` read by three Linears (widths 4, 2, 2, biases on all), each output a
    /// graph output; packed for `x86`.
    fn qkv(rows: usize) -> Graph {
        let mut g = Graph::new(17);
        let x = g.add_value("x", TensorType::new(DType::F32, vec![rows, 3]));
        g.inputs.push(x);
        for (name, n) in [("q", 4), ("k", 2), ("v", 2)] {
            let w: Vec<f32> = (0..3 * n).map(|i| (i as f32 + n as f32) * 0.1).collect();
            let w = g.add_constant(
                format!("{name}.w"),
                Tensor::from_f32s(vec![3, n], w).unwrap(),
            );
            let b: Vec<f32> = (0..n).map(|i| i as f32 - 1.0).collect();
            let b = g.add_constant(format!("{name}.b"), Tensor::from_f32s(vec![n], b).unwrap());
            let mut op = Linear::new(3, n);
            op.bias = true;
            let (_, y) = g
                .add_node(
                    format!("{name}_proj"),
                    "MatMul",
                    Op::Linear(op),
                    vec![x, w, b],
                    &[format!("{name}.out")],
                )
                .unwrap();
            g.outputs.push(y[0]);
        }
        let tiling = crate::target::TargetProfile::load("x86")
            .unwrap()
            .gemm_tiling();
        PackLinearWeights { tiling }.run(&mut g).unwrap();
        crate::passes::eliminate_dead_nodes::EliminateDeadNodes
            .run(&mut g)
            .unwrap();
        g
    }

    fn outputs(g: &Graph, x: &Tensor) -> Vec<Vec<f64>> {
        let out = crate::eval::evaluate(g, std::slice::from_ref(x)).unwrap();
        out.iter().map(|t| t.data.to_f64_vec()).collect()
    }

    #[test]
    fn q_k_v_projections_become_one_linear() {
        let mut g = qkv(1);
        assert!(MergeLinears.run(&mut g).unwrap());
        crate::passes::eliminate_dead_nodes::EliminateDeadNodes
            .run(&mut g)
            .unwrap();
        crate::ir::verify::verify(&g).unwrap();
        insta::assert_snapshot!(print(&g).unwrap());
    }

    #[test]
    fn merged_outputs_equal_the_separate_ones_for_one_and_many_rows() {
        for rows in [1, 5] {
            let x: Vec<f32> = (0..rows * 3).map(|i| i as f32 * 0.3 - 1.0).collect();
            let x = Tensor::from_f32s(vec![rows, 3], x).unwrap();
            let g = qkv(rows);
            let want = outputs(&g, &x);
            let mut merged = g.clone();
            assert!(MergeLinears.run(&mut merged).unwrap());
            assert_eq!(merged.node_count(), 1);
            assert_eq!(outputs(&merged, &x), want, "rows {rows}");
        }
    }

    #[test]
    fn linears_with_different_activations_stay_apart() {
        let mut g = qkv(1);
        let id = g.node_ids()[0];
        if let Op::Linear(l) = &mut g.node_mut(id).op {
            l.activation = runtime_core::kernels::gemm::Activation::Relu;
        }
        assert!(MergeLinears.run(&mut g).unwrap());
        assert_eq!(g.node_count(), 2);
    }
}
