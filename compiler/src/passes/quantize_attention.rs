//! `--quantize int8`: run the multi-row attention of an int8 build on int8 dot products.
//! An `Attention` with transposed keys, no live length and more than one query row (an
//! encoder or a prefill, not a decode step) becomes a `QAttention` (`ops/qattention.rs`:
//! Q per row, K per key, V per column quantized at run time, probabilities as u8). An
//! attention whose node name matches a `--keep-float` pattern stays in float.
//!
//! The transposes around it are absorbed: an operand made by a `Transpose` is read in place
//! from the transpose's input (the heads of a projection's `[seq, heads·d]` output, by row
//! stride and column offset), and a `Transpose` that is the output's only reader is written
//! directly, whenever the kernel's strided layout can express them.
//!
//! Before: `q = Transpose{pq}(xq)`, `kt = Transpose{pk}(xk)`, `v = Transpose{pv}(xv)`,
//! `o, o.scores = Attention{mask, scale, nan_to_zero, rows, tiles}(q, kt, mask?, v)`,
//! `y = Transpose{po}(o)`.
//! After: `y, y.qbytes, y.qfloats, y.qints = QAttention{base, q_perm: pq, k_perm: pk,
//! v_perm: pv, out_perm: po}(xq, xk, mask?, xv)` (the three extra outputs are the kernel's
//! arena scratch; the transposes, unread, go with dead-node elimination).
//! Runs after `quantize_int8`, where `pack_linear_weights` would run.
use super::fuse_linear::sole_consumer;
use super::quantize_int8::replace_node;
use super::{Pass, rewrite_each};
use crate::error::Result;
use crate::ir::{Graph, NodeId, TensorType};
use crate::ops::Op;
use crate::ops::OpDef;
use crate::ops::attention::Attention;
use crate::ops::qattention::QAttention;
use crate::quantize::QuantOptions;

pub struct QuantizeAttention {
    pub options: QuantOptions,
}

/// The float `Attention` of node `id` if its kernel has an int8 form: keys transposed, no
/// live length, more than one query row.
pub(crate) fn multi_row_attention(graph: &Graph, id: NodeId) -> Option<&Attention> {
    let node = graph.node(id);
    let Op::Attention(a) = &node.op else {
        return None;
    };
    let q = graph.ty(node.inputs[0]);
    let sq = q.shape.len().checked_sub(2).map(|r| q.shape[r])?;
    (!a.key_rows && a.live_offset.is_none() && sq > 1).then_some(a)
}

/// The transpose producing `v` and its input, if `v` is a `Transpose`'s output.
fn transpose_of(graph: &Graph, v: crate::ir::ValueId) -> Option<(Vec<usize>, crate::ir::ValueId)> {
    let node = graph.node(graph.value(v).producer?);
    let Op::Transpose(t) = &node.op else {
        return None;
    };
    Some((t.perm.clone(), node.inputs[0]))
}

/// Fold into `op` (reading `inputs`) each transpose that makes Q, the keys or V and the one
/// that alone reads the output of attention node `id`, one at a time, each kept only if the
/// kernel's layouts express it.
fn absorb_transposes(
    graph: &Graph,
    id: NodeId,
    op: &mut QAttention,
    inputs: &mut [crate::ir::ValueId],
) {
    let vi = op.base.v_index();
    let fits = |op: &QAttention, inputs: &[crate::ir::ValueId]| {
        let types: Vec<&TensorType> = inputs.iter().map(|&v| graph.ty(v)).collect();
        op.infer(&types).ok()
    };
    for (slot, which) in [(0, 0), (1, 1), (vi, 2)] {
        let Some((perm, source)) = transpose_of(graph, inputs[slot]) else {
            continue;
        };
        let mut tried = op.clone();
        *[&mut tried.q_perm, &mut tried.k_perm, &mut tried.v_perm][which] = perm;
        let mut moved = inputs.to_vec();
        moved[slot] = source;
        if fits(&tried, &moved).is_some() {
            *op = tried;
            inputs[slot] = source;
        }
    }
    let out = graph.node(id).outputs[0];
    let Some(t) = sole_consumer(graph, out) else {
        return;
    };
    let Op::Transpose(tr) = &graph.node(t).op else {
        return;
    };
    let mut tried = op.clone();
    tried.out_perm = tr.perm.clone();
    let y = graph.node(t).outputs[0];
    if fits(&tried, inputs).is_some_and(|types| types[0] == *graph.ty(y)) {
        *op = tried;
    }
}

