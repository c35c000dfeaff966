//! Model tests, discovered from `tests/models/<name>/`: every fixture is compiled, its
//! generated crate built and run, and its outputs compared with ONNX Runtime's; the
//! reference evaluator on the unoptimised and the optimised graph must agree too.
mod common;

use slm_aot::eval::evaluate;
use slm_aot::pipeline;
use slm_aot::verify::{self, VerifyOptions, compare};

#[test]
fn every_fixture_matches_onnx_runtime_through_generated_code() {
    let mut failures = Vec::new();
    for fx in common::fixtures() {
        let opts = VerifyOptions {
            build: fx.build_options(),
            inputs: fx.dir.join("inputs"),
            reference: Some(fx.dir.join("reference")),
            work_dir: common::scratch(&format!("models/{}", fx.name)),
            cargo_target_dir: Some(common::scratch("cargo-target")),
            save_outputs: None,
            atol: fx.case.atol,
            rtol: 0.0,
        };
        match verify::verify(&opts) {
            Ok(checks) => {
                for c in checks {
                    println!(
                        "{:<20} {:<28} max abs {:.2e} cosine {:.8}",
                        fx.name, c.name, c.max_abs_error, c.cosine
                    );
                    if !c.ok {
                        failures.push(format!(
                            "{}: output `{}` max abs error {:.3e} > {}",
                            fx.name, c.name, c.max_abs_error, fx.case.atol
                        ));
                    }
                }
            }
            Err(e) => failures.push(format!("{}: {e}", fx.name)),
        }
    }
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}

