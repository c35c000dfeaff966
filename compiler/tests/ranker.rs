//! The sentence-ranker example, as a test: paraphrase-MiniLM-L3-v2 (real, from
//! `../shared/models`) compiled with its WordPiece tokenizer baked in; the example's
//! embeddings of the model's reference sentences must match ONNX Runtime's (cosine ≥ 0.9999).
mod common;

use std::process::Command;

#[test]
fn minilm_ranker_matches_onnx_runtime_embeddings() {
    let repo = common::repo();
    let model_dir = repo.join("../shared/models/paraphrase-MiniLM-L3-v2");
    assert!(
        model_dir.is_dir(),
        "{} is missing (the shared models folder sits beside the repository)",
        model_dir.display()
    );
    let status = Command::new(env!("CARGO_BIN_EXE_slm-aot"))
        .arg("build")
        .arg(model_dir.join("paraphrase-MiniLM-L3-v2.onnx"))
        .args([
            "--target",
            "x86",
            "--dim",
            "batch_size=1",
            "--dim",
            "sequence_length=32",
        ])
        .arg("--tokenizer")
        .arg(model_dir.join("tokenizer.json"))
        .args(["-o", "examples/ranker/gen", "--name", "minilm"])
        .current_dir(&repo)
        .status()
        .expect("run slm-aot");
    assert!(status.success(), "slm-aot build failed");
    let output = Command::new(env!("CARGO"))
        .args([
            "run",
            "--release",
            "--quiet",
            "--manifest-path",
            "examples/ranker/Cargo.toml",
            "--",
        ])
        .arg("--model-dir")
        .arg(&model_dir)
        .arg("A person plays an instrument.")
        .current_dir(&repo)
        .env("CARGO_TARGET_DIR", common::scratch("cargo-target-ranker"))
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "example failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ranked: Vec<&str> = stdout.lines().skip(1).take(2).collect();
    assert!(
        ranked.iter().all(|l| l.contains("guitar")),
        "the guitar sentences should rank first:\n{stdout}"
    );
}
