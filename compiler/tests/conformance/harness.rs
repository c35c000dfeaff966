//! The conformance harness: ONNX backend node tests (`target/conformance/node`, written by
//! `tests/conformance/generate.py`) compiled through the library pipeline into one suite
//! crate (one module per test), built and run once, and compared with ONNX's expected
//! outputs; the reference evaluator runs on the same inputs as a differential.
use onnx_protobuf::{Message, ModelProto, TensorProto};
use slm_aot::codegen::{self, CrateMeta, suite};
use slm_aot::eval::evaluate;
use slm_aot::frontend::ImportOptions;
use slm_aot::frontend::onnx::tensor::tensor_from_proto;
use slm_aot::ir::{DType, Data, Graph, Tensor};
use slm_aot::pipeline::{self, BuildOptions};
use slm_aot::target::TargetProfile;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// ONNX's runner tolerance: `|got - want| <= atol + rtol * |want|`.
pub const RTOL: f64 = 1e-3;
pub const ATOL: f64 = 1e-7;

/// One line of `tests/conformance/passlist.txt`.
#[derive(Debug, Clone)]
pub struct Entry {
    pub pattern: String,
    pub freeze: Vec<String>,
    pub rtol: f64,
    pub atol: f64,
    pub line: usize,
}

/// Parse the pass list: `pattern [freeze=a,b] [rtol=x] [atol=y]  # comment`.
pub fn parse_passlist(text: &str) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let pattern = words.next().unwrap_or("").to_string();
        let mut entry = Entry {
            pattern,
            freeze: vec![],
            rtol: RTOL,
            atol: ATOL,
            line: i + 1,
        };
        for w in words {
            let bad = || format!("passlist line {}: bad option `{w}`", i + 1);
            let (key, value) = w.split_once('=').ok_or_else(bad)?;
            match key {
                "freeze" => entry.freeze = value.split(',').map(str::to_string).collect(),
                "rtol" => entry.rtol = value.parse().map_err(|_| bad())?,
                "atol" => entry.atol = value.parse().map_err(|_| bad())?,
                _ => return Err(bad()),
            }
            let tolerance_changed = key != "freeze";
            if tolerance_changed && !raw.contains('#') {
                return Err(format!(
                    "passlist line {}: a per-test tolerance needs a `# reason`",
                    i + 1
                ));
            }
        }
        out.push(entry);
    }
    Ok(out)
}

/// `*` matches any run of characters.
pub fn glob(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            let Some(rest) = name.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len()).any(|k| rest.is_char_boundary(k) && glob(tail, &rest[k..]))
        }
    }
}

/// A node test on disk.
#[derive(Debug, Clone)]
pub struct NodeTest {
    pub name: String,
    pub dir: PathBuf,
}

