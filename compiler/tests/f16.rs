//! `--quantize f16` beyond the fixture cases of `quantized.rs`: builds are deterministic and
//! halve the `Linear` weights, `--keep-float` is honoured and listed in the report, and the
//! one-row (decode step) path of the generated crate runs on each ISA variant's profile —
//! AVX-512 on this machine, the Jetson half-arithmetic GEMV and the rpi4 `fcvtl` GEMV under
//! qemu-aarch64 — against the float references, and so does the Jetson multi-row
//! half-arithmetic kernel on prompts; a profile can default to f16.
mod common;

use slm_aot::ops::Op;
use slm_aot::pipeline;
use slm_aot::target::TargetProfile;
use slm_aot::verify::{self, VerifyOptions};

fn fixture(name: &str) -> common::Fixture {
    common::fixtures()
        .into_iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("fixture {name}"))
}

#[test]
fn f16_builds_are_deterministic_halve_the_weights_and_keep_float_layers() {
    let fx = fixture("tiny_llama_ts");
    let mut opts = fx.quantized_build_options("f16");
    let dir = common::scratch("f16-determinism");
    let a = pipeline::build(&opts, &dir).expect("build");
    let b = pipeline::build(&opts, &dir).expect("build");
    assert_eq!(a.generated, b.generated, "two f16 builds differ");
    let q = a.quantization.as_ref().expect("quantization summary");
    // The Linear weights and the embedding table halve.
    let (mut linear_f32, mut linear_f16, mut table) = (0usize, 0usize, 0usize);
    for id in a.graph.node_ids() {
        let node = a.graph.node(id);
        match &node.op {
            Op::HLinear(l) => {
                linear_f16 += l.weight_bytes();
                linear_f32 += 4 * l.k * l.n;
            }
            Op::HGather(g) => {
                assert_eq!(g.tied_nr, None, "{}: untied embeddings", node.name);
                table += g.table_bytes();
                assert_eq!(g.table_bytes(), 2 * g.rows * g.cols);
            }
            Op::Linear(_) => panic!("{} left in float", node.name),
            Op::Gather(_) => {
                let t = a.graph.ty(node.inputs[0]);
                let constant = a.graph.constant(node.inputs[0]).is_some();
                assert!(
                    !(constant && t.rank() == 2 && t.dtype == slm_aot::ir::DType::F32),
                    "{} left in float",
                    node.name
                );
            }
            _ => {}
        }
    }
    assert!(linear_f16 > 0 && table > 0);
    assert!(
        (linear_f16 as f64) < 0.51 * linear_f32 as f64,
        "{linear_f16} vs {linear_f32}"
    );
    let ratio = a.plan.weight_bytes as f64 / q.float_weight_bytes as f64;
    println!("tiny_llama_ts f16 weight bytes / f32: {ratio:.3}");
    assert!(ratio < 0.52, "weight ratio {ratio}");
    let text = slm_aot::report::quantization_report(q, &a.graph, &a.plan);
    assert!(text.contains("f16 32x64"), "{text}");
    assert!(text.contains("f16 table 128x32"), "{text}");
    assert!(!text.contains("embedding"), "{text}");

    let pattern = "*layers.1/mlp*";
    if let Some(q) = opts.quantize.as_mut() {
        q.keep_float = vec![pattern.into()];
    }
    let kept = pipeline::build(&opts, &common::scratch("f16-keep")).expect("build");
    let (mut float, mut half) = (0, 0);
    for id in kept.graph.node_ids() {
        let node = kept.graph.node(id);
        match &node.op {
            Op::Linear(_) => {
                assert!(node.name.contains("layers.1/mlp"), "{}", node.name);
                float += 1;
            }
            Op::HLinear(_) => {
                assert!(!node.name.contains("layers.1/mlp"), "{}", node.name);
                half += 1;
            }
            _ => {}
        }
    }
    assert!(float >= 1 && half >= 8, "{float} float, {half} half");
    let q = kept.quantization.expect("summary");
    let text = slm_aot::report::quantization_report(&q, &kept.graph, &kept.plan);
    assert!(
        text.contains(&format!("(Linear): --keep-float {pattern}")),
        "{text}"
    );
}

