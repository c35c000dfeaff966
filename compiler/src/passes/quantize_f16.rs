//! Store every float `Linear`'s weight and every embedding table as IEEE half (`--quantize
//! f16`): a `HLinear` whose blob holds the weight rounded to nearest even and packed into
//! the panels of the target's f32 GEMM (`nr`), widened to f32 inside the kernel
//! (`runtime_core::kernels::hgemm`); an `HGather` whose table is half bits, row-major — or,
//! when the table's transpose is a classifier's weight (tied embeddings), that classifier's
//! `HLinear` blob, so the table is stored once. Activations, biases and every other tensor
//! stay f32. Nodes whose name matches a `--keep-float` pattern stay in float. A weight or
//! table with a value outside half's range (|w| > 65504, or not finite) is refused, naming
//! the node, rather than stored as an infinity; values below half's smallest subnormal
//! (2⁻²⁴) round to zero.
//!
//! Before: `y = Linear{k, n, nr=0, epilogue}(x, W: f32[k, n], b?)`,
//! `e = Gather{axis=0}(T: f32[rows, cols], ids)`.
//! After: `y[, y.scratch] = HLinear{k, n, nr, epilogue}(x, W.f16: u8[2·packed_len(k, n,
//! nr)], b?)`; the scratch output (`f32[k·nr]`, arena) exists when `x` has more than one row;
//! `e = HGather{rows, cols}(T.f16rows: u8[2·rows·cols], ids)`, or `HGather{.., tied=nr}(W.f16,
//! ids)` when `W` is bit for bit `Tᵀ`. `W.f16` is made once per weight and shared.
//! Runs after `fuse_linear_activation` and before `pack_linear_weights` (in its slot).
use super::quantize_int8::{PackedConstants, embedding_table, float_linear, replace_node};
use super::{Pass, rewrite_each};
use crate::error::{Error, Result};
use crate::ir::{Data, Graph};
use crate::ops::Op;
use crate::ops::hgather::{self, HGather};
use crate::ops::hlinear::{self, HLinear};
use crate::quantize::QuantOptions;
use crate::target::TargetProfile;
use runtime_core::kernels::gemm::Tiles;

/// The largest finite half.
pub const HALF_MAX: f32 = 65504.0;

pub struct QuantizeF16 {
    /// Panel width of the blobs (the target's f32 GEMM `nr`).
    pub nr: usize,
    pub tiles: Tiles,
    /// The kernel the blobs are packed for, for reports.
    pub kernel: &'static str,
    pub options: QuantOptions,
}

impl QuantizeF16 {
    /// The pass for `target`: its GEMM's panel width and tiles, and the name of the half
    /// kernel its features select.
    pub fn for_target(target: &TargetProfile, options: QuantOptions) -> Self {
        let t = target.gemm_tiling();
        let arch = target.triple.split('-').next().unwrap_or("");
        let has = |f: &str| target.features.iter().any(|x| x == f);
        let kernel = match (arch, t.kernel) {
            ("x86_64", "avx512") => "f16c-avx512",
            ("x86_64", "avx2") => "f16c-avx2",
            ("aarch64", _) if has("fp16") => "fp16",
            ("aarch64", _) => "neon-fcvtl",
            _ => "portable",
        };
        QuantizeF16 {
            nr: t.nr,
            tiles: Tiles {
                mr: t.mr,
                kc: t.kc,
                mc: t.mc,
            },
            kernel,
            options,
        }
    }
}

/// Refuse a constant `what` of node `id` holding a value half cannot store (beyond ±65504 or
/// NaN), naming the node and the `--keep-float` pattern that keeps it.
fn check_range(
    graph: &Graph,
    id: crate::ir::NodeId,
    v: crate::ir::ValueId,
    what: &str,
) -> Result<()> {
    let node = graph.node(id);
    if let Some(Data::F32(d)) = graph.constant(v).map(|t| &t.data)
        && let Some(bad) = d.iter().find(|x| x.is_nan() || x.abs() > HALF_MAX)
    {
        return Err(Error::Usage(format!(
            "--quantize f16: layer `{}` ({}) has the {what} value {bad} in `{}`, outside the \
             half range ±{HALF_MAX}; keep it in float with --keep-float '{}'",
            node.name,
            node.source_op,
            graph.value(v).name,
            node.name
        )));
    }
    Ok(())
}

