//! The README's first command, as a test: stories260K (vendored in `models/`) compiled by
//! slm-aot, its generated crate used by `examples/stories`, greedy-decoding 200 tokens that
//! must equal llama2.c's reference ids.
mod common;

use std::process::Command;

#[test]
fn stories260k_generates_the_reference_story() {
    let repo = common::repo();
    let status = Command::new(env!("CARGO_BIN_EXE_slm-aot"))
        .args([
            "build",
            "models/stories260K/stories260K_step_kv256.onnx",
            "--target",
            "x86",
            "--max-context",
            "256",
        ])
        .args(["-o", "examples/stories/gen", "--name", "stories260k"])
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
            "examples/stories/Cargo.toml",
            "--",
            "--tokens",
            "200",
        ])
        .current_dir(&repo)
        .env("CARGO_TARGET_DIR", common::scratch("cargo-target-stories"))
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "example failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.starts_with("Once upon a time, there was a little girl named Lily."),
        "unexpected story:\n{stdout}"
    );
    assert!(
        stdout.contains("greedy ids match"),
        "ids did not match:\n{stdout}"
    );
}
