//! The `slm-aot` command line: build, inspect, verify.
#![deny(clippy::indexing_slicing)]
use clap::{Args, Parser, Subcommand};
use slm_aot::error::{Error, Result};
use slm_aot::frontend::{ImportOptions, Limits, onnx};
use slm_aot::pipeline::{self, BuildOptions};
use slm_aot::quantize::{CalibrationMethod, QuantMode, QuantOptions};
use slm_aot::target::{TargetProfile, WeightsEmbed};
use slm_aot::{bench, generate, report, verify};
use std::path::PathBuf;
use std::process::ExitCode;

/// `println!` that ends quietly on a closed pipe (`slm-aot ops | head`) instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Compile a small language model (ONNX) into a standalone, allocation-free `no_std` Rust
/// crate for an edge target.
#[derive(Parser)]
#[command(name = "slm-aot", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compile a model into a Rust crate.
    Build {
        #[command(flatten)]
        model: ModelArgs,
        /// Output folder of the generated crate.
        #[arg(short, long)]
        out: PathBuf,
        /// Crate name (default: from the model file name).
        #[arg(long)]
        name: Option<String>,
        /// Path to `runtime-core` written into the generated Cargo.toml (default: this
        /// compiler's own, relative to the output folder).
        #[arg(long)]
        runtime_path: Option<String>,
        /// Write nothing; exit non-zero if OUT differs from what would be generated.
        #[arg(long)]
        check: bool,
        /// Embed golden vectors from DIR/inputs and DIR/reference (`.npy`, named as for
        /// `verify`) and emit a `cargo test` in the generated crate that checks them.
        #[arg(long, value_name = "DIR")]
        golden: Option<PathBuf>,
        /// Absolute tolerance of the golden test (plus the same relative tolerance).
        #[arg(long, default_value_t = 1e-4)]
        golden_tolerance: f64,
    },
    /// Describe a model: inputs, outputs, op histogram, parameters, unsupported ops.
    Inspect {
        /// The model file (.onnx).
        model: PathBuf,
        /// Also import it (needs every symbolic dim bound) and print the optimised IR.
        #[arg(long)]
        ir: bool,
        /// Bind a symbolic dimension, e.g. `--dim sequence=128` (repeatable).
        #[arg(long = "dim", value_parser = parse_dim)]
        dims: Vec<(String, usize)>,
        /// Target profile used with --ir.
        #[arg(long, default_value = "x86")]
        target: String,
    },
    /// Build for the target, run (natively, or under QEMU for an aarch64 or Cortex-M profile)
    /// and compare outputs with references.
    Verify {
        #[command(flatten)]
        model: ModelArgs,
        /// Folder of `<input name>.npy` files.
        #[arg(long)]
        inputs: PathBuf,
        /// Folder of `<output name>.npy` references; outputs without one are compared with
        /// the compiler's reference evaluator on the unoptimised graph.
        #[arg(long)]
        reference: Option<PathBuf>,
        /// Write the generated crate's outputs here as `.npy`.
        #[arg(long)]
        save_outputs: Option<PathBuf>,
        /// Absolute tolerance per element.
        #[arg(long, default_value_t = 1e-4)]
        atol: f64,
        /// Relative tolerance per element (added to atol times |reference|).
        #[arg(long, default_value_t = 1e-4)]
        rtol: f64,
        /// Working folder for the generated crate and runner (default: a temporary folder).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Cargo target directory of the runner builds (default: WORK_DIR/target); share one
        /// between runs to reuse the builds of runtime-core and the runner's dependencies.
        #[arg(long)]
        cargo_target_dir: Option<PathBuf>,
    },
    /// Build a stateful decoder and generate tokens with it on the host.
    Generate {
        #[command(flatten)]
        model: ModelArgs,
        /// The prompt text, encoded by the crate's baked tokenizer.
        #[arg(long, conflicts_with = "prompt_ids")]
        prompt: Option<String>,
        /// The prompt as token ids, space- or comma-separated (for models without a
        /// tokenizer), e.g. `--prompt-ids 1`.
        #[arg(long)]
        prompt_ids: Option<String>,
        /// Tokens to generate.
        #[arg(long, default_value_t = 64)]
        tokens: usize,
        /// Always take the most likely token (temperature 0).
        #[arg(long)]
        greedy: bool,
        /// Sampling temperature (ignored with --greedy).
        #[arg(long, default_value_t = 1.0)]
        temperature: f32,
        /// Keep only the K most likely tokens (0: all).
        #[arg(long, default_value_t = 0)]
        top_k: usize,
        /// Nucleus sampling: keep the most likely tokens up to this probability mass.
        #[arg(long, default_value_t = 1.0)]
        top_p: f32,
        /// Penalise tokens already seen (1.0: off).
        #[arg(long, default_value_t = 1.0)]
        repetition_penalty: f32,
        /// RNG seed: the same seed and flags give the same tokens.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Stop after this token id.
        #[arg(long)]
        eos: Option<u32>,
        /// Print the generated ids space-separated on one line.
        #[arg(long)]
        print_ids: bool,
        /// Working folder for the generated crate and runner (default: a temporary folder).
        #[arg(long)]
        work_dir: Option<PathBuf>,
    },
    /// Build, then time the generated crate on this machine (and, with --vs, ONNX Runtime
    /// and tract on the same model and inputs, interleaved); prints a ratio table.
    Bench {
        #[command(flatten)]
        model: ModelArgs,
        /// Folder of `<input name>.npy` inputs (default: synthesised: ints 0, masks 1,
        /// floats pseudo-random).
        #[arg(long)]
        inputs: Option<PathBuf>,
        /// Engines to compare with, comma-separated: ort, ort-model, tract.
        #[arg(long, value_delimiter = ',')]
        vs: Vec<String>,
        /// Another ONNX file of the same network for ONNX Runtime (engine `ort-model`, added
        /// to --vs when given), e.g. its `quantize_dynamic` int8 model vs an int8 build.
        #[arg(long)]
        ort_model: Option<PathBuf>,
        /// Timed runs per engine.
        #[arg(long, default_value_t = 100)]
        runs: usize,
        /// Untimed runs per engine before timing.
        #[arg(long, default_value_t = 10)]
        warmup: usize,
        /// Rounds the timed runs are split into; engines alternate between rounds.
        #[arg(long, default_value_t = 10)]
        rounds: usize,
        /// Python with onnxruntime and numpy (default: target/benchenv/bin/python, then python3).
        #[arg(long)]
        python: Option<PathBuf>,
        /// One JSON object per engine per line instead of the table.
        #[arg(long)]
        json: bool,
        /// Working folder (default: a temporary folder).
        #[arg(long)]
        work_dir: Option<PathBuf>,
    },
    /// List the supported ONNX ops and target profiles.
    Ops,
    /// Footprint of a built binary (ELF): every allocated section, flash and RAM totals.
    Size {
        /// The ELF file (e.g. target/thumbv8m.main-none-eabihf/release/firmware).
        elf: PathBuf,
    },
}