/// Every node test folder, sorted.
pub fn node_tests(root: &Path) -> Result<Vec<NodeTest>, String> {
    let entries = std::fs::read_dir(root).map_err(|e| {
        format!(
            "no ONNX node tests at {} ({e}); run scripts/setup.sh to generate them",
            root.display()
        )
    })?;
    let mut out: Vec<NodeTest> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("model.onnx").is_file())
        .filter_map(|dir| {
            let name = dir.file_name()?.to_str()?.to_string();
            Some(NodeTest { name, dir })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub fn read_model(path: &Path) -> Result<ModelProto, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    ModelProto::parse_from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn read_tensor_proto(path: &Path) -> Result<TensorProto, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    TensorProto::parse_from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// One `test_data_set_N`: input and expected output protos (None: not a tensor).
pub struct DataSet {
    pub name: String,
    pub inputs: Vec<Option<TensorProto>>,
    pub outputs: Vec<Option<TensorProto>>,
}

fn read_protos(dir: &Path, kind: &str) -> Result<Vec<Option<TensorProto>>, String> {
    let mut out = Vec::new();
    for k in 0.. {
        let path = dir.join(format!("{kind}_{k}.pb"));
        if path.is_file() {
            out.push(Some(read_tensor_proto(&path)?));
        } else if dir.join(format!("{kind}_{k}.pb.not-a-tensor")).is_file() {
            out.push(None);
        } else {
            break;
        }
    }
    Ok(out)
}

pub fn data_sets(test: &NodeTest) -> Result<Vec<DataSet>, String> {
    let mut names: Vec<String> = std::fs::read_dir(&test.dir)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.starts_with("test_data_set_"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let dir = test.dir.join(&name);
            Ok(DataSet {
                inputs: read_protos(&dir, "input")?,
                outputs: read_protos(&dir, "output")?,
                name,
            })
        })
        .collect()
}

/// Element types the SLM-core denominator excludes (float8, 4-bit, 2-bit, float4).
pub fn has_excluded_dtype(model: &ModelProto) -> bool {
    use onnx_protobuf::type_proto::Value;
    let excluded = |code: i32| (17..=26).contains(&code);
    let Some(g) = model.graph.as_ref() else {
        return false;
    };
    let infos = g.input.iter().chain(&g.output).chain(&g.value_info);
    let in_types = infos.into_iter().any(|i| {
        matches!(i.type_.as_ref().and_then(|t| t.value.as_ref()),
                 Some(Value::TensorType(t)) if excluded(t.elem_type))
    });
    let in_inits = g.initializer.iter().any(|t| excluded(t.data_type));
    let in_attrs = g.node.iter().any(|n| {
        n.attribute.iter().any(|a| {
            (a.name == "to" || a.name == "output_dtype") && excluded(a.i as i32)
                || a.t.as_ref().is_some_and(|t| excluded(t.data_type))
        })
    });
    in_types || in_inits || in_attrs
}

/// The ONNX op a test is about: for `_expanded` tests the op of the original test, else the
/// graph's op type whose name best prefixes the test name.
pub fn op_of(name: &str, model: &ModelProto, all: &BTreeMap<String, String>) -> String {
    if name.contains("_expanded")
        && let Some(op) = all.get(&name.replacen("_expanded", "", 1))
    {
        return op.clone();
    }
    let squashed: String = name
        .trim_start_matches("test_")
        .chars()
        .filter(|c| *c != '_')
        .collect::<String>()
        .to_ascii_lowercase();
    let nodes = model
        .graph
        .as_ref()
        .map(|g| g.node.as_slice())
        .unwrap_or(&[]);
    nodes
        .iter()
        .map(|n| n.op_type.clone())
        .filter(|op| squashed.starts_with(&op.to_ascii_lowercase()))
        .max_by_key(|op| op.len())
        .or_else(|| nodes.first().map(|n| n.op_type.clone()))
        .unwrap_or_default()
}

/// The 80 ops of the SLM core set (the list).
pub const SLM_CORE: &[&str] = &[
    "MatMul",
    "Gemm",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "Sqrt",
    "Reciprocal",
    "Neg",
    "Abs",
    "Exp",
    "Log",
    "Erf",
    "Tanh",
    "Sigmoid",
    "Sin",
    "Cos",
    "Max",
    "Min",
    "Floor",
    "Ceil",
    "Softmax",
    "LogSoftmax",
    "LayerNormalization",
    "Gelu",
    "Relu",
    "ReduceMean",
    "ReduceSum",
    "ReduceMax",
    "ArgMax",
    "Equal",
    "Less",
    "Greater",
    "LessOrEqual",
    "GreaterOrEqual",
    "Not",
    "And",
    "Or",
    "Where",
    "Shape",
    "Reshape",
    "Transpose",
    "Concat",
    "Split",
    "Slice",
    "Gather",
    "GatherElements",
    "Unsqueeze",
    "Squeeze",
    "Expand",
    "Range",
    "ConstantOfShape",
    "Constant",
    "Identity",
    "Cast",
    "Trilu",
    "CumSum",
    "ScatterND",
    "Tile",
    "Pad",
    "Dropout",
    "Einsum",
    "Attention",
    "RotaryEmbedding",
    "RMSNormalization",
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "MatMulInteger",
    "QLinearMatMul",
    "ConvInteger",
    "QLinearConv",
    "Conv",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "BatchNormalization",
    "Clip",
    "Flatten",
];

/// Whether a test counts in the SLM-core denominator.
pub fn in_slm_core(name: &str, op: &str, model: &ModelProto) -> bool {
    SLM_CORE.contains(&op)
        && !name.starts_with("test_training_dropout")
        && !has_excluded_dtype(model)
}

/// How to run one test.
#[derive(Debug, Clone)]
pub struct Plan {
    pub test: NodeTest,
    pub freeze: Vec<String>,
    pub rtol: f64,
    pub atol: f64,
    /// Discover frozen inputs from "must be constant at build time" errors.
    pub auto_freeze: bool,
}

/// The outcome of one test.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub name: String,
    /// Inputs frozen to constants (the ones that made it compile, in auto mode).
    pub freeze: Vec<String>,
    /// `None` = passed.
    pub generated: Option<String>,
    pub evaluator: Option<String>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.generated.is_none() && self.evaluator.is_none()
    }
}

