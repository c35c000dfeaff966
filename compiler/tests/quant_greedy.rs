//! Greedy-token agreement of quantized decoders with the float model (`--validate-prompts`):
//! the evaluator's greedy decoding of the float stories260K reproduces llama2.c's reference
//! ids, an int8 build keeps the first 32 from BOS, and the build report of an int4 build (per
//! group search or GPTQ) says, for every shipped prompt, where its tokens first differ from
//! the float build's.
mod common;

use slm_aot::frontend::ImportOptions;
use slm_aot::quantize::{QuantMode, QuantOptions};
use slm_aot::target::TargetProfile;
use std::process::Command;

const MODEL: &str = "models/stories260K/stories260K_step_kv256.onnx";

/// llama2.c's greedy ids from BOS (BOS first).
fn reference_ids() -> Vec<u32> {
    let text = std::fs::read_to_string(common::repo().join("models/stories260K/ref/greedy.json"))
        .expect("greedy.json");
    let start = text.find('[').expect("[");
    let end = start + text[start..].find(']').expect("]");
    text[start + 1..end]
        .split(',')
        .map(|s| s.trim().parse().expect("id"))
        .collect()
}

fn stateful_graph() -> slm_aot::ir::Graph {
    let options = ImportOptions {
        max_context: Some(256),
        ..ImportOptions::default()
    };
    slm_aot::pipeline::import(&common::repo().join(MODEL), &options).expect("import")
}

#[test]
fn evaluator_greedy_decoding_matches_the_reference_and_int8_keeps_it() {
    let want = reference_ids();
    let float = stateful_graph();
    let got = slm_aot::quantize::greedy_decode(&float, &[1], 32).unwrap();
    assert_eq!(got, want[1..33], "float greedy ids from BOS");
    // The prompt is fed token by token: the reference's first 10 ids as a prompt continue
    // with the reference's next ones.
    let got = slm_aot::quantize::greedy_decode(&float, &want[..10], 8).unwrap();
    assert_eq!(got, want[10..18]);

    let target = TargetProfile::load("x86").unwrap();
    let q = QuantOptions::new(QuantMode::Int8);
    let quantized =
        slm_aot::pipeline::optimise_quantized(float.clone(), &target, Some(&q), false).unwrap();
    let prompt = slm_aot::quantize::Prompt {
        label: "ids: 1".into(),
        ids: vec![1],
    };
    let agreement = slm_aot::quantize::validate_greedy(&float, &quantized, &[prompt], 32).unwrap();
    assert_eq!(agreement[0].float_ids, want[1..33]);
    assert_eq!(agreement[0].first_difference(), None, "{agreement:?}");
}

#[test]
fn the_int4_report_says_where_each_prompt_diverges() {
    let repo = common::repo();
    let prompts = repo.join("models/stories260K/prompts.txt");
    let out = Command::new(env!("CARGO_BIN_EXE_slm-aot"))
        .arg("build")
        .arg(repo.join(MODEL))
        .args([
            "--target",
            "x86",
            "--max-context",
            "256",
            "--quantize",
            "int4",
        ])
        .args([
            "--group-size",
            "32",
            "--validate-tokens",
            "24",
            "--tokenizer",
        ])
        .arg(repo.join("models/stories260K/tok512.bin"))
        .arg("--validate-prompts")
        .arg(&prompts)
        .arg("-o")
        .arg(common::scratch("quant_greedy/int4"))
        .output()
        .expect("run slm-aot");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let section = stdout
        .split("greedy tokens vs float (--validate-prompts, 24 generated per prompt):\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no greedy section in\n{stdout}"));
    let shipped: Vec<String> = std::fs::read_to_string(&prompts)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| format!("{:?}", l.trim()))
        .collect();
    assert_eq!(shipped.len(), 5);
    let want = reference_ids();
    for (line, prompt) in section.lines().zip(&shipped) {
        assert!(line.trim_start().starts_with(prompt.as_str()), "{line}");
        if line.ends_with("all 24 identical") {
            continue;
        }
        // `first I identical; at I float A vs quantized B`
        let (_, verdict) = line.split_once("first ").expect(line);
        let words: Vec<&str> = verdict.split_whitespace().collect();
        let at: usize = words[0].parse().expect(line);
        assert!(at < 24, "{line}");
        assert_eq!(words[3], format!("{at}"), "{line}");
        assert_ne!(words[5], words[8], "{line}");
        if prompt == "\"ids: 1\"" {
            // From BOS, the float side is llama2.c's reference.
            assert_eq!(words[5], want[1 + at].to_string(), "{line}");
        }
    }
    assert_eq!(
        section
            .lines()
            .take_while(|l| l.starts_with("    "))
            .count(),
        5
    );
}