impl Pass for QuantizeAttention {
    fn name(&self) -> &'static str {
        "quantize_attention"
    }

    fn run(&self, graph: &mut Graph) -> Result<bool> {
        rewrite_each(graph, |graph, id| {
            if self.options.kept(&graph.node(id).name).is_some() {
                return Ok(false);
            }
            let Some(a) = multi_row_attention(graph, id) else {
                return Ok(false);
            };
            let mut op = QAttention::new(a.clone());
            let mut inputs = graph.node(id).inputs.clone();
            absorb_transposes(graph, id, &mut op, &mut inputs);
            if !op.out_perm.is_empty() {
                let out = graph.node(id).outputs[0];
                if let Some(t) = sole_consumer(graph, out) {
                    let y = graph.node(t).outputs[0];
                    graph.remove_node(t);
                    graph.replace_uses(y, out);
                    // The output takes the transpose's name (and place among graph outputs).
                    graph.value_mut(out).name = graph.value(y).name.clone();
                }
            }
            replace_node(
                graph,
                id,
                Op::QAttention(op),
                inputs,
                &["qbytes", "qfloats", "qints"],
            )?;
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::printer::print;
    use crate::ir::{DType, Tensor, TensorType};
    use crate::quantize::QuantMode;
    use runtime_core::kernels::gemm::Tiles;

    /// The float attention the tests quantize.
    fn float_attention(mask: bool) -> Op {
        Op::Attention(Attention {
            mask,
            scale: 0.35,
            nan_to_zero: false,
            rows: 4,
            tiles: Tiles {
                mr: 4,
                kc: 8,
                mc: 8,
            },
            key_rows: false,
            live_offset: None,
        })
    }

    /// `q [2,sq,8]`, `kt [2,8,6]`, mask `[1,1,6]`, `v [2,6,8]` → attention `o`.
    fn graph(sq: usize) -> Graph {
        let mut g = Graph::new(17);
        let input = |g: &mut Graph, name: &str, shape: Vec<usize>| {
            let v = g.add_value(name, TensorType::new(DType::F32, shape));
            g.inputs.push(v);
            v
        };
        let q = input(&mut g, "q", vec![2, sq, 8]);
        let kt = input(&mut g, "kt", vec![2, 8, 6]);
        let mask = input(&mut g, "mask", vec![1, 1, 6]);
        let v = input(&mut g, "v", vec![2, 6, 8]);
        let op = float_attention(true);
        let (_, outs) = g
            .add_node(
                "layer0/attention",
                "Attention",
                op,
                vec![q, kt, mask, v],
                &["o".into(), "o.scores".into()],
            )
            .unwrap();
        g.outputs.push(outs[0]);
        g
    }

    fn inputs(sq: usize) -> Vec<Tensor> {
        let val = |n: usize, seed: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (((i + seed) * 7919) % 193) as f32 / 96.5 - 1.0)
                .collect()
        };
        let mut mask = val(6, 7);
        mask[5] = -10000.0;
        vec![
            Tensor::from_f32s(vec![2, sq, 8], val(2 * sq * 8, 1)).unwrap(),
            Tensor::from_f32s(vec![2, 8, 6], val(96, 3)).unwrap(),
            Tensor::from_f32s(vec![1, 1, 6], mask).unwrap(),
            Tensor::from_f32s(vec![2, 6, 8], val(96, 5)).unwrap(),
        ]
    }

    #[test]
    fn multi_row_attention_becomes_qattention() {
        let mut g = graph(5);
        let reference = crate::eval::evaluate(&g, &inputs(5)).unwrap();
        let options = QuantOptions::new(QuantMode::Int8);
        assert!(QuantizeAttention { options }.run(&mut g).unwrap());
        crate::ir::verify::verify(&g).unwrap();
        insta::assert_snapshot!(print(&g).unwrap());
        let got = crate::eval::evaluate(&g, &inputs(5)).unwrap();
        let (a, b) = (reference[0].data.to_f64_vec(), got[0].data.to_f64_vec());
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 0.02, "{a:?} vs {b:?}");
        }
    }

    /// Projection layouts: `x [batch, seq, heads, d]` made `[batch, heads, seq, d]` (keys
    /// `[batch, heads, d, seq]`) by transposes, the output transposed back to
    /// `[batch, seq, heads, dv]`.
    fn projection_graph(batch: usize) -> Graph {
        let mut g = Graph::new(17);
        let f = |s: Vec<usize>| TensorType::new(DType::F32, s);
        let transposed = |g: &mut Graph, name: &str, shape: Vec<usize>, perm: Vec<usize>| {
            let x = g.add_value(name, f(shape));
            g.inputs.push(x);
            let op = Op::Transpose(crate::ops::transpose::Transpose { perm });
            let t = format!("{name}/Transpose");
            g.add_node(t.clone(), "Transpose", op, vec![x], &[t])
                .unwrap()
                .1[0]
        };
        let q = transposed(&mut g, "xq", vec![batch, 5, 2, 8], vec![0, 2, 1, 3]);
        let kt = transposed(&mut g, "xk", vec![batch, 6, 2, 8], vec![0, 2, 3, 1]);
        let v = transposed(&mut g, "xv", vec![batch, 6, 2, 8], vec![0, 2, 1, 3]);
        let op = float_attention(false);
        let names = ["o".into(), "o.scores".into()];
        let (_, outs) = g
            .add_node("layer0/attention", "Attention", op, vec![q, kt, v], &names)
            .unwrap();
        let op = Op::Transpose(crate::ops::transpose::Transpose {
            perm: vec![0, 2, 1, 3],
        });
        let (_, y) = g
            .add_node(
                "out/Transpose",
                "Transpose",
                op,
                vec![outs[0]],
                &["y".into()],
            )
            .unwrap();
        g.outputs.push(y[0]);
        g
    }

    /// The four transposes are absorbed, and the result is bit for bit the one of a
    /// `QAttention` reading the transposed copies, for one and for two sequences.
    #[test]
    fn the_transposes_around_attention_are_absorbed() {
        let val = |n: usize, seed: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (((i + seed) * 7919) % 193) as f32 / 96.5 - 1.0)
                .collect()
        };
        for batch in [1, 2] {
            let inputs = [
                Tensor::from_f32s(vec![batch, 5, 2, 8], val(batch * 80, 1)).unwrap(),
                Tensor::from_f32s(vec![batch, 6, 2, 8], val(batch * 96, 3)).unwrap(),
                Tensor::from_f32s(vec![batch, 6, 2, 8], val(batch * 96, 5)).unwrap(),
            ];
            let mut copies = projection_graph(batch);
            let id = copies
                .node_ids()
                .into_iter()
                .find(|&id| matches!(copies.node(id).op, Op::Attention(_)))
                .unwrap();
            let Op::Attention(a) = copies.node(id).op.clone() else {
                unreachable!()
            };
            let ins = copies.node(id).inputs.clone();
            let op = Op::QAttention(QAttention::new(a));
            replace_node(&mut copies, id, op, ins, &["qbytes", "qfloats", "qints"]).unwrap();
            let want = crate::eval::evaluate(&copies, &inputs).unwrap();

            let mut g = projection_graph(batch);
            let options = QuantOptions::new(QuantMode::Int8);
            assert!(QuantizeAttention { options }.run(&mut g).unwrap());
            crate::passes::eliminate_dead_nodes::EliminateDeadNodes
                .run(&mut g)
                .unwrap();
            crate::ir::verify::verify(&g).unwrap();
            let printed = print(&g).unwrap();
            if batch == 1 {
                insta::assert_snapshot!(printed);
            }
            assert_eq!(printed.matches("Transpose").count(), 0, "{printed}");
            let got = crate::eval::evaluate(&g, &inputs).unwrap();
            assert_eq!(got[0].ty, want[0].ty);
            let bits = |t: &Tensor| -> Vec<u64> {
                t.data.to_f64_vec().iter().map(|x| x.to_bits()).collect()
            };
            assert_eq!(bits(&got[0]), bits(&want[0]), "batch {batch}");
        }
    }

    #[test]
    fn one_row_and_kept_attention_stay_float() {
        let options = QuantOptions::new(QuantMode::Int8);
        let mut g = graph(1);
        assert!(!QuantizeAttention { options }.run(&mut g).unwrap());
        let mut options = QuantOptions::new(QuantMode::Int8);
        options.keep_float = vec!["attention".into()];
        let mut g = graph(5);
        assert!(
            !QuantizeAttention {
                options: options.clone()
            }
            .run(&mut g)
            .unwrap()
        );
        let float = crate::quantize::float_layers(&g, &options);
        assert_eq!(float.len(), 1);
        assert_eq!(float[0].reason, "--keep-float attention");
    }
}
