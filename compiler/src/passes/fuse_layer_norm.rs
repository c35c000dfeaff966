//! Fuse layer normalisation as exported decomposed (torch with opset ≤ 16, TF and
//! Hugging Face code that spells it out) into one `LayerNorm` op.
//!
//! Before: `m = ReduceMean{axes=[a..], keepdims}(x)`; `d = Sub(x, m)`;
//! `s = Pow(d, 2)` or `Mul(d, d)`; `v = ReduceMean{same axes}(s)`; `e = Add(v, eps)` (either
//! order, `eps` a scalar constant); `r = Sqrt(e)`; then `n = Div(d, r)`, or
//! `i = Reciprocal(r)` / `Div(1, r)` and `n = Mul(d, i)` (either order); optionally
//! `y = Mul(n, γ)` and then `z = Add(y, β)` (either order), `γ`/`β` constants with the
//! normalised axes' shape (or one element). `d` is read only by the square and the
//! division; every other intermediate only by the next node.
//! After: `z = LayerNorm{axis=a, epsilon}(x, γ, [β])` (`γ` a one-element 1 when absent).
use super::fuse_linear::sole_consumer;
use super::fuse_rms_norm::{binary, other, scalar};
use super::{Pass, replace_nodes, rewrite_each};
use crate::error::{Error, Result};
use crate::ir::{DType, Graph, NodeId, Tensor, ValueId};
use crate::ops::Op;
use crate::ops::binary::BinaryKind;
use crate::ops::layer_norm::LayerNorm;
use crate::ops::unary::UnaryKind;
use runtime_core::kernels::reduce::ReduceKind;

pub struct FuseLayerNorm;

/// The trailing axes `[a..rank)` a keepdims `ReduceMean` node averages, as `a`.
fn mean_axis(graph: &Graph, id: NodeId) -> Option<usize> {
    let Op::Reduce(r) = &graph.node(id).op else {
        return None;
    };
    let rank = graph.ty(graph.node(id).inputs[0]).rank();
    let first = *r.axes.first()?;
    let trailing = r.axes.iter().copied().eq(first..rank);
    (r.kind == ReduceKind::Mean && r.keepdims && trailing).then_some(first)
}

fn unary(graph: &Graph, id: NodeId, kind: UnaryKind) -> Option<ValueId> {
    match &graph.node(id).op {
        Op::Unary(u) if u.kind == kind => Some(graph.node(id).inputs[0]),
        _ => None,
    }
}

/// A constant that broadcasts over the normalised axes `shape[axis..]` only.
fn affine(graph: &Graph, v: ValueId, shape: &[usize], axis: usize) -> bool {
    let Some(t) = graph.constant(v) else {
        return false;
    };
    let strip = |s: &[usize]| -> Vec<usize> { s.iter().copied().skip_while(|&d| d == 1).collect() };
    t.ty.dtype == DType::F32
        && t.ty.rank() <= shape.len()
        && (t.ty.numel() == 1 || strip(&t.ty.shape) == strip(&shape[axis..]))
}

struct Matched {
    x: ValueId,
    axis: usize,
    epsilon: f32,
    scale: Option<ValueId>,
    bias: Option<ValueId>,
    out: ValueId,
    nodes: Vec<NodeId>,
}

