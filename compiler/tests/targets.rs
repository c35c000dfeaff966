//! The same models built for every edge target and run on its emulator, through
//! `slm-aot verify --target`: x86 natively, rpi4 under `qemu-aarch64 -cpu cortex-a72` (an
//! Armv8.2 instruction would die with SIGILL), jetson under `qemu-aarch64 -cpu neoverse-n1`,
//! cortex-m55 as bare-metal firmware on `qemu-system-arm -machine mps3-an547`; outputs are
//! checked against ONNX Runtime's; a jetson build on the emulated A72 dies with SIGILL (the
//! guard the rpi4 run relies on). Also: what `verify` says when an emulator is missing, and
//! a model over a profile's memory budget refused both by `slm-aot build` and by the
//! generated crate's `const` asserts.
mod common;

use slm_aot::frontend::ImportOptions;
use slm_aot::pipeline::{self, BuildOptions};
use slm_aot::target::TargetProfile;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A model `verify` checks on every target, with ONNX Runtime's reference outputs.
struct Case {
    name: &'static str,
    /// `slm-aot verify` arguments before the flags added here.
    args: Vec<String>,
    /// Holds `inputs/` and `reference/`.
    dir: PathBuf,
    atol: f64,
}

fn cases(repo: &Path) -> Vec<Case> {
    let bert = repo.join("tests/models/tiny_bert_ts");
    let stories = repo.join("tests/targets/stories260k_step");
    vec![
        Case {
            name: "tiny_bert_ts",
            args: vec![
                bert.join("model.onnx").display().to_string(),
                "--dim".into(),
                "batch=1".into(),
                "--dim".into(),
                "sequence=16".into(),
            ],
            dir: bert,
            atol: 1e-4,
        },
        // A stateful decoder: the KV cache is the crate's state (one step from BOS).
        Case {
            name: "stories260k_step",
            args: vec![
                repo.join("models/stories260K/stories260K_step_kv256.onnx")
                    .display()
                    .to_string(),
                "--max-context".into(),
                "256".into(),
            ],
            dir: stories,
            atol: 1e-4,
        },
    ]
}

/// `slm-aot verify --target TARGET` on every case; `runs_on` is the runner line expected in
/// the output.
fn verify_on(target: &str, runs_on: &str) {
    let repo = common::repo();
    let cargo_target = common::scratch("targets/cargo-target");
    for case in cases(&repo) {
        let work = common::scratch(&format!("targets/{target}/{}", case.name));
        let out = Command::new(env!("CARGO_BIN_EXE_slm-aot"))
            .arg("verify")
            .args(&case.args)
            .args([
                "--target",
                target,
                "--quantize",
                "none",
                "--rtol",
                "0",
                "--atol",
            ])
            .arg(case.atol.to_string())
            .arg("--inputs")
            .arg(case.dir.join("inputs"))
            .arg("--reference")
            .arg(case.dir.join("reference"))
            .arg("--work-dir")
            .arg(&work)
            .arg("--cargo-target-dir")
            .arg(&cargo_target)
            .env_remove("RUSTFLAGS")
            .output()
            .expect("run slm-aot verify");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!("{target} {}:\n{stdout}", case.name);
        assert!(
            out.status.success(),
            "{target} {}: verify failed:\n{stdout}\n{stderr}",
            case.name
        );
        assert!(
            stdout.contains(&format!("target `{target}`, run {runs_on}")),
            "{target} {}: not run {runs_on}:\n{stdout}",
            case.name
        );
        let references = std::fs::read_dir(case.dir.join("reference"))
            .expect("reference dir")
            .count();
        let compared: Vec<&str> = stdout
            .lines()
            .filter(|l| l.contains("vs reference file"))
            .collect();
        assert_eq!(
            compared.len(),
            references,
            "{target} {}: every output is compared with ONNX Runtime's:\n{stdout}",
            case.name
        );
        assert!(
            compared.iter().all(|l| l.trim_end().ends_with(" ok")),
            "{target} {}:\n{stdout}",
            case.name
        );
    }
}

#[test]
fn x86_natively() {
    verify_on("x86", "natively on this machine");
}

#[test]
fn rpi4_under_qemu_aarch64_cortex_a72() {
    verify_on("rpi4", "under `qemu-aarch64 -cpu cortex-a72`");
}