#[derive(Args)]
struct ModelArgs {
    /// The model file (.onnx).
    model: PathBuf,
    /// Target profile: a shipped name (x86, x86-avx512, rpi4, jetson, cortex-m55) or a
    /// path to a profile .toml.
    #[arg(long, default_value = "x86")]
    target: String,
    /// How the crate carries its weights: `bytes` (`include_bytes!`), `object` (a static
    /// library its build.rs writes; rustc never reads the blob; ELF targets), `auto`
    /// (object from 16 MiB up). Default: the profile's `memory.weights_embed`, else auto.
    #[arg(long, value_name = "HOW", value_parser = parse_weights_embed)]
    weights_embed: Option<WeightsEmbed>,
    /// Bind a symbolic dimension, e.g. `--dim batch=1 --dim sequence=128`; an unnamed
    /// dynamic axis is `INPUT.AXIS=N`.
    #[arg(long = "dim", value_parser = parse_dim)]
    dims: Vec<(String, usize)>,
    /// Refuse models whose weights exceed this many bytes.
    #[arg(long, default_value_t = Limits::default().max_weight_bytes)]
    max_weight_bytes: u64,
    /// Refuse plans whose arena exceeds this many bytes.
    #[arg(long, default_value_t = Limits::default().max_arena_bytes)]
    max_arena_bytes: u64,
    /// Refuse models with more nodes than this.
    #[arg(long, default_value_t = Limits::default().max_nodes)]
    max_nodes: usize,
    /// Verify the model file's detached Ed25519 signature with this public key (32 raw
    /// bytes or 64 hex digits) before reading it.
    #[arg(long, value_name = "KEY")]
    verify_signature: Option<PathBuf>,
    /// The signature file (default: `<model>.sig`; 64 raw bytes or 128 hex digits).
    #[arg(long, requires = "verify_signature")]
    signature: Option<PathBuf>,
    /// Build a stateful decoder whose KV cache holds N tokens: `past_key_values.*` inputs
    /// and `present.*` outputs become state updated in place, and the crate gets
    /// `Model::step`/`prefill`/`reset`.
    #[arg(long)]
    max_context: Option<usize>,
    /// Bake this tokenizer into the crate (`tokenizer.json` or a llama2.c `tokenizer.bin`;
    /// a checkpoint folder's own `tokenizer.json` is used by default).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Quantize the weights: `int8` (per output channel; activations per row at run time),
    /// `int8-static` (activation scales from --calibration), `int4` (weight-only, per
    /// group of --group-size), `f16` (IEEE half weights, f32 arithmetic) or `none` (float). Default: the target profile's `[quantize]`
    /// mode, else none.
    #[arg(long, value_name = "MODE")]
    quantize: Option<String>,
    /// int4: weights per scale along k (32, 64 or 128). Default: the profile's, else 32.
    #[arg(long)]
    group_size: Option<usize>,
    /// int4: scale storage, `f16` or `f32`. Default: the profile's, else f16.
    #[arg(long)]
    scales: Option<String>,
    /// Keep layers whose node name matches PATTERN in float (`*` wildcards; without one, a
    /// substring). Repeatable.
    #[arg(long, value_name = "PATTERN")]
    keep_float: Vec<String>,
    /// int4: quantize layers whose node name matches PATTERN to int8 instead (a tied
    /// embedding table follows its classifier). Repeatable.
    #[arg(long, value_name = "PATTERN")]
    int8: Vec<String>,
    /// int8-static: folder of sample sets, `DIR/<set>/<input name>.npy`.
    #[arg(long, value_name = "DIR")]
    calibration: Option<PathBuf>,
    /// int8-static: `minmax` or `percentile`.
    #[arg(long, default_value = "minmax")]
    calibration_method: String,
    /// int8-static with `--calibration-method percentile`: the percentile kept (of each
    /// tail).
    #[arg(long, default_value_t = 99.99)]
    percentile: f64,
    /// Compare the quantized model with the float one on DIR's sample sets
    /// (`DIR/<set>/<input name>.npy`) at build time: per-output cosine and max abs error.
    #[arg(long, value_name = "DIR")]
    validate: Option<PathBuf>,
    /// With --validate: fail the build when an output's cosine is below X.
    #[arg(long, value_name = "X", requires = "validate")]
    min_cosine: Option<f64>,
    /// Stateful decoders: decode each prompt of FILE greedily with the quantized and the
    /// float model and report where the tokens first differ. One prompt per line: text
    /// (encoded with --tokenizer, BOS first) or `ids: 1 2 3`; `#` lines are comments.
    #[arg(long, value_name = "FILE")]
    validate_prompts: Option<PathBuf>,
    /// With --validate-prompts: tokens generated per prompt.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 32,
        requires = "validate_prompts"
    )]
    validate_tokens: usize,
    /// With --validate-prompts: fail the build when on some prompt fewer than the first N
    /// greedy tokens of the quantized model equal the float model's.
    #[arg(long, value_name = "N", requires = "validate_prompts")]
    min_agreement: Option<usize>,
    /// int4, stateful decoders: decode each prompt of FILE (as --validate-prompts reads it)
    /// greedily with the float model and weigh each int4 group's rounding error by its input
    /// channels' mean square activation.
    #[arg(long, value_name = "FILE")]
    calibration_prompts: Option<PathBuf>,
    /// int4: how each Linear's levels are chosen: `search` (each group on its own, the
    /// scale/zero-point search) or `gptq` (GPTQ on the --calibration-prompts activations).
    #[arg(long, value_name = "METHOD", requires = "calibration_prompts")]
    int4_method: Option<String>,
}