/// One data set ready to run: its name, run-time inputs and expected outputs.
type Run = (String, Vec<Tensor>, Vec<Result<Tensor, String>>);

/// A compiled test awaiting its run.
struct Prepared {
    plan: Plan,
    module: String,
    freeze: Vec<String>,
    graph: Graph,
    code: codegen::GeneratedModule,
    /// Per data set: run-time inputs and expected outputs.
    sets: Vec<Run>,
    evaluator: Option<String>,
}

/// The name of the input a "must be constant at build time" error names.
fn must_be_constant(message: &str) -> Option<String> {
    if !message.contains("must be constant at build time") {
        return None;
    }
    let start = message.find("(`")? + 2;
    let end = start + message[start..].find('`')?;
    Some(message[start..end].to_string())
}

/// Turn `freeze`d graph inputs into initializers holding the first data set's values, and
/// give the remaining inputs the static shapes of that data set.
fn frozen_model(
    model: &ModelProto,
    set: &DataSet,
    freeze: &[String],
) -> Result<ModelProto, String> {
    use onnx_protobuf::tensor_shape_proto::dimension::Value as Dim;
    use onnx_protobuf::type_proto::Value;
    let mut m = model.clone();
    let g = m.graph.as_mut().ok_or("model without graph")?;
    let mut kept = Vec::new();
    for (k, input) in g.input.iter().enumerate() {
        let data = set.inputs.get(k).cloned().flatten();
        if freeze.contains(&input.name) {
            let mut t = data.ok_or_else(|| format!("no test data for input `{}`", input.name))?;
            t.name = input.name.clone();
            g.initializer.push(t);
            continue;
        }
        let mut input = input.clone();
        if let (Some(data), Some(Value::TensorType(tt))) =
            (data, input.type_.as_mut().and_then(|t| t.value.as_mut()))
            && let Some(shape) = tt.shape.as_mut()
            && shape.dim.len() == data.dims.len()
        {
            for (d, &size) in shape.dim.iter_mut().zip(&data.dims) {
                d.value = Some(Dim::DimValue(size));
            }
        }
        kept.push(input);
    }
    for name in freeze {
        if !g.input.iter().any(|i| &i.name == name) {
            return Err(format!("freeze={name}: the model has no such input"));
        }
    }
    g.input = kept;
    Ok(m)
}

/// Everything under `work`: frozen models, inputs/references as `.npy` for
/// `slm-aot verify`, the suite crate and its runner, run-time I/O.
pub struct Paths {
    pub work: PathBuf,
    pub cargo_target: PathBuf,
}

fn options(model: PathBuf) -> BuildOptions {
    BuildOptions {
        model,
        target: TargetProfile::load("x86").unwrap_or_else(|e| panic!("x86 profile: {e}")),
        import: ImportOptions {
            dims: BTreeMap::new(),
            limits: Default::default(),
            quant_tiling: None,
            max_context: None,
        },
        crate_name: None,
        runtime_path: None,
        verify_each_pass: true,
        tokenizer: None,
        golden: None,
        quantize: None,
    }
}

fn compare(got: &Tensor, want: &Tensor, rtol: f64, atol: f64) -> Result<(), String> {
    if got.ty != want.ty {
        return Err(format!("type {} but expected {}", got.ty, want.ty));
    }
    let exact = !matches!(
        want.ty.dtype,
        DType::F32 | DType::F64 | DType::F16 | DType::BF16
    );
    let (a, b) = (got.to_f64_vec(), want.to_f64_vec());
    let mut worst: Option<(usize, f64, f64)> = None;
    for (i, (&x, &y)) in a.iter().zip(&b).enumerate() {
        let ok = if exact {
            x == y
        } else if x.is_nan() || y.is_nan() {
            x.is_nan() && y.is_nan()
        } else if x.is_infinite() || y.is_infinite() {
            x == y
        } else {
            (x - y).abs() <= atol + rtol * y.abs()
        };
        if !ok && worst.is_none_or(|(_, wx, wy)| (x - y).abs() > (wx - wy).abs()) {
            worst = Some((i, x, y));
        }
    }
    match worst {
        None => Ok(()),
        Some((i, x, y)) => Err(format!(
            "element {i}: got {x}, expected {y} (rtol {rtol}, atol {atol})"
        )),
    }
}

