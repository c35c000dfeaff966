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
    /// IEEE half weights (`HLinear`), widened to f32 inside the kernel; activations f32.
    F16,
}

impl QuantMode {
    pub fn parse(s: &str) -> Option<QuantMode> {
        match s {
            "int8" => Some(QuantMode::Int8),
            "int8-static" => Some(QuantMode::Int8Static),
            "int4" => Some(QuantMode::Int4),
            "f16" => Some(QuantMode::F16),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            QuantMode::Int8 => "int8",
            QuantMode::Int8Static => "int8-static",
            QuantMode::Int4 => "int4",
            QuantMode::F16 => "f16",
        }
    }
}

/// How `--quantize int4` chooses a `Linear`'s levels (`--int4-method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Int4Method {
    /// Each group on its own: the scale/zero-point search of `q4linear::quantize_group`
    /// (weighted by the calibration inputs' mean squares when there are some).
    Search,
    /// GPTQ on the calibration inputs' second moment (`q4linear::pack_weight_gptq`); needs
    /// `--calibration-prompts`. The tied table's blob (packed for its classifier) too.
    Gptq,
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
    /// int4 builds: node-name patterns of layers quantized to int8 instead (`--int8`).
    pub int8: Vec<String>,
    /// `--calibration DIR` (int8-static): `DIR/<set>/<input>.npy`.
    pub calibration: Option<PathBuf>,
    pub method: CalibrationMethod,
    /// `--validate DIR`: sample sets (`DIR/<set>/<input>.npy`) on which the quantized graph
    /// is compared with the float one at build time.
    pub validate: Option<PathBuf>,
    /// `--min-cosine X`: fail the build when an output's cosine on a sample set is below X.
    pub min_cosine: Option<f64>,
    /// `--validate-prompts FILE` (stateful decoders): prompts on which the quantized and
    /// the float graph each decode greedily, compared token by token (see [`load_prompts`]).
    pub validate_prompts: Option<PathBuf>,
    /// `--validate-tokens N`: greedy tokens generated per prompt.
    pub validate_tokens: usize,
    /// `--min-agreement N`: fail the build when, on some prompt, fewer than the first N
    /// greedy tokens of the quantized graph equal the float graph's.
    pub min_agreement: Option<usize>,
    /// The target profile whose `[quantize]` default chose `mode` (no `--quantize` given).
    pub profile_default: Option<String>,
    /// `--calibration-prompts FILE` (int4, stateful decoders): prompts the float graph decodes
    /// greedily (`calibrate::CALIBRATION_TOKENS` tokens) to weigh each int4 group's error by its input
    /// channels' activation second moments (`calibrate::activation_moments`).
    pub calibration_prompts: Option<PathBuf>,
    /// The prompts of `calibration_prompts`, as token ids (loaded by the build with its
    /// tokenizer).
    pub calibration_ids: Vec<Prompt>,
    /// `--int4-method`.
    pub int4_method: Int4Method,
}

