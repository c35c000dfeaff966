//! Fuse the rotate-half rotary embedding chain (Llama/GPT-NeoX as torch exports it) into one
//! `Rotary` op.
//!
//! Before: `x1 = Slice(x, last axis, 0..d/2)`, `x2 = Slice(x, last axis, d/2..)`,
//! `n = Neg(x2)`, `r = Concat{last axis}(n, x1)`, `a = Mul(x, cos)`, `b = Mul(r, sin)`,
//! `y = Add(a, b)` (products and sum in either order), where `x: f32[..., d]` and `cos`, `sin`
//! broadcast to `x` as its trailing axes; `x1`, `x2`, `n`, `r`, `a`, `b` are read only inside
//! the pattern. After: `y = Rotary(x, cos, sin)`.
use super::fuse_linear::sole_consumer;
use super::{Pass, replace_nodes, rewrite_each};
use crate::error::Result;
use crate::ir::{Graph, NodeId, ValueId};
use crate::ops::Op;
use crate::ops::binary::BinaryKind;
use crate::ops::rotary::{Rotary, geometry};
use crate::ops::unary::UnaryKind;

pub struct FuseRotary;

fn mul(graph: &Graph, v: ValueId) -> Option<(NodeId, ValueId, ValueId)> {
    let id = graph.value(v).producer?;
    match &graph.node(id).op {
        Op::Binary(b) if b.kind == BinaryKind::Mul => {
            let n = graph.node(id);
            Some((id, n.inputs[0], n.inputs[1]))
        }
        _ => None,
    }
}

/// `v = Slice(x, last axis, start..end)` with step 1: `(node, x, start, end)`.
fn half_slice(graph: &Graph, v: ValueId) -> Option<(NodeId, ValueId, i64, i64)> {
    let id = graph.value(v).producer?;
    let Op::Slice(s) = &graph.node(id).op else {
        return None;
    };
    let x = graph.node(id).inputs[0];
    let rank = graph.ty(x).rank();
    if s.axes != [rank.checked_sub(1)?] || s.steps != [1] {
        return None;
    }
    Some((id, x, s.starts[0], s.ends[0]))
}

/// `r = Concat(Neg(x[h..]), x[..h])` over the last axis of `x`: `(nodes, x)`.
fn rotated(graph: &Graph, r: ValueId) -> Option<(Vec<NodeId>, ValueId)> {
    let cat = graph.value(r).producer?;
    let Op::Concat(c) = &graph.node(cat).op else {
        return None;
    };
    let ins = &graph.node(cat).inputs;
    if ins.len() != 2 || c.axis + 1 != graph.ty(r).rank() {
        return None;
    }
    let (n, x1) = (ins[0], ins[1]);
    let neg = graph.value(n).producer?;
    if !matches!(&graph.node(neg).op, Op::Unary(u) if u.kind == UnaryKind::Neg) {
        return None;
    }
    let x2 = graph.node(neg).inputs[0];
    let (s1, x, a1, b1) = half_slice(graph, x1)?;
    let (s2, x_, a2, b2) = half_slice(graph, x2)?;
    let d = *graph.ty(x).shape.last()? as i64;
    let h = d / 2;
    let ok = x == x_
        && d % 2 == 0
        && a1 == 0
        && b1 == h
        && a2 == h
        && b2 >= d
        && sole_consumer(graph, x1) == Some(cat)
        && sole_consumer(graph, x2) == Some(neg)
        && sole_consumer(graph, n) == Some(cat);
    ok.then(|| (vec![cat, neg, s1, s2], x))
}

struct Matched {
    x: ValueId,
    cos: ValueId,
    sin: ValueId,
    nodes: Vec<NodeId>,
}

