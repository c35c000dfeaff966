//! The whole flow in one straight line: load → import → verify → optimise for the target →
//! plan → emit. Each stage's output is the next stage's only input.
use crate::codegen::{self, CrateMeta, GeneratedCrate};
use crate::error::{Error, Result};
use crate::frontend::{ImportOptions, onnx, safetensors};
use crate::ir::{Graph, verify::verify};
use crate::manifest::{self, Manifest};
use crate::passes;
use crate::plan::{self, Plan};
use crate::target::TargetProfile;
use std::path::{Path, PathBuf};

/// Everything `build` needs.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub model: PathBuf,
    pub target: TargetProfile,
    pub import: ImportOptions,
    /// Crate name; defaults to the model file's stem.
    pub crate_name: Option<String>,
    /// `runtime-core` path written into the generated `Cargo.toml`; defaults to this
    /// compiler's own `runtime-core`, relative to the output folder.
    pub runtime_path: Option<String>,
    /// Verify the graph after every pass (tests turn this on).
    pub verify_each_pass: bool,
    /// Golden vectors (a folder with `inputs/` and `reference/`) and their tolerance, to
    /// embed with a `cargo test` in the generated crate.
    pub golden: Option<(PathBuf, f64)>,
    /// A tokenizer to bake into the crate (`tokenizer.json` or a llama2.c `tokenizer.bin`);
    /// a checkpoint folder's own `tokenizer.json` is used when this is `None`.
    pub tokenizer: Option<PathBuf>,
    /// Post-training quantization (`--quantize`); `None` keeps the float weights.
    pub quantize: Option<crate::quantize::QuantOptions>,
}

impl BuildOptions {
    /// The flags that change the generated crate, canonical and free of machine paths.
    pub fn flags(&self) -> String {
        let mut parts = vec![format!("--target {}", self.target.name)];
        for (k, v) in &self.import.dims {
            parts.push(format!("--dim {k}={v}"));
        }
        if let Some(n) = self.import.max_context {
            parts.push(format!("--max-context {n}"));
        }
        if let Some(name) = &self.crate_name {
            parts.push(format!("--name {name}"));
        }
        if let Some(file) = self.tokenizer.as_ref().and_then(|p| p.file_name()) {
            parts.push(format!("--tokenizer {}", file.to_string_lossy()));
        }
        if let Some(q) = &self.quantize {
            parts.push(q.flags());
        }
        let embed = self.target.memory.weights_embed;
        if embed != crate::target::WeightsEmbed::Auto {
            parts.push(format!("--weights-embed {}", embed.name()));
        }
        if let Some((_, tolerance)) = &self.golden {
            parts.push(format!("--golden DIR --golden-tolerance {tolerance}"));
        }
        parts.join(" ")
    }

    /// The manifest of a build: digests of the model file and its external data files.
    pub fn manifest(&self, proto: &onnx_protobuf::ModelProto) -> Result<Manifest> {
        let mut model_files = Vec::new();
        let name = self
            .model
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or("model")
            .to_string();
        model_files.push((name, manifest::file_digest(&self.model)?));
        let dir = self.model.parent().unwrap_or(Path::new("."));
        for location in onnx::external_locations(proto) {
            let digest = manifest::file_digest(&dir.join(&location))?;
            model_files.push((location, digest));
        }
        Ok(self.manifest_of(model_files))
    }

    /// The manifest of a checkpoint folder's build: digests of every file the safetensors
    /// frontend reads (config, weights, sentence-transformers configs), by relative path.
    pub fn checkpoint_manifest(&self) -> Result<Manifest> {
        let dir = &self.model;
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".safetensors") || n.ends_with(".json"))
            .collect();
        if dir.join("1_Pooling/config.json").is_file() {
            files.push("1_Pooling/config.json".into());
        }
        files.sort();
        let mut model_files = Vec::new();
        for f in files {
            let digest = manifest::file_digest(&dir.join(&f))?;
            model_files.push((f, digest));
        }
        Ok(self.manifest_of(model_files))
    }

    fn manifest_of(&self, model_files: Vec<(String, String)>) -> Manifest {
        Manifest {
            model_files,
            compiler: format!("slm-aot {}", env!("CARGO_PKG_VERSION")),
            flags: self.flags(),
            target: self.target.name.clone(),
            target_sha256: self.target.source_sha256.clone(),
        }
    }
}

/// What a build made, for the report.
pub struct Build {
    /// What quantization did (for the report); `None` for a float build.
    pub quantization: Option<crate::quantize::QuantSummary>,
    pub imported: Imported,
    pub graph: Graph,
    pub plan: Plan,
    pub generated: GeneratedCrate,
}

