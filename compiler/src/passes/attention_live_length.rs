//! Let a decode step's `Attention` skip the key slots its mask hides: the step attends to the
//! filled cache positions only, not to all `max_context` slots.
//!
//! Before (a fixed-slot KV cache export; view ops between `m` and the attention allowed):
//! `c = LessOrEqual(r, p)` (or `Less`) with `r` the constant `[0, 1, …, skv-1]` and `p` one
//! `i64`; `m = Where(c, a, b)` with scalar constants `a` finite and `b ≤ -1e8` (or `-inf`);
//! or, as `make_stateful` masks a growing cache, `m = Where(Greater(r, p), b, a)`;
//! `o = Attention{mask}(q, k, m', v)` where `m'` is `m` reshaped so it varies along the keys
//! only. After: `o = Attention{live_offset=1 (0 for Less)}(q, k, m', v, p)`, which attends
//! to slots `0 ..= p` (`0 .. p`) only, all of them when none is unmasked. The skipped slots'
//! probabilities are `exp(b + score - max)`, zero in f32 for any score below `1e7`.
use super::{Pass, rewrite_each};
use crate::error::Result;
use crate::ir::{DType, Graph, ValueId};
use crate::ops::Op;
use crate::ops::binary::BinaryKind;

/// The largest mask bias treated as "masked".
const MASKED: f64 = -1e8;

pub struct AttentionLiveLength;

/// The slot bound of the mask `m`: `(p, offset)` when slot `j` is unmasked iff
/// `j < p + offset` and masked slots get a bias of at most [`MASKED`].
fn slot_bound(graph: &Graph, mut m: ValueId, skv: usize) -> Option<(ValueId, i64)> {
    while let Some(n) = graph.value(m).producer
        && let Op::Reshape(_) = graph.node(n).op
    {
        m = graph.node(n).inputs[0];
    }
    let w = graph.value(m).producer?;
    let Op::Where(_) = graph.node(w).op else {
        return None;
    };
    let wn = graph.node(w);
    let scalar = |v: ValueId| {
        graph
            .constant(v)
            .filter(|t| t.ty.numel() == 1)
            .and_then(|t| t.scalar_f64().ok())
    };
    let (t, f) = (scalar(wn.inputs[1])?, scalar(wn.inputs[2])?);
    let shape = &graph.ty(m).shape;
    if graph.ty(wn.inputs[0]).shape != *shape || shape.last() != Some(&skv) {
        return None;
    }
    let c = graph.value(wn.inputs[0]).producer?;
    let Op::Binary(bin) = &graph.node(c).op else {
        return None;
    };
    // (slots kept while the condition holds, the offset, the kept and the hidden bias)
    let (offset, a, b) = match bin.kind {
        BinaryKind::LessOrEqual => (1, t, f),
        BinaryKind::Less => (0, t, f),
        BinaryKind::Greater => (1, f, t),
        BinaryKind::GreaterOrEqual => (0, f, t),
        _ => return None,
    };
    if !a.is_finite() || b > MASKED || b.is_nan() {
        return None;
    }
    let (r, p) = (graph.node(c).inputs[0], graph.node(c).inputs[1]);
    let slots = graph.constant(r)?.to_i64_vec().ok()?;
    let rs = &graph.ty(r).shape;
    let is_range = rs.last() == Some(&skv)
        && rs.iter().rev().skip(1).all(|&n| n == 1)
        && slots.len() == skv
        && slots.iter().enumerate().all(|(j, &s)| s == j as i64);
    let pt = graph.ty(p);
    if !is_range || pt.dtype != DType::I64 || pt.numel() != 1 {
        return None;
    }
    Some((p, offset))
}

