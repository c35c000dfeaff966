//! Quantization settings of a build (`--quantize`, `--group-size`, `--scales`,
//! `--keep-float`, `--calibration`) and the list of layers a quantized build leaves in
//! float, with the reason, for the build report.
use crate::error::{Error, Result};
use crate::ir::Graph;
use crate::ops::Op;
use std::path::PathBuf;

/// What `--quantize` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantMode {
    /// int8 weights per output channel, activations quantized per row at run time.
    Int8,
    /// int8 weights, activations with fixed scales from a calibration set.
    Int8Static,
    /// int4 weight-only per group of k, dequantized inside the kernel.
    Int4,
}

impl QuantMode {
    pub fn parse(s: &str) -> Option<QuantMode> {
        match s {
            "int8" => Some(QuantMode::Int8),
            "int8-static" => Some(QuantMode::Int8Static),
            "int4" => Some(QuantMode::Int4),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            QuantMode::Int8 => "int8",
            QuantMode::Int8Static => "int8-static",
            QuantMode::Int4 => "int4",
        }
    }
}

/// How calibration turns observed activations into a range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CalibrationMethod {
    /// The smallest and largest value seen.
    MinMax,
    /// The given percentile of |x| (e.g. 99.99), symmetric.
    Percentile(f64),
}

/// The quantization part of `BuildOptions`.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantOptions {
    pub mode: QuantMode,
    /// Rows of k per int4 scale (32, 64 or 128).
    pub group: usize,
    /// Store int4 scales as f16 (else f32).
    pub f16_scales: bool,
    /// Node-name patterns of layers kept in float.
    pub keep_float: Vec<String>,
    /// `--calibration DIR` (int8-static): `DIR/<set>/<input>.npy`.
    pub calibration: Option<PathBuf>,
    pub method: CalibrationMethod,
    /// `--validate DIR`: sample sets (`DIR/<set>/<input>.npy`) on which the quantized graph
    /// is compared with the float one at build time.
    pub validate: Option<PathBuf>,
    /// `--min-cosine X`: fail the build when an output's cosine on a sample set is below X.
    pub min_cosine: Option<f64>,
    /// The target profile whose `[quantize]` default chose `mode` (no `--quantize` given).
    pub profile_default: Option<String>,
}

impl QuantOptions {
    pub fn new(mode: QuantMode) -> Self {
        QuantOptions {
            mode,
            group: 32,
            f16_scales: true,
            keep_float: Vec::new(),
            calibration: None,
            method: CalibrationMethod::MinMax,
            validate: None,
            min_cosine: None,
            profile_default: None,
        }
    }

    /// The flags in canonical form (for the manifest; no machine paths).
    pub fn flags(&self) -> String {
        let mut parts = vec![format!("--quantize {}", self.mode.as_str())];
        if self.mode == QuantMode::Int4 {
            parts.push(format!("--group-size {}", self.group));
            parts.push(format!(
                "--scales {}",
                if self.f16_scales { "f16" } else { "f32" }
            ));
        }
        if self.mode == QuantMode::Int8Static {
            parts.push("--calibration DIR".into());
            parts.push(match self.method {
                CalibrationMethod::MinMax => "--calibration-method minmax".into(),
                CalibrationMethod::Percentile(p) => {
                    format!("--calibration-method percentile --percentile {p}")
                }
            });
        }
        for p in &self.keep_float {
            parts.push(format!("--keep-float {p}"));
        }
        if let Some(x) = self.min_cosine {
            parts.push(format!("--validate DIR --min-cosine {x}"));
        }
        parts.join(" ")
    }

    /// The `--keep-float` pattern that matches `name`, if any.
    pub fn kept(&self, name: &str) -> Option<&str> {
        self.keep_float
            .iter()
            .find(|p| pattern_matches(p, name))
            .map(String::as_str)
    }
}

/// `*` matches any run of characters; a pattern without `*` matches anywhere in the name.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    if !pattern.contains('*') {
        return name.contains(pattern);
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return part.is_empty() || rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    rest.is_empty()
}

/// One layer left in float by a quantized build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloatLayer {
    pub node: String,
    pub op: String,
    pub reason: String,
}

