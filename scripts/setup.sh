#!/usr/bin/env bash
# Installs what the test suite needs beyond a stock Rust toolchain: the no_std target the
# generated crates are link-checked for, the lint components, QEMU's mps3-an547 board for
# the Cortex-M55 firmware test, the aarch64 cross toolchain + qemu-aarch64 the NEON
# kernels are tested under, and the ONNX backend node tests for the conformance suite (a
# Python venv under target/pyenv with the pinned onnx release, which writes the tests to
# target/conformance/node). Idempotent, fast on re-run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
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

requirements=tests/conformance/requirements.txt
venv=target/pyenv
stamp=$venv/.installed
if ! cmp -s "$requirements" "$stamp" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$stamp"
fi
generated=target/conformance/.generated
if ! cmp -s tests/conformance/generate.py "$generated" 2>/dev/null || ! cmp -s "$requirements" "$generated.req" 2>/dev/null; then
    "$venv/bin/python" tests/conformance/generate.py target/conformance >/dev/null
    cp tests/conformance/generate.py "$generated"
    cp "$requirements" "$generated.req"
fi