impl Pass for AttentionLiveLength {
    fn name(&self) -> &'static str {
        "attention_live_length"
    }

    fn run(&self, graph: &mut Graph) -> Result<bool> {
        rewrite_each(graph, |graph, id| {
            let node = graph.node(id);
            let Op::Attention(a) = &node.op else {
                return Ok(false);
            };
            if !a.mask || a.live_offset.is_some() {
                return Ok(false);
            }
            let v = node.inputs[3];
            let skv = graph.ty(v).shape[graph.ty(v).rank() - 2];
            let Some((p, offset)) = slot_bound(graph, node.inputs[2], skv) else {
                return Ok(false);
            };
            let mut bounded = a.clone();
            bounded.live_offset = Some(offset);
            let n = graph.node_mut(id);
            n.op = Op::Attention(bounded);
            n.inputs.push(p);
            graph.rebuild_edges();
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Tensor, TensorType, printer::print};
    use crate::ops::attention::Attention;
    use crate::ops::binary::Binary;
    use crate::ops::reshape::Reshape;
    use crate::ops::where_::Where;
    use runtime_core::kernels::gemm::Tiles;

    fn graph(kind: BinaryKind, masked: f32) -> Graph {
        let mut g = Graph::new(17);
        let f = |s: Vec<usize>| TensorType::new(DType::F32, s);
        let q = g.add_value("q", f(vec![1, 4, 2, 8]));
        let k = g.add_value("k", f(vec![1, 4, 16, 8]));
        let v = g.add_value("v", f(vec![1, 4, 16, 8]));
        let p = g.add_value("pos", TensorType::new(DType::I64, vec![1]));
        g.inputs.extend([q, k, v, p]);
        let r = g.add_constant(
            "slots",
            Tensor::from_i64s(vec![16], (0..16).collect()).unwrap(),
        );
        let zero = g.add_constant("zero", Tensor::from_f32s(vec![], vec![0.0]).unwrap());
        let big = g.add_constant("big", Tensor::from_f32s(vec![], vec![masked]).unwrap());
        let c = g
            .add_node(
                "le",
                "LessOrEqual",
                Op::Binary(Binary { kind }),
                vec![r, p],
                &["c".into()],
            )
            .unwrap()
            .1[0];
        let m = g
            .add_node(
                "w",
                "Where",
                Op::Where(Where {}),
                vec![c, zero, big],
                &["m".into()],
            )
            .unwrap()
            .1[0];
        let m4 = g
            .add_node(
                "rs",
                "Reshape",
                Op::Reshape(Reshape {
                    shape: vec![1, 1, 1, 16],
                }),
                vec![m],
                &["m4".into()],
            )
            .unwrap()
            .1[0];
        let att = Attention {
            mask: true,
            scale: 0.5,
            nan_to_zero: false,
            rows: 4,
            tiles: Tiles {
                mr: 4,
                kc: 64,
                mc: 64,
            },
            key_rows: true,
            live_offset: None,
        };
        let o = g
            .add_node(
                "att",
                "Attention",
                Op::Attention(att),
                vec![q, k, m4, v],
                &["o".into(), "att.scores".into()],
            )
            .unwrap()
            .1[0];
        g.outputs.push(o);
        g
    }

    #[test]
    fn slot_mask_bounds_the_attended_slots() {
        let mut g = graph(BinaryKind::LessOrEqual, -1e9);
        assert!(AttentionLiveLength.run(&mut g).unwrap());
        crate::ir::verify::verify(&g).unwrap();
        insta::assert_snapshot!(print(&g).unwrap());
    }

    #[test]
    fn growing_cache_mask_bounds_the_attended_slots() {
        // `Where(slot > p, 0, -inf)` keeps the *hidden* slots, so it is not a bound; the
        // stateful rewrite's `Where(slot > p, -inf, 0)` is.
        let mut g = graph(BinaryKind::Greater, -1e9);
        assert!(!AttentionLiveLength.run(&mut g).unwrap());
        let mut g = graph(BinaryKind::Greater, -1e9);
        for id in g.node_ids() {
            if g.node(id).name == "w" {
                g.node_mut(id).inputs.swap(1, 2);
            }
        }
        g.rebuild_edges();
        assert!(AttentionLiveLength.run(&mut g).unwrap());
        let att = g
            .node_ids()
            .into_iter()
            .find(|&n| g.node(n).name == "att")
            .unwrap();
        let Op::Attention(a) = &g.node(att).op else {
            unreachable!()
        };
        assert_eq!(a.live_offset, Some(1));
    }

    #[test]
    fn a_small_bias_or_other_comparison_is_left_alone() {
        let mut g = graph(BinaryKind::LessOrEqual, -100.0);
        assert!(!AttentionLiveLength.run(&mut g).unwrap());
        let mut g = graph(BinaryKind::Equal, -1e9);
        assert!(!AttentionLiveLength.run(&mut g).unwrap());
    }
}
