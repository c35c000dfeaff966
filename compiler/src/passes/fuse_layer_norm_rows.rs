//! Quantize a `LayerNorm`'s rows for the int8 layers that read it, in the same row pass.
//!
//! Before: `y = LayerNorm{axis, eps}(x, s, b?)` and one or more readers
//! `z, z.qa, z.qa_scales, z.qa_zero_points = QLinear{k = cols, act: dynamic-row, no
//! residual}(y, W, c?)` (`cols` the normalised length; other readers of `y`, such as a later
//! residual, stay as they are).
//! After: `y, ln.qa, ln.qa_scales, ln.qa_zero_points = LayerNormRows{axis, eps}(x, s, b?)`
//! (`ln` the LayerNorm's node name) and `z = QLinear{.., prequantized}(y, W, c?, ln.qa,
//! ln.qa_scales, ln.qa_zero_points)`: each row is quantized right after it is normalised,
//! while it is in cache, once for all the readers, with the same bits as the `QLinear`'s own
//! quantizer. Runs after the int8 fusions (`merge_linears`, `fuse_residual`).
use super::{Pass, replace_nodes, rewrite_each};
use crate::error::{Error, Result};
use crate::ir::{Graph, NodeId, ValueId};
use crate::ops::Op;
use crate::ops::layer_norm_rows::LayerNormRows;
use crate::ops::qlinear::{ActQuant, QLinear};
use crate::ops::util::product;

pub struct FuseLayerNormRows;

/// The `QLinear` readers of `y` that can take its rows quantized (`cols` deep, dynamic-row,
/// no residual, `y` as their `x` only).
fn quantizing_readers(graph: &Graph, y: ValueId, cols: usize) -> Vec<NodeId> {
    graph
        .consumers(y)
        .into_iter()
        .filter(|&id| {
            let node = graph.node(id);
            let Op::QLinear(q) = &node.op else {
                return false;
            };
            q.k == cols
                && q.act_quant == ActQuant::DynamicRow
                && !q.fused.residual
                && !q.fused.prequantized
                && node.inputs.first() == Some(&y)
                && node.inputs.iter().filter(|&&v| v == y).count() == 1
        })
        .collect()
}

/// Rebuild the `QLinear` node `id` reading `rows` (qa, scales, zero points) as its quantized
/// input; its product outputs keep their names and readers, its scratch outputs go.
fn take_rows(graph: &mut Graph, id: NodeId, rows: &[ValueId]) -> Result<()> {
    let node = graph.node(id);
    let Op::QLinear(q) = &node.op else {
        return Err(Error::Internal(
            "fuse_layer_norm_rows: not a QLinear".into(),
        ));
    };
    let mut op: QLinear = q.clone();
    op.fused.prequantized = true;
    let (name, source) = (node.name.clone(), node.source_op.clone());
    let mut inputs = node.inputs.clone();
    inputs.extend_from_slice(rows);
    let kept: Vec<ValueId> = node.outputs[..node.outputs.len().saturating_sub(3)].to_vec();
    let names: Vec<String> = kept.iter().map(|&v| graph.value(v).name.clone()).collect();
    graph.remove_node(id);
    let (_, outs) = graph
        .add_node(name, source, Op::QLinear(op), inputs, &names)
        .map_err(|e| Error::Internal(format!("fuse_layer_norm_rows: {e}")))?;
    for (old, new) in kept.into_iter().zip(outs) {
        graph.replace_uses(old, new);
    }
    Ok(())
}

