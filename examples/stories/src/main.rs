//! Greedy story generation with Karpathy's stories260K, compiled ahead of time by slm-aot.
//!
//! Runs the generated `stories260k` crate (one decode step with a 256-slot KV cache) from BOS,
//! prints the story and the median time per token, and exits non-zero if the token ids differ
//! from the reference greedy decoding in `models/stories260K/ref/greedy.json`.
//! Usage: `stories [--tokens N]` (default 200).

mod tokenizer;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use stories260k::{Inputs, Model, Outputs};
use tokenizer::{BOS, Tokenizer};

/// Elements of one cache tensor (`[1, 4, 256, 8]`); every `past`/`present` tensor has this size.
const KV_LEN: usize = stories260k::PAST_KEY_VALUES_0_KEY_LEN;
/// Slots of the KV cache: the most tokens one run can generate.
const KV_SLOTS: usize = stories260k::PAST_KEY_VALUES_0_KEY_SHAPE[2];
/// Cache tensors: a key and a value per layer, in the model's input order.
const KV_TENSORS: usize = 10;
const VOCAB: usize = stories260k::LOGITS_LEN;
const DEFAULT_TOKENS: usize = 200;

/// The whole KV cache: `[layer0.key, layer0.value, layer1.key, ...]`.
type KvCache = [[f32; KV_LEN]; KV_TENSORS];

/// A zeroed cache on the heap (allocated once, before decoding).
fn new_cache() -> Box<KvCache> {
    vec![[0.0f32; KV_LEN]; KV_TENSORS]
        .into_boxed_slice()
        .try_into()
        .expect("KV_TENSORS tensors")
}

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
                    "usage: stories [--tokens N]   (1..={KV_SLOTS}, default {DEFAULT_TOKENS})"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    if tokens == 0 || tokens > KV_SLOTS {
        return Err(format!(
            "--tokens must be in 1..={KV_SLOTS} (the KV cache has {KV_SLOTS} slots)"
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

fn argmax(xs: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best
}

/// Greedy decoding from BOS: returns the `n` generated ids and the time of each step.
fn generate(n: usize) -> Result<(Vec<usize>, Vec<Duration>), String> {
    let mut model = Box::new(Model::new());
    let mut past = new_cache();
    let mut present = new_cache();
    let mut logits = [0.0f32; VOCAB];
    let mut ids = Vec::with_capacity(n);
    let mut times = Vec::with_capacity(n);
    let mut token = BOS;
    for pos in 0..n {
        let start = Instant::now();
        {
            let [p0k, p0v, p1k, p1v, p2k, p2v, p3k, p3v, p4k, p4v] = &*past;
            let [q0k, q0v, q1k, q1v, q2k, q2v, q3k, q3v, q4k, q4v] = &mut *present;
            let inputs = Inputs {
                input_ids: &[token as i64],
                position_ids: &[pos as i64],
                past_key_values_0_key: p0k,
                past_key_values_0_value: p0v,
                past_key_values_1_key: p1k,
                past_key_values_1_value: p1v,
                past_key_values_2_key: p2k,
                past_key_values_2_value: p2v,
                past_key_values_3_key: p3k,
                past_key_values_3_value: p3v,
                past_key_values_4_key: p4k,
                past_key_values_4_value: p4v,
            };
            let mut outputs = Outputs {
                logits: &mut logits,
                present_0_key: q0k,
                present_0_value: q0v,
                present_1_key: q1k,
                present_1_value: q1v,
                present_2_key: q2k,
                present_2_value: q2v,
                present_3_key: q3k,
                present_3_value: q3v,
                present_4_key: q4k,
                present_4_value: q4v,
            };
            model
                .run(&inputs, &mut outputs)
                .map_err(|e| format!("step {pos}: {e}"))?;
        }
        token = argmax(&logits);
        // This step's `present` is the next step's `past`: swap the two buffers instead of
        // copying them (no allocation, no copy).
        std::mem::swap(&mut past, &mut present);
        times.push(start.elapsed());
        ids.push(token);
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
