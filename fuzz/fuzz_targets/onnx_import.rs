//! Fuzz target: arbitrary bytes as an ONNX file through decode, import, optimisation,
//! planning and code emission. Any panic, hang or unbounded allocation is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slm_aot::frontend::{ImportOptions, Limits};

fuzz_target!(|data: &[u8]| {
    let options = ImportOptions {
        dims: [("batch", 1), ("sequence", 4), ("N", 2)].into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        limits: Limits { max_weight_bytes: 64 << 20, max_arena_bytes: 64 << 20, max_nodes: 10_000 },
        ..Default::default()
    };
    let _ = slm_aot::pipeline::compile_bytes(data, &options);
});