/// What the report says of the imported graph. A build keeps this rather than the graph,
/// whose weights would be a second copy next to the optimised ones.
pub struct Imported {
    pub node_count: usize,
    /// Quantized nodes imported as float/i32 arithmetic, with why.
    pub float_notes: Vec<(String, String)>,
}

impl Imported {
    pub fn of(graph: &Graph) -> Self {
        Imported {
            node_count: graph.node_count(),
            float_notes: graph.float_notes.clone(),
        }
    }
}

/// Load and import a model file into a verified graph.
pub fn import(model: &Path, options: &ImportOptions) -> Result<Graph> {
    if safetensors::is_checkpoint(model) {
        let mut graph = safetensors::import(model, options)?;
        if let Some(max_context) = options.max_context {
            crate::stateful::make_stateful(&mut graph, max_context)?;
        }
        verify(&graph)?;
        return Ok(graph);
    }
    import_proto(&onnx::read_model(model)?, model, options)
}

/// Import an already decoded model file into a verified graph.
fn import_proto(
    proto: &onnx_protobuf::ModelProto,
    model: &Path,
    options: &ImportOptions,
) -> Result<Graph> {
    let dir = model
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    let mut graph = onnx::import(proto, &dir, options)?;
    if let Some(max_context) = options.max_context {
        crate::stateful::make_stateful(&mut graph, max_context)?;
    }
    verify(&graph)?;
    Ok(graph)
}

/// The whole front half on raw bytes, in memory: decode, import, verify, optimise, plan and
/// emit for the x86 profile. No file is read or written (external data is refused), which
/// makes it the fuzzing entry point.
pub fn compile_bytes(bytes: &[u8], options: &ImportOptions) -> Result<GeneratedCrate> {
    let proto = onnx::parse_model(bytes)?;
    let nowhere = Path::new("/nonexistent/slm-aot-in-memory");
    let graph = onnx::import(&proto, nowhere, options)?;
    verify(&graph)?;
    emit_in_memory(&graph, options, "model.onnx")
}

/// [`compile_bytes`] for a checkpoint folder held in memory: its files by relative path
/// (`config.json`, `model.safetensors`, …). `--max-context` builds go through
/// [`crate::stateful`] as from disk.
pub fn compile_checkpoint_bytes(
    files: &std::collections::BTreeMap<String, Vec<u8>>,
    options: &ImportOptions,
) -> Result<GeneratedCrate> {
    let mut graph = safetensors::import_from(safetensors::Source::Memory(files), options)?;
    if let Some(max_context) = options.max_context {
        crate::stateful::make_stateful(&mut graph, max_context)?;
    }
    verify(&graph)?;
    emit_in_memory(&graph, options, "checkpoint")
}

/// Optimise, plan (checking the arena limit) and emit a verified graph for the x86 profile.
fn emit_in_memory(
    graph: &Graph,
    options: &ImportOptions,
    model_file: &str,
) -> Result<GeneratedCrate> {
    let target = TargetProfile::load("x86")?;
    let graph = optimise(graph, &target, true)?;
    let plan = plan::plan(&graph)?;
    if plan.arena_bytes as u64 > options.limits.max_arena_bytes {
        return Err(Error::Limit(format!("arena of {} bytes", plan.arena_bytes)));
    }
    let meta = CrateMeta {
        crate_name: "fuzzed".into(),
        model_file: model_file.into(),
        target,
        runtime_path: "runtime-core".into(),
        manifest: Manifest {
            model_files: vec![],
            compiler: String::new(),
            flags: String::new(),
            target: String::new(),
            target_sha256: String::new(),
        },
    };
    codegen::emit(&graph, &plan, &meta)
}

/// Optimise a copy of a verified graph for a target.
pub fn optimise(graph: &Graph, target: &TargetProfile, verify_each_pass: bool) -> Result<Graph> {
    optimise_quantized(graph.clone(), target, None, verify_each_pass)
}

/// Run the passes of `list` before `pack_linear_weights` on `g`: the fused float graph the
/// quantization passes (and calibration) see. Returns the index of the first pass not run.
fn fuse_for_quantization(
    g: &mut Graph,
    list: &[Box<dyn passes::Pass>],
    verify_each_pass: bool,
) -> Result<usize> {
    let at = list
        .iter()
        .position(|p| p.name() == "pack_linear_weights")
        .unwrap_or(list.len());
    passes::run(g, &list[..at], verify_each_pass)?;
    Ok(at)
}

