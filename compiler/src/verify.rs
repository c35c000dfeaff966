//! `slm-aot verify`: build the generated crate with a host runner, feed it `.npy` inputs,
//! and compare every output with `.npy` references (or with the reference evaluator on
//! the unoptimised graph when none are given).
#![deny(clippy::indexing_slicing)]
use crate::codegen::runner;
use crate::error::{Error, Result};
use crate::eval::evaluate;
use crate::ir::{Data, Graph, Tensor, TensorType};
use crate::npy;
use crate::pipeline::{self, BuildOptions};
use crate::target::TargetProfile;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub build: BuildOptions,
    pub inputs: PathBuf,
    /// `.npy` references; outputs without one are compared with the reference evaluator.
    pub reference: Option<PathBuf>,
    /// Where the generated crate, runner and raw I/O go.
    pub work_dir: PathBuf,
    /// Cargo target directory for the runner (shared across runs to reuse builds).
    pub cargo_target_dir: Option<PathBuf>,
    pub save_outputs: Option<PathBuf>,
    pub atol: f64,
    pub rtol: f64,
}

/// What an output was compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference {
    /// A `.npy` reference file.
    File,
    /// The compiler's reference evaluator on the unoptimised graph.
    Evaluator,
}

/// The comparison of one output.
#[derive(Debug, Clone)]
pub struct OutputCheck {
    pub name: String,
    pub against: Reference,
    pub max_abs_error: f64,
    pub cosine: f64,
    pub ok: bool,
}

/// Candidate file names for a tensor named `name` in a folder.
pub fn find_npy(dir: &Path, name: &str, prefix: &str) -> Option<PathBuf> {
    let sanitized = name.replace(['/', '\\'], "_");
    [
        format!("{sanitized}.npy"),
        format!("{prefix}.{sanitized}.npy"),
    ]
    .into_iter()
    .map(|f| dir.join(f))
    .find(|p| p.is_file())
}

/// Load one `.npy` per graph input, checked against the input's type.
pub fn load_inputs(graph: &Graph, dir: &Path) -> Result<Vec<Tensor>> {
    graph
        .inputs
        .iter()
        .map(|&v| {
            let name = &graph.value(v).name;
            let path = find_npy(dir, name, "in").ok_or_else(|| {
                Error::Usage(format!(
                    "no input file for `{name}` in `{}` (expected `{name}.npy`)",
                    dir.display()
                ))
            })?;
            let t = npy::read(&path)?;
            let want = graph.ty(v);
            if &t.ty != want {
                return Err(Error::Usage(format!(
                    "`{}` holds {}, but input `{name}` is {want}",
                    path.display(),
                    t.ty
                )));
            }
            Ok(t)
        })
        .collect()
}

/// Load one `.npy` reference per graph output, checked against the output's type.
pub fn load_references(graph: &Graph, dir: &Path) -> Result<Vec<Tensor>> {
    graph
        .outputs
        .iter()
        .enumerate()
        .map(|(i, &output)| {
            let name = graph.output_name(i);
            let path = find_npy(dir, name, "out").ok_or_else(|| {
                Error::Usage(format!(
                    "no reference file for output `{name}` in `{}`",
                    dir.display()
                ))
            })?;
            let t = npy::read(&path)?;
            let want = graph.ty(output);
            if &t.ty != want {
                return Err(Error::Usage(format!(
                    "`{}` holds {}, but output `{name}` is {want}",
                    path.display(),
                    t.ty
                )));
            }
            Ok(t)
        })
        .collect()
}

