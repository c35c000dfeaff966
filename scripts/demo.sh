#!/usr/bin/env bash
# Build the slm-aot compiler, compile the vendored stories260K model (ONNX, one decode step
# with a 256-slot KV cache) into a stateful no_std Rust crate (the cache lives in the model and
# is updated in place), and run greedy story generation with it.
# The run exits non-zero if the generated ids differ from models/stories260K/ref/greedy.json.
# Usage: scripts/demo.sh [--tokens N]   (from any directory)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo build --release -p slm-aot
./target/release/slm-aot build models/stories260K/stories260K_step_kv256.onnx \
    --target x86 --max-context 256 -o examples/stories/gen --name stories260k
if [ "$#" -eq 0 ]; then
    set -- --tokens 200
fi
cargo run --release --manifest-path examples/stories/Cargo.toml -- "$@"
