//! Store every float `Linear`'s weight as IEEE half (`--quantize f16`): a `HLinear` whose
//! blob holds the weight rounded to nearest even and packed into the panels of the target's
//! f32 GEMM (`nr`), widened to f32 inside the kernel (`runtime_core::kernels::hgemm`).
//! Activations, biases, embedding tables and every other tensor stay f32. Layers whose
//! node name matches a `--keep-float` pattern stay in float. A weight with a value outside
//! half's range (|w| > 65504, or not finite) is refused, naming the layer, rather than
//! stored as an infinity; values below half's smallest subnormal (2⁻²⁴) round to zero.
//!
//! Before: `y = Linear{k, n, nr=0, epilogue}(x, W: f32[k, n], b?)`.
//! After: `y[, y.scratch] = HLinear{k, n, nr, epilogue}(x, W.f16: u8[2·packed_len(k, n,
//! nr)], b?)`; the scratch output (`f32[k·nr]`, arena) exists when `x` has more than one row.
//! `W.f16` is made once per weight and shared.
//! Runs after `fuse_linear_activation` and before `pack_linear_weights` (in its slot).
use super::quantize_int8::{PackedConstants, float_linear, replace_node};
use super::{Pass, rewrite_each};
use crate::error::{Error, Result};
use crate::ir::{Data, Graph};
use crate::ops::Op;
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

impl Pass for QuantizeF16 {
    fn name(&self) -> &'static str {
        "quantize_f16"
    }

    fn run(&self, graph: &mut Graph) -> Result<bool> {
        let mut packed = PackedConstants::default();
        rewrite_each(graph, |graph, id| {
            let node = graph.node(id);
            if self.options.kept(&node.name).is_some() {
                return Ok(false);
            }
            let Some(l) = float_linear(graph, id) else {
                return Ok(false);
            };
            let w = node.inputs[1];
            if let Some(Data::F32(d)) = graph.constant(w).map(|t| &t.data)
                && let Some(bad) = d.iter().find(|v| v.is_nan() || v.abs() > HALF_MAX)
            {
                return Err(Error::Usage(format!(
                    "--quantize f16: layer `{}` ({}) has the weight value {bad} in `{}`, outside \
                     the half range ±{HALF_MAX}; keep it in float with --keep-float '{}'",
                    node.name,
                    node.source_op,
                    graph.value(w).name,
                    node.name
                )));
            }
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

    #[test]
    fn linears_become_half() {
        let mut g = crate::passes::quantize_int8::tests::graph();
        let ids = Tensor::from_i64s(vec![1, 3], vec![2, 7, 0]).unwrap();
        let reference = crate::eval::evaluate(&g, std::slice::from_ref(&ids)).unwrap();
        let pass = pass("x86", &["head"]);
        assert!(pass.run(&mut g).unwrap());
        crate::passes::eliminate_dead_nodes::EliminateDeadNodes
            .run(&mut g)
            .unwrap();
        crate::ir::verify::verify(&g).unwrap();
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
        assert_eq!(
            names,
            vec![
                ("embed", "embedding tables stay f32 under --quantize f16"),
                ("head", "--keep-float head")
            ]
        );
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