fn compare_all(
    got: &[Tensor],
    want: &[Result<Tensor, String>],
    rtol: f64,
    atol: f64,
) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{} outputs, expected {}", got.len(), want.len()));
    }
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        let w = w
            .as_ref()
            .map_err(|e| format!("expected output {k}: {e}"))?;
        compare(g, w, rtol, atol).map_err(|e| format!("output {k}: {e}"))?;
    }
    Ok(())
}

/// Write a `slm-aot verify` folder: `model.onnx`, `inputs/<name>.npy`, `reference/<name>.npy`.
fn write_verify_folder(
    dir: &Path,
    graph: &Graph,
    inputs: &[Tensor],
    outputs: &[Result<Tensor, String>],
) {
    for sub in ["inputs", "reference"] {
        let _ = std::fs::create_dir_all(dir.join(sub));
    }
    for (&v, t) in graph.inputs.iter().zip(inputs) {
        let name = graph.value(v).name.replace(['/', '\\'], "_");
        let _ = slm_aot::npy::write(&dir.join("inputs").join(format!("{name}.npy")), t);
    }
    for (k, t) in outputs.iter().enumerate() {
        if let Ok(t) = t {
            let name = graph.output_name(k).replace(['/', '\\'], "_");
            let _ = slm_aot::npy::write(&dir.join("reference").join(format!("{name}.npy")), t);
        }
    }
}

/// Graph inputs (not yet frozen) holding at most 16 integers in the data set.
fn small_integer_inputs(model: &ModelProto, set: &DataSet, frozen: &[String]) -> Vec<String> {
    let names = graph_input_names(model);
    names
        .into_iter()
        .enumerate()
        .filter(|(k, name)| {
            !frozen.contains(name)
                && set.inputs.get(*k).cloned().flatten().is_some_and(|t| {
                    matches!(t.data_type, 6 | 7) && t.dims.iter().product::<i64>() <= 16
                })
        })
        .map(|(_, name)| name)
        .collect()
}

fn graph_input_names(model: &ModelProto) -> Vec<String> {
    model
        .graph
        .as_ref()
        .map(|g| g.input.iter().map(|i| i.name.clone()).collect())
        .unwrap_or_default()
}

fn prepare(plan: &Plan, paths: &Paths) -> Result<Prepared, String> {
    let model = read_model(&plan.test.dir.join("model.onnx"))?;
    let sets = data_sets(&plan.test)?;
    let first = sets.first().ok_or("no test data set")?;
    let dir = paths.work.join("verify").join(&plan.test.name);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let model_path = dir.join("model.onnx");
    let mut freeze = plan.freeze.clone();
    let compiled = loop {
        let frozen = frozen_model(&model, first, &freeze)?;
        let bytes = frozen.write_to_bytes().map_err(|e| e.to_string())?;
        std::fs::write(&model_path, bytes).map_err(|e| e.to_string())?;
        match pipeline::compile(&options(model_path.clone())) {
            Ok(c) => break c,
            Err(e) => {
                let message = e.to_string();
                match must_be_constant(&message) {
                    Some(name)
                        if plan.auto_freeze
                            && !freeze.contains(&name)
                            && graph_input_names(&model).contains(&name) =>
                    {
                        freeze.push(name)
                    }
                    // A value computed from graph inputs: freeze the small integer inputs
                    // it may derive from (sizes, counts), once.
                    Some(_) if plan.auto_freeze => {
                        let more = small_integer_inputs(&model, first, &freeze);
                        if more.is_empty() {
                            return Err(message);
                        }
                        freeze.extend(more);
                    }
                    _ => return Err(message),
                }
            }
        }
    };
    let graph_input_names = graph_input_names(&model);
    let mut runs = Vec::new();
    for set in &sets {
        let mut inputs = Vec::new();
        for (k, name) in graph_input_names.iter().enumerate() {
            if freeze.contains(name) {
                continue;
            }
            let proto = set
                .inputs
                .get(k)
                .cloned()
                .flatten()
                .ok_or_else(|| format!("{}: no tensor for input `{name}`", set.name))?;
            inputs.push(tensor_from_proto(&proto, None)?);
        }
        let expected: Vec<Result<Tensor, String>> = set
            .outputs
            .iter()
            .map(|p| match p {
                Some(p) => tensor_from_proto(p, None),
                None => Err("not a tensor".to_string()),
            })
            .collect();
        runs.push((set.name.clone(), inputs, expected));
    }
    // A data set whose input types differ from the first one's cannot run on the same
    // static shapes.
    let types: Vec<_> = compiled
        .graph
        .inputs
        .iter()
        .map(|&v| compiled.graph.ty(v).clone())
        .collect();
    runs.retain(|(_, ins, _)| ins.iter().map(|t| &t.ty).eq(types.iter()));
    if runs.is_empty() {
        return Err("no data set matches the model's input types".into());
    }
    write_verify_folder(&dir, &compiled.source, &runs[0].1, &runs[0].2);
    let mut evaluator = None;
    for (set, inputs, expected) in &runs {
        let result = evaluate(&compiled.source, inputs)
            .map_err(|e| e.to_string())
            .and_then(|got| compare_all(&got, expected, plan.rtol, plan.atol));
        if let Err(e) = result {
            evaluator = Some(format!("{set}: {e}"));
            break;
        }
    }
    let module = suite::module_ident(&plan.test.name);
    let meta = CrateMeta {
        crate_name: "conformance".into(),
        model_file: "model.onnx".into(),
        manifest: compiled.manifest.clone(),
        target: options(model_path).target,
        runtime_path: String::new(),
    };
    let code = codegen::emit_module(
        &compiled.graph,
        &compiled.plan,
        &meta,
        &suite::weights_path(&module),
    )
    .map_err(|e| e.to_string())?;
    Ok(Prepared {
        plan: plan.clone(),
        module,
        freeze,
        graph: compiled.graph,
        code,
        sets: runs,
        evaluator,
    })
}

