//! Keep broadcasts small: convert before expanding, let elementwise ops and reductions read
//! the tensor an `Expand` broadcasts instead of its copy (sentence-transformers' masked mean
//! pooling expands the attention mask to `[batch, seq, hidden]` three times over).
//!
//! Before: `y = Cast[to](Expand[s](x))`, the expanded tensor read only by the Cast, `x`
//! smaller than `y` → after: `y = Expand[s](Cast[to](x))`.
//! Before: `z = Binary(a, Expand[s](b))` (either operand) where broadcasting `a` with `b`
//! already gives `z`'s shape → after: `z = Binary(a, b)`.
//! Before: `r = Reduce[axes](Expand[s](b))`, `b` of the expanded rank and not broadcast
//! along any reduced axis → after: `r = Expand[shape of r](Reduce[axes](b))` (each output
//! folds the same elements in the same order, so the values are identical).
//! An `Expand` left without readers is removed by dead-node elimination.
use super::{Pass, replace_nodes, rewrite_each};
use crate::error::{Error, Result};
use crate::ir::{Graph, NodeId, ValueId};
use crate::ops::Op;
use crate::ops::cast::Cast;
use crate::ops::expand::Expand;
use crate::ops::reduce::Reduce;
use crate::ops::util::broadcast_shapes;

pub struct SimplifyBroadcasts;

const PASS: &str = "simplify_broadcasts";

impl Pass for SimplifyBroadcasts {
    fn name(&self) -> &'static str {
        PASS
    }

    fn run(&self, graph: &mut Graph) -> Result<bool> {
        rewrite_each(graph, |graph, id| match &graph.node(id).op {
            Op::Cast(c) => {
                let to = c.to;
                cast_before_expand(graph, id, to)
            }
            Op::Binary(_) => Ok(binary_reads_unexpanded(graph, id)),
            Op::Reduce(r) => {
                let r = r.clone();
                reduce_unexpanded(graph, id, r)
            }
            _ => Ok(false),
        })
    }
}

/// The `Expand` producing `v`: its node, input and op.
fn expand_of(graph: &Graph, v: ValueId) -> Option<(NodeId, ValueId, Expand)> {
    let p = graph.value(v).producer?;
    match &graph.node(p).op {
        Op::Expand(e) => Some((p, graph.node(p).inputs[0], e.clone())),
        _ => None,
    }
}

fn cast_before_expand(graph: &mut Graph, id: NodeId, to: crate::ir::DType) -> Result<bool> {
    let node = graph.node(id);
    let (t, y) = (node.inputs[0], node.outputs[0]);
    let Some((e, x, expand)) = expand_of(graph, t) else {
        return Ok(false);
    };
    if graph.use_count(t) != 1
        || graph.outputs.contains(&t)
        || graph.ty(x).numel() >= graph.ty(t).numel()
    {
        return Ok(false);
    }
    let (cast_name, expand_name) = (node.name.clone(), graph.node(e).name.clone());
    let narrow_name = format!("{cast_name}.narrow");
    let (_, narrow) = graph
        .add_node(
            narrow_name.clone(),
            "Cast",
            Op::Cast(Cast { to }),
            vec![x],
            &[narrow_name],
        )
        .map_err(|err| Error::Internal(format!("{PASS}: {err}")))?;
    replace_nodes(
        graph,
        PASS,
        &[e, id],
        y,
        expand_name,
        "Expand",
        Op::Expand(expand),
        vec![narrow[0]],
        &[],
    )?;
    Ok(true)
}

fn binary_reads_unexpanded(graph: &mut Graph, id: NodeId) -> bool {
    let node = graph.node(id);
    let out_shape = graph.ty(node.outputs[0]).shape.clone();
    let inputs = node.inputs.clone();
    let mut changed = false;
    for (side, &input) in inputs.iter().enumerate().take(2) {
        let Some((_, b, _)) = expand_of(graph, input) else {
            continue;
        };
        let other = graph.node(id).inputs[1 - side];
        let direct = broadcast_shapes(&[&graph.ty(other).shape, &graph.ty(b).shape]);
        if direct.is_ok_and(|s| s == out_shape) {
            graph.node_mut(id).inputs[side] = b;
            graph.rebuild_edges();
            changed = true;
        }
    }
    changed
}

