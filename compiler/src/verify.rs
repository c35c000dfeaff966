//! `slm-aot verify`: build the generated crate with a runner for the target, feed it `.npy`
//! inputs, and compare every output with `.npy` references (or with the reference evaluator
//! on the unoptimised graph when none are given). The runner runs on this machine, under
//! QEMU's user-mode emulator (`qemu-aarch64 -cpu ..` for an aarch64 Linux profile), or as
//! bare-metal firmware on an emulated board (`qemu-system-arm -machine mps3-an547` for a
//! Cortex-M profile): [`Runner::for_target`].
#![deny(clippy::indexing_slicing)]
use crate::codegen::{firmware_runner, runner};
use crate::error::{Error, Result};
use crate::eval::evaluate;
use crate::ir::{Data, Graph, Tensor, TensorType};
use crate::npy;
use crate::pipeline::{self, BuildOptions};
use crate::target::TargetProfile;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

/// Longest one run of a runner may take before it counts as hung (a firmware that never
/// exits through semihosting would keep QEMU running for ever).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(600);

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
            let missing = || {
                format!(
                    "no input file for `{name}` in `{}` (expected `{name}.npy`)",
                    dir.display()
                )
            };
            load_checked(dir, name, "in", graph.ty(v), "input", missing)
        })
        .collect()
}

/// Read `<dir>/<name>.npy` (or `<prefix>.<name>.npy`), which must hold a `want` tensor for
/// the graph's `role` (input/output) `name`; `missing` says what is absent when neither exists.
fn load_checked(
    dir: &Path,
    name: &str,
    prefix: &str,
    want: &crate::ir::TensorType,
    role: &str,
    missing: impl FnOnce() -> String,
) -> Result<Tensor> {
    let path = find_npy(dir, name, prefix).ok_or_else(|| Error::Usage(missing()))?;
    let t = npy::read(&path)?;
    if &t.ty != want {
        return Err(Error::Usage(format!(
            "`{}` holds {}, but {role} `{name}` is {want}",
            path.display(),
            t.ty
        )));
    }
    Ok(t)
}