#[test]
fn reference_evaluator_agrees_before_and_after_optimisation() {
    let mut failures = Vec::new();
    for fx in common::fixtures() {
        let opts = fx.build_options();
        let result = (|| -> slm_aot::Result<()> {
            let source = pipeline::import(&opts.model, &opts.import)?;
            let optimised = pipeline::optimise(&source, &opts.target, true)?;
            let inputs = verify::load_inputs(&source, &fx.dir.join("inputs"))?;
            let a = evaluate(&source, &inputs)?;
            let b = evaluate(&optimised, &inputs)?;
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                let name = source.output_name(i);
                let reference = slm_aot::npy::read(
                    &verify::find_npy(&fx.dir.join("reference"), name, "out").expect("reference"),
                )?;
                for (what, got) in [("unoptimised", x), ("optimised", y)] {
                    let c = compare(name, got, &reference, fx.case.atol, 0.0)?;
                    if !c.ok {
                        failures.push(format!(
                            "{}: {what} reference eval of `{name}`: max abs {:.3e}",
                            fx.name, c.max_abs_error
                        ));
                    }
                }
                // Fusion reorders float sums and the fused softmax/GELU use vectorisable
                // exp/erf (within a few ulp of libm): allow rounding-level relative change.
                let same = compare(name, x, y, 1e-6, 1e-5)?;
                if !same.ok {
                    failures.push(format!(
                        "{}: optimisation changed `{name}` by {:.3e}",
                        fx.name, same.max_abs_error
                    ));
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            failures.push(format!("{}: {e}", fx.name));
        }
    }
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}

#[test]
fn builds_are_byte_identical() {
    for fx in common::fixtures() {
        let opts = fx.build_options();
        let (a_dir, b_dir) = (
            common::scratch(&format!("determinism/a/{}", fx.name)),
            common::scratch(&format!("determinism/b/{}", fx.name)),
        );
        let a = pipeline::build(&opts, &a_dir)
            .expect("first build")
            .generated;
        let b = pipeline::build(&opts, &b_dir)
            .expect("second build")
            .generated;
        a.write(&a_dir).expect("write a");
        b.write(&b_dir).expect("write b");
        assert_eq!(a, b, "{}: two builds differ", fx.name);
        for rel in a.files.keys() {
            let (x, y) = (
                std::fs::read(a_dir.join(rel)).expect("a"),
                std::fs::read(b_dir.join(rel)).expect("b"),
            );
            assert!(x == y, "{}: {} differs on disk", fx.name, rel.display());
        }
    }
}

/// The `ort_*` fixtures (ONNX Runtime's quantization tools, `make_quantized.py`) keep their
/// quantized matmuls integer: every weight-constant matmul of the optimised graph is a
/// `QLinear`/`Q4Linear`, and the weights take at most a third of the float fixture's bytes
/// (int8 ≈ ¼, int4 ≈ ⅛ plus scales; embeddings, LayerNorm and biases stay f32).
#[test]
fn pre_quantized_fixtures_stay_integer() {
    use slm_aot::ops::Op;
    let fixtures = common::fixtures();
    let float_bytes = |name: &str| {
        let fx = fixtures
            .iter()
            .find(|f| f.name == name)
            .expect("float fixture");
        pipeline::compile(&fx.build_options())
            .expect("float build")
            .plan
            .weight_bytes
    };
    let mut seen = 0;
    let matmul_fixture =
        |f: &&common::Fixture| f.name.starts_with("ort_") && !f.name.starts_with("ort_conv_");
    for fx in fixtures.iter().filter(matmul_fixture) {
        seen += 1;
        let built = pipeline::compile(&fx.build_options()).expect("build");
        let g = &built.graph;
        let (mut integer, mut float) = (0, Vec::new());
        for id in g.node_ids() {
            let node = g.node(id);
            match &node.op {
                // A merged QLinear (Q/K/V, gate/up) counts each of its layers.
                Op::QLinear(l) => integer += l.part_widths().len(),
                Op::Q4Linear(_) => integer += 1,
                Op::Linear(_) => float.push(node.name.clone()),
                _ => {}
            }
        }
        let source = if fx.name.contains("llama") {
            "tiny_llama_ts"
        } else {
            "tiny_bert_ts"
        };
        let ratio = built.plan.weight_bytes as f64 / float_bytes(source) as f64;
        println!(
            "{:<24} {integer} integer matmuls, float Linear {float:?}, weights {:.3} of {source}",
            fx.name, ratio
        );
        let notes = &built.source.float_notes;
        if fx.name == "ort_dynamic_uint8_bert" {
            // uint8 weights with zero points: kept on the exact float/i32 lowering, and the
            // build report says so for every MatMulInteger.
            let said = notes
                .iter()
                .filter(|(_, why)| why.contains("MatMulInteger not fused"))
                .count();
            assert!(
                integer == 0 && said >= 12,
                "{}: {integer} integer, {notes:?}",
                fx.name
            );
            continue;
        }
        assert!(integer >= 12, "{}: only {integer} integer matmuls", fx.name);
        // QOperator static leaves the pooler's Gemm float (ONNX Runtime does not quantize it).
        let allowed = usize::from(fx.name == "ort_qop_static_bert");
        assert!(
            float.len() <= allowed,
            "{}: float layers {float:?}",
            fx.name
        );
        assert!(
            ratio < 0.6,
            "{}: weights are {ratio:.3} of the float model",
            fx.name
        );
        // The build report's notes name what stayed float and why.
        if fx.name == "ort_qop_static_bert" {
            assert!(
                notes
                    .iter()
                    .any(|(n, why)| n.contains("pooler/dense/Gemm") && why.contains("not fused")),
                "{notes:?}"
            );
        }
    }
    assert!(seen >= 7, "expected the seven ort_* fixtures, found {seen}");
}

/// The `ort_conv_*` fixtures (a conv net through `quantize_dynamic`, QDQ `quantize_static`
/// with uint8 and int8 activations, and QOperator `QLinearConv`) keep every convolution
/// integer: four `QConv`, no float `Conv`, and no build-report note about a convolution;
/// `QLinearConv` and QDQ chains stay uint8/int8 between layers (requantized in the kernel).
#[test]
fn pre_quantized_convolutions_stay_integer() {
    use slm_aot::ir::DType;
    use slm_aot::ops::Op;
    use slm_aot::ops::qconv::{QConvInput, QConvOutput};
    let mut seen = 0;
    for fx in common::fixtures()
        .iter()
        .filter(|f| f.name.starts_with("ort_conv_"))
    {
        seen += 1;
        let built = pipeline::compile(&fx.build_options()).expect("build");
        let g = &built.graph;
        let (mut integer, mut float, mut requantized) = (Vec::new(), Vec::new(), 0);
        for id in g.node_ids() {
            let node = g.node(id);
            match &node.op {
                Op::QConv(q) => {
                    integer.push(q.group);
                    let out = g.ty(node.outputs[0]).dtype;
                    if let QConvOutput::Quantized { .. } = q.output {
                        let int8 = fx.name.ends_with("_s8");
                        let want = if int8 { DType::I8 } else { DType::U8 };
                        assert_eq!(out, want, "{}: {}", fx.name, node.name);
                        requantized += 1;
                    }
                    let dynamic = q.input == QConvInput::Dynamic;
                    assert_eq!(dynamic, fx.name == "ort_conv_dynamic", "{}", fx.name);
                }
                Op::Conv(_) => float.push(node.name.clone()),
                _ => {}
            }
        }
        let notes = &built.source.float_notes;
        println!(
            "{:<20} QConv groups {integer:?}, float Conv {float:?}, notes {notes:?}",
            fx.name
        );
        // The net's four convolutions: plain, depthwise (8 groups), pointwise, grouped 1-D.
        assert_eq!(integer, [1, 8, 1, 2], "{}", fx.name);
        assert!(float.is_empty(), "{}: float Conv {float:?}", fx.name);
        // QLinearConv, and QDQ's QuantizeLinear after each Conv, requantize in the kernel.
        let expect_requantized = if fx.name == "ort_conv_dynamic" { 0 } else { 4 };
        assert_eq!(requantized, expect_requantized, "{}", fx.name);
        assert!(
            !notes
                .iter()
                .any(|(n, why)| n.contains("Conv") || why.contains("Conv")),
            "{}: the report still names a convolution: {notes:?}",
            fx.name
        );
    }
    assert_eq!(seen, 4, "expected the four ort_conv_* fixtures");
}
