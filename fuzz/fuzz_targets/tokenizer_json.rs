//! Fuzz target: arbitrary bytes as a `tokenizer.json` (or, when the first byte is `0xff`,
//! the rest as a llama2.c `tokenizer.bin`) through the reader and the baker; a baked table
//! is then opened by the runtime tokenizer and used to encode and decode a fixed text, so a
//! blob the runtime cannot read safely is caught too. Any panic, hang or unbounded
//! allocation is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runtime_core::tokenizer::Tokenizer;
use std::path::Path;

const TEXT: &str = "Hello, world! The quick brown fox — 123 jumps\tover «naïve» 日本語 <s> [CLS]  ";

fuzz_target!(|data: &[u8]| {
    let (name, bytes) = match data.split_first() {
        Some((0xff, rest)) => ("tokenizer.bin", rest),
        _ => ("tokenizer.json", data),
    };
    let Ok(spec) = slm_aot::tokenizer::parse(Path::new(name), bytes) else {
        return;
    };
    let Ok(blob) = slm_aot::tokenizer::bake(&spec) else {
        return;
    };
    let Ok(tokenizer) = Tokenizer::new(&blob) else {
        return;
    };
    let mut ids = [0u32; 256];
    if let Ok(n) = tokenizer.encode(TEXT, &mut ids) {
        let mut text = String::new();
        let _ = tokenizer.decode(ids.get(..n).unwrap_or(&[]), &mut text);
    }
});
