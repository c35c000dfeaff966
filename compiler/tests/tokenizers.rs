//! Baked tokenizers agree with the reference implementations on a committed corpus
//! (`tests/tokenizers/`: plain text, unicode, whitespace runs, unknown characters, emoji):
//! BERT's WordPiece, a GPT-2 style byte-level BPE and a Llama style SentencePiece BPE
//! and a SentencePiece style Unigram (both with byte fallback) with Hugging Face `tokenizers`, llama2.c's 32K BPE with SentencePiece;
//! and decoding the ids gives the reference implementation's text.
mod common;

use runtime_core::tokenizer::Tokenizer;

fn corpus() -> Vec<String> {
    let text = std::fs::read_to_string(common::repo().join("tests/tokenizers/corpus.json"))
        .expect("corpus");
    serde_json::from_str(&text).expect("corpus json")
}

fn reference<T: serde::de::DeserializeOwned>(name: &str) -> Vec<T> {
    let text = std::fs::read_to_string(common::repo().join("tests/tokenizers/reference.json"))
        .expect("reference");
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    let list: Vec<T> = serde_json::from_value(json[name].clone()).expect(name);
    assert_eq!(list.len(), corpus().len(), "{name}: one reference per text");
    list
}

fn baked(name: &str) -> Vec<u8> {
    let path = common::repo().join("tests/tokenizers").join(name);
    let spec = slm_aot::tokenizer::load(&path).expect("load");
    slm_aot::tokenizer::bake(&spec).expect("bake")
}

#[test]
fn tokenizers_match_the_reference_implementations_on_the_corpus() {
    let corpus = corpus();
    let mut failures = Vec::new();
    for name in [
        "bert-base-uncased.json",
        "llama2c-32k.bin",
        "gpt2-bytelevel-bpe.json",
        "llama-sp-bpe.json",
        "sp-unigram.json",
        "llama-sp-bpe-unk.json",
        "sp-unigram-unk.json",
    ] {
        let blob = baked(name);
        let tokenizer = Tokenizer::new(&blob).expect("blob");
        for (text, want) in corpus.iter().zip(reference::<Vec<u32>>(name)) {
            let mut ids = [0u32; 512];
            let n = tokenizer.encode(text, &mut ids).expect("encode");
            if ids[..n] != want[..] {
                failures.push(format!(
                    "{name}: {text:?}\n  got  {:?}\n  want {want:?}",
                    &ids[..n]
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn decoding_matches_the_reference_implementations_and_small_buffers_are_errors() {
    for name in [
        "llama2c-32k.bin",
        "gpt2-bytelevel-bpe.json",
        "llama-sp-bpe.json",
        "sp-unigram.json",
        "llama-sp-bpe-unk.json",
        "sp-unigram-unk.json",
    ] {
        let blob = baked(name);
        let tokenizer = Tokenizer::new(&blob).expect("blob");
        let decoded: Vec<String> = reference(&format!("decoded:{name}"));
        for (text, want) in corpus().iter().zip(&decoded) {
            let mut ids = [0u32; 512];
            let n = tokenizer.encode(text, &mut ids).expect("encode");
            let mut back = String::new();
            tokenizer.decode(&ids[..n], &mut back).expect("decode");
            assert_eq!(&back, want, "{name}: decoding {text:?}");
        }
        let mut tiny = [0u32; 2];
        assert!(tokenizer.encode("Once upon a time", &mut tiny).is_err());
    }

    let blob = baked("bert-base-uncased.json");
    let bert = Tokenizer::new(&blob).expect("blob");
    let mut ids = [0u32; 64];
    let n = bert
        .encode("Hello, WORLD! unaffable", &mut ids)
        .expect("encode");
    let mut back = String::new();
    bert.decode(&ids[..n], &mut back).expect("decode");
    assert_eq!(back, "hello , world ! unaffable");
    assert!(Tokenizer::new(&blob[..40]).is_err());
}

#[test]
fn unsupported_tokenizer_json_features_are_errors_naming_the_field() {
    let dir = common::scratch("tokenizer-errors");
    let fixture = |name: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(common::repo().join("tests/tokenizers").join(name))
            .expect("fixture");
        serde_json::from_str(&text).expect("json")
    };
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit, &str); 9] = [
        (
            "gpt2-bytelevel-bpe.json",
            |j| j["normalizer"] = serde_json::json!({"type": "NFC"}),
            "normalizer",
        ),
        (
            "gpt2-bytelevel-bpe.json",
            |j| j["added_tokens"][0]["lstrip"] = true.into(),
            "lstrip",
        ),
        (
            "gpt2-bytelevel-bpe.json",
            |j| j["model"]["dropout"] = 0.1.into(),
            "dropout",
        ),
        (
            "llama-sp-bpe.json",
            |j| j["post_processor"] = serde_json::json!({"type": "RobertaProcessing"}),
            "post_processor",
        ),
        (
            "llama-sp-bpe.json",
            |j| j["decoder"] = serde_json::json!({"type": "Metaspace"}),
            "decoder",
        ),
        (
            "llama-sp-bpe.json",
            |j| j["model"]["continuing_subword_prefix"] = "##".into(),
            "continuing_subword_prefix",
        ),
        (
            "sp-unigram.json",
            |j| j["pre_tokenizer"]["prepend_scheme"] = "first".into(),
            "prepend_scheme",
        ),
        (
            "sp-unigram.json",
            |j| j["normalizer"] = serde_json::json!({"type": "Precompiled"}),
            "normalizer",
        ),
        (
            "bert-base-uncased.json",
            |j| j["model"]["type"] = "WordLevel".into(),
            "model type",
        ),
    ];
    for (i, (name, edit, field)) in cases.into_iter().enumerate() {
        let mut json = fixture(name);
        edit(&mut json);
        let path = dir.join(format!("case{i}.json"));
        std::fs::write(&path, json.to_string()).expect("write");
        let message = match slm_aot::tokenizer::load(&path) {
            Ok(_) => panic!("{name} case {i}: accepted"),
            Err(e) => e.to_string(),
        };
        assert!(
            message.contains(field),
            "{name} case {i}: `{message}` does not name `{field}`"
        );
    }
}