/// The fused float graph a quantized build of `g` for `target` quantizes (and calibrates on):
/// its `Linear`s carry their f32 weights unpacked.
pub fn quantization_input(mut g: Graph, target: &TargetProfile) -> Result<Graph> {
    fuse_for_quantization(&mut g, &passes::pipeline(target), false)?;
    Ok(g)
}

/// Optimise a verified graph for a target in place, quantizing it as `quantize` asks: the
/// quantization pass runs where the float pipeline would pack the `Linear` weights (after
/// fusion); static int8 first calibrates on the fused float graph.
pub fn optimise_quantized(
    mut g: Graph,
    target: &TargetProfile,
    quantize: Option<&crate::quantize::QuantOptions>,
    verify_each_pass: bool,
) -> Result<Graph> {
    use crate::quantize::QuantMode;
    let list = passes::pipeline(target);
    let Some(q) = quantize else {
        passes::run(&mut g, &list, verify_each_pass)?;
        g.drop_unread_constants();
        verify(&g)?;
        return Ok(g);
    };
    let at = fuse_for_quantization(&mut g, &list, verify_each_pass)?;
    let tiling = target.quant_tiling();
    let pass: Box<dyn passes::Pass> = match q.mode {
        QuantMode::F16 => Box::new(passes::quantize_f16::QuantizeF16::for_target(
            target,
            q.clone(),
        )),
        QuantMode::Int4 => Box::new(passes::quantize_int4::QuantizeInt4 {
            tiling,
            options: q.clone(),
            calibration: if q.calibration_ids.is_empty() {
                Default::default()
            } else {
                crate::calibrate::layer_inputs(
                    &g,
                    q,
                    &q.calibration_ids,
                    crate::calibrate::CALIBRATION_TOKENS,
                )?
            },
        }),
        QuantMode::Int8 | QuantMode::Int8Static => {
            let static_act = match (q.mode, &q.calibration) {
                (QuantMode::Int8Static, Some(dir)) => crate::calibrate::calibrate(&g, q, dir)?,
                (QuantMode::Int8Static, None) => {
                    return Err(Error::Usage(
                        "--quantize int8-static needs --calibration DIR".into(),
                    ));
                }
                _ => Default::default(),
            };
            Box::new(passes::quantize_int8::QuantizeInt8 {
                tiling,
                options: q.clone(),
                static_act,
            })
        }
    };
    passes::run(&mut g, std::slice::from_ref(&pass), verify_each_pass)?;
    if q.mode == QuantMode::Int8 {
        let conv = passes::quantize_conv::QuantizeConv {
            tiling,
            options: q.clone(),
        };
        let attention = passes::quantize_attention::QuantizeAttention { options: q.clone() };
        passes::run(
            &mut g,
            &[Box::new(conv) as Box<dyn passes::Pass>, Box::new(attention)],
            verify_each_pass,
        )?;
    }
    passes::run(&mut g, &list[at..], verify_each_pass)?;
    g.drop_unread_constants();
    verify(&g)?;
    Ok(g)
}

/// The default `runtime-core` path for a crate written to `out_dir`.
pub fn default_runtime_path(out_dir: &Path) -> String {
    let runtime = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("runtime-core");
    let runtime = runtime.canonicalize().unwrap_or(runtime);
    let out = std::fs::create_dir_all(out_dir)
        .ok()
        .and_then(|_| out_dir.canonicalize().ok());
    match out {
        Some(out) => relative_path(&out, &runtime).display().to_string(),
        None => runtime.display().to_string(),
    }
}

/// `to` relative to `from` (both absolute).
pub fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let (a, b): (Vec<_>, Vec<_>) = (from.components().collect(), to.components().collect());
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..a.len() {
        out.push("..");
    }
    for c in &b[common..] {
        out.push(c.as_os_str());
    }
    out
}

/// A model compiled up to (not including) emission.
pub struct Compiled {
    pub manifest: Manifest,
    pub source: Graph,
    pub graph: Graph,
    pub plan: Plan,
}

/// Read, import, optimise and plan, checking the limits and the target's budget; keeps the
/// imported graph (for a reference evaluation) next to the optimised one.
pub fn compile(options: &BuildOptions) -> Result<Compiled> {
    let (source, manifest) = load(options)?;
    let (graph, plan) = lower(source.clone(), options)?;
    Ok(Compiled {
        manifest,
        source,
        graph,
        plan,
    })
}

/// Read and import the model named by `options`, with the manifest of the files read.
pub fn load(options: &BuildOptions) -> Result<(Graph, Manifest)> {
    let mut import_options = options.import.clone();
    if import_options.quant_tiling.is_none() {
        import_options.quant_tiling = Some(options.target.quant_tiling());
    }
    if safetensors::is_checkpoint(&options.model) {
        Ok((
            import(&options.model, &import_options)?,
            options.checkpoint_manifest()?,
        ))
    } else {
        let proto = onnx::read_model(&options.model)?;
        let source = import_proto(&proto, &options.model, &import_options)?;
        Ok((source, options.manifest(&proto)?))
    }
}

