#!/usr/bin/env bash
# Per-target footprint of the shipped models, read from the built artefacts: for every target
# (x86, rpi4, jetson, cortex-m55) and model (stories260K as a 256-slot stateful decoder, the
# tiny_bert_ts fixture), `slm-aot verify --target` builds the generated crate into its runner
# (a std binary, statically linked for aarch64; bare-metal firmware for the Cortex-M55) and
# checks it against ONNX Runtime on the target's emulator, then `slm-aot size` reads the
# runner's ELF sections. Prints a Markdown table (the README's). Reuses the build folders of
# compiler/tests/targets.rs. Needs what scripts/setup.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet -p slm-aot
slm=target/debug/slm-aot
root=target/slm-aot-tests/targets
cargo_target=$root/cargo-target

section() { awk -v s="$2" '$1 == s { print $3 }' <<<"$1"; }
total() { awk -v k="$2" 'index($0, k) == 1 { print $(NF-1) }' <<<"$1"; }
const() { sed -n "s/^pub const $2: usize = \([0-9]*\);/\1/p" "$1/gen/src/lib.rs"; }

echo "| target | model | code (\`.text\`) | weights (section) | flash (image) | RAM statics (\`.data\`+\`.bss\`) | arena + state (\`ARENA_BYTES\` + \`STATE_BYTES\`) |"
echo "|---|---|---|---|---|---|---|"
for target in x86 rpi4 jetson cortex-m55; do
    for model in stories260k_step tiny_bert_ts; do
        work=$root/$target/$model
        case $model in
            stories260k_step)
                args=(models/stories260K/stories260K_step_kv256.onnx --max-context 256)
                refs=tests/targets/stories260k_step name=stories260k-step-kv256 ;;
            tiny_bert_ts)
                args=(tests/models/tiny_bert_ts/model.onnx --dim batch=1 --dim sequence=16)
                refs=tests/models/tiny_bert_ts name=model ;;
        esac
        "$slm" verify "${args[@]}" --target "$target" --quantize none --atol 1e-4 --rtol 0 \
            --inputs "$refs/inputs" --reference "$refs/reference" \
            --work-dir "$work" --cargo-target-dir "$cargo_target" >/dev/null
        case $target in
            x86) elf=$cargo_target/release/$name-runner ;;
            cortex-m55) elf=$cargo_target/$target/thumbv8m.main-none-eabihf/release/$name-firmware-runner ;;
            *) elf=$cargo_target/$target/aarch64-unknown-linux-gnu/release/$name-runner ;;
        esac
        size=$("$slm" size "$elf")
        weights=$(const "$work" WEIGHT_BYTES)
        if [ "$target" = cortex-m55 ]; then where=".weights, QSPI"; else where="in .rodata"; fi
        arena=$(const "$work" ARENA_BYTES)
        state=$(const "$work" STATE_BYTES)
        ram_note=""
        if [ "$target" != cortex-m55 ]; then ram_note=" (heap)"; fi
        printf '| %s | %s | %s | %s (%s) | %s | %s | %s + %s%s |\n' "$target" "$model" \
            "$(section "$size" .text)" "$weights" "$where" "$(total "$size" "flash (image)")" \
            "$(total "$size" "RAM (data + bss)")" "$arena" "$state" "$ram_note"
    done
done
