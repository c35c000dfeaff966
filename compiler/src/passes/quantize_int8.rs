//! Quantize every float `Linear` to `QLinear` (int8 weights per output column, activations
//! quantized per row at run time, or with calibrated static scales) and every embedding
//! `Gather` on a constant table to an int8-per-row `QGather`. Layers whose node name
//! matches a `--keep-float` pattern stay in float.
//!
//! Before: `y = Linear{k, n, nr=0, epilogue}(x, W: f32[k, n], b?)`.
//! After: `y, y.qa, y.qa_scales, y.qa_zero_points = QLinear{k, n, nr, epilogue, act}(x,
//! W.q8: u8[packed_i8_bytes], b?)` (the three extra outputs are the arena scratch of the
//! activation quantization). `W.q8` is made once per weight and shared.
//!
//! Before: `e = Gather{axis=0}(T: f32[rows, cols], ids)`.
//! After: `e = QGather{rows, cols, bits=8}(T.q8rows: u8[packed_rows_i8_bytes], ids)`.
//! A table whose transpose is a quantized `Linear`'s weight (tied classifier) is read from
//! that layer's blob instead: `QGather{.., tied=nr}(W.q8, ids)`, stored once.
//! Runs after `fuse_linear_activation` and before `pack_linear_weights`.
use super::Pass;
use crate::error::{Error, Result};
use crate::ir::{DType, Data, Graph, NodeId, Tensor, TensorType, ValueId};
use crate::ops::Op;
use crate::ops::linear::Linear;
use crate::ops::qgather::{self, QGather};
use crate::ops::qlinear::{self, ActQuant, QLinear};
use crate::quantize::QuantOptions;
use crate::target::QuantTiling;
use std::collections::BTreeMap;

pub struct QuantizeInt8 {
    pub tiling: QuantTiling,
    pub options: QuantOptions,
    /// Static activation quantization per `Linear` node name (from calibration); a node not
    /// listed is quantized dynamically per row.
    pub static_act: BTreeMap<String, ActQuant>,
}

/// A `u8` constant tensor holding `bytes`.
pub(crate) fn blob(bytes: Vec<u8>) -> Result<Tensor> {
    Tensor::new(
        TensorType::new(DType::U8, vec![bytes.len()]),
        Data::U8(bytes),
    )
    .map_err(|e| Error::Internal(format!("quantize: {e}")))
}

/// Replace node `id` by one running `op` on `inputs`; its first output keeps the old
/// output's name and readers, further outputs are named `<output>.<suffix>`.
pub(crate) fn replace_node(
    graph: &mut Graph,
    id: NodeId,
    op: Op,
    inputs: Vec<ValueId>,
    suffixes: &[&str],
) -> Result<()> {
    let node = graph.node(id);
    let (name, source_op, out) = (node.name.clone(), node.source_op.clone(), node.outputs[0]);
    let out_name = graph.value(out).name.clone();
    let mut names = vec![out_name.clone()];
    names.extend(suffixes.iter().map(|s| format!("{out_name}.{s}")));
    graph.remove_node(id);
    let (_, outs) = graph
        .add_node(name, source_op, op, inputs, &names)
        .map_err(|e| Error::Internal(format!("quantize: {e}")))?;
    graph.replace_uses(out, outs[0]);
    Ok(())
}

/// A constant 2-D f32 table read by a `Gather` on axis 0, as `(rows, cols)`.
pub(crate) fn embedding_table(graph: &Graph, id: NodeId) -> Option<(usize, usize)> {
    let node = graph.node(id);
    let Op::Gather(g) = &node.op else { return None };
    let t = graph.constant(node.inputs[0])?;
    if g.axis != 0 || t.ty.dtype != DType::F32 || t.ty.rank() != 2 {
        return None;
    }
    let Data::F32(_) = &t.data else { return None };
    Some((t.ty.shape[0], t.ty.shape[1]))
}

/// The float `Linear` node `id` still to be quantized: not yet packed (`nr == 0`), its weight
/// an f32 constant.
pub(crate) fn float_linear(graph: &Graph, id: NodeId) -> Option<&Linear> {
    let node = graph.node(id);
    let Op::Linear(l) = &node.op else { return None };
    let weight = graph.constant(node.inputs[1])?;
    match &weight.data {
        Data::F32(_) if l.nr == 0 => Some(l),
        _ => None,
    }
}

/// The packed forms of f32 constants made by a quantization pass, each made once per source
/// constant and shared by every node reading it.
#[derive(Default)]
pub(crate) struct PackedConstants(BTreeMap<ValueId, ValueId>);

impl PackedConstants {
    /// The u8 constant `<src name>.<suffix>` holding `pack(data of src)`, made on the first
    /// call for `src`; `src` must be an f32 constant.
    pub(crate) fn get_or_pack(
        &mut self,
        graph: &mut Graph,
        src: ValueId,
        suffix: &str,
        pack: impl FnOnce(&[f32]) -> Vec<u8>,
    ) -> Result<ValueId> {
        if let Some(&v) = self.0.get(&src) {
            return Ok(v);
        }
        let Some(Data::F32(data)) = graph.constant(src).map(|t| &t.data) else {
            return Err(Error::Internal(format!(
                "quantize: {} is not an f32 constant",
                graph.value(src).name
            )));
        };
        let bytes = pack(data);
        let name = format!("{}.{suffix}", graph.value(src).name);
        let v = graph.add_constant(name, blob(bytes)?);
        self.0.insert(src, v);
        Ok(v)
    }
}