fn match_rotary(graph: &Graph, add: NodeId) -> Option<Matched> {
    let n = graph.node(add);
    if !matches!(&n.op, Op::Binary(b) if b.kind == BinaryKind::Add) {
        return None;
    }
    let y = n.outputs[0];
    for (p, q) in [(n.inputs[0], n.inputs[1]), (n.inputs[1], n.inputs[0])] {
        let Some((pm, p0, p1)) = mul(graph, p) else {
            continue;
        };
        let Some((qm, q0, q1)) = mul(graph, q) else {
            continue;
        };
        for (r, sin) in [(q0, q1), (q1, q0)] {
            let Some((mut nodes, x)) = rotated(graph, r) else {
                continue;
            };
            let cos = if p0 == x {
                p1
            } else if p1 == x {
                p0
            } else {
                continue;
            };
            let exclusive = sole_consumer(graph, p) == Some(add)
                && sole_consumer(graph, q) == Some(add)
                && sole_consumer(graph, r) == Some(qm)
                && p != q;
            let (xt, ct, st) = (graph.ty(x), graph.ty(cos), graph.ty(sin));
            if !exclusive || graph.ty(y) != xt || geometry(xt, ct, st).is_err() {
                continue;
            }
            nodes.extend([pm, qm, add]);
            return Some(Matched { x, cos, sin, nodes });
        }
    }
    None
}

impl Pass for FuseRotary {
    fn name(&self) -> &'static str {
        "fuse_rotary"
    }

    fn run(&self, graph: &mut Graph) -> Result<bool> {
        rewrite_each(graph, |graph, id| {
            let Some(m) = match_rotary(graph, id) else {
                return Ok(false);
            };
            let y = graph.node(id).outputs[0];
            let name = format!("{}.rotary", graph.node(id).name);
            let inputs = vec![m.x, m.cos, m.sin];
            let op = Op::Rotary(Rotary {});
            replace_nodes(
                graph,
                self.name(),
                &m.nodes,
                y,
                name,
                "Add",
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
    use crate::ir::{DType, TensorType, printer::print};
    use crate::ops::binary::Binary;
    use crate::ops::concat::Concat;
    use crate::ops::slice::Slice;
    use crate::ops::unary::Unary;

    fn graph() -> Graph {
        let mut g = Graph::new(17);
        let f = |s: Vec<usize>| TensorType::new(DType::F32, s);
        let x = g.add_value("x", f(vec![1, 8, 1, 8]));
        let cos = g.add_value("cos", f(vec![1, 1, 1, 8]));
        let sin = g.add_value("sin", f(vec![1, 1, 1, 8]));
        g.inputs.extend([x, cos, sin]);
        let slice = |g: &mut Graph, name: &str, start, end| {
            let op = Op::Slice(Slice {
                starts: vec![start],
                ends: vec![end],
                axes: vec![3],
                steps: vec![1],
            });
            g.add_node(name, "Slice", op, vec![x], &[format!("{name}.out")])
                .unwrap()
                .1[0]
        };
        let x1 = slice(&mut g, "slice", 0, 4);
        let x2 = slice(&mut g, "slice_1", 4, i64::MAX);
        let bin = |g: &mut Graph, name: &str, kind, a, b| {
            g.add_node(
                name,
                "Bin",
                Op::Binary(Binary { kind }),
                vec![a, b],
                &[format!("{name}.out")],
            )
            .unwrap()
            .1[0]
        };
        let a = bin(&mut g, "mul", BinaryKind::Mul, x, cos);
        let neg = Op::Unary(Unary {
            kind: UnaryKind::Neg,
        });
        let n = g
            .add_node("neg", "Neg", neg, vec![x2], &["n".into()])
            .unwrap()
            .1[0];
        let r = g
            .add_node(
                "concat",
                "Concat",
                Op::Concat(Concat { axis: 3 }),
                vec![n, x1],
                &["r".into()],
            )
            .unwrap()
            .1[0];
        let b = bin(&mut g, "mul_1", BinaryKind::Mul, r, sin);
        let y = bin(&mut g, "add", BinaryKind::Add, a, b);
        g.outputs.push(y);
        g
    }

    #[test]
    fn rotate_half_chain_becomes_one_op() {
        let mut g = graph();
        assert!(FuseRotary.run(&mut g).unwrap());
        crate::passes::eliminate_dead_nodes::EliminateDeadNodes
            .run(&mut g)
            .unwrap();
        crate::ir::verify::verify(&g).unwrap();
        insta::assert_snapshot!(print(&g).unwrap());
    }

    #[test]
    fn rotated_value_read_elsewhere_blocks_the_fusion() {
        let mut g = graph();
        let r = g
            .node_ids()
            .into_iter()
            .find(|&n| g.node(n).name == "concat")
            .map(|n| g.node(n).outputs[0])
            .unwrap();
        g.outputs.push(r);
        assert!(!FuseRotary.run(&mut g).unwrap());
    }
}
