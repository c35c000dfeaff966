//! Quantize every float `Linear` to a weight-only `Q4Linear` (4 bits per group of `group`
//! rows of k and output column, f16 or f32 scales and a zero point per group, each group's
//! range searched for the least squared error by `q4linear::quantize_group`, or with
//! `--int4-method gptq` and calibration inputs by GPTQ, `q4linear::pack_weight_gptq`;
//! dequantized inside the kernel) and every
//! embedding `Gather` on a constant table to a `QGather` with 4 bits per (row, group of
//! columns); tables of fewer than [`MIN_INT4_TABLE_COLS`] columns (rotary position tables:
//! small and precision-critical) get int8 rows instead. Layers whose node name matches a
//! `--keep-float` pattern stay in float.
//!
//! Before: `y = Linear{k, n, nr=0, epilogue}(x, W: f32[k, n], b?)`.
//! After: `y = Q4Linear{k, n, group, nr, scales, zero_points=true, epilogue}(x,
//! W.q4g<group>: u8[..], b?)`,
//! `W.q4g<group>` made once per weight and shared.
//!
//! Before: `e = Gather{axis=0}(T: f32[rows, cols], ids)`.
//! After: `e = QGather{rows, cols, bits=4, group}(T.q4rows: u8[..], ids)`; or, when a
//! quantized `Linear`'s weight is exactly `Tᵀ` (a tied classifier),
//! `e = QGather{rows, cols, bits=4, group, tied=nr}(W.q4g<group>, ids)`: one blob for both.
//! `--int8 PATTERN` (`QuantOptions::int8`): a matching `Linear` becomes an int8 `QLinear`
//! instead, as `quantize_int8` makes it (`W.q8`, activations per row); a tied table whose
//! classifier or own name matches reads that int8 blob (`QGather{bits=8, tied=nr}(W.q8, ids)`).
//! Runs after `fuse_linear_activation` and before `pack_linear_weights`.
use super::Pass;
use super::quantize_int8::{PackedConstants, embedding_table, float_linear, replace_node};
use crate::error::{Error, Result};
use crate::ir::{Data, Graph, NodeId, ValueId};
use crate::ops::Op;
use crate::ops::q4linear::{self, Q4Linear};
use crate::ops::qgather::{self, QGather};
use crate::ops::qlinear::{self, ActQuant, QLinear};
use crate::quantize::{Int4Method, QuantOptions};
use crate::target::QuantTiling;

/// Narrower tables are stored as int8 rows.
pub const MIN_INT4_TABLE_COLS: usize = 16;

pub struct QuantizeInt4 {
    pub tiling: QuantTiling,
    pub options: QuantOptions,
    /// Per `Linear` node name, its calibration input rows (`calibrate::layer_inputs`,
    /// `--calibration-prompts`): with `Int4Method::Search` their channels' mean squares weigh
    /// each group's error; with `Int4Method::Gptq` their second moment is GPTQ's Hessian
    /// (made for one layer at a time). Empty: plain squared error.
    pub calibration: std::collections::BTreeMap<String, crate::calibrate::LayerInputs>,
}

/// Embedding `Gather`s with tables of at least `min_cols` columns whose table is exactly
/// the transpose of the weight of a float `Linear` the quantization pass will quantize (a
/// tied classifier; neither kept float by `options`): `(gather, weight)` pairs. Shared by
/// `quantize_int8`.
pub(crate) fn tied_tables(
    graph: &Graph,
    order: &[NodeId],
    options: &QuantOptions,
    min_cols: usize,
) -> Vec<(NodeId, ValueId)> {
    let f32_data = |v: ValueId| match graph.constant(v).map(|t| &t.data) {
        Some(Data::F32(d)) => Some(d),
        _ => None,
    };
    let mut ties = Vec::new();
    for &id in order {
        let node = graph.node(id);
        let Some((rows, cols)) = embedding_table(graph, id) else {
            continue;
        };
        if cols < min_cols || options.kept(&node.name).is_some() {
            continue;
        }
        let Some(table) = f32_data(node.inputs[0]) else {
            continue;
        };
        let tied = order.iter().find_map(|&l| {
            let lin = float_linear(graph, l)?;
            let ln = graph.node(l);
            if lin.k != cols || lin.n != rows || options.kept(&ln.name).is_some() {
                return None;
            }
            let w = f32_data(ln.inputs[1])?;
            let same = (0..rows * cols).all(|i| {
                let (p, j) = (i / rows, i % rows);
                w[i].to_bits() == table[j * cols + p].to_bits()
            });
            same.then_some(ln.inputs[1])
        });
        if let Some(w) = tied {
            ties.push((id, w));
        }
    }
    ties
}

