//! Greedy story generation with Karpathy's stories260K, compiled ahead of time by slm-aot.
//!
//! Runs the generated `stories260k` crate (a stateful decoder: `Model::step` with a 256-slot
//! KV cache kept inside the model) from BOS,
//! prints the story and the median time per token, and exits non-zero if the token ids differ
//! from the reference greedy decoding in `models/stories260K/ref/greedy.json`.
//! Usage: `stories [--tokens N]` (default 200).

mod tokenizer;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use stories260k::{MAX_CONTEXT, Model, VOCAB};
use tokenizer::{BOS, Tokenizer};

const DEFAULT_TOKENS: usize = 200;

/// Paths of the vendored model files, relative to this crate.
fn model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/stories260K")
}

fn parse_args() -> Result<usize, String> {
    let mut tokens = DEFAULT_TOKENS;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--tokens" | "-n" => {
                let v = args.next().ok_or("--tokens needs a value")?;
                tokens = v
                    .parse()
                    .map_err(|_| format!("--tokens: `{v}` is not a number"))?;
            }
            "--help" | "-h" => {
                println!(
                    "usage: stories [--tokens N]   (1..={MAX_CONTEXT}, default {DEFAULT_TOKENS})"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    if tokens == 0 || tokens > MAX_CONTEXT {
        return Err(format!(
            "--tokens must be in 1..={MAX_CONTEXT} (the KV cache has {MAX_CONTEXT} slots)"
        ));
    }
    Ok(tokens)
}

/// The ids of the first JSON array in `text` (the reference file holds one list of ints).
fn parse_id_list(text: &str) -> Result<Vec<usize>, String> {
    let start = text.find('[').ok_or("no `[` in greedy.json")?;
    let end = start + text[start..].find(']').ok_or("no `]` in greedy.json")?;
    text[start + 1..end]
        .split(',')
        .map(|s| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| format!("`{}` is not a token id", s.trim()))
        })
        .collect()
}

/// Greedy decoding from BOS: returns the `n` generated ids and the time of each step.
/// The generated model keeps its KV cache as state and updates it in place; the example
/// only feeds tokens.
fn generate(n: usize) -> Result<(Vec<usize>, Vec<Duration>), String> {
    let mut model = Box::new(Model::new());
    let mut ids = Vec::with_capacity(n);
    let mut times = Vec::with_capacity(n);
    let mut token = BOS as u32;
    for pos in 0..n {
        let start = Instant::now();
        let logits = model.step(token).map_err(|e| format!("step {pos}: {e}"))?;
        token = runtime_core::sampling::argmax(logits) as u32;
        times.push(start.elapsed());
        ids.push(token as usize);
    }
    Ok((ids, times))
}

fn run() -> Result<bool, String> {
    let n = parse_args()?;
    let dir = model_dir();
    let tokenizer = Tokenizer::load(&dir.join("tok512.bin"))?;
    if tokenizer.len() != VOCAB {
        return Err(format!(
            "tok512.bin has {} tokens, the model {VOCAB}",
            tokenizer.len()
        ));
    }

    let (ids, mut times) = generate(n)?;

    let mut text = Vec::new();
    let mut prev = BOS;
    for &id in &ids {
        tokenizer.decode_into(prev, id, &mut text);
        prev = id;
    }
    println!("{}", String::from_utf8_lossy(&text));
    println!();

    times.sort();
    let median = times[times.len() / 2];
    println!(
        "{n} tokens, {:.1} µs/token (median; {} target, arena {} B, weights {} B)",
        median.as_secs_f64() * 1e6,
        stories260k::TARGET,
        stories260k::ARENA_BYTES,
        stories260k::WEIGHT_BYTES
    );

    let path = dir.join("ref/greedy.json");
    let json =
        std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let reference = parse_id_list(&json)?;
    // The reference starts with BOS, which is the prompt, not a generated token.
    let expected = reference
        .strip_prefix(&[BOS])
        .ok_or("greedy.json does not start with BOS")?;
    let m = n.min(expected.len());
    match (0..m).find(|&i| ids[i] != expected[i]) {
        None => {
            println!("greedy ids match models/stories260K/ref/greedy.json ({m}/{m})");
            Ok(true)
        }
        Some(i) => {
            eprintln!(
                "MISMATCH: generated token {i} is {}, greedy.json has {} (first {m} ids compared)",
                ids[i], expected[i]
            );
            Ok(false)
        }
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
