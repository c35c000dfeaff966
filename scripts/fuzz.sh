#!/usr/bin/env bash
# Bounded, deterministic fuzzing (fixed seed, fixed run count per target) of the untrusted
# inputs: ONNX files (`onnx_import`), checkpoint folders (`checkpoint_import`: config.json +
# safetensors, seeded from tests/checkpoints) and tokenizers (`tokenizer_json`, seeded from
# tests/tokenizers). A crash fails the run; its input is kept under fuzz/artifacts/ and
# belongs in compiler/tests/ (errors.rs, hostile_checkpoints.rs, tokenizers.rs) as a
# regression case.
# Usage: scripts/fuzz.sh [ONNX_RUNS [CHECKPOINT_RUNS [TOKENIZER_RUNS]]]
#   (needs the nightly toolchain; installs cargo-fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."
onnx_runs="${1:-20000}"
checkpoint_runs="${2:-$onnx_runs}"
tokenizer_runs="${3:-$onnx_runs}"
if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz: SKIPPED: no nightly toolchain on this machine (cargo-fuzz needs one)"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --quiet
fi

# A little-endian u32, as raw bytes on stdout.
le32() {
  local n=$1
  printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((n & 255)) $((n >> 8 & 255)) $((n >> 16 & 255)) $((n >> 24 & 255)))"
}
# One file of a checkpoint seed: its length, then its bytes (an absent file is empty).
file_part() {
  if [[ -f $1 ]]; then
    le32 "$(stat -c %s "$1")"
    cat "$1"
  else
    le32 0
  fi
}

corpus=target/fuzz-corpus
rm -rf "$corpus"
mkdir -p "$corpus"/{onnx_import,checkpoint_import,tokenizer_json}
for m in tests/models/*/model.onnx; do
  cp "$m" "$corpus/onnx_import/$(echo "$m" | tr '/' '_')"
done
# The input layout is documented in fuzz/fuzz_targets/checkpoint_import.rs: a mode byte
# (bit 0: stateful build), then config.json, model.safetensors, modules.json and
# 1_Pooling/config.json, each length-prefixed.
for dir in tests/checkpoints/*/; do
  [[ -f $dir/config.json ]] || continue
  name=$(basename "$dir")
  for mode in 0 1; do
    {
      printf "\\x0$mode"
      for f in config.json model.safetensors modules.json 1_Pooling/config.json; do
        file_part "$dir/$f"
      done
    } >"$corpus/checkpoint_import/${name}_$mode"
  done
done
for t in tests/tokenizers/*.json; do
  [[ $(basename "$t") == corpus.json || $(basename "$t") == reference.json ]] && continue
  cp "$t" "$corpus/tokenizer_json/$(basename "$t")"
done
{ printf '\xff'; cat tests/tokenizers/llama2c-32k.bin; } >"$corpus/tokenizer_json/llama2c-32k.bin"

run() {
  local target=$1 runs=$2
  shift 2
  cargo +nightly fuzz run --fuzz-dir fuzz "$target" "$corpus/$target" -- \
    -runs="$runs" -seed=1 -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 "$@" 2>&1 | tail -15
  echo "fuzz: $target clean for $runs runs"
}
run onnx_import "$onnx_runs" -max_len=600000
run checkpoint_import "$checkpoint_runs" -max_len=200000
run tokenizer_json "$tokenizer_runs" -max_len=500000
