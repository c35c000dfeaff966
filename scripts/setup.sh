#!/usr/bin/env bash
# Installs what the test suite needs beyond a stock Rust toolchain: the no_std target the
# generated crates are link-checked for, the lint components, QEMU's mps3-an547 board for
# the Cortex-M55 firmware test, and the aarch64 cross toolchain + qemu-aarch64 the NEON
# kernels are tested under. Idempotent.
set -euo pipefail
rustup target add thumbv8m.main-none-eabihf aarch64-unknown-linux-gnu >/dev/null
rustup component add clippy rustfmt >/dev/null 2>&1 || true

# Cortex-M55 firmware test (compiler/tests/firmware.rs): QEMU's mps3-an547 board.
if ! command -v qemu-system-arm >/dev/null 2>&1; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        qemu-system-arm >/dev/null
fi

# NEON kernel tests (scripts/test-aarch64.sh): cross linker, aarch64 libc, qemu-aarch64.
if ! command -v qemu-aarch64 >/dev/null 2>&1 || ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 \
    || [ ! -d /usr/aarch64-linux-gnu/lib ]; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross >/dev/null
fi