/// Max abs error, cosine similarity and tolerance check of `got` against `want`.
pub fn compare(
    name: &str,
    got: &Tensor,
    want: &Tensor,
    atol: f64,
    rtol: f64,
) -> Result<OutputCheck> {
    if got.ty.shape != want.ty.shape {
        return Err(Error::Mismatch(format!(
            "output `{name}` has shape {:?}, reference {:?}",
            got.ty.shape, want.ty.shape
        )));
    }
    let (a, b) = (got.to_f64_vec(), want.to_f64_vec());
    let mut max_abs: f64 = 0.0;
    let mut ok = true;
    let (mut dot, mut na, mut nb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(&b) {
        let d = (x - y).abs();
        let nan_mismatch = x.is_nan() != y.is_nan();
        if nan_mismatch || d > atol + rtol * y.abs() {
            ok = false;
        }
        if !d.is_nan() {
            max_abs = max_abs.max(d);
        }
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    let cosine = if na == 0.0 && nb == 0.0 {
        1.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    };
    Ok(OutputCheck {
        name: name.to_string(),
        against: Reference::File,
        max_abs_error: max_abs,
        cosine,
        ok,
    })
}

/// Whether this machine can run code built for `target` natively: same architecture and
/// OS, and (on x86-64) every feature the profile lists.
pub fn host_runs(target: &TargetProfile) -> bool {
    let same = target.triple.starts_with(std::env::consts::ARCH)
        && target.triple.contains(std::env::consts::OS);
    #[cfg(target_arch = "x86_64")]
    let features_ok = target.features.iter().all(|f| match f.as_str() {
        "avx2" => std::is_x86_feature_detected!("avx2"),
        "fma" => std::is_x86_feature_detected!("fma"),
        "avx512f" => std::is_x86_feature_detected!("avx512f"),
        "avx512bw" => std::is_x86_feature_detected!("avx512bw"),
        "avx512vl" => std::is_x86_feature_detected!("avx512vl"),
        "avx512vnni" => std::is_x86_feature_detected!("avx512vnni"),
        _ => false,
    });
    #[cfg(not(target_arch = "x86_64"))]
    let features_ok = false;
    same && features_ok
}

/// `RUSTFLAGS` for a host build of a crate generated for `target`: the profile's
/// `-C target-cpu` when this machine runs that CPU's code (so the ISA kernels the profile
/// chose are compiled in), else the portable kernels.
pub fn host_rustflags(target: &TargetProfile) -> String {
    let mut flags = std::env::var("RUSTFLAGS").unwrap_or_default();
    if host_runs(target) {
        if !flags.is_empty() {
            flags.push(' ');
        }
        flags.push_str(&format!("-C target-cpu={}", target.cpu));
        // Features the cpu name does not imply (x86-64-v4 lacks VNNI) select kernels too.
        if !target.features.is_empty() {
            let list: Vec<String> = target.features.iter().map(|f| format!("+{f}")).collect();
            flags.push_str(&format!(" -C target-feature={}", list.join(",")));
        }
    }
    flags
}

/// Build the runner for a generated crate written at `gen_dir`, returning its binary.
pub fn build_runner(
    graph: &Graph,
    crate_name: &str,
    gen_dir: &Path,
    work_dir: &Path,
    target_dir: &Path,
    target: &TargetProfile,
) -> Result<PathBuf> {
    let runner_dir = work_dir.join("runner");
    std::fs::create_dir_all(&runner_dir).map_err(|e| Error::io(&runner_dir, e))?;
    let abs = |p: &Path| p.canonicalize().map_err(|e| Error::io(p, e));
    let (runner_abs, gen_abs) = (abs(&runner_dir)?, abs(gen_dir)?);
    let model_path = pipeline::relative_path(&runner_abs, &gen_abs)
        .display()
        .to_string();
    let runtime_path = pipeline::default_runtime_path(&runner_dir);
    let crate_ = runner::emit(graph, crate_name, &model_path, &runtime_path)?;
    crate_.write(&runner_dir)?;
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(runner_dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target_dir)
        .env("RUSTFLAGS", host_rustflags(target))
        .output()
        .map_err(|e| {
            Error::Usage(format!(
                "cannot run cargo (needed to build the generated crate): {e}"
            ))
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(Error::Internal(format!(
            "the generated crate in `{}` does not build:\n{}",
            gen_dir.display(),
            tail.join("\n")
        )));
    }
    Ok(target_dir.join("release").join(&crate_.name))
}

/// Run a built runner on tensors; returns one tensor per graph output.
pub fn run_runner(
    binary: &Path,
    graph: &Graph,
    inputs: &[Tensor],
    io_dir: &Path,
    iterations: usize,
) -> Result<(Vec<Tensor>, Vec<f64>)> {
    let (in_dir, out_dir) = (io_dir.join("in"), io_dir.join("out"));
    for d in [&in_dir, &out_dir] {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    for (k, t) in inputs.iter().enumerate() {
        let p = in_dir.join(format!("{k}.bin"));
        std::fs::write(&p, t.data.to_le_bytes()).map_err(|e| Error::io(&p, e))?;
    }
    let output = Command::new(binary)
        .arg(&in_dir)
        .arg(&out_dir)
        .arg(iterations.to_string())
        .output()
        .map_err(|e| Error::io(binary, e))?;
    if !output.status.success() {
        return Err(Error::Mismatch(format!(
            "the generated model failed at run time: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let times: Vec<f64> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| {
            l.strip_prefix("run_us ")
                .and_then(|v| v.trim().parse().ok())
        })
        .collect();
    let outs = graph
        .outputs
        .iter()
        .enumerate()
        .map(|(k, &v)| {
            let p = out_dir.join(format!("{k}.bin"));
            let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
            let ty: TensorType = graph.ty(v).clone();
            if bytes.len() != ty.size_bytes() {
                return Err(Error::Internal(format!(
                    "runner wrote {} bytes for output {k}",
                    bytes.len()
                )));
            }
            Tensor::new(ty.clone(), Data::from_le_bytes(ty.dtype, &bytes))
                .map_err(|e| Error::Internal(e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((outs, times))
}

/// The whole `verify` command.
pub fn verify(opts: &VerifyOptions) -> Result<Vec<OutputCheck>> {
    let gen_dir = opts.work_dir.join("gen");
    let build = pipeline::build(&opts.build, &gen_dir)?;
    build.generated.write(&gen_dir)?;
    let inputs = load_inputs(&build.graph, &opts.inputs)?;
    let target_dir = opts
        .cargo_target_dir
        .clone()
        .unwrap_or_else(|| opts.work_dir.join("target"));
    let binary = build_runner(
        &build.graph,
        &build.generated.name,
        &gen_dir,
        &opts.work_dir,
        &target_dir,
        &opts.build.target,
    )?;
    let (outputs, _) = run_runner(&binary, &build.graph, &inputs, &opts.work_dir.join("io"), 1)?;
    // One reference per output: the `.npy` file when there is one, else the reference
    // evaluator on the unoptimised graph.
    let files: Vec<Option<PathBuf>> = build
        .graph
        .outputs
        .iter()
        .enumerate()
        .map(|(i, _)| {
            opts.reference
                .as_ref()
                .and_then(|dir| find_npy(dir, build.graph.output_name(i), "out"))
        })
        .collect();
    let evaluated = if files.iter().any(Option::is_none) {
        Some(evaluate(&build.source, &inputs)?)
    } else {
        None
    };
    let mut references = Vec::with_capacity(files.len());
    let mut sources = Vec::with_capacity(files.len());
    for (k, file) in files.iter().enumerate() {
        match (file, &evaluated) {
            (Some(p), _) => {
                references.push(npy::read(p)?);
                sources.push(Reference::File);
            }
            (None, Some(all)) => {
                let t = all
                    .get(k)
                    .cloned()
                    .ok_or_else(|| Error::Internal("evaluator lost an output".into()))?;
                references.push(t);
                sources.push(Reference::Evaluator);
            }
            (None, None) => return Err(Error::Internal("missing reference".into())),
        }
    }
    if let Some(dir) = &opts.save_outputs {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        for (i, t) in outputs.iter().enumerate() {
            let name = build.graph.output_name(i).replace(['/', '\\'], "_");
            npy::write(&dir.join(format!("{name}.npy")), t)?;
        }
    }
    outputs
        .iter()
        .zip(&references)
        .zip(sources)
        .enumerate()
        .map(|(i, ((got, want), source))| {
            let mut check = compare(build.graph.output_name(i), got, want, opts.atol, opts.rtol)?;
            check.against = source;
            Ok(check)
        })
        .collect()
}