#[test]
fn jetson_under_qemu_aarch64_neoverse_n1_and_not_on_a_cortex_a72() {
    verify_on("jetson", "under `qemu-aarch64 -cpu neoverse-n1`");
    // After the jetson run: both build the same runner in the same folder.
    jetson_build_dies_on_an_emulated_cortex_a72();
}

#[test]
fn cortex_m55_as_firmware_on_mps3_an547() {
    verify_on(
        "cortex-m55",
        "as firmware on `qemu-system-arm -machine mps3-an547` (semihosting)",
    );
}

/// The guard the rpi4 run relies on: the jetson build (`-C target-cpu=cortex-a78ae`) run on an
/// emulated Cortex-A72 dies with SIGILL, and `verify` reports it. The profile keeps the name
/// `jetson`, so the runner's build folder is the jetson run's.
fn jetson_build_dies_on_an_emulated_cortex_a72() {
    let repo = common::repo();
    let dir = common::scratch("targets/jetson-on-a72");
    let shipped = std::fs::read_to_string(repo.join("targets/jetson.toml")).expect("profile");
    assert!(shipped.contains("cpu = \"neoverse-n1\""));
    let profile = dir.join("jetson-on-a72.toml");
    std::fs::write(
        &profile,
        shipped.replace("cpu = \"neoverse-n1\"", "cpu = \"cortex-a72\""),
    )
    .expect("write profile");
    let bert = repo.join("tests/models/tiny_bert_ts");
    let out = Command::new(env!("CARGO_BIN_EXE_slm-aot"))
        .arg("verify")
        .arg(bert.join("model.onnx"))
        .args(["--dim", "batch=1", "--dim", "sequence=16", "--target"])
        .arg(&profile)
        .arg("--inputs")
        .arg(bert.join("inputs"))
        .arg("--reference")
        .arg(bert.join("reference"))
        .arg("--work-dir")
        .arg(dir.join("work"))
        .arg("--cargo-target-dir")
        .arg(common::scratch("targets/cargo-target"))
        .env_remove("RUSTFLAGS")
        .output()
        .expect("run slm-aot verify");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("failed under `qemu-aarch64 -cpu cortex-a72`")
            && stderr.contains("Illegal instruction"),
        "{stderr}"
    );
}

/// The Rust toolchain's `rustc`, found next to the `cargo` running the tests.
fn rustc_path() -> PathBuf {
    let cargo = PathBuf::from(env!("CARGO"));
    let rustc = cargo.with_file_name("rustc");
    assert!(rustc.is_file(), "no rustc next to {}", cargo.display());
    rustc
}

#[test]
fn verify_names_the_missing_emulator_and_linker_and_installs_nothing() {
    let repo = common::repo();
    let bert = repo.join("tests/models/tiny_bert_ts");
    let empty = common::scratch("targets/empty-path");
    let cases = [
        (
            "rpi4",
            vec![
                "`qemu-aarch64` (Debian/Ubuntu package `qemu-user`)",
                "the cross linker `aarch64-linux-gnu-gcc` (Debian/Ubuntu packages `gcc-aarch64-linux-gnu libc6-dev-arm64-cross`)",
            ],
        ),
        (
            "cortex-m55",
            vec!["`qemu-system-arm` (Debian/Ubuntu package `qemu-system-arm`)"],
        ),
    ];
    for (target, expected) in cases {
        // Nothing on PATH: no QEMU, no cross linker; rustc given directly.
        let out = Command::new(env!("CARGO_BIN_EXE_slm-aot"))
            .arg("verify")
            .arg(bert.join("model.onnx"))
            .args([
                "--dim",
                "batch=1",
                "--dim",
                "sequence=16",
                "--target",
                target,
            ])
            .arg("--inputs")
            .arg(bert.join("inputs"))
            .arg("--work-dir")
            .arg(common::scratch(&format!("targets/missing-{target}")))
            .env("PATH", &empty)
            .env("RUSTC", rustc_path())
            .env_remove("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER")
            .output()
            .expect("run slm-aot verify");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{target}:\n{stderr}");
        assert!(
            stderr.contains(&format!(
                "verifying target `{target}` needs what this machine lacks (verify installs nothing)"
            )),
            "{target}:\n{stderr}"
        );
        for e in expected {
            assert!(stderr.contains(e), "{target}: lacks `{e}`:\n{stderr}");
        }
    }
}

