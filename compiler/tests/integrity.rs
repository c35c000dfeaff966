//! Integrity and limits, each shown both ways: the manifest's digests, `build --check`,
//! `--verify-signature`, the weight blob's compile-time check, the generated crate's own
//! golden test, and the resource limits.
mod common;

use ed25519_dalek::{Signer, SigningKey};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn slm_aot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slm-aot"))
        .args(args)
        .current_dir(common::repo())
        .output()
        .expect("run slm-aot")
}

fn tiny_mlp() -> String {
    common::repo()
        .join("tests/models/tiny_mlp/model.onnx")
        .display()
        .to_string()
}

fn build_tiny(out: &Path, extra: &[&str]) -> Output {
    let out = out.display().to_string();
    let model = tiny_mlp();
    let mut args = vec![
        "build",
        model.as_str(),
        "--dim",
        "batch=2",
        "-o",
        out.as_str(),
    ];
    args.extend_from_slice(extra);
    slm_aot(&args)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn cargo_test(dir: &Path) -> Output {
    Command::new(env!("CARGO"))
        .args(["test", "--quiet", "--test", "golden"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", common::scratch("cargo-target-golden"))
        .output()
        .expect("run cargo test")
}

fn fresh(name: &str) -> PathBuf {
    let dir = common::scratch("integrity").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn manifest_records_independently_computed_digests() {
    let out = fresh("manifest");
    assert!(build_tiny(&out, &[]).status.success());
    let lib = std::fs::read_to_string(out.join("src/lib.rs")).unwrap();
    let sha256sum = |p: &Path| {
        let o = Command::new("sha256sum")
            .arg(p)
            .output()
            .expect("sha256sum");
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string()
    };
    let model_digest = sha256sum(Path::new(&tiny_mlp()));
    let weights_digest = sha256sum(&out.join("weights.bin"));
    assert_eq!(model_digest.len(), 64);
    assert!(
        lib.contains(&format!("\"{model_digest}\"")),
        "model digest missing from the manifest"
    );
    assert!(
        lib.contains(&format!("WEIGHTS_SHA256: &str = \"{weights_digest}\"")),
        "weights digest missing"
    );
    assert!(lib.contains("FLAGS: &str = \"--target x86 --dim batch=2\""));
}

#[test]
fn check_passes_on_a_fresh_build_and_fails_on_an_edited_one() {
    let out = fresh("check");
    assert!(build_tiny(&out, &[]).status.success());
    let ok = build_tiny(&out, &["--check"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let lib = out.join("src/lib.rs");
    let text = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(
        &lib,
        text.replace("ARENA_BYTES: usize = ", "ARENA_BYTES: usize = 1 + "),
    )
    .unwrap();
    let stale = build_tiny(&out, &["--check"]);
    assert_eq!(stale.status.code(), Some(1));
    assert!(stderr(&stale).contains("src/lib.rs"), "{}", stderr(&stale));
}

#[test]
fn signatures_are_verified_both_ways() {
    let dir = fresh("signature");
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("model.onnx");
    std::fs::copy(tiny_mlp(), &model).unwrap();
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(dir.join("model.onnx.sig"), key.sign(&bytes).to_bytes()).unwrap();
    let hex: String = key
        .verifying_key()
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(dir.join("key.pub"), hex).unwrap();
    let (m, k, out) = (
        model.display().to_string(),
        dir.join("key.pub").display().to_string(),
        dir.join("gen").display().to_string(),
    );
    let good = slm_aot(&[
        "build",
        &m,
        "--dim",
        "batch=2",
        "-o",
        &out,
        "--verify-signature",
        &k,
    ]);
    assert!(good.status.success(), "{}", stderr(&good));
    // Another key's signature over the same bytes is refused.
    let other = SigningKey::from_bytes(&[9u8; 32]);
    std::fs::write(dir.join("model.onnx.sig"), other.sign(&bytes).to_bytes()).unwrap();
    let bad = slm_aot(&[
        "build",
        &m,
        "--dim",
        "batch=2",
        "-o",
        &out,
        "--verify-signature",
        &k,
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("does not match"), "{}", stderr(&bad));
    // The right signature over a tampered model is refused too.
    std::fs::write(dir.join("model.onnx.sig"), key.sign(&bytes).to_bytes()).unwrap();
    let mut tampered = bytes.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    std::fs::write(&model, tampered).unwrap();
    let bad = slm_aot(&[
        "build",
        &m,
        "--dim",
        "batch=2",
        "-o",
        &out,
        "--verify-signature",
        &k,
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("does not match"), "{}", stderr(&bad));
}

#[test]
fn golden_test_passes_and_catches_a_flipped_weight_byte() {
    let out = fresh("golden");
    let golden = common::repo()
        .join("tests/models/tiny_mlp")
        .display()
        .to_string();
    let built = build_tiny(&out, &["--golden", &golden]);
    assert!(built.status.success(), "{}", stderr(&built));
    let pass = cargo_test(&out);
    assert!(
        pass.status.success(),
        "golden test failed on a fresh build:\n{}",
        stderr(&pass)
    );

    // Flip one weight byte (the exponent byte of the second f32, so the value really
    // changes): the build script refuses the crate.
    let weights = out.join("weights.bin");
    let mut bytes = std::fs::read(&weights).unwrap();
    bytes[7] ^= 0x40;
    std::fs::write(&weights, &bytes).unwrap();
    let refused = cargo_test(&out);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("the weights changed after generation"),
        "{}",
        stderr(&refused)
    );

    // Even with the recorded digest forged to match, the golden vectors catch the change.
    let build_rs = out.join("build.rs");
    let text = std::fs::read_to_string(&build_rs).unwrap();
    let start = text.find("WEIGHTS_SHA256: &str = \"").unwrap() + "WEIGHTS_SHA256: &str = \"".len();
    let forged = format!(
        "{}{}{}",
        &text[..start],
        slm_aot::manifest::hex_digest(&bytes),
        &text[start + 64..]
    );
    std::fs::write(&build_rs, forged).unwrap();
    let caught = cargo_test(&out);
    assert!(
        !caught.status.success(),
        "the golden test passed with a flipped weight"
    );
    let all = format!(
        "{}{}",
        stderr(&caught),
        String::from_utf8_lossy(&caught.stdout)
    );
    assert!(all.contains("golden"), "{all}");
}

#[test]
fn limits_refuse_oversized_models_with_the_flag_to_raise() {
    let out = fresh("limits");
    let nodes = build_tiny(&out, &["--max-nodes", "3"]);
    assert_eq!(nodes.status.code(), Some(1));
    assert!(
        stderr(&nodes).contains("7 nodes") && stderr(&nodes).contains("--max-nodes"),
        "{}",
        stderr(&nodes)
    );
    let weights = build_tiny(&out, &["--max-weight-bytes", "100"]);
    assert!(
        stderr(&weights).contains("--max-weight-bytes"),
        "{}",
        stderr(&weights)
    );
    let arena = build_tiny(&out, &["--max-arena-bytes", "64"]);
    assert!(
        stderr(&arena).contains("--max-arena-bytes"),
        "{}",
        stderr(&arena)
    );
    assert!(build_tiny(&out, &["--max-nodes", "7"]).status.success());
}