impl QuantOptions {
    pub fn new(mode: QuantMode) -> Self {
        QuantOptions {
            mode,
            group: 32,
            f16_scales: true,
            keep_float: Vec::new(),
            int8: Vec::new(),
            calibration: None,
            method: CalibrationMethod::MinMax,
            validate: None,
            min_cosine: None,
            validate_prompts: None,
            validate_tokens: 32,
            min_agreement: None,
            profile_default: None,
            calibration_prompts: None,
            calibration_ids: Vec::new(),
            int4_method: Int4Method::Search,
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
        if self.calibration_prompts.is_some() {
            parts.push("--calibration-prompts FILE".into());
        }
        if self.int4_method == Int4Method::Gptq {
            parts.push("--int4-method gptq".into());
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
        if self.mode == QuantMode::Int4 {
            for p in &self.int8 {
                parts.push(format!("--int8 {p}"));
            }
        }
        if let Some(x) = self.min_cosine {
            parts.push(format!("--validate DIR --min-cosine {x}"));
        }
        if let Some(n) = self.min_agreement {
            parts.push(format!("--validate-prompts FILE --min-agreement {n}"));
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

impl QuantOptions {
    /// In an int4 build, the `--int8` pattern that matches `name`, if any.
    pub fn int8_kept(&self, name: &str) -> Option<&str> {
        self.int8
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
            Op::Attention(_) => Some(match (q.mode, q.kept(&node.name)) {
                (QuantMode::Int8, Some(p)) => format!("--keep-float {p}"),
                (QuantMode::Int8, None) => {
                    "int8 attention takes many query rows, not one (decode) or cached keys".into()
                }
                _ => "activation × activation products (attention)".into(),
            }),
            Op::Conv(_) => Some(match q.kept(&node.name) {
                Some(p) => format!("--keep-float {p}"),
                None if q.mode != QuantMode::Int8 => {
                    format!(
                        "convolutions are quantized by --quantize int8, not {}",
                        q.mode.as_str()
                    )
                }
                None if !constant(1) => "weight is not a constant".to_string(),
                None => "not quantized (the int8 conv kernel does not take its shape)".to_string(),
            }),
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
    /// `--validate-prompts` results (empty without it).
    pub greedy: Vec<GreedyAgreement>,
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

/// One validation prompt: how the report names it and its token ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    pub label: String,
    pub ids: Vec<u32>,
}

/// Read a `--validate-prompts` file: one prompt per line; blank lines and lines starting
/// with `#` are skipped; `ids: 1 2 3` gives token ids (space- or comma-separated); any
/// other line is text, encoded by `tokenizer` (a `tokenizer.json` or llama2.c
/// `tokenizer.bin`) with its BOS in front when it has one and the encoding does not start
/// with it (as `generate --prompt` does).
pub fn load_prompts(
    path: &std::path::Path,
    tokenizer: Option<&std::path::Path>,
) -> Result<Vec<Prompt>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let blob = match tokenizer {
        Some(t) => Some(crate::tokenizer::bake(&crate::tokenizer::load(t)?)?),
        None => None,
    };
    let tok = match &blob {
        Some(b) => Some(
            runtime_core::tokenizer::Tokenizer::new(b)
                .map_err(|e| Error::Usage(format!("--validate-prompts: tokenizer: {e:?}")))?,
        ),
        None => None,
    };
    let mut prompts = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let ids = if let Some(list) = line.strip_prefix("ids:") {
            list.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<u32>().map_err(|_| {
                        Error::Usage(format!("{}: `{s}` is not a token id", path.display()))
                    })
                })
                .collect::<Result<Vec<u32>>>()?
        } else {
            let Some(tok) = &tok else {
                return Err(Error::Usage(format!(
                    "{}: the text prompt `{line}` needs --tokenizer (or write `ids: ...`)",
                    path.display()
                )));
            };
            let mut buf = vec![0u32; line.len() + 8];
            let n = tok
                .encode(line, &mut buf)
                .map_err(|e| Error::Usage(format!("encoding `{line}`: {e:?}")))?;
            let mut ids = Vec::with_capacity(n + 1);
            if buf[..n].first().copied() != tok.bos() {
                ids.extend(tok.bos());
            }
            ids.extend_from_slice(&buf[..n]);
            ids
        };
        if ids.is_empty() {
            return Err(Error::Usage(format!(
                "{}: the prompt `{line}` has no tokens",
                path.display()
            )));
        }
        prompts.push(Prompt {
            label: line.to_string(),
            ids,
        });
    }
    if prompts.is_empty() {
        return Err(Error::Usage(format!("{}: no prompts", path.display())));
    }
    Ok(prompts)
}

/// Greedy tokens of the quantized decoder against the float one's, on one prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct GreedyAgreement {
    pub prompt: Prompt,
    /// The float graph's greedy continuation.
    pub float_ids: Vec<u32>,
    /// The quantized graph's greedy continuation (same length).
    pub quantized_ids: Vec<u32>,
    /// At the first difference, the float logit of the float choice minus the float logit
    /// of the quantized choice (both graphs saw the same tokens up to there): how close the
    /// float model itself was to choosing otherwise.
    pub float_gap: Option<f32>,
}

impl GreedyAgreement {
    /// The index of the first generated token that differs, if any.
    pub fn first_difference(&self) -> Option<usize> {
        self.float_ids
            .iter()
            .zip(&self.quantized_ids)
            .position(|(a, b)| a != b)
    }