#[test]
fn a_stateless_model_is_refused_with_a_reason() {
    let dir = common::scratch("quant_greedy/stateless");
    let prompts = dir.join("prompts.txt");
    std::fs::write(&prompts, "ids: 1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_slm-aot"))
        .arg("build")
        .arg(common::repo().join("tests/models/tiny_bert_ts/model.onnx"))
        .args(["--dim", "batch=1", "--dim", "sequence=16"])
        .args(["--quantize", "int8", "--validate-prompts"])
        .arg(&prompts)
        .arg("-o")
        .arg(dir.join("gen"))
        .output()
        .expect("run slm-aot");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("needs a stateful decoder"), "{stderr}");
}

/// `--int8 PATTERN` in an int4 build: stories260K's tied classifier (and so its embedding
/// table, still stored once) at int8, the other 35 layers int4. The weights stay under 0.18×
/// of the float build: int4 g32 alone is ≈ 0.16× and the 64×512 classifier at int8 adds its
/// 16 KiB of extra codes plus scales, ≈ 0.016×.
#[test]
fn an_int8_classifier_in_an_int4_build_stays_tied_and_small() {
    let repo = common::repo();
    let out = Command::new(env!("CARGO_BIN_EXE_slm-aot"))
        .arg("build")
        .arg(repo.join(MODEL))
        .args([
            "--target",
            "x86",
            "--max-context",
            "256",
            "--quantize",
            "int4",
        ])
        .args(["--group-size", "32", "--int8", "/MatMul_45.linear"])
        .arg("-o")
        .arg(common::scratch("quant_greedy/int8-head"))
        .output()
        .expect("run slm-aot");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("--int8 /MatMul_45.linear"), "{stdout}");
    assert!(
        stdout.contains("/Gather: int8 table 512x64, read from the tied classifier's weight"),
        "{stdout}"
    );
    assert!(
        stdout.contains("/MatMul_45.linear: int8 64x512"),
        "{stdout}"
    );
    let line = stdout
        .lines()
        .find(|l| l.contains("quantized vs") && l.contains("float"))
        .expect("weights line");
    let bytes: Vec<f64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let (quantized, float) = (bytes[0], bytes[1]);
    assert!(quantized / float <= 0.18, "{line}");
    assert_eq!(stdout.matches(": int4 ").count(), 35, "{stdout}");
}

