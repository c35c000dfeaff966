//! Fuse RMS normalisation, as torch exports it (and as the checkpoint builders and the
//! `SimplifiedLayerNormalization` constructor compose it), into one `RmsNorm` op.
//!
//! Before: `s = Pow(x, 2)` or `Mul(x, x)`; `m = ReduceMean{axes=[last], keepdims}(s)`;
//! `v = Add(m, eps)` (either order, `eps` a scalar constant); `r = Sqrt(v)`; then
//! `y = Div(x, r)`, or `i = Div(1, r)` / `Reciprocal(r)` and `y = Mul(x, i)` (either order);
//! optionally `z = Mul(y, w)` (either order) with `w` a constant of the last axis's length
//! (or one element) that broadcasts along the last axis only. Every intermediate is read
//! only inside the pattern. After: `z = RmsNorm{epsilon}(x, [w])`.
use super::fuse_linear::sole_consumer;
use super::{Pass, replace_nodes, rewrite_each};
use crate::error::Result;
use crate::ir::{DType, Graph, NodeId, ValueId};
use crate::ops::Op;
use crate::ops::binary::BinaryKind;
use crate::ops::rms_norm::RmsNorm;
use crate::ops::unary::UnaryKind;
use runtime_core::kernels::reduce::ReduceKind;

pub struct FuseRmsNorm;

pub(crate) fn scalar(graph: &Graph, v: ValueId) -> Option<f64> {
    graph
        .constant(v)
        .filter(|t| t.ty.numel() == 1)
        .and_then(|t| t.scalar_f64().ok())
}

pub(crate) fn binary(graph: &Graph, id: NodeId, kind: BinaryKind) -> Option<(ValueId, ValueId)> {
    match &graph.node(id).op {
        Op::Binary(b) if b.kind == kind => {
            let n = graph.node(id);
            Some((n.inputs[0], n.inputs[1]))
        }
        _ => None,
    }
}

/// The other operand of a two-input node with `v` as one operand.
pub(crate) fn other(pair: (ValueId, ValueId), v: ValueId) -> Option<ValueId> {
    if pair.0 == v {
        Some(pair.1)
    } else if pair.1 == v {
        Some(pair.0)
    } else {
        None
    }
}

struct Matched {
    x: ValueId,
    weight: Option<ValueId>,
    epsilon: f32,
    divide: bool,
    out: ValueId,
    nodes: Vec<NodeId>,
}

/// The pattern around the `ReduceMean` node `mean`.
fn match_rms(graph: &Graph, mean: NodeId) -> Option<Matched> {
    let Op::Reduce(r) = &graph.node(mean).op else {
        return None;
    };
    let s = graph.node(mean).inputs[0];
    let rank = graph.ty(s).rank();
    if r.kind != ReduceKind::Mean || !r.keepdims || rank == 0 || r.axes != [rank - 1] {
        return None;
    }
    let sq = graph.value(s).producer?;
    let x = match (
        binary(graph, sq, BinaryKind::Pow),
        binary(graph, sq, BinaryKind::Mul),
    ) {
        (Some((x, two)), _) if scalar(graph, two) == Some(2.0) => x,
        (_, Some((a, b))) if a == b => a,
        _ => return None,
    };
    let xt = graph.ty(x);
    if xt.dtype != DType::F32 || graph.ty(s) != xt || sole_consumer(graph, s) != Some(mean) {
        return None;
    }
    let m = graph.node(mean).outputs[0];
    let add = sole_consumer(graph, m)?;
    let eps_v = other(binary(graph, add, BinaryKind::Add)?, m)?;
    let epsilon = scalar(graph, eps_v)? as f32;
    let v = graph.node(add).outputs[0];
    if graph.ty(v) != graph.ty(m) {
        return None;
    }
    let sqrt = sole_consumer(graph, v)?;
    if !matches!(&graph.node(sqrt).op, Op::Unary(u) if u.kind == UnaryKind::Sqrt) {
        return None;
    }
    let rt = graph.node(sqrt).outputs[0];
    let next = sole_consumer(graph, rt)?;
    let mut nodes = vec![sq, mean, add, sqrt, next];
    let divide = binary(graph, next, BinaryKind::Div) == Some((x, rt));
    let y_node = if divide {
        next
    } else {
        let recip = match (binary(graph, next, BinaryKind::Div), &graph.node(next).op) {
            (Some((one, d)), _) if d == rt && scalar(graph, one) == Some(1.0) => true,
            (_, Op::Unary(u)) => u.kind == UnaryKind::Reciprocal,
            _ => false,
        };
        let inv = graph.node(next).outputs[0];
        if !recip || graph.ty(inv) != graph.ty(rt) {
            return None;
        }
        let mul = sole_consumer(graph, inv)?;
        if other(binary(graph, mul, BinaryKind::Mul)?, inv)? != x {
            return None;
        }
        nodes.push(mul);
        mul
    };
    let mut out = graph.node(y_node).outputs[0];
    if graph.ty(out) != xt {
        return None;
    }
    let mut weight = None;
    if let Some(wm) = sole_consumer(graph, out)
        && let Some(pair) = binary(graph, wm, BinaryKind::Mul)
        && let Some(w) = other(pair, out)
        && let Some(t) = graph.constant(w)
    {
        let cols = xt.shape[rank - 1];
        let along_last = t.ty.shape.iter().rev().skip(1).all(|&d| d == 1)
            && t.ty.rank() <= rank
            && (t.ty.numel() == 1 || t.ty.shape.last() == Some(&cols));
        let wo = graph.node(wm).outputs[0];
        if t.ty.dtype == DType::F32 && along_last && graph.ty(wo) == xt {
            weight = Some(w);
            nodes.push(wm);
            out = wo;
        }
    }
    Some(Matched {
        x,
        weight,
        epsilon,
        divide,
        out,
        nodes,
    })
}

