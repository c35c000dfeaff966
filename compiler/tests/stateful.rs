//! Stateful decoders end to end through `slm-aot generate`: stories260K's growing-cache and
//! fixed-slot exports (vendored in `models/`) greedy-decode llama2.c's 200 reference ids
//! with the KV cache held as model state; a full cache stops generation with an error
//! value; a seed reproduces a sampled run.
mod common;

use std::process::Command;

fn reference_ids() -> Vec<String> {
    let text = std::fs::read_to_string(common::repo().join("models/stories260K/ref/greedy.json"))
        .expect("greedy.json");
    let start = text.find('[').expect("[");
    let end = start + text[start..].find(']').expect("]");
    text[start + 1..end]
        .split(',')
        .map(|s| s.trim().to_string())
        .skip(1) // BOS, the prompt
        .collect()
}

/// Run `slm-aot generate`; `tag` keeps concurrent tests' work folders apart.
fn generate(tag: &str, model: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_slm-aot"))
        .arg("generate")
        .arg(common::repo().join("models/stories260K").join(model))
        .args(["--target", "x86", "--prompt-ids", "1", "--print-ids"])
        .args(args)
        .arg("--work-dir")
        .arg(common::scratch(&format!("generate/{tag}/{model}")))
        .output()
        .expect("run slm-aot");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn both_cache_styles_reproduce_the_reference_greedy_ids() {
    let want = reference_ids();
    assert_eq!(want.len(), 200);
    for model in ["stories260K_step_kvdyn.onnx", "stories260K_step_kv256.onnx"] {
        let (ok, stdout, stderr) = generate(
            "greedy",
            model,
            &["--max-context", "256", "--tokens", "200", "--greedy"],
        );
        assert!(ok, "{model}: {stderr}");
        let got: Vec<String> = stdout.split_whitespace().map(str::to_string).collect();
        let same = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
        assert_eq!(same, 200, "{model}: first {same} ids match\n{stdout}");
    }
}

#[test]
fn a_full_cache_stops_generation_and_a_seed_reproduces_sampling() {
    let (ok, stdout, stderr) = generate(
        "full",
        "stories260K_step_kvdyn.onnx",
        &["--max-context", "8", "--tokens", "50", "--greedy"],
    );
    assert!(ok, "{stderr}");
    assert!(stderr.contains("context is full (8 tokens)"), "{stderr}");
    // The prompt takes one slot; 7 steps fill the rest, and the last logits give one more id.
    let got: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(got.len(), 8, "{stdout}");
    assert_eq!(got[..], reference_ids()[..8]);

    let sample = |seed: &str| {
        let args = [
            "--max-context",
            "64",
            "--tokens",
            "40",
            "--temperature",
            "0.9",
            "--top-k",
            "40",
            "--top-p",
            "0.95",
            "--repetition-penalty",
            "1.1",
            "--seed",
            seed,
        ];
        let (ok, stdout, stderr) = generate("sample", "stories260K_step_kvdyn.onnx", &args);
        assert!(ok, "{stderr}");
        stdout
    };
    let (a, b, c) = (sample("7"), sample("7"), sample("8"));
    assert_eq!(a, b, "the same seed must give the same tokens");
    assert_ne!(a, c, "another seed should give other tokens");
    assert_ne!(
        a.split_whitespace().collect::<Vec<_>>(),
        reference_ids()[..40],
        "sampling at temperature 0.9 should leave the greedy path"
    );
}
