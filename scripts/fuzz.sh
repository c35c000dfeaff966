#!/usr/bin/env bash
# Bounded, deterministic fuzzing (fixed seed, fixed run count) of the model-file frontends,
# seeded with every fixture model. A crash fails the run; its input is kept under
# fuzz/artifacts/ and belongs in compiler/tests/errors.rs as a regression case.
# Usage: scripts/fuzz.sh [RUNS]   (needs the nightly toolchain; installs cargo-fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-20000}"
if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz: SKIPPED: no nightly toolchain on this machine (cargo-fuzz needs one)"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --quiet
fi
corpus=target/fuzz-corpus/onnx_import
mkdir -p "$corpus"
for m in tests/models/*/model.onnx; do
  cp "$m" "$corpus/$(echo "$m" | tr '/' '_')"
done
cargo +nightly fuzz run --fuzz-dir fuzz onnx_import "$corpus" -- \
  -runs="$runs" -seed=1 -max_len=600000 -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 2>&1 | tail -15
echo "fuzz: onnx_import clean for $runs runs"