impl Pass for FuseLayerNormRows {
    fn name(&self) -> &'static str {
        "fuse_layer_norm_rows"
    }

    fn run(&self, graph: &mut Graph) -> Result<bool> {
        rewrite_each(graph, |graph, id| {
            let node = graph.node(id);
            let Op::LayerNorm(ln) = &node.op else {
                return Ok(false);
            };
            let (y, x) = (node.outputs[0], graph.ty(node.inputs[0]));
            let cols = product(&x.shape[ln.axis.min(x.shape.len())..]);
            let readers = quantizing_readers(graph, y, cols);
            if readers.is_empty() || cols == 0 {
                return Ok(false);
            }
            let op = Op::LayerNormRows(LayerNormRows {
                axis: ln.axis,
                epsilon: ln.epsilon,
            });
            let (name, source, inputs) = (
                node.name.clone(),
                node.source_op.clone(),
                node.inputs.clone(),
            );
            let outs = replace_nodes(
                graph,
                self.name(),
                &[id],
                y,
                name,
                &source,
                op,
                inputs,
                &["qa", "qa_scales", "qa_zero_points"],
            )?;
            for reader in readers {
                take_rows(graph, reader, &outs[1..])?;
            }
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::printer::print;
    use crate::ir::{DType, Tensor, TensorType};
    use crate::ops::binary::{Binary, BinaryKind};
    use crate::ops::layer_norm::LayerNorm;
    use crate::passes::test_util::{linear, pack_for_x86};
    use runtime_core::kernels::gemm::Activation;

    /// `y = LayerNorm(x)` over `[rows, 6]`, read by two int8 layers (`a` with GELU, `b`) and,
    /// with `residual`, by an `Add` after `b`; outputs `a`, `b` (+ y).
    fn block(rows: usize, residual: bool) -> Graph {
        let mut g = Graph::new(17);
        let x = g.add_value("x", TensorType::new(DType::F32, vec![rows, 6]));
        g.inputs.push(x);
        let s = g.add_constant(
            "ln.s",
            Tensor::from_f32s(vec![6], (0..6).map(|i| 0.5 + i as f32 * 0.1).collect()).unwrap(),
        );
        let b = g.add_constant(
            "ln.b",
            Tensor::from_f32s(vec![6], (0..6).map(|i| i as f32 * -0.05).collect()).unwrap(),
        );
        let op = Op::LayerNorm(LayerNorm {
            axis: 1,
            epsilon: 1e-5,
        });
        let (_, y) = g
            .add_node("ln", "LayerNormalization", op, vec![x, s, b], &["y".into()])
            .unwrap();
        let w = |seed: f32, n: usize| (0..6 * n).map(|i| (i as f32 * seed).sin()).collect();
        let bias = Some(vec![0.1, -0.2, 0.3, 0.0]);
        let a = linear(&mut g, "a", y[0], (6, 4), w(0.7, 4), bias, Activation::Gelu);
        let mut out = linear(&mut g, "b", y[0], (6, 6), w(1.3, 6), None, Activation::None);
        if residual {
            let add = Op::Binary(Binary {
                kind: BinaryKind::Add,
            });
            out = g
                .add_node("add", "Add", add, vec![out, y[0]], &["z".into()])
                .unwrap()
                .1[0];
        }
        g.outputs.extend([a, out]);
        pack_for_x86(&mut g, true);
        g
    }

    #[test]
    fn layer_norm_quantizes_the_rows_its_int8_readers_take() {
        let mut g = block(3, false);
        assert!(FuseLayerNormRows.run(&mut g).unwrap());
        crate::ir::verify::verify(&g).unwrap();
        insta::assert_snapshot!(print(&g).unwrap());
    }

    /// Same outputs, bit for bit, as the unfused graph; a residual reader of the float rows
    /// keeps them; a residual-fused `QLinear` is left quantizing its own input.
    #[test]
    fn fused_rows_give_the_unfused_outputs() {
        for (rows, residual) in [(1, false), (3, false), (3, true)] {
            let x: Vec<f32> = (0..rows * 6)
                .map(|i| (i as f32 * 0.37).cos() * 3.0)
                .collect();
            let inputs = [Tensor::from_f32s(vec![rows, 6], x).unwrap()];
            let mut g = block(rows, residual);
            if residual {
                crate::passes::fuse_residual::FuseResidual
                    .run(&mut g)
                    .unwrap();
            }
            let want = crate::eval::evaluate(&g, &inputs).unwrap();
            let mut fused = g.clone();
            assert!(FuseLayerNormRows.run(&mut fused).unwrap());
            crate::ir::verify::verify(&fused).unwrap();
            let prequantized = fused
                .node_ids()
                .into_iter()
                .filter(|&n| matches!(&fused.node(n).op, Op::QLinear(q) if q.fused.prequantized))
                .count();
            assert_eq!(prequantized, if residual { 1 } else { 2 });
            let got = crate::eval::evaluate(&fused, &inputs).unwrap();
            for (g, w) in got.iter().zip(&want) {
                let bits = |t: &Tensor| {
                    t.data
                        .to_f64_vec()
                        .iter()
                        .map(|v| v.to_bits())
                        .collect::<Vec<_>>()
                };
                assert_eq!(bits(g), bits(w), "rows {rows} residual {residual}");
            }
        }
    }
}
