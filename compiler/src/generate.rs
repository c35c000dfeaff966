//! `slm-aot generate`: build a stateful decoder crate, build a small host generation runner
//! next to it (`templates/generate/main.rs`), and run it: prefill the prompt, then sample
//! token by token with runtime-core's sampler.
#![deny(clippy::indexing_slicing)]
use crate::error::{Error, Result};
use crate::pipeline::{self, BuildOptions};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const MAIN: &str = include_str!("../../templates/generate/main.rs");
const CARGO: &str = include_str!("../../templates/runner/Cargo.toml.in");

/// How to pick tokens (see `runtime_core::sampling`).
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    pub temperature: f32,
    pub top_k: usize,
    pub top_p: f32,
    pub repetition_penalty: f32,
    pub seed: u64,
}

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub build: BuildOptions,
    /// Prompt text, encoded by the crate's baked tokenizer (BOS prepended when it has one).
    pub prompt: Option<String>,
    pub prompt_ids: Vec<u32>,
    pub tokens: usize,
    pub sampling: Sampling,
    pub eos: Option<u32>,
    pub print_ids: bool,
    /// Where the generated crate, the runner and its cargo target dir go.
    pub work_dir: PathBuf,
}

/// What a generation run printed.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The runner's standard output (the ids, or the text).
    pub stdout: String,
    /// Its timing line.
    pub stderr: String,
}

/// The cache size a checkpoint decoder gets when `--max-context` is not given: its
/// `max_position_embeddings` (or `n_positions`), at most [`DEFAULT_MAX_CONTEXT`].
pub fn default_max_context(model: &Path) -> Option<usize> {
    if !crate::frontend::safetensors::is_checkpoint(model) {
        return None;
    }
    let config = crate::frontend::safetensors::Config::load(&model.join("config.json")).ok()?;
    ["max_position_embeddings", "n_positions"]
        .iter()
        .find_map(|f| config.usize(f).ok())
        .map(|n| n.min(DEFAULT_MAX_CONTEXT))
}

/// The largest default cache (tokens) for a checkpoint without `--max-context`.
pub const DEFAULT_MAX_CONTEXT: usize = 1024;

/// Build the crate and the runner; returns the runner binary.
pub fn build_generator(build: &BuildOptions, work_dir: &Path) -> Result<PathBuf> {
    let mut build = build.clone();
    if build.import.max_context.is_none() {
        build.import.max_context = default_max_context(&build.model);
    }
    let build = &build;
    if build.import.max_context.is_none() {
        return Err(Error::Usage(
            "generate needs a stateful decoder: pass --max-context N".into(),
        ));
    }
    let gen_dir = work_dir.join("gen");
    let built = pipeline::build(build, &gen_dir)?;
    built.generated.write(&gen_dir)?;
    let runner_dir = work_dir.join("generate");
    std::fs::create_dir_all(&runner_dir).map_err(|e| Error::io(&runner_dir, e))?;
    let abs = |p: &Path| p.canonicalize().map_err(|e| Error::io(p, e));
    let model_path = pipeline::relative_path(&abs(&runner_dir)?, &abs(&gen_dir)?)
        .display()
        .to_string();
    let runner_name = format!("{}-generate", built.generated.name);
    let cargo = CARGO
        .replace("{{crate_name}}", &built.generated.name)
        .replace("{{runner_name}}", &runner_name)
        .replace("{{model_path}}", &model_path)
        .replace(
            "{{runtime_path}}",
            &pipeline::default_runtime_path(&runner_dir),
        );
    let mut files = BTreeMap::new();
    files.insert(PathBuf::from("Cargo.toml"), cargo.into_bytes());
    files.insert(PathBuf::from("src/main.rs"), MAIN.as_bytes().to_vec());
    let has_tokenizer = built
        .generated
        .files
        .contains_key(Path::new("tokenizer.bin"));
    let text = if has_tokenizer {
        "//! The model crate's baked tokenizer.\npub fn tokenizer() -> Option<runtime_core::tokenizer::Tokenizer<'static>> {\n    model::tokenizer().ok()\n}\n"
    } else {
        "//! The model crate has no tokenizer.\npub fn tokenizer() -> Option<runtime_core::tokenizer::Tokenizer<'static>> {\n    None\n}\n"
    };
    files.insert(PathBuf::from("src/text.rs"), text.as_bytes().to_vec());
    crate::codegen::GeneratedCrate {
        name: runner_name.clone(),
        files,
    }
    .write(&runner_dir)?;
    let target_dir = work_dir.join("target");
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(runner_dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("RUSTFLAGS", crate::verify::host_rustflags(&build.target))
        .output()
        .map_err(|e| Error::Usage(format!("cannot run cargo: {e}")))?;
    if !output.status.success() {
        return Err(Error::Internal(format!(
            "the generation runner in `{}` does not build:\n{}",
            runner_dir.display(),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(target_dir.join("release").join(runner_name))
}

/// The runner's arguments for `opts`.
fn runner_args(opts: &GenerateOptions) -> Vec<String> {
    let ids: Vec<String> = opts.prompt_ids.iter().map(u32::to_string).collect();
    let s = &opts.sampling;
    let mut args = match &opts.prompt {
        Some(text) => vec!["--prompt".into(), text.clone()],
        None => vec!["--prompt-ids".into(), ids.join(" ")],
    };
    args.extend([
        "--tokens".into(),
        opts.tokens.to_string(),
        "--temperature".into(),
        s.temperature.to_string(),
        "--top-k".into(),
        s.top_k.to_string(),
        "--top-p".into(),
        s.top_p.to_string(),
        "--repetition-penalty".into(),
        s.repetition_penalty.to_string(),
        "--seed".into(),
        s.seed.to_string(),
    ]);
    if let Some(eos) = opts.eos {
        args.extend(["--eos".into(), eos.to_string()]);
    }
    if opts.print_ids {
        args.push("--print-ids".into());
    }
    args
}

/// The whole `generate` command.
pub fn generate(opts: &GenerateOptions) -> Result<Generated> {
    if opts.prompt_ids.is_empty() && opts.prompt.is_none() {
        return Err(Error::Usage(
            "the prompt is empty: give --prompt-ids (or --prompt with a tokenizer)".into(),
        ));
    }
    let binary = build_generator(&opts.build, &opts.work_dir)?;
    let output = Command::new(&binary)
        .args(runner_args(opts))
        .output()
        .map_err(|e| Error::io(&binary, e))?;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    if !output.status.success() {
        return Err(Error::Mismatch(format!(
            "generation failed: {}",
            stderr.trim()
        )));
    }
    Ok(Generated { stdout, stderr })
}
