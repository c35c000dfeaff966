//! Build script of a `slm-aot verify` firmware runner: puts `memory.x` on the linker's
//! search path (cortex-m-rt's `link.x` includes it).
fn main() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    std::fs::copy("memory.x", out.join("memory.x")).expect("copy memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
}