/// Compile every planned test (on two threads), build one suite crate, run it once and
/// compare. Returns one outcome per plan, in order.
pub fn run(plans: &[Plan], paths: &Paths) -> Vec<Outcome> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4);
    let chunk = plans.len().div_ceil(workers).max(1);
    let prepared: Vec<Result<Prepared, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = plans
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|p| {
                            std::panic::catch_unwind(|| prepare(p, paths)).unwrap_or_else(|_| {
                                Err("the compiler panicked (a bug)".to_string())
                            })
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut outcomes: Vec<Outcome> = plans
        .iter()
        .map(|p| Outcome {
            name: p.test.name.clone(),
            freeze: p.freeze.clone(),
            ..Default::default()
        })
        .collect();
    let mut ready = Vec::new();
    for (k, p) in prepared.into_iter().enumerate() {
        match p {
            Ok(p) => {
                outcomes[k].freeze = p.freeze.clone();
                outcomes[k].evaluator = p.evaluator.clone();
                ready.push((k, p));
            }
            Err(e) => {
                outcomes[k].generated = Some(e.clone());
                outcomes[k].evaluator = Some(e);
            }
        }
    }
    let results = build_and_run(&ready, paths);
    for ((k, p), result) in ready.iter().zip(results) {
        let _ = p;
        if let Err(e) = result {
            outcomes[*k].generated = Some(e);
        }
    }
    outcomes
}

/// The files rustc's errors (not warnings) point at.
fn error_files(stderr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut in_error = false;
    for line in stderr.lines() {
        if line.starts_with("error") {
            in_error = true;
        } else if line.starts_with("warning") {
            in_error = false;
        } else if in_error && let Some(rest) = line.trim_start().strip_prefix("--> ") {
            out.insert(rest.split(':').next().unwrap_or("").to_string());
        }
    }
    out
}

