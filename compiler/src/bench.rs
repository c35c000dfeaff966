//! `slm-aot bench`: build a model, time the generated crate on this machine (warm-up, many
//! runs, median/min/max) and, with `--vs`, ONNX Runtime (Python, one thread, all graph
//! optimisations) and tract (`tract-onnx`, one thread) on the same ONNX file and inputs in
//! the same run, interleaved in rounds, with each engine's peak RSS. `--ort-model` adds
//! ONNX Runtime on another file of the same network (engine `ort-model`: typically ORT's
//! own int8 model, `quantize_dynamic`'s output), fed the same inputs.
//!
//! Every engine is a long-lived child process that answers "run N times" requests on stdin
//! and reports each run's time measured in-process, so process start-up and model loading are
//! never timed and the rounds of different engines alternate under the same machine load.
use crate::codegen::GeneratedCrate;
use crate::error::{Error, Result};
use crate::ir::{DType, Data, Graph, Tensor};
use crate::pipeline::{self, BuildOptions};
use crate::verify;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

const ORT_SERVER: &str = include_str!("../../templates/bench/ort_server.py");
const TRACT_CARGO: &str = include_str!("../../templates/bench/tract/Cargo.toml.in");
const TRACT_MAIN: &str = include_str!("../../templates/bench/tract/src/main.rs");

