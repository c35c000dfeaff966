//! Build script: puts `memory.x` on the linker's search path (cortex-m-rt's `link.x` includes
//! it) and turns the first tokens of `models/stories260K/ref/greedy.json` (llama2.c's greedy
//! decoding) into a generated constant array the firmware compares against.
use std::path::{Path, PathBuf};

/// Tokens decoded and checked on the board.
const TOKENS: usize = 16;

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir"));
    std::fs::copy(manifest.join("memory.x"), out.join("memory.x")).expect("copy memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");

    let reference = manifest.join("../../models/stories260K/ref/greedy.json");
    println!("cargo:rerun-if-changed={}", reference.display());
    let ids = first_id_list(&reference);
    // The reference starts with BOS, the prompt, not a generated token.
    let ids = ids
        .strip_prefix(&[1])
        .expect("greedy.json does not start with BOS (1)");
    assert!(
        ids.len() >= TOKENS,
        "{} holds {} ids, fewer than {TOKENS}",
        reference.display(),
        ids.len()
    );
    let list: Vec<String> = ids[..TOKENS].iter().map(u32::to_string).collect();
    let code = format!(
        "/// The first {TOKENS} ids llama2.c's greedy decoding generates after BOS (`models/stories260K/ref/greedy.json`).\n\
         pub const EXPECTED: [u32; {TOKENS}] = [{}];\n",
        list.join(", ")
    );
    std::fs::write(out.join("expected.rs"), code).expect("write expected.rs");
}

/// The integers of the first JSON array in the file (the reference holds one list of ids).
fn first_id_list(path: &Path) -> Vec<u32> {
    let text = std::fs::read_to_string(path).expect("read greedy.json");
    let start = text.find('[').expect("no `[` in greedy.json");
    let end = start + text[start..].find(']').expect("no `]` in greedy.json");
    text[start + 1..end]
        .split(',')
        .map(|s| s.trim().parse().expect("token id"))
        .collect()
}
