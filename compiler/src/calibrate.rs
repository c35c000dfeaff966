//! Calibration on the float graph (fused, not yet quantized): static int8 runs it on the
//! sample sets of `--calibration DIR` (`DIR/<set>/<input>.npy`) and turns the range of every
//! `Linear`'s input into a fixed uint8 scale and zero point (ONNX `QuantizeLinear`
//! semantics); int4 with `--calibration-prompts` decodes prompts greedily and keeps every
//! `Linear`'s input rows ([`layer_inputs`]): their channels' mean squares weigh the group
//! search, their second moment `XᵀX` is GPTQ's Hessian.
use crate::error::{Error, Result};
use crate::ir::Graph;
use crate::ops::Op;
use crate::ops::qlinear::ActQuant;
use crate::quantize::{CalibrationMethod, QuantOptions};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The sample sets of a calibration (or validation) folder: its subfolders in name order,
/// or the folder itself when it holds `.npy` files directly.
pub fn sample_sets(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut sets: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    sets.sort();
    if sets.is_empty() {
        sets.push(dir.to_path_buf());
    }
    Ok(sets)
}

/// Per `Linear` node name, the static activation quantization derived from the samples.
pub fn calibrate(
    graph: &Graph,
    q: &QuantOptions,
    dir: &Path,
) -> Result<BTreeMap<String, ActQuant>> {
    let mut probe = graph.clone();
    let mut layers: Vec<String> = Vec::new();
    for id in graph.node_ids() {
        let node = graph.node(id);
        if let Op::Linear(_) = node.op
            && graph.constant(node.inputs[1]).is_some()
            && q.kept(&node.name).is_none()
        {
            probe.outputs.push(node.inputs[0]);
            probe.output_names.push(format!("{}:x", node.name));
            layers.push(node.name.clone());
        }
    }
    let first = graph.outputs.len();
    let mut seen: Vec<Vec<f32>> = vec![Vec::new(); layers.len()];
    let mut ranges: Vec<(f32, f32)> = vec![(0.0, 0.0); layers.len()];
    for set in sample_sets(dir)? {
        let inputs = crate::verify::load_inputs(graph, &set)?;
        let outs = crate::eval::evaluate(&probe, &inputs)?;
        for (i, t) in outs[first..].iter().enumerate() {
            let crate::ir::Data::F32(v) = &t.data else {
                continue;
            };
            for &x in v.iter().filter(|x| x.is_finite()) {
                ranges[i].0 = ranges[i].0.min(x);
                ranges[i].1 = ranges[i].1.max(x);
            }
            if let CalibrationMethod::Percentile(_) = q.method {
                seen[i].extend(v.iter().copied().filter(|x| x.is_finite()));
            }
        }
    }
    let mut out = BTreeMap::new();
    for (i, name) in layers.into_iter().enumerate() {
        let (mut lo, mut hi) = ranges[i];
        if let CalibrationMethod::Percentile(p) = q.method {
            let v = &mut seen[i];
            v.sort_by(f32::total_cmp);
            if !v.is_empty() {
                let at = |f: f64| v[((v.len() - 1) as f64 * f / 100.0).round() as usize];
                lo = at(100.0 - p).min(0.0);
                hi = at(p).max(0.0);
            }
        }
        out.insert(name, u8_params(lo, hi));
    }
    Ok(out)
}

/// Greedy tokens the float graph generates per `--calibration-prompts` prompt.
pub const CALIBRATION_TOKENS: usize = 32;

/// Per `Linear` node name (weights constant, not kept float), the mean square of each input
/// channel, `E[x_p²]` (`k` values), over every step of the float graph's greedy decoding of
/// `prompts` (`n` tokens each; a stateful decoder): the weights of an int4 group's error
/// (`Σ_p E[x_p²]·(w_p - ŵ_p)²` is the expected squared output error when the channels are
/// uncorrelated). Deterministic: the evaluator, prompts in order.
pub fn activation_moments(
    graph: &Graph,
    q: &QuantOptions,
    prompts: &[crate::quantize::Prompt],
    n: usize,
) -> Result<BTreeMap<String, Vec<f32>>> {
    Ok(layer_inputs(graph, q, prompts, n)?
        .into_iter()
        .map(|(name, x)| (name, x.moments()))
        .collect())
}

/// The input rows one `Linear` saw during calibration: `rows.len() / k` rows of `k` values,
/// in step order.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerInputs {
    pub k: usize,
    pub rows: Vec<f32>,
}

