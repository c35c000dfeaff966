//! Quantized builds, data-driven: every fixture with a `[quantized.<mode>]` table in its
//! `case.toml` is built with `--quantize <mode>`, its generated crate compiled and run, and
//! its outputs compared with ONNX Runtime's (or transformers') float references by cosine
//! and max abs error; plus the build report, `--keep-float`, `--min-cosine` and the
//! calibration-set errors.
mod common;

use slm_aot::ops::Op;
use slm_aot::pipeline;
use slm_aot::quantize::{QuantMode, QuantOptions};
use slm_aot::verify::{self, VerifyOptions};
use std::path::Path;

#[test]
fn quantized_fixtures_stay_close_to_the_float_references() {
    let mut failures = Vec::new();
    let mut cases = 0;
    for fx in common::fixtures() {
        for (mode, want) in &fx.case.quantized {
            cases += 1;
            let opts = VerifyOptions {
                build: fx.quantized_build_options(mode),
                inputs: fx.dir.join("inputs"),
                reference: Some(fx.dir.join("reference")),
                work_dir: common::scratch(&format!("quantized/{}-{mode}", fx.name)),
                cargo_target_dir: Some(common::scratch("cargo-target")),
                save_outputs: None,
                atol: want.max_abs,
                rtol: 0.0,
            };
            match verify::verify(&opts) {
                Ok(checks) => {
                    for c in checks {
                        println!(
                            "{:<20} {:<12} {:<20} max abs {:.3e} cosine {:.6}",
                            fx.name, mode, c.name, c.max_abs_error, c.cosine
                        );
                        if c.cosine < want.min_cosine || c.max_abs_error > want.max_abs {
                            failures.push(format!(
                                "{} {mode}: `{}` cosine {:.6} (min {}), max abs {:.3e} (max {})",
                                fx.name,
                                c.name,
                                c.cosine,
                                want.min_cosine,
                                c.max_abs_error,
                                want.max_abs
                            ));
                        }
                    }
                }
                Err(e) => failures.push(format!("{} {mode}: {e}", fx.name)),
            }
        }
    }
    assert!(cases >= 4, "only {cases} quantized cases declared");
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}

fn fixture(name: &str) -> common::Fixture {
    common::fixtures()
        .into_iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("fixture {name}"))
}

#[test]
fn quantized_builds_are_deterministic_and_shrink_the_weights() {
    for (name, mode, max_ratio) in [
        ("tiny_bert_ts", "int8", 0.45),
        ("tiny_llama_ts", "int4", 0.3),
    ] {
        let fx = fixture(name);
        let opts = fx.quantized_build_options(mode);
        let dir = common::scratch(&format!("quantized-determinism/{name}"));
        let a = pipeline::build(&opts, &dir).expect("build");
        let b = pipeline::build(&opts, &dir).expect("build");
        assert_eq!(a.generated, b.generated, "{name} {mode}: two builds differ");
        let q = a.quantization.expect("quantization summary");
        let ratio = a.plan.weight_bytes as f64 / q.float_weight_bytes as f64;
        assert!(ratio < max_ratio, "{name} {mode}: weight ratio {ratio}");
    }
}

#[test]
fn keep_float_is_honoured_and_reported() {
    let fx = fixture("tiny_bert_ts");
    let mut opts = fx.quantized_build_options("int8");
    let pattern = "*layer.1/intermediate*";
    if let Some(q) = opts.quantize.as_mut() {
        q.keep_float = vec![pattern.into()];
    }
    let build = pipeline::build(&opts, &common::scratch("quantized-keep")).expect("build");
    let g = &build.graph;
    let (mut kept, mut quantized) = (0, 0);
    for id in g.node_ids() {
        let node = g.node(id);
        match &node.op {
            Op::Linear(_) => {
                assert!(node.name.contains("layer.1/intermediate"), "{}", node.name);
                kept += 1;
            }
            Op::QLinear(_) => {
                assert!(!node.name.contains("layer.1/intermediate"), "{}", node.name);
                quantized += 1;
            }
            _ => {}
        }
    }
    assert_eq!(kept, 1);
    assert!(quantized >= 10, "{quantized} QLinear");
    let q = build.quantization.expect("summary");
    let text = slm_aot::report::quantization_report(&q, g, &build.plan);
    assert!(
        text.contains(&format!(
            "/model/encoder/layer.1/intermediate/dense/MatMul.linear (Linear): --keep-float {pattern}"
        )),
        "{text}"
    );
    // Attention products stay float, and the report says why.
    assert!(
        text.contains("(Attention): activation × activation products (attention)"),
        "{text}"
    );
    assert!(text.contains("quantized layers: "), "{text}");
    assert!(text.contains("int8 table 128x32"), "{text}");
}

#[test]
fn min_cosine_passes_and_fails_on_the_validation_set() {
    let fx = fixture("tiny_llama_ts");
    let dir = common::scratch("quantized-validate");
    let inputs = fx.dir.join("inputs");
    let with = |mode: QuantMode, min: f64| {
        let mut opts = fx.build_options();
        let mut q = QuantOptions::new(mode);
        q.validate = Some(inputs.clone());
        q.min_cosine = Some(min);
        opts.quantize = Some(q);
        pipeline::build(&opts, &dir)
    };
    let ok = with(QuantMode::Int8, 0.99).expect("int8 passes 0.99");
    let acc = &ok.quantization.expect("summary").accuracy;
    assert_eq!(acc.len(), 1);
    assert!(acc[0].min_cosine >= 0.99 && acc[0].sets == 1, "{acc:?}");
    // int4 with 4-bit groups of 32 on random weights cannot reach 0.99999.
    let err = with(QuantMode::Int4, 0.99999)
        .err()
        .expect("int4 fails 0.99999");
    let text = err.to_string();
    assert!(text.contains("--min-cosine 0.99999"), "{text}");
    assert!(text.contains("`logits` cosine"), "{text}");
}

#[test]
fn calibration_set_errors_name_the_missing_file() {
    let fx = fixture("tiny_bert_ts");
    let samples = common::scratch("quantized-calibration");
    let set = samples.join("set0");
    std::fs::create_dir_all(&set).expect("mkdir");
    for entry in std::fs::read_dir(fx.dir.join("inputs")).expect("inputs") {
        let path = entry.expect("entry").path();
        if path.file_name() != Some("attention_mask.npy".as_ref()) {
            std::fs::copy(&path, set.join(path.file_name().expect("name"))).expect("copy");
        }
    }
    let _ = std::fs::remove_file(set.join("attention_mask.npy"));
    common::expect_build_error(
        &fx.dir.join("model.onnx"),
        &[
            "--dim",
            "batch=1",
            "--dim",
            "sequence=16",
            "--quantize",
            "int8-static",
            "--calibration",
            samples.to_str().expect("utf-8"),
        ],
        &["attention_mask.npy", "set0"],
    );
    common::expect_build_error(
        &fx.dir.join("model.onnx"),
        &[
            "--dim",
            "batch=1",
            "--dim",
            "sequence=16",
            "--quantize",
            "int8-static",
        ],
        &["--quantize int8-static needs --calibration DIR"],
    );
    common::expect_build_error(
        Path::new(&fx.dir.join("model.onnx")),
        &[
            "--dim",
            "batch=1",
            "--dim",
            "sequence=16",
            "--quantize",
            "int3",
        ],
        &["--quantize `int3`"],
    );
}