fn parse_dim(s: &str) -> std::result::Result<(String, usize), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE"))?;
    let v = v
        .trim()
        .parse::<usize>()
        .map_err(|_| format!("`{v}` is not a non-negative integer"))?;
    Ok((k.trim().to_string(), v))
}

fn parse_weights_embed(s: &str) -> std::result::Result<WeightsEmbed, String> {
    WeightsEmbed::parse(s).ok_or_else(|| format!("`{s}` is not auto, bytes or object"))
}

/// Token ids separated by spaces or commas.
fn parse_ids(list: &str) -> Result<Vec<u32>> {
    list.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u32>()
                .map_err(|_| Error::Usage(format!("`{s}` is not a token id")))
        })
        .collect()
}

fn import_options(dims: &[(String, usize)]) -> ImportOptions {
    ImportOptions {
        dims: dims.iter().cloned().collect(),
        limits: Limits::default(),
        max_context: None,
        quant_tiling: None,
    }
}

impl ModelArgs {
    fn build_options(&self) -> Result<BuildOptions> {
        if let Some(key) = &self.verify_signature {
            slm_aot::signature::verify_model(&self.model, key, self.signature.as_deref())?;
        }
        let mut import = import_options(&self.dims);
        import.limits = Limits {
            max_weight_bytes: self.max_weight_bytes,
            max_arena_bytes: self.max_arena_bytes,
            max_nodes: self.max_nodes,
        };
        import.max_context = self.max_context;
        let mut target = TargetProfile::load(&self.target)?;
        if let Some(embed) = self.weights_embed {
            target.memory.weights_embed = embed;
        }
        let quantize = self.quant_options(&target)?;
        Ok(BuildOptions {
            model: self.model.clone(),
            target,
            import,
            crate_name: None,
            runtime_path: None,
            verify_each_pass: false,
            golden: None,
            tokenizer: self.tokenizer.clone(),
            quantize,
        })
    }

