//! `--quantize int8`: run the multi-row attention of an int8 build on int8 dot products.
//! An `Attention` with transposed keys, no live length and more than one query row (an
//! encoder or a prefill, not a decode step) becomes a `QAttention` (`ops/qattention.rs`:
//! Q per row, K per key, V per column quantized at run time, probabilities as u8). An
//! attention whose node name matches a `--keep-float` pattern stays in float.
//!
//! Before: `o, o.scores = Attention{mask, scale, nan_to_zero, rows, tiles}(q, kt, mask?, v)`.
//! After: `o, o.qbytes, o.qfloats, o.qints = QAttention{base}(q, kt, mask?, v)` (the three
//! extra outputs are the kernel's arena scratch).
//! Runs after `quantize_int8`, where `pack_linear_weights` would run.
use super::quantize_int8::replace_node;
use super::{Pass, rewrite_each};
use crate::error::Result;
use crate::ir::{Graph, NodeId};
use crate::ops::Op;
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
            let op = Op::QAttention(QAttention { base: a.clone() });
            let inputs = graph.node(id).inputs.clone();
            replace_node(graph, id, op, inputs, &["qbytes", "qfloats", "qints"])?;
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
        let op = Op::Attention(Attention {
            mask: true,
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
        });
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