impl LayerInputs {
    /// Number of rows.
    pub fn count(&self) -> usize {
        self.rows.len().checked_div(self.k).unwrap_or(0)
    }

    /// Each channel's mean square over the rows (non-finite values skipped; `k` zeros when
    /// there are no rows), summed in f64 in row order.
    pub fn moments(&self) -> Vec<f32> {
        let mut sums = vec![0.0f64; self.k];
        for row in self.rows.chunks_exact(self.k.max(1)) {
            for (s, &x) in sums.iter_mut().zip(row) {
                if x.is_finite() {
                    *s += f64::from(x) * f64::from(x);
                }
            }
        }
        let r = self.count().max(1) as f64;
        sums.iter().map(|&x| (x / r) as f32).collect()
    }

    /// The second moment `H = XᵀX` (row-major `k × k`, f64; non-finite values count as 0),
    /// GPTQ's Hessian of the squared output error `‖(W − Ŵ)ᵀX‖²` up to a factor 2. Its
    /// `k²` values are the memory GPTQ needs per layer, made only when that layer is
    /// quantized.
    pub fn hessian(&self) -> Vec<f64> {
        let k = self.k;
        let mut h = vec![0.0f64; k * k];
        let mut x = vec![0.0f64; k];
        for row in self.rows.chunks_exact(k.max(1)) {
            for (d, &v) in x.iter_mut().zip(row) {
                *d = if v.is_finite() { f64::from(v) } else { 0.0 };
            }
            for (a, &xa) in x.iter().enumerate() {
                if xa == 0.0 {
                    continue;
                }
                for (hb, &xb) in h[a * k..a * k + a + 1].iter_mut().zip(&x) {
                    *hb += xa * xb;
                }
            }
        }
        for a in 0..k {
            for b in 0..a {
                h[b * k + a] = h[a * k + b];
            }
        }
        h
    }
}

/// Per `Linear` node name (weights constant, not kept float), every input row it sees over
/// every step of the float graph's greedy decoding of `prompts` (`n` tokens each; a stateful
/// decoder), prompt steps included. Memory: the rows of every layer, `steps × Σ k` f32.
/// Deterministic: the evaluator, prompts in order.
pub fn layer_inputs(
    graph: &Graph,
    q: &QuantOptions,
    prompts: &[crate::quantize::Prompt],
    n: usize,
) -> Result<BTreeMap<String, LayerInputs>> {
    let mut layers: Vec<(String, crate::ir::ValueId, usize)> = Vec::new();
    for id in graph.node_ids() {
        let node = graph.node(id);
        if let Op::Linear(l) = &node.op
            && graph.constant(node.inputs[1]).is_some()
            && q.kept(&node.name).is_none()
        {
            layers.push((node.name.clone(), node.inputs[0], l.k));
        }
    }
    let probes: Vec<_> = layers.iter().map(|l| l.1).collect();
    let mut seen: Vec<LayerInputs> = layers
        .iter()
        .map(|l| LayerInputs {
            k: l.2,
            rows: Vec::new(),
        })
        .collect();
    for p in prompts {
        crate::quantize::greedy_decode_probed(graph, &p.ids, n, &probes, &mut |outs| {
            for (i, t) in outs.iter().enumerate() {
                let crate::ir::Data::F32(v) = &t.data else {
                    continue;
                };
                let k = seen[i].k.max(1);
                seen[i].rows.extend_from_slice(&v[..v.len() / k * k]);
            }
        })?;
    }
    Ok(layers
        .into_iter()
        .zip(seen)
        .map(|((name, _, _), x)| (name, x))
        .collect())
}

/// uint8 asymmetric parameters covering `[min(lo, 0), max(hi, 0)]`, as ONNX Runtime's
/// static quantizer computes them.
pub fn u8_params(lo: f32, hi: f32) -> ActQuant {
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let scale = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
    let zero_point = (-lo / scale).round_ties_even().clamp(0.0, 255.0) as i32;
    ActQuant::Static {
        scale,
        zero_point,
        u8: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_cover_the_range_and_zero() {
        let ActQuant::Static {
            scale, zero_point, ..
        } = u8_params(-1.0, 3.0)
        else {
            panic!()
        };
        assert!((scale - 4.0 / 255.0).abs() < 1e-7);
        assert_eq!(zero_point, 64);
        let ActQuant::Static { zero_point, .. } = u8_params(0.5, 2.0) else {
            panic!()
        };
        assert_eq!(zero_point, 0);
    }
}