/// Optimise (in place) and plan an imported graph, checking the limits and the target's
/// budget.
fn lower(source: Graph, options: &BuildOptions) -> Result<(Graph, Plan)> {
    let mut quantize = options.quantize.clone();
    if let Some(q) = &mut quantize
        && let Some(file) = &q.calibration_prompts
    {
        q.calibration_ids =
            crate::quantize::load_prompts(file, tokenizer_path(options).as_deref())?;
    }
    let graph = optimise_quantized(
        source,
        &options.target,
        quantize.as_ref(),
        options.verify_each_pass,
    )?;
    let plan = plan::plan(&graph)?;
    let max_arena = options.import.limits.max_arena_bytes;
    if plan.arena_bytes as u64 > max_arena {
        return Err(Error::Limit(format!(
            "the plan needs a {} byte arena, above the limit of {max_arena} (raise it with --max-arena-bytes)",
            plan.arena_bytes
        )));
    }
    check_budget(&graph, &plan, &options.target)?;
    Ok((graph, plan))
}

/// The straight line: import, optimise, plan, emit (in memory). The imported graph is
/// optimised in place (a quantized build clones it for its summary, dropped before emission),
/// so a float build holds at most about two copies of the weights at once.
pub fn build(options: &BuildOptions, out_dir: &Path) -> Result<Build> {
    let (source, manifest) = load(options)?;
    let imported = Imported::of(&source);
    let float = options.quantize.is_some().then(|| source.clone());
    let (graph, plan) = lower(source, options)?;
    let quantization = match (&options.quantize, float) {
        (Some(q), Some(float)) => Some(quant_summary(options, q, float, &graph)?),
        _ => None,
    };
    let stem = options
        .model
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("model");
    let meta = CrateMeta {
        crate_name: options
            .crate_name
            .clone()
            .unwrap_or_else(|| codegen::naming::crate_name(stem)),
        model_file: options
            .model
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or("model.onnx")
            .to_string(),
        target: options.target.clone(),
        runtime_path: options
            .runtime_path
            .clone()
            .unwrap_or_else(|| default_runtime_path(out_dir)),
        manifest,
    };
    let mut generated = codegen::emit(&graph, &plan, &meta)?;
    if let Some((dir, tolerance)) = &options.golden {
        let inputs = crate::verify::load_inputs(&graph, &dir.join("inputs"))?;
        let references = crate::verify::load_references(&graph, &dir.join("reference"))?;
        codegen::golden::add(&mut generated, &graph, &inputs, &references, *tolerance)?;
    }
    if let Some(path) = tokenizer_path(options) {
        let spec = crate::tokenizer::load(&path)?;
        crate::tokenizer::add_to_crate(&mut generated, crate::tokenizer::bake(&spec)?)?;
    }
    Ok(Build {
        quantization,
        imported,
        graph,
        plan,
        generated,
    })
}

/// The tokenizer a build bakes in and reads prompts with: `--tokenizer`, or the one in a
/// checkpoint folder.
fn tokenizer_path(options: &BuildOptions) -> Option<PathBuf> {
    options.tokenizer.clone().or_else(|| {
        safetensors::is_checkpoint(&options.model)
            .then(|| crate::tokenizer::find_in_checkpoint(&options.model))
            .flatten()
    })
}

/// The float build's weight bytes, the layers left in float and, with `--validate`, the
/// accuracy against the float graph (which fails the build below `--min-cosine`). The
/// imported graph is optimised in place last, once validation is done with it, so its float
/// weights are packed one at a time rather than copied beside the originals.
fn quant_summary(
    options: &BuildOptions,
    q: &crate::quantize::QuantOptions,
    source: Graph,
    graph: &Graph,
) -> Result<crate::quantize::QuantSummary> {
    let accuracy = match &q.validate {
        Some(dir) => crate::quantize::validate(&source, graph, dir, q.min_cosine)?,
        None => Vec::new(),
    };
    let greedy = match &q.validate_prompts {
        Some(file) => {
            let prompts = crate::quantize::load_prompts(file, tokenizer_path(options).as_deref())?;
            let greedy =
                crate::quantize::validate_greedy(&source, graph, &prompts, q.validate_tokens)?;
            if let Some(n) = q.min_agreement {
                crate::quantize::check_agreement(&greedy, n)?;
            }
            greedy
        }
        None => Vec::new(),
    };
    let float = optimise_quantized(source, &options.target, None, false)?;
    let float_weight_bytes = plan::plan(&float)?.weight_bytes;
    drop(float);
    Ok(crate::quantize::QuantSummary {
        options: q.clone(),
        float_weight_bytes,
        float_layers: crate::quantize::float_layers(graph, q),
        accuracy,
        greedy,
    })
}

