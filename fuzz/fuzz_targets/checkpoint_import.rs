//! Fuzz target: arbitrary bytes as a checkpoint folder (`config.json` + `model.safetensors`,
//! optionally sentence-transformers' `modules.json` + `1_Pooling/config.json`) through
//! import, optimisation, planning and code emission, in memory. Any panic, hang or unbounded
//! allocation is a bug.
//!
//! Input layout (made by `scripts/fuzz.sh` from `tests/checkpoints/*`): one mode byte (bit 0:
//! a `--max-context 8` stateful build instead of `--dim sequence=4`), then files, each a
//! little-endian `u32` length and that many bytes, in the order above; an empty or missing
//! trailing file is absent from the folder, and a length past the end takes what is left.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slm_aot::frontend::{ImportOptions, Limits};
use std::collections::BTreeMap;

const FILES: [&str; 4] = [
    "config.json",
    "model.safetensors",
    "modules.json",
    "1_Pooling/config.json",
];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let mut files = BTreeMap::new();
    for name in FILES {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            break;
        };
        let len = (u32::from_le_bytes(*len) as usize).min(tail.len());
        let (file, tail) = tail.split_at(len);
        if !file.is_empty() {
            files.insert(name.to_string(), file.to_vec());
        }
        rest = tail;
    }
    let mut options = ImportOptions {
        limits: Limits { max_weight_bytes: 64 << 20, max_arena_bytes: 64 << 20, max_nodes: 10_000 },
        ..Default::default()
    };
    if mode & 1 == 1 {
        options.max_context = Some(8);
    } else {
        options.dims.insert("sequence".into(), 4);
    }
    let _ = slm_aot::pipeline::compile_checkpoint_bytes(&files, &options);
});
