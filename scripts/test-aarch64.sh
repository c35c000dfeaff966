#!/usr/bin/env bash
# runtime-core's kernel tests (the NEON GEMM, row kernels (softmax, norms, rotary, GELU/SiLU maps),
# the quantized NEON / dotprod kernels, int8 attention's NEON product and the half-weight
# kernels — fcvtl; fp16 arithmetic on the Jetson build — against the portable reference, and the rest)
# cross-built for aarch64 and run under qemu-aarch64: once as the Raspberry Pi 4 build
# (`-C target-cpu=cortex-a72` on `-cpu cortex-a72`, so an Armv8.2 instruction that leaked in
# dies with SIGILL; it runs the widening-multiply int8 kernel) and once as the Jetson Orin build
# (`cortex-a78ae`: fp16 + dotprod, so the `sdot` int8 kernel, on
# `-cpu max`, QEMU having no A78 model). Needs what scripts/setup.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
run() {
    local cpu=$1 qemu_cpu=$2
    echo "runtime-core tests for aarch64 -C target-cpu=$cpu under qemu-aarch64 -cpu $qemu_cpu"
    RUSTFLAGS="-C target-cpu=$cpu" \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -cpu $qemu_cpu -L /usr/aarch64-linux-gnu" \
        cargo test --release -p runtime-core --target aarch64-unknown-linux-gnu \
        --target-dir "target/aarch64-$cpu"
}
run cortex-a72 cortex-a72
run cortex-a78ae max
