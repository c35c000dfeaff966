//! The generated code itself: an insta snapshot of a tiny model's crate, the committed copy
//! in `tests/generated/` kept identical to what the compiler emits now, and trybuild cases
//! showing the typed API rejects wrongly sized inputs at compile time.
mod common;

use slm_aot::pipeline;

fn tiny_mlp_build() -> pipeline::Build {
    let fx = common::fixtures()
        .into_iter()
        .find(|f| f.name == "tiny_mlp")
        .expect("tiny_mlp fixture");
    let mut opts = fx.build_options();
    opts.runtime_path = Some("../../../runtime-core".into());
    let out = common::repo().join("tests/generated/tiny_mlp");
    pipeline::build(&opts, &out).expect("build tiny_mlp")
}

fn text(build: &pipeline::Build, file: &str) -> String {
    String::from_utf8(build.generated.files[std::path::Path::new(file)].clone()).expect("utf-8")
}

#[test]
fn tiny_mlp_generated_code_snapshot() {
    let build = tiny_mlp_build();
    insta::assert_snapshot!("tiny_mlp_lib_rs", text(&build, "src/lib.rs"));
    insta::assert_snapshot!("tiny_mlp_model_ir", text(&build, "model.ir"));
    insta::assert_snapshot!("tiny_mlp_cargo_toml", text(&build, "Cargo.toml"));
}

#[test]
fn committed_generated_crate_is_what_the_compiler_emits() {
    let build = tiny_mlp_build();
    let dir = common::repo().join("tests/generated/tiny_mlp");
    let stale = build.generated.differences(&dir);
    assert!(
        stale.is_empty(),
        "tests/generated/tiny_mlp is stale in {stale:?}; regenerate with\n  slm-aot build tests/models/tiny_mlp/model.onnx --dim batch=2 -o tests/generated/tiny_mlp --name tiny-mlp --runtime-path ../../../runtime-core"
    );
}

#[test]
fn typed_api_rejects_wrong_sizes_at_compile_time() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/right_size.rs");
    cases.compile_fail("tests/ui/wrong_input_size.rs");
}