/// Build the suite crate of `ready` tests and run it; one result per test. Modules whose
/// generated code does not compile are dropped and the rest rebuilt.
fn build_and_run(ready: &[(usize, Prepared)], paths: &Paths) -> Vec<Result<(), String>> {
    let mut results: Vec<Result<(), String>> = vec![Ok(()); ready.len()];
    let mut excluded: BTreeSet<String> = BTreeSet::new();
    let build_dir = paths.work.join("build");
    let (suite_dir, runner_dir) = (build_dir.join("suite"), build_dir.join("runner"));
    let _ = std::fs::remove_file(paths.work.join("build-errors.txt"));
    let binary = loop {
        let models: Vec<suite::SuiteModel<'_>> = ready
            .iter()
            .filter(|(_, p)| !excluded.contains(&p.module))
            .map(|(_, p)| suite::SuiteModel {
                module: p.module.clone(),
                graph: &p.graph,
                code: p.code.clone(),
            })
            .collect();
        let runtime = pipeline::default_runtime_path(&suite_dir);
        let _ = std::fs::remove_dir_all(suite_dir.join("src"));
        let _ = std::fs::remove_dir_all(suite_dir.join("weights"));
        let written = suite::emit_crate("conformance-suite", &models, &runtime)
            .and_then(|c| c.write(&suite_dir))
            .and_then(|_| {
                suite::emit_runner(
                    "conformance-suite",
                    &models,
                    "../suite",
                    &pipeline::default_runtime_path(&runner_dir),
                )
            })
            .and_then(|c| {
                c.write(&runner_dir)?;
                Ok(c.name)
            });
        let runner_name = match written {
            Ok(n) => n,
            Err(e) => return vec![Err(format!("writing the suite crate: {e}")); ready.len()],
        };
        let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "--quiet", "--manifest-path"])
            .arg(runner_dir.join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", &paths.cargo_target)
            .output();
        let out = match out {
            Ok(o) => o,
            Err(e) => return vec![Err(format!("cannot run cargo: {e}")); ready.len()],
        };
        if out.status.success() {
            break paths.cargo_target.join("release").join(runner_name);
        }
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let broken: BTreeSet<String> = error_files(&stderr)
            .into_iter()
            .filter_map(|f| {
                let m = Path::new(&f).file_stem()?.to_str()?;
                ready
                    .iter()
                    .any(|(_, p)| p.module == m)
                    .then(|| m.to_string())
            })
            .collect();
        if broken.is_empty() || broken.is_subset(&excluded) {
            let tail: String = stderr.lines().take(60).collect::<Vec<_>>().join("\n");
            let _ = std::fs::write(paths.work.join("build-errors.txt"), &stderr);
            return vec![Err(format!("the suite crate does not build:\n{tail}")); ready.len()];
        }
        let _ = std::fs::write(paths.work.join("build-errors.txt"), &stderr);
        for (i, (_, p)) in ready.iter().enumerate() {
            if broken.contains(&p.module) {
                results[i] = Err("the generated code does not compile".into());
            }
        }
        excluded.extend(broken);
    };
    let io = paths.work.join("io");
    let _ = std::fs::remove_dir_all(&io);
    let (in_dir, out_dir) = (io.join("in"), io.join("out"));
    for (_, p) in ready.iter().filter(|(_, p)| !excluded.contains(&p.module)) {
        for (set, inputs, _) in &p.sets {
            let dir = in_dir.join(&p.module).join(set);
            let _ = std::fs::create_dir_all(&dir);
            for (k, t) in inputs.iter().enumerate() {
                let _ = std::fs::write(dir.join(format!("{k}.bin")), t.data.to_le_bytes());
            }
        }
    }
    let _ = std::fs::create_dir_all(&out_dir);
    let run = match Command::new(&binary).arg(&in_dir).arg(&out_dir).output() {
        Ok(run) => run,
        Err(e) => return vec![Err(format!("cannot run {}: {e}", binary.display())); ready.len()],
    };
    // The runner catches panics per model; a run that did not exit cleanly (a signal, a stack
    // overflow) leaves the remaining models without outputs, so say why next to each of them.
    let died = (!run.status.success()).then(|| {
        let stderr = String::from_utf8_lossy(&run.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        format!(
            "the suite runner exited with {} before writing this output (stderr ends: {})",
            run.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        )
    });
    for (i, (_, p)) in ready.iter().enumerate() {
        if excluded.contains(&p.module) {
            continue;
        }
        for (set, _, expected) in &p.sets {
            let dir = out_dir.join(&p.module).join(set);
            if let Ok(e) = std::fs::read_to_string(dir.join("error.txt")) {
                results[i] = Err(format!("{set}: run failed: {e}"));
                break;
            }
            let got: Result<Vec<Tensor>, String> = p
                .graph
                .outputs
                .iter()
                .enumerate()
                .map(|(k, &v)| {
                    let ty = p.graph.ty(v).clone();
                    let path = dir.join(format!("{k}.bin"));
                    let bytes = std::fs::read(&path).map_err(|e| match &died {
                        Some(why) => format!("{}: {e}; {why}", path.display()),
                        None => format!("{}: {e}", path.display()),
                    })?;
                    if bytes.len() != ty.size_bytes() {
                        return Err(format!("output {k}: {} bytes written", bytes.len()));
                    }
                    Tensor::new(ty.clone(), Data::from_le_bytes(ty.dtype, &bytes))
                        .map_err(|e| e.to_string())
                })
                .collect();
            if let Err(e) = got.and_then(|g| compare_all(&g, expected, p.plan.rtol, p.plan.atol)) {
                results[i] = Err(format!("{set}: {e}"));
                break;
            }
        }
    }
    results
}
