//! Shared helpers of the integration tests: fixture discovery and case files.
#![allow(dead_code)]
use serde::Deserialize;
use slm_aot::frontend::ImportOptions;
use slm_aot::pipeline::BuildOptions;
use slm_aot::target::TargetProfile;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repo root")
}

/// A scratch folder under the workspace target dir, shared by test runs so cargo reuses
/// builds of runtime-core and runners.
pub fn scratch(name: &str) -> PathBuf {
    let dir = repo().join("target").join("slm-aot-tests").join(name);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// `tests/models/<name>/case.toml`.
#[derive(Debug, Deserialize)]
pub struct Case {
    pub description: String,
    pub exporter: String,
    pub atol: f64,
    #[serde(default)]
    pub dims: BTreeMap<String, usize>,
    /// Build as a stateful decoder with this many cache slots.
    #[serde(default)]
    pub max_context: Option<usize>,
    /// The model, relative to the fixture folder, when it is not `model.onnx` or the folder
    /// itself (a stateful variant of another fixture's checkpoint).
    #[serde(default)]
    pub model: Option<String>,
    /// A tokenizer to bake into the crate, relative to the fixture folder.
    #[serde(default)]
    pub tokenizer: Option<String>,
    /// Quantized builds of this fixture (`[quantized.int8]`, `[quantized.int8-static]`,
    /// `[quantized.int4]`) and the accuracy they must keep against the float references.
    #[serde(default)]
    pub quantized: BTreeMap<String, QuantCase>,
}

/// `[quantized.<mode>]` in a `case.toml`: a build with `--quantize <mode>` must reach
/// `min_cosine` and stay within `max_abs` of ONNX Runtime's float references on every output.
/// `int8-static` calibrates on `calibration` (a folder of sample sets, never `inputs/`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantCase {
    pub min_cosine: f64,
    pub max_abs: f64,
    /// int4 group size (default 32).
    #[serde(default)]
    pub group_size: Option<usize>,
    /// int8-static: the calibration folder, relative to the fixture (required).
    #[serde(default)]
    pub calibration: Option<String>,
}

/// One fixture folder.
#[derive(Debug)]
pub struct Fixture {
    pub name: String,
    pub dir: PathBuf,
    pub case: Case,
}

impl Fixture {
    /// `model.onnx`, or the folder itself for a checkpoint (`config.json` + safetensors).
    pub fn model(&self) -> PathBuf {
        if let Some(rel) = &self.case.model {
            return self.dir.join(rel);
        }
        let onnx = self.dir.join("model.onnx");
        if onnx.is_file() {
            onnx
        } else {
            self.dir.clone()
        }
    }

    pub fn build_options(&self) -> BuildOptions {
        BuildOptions {
            model: self.model(),
            target: TargetProfile::load("x86").expect("x86 profile"),
            import: ImportOptions {
                limits: Default::default(),
                quant_tiling: None,
                dims: self.case.dims.clone(),
                max_context: self.case.max_context,
            },
            crate_name: Some(self.name.replace('_', "-")),
            runtime_path: None,
            verify_each_pass: true,
            tokenizer: self.case.tokenizer.as_ref().map(|t| self.dir.join(t)),
            golden: None,
            quantize: None,
        }
    }
}

impl Fixture {
    /// Build options for the fixture's `[quantized.<mode>]` case.
    pub fn quantized_build_options(&self, mode: &str) -> BuildOptions {
        use slm_aot::quantize::{QuantMode, QuantOptions};
        let m = QuantMode::parse(mode).unwrap_or_else(|| panic!("{}: mode `{mode}`", self.name));
        let mut q = QuantOptions::new(m);
        let case = self.case.quantized.get(mode);
        if let Some(g) = case.and_then(|c| c.group_size) {
            q.group = g;
        }
        if m == QuantMode::Int8Static {
            let dir = case
                .and_then(|c| c.calibration.as_deref())
                .unwrap_or_else(|| {
                    panic!("{}: [quantized.int8-static] needs `calibration`", self.name)
                });
            assert_ne!(dir, "inputs", "{}: calibrate on held-out sets", self.name);
            q.calibration = Some(self.dir.join(dir));
        }
        let mut o = self.build_options();
        o.quantize = Some(q);
        o.crate_name = Some(format!("{}-{mode}", self.name.replace('_', "-")));
        o
    }
}