    /// How many leading generated tokens are identical.
    pub fn agreeing(&self) -> usize {
        self.first_difference().unwrap_or(self.float_ids.len())
    }
}

/// `--min-agreement N`: an error naming every prompt on which fewer than `n` leading greedy
/// tokens agree.
pub fn check_agreement(greedy: &[GreedyAgreement], n: usize) -> Result<()> {
    let low: Vec<String> = greedy
        .iter()
        .filter(|g| g.agreeing() < n)
        .map(|g| format!("`{}` keeps {}", g.prompt.label, g.agreeing()))
        .collect();
    if low.is_empty() {
        return Ok(());
    }
    Err(Error::Mismatch(format!(
        "the quantized model's greedy tokens agree with the float model's for fewer than \
         --min-agreement {n}: {} (keep sensitive layers wider with --int8 or --keep-float)",
        low.join(", ")
    )))
}

/// Decode `prompt` greedily with the stateful decoder `graph` on the reference evaluator:
/// feed the prompt one token per step (its KV cache carried from step to step), then feed
/// back the argmax of the last logits row until `n` tokens are generated.
pub fn greedy_decode(graph: &Graph, prompt: &[u32], n: usize) -> Result<Vec<u32>> {
    Ok(greedy_decode_logits(graph, prompt, n)?.0)
}

/// [`greedy_decode`], also returning the logits row each token was chosen from.
pub fn greedy_decode_logits(
    graph: &Graph,
    prompt: &[u32],
    n: usize,
) -> Result<(Vec<u32>, Vec<Vec<f32>>)> {
    greedy_decode_probed(graph, prompt, n, &[], &mut |_| {})
}

/// [`greedy_decode_logits`], also handing the values `probes` of every step (prompt steps
/// included) to `on_step`, in `probes` order.
pub fn greedy_decode_probed(
    graph: &Graph,
    prompt: &[u32],
    n: usize,
    probes: &[crate::ir::ValueId],
    on_step: &mut dyn FnMut(&[crate::ir::Tensor]),
) -> Result<(Vec<u32>, Vec<Vec<f32>>)> {
    use crate::ir::{DType, Data, Tensor};
    use crate::stateful::InputRole;
    if graph.states.is_empty() {
        return Err(Error::Usage(
            "--validate-prompts needs a stateful decoder (build the one-step export with --max-context N)".into(),
        ));
    }
    // The states become plain inputs and outputs, so each step's state is the last one's.
    let mut g = graph.clone();
    let (n_in, n_out) = (g.inputs.len(), g.outputs.len());
    for s in &graph.states {
        g.inputs.push(s.input);
        g.outputs.push(s.output);
        g.output_names.push(s.name.clone());
    }
    g.states.clear();
    for &v in probes {
        g.outputs.push(v);
        g.output_names
            .push(format!("probe:{}", graph.value(v).name));
    }
    let roles = graph.inputs[..n_in]
        .iter()
        .map(|&v| {
            let name = &graph.value(v).name;
            crate::stateful::input_role(name)
                .map(|r| (r, graph.ty(v).clone()))
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "--validate-prompts: decoder input `{name}` is neither a token id, a position nor an attention mask"
                    ))
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let logits = (0..n_out)
        .find(|&i| graph.output_name(i) == "logits")
        .unwrap_or(0);
    let slots = graph
        .states
        .iter()
        .map(|s| graph.ty(s.input).shape.get(s.axis).copied().unwrap_or(0))
        .min()
        .unwrap_or(0);
    if prompt.is_empty() || prompt.len() + n > slots + 1 {
        return Err(Error::Usage(format!(
            "--validate-prompts: a prompt of {} tokens and {n} generated ones do not fit the decoder's {slots} cache slots",
            prompt.len()
        )));
    }
    let int_tensor = |ty: &crate::ir::TensorType, values: Vec<i64>| -> Result<Tensor> {
        let data = match ty.dtype {
            DType::I64 => Data::I64(values),
            DType::I32 => Data::I32(values.iter().map(|&v| v as i32).collect()),
            other => {
                return Err(Error::Usage(format!(
                    "--validate-prompts: decoder input of type {other:?} (expected i64 or i32)"
                )));
            }
        };
        Tensor::new(ty.clone(), data).map_err(|e| Error::Internal(e.to_string()))
    };
    let mut state: Vec<Tensor> = graph
        .states
        .iter()
        .map(|s| Tensor::zeros(graph.ty(s.input).clone()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let mut tokens = prompt.to_vec();
    let mut out = Vec::with_capacity(n);
    let mut rows = Vec::with_capacity(n);
    let mut pos = 0;
    while out.len() < n {
        let mut inputs = Vec::with_capacity(g.inputs.len());
        for (role, ty) in &roles {
            let numel = ty.numel();
            let values = match role {
                InputRole::TokenId => vec![i64::from(tokens[pos]); numel],
                InputRole::Position => vec![pos as i64; numel],
                InputRole::AttentionMask => (0..numel).map(|i| i64::from(i <= pos)).collect(),
            };
            inputs.push(int_tensor(ty, values)?);
        }
        inputs.append(&mut state);
        let mut outs = crate::eval::evaluate(&g, &inputs)?;
        state = outs.split_off(n_out);
        let probed = state.split_off(graph.states.len());
        on_step(&probed);
        if pos + 1 >= prompt.len() {
            let Data::F32(l) = &outs[logits].data else {
                return Err(Error::Usage(format!(
                    "--validate-prompts: output `{}` is not f32 logits",
                    graph.output_name(logits)
                )));
            };
            let vocab = graph
                .ty(graph.outputs[logits])
                .shape
                .last()
                .copied()
                .unwrap_or(0);
            let last = &l[l.len().saturating_sub(vocab)..];
            let next = runtime_core::sampling::argmax(last) as u32;
            out.push(next);
            rows.push(last.to_vec());
            tokens.push(next);
        }
        pos += 1;
    }
    Ok((out, rows))
}

/// Greedy continuations of `n` tokens of the float graph `reference` and the quantized
/// `quantized` on every prompt.
pub fn validate_greedy(
    reference: &Graph,
    quantized: &Graph,
    prompts: &[Prompt],
    n: usize,
) -> Result<Vec<GreedyAgreement>> {
    prompts
        .iter()
        .map(|p| {
            let (float_ids, logits) = greedy_decode_logits(reference, &p.ids, n)?;
            let quantized_ids = greedy_decode(quantized, &p.ids, n)?;
            let mut a = GreedyAgreement {
                prompt: p.clone(),
                float_ids,
                quantized_ids,
                float_gap: None,
            };
            a.float_gap = a.first_difference().and_then(|i| {
                let row = logits.get(i)?;
                let f = row.get(a.float_ids[i] as usize)?;
                let q = row.get(a.quantized_ids[i] as usize)?;
                Some(f - q)
            });
            Ok(a)
        })
        .collect()
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

    #[test]
    fn prompt_files() {
        let dir = std::env::temp_dir().join(format!("slm-aot-prompts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("p.txt");
        std::fs::write(&file, "# comment\n\nids: 1, 2 3\n  ids:7\n").unwrap();
        let p = load_prompts(&file, None).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].label.as_str(), p[0].ids.clone()),
            ("ids: 1, 2 3", vec![1, 2, 3])
        );
        assert_eq!(p[1].ids, vec![7]);
        std::fs::write(&file, "Once upon a time\n").unwrap();
        let e = load_prompts(&file, None).unwrap_err().to_string();
        assert!(e.contains("needs --tokenizer"), "{e}");
        std::fs::write(&file, "ids: 1 x\n").unwrap();
        assert!(load_prompts(&file, None).is_err());
        std::fs::write(&file, "# only a comment\n").unwrap();
        assert!(load_prompts(&file, None).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