fn reduce_unexpanded(graph: &mut Graph, id: NodeId, reduce: Reduce) -> Result<bool> {
    let node = graph.node(id);
    let (t, r) = (node.inputs[0], node.outputs[0]);
    let Some((_, b, _)) = expand_of(graph, t) else {
        return Ok(false);
    };
    let (bs, ts) = (&graph.ty(b).shape, &graph.ty(t).shape);
    if bs.len() != ts.len() || reduce.axes.iter().any(|&a| bs.get(a) != ts.get(a)) {
        return Ok(false);
    }
    let r_shape = graph.ty(r).shape.clone();
    let name = node.name.clone();
    let narrow_name = format!("{name}.unexpanded");
    let (_, narrow) = graph
        .add_node(
            narrow_name.clone(),
            "Reduce",
            Op::Reduce(reduce),
            vec![b],
            &[narrow_name],
        )
        .map_err(|err| Error::Internal(format!("{PASS}: {err}")))?;
    if broadcast_shapes(&[&graph.ty(narrow[0]).shape, &r_shape]).ok() != Some(r_shape.clone()) {
        return Err(Error::Internal(format!(
            "{PASS}: {name}: reduced operand does not broadcast to {r_shape:?}"
        )));
    }
    replace_nodes(
        graph,
        PASS,
        &[id],
        r,
        format!("{name}.expand"),
        "Expand",
        Op::Expand(Expand { shape: r_shape }),
        narrow,
        &[],
    )?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{DType, Tensor, TensorType, printer::print};
    use crate::ops::binary::{Binary, BinaryKind};
    use crate::ops::reshape::Reshape;
    use runtime_core::kernels::reduce::ReduceKind;

    fn add(g: &mut Graph, name: &str, op: Op, inputs: Vec<ValueId>) -> ValueId {
        let out = format!("{name}.out");
        g.add_node(name, name, op, inputs, &[out]).unwrap().1[0]
    }

    /// Sentence-transformers' mean pooling: `sum(h · m, seq) / max(sum(m, seq), ε)` with
    /// the mask `m` (i64 `[1, 5]`) unsqueezed, expanded to `h`'s `[1, 5, 4]` and cast.
    fn mean_pooling() -> Graph {
        let mut g = Graph::new(17);
        let h = g.add_value("h", TensorType::new(DType::F32, vec![1, 5, 4]));
        let m = g.add_value("m", TensorType::new(DType::I64, vec![1, 5]));
        g.inputs.extend([h, m]);
        let u = add(
            &mut g,
            "unsqueeze",
            Op::Reshape(Reshape {
                shape: vec![1, 5, 1],
            }),
            vec![m],
        );
        let e = add(
            &mut g,
            "expand",
            Op::Expand(Expand {
                shape: vec![1, 5, 4],
            }),
            vec![u],
        );
        let c = add(&mut g, "cast", Op::Cast(Cast { to: DType::F32 }), vec![e]);
        let binary = |kind| Op::Binary(Binary { kind });
        let hm = add(&mut g, "mul", binary(BinaryKind::Mul), vec![h, c]);
        let sum = |name: &str| {
            Op::Reduce(Reduce {
                kind: ReduceKind::Sum,
                axes: vec![1],
                keepdims: name == "keep",
            })
        };
        let num = add(&mut g, "sum", sum("drop"), vec![hm]);
        let den = add(&mut g, "count", sum("drop"), vec![c]);
        let eps = g.add_constant("eps", Tensor::from_f32s(vec![1], vec![1e-9]).unwrap());
        let den = add(&mut g, "clip", binary(BinaryKind::Max), vec![den, eps]);
        let y = add(&mut g, "div", binary(BinaryKind::Div), vec![num, den]);
        g.outputs.push(y);
        g
    }

    fn run_and_eval(g: &Graph) -> Vec<f64> {
        let h = Tensor::from_f32s(
            vec![1, 5, 4],
            (0..20).map(|i| i as f32 * 0.25 - 2.0).collect(),
        )
        .unwrap();
        let m = Tensor::from_i64s(vec![1, 5], vec![1, 1, 0, 1, 0]).unwrap();
        crate::eval::evaluate(g, &[h, m]).unwrap()[0].to_f64_vec()
    }

    #[test]
    fn mean_pooling_reads_the_mask_unexpanded() {
        let mut g = mean_pooling();
        let before = run_and_eval(&g);
        assert!(SimplifyBroadcasts.run(&mut g).unwrap());
        crate::passes::eliminate_dead_nodes::EliminateDeadNodes
            .run(&mut g)
            .unwrap();
        crate::ir::verify::verify(&g).unwrap();
        assert_eq!(run_and_eval(&g), before);
        insta::assert_snapshot!(print(&g).unwrap());
    }

    #[test]
    fn a_reduction_along_the_broadcast_axis_reads_the_expand() {
        let mut g = Graph::new(17);
        let x = g.add_value("x", TensorType::new(DType::F32, vec![2, 1]));
        g.inputs.push(x);
        let e = add(
            &mut g,
            "expand",
            Op::Expand(Expand { shape: vec![2, 3] }),
            vec![x],
        );
        let r = Op::Reduce(Reduce {
            kind: ReduceKind::Sum,
            axes: vec![1],
            keepdims: false,
        });
        let y = add(&mut g, "sum", r, vec![e]);
        g.outputs.push(y);
        assert!(!SimplifyBroadcasts.run(&mut g).unwrap());
    }
}