impl Pass for QuantizeInt8 {
    fn name(&self) -> &'static str {
        "quantize_int8"
    }

    fn run(&self, graph: &mut Graph) -> Result<bool> {
        let mut packed = PackedConstants::default();
        let mut changed = false;
        let order = graph
            .topo_order()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let ties = super::quantize_int4::tied_tables(graph, &order, &self.options, 0);
        for id in order {
            let node = graph.node(id);
            if self.options.kept(&node.name).is_some() {
                continue;
            }
            if let Some((rows, cols)) = embedding_table(graph, id) {
                if let Some(&(_, w)) = ties.iter().find(|(g, _)| *g == id) {
                    let (nr, ids) = (self.tiling.i8_nr, node.inputs[1]);
                    let op = QGather::tied_i8(rows, cols, nr);
                    let blob = packed
                        .get_or_pack(graph, w, "q8", |d| qlinear::pack_weight(d, cols, rows, nr))?;
                    replace_node(graph, id, Op::QGather(op), vec![blob, ids], &[])?;
                    changed = true;
                    continue;
                }
                let op = QGather {
                    rows,
                    cols,
                    bits: 8,
                    group: cols,
                    f16_scales: false,
                    tied_nr: None,
                };
                let (t, ids) = (node.inputs[0], node.inputs[1]);
                let table =
                    packed.get_or_pack(graph, t, "q8rows", |d| qgather::pack_table(&op, d))?;
                replace_node(graph, id, Op::QGather(op), vec![table, ids], &[])?;
                changed = true;
                continue;
            }
            let Some(l) = float_linear(graph, id) else {
                continue;
            };
            let w = node.inputs[1];
            let nr = self.tiling.i8_nr;
            let op = QLinear {
                k: l.k,
                n: l.n,
                nr,
                bias: l.bias,
                activation: l.activation,
                act_quant: self
                    .static_act
                    .get(&node.name)
                    .copied()
                    .unwrap_or(ActQuant::DynamicRow),
                tiles: self.tiling.tiles,
                kernel: self.tiling.kernel,
                fused: Default::default(),
            };
            let mut inputs = node.inputs.clone();
            let (k, n) = (l.k, l.n);
            inputs[1] =
                packed.get_or_pack(graph, w, "q8", |d| qlinear::pack_weight(d, k, n, nr))?;
            replace_node(
                graph,
                id,
                Op::QLinear(op),
                inputs,
                &["qa", "qa_scales", "qa_zero_points"],
            )?;
            changed = true;
        }
        Ok(changed)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ir::printer::print;
    use crate::ops::gather::Gather;
    use crate::ops::linear::Linear;
    use crate::quantize::QuantMode;

    /// ids → embedding table → Linear(+bias) → Linear, with the second layer kept in float.
    pub(crate) fn graph() -> Graph {
        let mut g = Graph::new(17);
        let ids = g.add_value("ids", TensorType::new(DType::I64, vec![1, 3]));
        g.inputs.push(ids);
        let table: Vec<f32> = (0..40).map(|v| (v as f32 * 0.37).sin()).collect();
        let t = g.add_constant("emb", Tensor::from_f32s(vec![10, 4], table).unwrap());
        let (_, e) = g
            .add_node(
                "embed",
                "Gather",
                Op::Gather(Gather { axis: 0 }),
                vec![t, ids],
                &["e".into()],
            )
            .unwrap();
        let w1: Vec<f32> = (0..24).map(|v| (v as f32 * 0.71).cos()).collect();
        let w1 = g.add_constant("w1", Tensor::from_f32s(vec![4, 6], w1).unwrap());
        let b1 = g.add_constant("b1", Tensor::from_f32s(vec![6], vec![0.1; 6]).unwrap());
        let mut l1 = Linear::new(4, 6);
        l1.bias = true;
        let (_, h) = g
            .add_node(
                "fc1",
                "MatMul",
                Op::Linear(l1),
                vec![e[0], w1, b1],
                &["h".into()],
            )
            .unwrap();
        let w2: Vec<f32> = (0..12).map(|v| v as f32 * 0.1 - 0.5).collect();
        let w2 = g.add_constant("w2", Tensor::from_f32s(vec![6, 2], w2).unwrap());
        let (_, y) = g
            .add_node(
                "head",
                "MatMul",
                Op::Linear(Linear::new(6, 2)),
                vec![h[0], w2],
                &["y".into()],
            )
            .unwrap();
        g.outputs.push(y[0]);
        g
    }

    #[test]
    fn linears_and_embeddings_become_int8() {
        let mut g = graph();
        let reference =
            crate::eval::evaluate(&g, &[Tensor::from_i64s(vec![1, 3], vec![2, 7, 0]).unwrap()])
                .unwrap();
        let mut options = QuantOptions::new(QuantMode::Int8);
        options.keep_float = vec!["head".into()];
        let tiling = crate::target::TargetProfile::load("x86")
            .unwrap()
            .quant_tiling();
        let pass = QuantizeInt8 {
            tiling,
            options: options.clone(),
            static_act: BTreeMap::new(),
        };
        assert!(pass.run(&mut g).unwrap());
        crate::passes::eliminate_dead_nodes::EliminateDeadNodes
            .run(&mut g)
            .unwrap();
        crate::ir::verify::verify(&g).unwrap();
        insta::assert_snapshot!(print(&g).unwrap());
        let got =
            crate::eval::evaluate(&g, &[Tensor::from_i64s(vec![1, 3], vec![2, 7, 0]).unwrap()])
                .unwrap();
        let (a, b) = (reference[0].data.to_f64_vec(), got[0].data.to_f64_vec());
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 0.05, "{a:?} vs {b:?}");
        }
        let float = crate::quantize::float_layers(&g, &options);
        assert_eq!(float.len(), 1);
        assert_eq!(float[0].node, "head");
        assert_eq!(float[0].reason, "--keep-float head");
    }
}
