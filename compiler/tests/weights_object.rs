//! Weight blobs linked as a static library (`--weights-embed object`): crates built that way
//! match ONNX Runtime on x86, aarch64 (under QEMU) and as Cortex-M55 firmware, generation stays deterministic, and a
//! crate with a blob of over 64 MB compiles with rustc's peak RSS measured and reported.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// `slm-aot verify` of stories260K's decode step with the blob linked as a library.
fn verify_object(target: &str, runs_on: &str) {
    let repo = common::repo();
    let dir = repo.join("tests/targets/stories260k_step");
    let work = common::scratch(&format!("weights-object/{target}"));
    let out = Command::new(env!("CARGO_BIN_EXE_slm-aot"))
        .arg("verify")
        .arg(repo.join("models/stories260K/stories260K_step_kv256.onnx"))
        .args([
            "--max-context",
            "256",
            "--target",
            target,
            "--quantize",
            "none",
        ])
        .args(["--weights-embed", "object", "--rtol", "0", "--atol", "1e-4"])
        .arg("--inputs")
        .arg(dir.join("inputs"))
        .arg("--reference")
        .arg(dir.join("reference"))
        .arg("--work-dir")
        .arg(&work)
        .arg("--cargo-target-dir")
        .arg(common::scratch("targets/cargo-target"))
        .env_remove("RUSTFLAGS")
        .output()
        .expect("run slm-aot verify");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{target}:\n{stdout}");
    assert!(out.status.success(), "{target}: {stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("target `{target}`, run {runs_on}")),
        "{stdout}"
    );
    let compared: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("vs reference file"))
        .collect();
    assert_eq!(compared.len(), 1, "{stdout}");
    assert!(compared[0].trim_end().ends_with(" ok"), "{stdout}");
    let lib = std::fs::read_to_string(work.join("gen/src/lib.rs")).expect("generated lib.rs");
    assert!(lib.contains("rt::weights_in_object!(") && !lib.contains("include_bytes!"));
}

#[test]
fn object_weights_match_onnx_runtime_on_x86() {
    verify_object("x86", "natively on this machine");
}

#[test]
fn object_weights_match_onnx_runtime_as_m55_firmware() {
    verify_object(
        "cortex-m55",
        "as firmware on `qemu-system-arm -machine mps3-an547`",
    );
}

#[test]
fn object_weights_match_onnx_runtime_on_aarch64_under_qemu() {
    verify_object("rpi4", "under `qemu-aarch64 -cpu cortex-a72`");
}

/// `slm-aot build MODEL -o OUT ARGS..`.
fn build(model: &Path, out: &Path, args: &[&str]) {
    let out_s = out.as_os_str();
    let mut all = vec![
        std::ffi::OsStr::new("build"),
        model.as_os_str(),
        "-o".as_ref(),
        out_s,
    ];
    all.extend(args.iter().map(std::ffi::OsStr::new));
    common::run_ok(&all);
}

/// The same flags give the same bytes; `auto` keeps small blobs on `include_bytes!`, and the
/// embedding is recorded in the manifest's flags.
#[test]
fn generation_is_deterministic_and_auto_keeps_small_blobs_in_bytes() {
    let model = common::repo().join("models/stories260K/stories260K_step_kv256.onnx");
    let dir = common::scratch("weights-object/determinism");
    let read = |d: &Path, f: &str| std::fs::read(d.join(f)).expect(f);
    let (a, b, auto) = (dir.join("a"), dir.join("b"), dir.join("auto"));
    for d in [&a, &b] {
        build(
            &model,
            d,
            &["--max-context", "256", "--weights-embed", "object"],
        );
    }
    build(&model, &auto, &["--max-context", "256"]);
    for f in ["src/lib.rs", "build.rs", "weights.bin", "Cargo.toml"] {
        assert_eq!(
            read(&a, f),
            read(&b, f),
            "{f} differs between two generations"
        );
    }
    let lib = String::from_utf8(read(&a, "src/lib.rs")).unwrap();
    assert!(lib.contains("--weights-embed object"));
    let build_rs = String::from_utf8(read(&a, "build.rs")).unwrap();
    assert!(build_rs.contains("Some((\"slm_weights_stories260k_step_kv256_"));
    let auto_lib = String::from_utf8(read(&auto, "src/lib.rs")).unwrap();
    assert!(auto_lib.contains("include_bytes!(\"../weights.bin\")"));
    assert!(
        String::from_utf8(read(&auto, "build.rs"))
            .unwrap()
            .contains("= None;")
    );
}

/// A deterministic xorshift stream of floats in `[-scale, scale)`.
fn random_f32(state: &mut u64, n: usize, scale: f32, out: &mut Vec<u8>) {
    for _ in 0..n {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        let unit = (*state >> 40) as f32 / (1u64 << 24) as f32;
        out.extend_from_slice(&((unit * 2.0 - 1.0) * scale).to_le_bytes());
    }
}