/// Load one `.npy` reference per graph output, checked against the output's type.
pub fn load_references(graph: &Graph, dir: &Path) -> Result<Vec<Tensor>> {
    graph
        .outputs
        .iter()
        .enumerate()
        .map(|(i, &output)| {
            let name = graph.output_name(i);
            let missing = || {
                format!(
                    "no reference file for output `{name}` in `{}`",
                    dir.display()
                )
            };
            load_checked(dir, name, "out", graph.ty(output), "output", missing)
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
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(runner_dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target_dir)
        .env("RUSTFLAGS", host_rustflags(target));
    run_cargo(cmd, gen_dir)?;
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
    let target = &opts.build.target;
    let runner = Runner::for_target(target)?;
    let missing = runner.missing_tools(target);
    if !missing.is_empty() {
        return Err(Error::Usage(format!(
            "verifying target `{}` needs what this machine lacks (verify installs nothing): {}",
            target.name,
            missing.join("; ")
        )));
    }
    let gen_dir = opts.work_dir.join("gen");
    let build = pipeline::build(&opts.build, &gen_dir)?;
    build.generated.write(&gen_dir)?;
    let inputs = load_inputs(&build.graph, &opts.inputs)?;
    let target_dir = opts
        .cargo_target_dir
        .clone()
        .unwrap_or_else(|| opts.work_dir.join("target"));
    let binary = build_target_runner(
        &runner,
        &build.graph,
        &build.generated.name,
        &gen_dir,
        &opts.work_dir,
        &target_dir,
        target,
        &inputs,
    )?;
    let outputs = run_target_runner(
        &runner,
        &binary,
        &build.graph,
        &inputs,
        &opts.work_dir.join("io"),
    )?;
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
        // A build keeps only the optimised graph: the reference evaluates a fresh import.
        Some(evaluate(&pipeline::load(&opts.build)?.0, &inputs)?)
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

/// Where `verify` runs the build for a target profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runner {
    /// This machine, natively ([`host_rustflags`]: the profile's CPU when this machine runs
    /// its code, else the portable kernels).
    Host,
    /// A Linux user-mode emulator, e.g. `qemu-aarch64 -cpu cortex-a72`, running a statically
    /// linked runner built with the profile's `-C target-cpu`.
    User {
        qemu: String,
        cpu: String,
        /// Cross linker of the triple.
        linker: String,
    },
    /// A bare-metal firmware runner on `qemu-system-arm -machine MACHINE` with semihosting.
    Board { machine: String },
}

impl Runner {
    /// The runner for `target`: the host when the triple is this machine's, QEMU user mode
    /// for an aarch64 Linux triple (`[emulator] cpu`, default `max`), a `qemu-system-arm`
    /// board for a bare-metal Arm triple (`[emulator] machine`).
    pub fn for_target(target: &TargetProfile) -> Result<Runner> {
        let triple = target.triple.as_str();
        let host_arch = std::env::consts::ARCH;
        if triple.starts_with(host_arch) && triple.contains(std::env::consts::OS) {
            return Ok(Runner::Host);
        }
        if triple == "aarch64-unknown-linux-gnu" {
            return Ok(Runner::User {
                qemu: "qemu-aarch64".into(),
                cpu: target.emulator.cpu.clone().unwrap_or_else(|| "max".into()),
                linker: "aarch64-linux-gnu-gcc".into(),
            });
        }
        if triple.starts_with("thumbv") && triple.contains("-none-") {
            let machine = target.emulator.machine.clone().ok_or_else(|| {
                Error::Usage(format!(
                    "target `{}` ({triple}) names no emulated board: add `[emulator] machine = \
                     \"mps3-an547\"` to the profile",
                    target.name
                ))
            })?;
            if !firmware_runner::MACHINES.contains(&machine.as_str()) {
                return Err(Error::Usage(format!(
                    "verify knows the memory map of {:?} only, not of QEMU machine `{machine}` \
                     (target `{}`)",
                    firmware_runner::MACHINES,
                    target.name
                )));
            }
            return Ok(Runner::Board { machine });
        }
        Err(Error::Usage(format!(
            "verify cannot run target `{}` ({triple}) on this {host_arch} machine: it runs the \
             host's own triple, aarch64-unknown-linux-gnu under qemu-aarch64, and bare-metal \
             thumbv* triples on qemu-system-arm",
            target.name
        )))
    }

    /// Where the runner runs, for the report.
    pub fn describe(&self) -> String {
        match self {
            Runner::Host => "natively on this machine".into(),
            Runner::User { qemu, cpu, .. } => format!("under `{qemu} -cpu {cpu}`"),
            Runner::Board { machine } => {
                format!("as firmware on `qemu-system-arm -machine {machine}` (semihosting)")
            }
        }
    }

    /// What this runner needs that this machine lacks, each with how to get it; empty when
    /// everything is there. `verify` installs nothing itself.
    pub fn missing_tools(&self, target: &TargetProfile) -> Vec<String> {
        let mut missing = Vec::new();
        if *self == Runner::Host {
            return missing;
        }
        if !rust_target_installed(&target.triple) {
            missing.push(format!(
                "the Rust target `{0}` (`rustup target add {0}`)",
                target.triple
            ));
        }
        match self {
            Runner::Host => {}
            Runner::User { qemu, linker, .. } => {
                if !on_path(linker) && std::env::var_os(linker_env(&target.triple)).is_none() {
                    missing.push(format!(
                        "the cross linker `{linker}` (Debian/Ubuntu packages \
                         `gcc-aarch64-linux-gnu libc6-dev-arm64-cross`)"
                    ));
                }
                if !on_path(qemu) {
                    missing.push(format!("`{qemu}` (Debian/Ubuntu package `qemu-user`)"));
                }
            }
            Runner::Board { .. } => {
                if !on_path("qemu-system-arm") {
                    missing
                        .push("`qemu-system-arm` (Debian/Ubuntu package `qemu-system-arm`)".into());
                }
            }
        }
        missing
    }
}

/// `CARGO_TARGET_<TRIPLE>_LINKER`.
fn linker_env(triple: &str) -> String {
    format!(
        "CARGO_TARGET_{}_LINKER",
        triple.to_ascii_uppercase().replace(['-', '.'], "_")
    )
}

/// Whether an executable named `name` is on `PATH`.
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
}

/// Whether the active toolchain has the standard library of `triple`.
fn rust_target_installed(triple: &str) -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .is_some_and(|o| {
            let sysroot = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
            sysroot
                .join("lib/rustlib")
                .join(triple)
                .join("lib")
                .is_dir()
        })
}

