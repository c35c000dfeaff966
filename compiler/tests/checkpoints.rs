//! Checkpoints as stateful decoders: the tiny random-weight Llama (GQA, llama3 rope
//! scaling, tied) and GPT-2 in `tests/checkpoints`, from safetensors and from their ONNX
//! decoder-with-past exports, greedy-decode with the KV cache as model state and reproduce
//! transformers' `generate` ids (the whole-sequence logits are
//! checked by `models.rs`, which picks these folders up too). Unknown architectures and
//! config fields that change the math are clear errors.
mod common;

use std::path::Path;
use std::process::Command;

fn ids(path: &Path) -> Vec<String> {
    let t = slm_aot::npy::read(path).expect("npy");
    t.data
        .to_f64_vec()
        .iter()
        .map(|&v| (v as i64).to_string())
        .collect()
}

#[test]
fn checkpoint_decoders_match_transformers_greedy_generation() {
    // Each checkpoint twice: straight from safetensors, and as the ONNX decoder-with-past
    // export of the same weights (growing cache) that `make_checkpoints.py` also writes.
    let routes = ["tiny_llama_gqa", "tiny_gpt2"]
        .into_iter()
        .flat_map(|name| {
            let dir = common::repo().join("tests/checkpoints").join(name);
            [
                (name, "safetensors", dir.clone()),
                (name, "onnx", dir.join("decoder_with_past.onnx")),
            ]
        });
    for (name, route, model) in routes {
        let dir = common::repo().join("tests/checkpoints").join(name);
        let prompt = ids(&dir.join("reference/prompt_ids.npy")).join(" ");
        let want = ids(&dir.join("reference/greedy_ids.npy"));
        let out = Command::new(env!("CARGO_BIN_EXE_slm-aot"))
            .arg("generate")
            .arg(&model)
            .args(["--max-context", "32", "--prompt-ids", &prompt, "--greedy"])
            .args(["--tokens", &want.len().to_string(), "--print-ids"])
            .arg("--work-dir")
            .arg(common::scratch(&format!(
                "generate-checkpoint/{name}-{route}"
            )))
            .output()
            .expect("run slm-aot");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name} ({route}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: Vec<String> = stdout.split_whitespace().map(str::to_string).collect();
        assert_eq!(
            got, want,
            "{name} ({route}): greedy ids differ from transformers"
        );
    }
}

/// A copy of a fixture checkpoint with `config.json` edited by `edit`.
fn edited_checkpoint(
    name: &str,
    tag: &str,
    edit: impl Fn(&mut serde_json::Value),
) -> std::path::PathBuf {
    let src = common::repo().join("tests/checkpoints").join(name);
    let dst = common::scratch(&format!("edited-checkpoints/{tag}"));
    std::fs::copy(src.join("model.safetensors"), dst.join("model.safetensors")).expect("copy");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).expect("config"))
            .expect("json");
    edit(&mut config);
    std::fs::write(dst.join("config.json"), config.to_string()).expect("write");
    dst
}

fn import_error(dir: &Path) -> String {
    let options = slm_aot::frontend::ImportOptions {
        dims: [("sequence".to_string(), 4)].into_iter().collect(),
        ..Default::default()
    };
    match slm_aot::pipeline::import(dir, &options) {
        Ok(_) => panic!("{} imported", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unknown_architectures_and_math_changing_fields_are_errors() {
    let dir = edited_checkpoint("tiny_llama_gqa", "mamba", |c| {
        c["model_type"] = "mamba".into()
    });
    assert!(import_error(&dir).contains("model_type `mamba` is not supported"));
    let dir = edited_checkpoint("tiny_llama_gqa", "yarn", |c| {
        c["rope_parameters"]["rope_type"] = "yarn".into()
    });
    let e = import_error(&dir);
    assert!(e.contains("rope type `yarn` is not supported"), "{e}");
    let dir = edited_checkpoint("tiny_llama_gqa", "act", |c| c["hidden_act"] = "gelu".into());
    let e = import_error(&dir);
    assert!(e.contains("field `hidden_act`"), "{e}");
    let dir = edited_checkpoint("tiny_gpt2", "scale", |c| {
        c["scale_attn_by_inverse_layer_idx"] = true.into()
    });
    let e = import_error(&dir);
    assert!(e.contains("scale_attn_by_inverse_layer_idx"), "{e}");
    let dir = edited_checkpoint("tiny_llama_gqa", "heads", |c| c["hidden_size"] = 48.into());
    let e = import_error(&dir);
    assert!(
        e.contains("model.embed_tokens.weight") && e.contains("shape"),
        "{e}"
    );
}
