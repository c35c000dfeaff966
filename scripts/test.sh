#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests (every model fixture
# compiled, built, run and compared with ONNX Runtime; the no_std link proof; the demo).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace
