//! The Cortex-M55 firmware (`examples/firmware-m55`) on the emulated board: stories260K
//! compiled for the `cortex-m55` profile, linked into bare-metal firmware, run under
//! `qemu-system-arm -machine mps3-an547`, its greedy ids checked against llama2.c's. Also: a
//! model over a profile's flash budget is refused at build time, saying what would fit.
mod common;

use std::path::Path;
use std::process::Command;

/// Tokens the firmware decodes (its build.rs embeds as many reference ids).
const TOKENS: usize = 16;

/// The ids llama2.c generates after BOS (`models/stories260K/ref/greedy.json`).
fn reference_ids(repo: &Path) -> Vec<u32> {
    let text = std::fs::read_to_string(repo.join("models/stories260K/ref/greedy.json"))
        .expect("read greedy.json");
    let start = text.find('[').expect("[");
    let end = start + text[start..].find(']').expect("]");
    let ids: Vec<u32> = text[start + 1..end]
        .split(',')
        .map(|s| s.trim().parse().expect("id"))
        .collect();
    assert_eq!(ids[0], 1, "the reference starts with BOS");
    ids[1..].to_vec()
}

fn slm_aot_build(repo: &Path, target: &str, out: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_slm-aot"))
        .args([
            "build",
            "models/stories260K/stories260K_step_kv256.onnx",
            "--max-context",
            "256",
            "--name",
            "stories260k",
            "--target",
            target,
            // The float build: the profile's int8 default would change the weight bytes.
            "--quantize",
            "none",
            "-o",
        ])
        .arg(out)
        .current_dir(repo)
        .output()
        .expect("run slm-aot")
}

#[test]
fn stories260k_firmware_decodes_the_reference_ids_on_the_emulated_cortex_m55() {
    let qemu = Command::new("qemu-system-arm").arg("--version").output();
    assert!(
        qemu.is_ok_and(|o| o.status.success()),
        "qemu-system-arm is not installed: run scripts/setup.sh (it installs it with apt-get), \
         then run the tests again"
    );
    let repo = common::repo();
    let crate_dir = repo.join("examples/firmware-m55");
    let build = slm_aot_build(&repo, "cortex-m55", &crate_dir.join("gen"));
    assert!(
        build.status.success(),
        "slm-aot build failed:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );

    // Run cargo from the crate's folder so its `.cargo/config.toml` (target, linker script,
    // target-cpu) applies; flags from the outer build must not leak in.
    let target_dir = common::scratch("cargo-target-firmware-m55");
    let cargo = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet"])
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .expect("run cargo");
    assert!(
        cargo.status.success(),
        "firmware build failed:\n{}",
        String::from_utf8_lossy(&cargo.stderr)
    );
    let elf = target_dir.join("thumbv8m.main-none-eabihf/release/firmware-m55");

    // A hung firmware never exits: `timeout` turns that into exit status 124.
    let run = Command::new("timeout")
        .args([
            "120",
            "qemu-system-arm",
            "-machine",
            "mps3-an547",
            "-nographic",
            "-icount",
            "shift=0",
            "-semihosting-config",
            "enable=on,target=native",
            "-kernel",
        ])
        .arg(&elf)
        .output()
        .expect("run timeout qemu-system-arm");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "firmware exited with {:?} (124: timed out):\n{stdout}\n{}",
        run.status.code(),
        String::from_utf8_lossy(&run.stderr)
    );
    let ids: Vec<u32> = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ids:"))
        .unwrap_or_else(|| panic!("no `ids:` line in:\n{stdout}"))
        .split_whitespace()
        .map(|s| s.parse().expect("id"))
        .collect();
    assert_eq!(ids, reference_ids(&repo)[..TOKENS], "output:\n{stdout}");
    assert!(
        stdout.contains(&format!("{TOKENS} passed, 0 failed")),
        "output:\n{stdout}"
    );
    assert!(
        stdout.contains("stack high-water:"),
        "no stack measurement:\n{stdout}"
    );
}

/// The cortex-m55 profile with another flash budget, as a user's `--target path.toml`.
fn profile_with_flash(repo: &Path, dir: &Path, flash_bytes: usize) -> String {
    let shipped = std::fs::read_to_string(repo.join("targets/cortex-m55.toml")).expect("profile");
    assert!(shipped.contains("flash_bytes = 8388608"));
    let text = shipped
        .replace("name = \"cortex-m55\"", "name = \"tiny-flash\"")
        .replace(
            "flash_bytes = 8388608",
            &format!("flash_bytes = {flash_bytes}"),
        );
    let path = dir.join(format!("tiny-flash-{flash_bytes}.toml"));
    std::fs::write(&path, text).expect("write profile");
    path.display().to_string()
}

#[test]
fn a_model_over_the_flash_budget_is_refused_saying_what_would_fit() {
    let repo = common::repo();
    let dir = common::scratch("flash-budget");
    // The weight bytes the shipped profile's build plans (they move as passes fold
    // constants away); int8 ≈ 1/4 of them, int4 ≈ 1/8.
    let fitting = slm_aot_build(&repo, "cortex-m55", &dir.join("gen-fits"));
    assert!(
        fitting.status.success(),
        "{}",
        String::from_utf8_lossy(&fitting.stderr)
    );
    let lib = std::fs::read_to_string(dir.join("gen-fits/src/lib.rs")).expect("lib.rs");
    let weight_bytes: usize = lib
        .lines()
        .find_map(|l| l.strip_prefix("pub const WEIGHT_BYTES: usize = "))
        .and_then(|v| v.trim_end_matches(';').parse().ok())
        .expect("WEIGHT_BYTES in the generated crate");
    assert!(
        weight_bytes > 1_000_000,
        "stories260K has ~1.2 MB of f32 weights"
    );
    let cases = [
        (600_000, "int8 would fit"),
        (
            200_000,
            "would fit the 200000 bytes of flash available, with --quantize int4",
        ),
        (50_000, "use a smaller model or a target with more flash"),
    ];
    for (flash, expected) in cases {
        let profile = profile_with_flash(&repo, &dir, flash);
        let out = slm_aot_build(&repo, &profile, &dir.join(format!("gen-{flash}")));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "flash {flash}:\n{stderr}");
        assert!(
            stderr.contains(&format!(
                "the weights need {weight_bytes} bytes of flash, {} more than target `tiny-flash` has ({flash} bytes)",
                weight_bytes - flash
            )),
            "flash {flash}:\n{stderr}"
        );
        assert!(stderr.contains(expected), "flash {flash}:\n{stderr}");
        assert!(
            !dir.join(format!("gen-{flash}/src/lib.rs")).exists(),
            "a crate was written"
        );
    }
}
