#!/usr/bin/env bash
# Compile paraphrase-MiniLM-L3-v2 (ONNX, from ../shared/models; not vendored: 69 MB) with its
# WordPiece tokenizer baked in, and rank sentences by similarity with the generated crate.
# Exits non-zero if the embeddings differ from ONNX Runtime's reference (cosine < 0.9999).
# Usage: scripts/ranker.sh [--model-dir DIR] [QUERY]   (from any directory)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
model_dir=../shared/models/paraphrase-MiniLM-L3-v2
if [ "${1:-}" = "--model-dir" ]; then
    model_dir=$2
fi

cargo build --release -p slm-aot
./target/release/slm-aot build "$model_dir/paraphrase-MiniLM-L3-v2.onnx" \
    --target x86 --dim batch_size=1 --dim sequence_length=32 \
    --tokenizer "$model_dir/tokenizer.json" -o examples/ranker/gen --name minilm
cargo run --release --manifest-path examples/ranker/Cargo.toml -- "$@"