/// The pattern around the first `ReduceMean` node `mean`.
fn match_layer_norm(graph: &Graph, mean: NodeId) -> Option<Matched> {
    let axis = mean_axis(graph, mean)?;
    let x = graph.node(mean).inputs[0];
    let xt = graph.ty(x).clone();
    if xt.dtype != DType::F32 {
        return None;
    }
    let m = graph.node(mean).outputs[0];
    let sub = sole_consumer(graph, m)?;
    if binary(graph, sub, BinaryKind::Sub)? != (x, m) {
        return None;
    }
    let d = graph.node(sub).outputs[0];
    if graph.ty(d) != &xt || graph.outputs.contains(&d) {
        return None;
    }
    // `d` feeds the square and the division, nothing else.
    let readers = graph.consumers(d);
    let [r0, r1] = readers.as_slice() else {
        return None;
    };
    let is_square = |id: NodeId| match (
        binary(graph, id, BinaryKind::Pow),
        binary(graph, id, BinaryKind::Mul),
    ) {
        (Some((b, two)), _) => b == d && scalar(graph, two) == Some(2.0),
        (_, Some(pair)) => pair == (d, d),
        _ => false,
    };
    let (sq, div) = if is_square(*r0) {
        (*r0, *r1)
    } else {
        (*r1, *r0)
    };
    if !is_square(sq) {
        return None;
    }
    let s = graph.node(sq).outputs[0];
    let mean2 = sole_consumer(graph, s)?;
    if mean_axis(graph, mean2) != Some(axis) || graph.ty(s) != &xt {
        return None;
    }
    let v = graph.node(mean2).outputs[0];
    let add = sole_consumer(graph, v)?;
    let epsilon = scalar(graph, other(binary(graph, add, BinaryKind::Add)?, v)?)? as f32;
    let e = graph.node(add).outputs[0];
    if graph.ty(e) != graph.ty(v) {
        return None;
    }
    let sqrt = sole_consumer(graph, e)?;
    unary(graph, sqrt, UnaryKind::Sqrt)?;
    let r = graph.node(sqrt).outputs[0];
    let mut nodes = vec![mean, sub, sq, mean2, add, sqrt];
    if binary(graph, div, BinaryKind::Div) != Some((d, r)) {
        // d · (1 / r)
        let recip = sole_consumer(graph, r)?;
        let inverse = unary(graph, recip, UnaryKind::Reciprocal) == Some(r)
            || matches!(binary(graph, recip, BinaryKind::Div), Some((one, b)) if b == r && scalar(graph, one) == Some(1.0));
        let inv = graph.node(recip).outputs[0];
        if !inverse
            || graph.ty(inv) != graph.ty(r)
            || other(binary(graph, div, BinaryKind::Mul)?, d)? != inv
        {
            return None;
        }
        nodes.push(recip);
    } else if sole_consumer(graph, r) != Some(div) {
        return None;
    }
    nodes.push(div);
    let mut out = graph.node(div).outputs[0];
    if graph.ty(out) != &xt {
        return None;
    }
    let mut take = |kind: BinaryKind, out: &mut ValueId| -> Option<ValueId> {
        let next = sole_consumer(graph, *out)?;
        let c = other(binary(graph, next, kind)?, *out)?;
        let o = graph.node(next).outputs[0];
        if !affine(graph, c, &xt.shape, axis) || graph.ty(o) != &xt {
            return None;
        }
        nodes.push(next);
        *out = o;
        Some(c)
    };
    let scale = take(BinaryKind::Mul, &mut out);
    let bias = take(BinaryKind::Add, &mut out);
    Some(Matched {
        x,
        axis,
        epsilon,
        scale,
        bias,
        out,
        nodes,
    })
}

