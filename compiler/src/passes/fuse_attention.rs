//! Fuse scaled-dot-product attention into one `Attention` op that never materialises more
//! than a tile of scores.
//!
//! Before (as torch exports BERT, GPT-2 and Llama attention; the scaling of `q`/`k` stays a
//! separate op before the pattern):
//! `s = MatMul(q, kt)`; optionally `s' = Mul(s, c)` or `Div(s, c)` with a scalar constant
//! `c`; optionally `x = Add(s', mask)` (either order);
//! `p = Softmax{last axis}(x)`; optionally `p' = Where(IsNaN(p), 0, p)`; `o = MatMul(p', v)`,
//! every intermediate read only inside the pattern and `q`, `kt`, `v` of one rank with equal
//! leading axes. After: `o, scratch = Attention{mask, scale, nan_to_zero, rows}(q, kt, [mask], v)`.
use super::fuse_linear::sole_consumer;
use super::{Pass, replace_nodes, rewrite_each};
use crate::error::Result;
use crate::ir::{DType, Graph, NodeId, ValueId};
use crate::ops::Op;
use crate::ops::attention::Attention;
use crate::ops::binary::BinaryKind;
use crate::ops::unary::UnaryKind;
use crate::target::GemmTiling;
use runtime_core::kernels::gemm::Tiles;

pub struct FuseAttention {
    pub tiling: GemmTiling,
}

fn producer(graph: &Graph, v: ValueId) -> Option<NodeId> {
    graph.value(v).producer
}

/// The matched pattern ending at the product with `v`.
struct Matched {
    q: ValueId,
    kt: ValueId,
    mask: Option<ValueId>,
    v: ValueId,
    scale: f32,
    nan_to_zero: bool,
    nodes: Vec<NodeId>,
}

/// `Mul(x, c)`, `Mul(c, x)` or `Div(x, c)` with a scalar constant `c`: `(x, factor)`.
fn scaled(graph: &Graph, id: NodeId) -> Option<(ValueId, f32)> {
    let Op::Binary(b) = &graph.node(id).op else {
        return None;
    };
    let n = graph.node(id);
    let (a, c) = (n.inputs[0], n.inputs[1]);
    let value = |v: ValueId| {
        graph
            .constant(v)
            .filter(|t| t.ty.numel() == 1)
            .and_then(|t| t.scalar_f64().ok())
    };
    match b.kind {
        BinaryKind::Mul => match (value(a), value(c)) {
            (None, Some(f)) => Some((a, f as f32)),
            (Some(f), None) => Some((c, f as f32)),
            _ => None,
        },
        BinaryKind::Div => value(c)
            .filter(|&f| f != 0.0)
            .map(|f| (a, (1.0 / f) as f32)),
        _ => None,
    }
}

fn match_attention(graph: &Graph, pv: NodeId) -> Option<Matched> {
    let node = graph.node(pv);
    let Op::MatMul(_) = node.op else { return None };
    let (mut p, v) = (node.inputs[0], node.inputs[1]);
    let mut nodes = vec![pv];
    let mut nan_to_zero = false;
    // Optional Where(IsNaN(sm), 0, sm).
    if let Some(w) = producer(graph, p)
        && let Op::Where(_) = graph.node(w).op
    {
        let wn = graph.node(w);
        let (cond, zero, sm) = (wn.inputs[0], wn.inputs[1], wn.inputs[2]);
        let isnan = producer(graph, cond)?;
        let is_isnan = matches!(&graph.node(isnan).op, Op::Unary(u) if u.kind == UnaryKind::IsNaN);
        let zero_ok = graph
            .constant(zero)
            .is_some_and(|t| t.ty.numel() == 1 && t.scalar_f64().ok() == Some(0.0));
        if !is_isnan
            || !zero_ok
            || graph.node(isnan).inputs[0] != sm
            || sole_consumer(graph, cond) != Some(w)
            || sole_consumer(graph, p) != Some(pv)
            || graph.use_count(sm) != 2
            || graph.outputs.contains(&sm)
            || graph.ty(p) != graph.ty(sm)
        {
            return None;
        }
        nodes.extend([w, isnan]);
        nan_to_zero = true;
        p = sm;
    } else if sole_consumer(graph, p) != Some(pv) {
        return None;
    }
    let sm = producer(graph, p)?;
    let Op::Softmax(s) = &graph.node(sm).op else {
        return None;
    };
    let rank = graph.ty(p).rank();
    if s.log || s.axis + 1 != rank || (s.coerce_2d && rank != 2) {
        return None;
    }
    nodes.push(sm);
    let mut x = graph.node(sm).inputs[0];
    if sole_consumer(graph, x) != Some(sm) {
        return None;
    }
    let mut mask = None;
    let mut scores_node = producer(graph, x)?;
    if let Op::Binary(b) = &graph.node(scores_node).op
        && b.kind == BinaryKind::Add
    {
        let add = graph.node(scores_node);
        let (a, c) = (add.inputs[0], add.inputs[1]);
        let is_qk = |val: ValueId| {
            producer(graph, val).is_some_and(|n| {
                matches!(graph.node(n).op, Op::MatMul(_)) || scaled(graph, n).is_some()
            }) && graph.ty(val).shape == graph.ty(x).shape
        };
        let (s_val, m_val) = if is_qk(a) {
            (a, c)
        } else if is_qk(c) {
            (c, a)
        } else {
            return None;
        };
        if graph.ty(m_val).dtype != DType::F32 {
            return None;
        }
        nodes.push(scores_node);
        mask = Some(m_val);
        x = s_val;
        if sole_consumer(graph, x) != Some(scores_node) {
            return None;
        }
        scores_node = producer(graph, x)?;
    }
    let mut scale = 1.0f32;
    if let Some((inner, factor)) = scaled(graph, scores_node)
        && graph.ty(inner) == graph.ty(x)
        && sole_consumer(graph, inner) == Some(scores_node)
        && producer(graph, inner).is_some_and(|n| matches!(graph.node(n).op, Op::MatMul(_)))
    {
        nodes.push(scores_node);
        scale = factor;
        scores_node = producer(graph, inner)?;
    }
    let Op::MatMul(_) = graph.node(scores_node).op else {
        return None;
    };
    nodes.push(scores_node);
    let (q, kt) = (
        graph.node(scores_node).inputs[0],
        graph.node(scores_node).inputs[1],
    );
    Some(Matched {
        q,
        kt,
        mask,
        v,
        scale,
        nan_to_zero,
        nodes,
    })
}

