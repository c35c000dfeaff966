//! Hostile safetensors checkpoints: headers that lie about offsets, overlap, claim
//! terabytes or an implausible header size, and truncated files — each a clear error naming
//! the tensor or file, exit 1, never a panic.
mod common;

use std::path::{Path, PathBuf};

fn checkpoint(name: &str, header: &str, data: &[u8]) -> PathBuf {
    let dir = common::scratch("hostile-checkpoints").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(first_config(), dir.join("config.json")).expect("a llama config.json");
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    std::fs::write(dir.join("model.safetensors"), bytes).unwrap();
    dir
}

/// Any committed llama checkpoint config (fixture folder names may change).
fn first_config() -> PathBuf {
    let root = common::repo().join("tests/checkpoints");
    for entry in std::fs::read_dir(&root)
        .expect("tests/checkpoints")
        .flatten()
    {
        let config = entry.path().join("config.json");
        if std::fs::read_to_string(&config).is_ok_and(|t| t.contains("\"llama\"")) {
            return config;
        }
    }
    panic!("no llama checkpoint fixture under {}", root.display());
}

fn expect_error(dir: &Path, expected: &[&str]) {
    common::expect_build_error(dir, &["--dim", "sequence=4"], expected);
}

#[test]
fn lying_offsets_and_terabyte_claims() {
    let d = checkpoint(
        "lie",
        r#"{"model.embed_tokens.weight":{"dtype":"F32","shape":[512,64],"data_offsets":[0,131072]}}"#,
        &[0; 16],
    );
    expect_error(
        &d,
        &[
            "tensor `model.embed_tokens.weight`",
            "outside the 16 data bytes",
        ],
    );
    let d = checkpoint(
        "terabytes",
        r#"{"w":{"dtype":"F32","shape":[1000000000,1000],"data_offsets":[0,4000000000000]}}"#,
        &[0; 16],
    );
    expect_error(&d, &["tensor `w`", "outside the 16 data bytes"]);
}

#[test]
fn overlapping_tensors() {
    let d = checkpoint(
        "overlap",
        r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}"#,
        &[0; 24],
    );
    expect_error(&d, &["tensor `b`", "overlap those of tensor `a`"]);
}

#[test]
fn implausible_header_and_truncated_files() {
    let dir = common::scratch("hostile-checkpoints").join("huge-header");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(first_config(), dir.join("config.json")).unwrap();
    let mut bytes = (1u64 << 60).to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    std::fs::write(dir.join("model.safetensors"), bytes).unwrap();
    expect_error(&dir, &["is not a safetensors file", "implausible"]);
    std::fs::write(dir.join("model.safetensors"), [1u8, 2]).unwrap();
    expect_error(&dir, &["is not a safetensors file"]);
}

/// A copy of the committed BERT (sentence-transformers) checkpoint with `edit` applied to
/// its config and safetensors header (both as JSON).
fn edited_bert(
    name: &str,
    edit: impl FnOnce(&mut serde_json::Value, &mut serde_json::Value),
) -> PathBuf {
    let src = common::repo().join("tests/checkpoints/tiny_bert_st");
    let dir = common::scratch("hostile-checkpoints").join(name);
    std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
    for f in ["modules.json", "1_Pooling/config.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("config.json")).unwrap()).unwrap();
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    edit(&mut config, &mut header);
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let header = header.to_string();
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&bytes[8 + header_len..]);
    std::fs::write(dir.join("model.safetensors"), out).unwrap();
    dir
}

/// `type_vocab_size: 0` with a matching empty token-type table used to index past the
/// table's end while folding the position and token-type embeddings.
#[test]
fn bert_without_token_types() {
    let dir = edited_bert("no-token-types", |config, header| {
        config["type_vocab_size"] = 0.into();
        let (key, entry) = header
            .as_object_mut()
            .unwrap()
            .iter_mut()
            .find(|(k, _)| k.ends_with("token_type_embeddings.weight"))
            .unwrap();
        assert!(key.contains("token_type"));
        let start = entry["data_offsets"][0].clone();
        entry["shape"][0] = 0.into();
        entry["data_offsets"][1] = start;
    });
    common::expect_build_error(
        &dir,
        &["--dim", "sequence=4"],
        &["type_vocab_size", "must be at least 1"],
    );
}