impl Pass for FuseRmsNorm {
    fn name(&self) -> &'static str {
        "fuse_rms_norm"
    }

    fn run(&self, graph: &mut Graph) -> Result<bool> {
        rewrite_each(graph, |graph, id| {
            let Some(m) = match_rms(graph, id) else {
                return Ok(false);
            };
            let last = *m.nodes.last().unwrap_or(&id);
            let name = format!("{}.rms_norm", graph.node(last).name);
            let mut inputs = vec![m.x];
            inputs.extend(m.weight);
            let op = Op::RmsNorm(RmsNorm {
                epsilon: m.epsilon,
                divide: m.divide,
            });
            let pass = self.name();
            replace_nodes(
                graph,
                pass,
                &m.nodes,
                m.out,
                name,
                "RMSNormalization",
                op,
                inputs,
                &[],
            )?;
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Tensor, TensorType, printer::print};
    use crate::ops::reduce::Reduce;
    use crate::passes::test_util::{bin, un};

    /// torch's llama2.c export (`Pow`, `Div(1, ·)`, `Mul`, `Mul(w)`) when `torch_style`,
    /// else the checkpoint builder's (`Mul(x, x)`, `Div(x, ·)`, `Mul(w)`).
    fn graph(torch_style: bool) -> Graph {
        let mut g = Graph::new(17);
        let x = g.add_value("x", TensorType::new(DType::F32, vec![1, 3, 8]));
        g.inputs.push(x);
        let c = |g: &mut Graph, name: &str, v: f32| {
            g.add_constant(name, Tensor::from_f32s(vec![], vec![v]).unwrap())
        };
        let two = c(&mut g, "two", 2.0);
        let eps = c(&mut g, "eps", 1e-5);
        let one = c(&mut g, "one", 1.0);
        let w = g.add_constant("w", Tensor::from_f32s(vec![8], vec![0.5; 8]).unwrap());
        let s = if torch_style {
            bin(&mut g, "pow", BinaryKind::Pow, x, two)
        } else {
            bin(&mut g, "square", BinaryKind::Mul, x, x)
        };
        let reduce = Op::Reduce(Reduce {
            kind: ReduceKind::Mean,
            axes: vec![2],
            keepdims: true,
        });
        let m = g
            .add_node("mean", "ReduceMean", reduce, vec![s], &["m".into()])
            .unwrap()
            .1[0];
        let v = bin(&mut g, "add", BinaryKind::Add, m, eps);
        let r = un(&mut g, "sqrt", UnaryKind::Sqrt, v);
        let y = if torch_style {
            let inv = bin(&mut g, "div", BinaryKind::Div, one, r);
            bin(&mut g, "mul", BinaryKind::Mul, x, inv)
        } else {
            bin(&mut g, "divide", BinaryKind::Div, x, r)
        };
        let z = bin(&mut g, "scale", BinaryKind::Mul, y, w);
        g.outputs.push(z);
        g
    }

    #[test]
    fn torch_rms_norm_becomes_one_op() {
        for torch_style in [true, false] {
            let mut g = graph(torch_style);
            assert!(FuseRmsNorm.run(&mut g).unwrap());
            crate::passes::eliminate_dead_nodes::EliminateDeadNodes
                .run(&mut g)
                .unwrap();
            crate::ir::verify::verify(&g).unwrap();
            insta::assert_snapshot!(
                format!("torch_rms_norm_becomes_one_op_{torch_style}"),
                print(&g).unwrap()
            );
        }
    }

    #[test]
    fn a_shared_intermediate_blocks_the_fusion() {
        let mut g = graph(true);
        let m = g.node(g.node_ids()[1]).outputs[0];
        g.outputs.push(m);
        assert!(!FuseRmsNorm.run(&mut g).unwrap());
    }
}