impl Pass for QuantizeF16 {
    fn name(&self) -> &'static str {
        "quantize_f16"
    }

    fn run(&self, graph: &mut Graph) -> Result<bool> {
        let mut packed = PackedConstants::default();
        let order = graph
            .topo_order()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let ties = super::quantize_int4::tied_tables(graph, &order, &self.options, 0);
        rewrite_each(graph, |graph, id| {
            let node = graph.node(id);
            if self.options.kept(&node.name).is_some() {
                return Ok(false);
            }
            if let Some((rows, cols)) = embedding_table(graph, id) {
                let (t, ids) = (node.inputs[0], node.inputs[1]);
                check_range(graph, id, t, "table")?;
                let nr = self.nr;
                let (op, blob) = match ties.iter().find(|(g, _)| *g == id) {
                    Some(&(_, w)) => {
                        let pack = |d: &[f32]| hlinear::pack_weight(d, cols, rows, nr);
                        let op = HGather {
                            rows,
                            cols,
                            tied_nr: Some(nr),
                        };
                        (op, packed.get_or_pack(graph, w, "f16", pack)?)
                    }
                    None => {
                        let op = HGather {
                            rows,
                            cols,
                            tied_nr: None,
                        };
                        (
                            op,
                            packed.get_or_pack(graph, t, "f16rows", hgather::pack_table)?,
                        )
                    }
                };
                replace_node(graph, id, Op::HGather(op), vec![blob, ids], &[])?;
                return Ok(true);
            }
            let Some(l) = float_linear(graph, id) else {
                return Ok(false);
            };
            let w = node.inputs[1];
            check_range(graph, id, w, "weight")?;
            let op = HLinear {
                k: l.k,
                n: l.n,
                nr: self.nr,
                bias: l.bias,
                activation: l.activation,
                tiles: self.tiles,
                kernel: self.kernel,
            };
            let (k, n, nr) = (l.k, l.n, self.nr);
            let scratch = op.has_scratch(&graph.value(node.inputs[0]).ty);
            let mut inputs = node.inputs.clone();
            inputs[1] =
                packed.get_or_pack(graph, w, "f16", |d| hlinear::pack_weight(d, k, n, nr))?;
            let suffixes: &[&str] = if scratch { &["scratch"] } else { &[] };
            replace_node(graph, id, Op::HLinear(op), inputs, suffixes)?;
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Tensor;
    use crate::ir::printer::print;
    use crate::quantize::QuantMode;

    fn pass(target: &str, keep: &[&str]) -> QuantizeF16 {
        let mut options = QuantOptions::new(QuantMode::F16);
        options.keep_float = keep.iter().map(|s| s.to_string()).collect();
        QuantizeF16::for_target(&TargetProfile::load(target).unwrap(), options)
    }

    /// Run `pass` (it must change `g`), drop what it left dead, verify the graph.
    fn quantize(pass: &QuantizeF16, g: &mut crate::ir::Graph) {
        assert!(pass.run(g).unwrap());
        crate::passes::eliminate_dead_nodes::EliminateDeadNodes
            .run(g)
            .unwrap();
        crate::ir::verify::verify(g).unwrap();
    }

    #[test]
    fn linears_become_half() {
        let mut g = crate::passes::quantize_int8::tests::graph();
        let ids = Tensor::from_i64s(vec![1, 3], vec![2, 7, 0]).unwrap();
        let reference = crate::eval::evaluate(&g, std::slice::from_ref(&ids)).unwrap();
        let pass = pass("x86", &["head"]);
        quantize(&pass, &mut g);
        insta::assert_snapshot!(print(&g).unwrap());
        let got = crate::eval::evaluate(&g, &[ids]).unwrap();
        let (a, b) = (reference[0].data.to_f64_vec(), got[0].data.to_f64_vec());
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 5e-3 * (1.0 + x.abs()), "{a:?} vs {b:?}");
        }
        let float = crate::quantize::float_layers(&g, &pass.options);
        let names: Vec<(&str, &str)> = float
            .iter()
            .map(|f| (f.node.as_str(), f.reason.as_str()))
            .collect();
        assert_eq!(names, vec![("head", "--keep-float head")]);
    }

    /// A table whose transpose is the classifier's weight is stored once, as the
    /// classifier's half blob: the `HGather` reads it, no other table blob remains, and the
    /// outputs stay within half rounding of float.
    #[test]
    fn a_tied_table_is_stored_once_in_half() {
        let (mut g, ids) = crate::passes::quantize_int4::tests::tied_graph();
        let reference = crate::eval::evaluate(&g, std::slice::from_ref(&ids)).unwrap();
        quantize(&pass("jetson", &[]), &mut g);
        insta::assert_snapshot!(print(&g).unwrap());
        let mut blobs = std::collections::BTreeSet::new();
        for id in g.node_ids() {
            let node = g.node(id);
            let blob = match &node.op {
                Op::HGather(h) => {
                    assert_eq!(h.tied_nr, Some(8));
                    node.inputs[0]
                }
                Op::HLinear(_) => node.inputs[1],
                other => panic!("{other:?} left"),
            };
            blobs.insert(blob);
        }
        assert_eq!(
            blobs.len(),
            1,
            "one blob shared by the gather and the classifier"
        );
        let got = crate::eval::evaluate(&g, &[ids]).unwrap();
        let (a, b) = (reference[0].data.to_f64_vec(), got[0].data.to_f64_vec());
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 2e-2, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn kernels_follow_the_profile() {
        let k = |t: &str| {
            let p = pass(t, &[]);
            (p.kernel, p.nr)
        };
        assert_eq!(k("x86-avx512"), ("f16c-avx512", 32));
        assert_eq!(k("x86"), ("f16c-avx2", 16));
        assert_eq!(k("jetson"), ("fp16", 8));
        assert_eq!(k("rpi4"), ("neon-fcvtl", 8));
        assert_eq!(k("cortex-m55").0, "portable");
    }

    /// A weight beyond half's range is refused with the layer's name and the flag that
    /// keeps it in float; with that flag the build goes on.
    #[test]
    fn out_of_range_weights_are_refused() {
        let mut g = crate::passes::quantize_int8::tests::graph();
        let w = g
            .node_ids()
            .into_iter()
            .find(|&id| g.node(id).name == "fc1")
            .map(|id| g.node(id).inputs[1])
            .unwrap();
        let mut t = (**g.constant(w).unwrap()).clone();
        if let Data::F32(d) = &mut t.data {
            d[5] = 70000.0;
        }
        g.value_mut(w).constant = Some(std::sync::Arc::new(t));
        let err = pass("x86", &[])
            .run(&mut g.clone())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`fc1`") && err.contains("70000") && err.contains("--keep-float 'fc1'"),
            "{err}"
        );
        assert!(pass("x86", &["fc1"]).run(&mut g).unwrap());
    }
}