/// An engine to compare with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    SlmAot,
    Ort,
    /// ONNX Runtime on [`BenchOptions::ort_model`] instead of the built model.
    OrtModel,
    Tract,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::SlmAot => "slm-aot",
            Engine::Ort => "ort",
            Engine::OrtModel => "ort-model",
            Engine::Tract => "tract",
        }
    }

    pub fn parse(s: &str) -> Result<Engine> {
        match s.trim() {
            "ort" | "onnxruntime" => Ok(Engine::Ort),
            "ort-model" => Ok(Engine::OrtModel),
            "tract" => Ok(Engine::Tract),
            other => Err(Error::Usage(format!(
                "unknown engine `{other}` for --vs (use ort, ort-model, tract)"
            ))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub build: BuildOptions,
    /// Folder of `<input name>.npy`; without it inputs are synthesised (see [`synth_inputs`]).
    pub inputs: Option<PathBuf>,
    pub work_dir: PathBuf,
    pub warmup: usize,
    pub runs: usize,
    pub rounds: usize,
    pub vs: Vec<Engine>,
    /// Python with `onnxruntime` and `numpy`; default `target/benchenv/bin/python`, then
    /// `python3`.
    pub python: Option<PathBuf>,
    /// Another ONNX file of the same network (same input names and shapes) for engine
    /// `ort-model`, e.g. ONNX Runtime's int8 model to compare an int8 build with.
    pub ort_model: Option<PathBuf>,
}

/// One engine's timings.
#[derive(Debug, Clone)]
pub struct EngineResult {
    pub engine: Engine,
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub runs: usize,
    pub peak_rss_kib: u64,
}

impl EngineResult {
    pub fn json(&self) -> String {
        format!(
            "{{\"engine\":\"{}\",\"median_ms\":{:.6},\"min_ms\":{:.6},\"max_ms\":{:.6},\"runs\":{},\"peak_rss_kib\":{}}}",
            self.engine.name(),
            self.median_ms,
            self.min_ms,
            self.max_ms,
            self.runs,
            self.peak_rss_kib
        )
    }
}

/// Inputs for a model without given ones: integer inputs are 0 except `*mask*` (1), floats
/// a fixed pseudo-random sequence in [-1, 1), booleans true.
pub fn synth_inputs(graph: &Graph) -> Result<Vec<Tensor>> {
    let mut state = 0x2545_f491u32;
    graph
        .inputs
        .iter()
        .map(|&v| {
            let ty = graph.ty(v).clone();
            let n = ty.numel();
            let mask = graph.value(v).name.to_ascii_lowercase().contains("mask");
            let data = match ty.dtype {
                DType::F32 => Data::F32(
                    (0..n)
                        .map(|_| {
                            state ^= state << 13;
                            state ^= state >> 17;
                            state ^= state << 5;
                            (state >> 8) as f32 / (1u32 << 23) as f32 - 1.0
                        })
                        .collect(),
                ),
                DType::Bool => Data::from_le_bytes(DType::Bool, &vec![1u8; n]),
                d => {
                    let mut bytes = vec![0u8; n * d.size_bytes()];
                    if mask {
                        for chunk in bytes.chunks_mut(d.size_bytes()) {
                            chunk[0] = 1;
                        }
                    }
                    Data::from_le_bytes(d, &bytes)
                }
            };
            Tensor::new(ty, data).map_err(|e| Error::Internal(e.to_string()))
        })
        .collect()
}

fn dtype_tag(d: DType) -> Result<&'static str> {
    Ok(match d {
        DType::F32 => "f32",
        DType::F64 => "f64",
        DType::I64 => "i64",
        DType::I32 => "i32",
        DType::Bool => "bool",
        other => {
            return Err(Error::Usage(format!(
                "bench: input type {other} unsupported"
            )));
        }
    })
}

/// Write `<k>.bin` and `manifest.txt` (read by all three engines).
fn write_inputs(graph: &Graph, inputs: &[Tensor], dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut manifest = String::new();
    for (k, (&v, t)) in graph.inputs.iter().zip(inputs).enumerate() {
        let p = dir.join(format!("{k}.bin"));
        std::fs::write(&p, t.data.to_le_bytes()).map_err(|e| Error::io(&p, e))?;
        let dims: Vec<String> = t.ty.shape.iter().map(|d| d.to_string()).collect();
        let dims = if dims.is_empty() {
            "-".into()
        } else {
            dims.join(",")
        };
        manifest.push_str(&format!(
            "{k} {} {dims} {}\n",
            dtype_tag(t.ty.dtype)?,
            graph.value(v).name
        ));
    }
    let p = dir.join("manifest.txt");
    std::fs::write(&p, manifest).map_err(|e| Error::io(&p, e))
}

/// A running engine.
struct Server {
    engine: Engine,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    times_us: Vec<f64>,
}

impl Server {
    fn start(engine: Engine, mut cmd: Command) -> Result<Server> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Usage(format!("cannot start {}: {e}", engine.name())))?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::Internal("no stdout".into()))?;
        let mut server = Server {
            engine,
            child,
            stdin,
            stdout: BufReader::new(stdout),
            times_us: Vec::new(),
        };
        let mut line = String::new();
        server.read_line(&mut line)?;
        if line.trim() != "ready" {
            return Err(server.failure(&line));
        }
        Ok(server)
    }

    fn read_line(&mut self, line: &mut String) -> Result<()> {
        line.clear();
        let n = self
            .stdout
            .read_line(line)
            .map_err(|e| Error::Internal(format!("{}: {e}", self.engine.name())))?;
        if n == 0 {
            return Err(self.failure(""));
        }
        Ok(())
    }

    fn failure(&mut self, line: &str) -> Error {
        let _ = self.child.kill();
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
        }
        let _ = self.child.wait();
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let mut msg = format!(
            "{} failed: {}{}",
            self.engine.name(),
            line.trim(),
            tail.join("\n")
        );
        if matches!(self.engine, Engine::Ort | Engine::OrtModel)
            && stderr.contains("missing python package")
        {
            msg.push_str(
                "\nONNX Runtime is not installed for this python; make a venv with\n  \
                 python3 -m venv target/benchenv && target/benchenv/bin/pip install onnxruntime numpy\n\
                 (or pass --python PATH to one that has onnxruntime and numpy)",
            );
        }
        Error::Usage(msg)
    }

    /// Run `n` times; keep the times when `keep`.
    fn run(&mut self, n: usize, keep: bool) -> Result<()> {
        if let Some(stdin) = self.stdin.as_mut() {
            writeln!(stdin, "{n}")
                .and_then(|_| stdin.flush())
                .map_err(|e| Error::Internal(format!("{}: {e}", self.engine.name())))?;
        }
        let mut line = String::new();
        loop {
            self.read_line(&mut line)?;
            let l = line.trim();
            if l == "done" {
                return Ok(());
            }
            match l
                .strip_prefix("run_us ")
                .and_then(|v| v.trim().parse::<f64>().ok())
            {
                Some(us) if keep => self.times_us.push(us),
                Some(_) => {}
                None => return Err(self.failure(&line)),
            }
        }
    }

    /// Peak resident set size so far (`VmHWM`), then shut down.
    fn finish(mut self) -> Result<EngineResult> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let peak_rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        drop(self.stdin.take());
        let _ = self.child.wait();
        let mut t = self.times_us.clone();
        t.sort_by(|a, b| a.total_cmp(b));
        if t.is_empty() {
            return Err(Error::Internal(format!("{}: no runs", self.engine.name())));
        }
        let median = if t.len() % 2 == 1 {
            t[t.len() / 2]
        } else {
            (t[t.len() / 2 - 1] + t[t.len() / 2]) / 2.0
        };
        Ok(EngineResult {
            engine: self.engine,
            median_ms: median / 1e3,
            min_ms: t[0] / 1e3,
            max_ms: t[t.len() - 1] / 1e3,
            runs: t.len(),
            peak_rss_kib,
        })
    }
}

fn repo_target() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
}

