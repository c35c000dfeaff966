#!/usr/bin/env bash
# Installs what the test suite needs beyond a stock Rust toolchain: the no_std target the
# generated crates are link-checked for, and the lint components. Idempotent.
set -euo pipefail
rustup target add thumbv8m.main-none-eabihf >/dev/null
rustup component add clippy rustfmt >/dev/null 2>&1 || true

# Cortex-M55 firmware test (compiler/tests/firmware.rs): QEMU's mps3-an547 board.
if ! command -v qemu-system-arm >/dev/null 2>&1; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        qemu-system-arm >/dev/null
fi
