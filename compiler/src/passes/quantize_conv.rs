//! `--quantize int8`: quantize every float `Conv` whose weight is a constant to a `QConv`
//! (int8 weights per output channel, symmetric, packed for the target's int8 GEMM; the f32
//! input quantized per tensor to uint8 at run time, as ONNX `DynamicQuantizeLinear` does;
//! exact i32 sums, f32 output). Layers whose node name matches a `--keep-float` pattern stay
//! in float.
//!
//! Before: `y = Conv{geometry, group}(x: f32[N, C, s..], W: f32[M, C/group, k..], b?: f32[M])`.
//! After: `y, y.xq, y.cols, y.c, y.scales, y.zero_points = QConv{geometry, group, M, nr,
//! input=dynamic, output=f32}(x, W.q8conv: u8[qconv::packed_bytes], b?)` (the five extra
//! outputs are the kernel's arena scratch). `W.q8conv` is made once per weight and shared.
//! Runs with `quantize_int8`, where `pack_linear_weights` would run.
use super::quantize_int8::{PackedConstants, replace_node};
use super::{Pass, rewrite_each};
use crate::error::Result;
use crate::ir::{DType, Graph, NodeId, TensorType};
use crate::ops::qconv::{self, QConv, QConvInput, QConvOutput};
use crate::ops::{Op, OpDef};
use crate::quantize::QuantOptions;
use crate::target::QuantTiling;

pub struct QuantizeConv {
    pub tiling: QuantTiling,
    pub options: QuantOptions,
}

/// `(M, C/group · ksize)` of a float `Conv` with a constant f32 weight (and an f32 bias, if
/// any, of `M` values), else `None`.
pub(crate) fn float_conv(graph: &Graph, id: NodeId) -> Option<(usize, usize)> {
    let node = graph.node(id);
    let Op::Conv(_) = &node.op else {
        return None;
    };
    let x = graph.ty(node.inputs[0]);
    let w = graph.ty(node.inputs[1]);
    if x.dtype != DType::F32 || x.rank() < 3 || graph.constant(node.inputs[1]).is_none() {
        return None;
    }
    let m = *w.shape.first()?;
    if let Some(&b) = node.inputs.get(2)
        && graph.ty(b).shape != [m]
    {
        return None;
    }
    Some((m, w.numel() / m.max(1)))
}

/// Per output channel symmetric int8: `scale[m] = max |w[m, ..]| / 127` (1.0 for an
/// all-zero channel), `q = round_half_away(w / scale)`.
pub(crate) fn quantize_channels(w: &[f32], m: usize, kg: usize) -> (Vec<i8>, Vec<f32>) {
    let mut q = vec![0i8; m * kg];
    let mut scales = vec![1.0f32; m];
    for ((row, qrow), scale) in w
        .chunks_exact(kg)
        .zip(q.chunks_exact_mut(kg))
        .zip(&mut scales)
    {
        let max = row.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        if max > 0.0 {
            *scale = max / 127.0;
        }
        for (qv, &v) in qrow.iter_mut().zip(row) {
            *qv = (v / *scale).clamp(-127.0, 127.0).round() as i8;
        }
    }
    (q, scales)
}

impl Pass for QuantizeConv {
    fn name(&self) -> &'static str {
        "quantize_conv"
    }

    fn run(&self, graph: &mut Graph) -> Result<bool> {
        let mut packed = PackedConstants::default();
        rewrite_each(graph, |graph, id| {
            let node = graph.node(id);
            if self.options.kept(&node.name).is_some() {
                return Ok(false);
            }
            let Some((m, kg)) = float_conv(graph, id) else {
                return Ok(false);
            };
            let Op::Conv(conv) = &node.op else {
                return Ok(false);
            };
            let nr = self.tiling.i8_nr;
            let group = conv.group;
            let op = QConv {
                geometry: conv.geometry.clone(),
                group,
                out_channels: m,
                nr,
                bias: node.inputs.len() == 3,
                input: QConvInput::Dynamic,
                output: QConvOutput::F32,
                tiles: self.tiling.tiles,
                kernel: self.tiling.kernel,
            };
            // A convolution the kernel cannot run (e.g. depth beyond its limit) stays float.
            let x = graph.ty(node.inputs[0]).clone();
            let blob_ty = TensorType::new(DType::U8, vec![op.weight_bytes(x.shape[1])]);
            let bias_ty = node.inputs.get(2).map(|&b| graph.ty(b).clone());
            let mut types = vec![&x, &blob_ty];
            types.extend(bias_ty.as_ref());
            if op.infer(&types).is_err() {
                return Ok(false);
            }
            let mut inputs = node.inputs.clone();
            inputs[1] = packed.get_or_pack(graph, node.inputs[1], "q8conv", |d| {
                let (q, scales) = quantize_channels(d, m, kg);
                // Cannot fail: `infer` accepted these channels, groups and depth.
                qconv::pack_weight(&q, &scales, m, group, kg, nr).unwrap_or_default()
            })?;
            replace_node(
                graph,
                id,
                Op::QConv(op),
                inputs,
                &["xq", "cols", "c", "scales", "zero_points"],
            )?;
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Tensor;
    use crate::ir::printer::print;
    use crate::ops::conv::{Conv, Geometry};
    use crate::quantize::QuantMode;

    fn geometry(kernel: usize, pad: usize) -> Geometry {
        Geometry {
            kernel: vec![kernel, kernel],
            strides: vec![1, 1],
            dilations: vec![1, 1],
            pads_begin: vec![pad, pad],
            pads_end: vec![pad, pad],
            ceil_mode: false,
        }
    }

    /// `x [1,4,6,6] -> conv3x3 (bias) -> depthwise conv3x3 -> y`.
    fn graph() -> Graph {
        let mut g = Graph::new(17);
        let x = g.add_value("x", TensorType::new(DType::F32, vec![1, 4, 6, 6]));
        g.inputs.push(x);
        let w1: Vec<f32> = (0..8 * 4 * 9)
            .map(|v| (v as f32 * 0.37).sin() * 0.4)
            .collect();
        let w1 = g.add_constant("w1", Tensor::from_f32s(vec![8, 4, 3, 3], w1).unwrap());
        let b1: Vec<f32> = (0..8).map(|v| v as f32 * 0.05 - 0.2).collect();
        let b1 = g.add_constant("b1", Tensor::from_f32s(vec![8], b1).unwrap());
        let (_, h) = g
            .add_node(
                "conv1",
                "Conv",
                Op::Conv(Conv {
                    geometry: geometry(3, 1),
                    group: 1,
                }),
                vec![x, w1, b1],
                &["h".into()],
            )
            .unwrap();
        let w2: Vec<f32> = (0..8 * 9).map(|v| (v as f32 * 0.71).cos() * 0.5).collect();
        let w2 = g.add_constant("w2", Tensor::from_f32s(vec![8, 1, 3, 3], w2).unwrap());
        let (_, y) = g
            .add_node(
                "dw",
                "Conv",
                Op::Conv(Conv {
                    geometry: geometry(3, 0),
                    group: 8,
                }),
                vec![h[0], w2],
                &["y".into()],
            )
            .unwrap();
        g.outputs.push(y[0]);
        g
    }

    fn input() -> Tensor {
        let v: Vec<f32> = (0..144).map(|i| (i as f32 * 0.13).sin()).collect();
        Tensor::from_f32s(vec![1, 4, 6, 6], v).unwrap()
    }

    fn cosine(a: &[f64], b: &[f64]) -> f64 {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
        let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
        dot / (na * nb)
    }

    #[test]
    fn float_convs_become_qconv() {
        let mut g = graph();
        let reference = crate::eval::evaluate(&g, &[input()]).unwrap();
        let tiling = crate::target::TargetProfile::load("cortex-m55")
            .unwrap()
            .quant_tiling();
        let options = QuantOptions::new(QuantMode::Int8);
        let pass = QuantizeConv { tiling, options };
        assert!(pass.run(&mut g).unwrap());
        crate::passes::eliminate_dead_nodes::EliminateDeadNodes
            .run(&mut g)
            .unwrap();
        crate::ir::verify::verify(&g).unwrap();
        insta::assert_snapshot!(print(&g).unwrap());
        let got = crate::eval::evaluate(&g, &[input()]).unwrap();
        let (a, b) = (reference[0].data.to_f64_vec(), got[0].data.to_f64_vec());
        assert!(cosine(&a, &b) > 0.999, "{a:?} vs {b:?}");
        assert!(crate::quantize::float_layers(&g, &pass.options).is_empty());
    }

    #[test]
    fn keep_float_leaves_a_conv_and_the_report_says_why() {
        let mut g = graph();
        let tiling = crate::target::TargetProfile::load("x86")
            .unwrap()
            .quant_tiling();
        let mut options = QuantOptions::new(QuantMode::Int8);
        options.keep_float = vec!["dw".into()];
        let pass = QuantizeConv { tiling, options };
        assert!(pass.run(&mut g).unwrap());
        let ops: Vec<&str> = g
            .node_ids()
            .into_iter()
            .map(|id| g.node(id).op.name())
            .collect();
        assert_eq!(ops, vec!["QConv", "Conv"]);
        let float = crate::quantize::float_layers(&g, &pass.options);
        assert_eq!(float.len(), 1);
        assert_eq!(
            (float[0].node.as_str(), float[0].reason.as_str()),
            ("dw", "--keep-float dw")
        );
        // Without --quantize int8 the report says which mode quantizes convolutions.
        let int4 = QuantOptions::new(QuantMode::Int4);
        let float = crate::quantize::float_layers(&graph(), &int4);
        assert!(
            float.iter().all(|f| f.reason.contains("--quantize int8")),
            "{float:?}"
        );
    }

    /// Per channel: the largest magnitude maps to ±127 and every value rounds to its
    /// nearest step.
    #[test]
    fn channel_scales() {
        let w = [0.5f32, -1.0, 0.25, 0.0, 0.0, 0.0, 2.0, 1.0, -0.5];
        let (q, s) = quantize_channels(&w, 3, 3);
        assert_eq!(s, vec![1.0 / 127.0, 1.0, 2.0 / 127.0]);
        assert_eq!(q, vec![64, -127, 32, 0, 0, 0, 127, 64, -32]);
    }
}