/// Build (once, then reuse) the tract helper under the workspace's `target/bench-tract`.
fn build_tract_helper() -> Result<PathBuf> {
    let dir = repo_target().join("bench-tract");
    let mut files = BTreeMap::new();
    files.insert(PathBuf::from("Cargo.toml"), TRACT_CARGO.as_bytes().to_vec());
    files.insert(PathBuf::from("src/main.rs"), TRACT_MAIN.as_bytes().to_vec());
    GeneratedCrate {
        name: "slm-aot-bench-tract".into(),
        files,
    }
    .write(&dir)?;
    eprintln!(
        "building the tract helper in {} (first time: a few minutes)",
        dir.display()
    );
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .status()
        .map_err(|e| Error::Usage(format!("cannot run cargo: {e}")))?;
    if !status.success() {
        return Err(Error::Usage(
            "the tract helper (crate tract-onnx) does not build; see cargo's output above".into(),
        ));
    }
    Ok(dir
        .join("target")
        .join("release")
        .join("slm-aot-bench-tract"))
}

fn python(opts: &BenchOptions) -> PathBuf {
    if let Some(p) = &opts.python {
        return p.clone();
    }
    let venv = repo_target().join("benchenv").join("bin").join("python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// The whole `bench` command; results in engine order (slm-aot first).
pub fn bench(opts: &BenchOptions) -> Result<Vec<EngineResult>> {
    let gen_dir = opts.work_dir.join("gen");
    let build = pipeline::build(&opts.build, &gen_dir)?;
    build.generated.write(&gen_dir)?;
    let inputs = match &opts.inputs {
        Some(dir) => verify::load_inputs(&build.graph, dir)?,
        None => synth_inputs(&build.graph)?,
    };
    let in_dir = opts.work_dir.join("inputs");
    write_inputs(&build.graph, &inputs, &in_dir)?;
    let target_dir = opts.work_dir.join("target");
    eprintln!(
        "building the generated crate (RUSTFLAGS=\"{}\")",
        verify::host_rustflags(&opts.build.target)
    );
    let binary = verify::build_runner(
        &build.graph,
        &build.generated.name,
        &gen_dir,
        &opts.work_dir,
        &target_dir,
        &opts.build.target,
    )?;
    let out_dir = opts.work_dir.join("outputs");
    std::fs::create_dir_all(&out_dir).map_err(|e| Error::io(&out_dir, e))?;
    let mut servers = Vec::new();
    let mut ours = Command::new(&binary);
    ours.arg(&in_dir).arg(&out_dir).arg("serve");
    servers.push(Server::start(Engine::SlmAot, ours)?);
    for &engine in &opts.vs {
        let cmd = match engine {
            Engine::SlmAot => continue,
            Engine::Ort | Engine::OrtModel => {
                let model = match (engine, &opts.ort_model) {
                    (Engine::Ort, _) => &opts.build.model,
                    (_, Some(m)) => m,
                    (_, None) => {
                        return Err(Error::Usage(
                            "engine `ort-model` needs --ort-model FILE".into(),
                        ));
                    }
                };
                let script = opts.work_dir.join("ort_server.py");
                std::fs::write(&script, ORT_SERVER).map_err(|e| Error::io(&script, e))?;
                let mut c = Command::new(python(opts));
                c.arg(&script).arg(model).arg(&in_dir);
                c.env("OMP_NUM_THREADS", "1");
                c
            }
            Engine::Tract => {
                let helper = build_tract_helper()?;
                let mut c = Command::new(helper);
                c.arg(&opts.build.model).arg(&in_dir);
                c
            }
        };
        servers.push(Server::start(engine, cmd)?);
    }
    for s in servers.iter_mut() {
        s.run(opts.warmup, false)?;
    }
    let rounds = opts.rounds.max(1);
    let per_round = opts.runs.div_ceil(rounds).max(1);
    for _ in 0..rounds {
        for s in servers.iter_mut() {
            s.run(per_round, true)?;
        }
    }
    servers.into_iter().map(Server::finish).collect()
}

/// The ratio table.
pub fn table(results: &[EngineResult]) -> String {
    let ours = results.first().map(|r| r.median_ms).unwrap_or(0.0);
    let mut s = format!(
        "{:<10} {:>11} {:>11} {:>11} {:>6} {:>13} {:>16}\n",
        "engine", "median ms", "min ms", "max ms", "runs", "peak RSS MiB", "slm-aot / engine"
    );
    for r in results {
        s.push_str(&format!(
            "{:<10} {:>11.4} {:>11.4} {:>11.4} {:>6} {:>13.1} {:>16}\n",
            r.engine.name(),
            r.median_ms,
            r.min_ms,
            r.max_ms,
            r.runs,
            r.peak_rss_kib as f64 / 1024.0,
            if r.engine == Engine::SlmAot {
                "-".to_string()
            } else {
                format!("{:.3}x", ours / r.median_ms)
            }
        ));
    }
    s
}