/// A fixture built with `--quantize f16` for a profile, its crate compiled for that profile
/// and run (under qemu for aarch64), against the float (ONNX Runtime) reference within the
/// fixture's `[quantized.f16]` tolerance: a stateful decode step is one row (the GEMV path),
/// a 16-token prompt is 16 rows (the multi-row path).
fn f16_build_on(name: &str, target: &str) {
    let fx = fixture(name);
    let want = &fx.case.quantized["f16"];
    let mut build = fx.quantized_build_options("f16");
    build.target = TargetProfile::load(target).expect("profile");
    build.crate_name = Some(format!("{}-f16-{target}", name.replace('_', "-")));
    let opts = VerifyOptions {
        build,
        inputs: fx.dir.join("inputs"),
        reference: Some(fx.dir.join("reference")),
        work_dir: common::scratch(&format!("f16/{name}-{target}")),
        cargo_target_dir: Some(common::scratch("targets/cargo-target")),
        save_outputs: None,
        atol: want.max_abs,
        rtol: 0.0,
    };
    let checks = verify::verify(&opts).unwrap_or_else(|e| panic!("{target}: {e}"));
    for c in checks {
        println!(
            "{name} {target:<12} {:<10} max abs {:.3e} cosine {:.7}",
            c.name, c.max_abs_error, c.cosine
        );
        assert!(
            c.cosine >= want.min_cosine && c.max_abs_error <= want.max_abs,
            "{target}: {} cosine {} max abs {}",
            c.name,
            c.cosine,
            c.max_abs_error
        );
    }
}

#[test]
fn the_decode_step_runs_on_avx512() {
    f16_build_on("tiny_llama_gqa_step", "x86-avx512");
}

#[test]
fn the_decode_step_runs_on_jetson_and_rpi4_under_qemu() {
    f16_build_on("tiny_llama_gqa_step", "jetson");
    f16_build_on("tiny_llama_gqa_step", "rpi4");
}

/// Prompts (16 rows) on the Jetson build run the half-arithmetic multi-row kernel
/// (`hgemm::aarch64_fp16::rows`) under qemu-aarch64, against ONNX Runtime's float outputs.
#[test]
fn prompts_run_in_half_arithmetic_on_jetson_under_qemu() {
    f16_build_on("tiny_llama_ts", "jetson");
    f16_build_on("tiny_bert_ts", "jetson");
}

/// A user's profile (`--target FILE.toml`) whose `[quantize] mode` is `"f16"` builds half
/// weights without `--quantize` and says the profile chose it; `mode = "none"` builds float.
#[test]
fn a_profile_can_default_to_f16() {
    let fx = fixture("tiny_bert_ts");
    let dir = common::scratch("f16-profile-default");
    let base = include_str!("../../targets/jetson.toml");
    let build = |mode: &str| {
        let profile = dir.join(format!("jetson-{mode}.toml"));
        std::fs::write(&profile, format!("{base}\n[quantize]\nmode = \"{mode}\"\n"))
            .expect("write profile");
        let model = fx.dir.join("model.onnx");
        let out = dir.join(format!("gen-{mode}"));
        let dims = ["--dim", "batch=1", "--dim", "sequence=16"].map(std::ffi::OsStr::new);
        let mut args = vec!["build".as_ref(), model.as_os_str()];
        args.extend(dims);
        args.extend([
            "--target".as_ref(),
            profile.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
        ]);
        common::run_ok(&args)
    };
    let half = build("f16");
    assert!(
        half.contains("quantization: --quantize f16\n")
            && half.contains("the `[quantize]` default of target profile `jetson`"),
        "{half}"
    );
    let float = build("none");
    assert!(!float.contains("quantization:"), "{float}");
}