/// Every folder under `tests/models` (ONNX) and `tests/checkpoints` (safetensors
/// checkpoints) with a `case.toml`, sorted by name.
pub fn fixtures() -> Vec<Fixture> {
    let mut out: Vec<Fixture> = ["models", "checkpoints"]
        .iter()
        .flat_map(|folder| fixtures_in(&repo().join("tests").join(folder)))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(!out.is_empty(), "no fixtures found under tests/");
    out
}

fn fixtures_in(root: &Path) -> Vec<Fixture> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root).expect("fixture folder") {
        let dir = entry.expect("entry").path();
        let case_path = dir.join("case.toml");
        if !case_path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&case_path).expect("case.toml");
        let case: Case =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", case_path.display()));
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_string();
        out.push(Fixture { name, dir, case });
    }
    out
}

/// A committed fixture's `model.onnx`, decoded (for tests that make hostile variants).
pub fn fixture_model(fixture: &str) -> onnx_protobuf::ModelProto {
    use onnx_protobuf::Message;
    let path = repo().join("tests/models").join(fixture).join("model.onnx");
    onnx_protobuf::ModelProto::parse_from_bytes(&std::fs::read(path).expect("read fixture"))
        .expect("decode")
}

/// Write `m` as `<scratch(folder)>/name` and return its path.
pub fn write_model(folder: &str, name: &str, m: &onnx_protobuf::ModelProto) -> PathBuf {
    use onnx_protobuf::Message;
    let p = scratch(folder).join(name);
    std::fs::write(&p, m.write_to_bytes().expect("encode")).expect("write");
    p
}

/// Run `slm-aot ARGS..`; assert it succeeds and return its stdout.
pub fn run_ok(args: &[&std::ffi::OsStr]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_slm-aot"))
        .args(args)
        .output()
        .expect("run slm-aot");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Run `slm-aot build MODEL -o <scratch> EXTRA..`; assert exit 1, no panic, and every
/// `expected` fragment in stderr.
pub fn expect_build_error(model: &Path, extra: &[&str], expected: &[&str]) {
    let out_dir = scratch("build-error-out");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_slm-aot"))
        .arg("build")
        .arg(model)
        .arg("-o")
        .arg(&out_dir)
        .args(extra)
        .output()
        .expect("run slm-aot");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}: expected exit 1, stderr:\n{stderr}",
        model.display()
    );
    assert!(
        !stderr.contains("panicked"),
        "{}: panicked:\n{stderr}",
        model.display()
    );
    for e in expected {
        assert!(
            stderr.contains(e),
            "{}: stderr lacks `{e}`:\n{stderr}",
            model.display()
        );
    }
}

/// Every step's logits row (`vocab` wide) of the stateful decoder `graph` fed `ids` (teacher
/// forcing, on the evaluator).
pub fn teacher_forced_logits(
    graph: &slm_aot::ir::Graph,
    ids: &[u32],
    vocab: usize,
) -> Vec<Vec<f32>> {
    let out = graph.outputs[0];
    let mut rows = Vec::new();
    slm_aot::quantize::greedy_decode_probed(graph, ids, 1, &[out], &mut |t| {
        if let slm_aot::ir::Data::F32(v) = &t[0].data {
            rows.push(v[v.len() - vocab..].to_vec());
        }
    })
    .expect("decode");
    rows.truncate(ids.len());
    rows
}

/// `Σ (float - quantized)² / Σ float²` over all rows.
pub fn relative_error(float: &[Vec<f32>], quantized: &[Vec<f32>]) -> f64 {
    let (mut err, mut norm) = (0.0, 0.0);
    for (f, q) in float.iter().zip(quantized) {
        for (a, b) in f.iter().zip(q) {
            err += f64::from(a - b).powi(2);
            norm += f64::from(*a).powi(2);
        }
    }
    err / norm
}