/// `--min-agreement N` fails an int4 build naming each shipped prompt that keeps fewer than
/// N tokens (as the evaluator counts them), and passes an int8 build that keeps them all.
#[test]
fn min_agreement_fails_the_build_naming_the_prompts_below_it() {
    let repo = common::repo();
    let prompts_file = repo.join("models/stories260K/prompts.txt");
    let tokenizer = repo.join("models/stories260K/tok512.bin");
    let build = |quantize: &str, prompts: &std::path::Path, out: &str| {
        Command::new(env!("CARGO_BIN_EXE_slm-aot"))
            .arg("build")
            .arg(repo.join(MODEL))
            .args(["--target", "x86", "--max-context", "256", "--quantize"])
            .arg(quantize)
            .args([
                "--validate-tokens",
                "16",
                "--min-agreement",
                "16",
                "--tokenizer",
            ])
            .arg(&tokenizer)
            .arg("--validate-prompts")
            .arg(prompts)
            .arg("-o")
            .arg(common::scratch(out))
            .output()
            .expect("run slm-aot")
    };

    let float = stateful_graph();
    let target = TargetProfile::load("x86").unwrap();
    let q = QuantOptions::new(QuantMode::Int4);
    let int4 =
        slm_aot::pipeline::optimise_quantized(float.clone(), &target, Some(&q), false).unwrap();
    let prompts = slm_aot::quantize::load_prompts(&prompts_file, Some(&tokenizer)).unwrap();
    let agreement = slm_aot::quantize::validate_greedy(&float, &int4, &prompts, 16).unwrap();
    let below: Vec<_> = agreement.iter().filter(|a| a.agreeing() < 16).collect();
    assert!(!below.is_empty(), "int4 keeps 16 tokens on every prompt");
    assert!(slm_aot::quantize::check_agreement(&agreement, 0).is_ok());

    let out = build("int4", &prompts_file, "quant_greedy/min-agreement-int4");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--min-agreement 16"), "{stderr}");
    for a in &agreement {
        let named = format!("`{}` keeps {}", a.prompt.label, a.agreeing());
        assert_eq!(
            stderr.contains(&named),
            a.agreeing() < 16,
            "{named}: {stderr}"
        );
    }

    let from_bos = common::scratch("quant_greedy/bos").join("prompts.txt");
    std::fs::write(&from_bos, "ids: 1\n").unwrap();
    let out = build("int8", &from_bos, "quant_greedy/min-agreement-int8");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--int4-method gptq` calibrated on `calibration.txt` (disjoint from the validation
/// prompts): the report gives each shipped prompt's agreement, and `--min-agreement` one above
/// the worst of them fails the build naming exactly the prompts below it (or, all 24 kept,
/// `--min-agreement 24` passes).
#[test]
fn a_gptq_build_reports_its_agreement_and_min_agreement_enforces_it() {
    let repo = common::repo();
    let prompts = repo.join("models/stories260K/prompts.txt");
    let build = |min: Option<usize>, out: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_slm-aot"));
        cmd.arg("build").arg(repo.join(MODEL)).args([
            "--target",
            "x86",
            "--max-context",
            "256",
            "--quantize",
            "int4",
            "--group-size",
            "32",
            "--int4-method",
            "gptq",
            "--validate-tokens",
            "24",
        ]);
        cmd.arg("--calibration-prompts")
            .arg(repo.join("models/stories260K/calibration.txt"))
            .arg("--tokenizer")
            .arg(repo.join("models/stories260K/tok512.bin"))
            .arg("--validate-prompts")
            .arg(&prompts);
        if let Some(n) = min {
            cmd.args(["--min-agreement", &n.to_string()]);
        }
        cmd.arg("-o")
            .arg(common::scratch(out))
            .output()
            .expect("run slm-aot")
    };
    let out = build(None, "quant_greedy/gptq");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("--int4-method gptq"), "{stdout}");
    let section = stdout
        .split("greedy tokens vs float (--validate-prompts, 24 generated per prompt):\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no greedy section in\n{stdout}"));
    // (prompt label, leading tokens kept) per report line.
    let kept: Vec<(String, usize)> = section
        .lines()
        .take_while(|l| l.starts_with("    "))
        .map(|l| {
            let label = l
                .trim_start()
                .split("  ")
                .next()
                .unwrap()
                .trim()
                .to_string();
            let n = if l.ends_with("all 24 identical") {
                24
            } else {
                let (_, v) = l.split_once("first ").expect(l);
                v.split_whitespace().next().unwrap().parse().expect(l)
            };
            (label, n)
        })
        .collect();
    assert_eq!(kept.len(), 5, "{section}");
    let worst = kept.iter().map(|k| k.1).min().unwrap();
    // All 24 everywhere: `--min-agreement 24` passes.
    let out = build(Some((worst + 1).min(24)), "quant_greedy/gptq-min");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.success(), worst == 24, "{stderr}");
    for (label, n) in &kept {
        // The report quotes the label, the error names it in backquotes.
        let named = format!("`{}` keeps {n}", label.trim_matches('"'));
        assert_eq!(stderr.contains(&named), *n <= worst, "{named}: {stderr}");
    }
}