/// Refuse a plan that cannot fit the target, saying by how much and whether quantized
/// weights would fit (and the `--quantize` flag that builds them).
///
/// RAM holds the arena, the model state (a decoder's KV cache) and, for `weights_in = "ram"`
/// profiles, the weights; the stack comes on top and is measured on the board (README).
pub fn check_budget(graph: &Graph, plan: &Plan, target: &TargetProfile) -> Result<()> {
    let m = &target.memory;
    let weights_in_ram = m.weights_in == "ram";
    let state_bytes = state_bytes(graph);
    let fixed_ram = plan.arena_bytes + state_bytes;
    let ram_need = fixed_ram + if weights_in_ram { plan.weight_bytes } else { 0 };
    if ram_need > m.ram_bytes {
        let mut parts = vec![format!("arena {}", plan.arena_bytes)];
        if state_bytes > 0 {
            parts.push(format!("state/KV cache {state_bytes}"));
        }
        parts.push(if weights_in_ram {
            format!("weights {}", plan.weight_bytes)
        } else {
            "weights in flash".into()
        });
        let mut message = format!(
            "the model needs {ram_need} bytes of RAM ({}), {} more than target `{}` has ({} bytes)",
            parts.join(" + "),
            ram_need - m.ram_bytes,
            target.name,
            m.ram_bytes
        );
        if weights_in_ram {
            message.push_str(&quantized_hint(
                graph,
                plan,
                m.ram_bytes.saturating_sub(fixed_ram),
                "RAM",
            ));
        }
        return Err(Error::Limit(message));
    }
    if !weights_in_ram && plan.weight_bytes > m.flash_bytes {
        return Err(Error::Limit(format!(
            "the weights need {} bytes of flash, {} more than target `{}` has ({} bytes){}",
            plan.weight_bytes,
            plan.weight_bytes - m.flash_bytes,
            target.name,
            m.flash_bytes,
            quantized_hint(graph, plan, m.flash_bytes, "flash")
        )));
    }
    Ok(())
}

/// Bytes of the model's state (the KV cache), kept by the generated `Model` between steps.
pub fn state_bytes(graph: &Graph) -> usize {
    graph
        .states
        .iter()
        .map(|s| plan::align_up(graph.ty(s.input).size_bytes()))
        .sum()
}

/// Weight-blob bytes if every float weight were stored as `bits`-bit integers in blocks of
/// 32 with one f16 scale per block (the layout of common int8/int4 formats); other weights
/// and the 64-byte alignment of each tensor stay as planned.
fn quantized_weight_bytes(graph: &Graph, plan: &Plan, bits: usize) -> usize {
    plan.weights
        .iter()
        .map(|&(v, _)| {
            let ty = graph.ty(v);
            let bytes = if ty.dtype.is_float() {
                let numel = ty.numel();
                numel.div_ceil(32) * (32 * bits / 8 + 2)
            } else {
                ty.size_bytes()
            };
            plan::align_up(bytes)
        })
        .sum()
}

/// ". Quantized to int8 the weights would take ≈ N bytes and fit ..." for an over-budget
/// message: what would fit into `available` bytes of `memory`.
fn quantized_hint(graph: &Graph, plan: &Plan, available: usize, memory: &str) -> String {
    let int8 = quantized_weight_bytes(graph, plan, 8);
    let int4 = quantized_weight_bytes(graph, plan, 4);
    let fits = |bytes: usize| bytes < plan.weight_bytes && bytes <= available;
    let estimate = "one f16 scale per 32 weights";
    if fits(int8) {
        format!(
            ". Quantized to int8 ({estimate}) the weights would take ≈ {int8} bytes: int8 \
             would fit the {available} bytes of {memory} available: build with --quantize int8"
        )
    } else if fits(int4) {
        format!(
            ". Quantized to int8 ({estimate}) the weights would take ≈ {int8} bytes, still too \
             many; int4 (≈ {int4} bytes) would fit the {available} bytes of {memory} available, \
             with --quantize int4 --group-size 32"
        )
    } else {
        format!(
            ". Even quantized to int4 ({estimate}) the weights would take ≈ {int4} bytes, \
             more than the {available} bytes of {memory} available: use a smaller model or a \
             target with more {memory}"
        )
    }
}