impl Pass for FuseAttention {
    fn name(&self) -> &'static str {
        "fuse_attention"
    }

    fn run(&self, graph: &mut Graph) -> Result<bool> {
        rewrite_each(graph, |graph, id| {
            let Some(m) = match_attention(graph, id) else {
                return Ok(false);
            };
            let t = self.tiling;
            let op = Attention {
                mask: m.mask.is_some(),
                scale: m.scale,
                nan_to_zero: m.nan_to_zero,
                rows: (4 * t.mr).max(1),
                tiles: Tiles {
                    mr: t.mr,
                    kc: t.kc,
                    mc: t.mc,
                },
                key_rows: false,
                live_offset: None,
            };
            let mut inputs = vec![m.q, m.kt];
            inputs.extend(m.mask);
            inputs.push(m.v);
            // The op must accept these operands (ranks, broadcasting); else leave the graph.
            let types: Vec<_> = inputs.iter().map(|&v| graph.ty(v)).collect();
            if crate::ops::OpDef::infer(&op, &types).is_err() {
                return Ok(false);
            }
            let out = graph.node(id).outputs[0];
            let name = format!("{}.attention", graph.node(id).name);
            let (pass, op) = (self.name(), Op::Attention(op));
            replace_nodes(
                graph,
                pass,
                &m.nodes,
                out,
                name,
                "Attention",
                op,
                inputs,
                &["scores"],
            )?;
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Tensor, TensorType, printer::print};
    use crate::ops::binary::Binary;
    use crate::ops::matmul::MatMul;
    use crate::ops::softmax::Softmax;
    use crate::ops::unary::Unary;
    use crate::ops::where_::Where;

    #[test]
    fn masked_attention_with_nan_guard_becomes_one_op() {
        let mut g = Graph::new(17);
        let f = |s: Vec<usize>| TensorType::new(DType::F32, s);
        let q = g.add_value("q", f(vec![1, 2, 4, 3]));
        let kt = g.add_value("kt", f(vec![1, 2, 3, 5]));
        let v = g.add_value("v", f(vec![1, 2, 5, 3]));
        let mask = g.add_value("mask", f(vec![1, 1, 4, 5]));
        g.inputs.extend([q, kt, v, mask]);
        let mm = |g: &mut Graph, n: &str, a, b| {
            g.add_node(n, "MatMul", Op::MatMul(MatMul {}), vec![a, b], &[n.into()])
                .unwrap()
                .1[0]
        };
        let s = mm(&mut g, "qk", q, kt);
        let add = Op::Binary(Binary {
            kind: BinaryKind::Add,
        });
        let x = g
            .add_node("add", "Add", add, vec![s, mask], &["x".into()])
            .unwrap()
            .1[0];
        let sm = Op::Softmax(Softmax {
            axis: 3,
            log: false,
            coerce_2d: false,
        });
        let p = g
            .add_node("sm", "Softmax", sm, vec![x], &["p".into()])
            .unwrap()
            .1[0];
        let isnan = Op::Unary(Unary {
            kind: UnaryKind::IsNaN,
        });
        let c = g
            .add_node("isnan", "IsNaN", isnan, vec![p], &["c".into()])
            .unwrap()
            .1[0];
        let zero = g.add_constant("zero", Tensor::from_f32s(vec![], vec![0.0]).unwrap());
        let w = g
            .add_node(
                "where",
                "Where",
                Op::Where(Where {}),
                vec![c, zero, p],
                &["w".into()],
            )
            .unwrap()
            .1[0];
        let o = mm(&mut g, "pv", w, v);
        g.outputs.push(o);
        let tiling = crate::target::TargetProfile::load("x86")
            .unwrap()
            .gemm_tiling();
        assert!(FuseAttention { tiling }.run(&mut g).unwrap());
        crate::passes::eliminate_dead_nodes::EliminateDeadNodes
            .run(&mut g)
            .unwrap();
        crate::ir::verify::verify(&g).unwrap();
        insta::assert_snapshot!(print(&g).unwrap());
    }
}
