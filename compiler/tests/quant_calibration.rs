//! `--calibration-prompts` (int4): activation-weighted group quantization of stories260K,
//! measured against the float decoder with teacher forcing on the shipped prompts.
mod common;

use slm_aot::frontend::ImportOptions;
use slm_aot::ir::Graph;
use slm_aot::quantize::{QuantMode, QuantOptions};
use slm_aot::target::TargetProfile;

const MODEL: &str = "models/stories260K/stories260K_step_kv256.onnx";

fn stateful_graph() -> Graph {
    let options = ImportOptions {
        max_context: Some(256),
        ..ImportOptions::default()
    };
    slm_aot::pipeline::import(&common::repo().join(MODEL), &options).expect("import")
}

/// Calibrated on the first two shipped prompts, the int4 build's teacher-forced logits on the
/// three others (held out) are closer to the float model's than without calibration, and
/// calibration is deterministic.
#[test]
fn activation_weighted_int4_lowers_the_held_out_logit_error() {
    let float = stateful_graph();
    let target = TargetProfile::load("x86").unwrap();
    let prompts = slm_aot::quantize::load_prompts(
        &common::repo().join("models/stories260K/prompts.txt"),
        Some(&common::repo().join("models/stories260K/tok512.bin")),
    )
    .unwrap();
    assert_eq!(prompts.len(), 5);
    let plain = QuantOptions::new(QuantMode::Int4);
    let mut calibrated = plain.clone();
    calibrated.calibration_ids = prompts[..2].to_vec();
    let build = |q: &QuantOptions| {
        slm_aot::pipeline::optimise_quantized(float.clone(), &target, Some(q), false).unwrap()
    };
    let (qp, qc) = (build(&plain), build(&calibrated));
    // Every constant's bytes, in value order.
    let weights = |g: &Graph| -> Vec<String> {
        (0..g.value_count() as u32)
            .filter_map(|v| g.constant(slm_aot::ir::ValueId(v)))
            .map(|t| format!("{:?}", t.data))
            .collect()
    };
    assert_eq!(weights(&qc), weights(&build(&calibrated)));
    assert_ne!(weights(&qp), weights(&qc), "calibration changed no weight");
    let (mut before, mut after) = (0.0, 0.0);
    for p in &prompts[2..] {
        let mut ids = p.ids.clone();
        ids.extend(slm_aot::quantize::greedy_decode(&float, &p.ids, 32).unwrap());
        ids.pop();
        let f = common::teacher_forced_logits(&float, &ids, 512);
        let (a, b) = (
            common::relative_error(&f, &common::teacher_forced_logits(&qp, &ids, 512)),
            common::relative_error(&f, &common::teacher_forced_logits(&qc, &ids, 512)),
        );
        eprintln!(
            "{:?}: relative logit error {a:.5} plain, {b:.5} calibrated",
            p.label
        );
        before += a;
        after += b;
    }
    assert!(after < 0.9 * before, "calibrated {after} vs plain {before}");
}

/// The int4 g32 build of stories260K meets the weight target (≤ 0.16× of the float
/// build) with and without `--calibration-prompts` (same layout, other levels), and the report
/// accounts for every weight byte.
#[test]
fn int4_weights_stay_under_a_sixth_of_float() {
    let repo = common::repo();
    for calibrate in [false, true] {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_slm-aot"));
        cmd.arg("build").arg(repo.join(MODEL)).args([
            "--target",
            "x86",
            "--max-context",
            "256",
            "--quantize",
            "int4",
            "--group-size",
            "32",
            "--tokenizer",
        ]);
        cmd.arg(repo.join("models/stories260K/tok512.bin"));
        if calibrate {
            cmd.arg("--calibration-prompts")
                .arg(repo.join("models/stories260K/prompts.txt"));
        }
        let out = cmd
            .arg("-o")
            .arg(common::scratch(&format!("quant_calibration/{calibrate}")))
            .output()
            .expect("run slm-aot");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            stdout.contains("--calibration-prompts FILE"),
            calibrate,
            "{stdout}"
        );
        let mut lines = stdout.lines().skip_while(|l| !l.contains("quantized vs"));
        let numbers = |l: &str| -> Vec<f64> {
            l.split(|c: char| !c.is_ascii_digit() && c != '.')
                .filter_map(|w| w.parse().ok())
                .collect()
        };
        let ratio_line = lines.next().expect("weights line");
        let bytes = numbers(ratio_line);
        let (quantized, float) = (bytes[0], bytes[2]);
        assert!(quantized / float <= 0.16, "{ratio_line}");
        assert!(
            ratio_line.ends_with(&format!("({:.4}x)", quantized / float)),
            "{ratio_line}"
        );
        // int4 weights, scales, zero points, other blobs, unquantized tensors, padding.
        let parts = numbers(lines.next().expect("breakdown line"));
        let parts: Vec<f64> = parts.into_iter().filter(|&x| x != 4.0).collect();
        assert_eq!(parts.len(), 6, "{stdout}");
        assert_eq!(parts.iter().sum::<f64>(), quantized, "{stdout}");
        // 36 int4 layers: a zero point is half a byte per (group, column).
        assert_eq!(parts[2] * 4.0, parts[1], "{stdout}");
    }
}