impl Pass for QuantizeInt4 {
    fn name(&self) -> &'static str {
        "quantize_int4"
    }

    fn run(&self, graph: &mut Graph) -> Result<bool> {
        let (group, f16) = (self.options.group, self.options.f16_scales);
        let grid = q4linear::Q4Grid::Asymmetric;
        let mut packed = PackedConstants::default();
        let mut changed = false;
        let order = graph
            .topo_order()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let ties = tied_tables(graph, &order, &self.options, MIN_INT4_TABLE_COLS);
        // A weight's calibration inputs, from the first `Linear` reading it that has some (a
        // tied table's blob is packed once, for its classifier).
        let inputs_of = |graph: &Graph, w: ValueId| {
            order.iter().find_map(|&l| {
                let node = graph.node(l);
                (float_linear(graph, l).is_some() && node.inputs[1] == w)
                    .then(|| self.calibration.get(&node.name))
                    .flatten()
            })
        };
        let gptq = self.options.int4_method == Int4Method::Gptq;
        // The int4 blob of a weight `d: f32[k, n]` whose inputs are `x`.
        let pack = |x: Option<&crate::calibrate::LayerInputs>, d: &[f32], k: usize, n: usize| {
            let nr = self.tiling.q4_nr;
            let by_gptq = x.filter(|_| gptq).and_then(|x| {
                q4linear::pack_weight_gptq(d, k, n, group, nr, f16, grid, &x.hessian())
            });
            by_gptq.unwrap_or_else(|| {
                let h = x.map(|x| x.moments());
                q4linear::pack_weight(d, k, n, group, nr, f16, grid, h.as_deref())
            })
        };
        // Weights of the Linears `--int8` names, and of those tied to a table it names.
        let mut int8_weights: Vec<ValueId> = Vec::new();
        for &id in &order {
            let node = graph.node(id);
            if self.options.int8_kept(&node.name).is_none() {
                continue;
            }
            if float_linear(graph, id).is_some() {
                int8_weights.push(node.inputs[1]);
            }
            if let Some(&(_, w)) = ties.iter().find(|(g, _)| *g == id) {
                int8_weights.push(w);
            }
        }
        for &id in &order {
            let node = graph.node(id);
            if self.options.kept(&node.name).is_some() {
                continue;
            }
            if let Some((rows, cols)) = embedding_table(graph, id) {
                let int4 = cols >= MIN_INT4_TABLE_COLS;
                let tie = ties.iter().find(|(g, _)| *g == id);
                if let Some(&(_, w)) = tie
                    && int8_weights.contains(&w)
                {
                    let (nr, ids) = (self.tiling.i8_nr, node.inputs[1]);
                    let op = QGather::tied_i8(rows, cols, nr);
                    let blob = packed
                        .get_or_pack(graph, w, "q8", |d| qlinear::pack_weight(d, cols, rows, nr))?;
                    replace_node(graph, id, Op::QGather(op), vec![blob, ids], &[])?;
                    changed = true;
                    continue;
                }
                if let Some(&(_, w)) = tie {
                    let nr = self.tiling.q4_nr;
                    let op = QGather {
                        rows,
                        cols,
                        bits: 4,
                        group,
                        f16_scales: f16,
                        tied_nr: Some(nr),
                    };
                    let ids = node.inputs[1];
                    let x = inputs_of(graph, w);
                    let blob = packed.get_or_pack(graph, w, &format!("q4g{group}"), |d| {
                        pack(x, d, cols, rows)
                    })?;
                    replace_node(graph, id, Op::QGather(op), vec![blob, ids], &[])?;
                    changed = true;
                    continue;
                }
                let op = QGather {
                    rows,
                    cols,
                    bits: if int4 { 4 } else { 8 },
                    group: if int4 { group } else { cols },
                    f16_scales: int4 && f16,
                    tied_nr: None,
                };
                let (t, ids) = (node.inputs[0], node.inputs[1]);
                let suffix = if int4 { "q4rows" } else { "q8rows" };
                let table =
                    packed.get_or_pack(graph, t, suffix, |d| qgather::pack_table(&op, d))?;
                replace_node(graph, id, Op::QGather(op), vec![table, ids], &[])?;
                changed = true;
                continue;
            }
            let Some(l) = float_linear(graph, id) else {
                continue;
            };
            let w = node.inputs[1];
            if int8_weights.contains(&w) {
                let nr = self.tiling.i8_nr;
                let op = QLinear {
                    k: l.k,
                    n: l.n,
                    nr,
                    bias: l.bias,
                    activation: l.activation,
                    act_quant: ActQuant::DynamicRow,
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
                continue;
            }
            let nr = self.tiling.q4_nr;
            let op = Q4Linear {
                k: l.k,
                n: l.n,
                group,
                nr,
                f16_scales: f16,
                zero_points: grid == q4linear::Q4Grid::Asymmetric,
                bias: l.bias,
                activation: l.activation,
                tiles: self.tiling.tiles,
                kernel: self.tiling.kernel,
            };
            let mut inputs = node.inputs.clone();
            let (k, n) = (l.k, l.n);
            let x = inputs_of(graph, w);
            inputs[1] =
                packed.get_or_pack(graph, w, &format!("q4g{group}"), |d| pack(x, d, k, n))?;
            replace_node(graph, id, Op::Q4Linear(op), inputs, &[])?;
            changed = true;
        }
        Ok(changed)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ir::Tensor;
    use crate::ir::printer::print;
    use crate::quantize::QuantMode;

    #[test]
    fn linears_and_embeddings_become_int4() {
        let mut g = crate::passes::quantize_int8::tests::graph();
        let ids = Tensor::from_i64s(vec![1, 3], vec![2, 7, 0]).unwrap();
        let reference = crate::eval::evaluate(&g, std::slice::from_ref(&ids)).unwrap();
        let mut options = QuantOptions::new(QuantMode::Int4);
        options.group = 2;
        let tiling = crate::target::TargetProfile::load("cortex-m55")
            .unwrap()
            .quant_tiling();
        let pass = QuantizeInt4 {
            tiling,
            options,
            calibration: Default::default(),
        };
        assert!(pass.run(&mut g).unwrap());
        crate::passes::eliminate_dead_nodes::EliminateDeadNodes
            .run(&mut g)
            .unwrap();
        crate::ir::verify::verify(&g).unwrap();
        insta::assert_snapshot!(print(&g).unwrap());
        let got = crate::eval::evaluate(&g, &[ids]).unwrap();
        let (a, b) = (reference[0].data.to_f64_vec(), got[0].data.to_f64_vec());
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 0.5, "{a:?} vs {b:?}");
        }
        assert!(crate::quantize::float_layers(&g, &pass.options).is_empty());
    }

    /// `--int8 head`: the tied classifier and its table become int8 (`QLinear` and a
    /// `QGather` reading its blob), the rest stays int4.
    #[test]
    fn int8_patterns_keep_a_tied_classifier_at_int8() {
        let (mut g, ids) = tied_graph();
        let reference = crate::eval::evaluate(&g, std::slice::from_ref(&ids)).unwrap();
        let tiling = crate::target::TargetProfile::load("cortex-m55")
            .unwrap()
            .quant_tiling();
        let mut options = QuantOptions::new(QuantMode::Int4);
        options.int8 = vec!["head".into()];
        let pass = QuantizeInt4 {
            tiling,
            options,
            calibration: Default::default(),
        };
        assert!(pass.run(&mut g).unwrap());
        crate::passes::eliminate_dead_nodes::EliminateDeadNodes
            .run(&mut g)
            .unwrap();
        crate::ir::verify::verify(&g).unwrap();
        insta::assert_snapshot!(print(&g).unwrap());
        let ops: Vec<String> = g
            .node_ids()
            .into_iter()
            .map(|id| match &g.node(id).op {
                Op::QGather(q) => format!("QGather{}:{:?}", q.bits, q.tied_nr),
                op => op.name().to_string(),
            })
            .collect();
        assert_eq!(
            ops,
            vec![
                format!("QGather8:{:?}", Some(tiling.i8_nr)),
                "QLinear".into()
            ]
        );
        let got = crate::eval::evaluate(&g, &[ids]).unwrap();
        let (a, b) = (reference[0].data.to_f64_vec(), got[0].data.to_f64_vec());
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 0.05, "{a:?} vs {b:?}");
        }
    }

    /// `ids -> Gather(emb) -> Linear(lm_head = embᵀ)`, and ids to run it on.
    pub(crate) fn tied_graph() -> (Graph, Tensor) {
        use crate::ops::gather::Gather;
        use crate::ops::linear::Linear;
        let (rows, cols) = (8, 16);
        let mut g = Graph::new(17);
        let ids = g.add_value(
            "ids",
            crate::ir::TensorType::new(crate::ir::DType::I64, vec![1, 3]),
        );
        g.inputs.push(ids);
        let table: Vec<f32> = (0..rows * cols).map(|v| (v as f32 * 0.37).sin()).collect();
        let mut wt = vec![0.0f32; rows * cols];
        for j in 0..rows {
            for p in 0..cols {
                wt[p * rows + j] = table[j * cols + p];
            }
        }
        let t = g.add_constant("emb", Tensor::from_f32s(vec![rows, cols], table).unwrap());
        let w = g.add_constant("lm_head", Tensor::from_f32s(vec![cols, rows], wt).unwrap());
        let (_, e) = g
            .add_node(
                "embed",
                "Gather",
                Op::Gather(Gather { axis: 0 }),
                vec![t, ids],
                &["e".into()],
            )
            .unwrap();
        let (_, y) = g
            .add_node(
                "head",
                "MatMul",
                Op::Linear(Linear::new(cols, rows)),
                vec![e[0], w],
                &["y".into()],
            )
            .unwrap();
        g.outputs.push(y[0]);
        let ids = Tensor::from_i64s(vec![1, 3], vec![2, 7, -8]).unwrap();
        (g, ids)
    }

    /// An embedding table whose transpose is the classifier's weight is stored once: the
    /// `QGather` reads the classifier's int4 blob, and the outputs stay close to float.
    #[test]
    fn a_tied_table_is_stored_once() {
        let (mut g, ids) = tied_graph();
        let reference = crate::eval::evaluate(&g, std::slice::from_ref(&ids)).unwrap();
        let tiling = crate::target::TargetProfile::load("cortex-m55")
            .unwrap()
            .quant_tiling();
        let pass = QuantizeInt4 {
            tiling,
            options: QuantOptions::new(QuantMode::Int4),
            calibration: Default::default(),
        };
        assert!(pass.run(&mut g).unwrap());
        crate::passes::eliminate_dead_nodes::EliminateDeadNodes
            .run(&mut g)
            .unwrap();
        crate::ir::verify::verify(&g).unwrap();
        insta::assert_snapshot!(print(&g).unwrap());
        let gathers: Vec<_> = g
            .node_ids()
            .into_iter()
            .filter_map(|id| match &g.node(id).op {
                Op::QGather(q) => Some(q.tied_nr),
                _ => None,
            })
            .collect();
        assert_eq!(gathers, vec![Some(tiling.q4_nr)]);
        let got = crate::eval::evaluate(&g, &[ids]).unwrap();
        let (a, b) = (reference[0].data.to_f64_vec(), got[0].data.to_f64_vec());
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 0.3, "{a:?} vs {b:?}");
        }
    }
}