/// Every weight-bearing or product layer of the optimised `graph` that is not quantized,
/// and why (for the build report).
pub fn float_layers(graph: &Graph, q: &QuantOptions) -> Vec<FloatLayer> {
    let mut out = Vec::new();
    for id in graph.node_ids() {
        let node = graph.node(id);
        let constant = |i: usize| {
            node.inputs
                .get(i)
                .and_then(|&v| graph.constant(v))
                .is_some()
        };
        let reason = match &node.op {
            Op::Linear(_) if !constant(1) => Some("weight is not a constant".to_string()),
            Op::Linear(_) => Some(match q.kept(&node.name) {
                Some(p) => format!("--keep-float {p}"),
                None => "not quantized".to_string(),
            }),
            Op::Gather(g) if constant(0) && g.axis == 0 => Some(match q.kept(&node.name) {
                Some(p) => format!("--keep-float {p}"),
                None => format!("table {} is not a 2-D f32 table", graph.ty(node.inputs[0])),
            }),
            Op::MatMul(_) => Some("both operands are activations (no constant weight)".into()),
            Op::Attention(_) => Some("activation × activation products (attention)".into()),
            Op::Conv(_) => Some("no quantized convolution kernel".into()),
            Op::Einsum(_) => Some("no quantized einsum kernel".into()),
            _ => None,
        };
        if let Some(reason) = reason {
            out.push(FloatLayer {
                node: node.name.clone(),
                op: node.op.name().to_string(),
                reason,
            });
        }
    }
    out
}

/// Accuracy of one output of the quantized graph against the float graph, worst over the
/// sample sets.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputAccuracy {
    pub name: String,
    pub min_cosine: f64,
    pub max_abs_error: f64,
    pub sets: usize,
}

/// What the build report says about a quantized build.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantSummary {
    pub options: QuantOptions,
    /// Weight-blob bytes of the same build without quantization.
    pub float_weight_bytes: usize,
    pub float_layers: Vec<FloatLayer>,
    /// `--validate` results (empty without it).
    pub accuracy: Vec<OutputAccuracy>,
}

/// Run the float graph `reference` and the quantized graph `quantized` (same inputs and
/// outputs) with the reference evaluator on every sample set of `dir`; per output, the
/// lowest cosine and largest absolute error. With `min_cosine`, an output below it fails.
pub fn validate(
    reference: &Graph,
    quantized: &Graph,
    dir: &std::path::Path,
    min_cosine: Option<f64>,
) -> Result<Vec<OutputAccuracy>> {
    let mut acc: Vec<OutputAccuracy> = (0..quantized.outputs.len())
        .map(|i| OutputAccuracy {
            name: quantized.output_name(i).to_string(),
            min_cosine: 1.0,
            max_abs_error: 0.0,
            sets: 0,
        })
        .collect();
    for set in crate::calibrate::sample_sets(dir)? {
        let inputs = crate::verify::load_inputs(reference, &set)?;
        let want = crate::eval::evaluate(reference, &inputs)?;
        let got = crate::eval::evaluate(quantized, &inputs)?;
        for (i, a) in acc.iter_mut().enumerate() {
            let check = crate::verify::compare(&a.name, &got[i], &want[i], 0.0, 0.0)?;
            a.min_cosine = a.min_cosine.min(check.cosine);
            a.max_abs_error = a.max_abs_error.max(check.max_abs_error);
            a.sets += 1;
        }
    }
    if let Some(x) = min_cosine {
        let low: Vec<String> = acc
            .iter()
            .filter(|a| a.min_cosine.is_nan() || a.min_cosine < x)
            .map(|a| format!("`{}` cosine {:.6}", a.name, a.min_cosine))
            .collect();
        if !low.is_empty() {
            return Err(Error::Mismatch(format!(
                "the quantized model is below --min-cosine {x} against the float model on `{}`: {} (keep sensitive layers in float with --keep-float)",
                dir.display(),
                low.join(", ")
            )));
        }
    }
    Ok(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(pattern_matches("lm_head", "model/lm_head.linear"));
        assert!(pattern_matches(
            "*layer.0*",
            "/encoder/layer.0/attention/MatMul.linear"
        ));
        assert!(!pattern_matches(
            "*layer.0*",
            "/encoder/layer.1/attention/MatMul.linear"
        ));
        assert!(pattern_matches(
            "/encoder/*/query*",
            "/encoder/layer.2/query/MatMul"
        ));
        assert!(!pattern_matches(
            "/decoder/*",
            "/encoder/layer.2/query/MatMul"
        ));
        assert!(pattern_matches("*MatMul", "/a/MatMul"));
        assert!(!pattern_matches("*MatMul", "/a/MatMul.linear"));
    }
}
