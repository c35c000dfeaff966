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
            Op::QLinear(l) => {
                assert!(!node.name.contains("layer.1/intermediate"), "{}", node.name);
                // A merged QLinear (Q/K/V) counts each of its layers.
                quantized += l.part_widths().len();
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
    // Attention runs on int8 dot products, listed with the quantized layers.
    assert!(
        text.contains("MatMul_1.attention: int8 attention"),
        "{text}"
    );
    assert!(!text.contains("(Attention)"), "{text}");
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

/// A build without `--quantize` takes the profile's `[quantize]` default (cortex-m55: int8)
/// and says so; `--quantize none` builds float; `--quantize int4` overrides the default.
#[test]
fn the_profile_default_quantizes_unless_overridden() {
    let fx = fixture("tiny_bert_ts");
    let build = |extra: &[&str], out: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_slm-aot"))
            .arg("build")
            .arg(fx.dir.join("model.onnx"))
            .args([
                "--dim",
                "batch=1",
                "--dim",
                "sequence=16",
                "--target",
                "cortex-m55",
            ])
            .args(extra)
            .arg("-o")
            .arg(common::scratch(&format!("quantized-profile-default/{out}")))
            .output()
            .expect("run slm-aot build");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let default = build(&[], "default");
    assert!(
        default.contains("quantization: --quantize int8\n")
            && default.contains("the `[quantize]` default of target profile `cortex-m55`"),
        "{default}"
    );
    let float = build(&["--quantize", "none"], "none");
    assert!(!float.contains("quantization:"), "{float}");
    let int4 = build(&["--quantize", "int4"], "int4");
    assert!(
        int4.contains("quantization: --quantize int4 --group-size 32")
            && !int4.contains("default of target profile"),
        "{int4}"
    );
}

/// On the real stories260K weights, the int4 quantizer (asymmetric groups, searched range,
/// least-squares scale) never has a larger squared error than the plain symmetric
/// `max|w| / 7` one (runtime-core's `quantize_weights_q4`), per weight, and is clearly
/// below it over the model.
#[test]
fn the_int4_quantizer_beats_plain_absmax_on_real_weights() {
    use runtime_core::kernels::gemm::{Activation, Gemm, Tiles};
    use runtime_core::kernels::qgemm::{self, Q4Weights};
    use slm_aot::ir::Data;
    use slm_aot::ops::q4linear::{Q4Grid, pack_weight};
    let options = slm_aot::frontend::ImportOptions {
        max_context: Some(256),
        ..Default::default()
    };
    let g = slm_aot::pipeline::import(
        &common::repo().join("models/stories260K/stories260K_step_kv256.onnx"),
        &options,
    )
    .expect("import stories260K");
    let (group, nr) = (32, 16);
    // Rows of the identity times the blob: the dequantized weight.
    let dequant = |blob: &[u8], k: usize, n: usize, zps: bool| -> Vec<f32> {
        let mut eye = vec![0.0f32; k * k];
        for p in 0..k {
            eye[p * k + p] = 1.0;
        }
        let mut out = vec![0.0f32; k * n];
        let w = Q4Weights::new(blob, k, n, group, nr, true, zps);
        let gemm = Gemm {
            m: k,
            k,
            n,
            lda: k,
            ldc: n,
            bias: None,
            activation: Activation::None,
            tiles: Tiles {
                mr: 4,
                kc: 256,
                mc: 64,
            },
        };
        qgemm::reference::gemm_q4(&eye, w, &mut out, &gemm);
        out
    };
    let sse = |a: &[f32], b: &[f32]| -> f64 {
        a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum()
    };
    let (mut total_plain, mut total_searched, mut weights) = (0.0, 0.0, 0);
    for id in g.node_ids() {
        let node = g.node(id);
        let Some(t) = node.inputs.get(1).and_then(|&v| g.constant(v)) else {
            continue;
        };
        let Data::F32(w) = &t.data else { continue };
        if t.ty.rank() != 2 || !matches!(node.op, Op::MatMul(_) | Op::Linear(_)) {
            continue;
        }
        let (k, n) = (t.ty.shape[0], t.ty.shape[1]);
        let mut q = vec![0u8; k * n];
        let mut scales = vec![0.0f32; k.div_ceil(group) * n];
        qgemm::quantize_weights_q4(w, k, n, group, &mut q, &mut scales);
        let mut plain = vec![0u8; qgemm::packed_q4_bytes(k, n, group, nr, true, false)];
        qgemm::pack_q4(&q, &scales, None, k, n, group, nr, true, &mut plain);
        let plain = sse(&dequant(&plain, k, n, false), w);
        let searched = pack_weight(w, k, n, group, nr, true, Q4Grid::Asymmetric, None);
        let searched = sse(&dequant(&searched, k, n, true), w);
        println!(
            "{} {k}x{n}: squared error {searched:.4e} vs plain {plain:.4e}",
            node.name
        );
        assert!(searched <= plain, "{}: {searched} > {plain}", node.name);
        (total_plain, total_searched, weights) =
            (total_plain + plain, total_searched + searched, weights + 1);
    }
    println!("{weights} weights: squared error {total_searched:.4e} vs plain {total_plain:.4e}");
    assert!(weights >= 36, "{weights} MatMul weights found");
    assert!(
        total_searched < 0.7 * total_plain,
        "{total_searched} vs {total_plain}"
    );
}