/// A random-weight Llama checkpoint (hidden 512, 4 layers, 8 heads / 4 KV heads, FFN 1536,
/// vocab 32000, tied head): 29 M parameters, 116 MB of f32.
fn write_llama(dir: &Path) {
    let (hidden, ffn, layers, heads, kv, vocab) = (512usize, 1536usize, 4, 8, 4, 32000usize);
    let head_dim = hidden / heads;
    let mut tensors: Vec<(String, Vec<usize>)> =
        vec![("model.embed_tokens.weight".into(), vec![vocab, hidden])];
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        for (name, shape) in [
            ("self_attn.q_proj", vec![hidden, hidden]),
            ("self_attn.k_proj", vec![kv * head_dim, hidden]),
            ("self_attn.v_proj", vec![kv * head_dim, hidden]),
            ("self_attn.o_proj", vec![hidden, hidden]),
            ("mlp.gate_proj", vec![ffn, hidden]),
            ("mlp.up_proj", vec![ffn, hidden]),
            ("mlp.down_proj", vec![hidden, ffn]),
            ("input_layernorm", vec![hidden]),
            ("post_attention_layernorm", vec![hidden]),
        ] {
            tensors.push((format!("{p}.{name}.weight"), shape));
        }
    }
    tensors.push(("model.norm.weight".into(), vec![hidden]));
    let (mut header, mut data, mut state) =
        (serde_json::Map::new(), Vec::new(), 0x9e37_79b9_7f4a_7c15u64);
    for (name, shape) in &tensors {
        let start = data.len();
        let n: usize = shape.iter().product();
        if shape.len() == 1 {
            for _ in 0..n {
                data.extend_from_slice(&1.0f32.to_le_bytes());
            }
        } else {
            random_f32(&mut state, n, 1.0 / (shape[1] as f32).sqrt(), &mut data);
        }
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let header = serde_json::Value::Object(header).to_string().into_bytes();
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(&header);
    file.extend_from_slice(&data);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("model.safetensors"), file).unwrap();
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
        "hidden_size": hidden, "intermediate_size": ffn, "num_hidden_layers": layers,
        "num_attention_heads": heads, "num_key_value_heads": kv, "head_dim": head_dim,
        "vocab_size": vocab, "max_position_embeddings": 2048, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "tie_word_embeddings": true, "attention_bias": false,
        "mlp_bias": false, "bos_token_id": 1, "eos_token_id": 2,
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
}

/// Peak resident KiB (`VmHWM`) of every running rustc compiling `crate_name`, by pid.
fn sample_rustc(crate_name: &str, peaks: &mut std::collections::BTreeMap<u32, u64>) {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for p in procs.flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(p.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmd.split(|&b| b == 0).collect();
        let is_rustc = args.first().is_some_and(|a| a.ends_with(b"rustc"));
        let names_crate = args
            .windows(2)
            .any(|w| w[0] == b"--crate-name" && w[1] == crate_name.as_bytes());
        if !(is_rustc && names_crate) {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(p.path().join("status")) else {
            continue;
        };
        let hwm = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
        if let Some(kib) = hwm {
            let e = peaks.entry(pid).or_default();
            *e = (*e).max(kib);
        }
    }
}

/// A 29 M-parameter Llama (a blob of over 64 MB) builds as a library-linked crate; rustc's
/// peak RSS while compiling it (sampled from `/proc` every 20 ms, so a lower bound of the
/// true peak) is printed next to the blob size and stays under a generous 3× the blob plus
/// 1 GiB (`include_bytes!` needs ≈ 15× the blob).
#[test]
fn a_large_blob_compiles_in_memory_near_its_size() {
    let dir = common::scratch("weights-object/large");
    let checkpoint = dir.join("llama29m");
    if !checkpoint.join("config.json").exists() {
        write_llama(&checkpoint);
    }
    let gen_dir = dir.join("gen");
    build(
        &checkpoint,
        &gen_dir,
        &[
            "--max-context",
            "64",
            "--name",
            "llama29m",
            "--weights-embed",
            "object",
        ],
    );
    let blob = std::fs::metadata(gen_dir.join("weights.bin"))
        .unwrap()
        .len();
    assert!(blob >= 64 << 20, "blob of {blob} bytes");
    let target_dir = dir.join("cargo-target");
    // A fresh compile of the crate itself every run (runtime-core stays cached).
    let clean = Command::new("cargo")
        .args(["clean", "--release", "-p", "llama29m", "--manifest-path"])
        .arg(gen_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("RUSTFLAGS")
        .status()
        .expect("cargo clean");
    assert!(clean.success());
    let mut child = Command::new("cargo")
        .args(["build", "--release", "--quiet", "--lib", "--manifest-path"])
        .arg(gen_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("RUSTFLAGS")
        .spawn()
        .expect("cargo build");
    let mut peaks = std::collections::BTreeMap::new();
    let status = loop {
        sample_rustc("llama29m", &mut peaks);
        if let Some(status) = child.try_wait().expect("wait for cargo") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        status.success(),
        "cargo build of the generated crate failed"
    );
    let rustc_kib = peaks
        .values()
        .copied()
        .max()
        .expect("rustc compiling llama29m was sampled");
    let rustc = rustc_kib * 1024;
    println!(
        "blob {:.1} MB, rustc peak RSS (sampled) {:.1} MB = {:.2}x the blob",
        blob as f64 / 1e6,
        rustc as f64 / 1e6,
        rustc as f64 / blob as f64
    );
    assert!(
        rustc < 3 * blob + (1 << 30),
        "rustc peak RSS {rustc} B for a blob of {blob} B"
    );
    let archive: Vec<PathBuf> = std::fs::read_dir(target_dir.join("release/build"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("out"))
        .filter_map(|out| std::fs::read_dir(out).ok())
        .flat_map(|d| d.flatten().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "a"))
        .collect();
    assert!(
        archive
            .iter()
            .any(|a| std::fs::metadata(a).is_ok_and(|m| m.len() > blob)),
        "build.rs wrote the blob's archive: {archive:?}"
    );
}