/// A cargo command for building a runner for another triple: flags of the surrounding build
/// must not leak in.
fn cross_cargo(manifest: &Path, target_dir: &Path, triple: &str, rustflags: &str) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["build", "--release", "--quiet", "--target", triple])
        .arg("--manifest-path")
        .arg(manifest)
        .env("CARGO_TARGET_DIR", target_dir)
        .env("RUSTFLAGS", rustflags)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET");
    cmd
}

/// Run a cargo build, turning a failure into an error with the tail of its messages. A
/// warning cargo reports (its per-crate summary, `warning: `NAME` (lib) generated N warnings`)
/// is an slm-aot defect, since the generated crate and its runner are ours: printed, and an
/// error under `SLM_AOT_DENY_WARNINGS` (set by the test suite).
fn run_cargo(mut cmd: Command, what: &Path) -> Result<()> {
    let output = cmd.output().map_err(|e| {
        Error::Usage(format!(
            "cannot run cargo (needed to build the generated crate): {e}"
        ))
    })?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let tail = last_lines(&stderr, 40);
        return Err(Error::Internal(format!(
            "the generated crate in `{}` does not build:\n{tail}",
            what.display()
        )));
    }
    let warned: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning: `") && l.contains(") generated "))
        .collect();
    if !warned.is_empty() {
        let message = format!(
            "the generated crate in `{}` builds with warnings ({}):\n{stderr}",
            what.display(),
            warned.join("; ")
        );
        if std::env::var_os("SLM_AOT_DENY_WARNINGS").is_some() {
            return Err(Error::Internal(message));
        }
        eprintln!("warning: {message}");
    }
    Ok(())
}

/// Write the runner crate for `runner` and build it; returns the binary (host or user mode)
/// or firmware ELF (board).
#[allow(clippy::too_many_arguments)]
pub fn build_target_runner(
    runner: &Runner,
    graph: &Graph,
    crate_name: &str,
    gen_dir: &Path,
    work_dir: &Path,
    target_dir: &Path,
    target: &TargetProfile,
    inputs: &[Tensor],
) -> Result<PathBuf> {
    let (cpu_flag, name, dir) = match runner {
        Runner::Host => {
            return build_runner(graph, crate_name, gen_dir, work_dir, target_dir, target);
        }
        Runner::User { .. } => (
            format!("-C target-cpu={} -C target-feature=+crt-static", target.cpu),
            format!("{crate_name}-runner"),
            work_dir.join("runner"),
        ),
        Runner::Board { .. } => (
            format!("-C link-arg=-Tlink.x -C target-cpu={}", target.cpu),
            format!("{crate_name}-firmware-runner"),
            work_dir.join("firmware-runner"),
        ),
    };
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let abs = |p: &Path| p.canonicalize().map_err(|e| Error::io(p, e));
    let (dir_abs, gen_abs) = (abs(&dir)?, abs(gen_dir)?);
    let model_path = pipeline::relative_path(&dir_abs, &gen_abs)
        .display()
        .to_string();
    let runtime_path = pipeline::default_runtime_path(&dir);
    let crate_ = match runner {
        Runner::Board { .. } => {
            let bytes: Vec<Vec<u8>> = inputs.iter().map(|t| t.data.to_le_bytes()).collect();
            firmware_runner::emit(graph, crate_name, &model_path, &runtime_path, &bytes)?
        }
        _ => runner::emit(graph, crate_name, &model_path, &runtime_path)?,
    };
    crate_.write(&dir)?;
    // One target dir per profile: two CPUs of one triple would otherwise rebuild each other.
    let target_dir = target_dir.join(&target.name);
    let mut cmd = cross_cargo(
        &dir.join("Cargo.toml"),
        &target_dir,
        &target.triple,
        &cpu_flag,
    );
    if let Runner::User { linker, .. } = runner {
        let var = linker_env(&target.triple);
        if std::env::var_os(&var).is_none() {
            cmd.env(var, linker);
        }
    }
    run_cargo(cmd, gen_dir)?;
    Ok(target_dir.join(&target.triple).join("release").join(name))
}

/// Run `cmd` with its stdout and stderr in files under `io_dir`, killing it after
/// [`RUN_TIMEOUT`]; returns (success, stdout, stderr).
fn run_with_timeout(mut cmd: Command, io_dir: &Path) -> Result<(bool, String, String)> {
    let (out_path, err_path) = (io_dir.join("stdout.txt"), io_dir.join("stderr.txt"));
    let file = |p: &Path| std::fs::File::create(p).map_err(|e| Error::io(p, e));
    cmd.stdin(Stdio::null())
        .stdout(file(&out_path)?)
        .stderr(file(&err_path)?);
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::Usage(format!("cannot run `{program}`: {e}")))?;
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| Error::io(Path::new(&program), e))?
        {
            break status;
        }
        if start.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Mismatch(format!(
                "`{program}` did not finish within {} s (a hung model or firmware); its output \
                 is in `{}`",
                RUN_TIMEOUT.as_secs(),
                out_path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| Error::io(p, e));
    Ok((status.success(), read(&out_path)?, read(&err_path)?))
}

/// Run a built runner for `runner` on `inputs`; returns one tensor per graph output.
pub fn run_target_runner(
    runner: &Runner,
    binary: &Path,
    graph: &Graph,
    inputs: &[Tensor],
    io_dir: &Path,
) -> Result<Vec<Tensor>> {
    match runner {
        Runner::Host => Ok(run_runner(binary, graph, inputs, io_dir, 1)?.0),
        Runner::User { qemu, cpu, .. } => {
            let (in_dir, out_dir) = write_inputs(inputs, io_dir)?;
            let mut cmd = Command::new(qemu);
            cmd.args(["-cpu", cpu])
                .arg(binary)
                .arg(&in_dir)
                .arg(&out_dir);
            cmd.arg("1");
            let (ok, _, stderr) = run_with_timeout(cmd, io_dir)?;
            if !ok {
                return Err(Error::Mismatch(format!(
                    "the generated model failed under `{qemu} -cpu {cpu}` (an illegal \
                     instruction means the build uses an extension this CPU lacks): {}",
                    stderr.trim()
                )));
            }
            read_outputs(graph, &out_dir)
        }
        Runner::Board { machine } => {
            std::fs::create_dir_all(io_dir).map_err(|e| Error::io(io_dir, e))?;
            let mut cmd = Command::new("qemu-system-arm");
            cmd.args([
                "-machine",
                machine,
                "-nographic",
                "-semihosting-config",
                "enable=on,target=native",
                "-kernel",
            ])
            .arg(binary);
            let (ok, stdout, stderr) = run_with_timeout(cmd, io_dir)?;
            if !ok || !stdout.lines().any(|l| l == "done") {
                return Err(Error::Mismatch(format!(
                    "the firmware failed on `qemu-system-arm -machine {machine}`:\n{}\n{}",
                    last_lines(&stdout, 20),
                    stderr.trim()
                )));
            }
            parse_hex_outputs(graph, &stdout)
        }
    }
}

/// The last `n` lines of a text.
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .get(lines.len().saturating_sub(n)..)
        .unwrap_or_default()
        .join("\n")
}

/// Write `in/{k}.bin` for a runner; returns (in, out) folders.
fn write_inputs(inputs: &[Tensor], io_dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let (in_dir, out_dir) = (io_dir.join("in"), io_dir.join("out"));
    for d in [&in_dir, &out_dir] {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    for (k, t) in inputs.iter().enumerate() {
        let p = in_dir.join(format!("{k}.bin"));
        std::fs::write(&p, t.data.to_le_bytes()).map_err(|e| Error::io(&p, e))?;
    }
    Ok((in_dir, out_dir))
}

/// One tensor per graph output from `k.bin` files in `out_dir`.
fn read_outputs(graph: &Graph, out_dir: &Path) -> Result<Vec<Tensor>> {
    (0..graph.outputs.len())
        .map(|k| {
            let p = out_dir.join(format!("{k}.bin"));
            let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
            output_tensor(graph, k, &bytes)
        })
        .collect()
}

/// Output `k` from its raw little-endian bytes, checked against its type's size.
fn output_tensor(graph: &Graph, k: usize, bytes: &[u8]) -> Result<Tensor> {
    let value = graph
        .outputs
        .get(k)
        .ok_or_else(|| Error::Internal(format!("no graph output {k}")))?;
    let ty: TensorType = graph.ty(*value).clone();
    if bytes.len() != ty.size_bytes() {
        return Err(Error::Internal(format!(
            "runner wrote {} bytes for output {k}, expected {}",
            bytes.len(),
            ty.size_bytes()
        )));
    }
    Tensor::new(ty.clone(), Data::from_le_bytes(ty.dtype, bytes))
        .map_err(|e| Error::Internal(e.to_string()))
}

/// Outputs from a firmware runner's `out K HEX` lines.
fn parse_hex_outputs(graph: &Graph, stdout: &str) -> Result<Vec<Tensor>> {
    let mut bytes = vec![Vec::new(); graph.outputs.len()];
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix("out ") else {
            continue;
        };
        let bad = || Error::Internal(format!("malformed firmware output line `{line}`"));
        let (k, hex) = rest.split_once(' ').ok_or_else(bad)?;
        let k: usize = k.parse().map_err(|_| bad())?;
        let buf = bytes.get_mut(k).ok_or_else(bad)?;
        let digits = hex.as_bytes();
        if digits.len() % 2 != 0 {
            return Err(bad());
        }
        for pair in digits.chunks_exact(2) {
            let text = std::str::from_utf8(pair).map_err(|_| bad())?;
            buf.push(u8::from_str_radix(text, 16).map_err(|_| bad())?);
        }
    }
    bytes
        .iter()
        .enumerate()
        .map(|(k, b)| output_tensor(graph, k, b))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::DType;

    /// The mapping as seen from an x86-64 Linux machine (the CI host).
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn each_shipped_profile_has_a_runner() {
        let runner = |name: &str| Runner::for_target(&TargetProfile::load(name).unwrap());
        assert_eq!(runner("x86").unwrap(), Runner::Host);
        let rpi4 = runner("rpi4").unwrap();
        assert!(matches!(rpi4, Runner::User { ref cpu, .. } if cpu == "cortex-a72"));
        let jetson = runner("jetson").unwrap();
        assert!(matches!(jetson, Runner::User { ref cpu, .. } if cpu == "neoverse-n1"));
        assert_eq!(
            runner("cortex-m55").unwrap(),
            Runner::Board {
                machine: "mps3-an547".into()
            }
        );
        let mut other = TargetProfile::load("cortex-m55").unwrap();
        other.emulator.machine = Some("mps2-an386".into());
        assert!(Runner::for_target(&other).is_err());
        other.emulator.machine = None;
        assert!(Runner::for_target(&other).is_err());
    }

    #[test]
    fn firmware_hex_lines_become_tensors() {
        let mut g = Graph::new(17);
        let x = g.add_value("x", TensorType::new(DType::F32, vec![3]));
        g.inputs.push(x);
        g.outputs.push(x);
        g.output_names.push("x".into());
        let hex: String = [1.0f32, -2.5, 0.125]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .map(|b| format!("{b:02x}"))
            .collect();
        let stdout = format!("noise\nout 0 {}\nout 0 {}\ndone\n", &hex[..10], &hex[10..]);
        let t = parse_hex_outputs(&g, &stdout).unwrap();
        assert_eq!(t.first().unwrap().to_f64_vec(), vec![1.0, -2.5, 0.125]);
        assert!(parse_hex_outputs(&g, "out 0 0000\n").is_err());
        assert!(parse_hex_outputs(&g, "out 1 00000000\n").is_err());
        assert!(parse_hex_outputs(&g, "out 0 0g\n").is_err());
    }
}