impl Pass for FuseLayerNorm {
    fn name(&self) -> &'static str {
        "fuse_layer_norm"
    }

    fn run(&self, graph: &mut Graph) -> Result<bool> {
        rewrite_each(graph, |graph, id| {
            let Some(m) = match_layer_norm(graph, id) else {
                return Ok(false);
            };
            let last = *m.nodes.last().unwrap_or(&id);
            let name = format!("{}.layer_norm", graph.node(last).name);
            let scale = match m.scale {
                Some(s) => s,
                None => {
                    let one = Tensor::from_f32s(vec![1], vec![1.0])
                        .map_err(|e| Error::Internal(format!("fuse_layer_norm: {e}")))?;
                    graph.add_constant(format!("{name}.scale"), one)
                }
            };
            let mut inputs = vec![m.x, scale];
            inputs.extend(m.bias);
            let op = Op::LayerNorm(LayerNorm {
                axis: m.axis,
                epsilon: m.epsilon,
            });
            let (pass, op_type) = (self.name(), "LayerNormalization");
            replace_nodes(graph, pass, &m.nodes, m.out, name, op_type, op, inputs, &[])?;
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{TensorType, printer::print};
    use crate::ops::reduce::Reduce;
    use crate::passes::test_util::{bin, un};

    fn mean(g: &mut Graph, name: &str, x: ValueId) -> ValueId {
        let reduce = Op::Reduce(Reduce {
            kind: ReduceKind::Mean,
            axes: vec![2],
            keepdims: true,
        });
        g.add_node(
            name,
            "ReduceMean",
            reduce,
            vec![x],
            &[format!("{name}.out")],
        )
        .unwrap()
        .1[0]
    }

    /// torch ≤ opset 16 (`Pow`, `Div`, `Mul(γ)`, `Add(β)`) when `torch_style`, else a
    /// hand-written one (`Mul(d, d)`, `Reciprocal`, `Mul`, no γ/β).
    fn graph(torch_style: bool) -> Graph {
        let mut g = Graph::new(16);
        let x = g.add_value("x", TensorType::new(DType::F32, vec![1, 3, 8]));
        g.inputs.push(x);
        let c = |g: &mut Graph, name: &str, v: f32| {
            g.add_constant(name, Tensor::from_f32s(vec![], vec![v]).unwrap())
        };
        let two = c(&mut g, "two", 2.0);
        let eps = c(&mut g, "eps", 1e-5);
        let ramp = |k: f32| (0..8).map(|i| 1.0 + k * i as f32).collect::<Vec<_>>();
        let w = g.add_constant("gamma", Tensor::from_f32s(vec![8], ramp(0.25)).unwrap());
        let b = g.add_constant("beta", Tensor::from_f32s(vec![8], ramp(-0.5)).unwrap());
        let m = mean(&mut g, "mean", x);
        let d = bin(&mut g, "sub", BinaryKind::Sub, x, m);
        let s = if torch_style {
            bin(&mut g, "pow", BinaryKind::Pow, d, two)
        } else {
            bin(&mut g, "square", BinaryKind::Mul, d, d)
        };
        let v = mean(&mut g, "mean_1", s);
        let e = bin(&mut g, "add", BinaryKind::Add, eps, v);
        let r = un(&mut g, "sqrt", UnaryKind::Sqrt, e);
        let out = if torch_style {
            let n = bin(&mut g, "div", BinaryKind::Div, d, r);
            let y = bin(&mut g, "mul", BinaryKind::Mul, n, w);
            bin(&mut g, "add_1", BinaryKind::Add, b, y)
        } else {
            let i = un(&mut g, "recip", UnaryKind::Reciprocal, r);
            bin(&mut g, "mul", BinaryKind::Mul, i, d)
        };
        g.outputs.push(out);
        g
    }

    #[test]
    fn decomposed_layer_norm_becomes_one_op() {
        for torch_style in [true, false] {
            let mut g = graph(torch_style);
            let x: Vec<f32> = (0..24).map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0).collect();
            let input = [Tensor::from_f32s(vec![1, 3, 8], x).unwrap()];
            let before = crate::eval::evaluate(&g, &input).unwrap();
            assert!(FuseLayerNorm.run(&mut g).unwrap());
            crate::passes::eliminate_dead_nodes::EliminateDeadNodes
                .run(&mut g)
                .unwrap();
            crate::ir::verify::verify(&g).unwrap();
            let after = crate::eval::evaluate(&g, &input).unwrap();
            for (a, b) in before[0]
                .data
                .to_f64_vec()
                .iter()
                .zip(after[0].data.to_f64_vec())
            {
                assert!((a - b).abs() < 1e-5, "{a} vs {b}");
            }
            insta::assert_snapshot!(
                format!("decomposed_layer_norm_becomes_one_op_{torch_style}"),
                print(&g).unwrap()
            );
        }
    }

    #[test]
    fn a_centred_value_read_elsewhere_blocks_the_fusion() {
        let mut g = graph(true);
        let sub = g.node_ids()[1];
        let d = g.node(sub).outputs[0];
        g.outputs.push(d);
        assert!(!FuseLayerNorm.run(&mut g).unwrap());
    }
}