    /// The quantization asked for: `--quantize`, else the profile's `[quantize]` default
    /// (`--quantize none`: float whatever the profile says).
    fn quant_options(&self, target: &TargetProfile) -> Result<Option<QuantOptions>> {
        let quant_only = !self.keep_float.is_empty()
            || self.calibration.is_some()
            || self.validate.is_some()
            || self.validate_prompts.is_some()
            || self.calibration_prompts.is_some();
        let default = &target.quantize;
        let mode = match self.quantize.as_deref().or(default.mode.as_deref()) {
            Some("none") | None => None,
            Some(m) => Some(m),
        };
        let from_profile = self.quantize.is_none() && mode.is_some();
        let Some(mode) = mode else {
            if quant_only {
                return Err(Error::Usage(
                    "--keep-float, --calibration, --validate, --validate-prompts and --calibration-prompts need --quantize"
                        .into(),
                ));
            }
            return Ok(None);
        };
        let mode = QuantMode::parse(mode).ok_or_else(|| {
            Error::Usage(format!(
                "--quantize `{mode}`: use int8, int8-static, int4, f16 or none"
            ))
        })?;
        let mut q = QuantOptions::new(mode);
        q.profile_default = from_profile.then(|| target.name.clone());
        let group = self.group_size.or(default.group_size).unwrap_or(32);
        if ![32, 64, 128].contains(&group) {
            return Err(Error::Usage(format!(
                "--group-size {group}: use 32, 64 or 128"
            )));
        }
        q.group = group;
        let scales = self.scales.as_deref().or(default.scales.as_deref());
        q.f16_scales = match scales.unwrap_or("f16") {
            "f16" => true,
            "f32" => false,
            other => return Err(Error::Usage(format!("--scales `{other}`: use f16 or f32"))),
        };
        q.keep_float = self.keep_float.clone();
        if mode != QuantMode::Int4 && !self.int8.is_empty() {
            return Err(Error::Usage("--int8 PATTERN is for --quantize int4".into()));
        }
        q.int8 = self.int8.clone();
        q.method = match self.calibration_method.as_str() {
            "minmax" => CalibrationMethod::MinMax,
            "percentile" if self.percentile > 50.0 && self.percentile <= 100.0 => {
                CalibrationMethod::Percentile(self.percentile)
            }
            "percentile" => {
                return Err(Error::Usage(format!(
                    "--percentile {}: use a value in (50, 100]",
                    self.percentile
                )));
            }
            other => {
                return Err(Error::Usage(format!(
                    "--calibration-method `{other}`: use minmax or percentile"
                )));
            }
        };
        if mode == QuantMode::Int8Static && self.calibration.is_none() {
            return Err(Error::Usage(
                "--quantize int8-static needs --calibration DIR".into(),
            ));
        }
        if mode != QuantMode::Int8Static && self.calibration.is_some() {
            return Err(Error::Usage(
                "--calibration is only used by --quantize int8-static".into(),
            ));
        }
        q.calibration = self.calibration.clone();
        q.validate = self.validate.clone();
        q.min_cosine = self.min_cosine;
        q.validate_prompts = self.validate_prompts.clone();
        q.validate_tokens = self.validate_tokens;
        q.min_agreement = self.min_agreement;
        if mode != QuantMode::Int4 && self.calibration_prompts.is_some() {
            return Err(Error::Usage(
                "--calibration-prompts is only used by --quantize int4".into(),
            ));
        }
        q.calibration_prompts = self.calibration_prompts.clone();
        q.int4_method = match self.int4_method.as_deref() {
            None | Some("search") => slm_aot::quantize::Int4Method::Search,
            Some("gptq") => slm_aot::quantize::Int4Method::Gptq,
            Some(m) => {
                return Err(Error::Usage(format!(
                    "--int4-method `{m}`: use search or gptq"
                )));
            }
        };
        Ok(Some(q))
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Build {
            model,
            out,
            name,
            runtime_path,
            check,
            golden,
            golden_tolerance,
        } => {
            let mut options = model.build_options()?;
            options.crate_name = name;
            options.runtime_path = runtime_path;
            options.golden = golden.map(|dir| (dir, golden_tolerance));
            let build = pipeline::build(&options, &out)?;
            if check {
                let diff = build.generated.differences(&out);
                if !diff.is_empty() {
                    let list: Vec<String> = diff.iter().map(|p| p.display().to_string()).collect();
                    return Err(Error::Mismatch(format!(
                        "`{}` is not what this compiler generates now; differing files: {}",
                        out.display(),
                        list.join(", ")
                    )));
                }
                say!("{} is up to date", out.display());
                return Ok(());
            }
            build.generated.write(&out)?;
            say!(
                "{}",
                report::build_report(
                    &build.imported,
                    &build.graph,
                    &build.plan,
                    options.target.memory.weights_embed,
                )
                .trim_end()
            );
            if let Some(q) = &build.quantization {
                say!(
                    "{}",
                    report::quantization_report(q, &build.graph, &build.plan).trim_end()
                );
            }
            say!(
                "wrote crate `{}` to {}",
                build.generated.name,
                out.display()
            );
            Ok(())
        }
        Command::Inspect {
            model,
            ir,
            dims,
            target,
        } => {
            let proto = onnx::read_model(&model)?;
            say!("{}", report::inspect(&proto).trim_end());
            if ir {
                let graph = pipeline::import(&model, &import_options(&dims))?;
                let target = TargetProfile::load(&target)?;
                let graph = pipeline::optimise(&graph, &target, false)?;
                let text = slm_aot::ir::printer::print(&graph)
                    .map_err(|e| Error::Internal(e.to_string()))?;
                say!("{}", text.trim_end());
            }
            Ok(())
        }
        Command::Verify {
            model,
            inputs,
            reference,
            save_outputs,
            atol,
            rtol,
            work_dir,
            cargo_target_dir,
        } => {
            let work_dir = work_dir.unwrap_or_else(|| {
                std::env::temp_dir().join(format!("slm-aot-verify-{}", std::process::id()))
            });
            let opts = verify::VerifyOptions {
                build: model.build_options()?,
                inputs,
                reference: reference.clone(),
                work_dir,
                cargo_target_dir,
                save_outputs,
                atol,
                rtol,
            };
            let checks = verify::verify(&opts)?;
            say!(
                "target `{}`, run {}",
                opts.build.target.name,
                verify::Runner::for_target(&opts.build.target)?.describe()
            );
            say!(
                "compared {} output(s) (atol {atol}, rtol {rtol}):",
                checks.len()
            );
            let mut failed = 0;
            for c in &checks {
                let against = match c.against {
                    verify::Reference::File => "vs reference file",
                    verify::Reference::Evaluator => "vs reference evaluator",
                };
                say!(
                    "  {:<32} max abs error {:.3e}  cosine {:.9}  {:<22} {}",
                    c.name,
                    c.max_abs_error,
                    c.cosine,
                    against,
                    if c.ok { "ok" } else { "FAIL" }
                );
                failed += usize::from(!c.ok);
            }
            if failed > 0 {
                return Err(Error::Mismatch(format!(
                    "{failed} output(s) beyond tolerance"
                )));
            }
            Ok(())
        }
        Command::Size { elf } => {
            say!(
                "{}",
                slm_aot::footprint::report(&slm_aot::footprint::read(&elf)?).trim_end()
            );
            Ok(())
        }
        Command::Generate {
            model,
            prompt,
            prompt_ids,
            tokens,
            greedy,
            temperature,
            top_k,
            top_p,
            repetition_penalty,
            seed,
            eos,
            print_ids,
            work_dir,
        } => {
            let prompt_ids = parse_ids(prompt_ids.as_deref().unwrap_or(""))?;
            let work_dir = work_dir.unwrap_or_else(|| {
                std::env::temp_dir().join(format!("slm-aot-generate-{}", std::process::id()))
            });
            let opts = generate::GenerateOptions {
                build: model.build_options()?,
                prompt,
                prompt_ids,
                tokens,
                sampling: generate::Sampling {
                    temperature: if greedy { 0.0 } else { temperature },
                    top_k,
                    top_p,
                    repetition_penalty,
                    seed,
                },
                eos,
                print_ids,
                work_dir,
            };
            let out = generate::generate(&opts)?;
            say!("{}", out.stdout.trim_end());
            eprintln!("{}", out.stderr.trim_end());
            Ok(())
        }
        Command::Bench {
            model,
            inputs,
            vs,
            ort_model,
            runs,
            warmup,
            rounds,
            python,
            json,
            work_dir,
        } => {
            let work_dir = work_dir.unwrap_or_else(|| {
                std::env::temp_dir().join(format!("slm-aot-bench-{}", std::process::id()))
            });
            let vs = vs
                .iter()
                .filter(|s| !s.trim().is_empty())
                .map(|s| bench::Engine::parse(s))
                .collect::<Result<Vec<_>>>()?;
            let mut vs = vs;
            if ort_model.is_some() && !vs.contains(&bench::Engine::OrtModel) {
                vs.push(bench::Engine::OrtModel);
            }
            let opts = bench::BenchOptions {
                build: model.build_options()?,
                inputs,
                work_dir,
                warmup,
                runs,
                rounds,
                vs,
                python,
                ort_model,
            };
            let results = bench::bench(&opts)?;
            if json {
                for r in &results {
                    say!("{}", r.json());
                }
            } else {
                say!(
                    "{} on target `{}`, one thread:",
                    opts.build.model.display(),
                    opts.build.target.name
                );
                say!("{}", bench::table(&results).trim_end());
            }
            Ok(())
        }
        Command::Ops => {
            say!(
                "ONNX ops (default domain, then ONNX Runtime's com.microsoft contrib ops): {}",
                onnx::supported_ops().join(" ")
            );
            say!("targets: {}", TargetProfile::shipped_names().join(" "));
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
