//! The no-allocation proof: every fixture's generated crate is linked into one
//! `#![no_std] #![no_main]` Cortex-M55 binary (thumbv8m.main-none-eabihf) that has no global
//! allocator, so any use of `alloc` would fail to link.
mod common;

use slm_aot::codegen::Io;
use slm_aot::pipeline;
use slm_aot::target::TargetProfile;
use std::fmt::Write as _;
use std::process::Command;

const TARGET: &str = "thumbv8m.main-none-eabihf";

#[test]
fn generated_crates_link_into_a_no_std_binary_without_an_allocator() {
    let root = common::scratch("nostd");
    let mut deps = String::new();
    let mut calls = String::new();
    // Every fixture, and its quantized builds for the Cortex-M55 profile.
    let mut variants = Vec::new();
    for fx in common::fixtures() {
        variants.push((fx.name.clone(), fx.build_options()));
        for mode in fx.case.quantized.keys() {
            let mut options = fx.quantized_build_options(mode);
            options.target = TargetProfile::load("cortex-m55").expect("cortex-m55 profile");
            variants.push((format!("{}_{}", fx.name, mode.replace('-', "_")), options));
        }
    }
    for (name, options) in variants {
        let gen_dir = root.join("gen").join(&name);
        let build = pipeline::build(&options, &gen_dir).expect("build");
        build.generated.write(&gen_dir).expect("write");
        let krate = name.clone();
        writeln!(
            deps,
            "{} = {{ package = \"{}\", path = \"../gen/{}\" }}",
            krate, build.generated.name, name
        )
        .unwrap();
        let io = Io::new(&build.graph);
        let mut body = String::new();
        let mut in_fields = String::new();
        let mut out_fields = String::new();
        for (k, &v) in build.graph.inputs.iter().enumerate() {
            let f = &io.input_fields[k];
            let t = build.graph.ty(v).dtype.rust_api();
            let default = if t == "bool" { "false" } else { "0 as _" };
            writeln!(
                body,
                "let {f}: [{t}; {krate}::{}_LEN] = [{default}; {krate}::{}_LEN];",
                f.to_uppercase(),
                f.to_uppercase()
            )
            .unwrap();
            write!(in_fields, "{f}: &{f}, ").unwrap();
        }
        for (k, &v) in build.graph.outputs.iter().enumerate() {
            let f = &io.output_fields[k];
            let t = build.graph.ty(v).dtype.rust_api();
            let default = if t == "bool" { "false" } else { "0 as _" };
            writeln!(
                body,
                "let mut {f}: [{t}; {krate}::{}_LEN] = [{default}; {krate}::{}_LEN];",
                f.to_uppercase(),
                f.to_uppercase()
            )
            .unwrap();
            write!(out_fields, "{f}: &mut {f}, ").unwrap();
        }
        // A baked tokenizer is exercised too.
        let tokenizer = if build
            .generated
            .files
            .contains_key(std::path::Path::new("tokenizer.bin"))
        {
            format!(
                "        if let Ok(t) = {krate}::tokenizer() {{\n            let mut ids = [0u32; 32];\n            let n = t.encode(\"Once upon a time\", &mut ids).unwrap_or(0);\n            let mut text = [0u8; 64];\n            core::hint::black_box(t.decode_into(&ids[..n], &mut text));\n        }}\n"
            )
        } else {
            String::new()
        };
        // A stateful decoder also exercises its generation API.
        let stateful = if build.graph.states.is_empty() {
            String::new()
        } else {
            format!(
                "        let _ = core::hint::black_box(model.prefill(&[1, 2]).map(|l| l[0]));\n        let _ = core::hint::black_box(model.step(0).map(|l| l[0]));\n        model.reset();\n        let mut sampler = {krate}::Sampler::new(runtime_core::sampling::SamplingParams::GREEDY, 1);\n        let mut logits = [0f32; {krate}::VOCAB];\n        core::hint::black_box(sampler.sample(&mut logits, &[1]));\n"
            )
        };
        writeln!(
            calls,
            "    {{\n{body}        let mut model = {krate}::Model::new();\n        let result = model.run(&{krate}::Inputs {{ {in_fields} }}, &mut {krate}::Outputs {{ {out_fields} }});\n        core::hint::black_box(&result);\n{stateful}{tokenizer}    }}"
        )
        .unwrap();
    }
    writeln!(
        deps,
        "runtime-core = {{ path = {:?} }}",
        common::repo().join("runtime-core")
    )
    .unwrap();
    let link = root.join("link");
    std::fs::create_dir_all(link.join("src")).unwrap();
    std::fs::create_dir_all(link.join(".cargo")).unwrap();
    std::fs::write(
        link.join("Cargo.toml"),
        format!(
            "[package]\nname = \"nostd-link-check\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n[[bin]]\nname = \"nostd-link-check\"\ntest = false\nbench = false\n\n[dependencies]\ncortex-m-rt = \"0.7\"\n{deps}\n[profile.release]\nopt-level = \"s\"\n\n[workspace]\n"
        ),
    )
    .unwrap();
    std::fs::write(
        link.join(".cargo/config.toml"),
        format!("[target.{TARGET}]\nrustflags = [\"-C\", \"link-arg=-Tlink.x\", \"-C\", \"target-cpu=cortex-m55\"]\n"),
    )
    .unwrap();
    // A link-check memory map, not a board layout: room for every fixture's weights.
    std::fs::write(
        link.join("memory.x"),
        "MEMORY {\n  FLASH : ORIGIN = 0x00000000, LENGTH = 64M\n  RAM : ORIGIN = 0x20000000, LENGTH = 4M\n}\n",
    )
    .unwrap();
    std::fs::write(
        link.join("build.rs"),
        "//! Puts memory.x on the linker search path.\nfn main() {\n    let out = std::path::PathBuf::from(std::env::var(\"OUT_DIR\").unwrap());\n    std::fs::copy(\"memory.x\", out.join(\"memory.x\")).unwrap();\n    println!(\"cargo:rustc-link-search={}\", out.display());\n    println!(\"cargo:rerun-if-changed=memory.x\");\n}\n",
    )
    .unwrap();
    std::fs::write(
        link.join("src/main.rs"),
        format!(
            "//! Links every generated model into a no_std binary with no global allocator.\n#![no_std]\n#![no_main]\n\n#[panic_handler]\nfn panic(_: &core::panic::PanicInfo) -> ! {{\n    loop {{}}\n}}\n\n#[cortex_m_rt::entry]\nfn main() -> ! {{\n{calls}    loop {{}}\n}}\n"
        ),
    )
    .unwrap();
    let output = Command::new(env!("CARGO"))
        .args(["build", "--release", "--target", TARGET])
        .current_dir(&link)
        .env("CARGO_TARGET_DIR", common::scratch("cargo-target-thumb"))
        .output()
        .expect("run cargo");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("target may not be installed"),
        "the {TARGET} Rust target is missing: run `rustup target add {TARGET}` (scripts/setup.sh does)"
    );
    assert!(output.status.success(), "no_std link failed:\n{stderr}");
    let binary = common::scratch("cargo-target-thumb")
        .join(TARGET)
        .join("release")
        .join("nostd-link-check");
    assert!(binary.is_file(), "no binary at {}", binary.display());
    // The footprint reader sees the weights (in .rodata here) in the image.
    let footprint = slm_aot::footprint::read(&binary).expect("read ELF");
    let rodata = footprint
        .sections
        .iter()
        .find(|s| s.name == ".rodata")
        .map_or(0, |s| s.size);
    assert!(
        rodata > 100_000,
        "expected the fixtures' weights in .rodata, got {rodata} bytes"
    );
}