/// The cortex-m55 profile with other budgets, as a user's `--target path.toml`.
fn m55_profile(dir: &Path, name: &str, ram: usize, flash: usize) -> PathBuf {
    let shipped =
        std::fs::read_to_string(common::repo().join("targets/cortex-m55.toml")).expect("profile");
    assert!(shipped.contains("ram_bytes = 524288") && shipped.contains("flash_bytes = 8388608"));
    let text = shipped
        .replace("name = \"cortex-m55\"", &format!("name = \"{name}\""))
        .replace("ram_bytes = 524288", &format!("ram_bytes = {ram}"))
        .replace("flash_bytes = 8388608", &format!("flash_bytes = {flash}"));
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("write profile");
    path
}

/// stories260K as a stateful decoder for `profile`.
fn stories_options(profile: &Path) -> BuildOptions {
    BuildOptions {
        model: common::repo().join("models/stories260K/stories260K_step_kv256.onnx"),
        target: TargetProfile::load(&profile.display().to_string()).expect("profile"),
        import: ImportOptions {
            limits: Default::default(),
            dims: Default::default(),
            max_context: Some(256),
            quant_tiling: None,
        },
        crate_name: Some("stories-over-budget".into()),
        runtime_path: None,
        verify_each_pass: false,
        golden: None,
        tokenizer: None,
        quantize: None,
    }
}

/// stories260K's plan (arena 42,624 B + KV cache 327,680 B in RAM, 1.2 MB of weights in
/// flash) against budgets that fit the arena alone, and flash below the weights: `slm-aot
/// build` refuses each with a message, and a crate emitted anyway (bypassing that check, as
/// a hand-edited or stale crate would) fails to compile on its `const` assert.
#[test]
fn over_budget_models_are_refused_at_build_time_and_at_compile_time() {
    let repo = common::repo();
    let dir = common::scratch("targets/over-budget");
    let cases = [
        (
            m55_profile(&dir, "small-ram", 200_000, 8_388_608),
            "state/KV cache 327680",
            "arena and state exceed the target's RAM budget",
        ),
        (
            m55_profile(&dir, "small-flash", 524_288, 600_000),
            "bytes of flash, ",
            "the weights exceed the target's flash budget",
        ),
    ];
    for (profile, build_message, assert_message) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_slm-aot"))
            .args(["build", "models/stories260K/stories260K_step_kv256.onnx"])
            .args(["--max-context", "256", "--quantize", "none", "--target"])
            .arg(&profile)
            .arg("-o")
            .arg(dir.join("refused"))
            .current_dir(&repo)
            .output()
            .expect("run slm-aot build");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}:\n{stderr}",
            profile.display()
        );
        assert!(
            stderr.contains("error: limit exceeded") && stderr.contains(build_message),
            "{}:\n{stderr}",
            profile.display()
        );

        // The same plan emitted without the build-time check.
        let options = stories_options(&profile);
        let proto = slm_aot::frontend::onnx::read_model(&options.model).expect("read model");
        let source = pipeline::import(&options.model, &options.import).expect("import");
        let graph = pipeline::optimise(&source, &options.target, false).expect("optimise");
        let plan = slm_aot::plan::plan(&graph).expect("plan");
        assert!(pipeline::check_budget(&graph, &plan, &options.target).is_err());
        assert!(
            plan.arena_bytes < options.target.memory.ram_bytes,
            "the arena alone fits: only the state makes it too big"
        );
        let gen_dir = dir.join(format!("gen-{}", options.target.name));
        let meta = slm_aot::codegen::CrateMeta {
            crate_name: "stories-over-budget".into(),
            model_file: "stories260K_step_kv256.onnx".into(),
            target: options.target.clone(),
            runtime_path: pipeline::default_runtime_path(&gen_dir),
            manifest: options.manifest(&proto).expect("manifest"),
        };
        slm_aot::codegen::emit(&graph, &plan, &meta)
            .expect("emit")
            .write(&gen_dir)
            .expect("write crate");
        let check = Command::new(env!("CARGO"))
            .args(["check", "--quiet", "--manifest-path"])
            .arg(gen_dir.join("Cargo.toml"))
            .env(
                "CARGO_TARGET_DIR",
                common::scratch("targets/over-budget-target"),
            )
            .env_remove("RUSTFLAGS")
            .output()
            .expect("run cargo check");
        let stderr = String::from_utf8_lossy(&check.stderr);
        assert!(!check.status.success(), "the over-budget crate compiled");
        assert!(
            stderr.contains(assert_message),
            "{}: not refused by the const assert:\n{stderr}",
            options.target.name
        );
    }
}
