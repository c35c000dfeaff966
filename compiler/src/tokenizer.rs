//! Baking tokenizers into generated crates: read a Hugging Face `tokenizer.json`
//! (WordPiece) or a llama2.c `tokenizer.bin` (BPE by scores, byte fallback) and write the
//! blob `runtime_core::tokenizer::Tokenizer` reads in place (layout documented there).
use crate::codegen::GeneratedCrate;
use crate::error::{Error, Result};
use runtime_core::tokenizer::{Field, HEADER_WORDS, Kind, MAGIC, NONE, VERSION, flags};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A tokenizer's content before baking.
#[derive(Debug, Clone)]
pub struct TokenizerSpec {
    pub kind: Kind,
    pub pieces: Vec<Vec<u8>>,
    pub scores: Option<Vec<f32>>,
    pub flags: u32,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub unk: Option<u32>,
    pub cls: Option<u32>,
    pub sep: Option<u32>,
    pub pad: Option<u32>,
    pub max_word_chars: u32,
}

fn bad(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::InvalidModel(format!("tokenizer `{}`: {reason}", path.display()))
}

/// The tokenizer file a checkpoint folder ships, if any.
pub fn find_in_checkpoint(dir: &Path) -> Option<PathBuf> {
    ["tokenizer.json", "tokenizer.bin"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
}

/// Read `tokenizer.json` or a llama2.c `tokenizer.bin`.
pub fn load(path: &Path) -> Result<TokenizerSpec> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if path.extension().is_some_and(|e| e == "json") {
        let json: Value = serde_json::from_slice(&bytes).map_err(|e| bad(path, e))?;
        from_json(path, &json)
    } else {
        from_llama2c(path, &bytes)
    }
}

/// llama2.c's format: `i32 max_token_length`, then per token `f32 score, i32 len, bytes`.
fn from_llama2c(path: &Path, bytes: &[u8]) -> Result<TokenizerSpec> {
    let take = |at: &mut usize| -> Result<[u8; 4]> {
        let b = bytes
            .get(*at..*at + 4)
            .ok_or_else(|| bad(path, format!("truncated at byte {at}")))?;
        *at += 4;
        Ok([b[0], b[1], b[2], b[3]])
    };
    let mut at = 0;
    let max_len = i32::from_le_bytes(take(&mut at)?);
    let (mut pieces, mut scores) = (Vec::new(), Vec::new());
    while at < bytes.len() {
        let score = f32::from_le_bytes(take(&mut at)?);
        let len = i32::from_le_bytes(take(&mut at)?);
        if len < 0 || len > max_len.max(0) {
            return Err(bad(
                path,
                format!("token {}: length {len} outside 0..={max_len}", pieces.len()),
            ));
        }
        let piece = bytes
            .get(at..at + len as usize)
            .ok_or_else(|| bad(path, format!("truncated in token {}", pieces.len())))?;
        at += len as usize;
        pieces.push(piece.to_vec());
        scores.push(score);
    }
    let find = |s: &[u8]| pieces.iter().position(|p| p == s).map(|i| i as u32);
    Ok(TokenizerSpec {
        kind: Kind::BpeScores,
        flags: flags::ADD_DUMMY_PREFIX | flags::BYTE_FALLBACK,
        bos: find(b"<s>").or(Some(1)),
        eos: find(b"</s>").or(Some(2)),
        unk: find(b"<unk>"),
        cls: None,
        sep: None,
        pad: None,
        max_word_chars: 0,
        scores: Some(scores),
        pieces,
    })
}

fn from_json(path: &Path, json: &Value) -> Result<TokenizerSpec> {
    let model = json.get("model").ok_or_else(|| bad(path, "no `model`"))?;
    let kind = model.get("type").and_then(Value::as_str).unwrap_or("");
    if kind != "WordPiece" {
        return Err(Error::UnsupportedModel(format!(
            "tokenizer `{}`: model type `{kind}` is not supported yet (WordPiece is; llama2.c \
             tokenizer.bin files are)",
            path.display()
        )));
    }
    let vocab = model
        .get("vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| bad(path, "model.vocab is not an object"))?;
    let mut pieces = vec![Vec::new(); vocab.len()];
    for (piece, id) in vocab {
        let id = id
            .as_u64()
            .filter(|&i| (i as usize) < pieces.len())
            .ok_or_else(|| bad(path, format!("token `{piece}` has id {id}")))?;
        pieces[id as usize] = piece.as_bytes().to_vec();
    }
    let prefix = model
        .get("continuing_subword_prefix")
        .and_then(Value::as_str)
        .unwrap_or("##");
    if prefix != "##" {
        return Err(bad(
            path,
            format!("continuing_subword_prefix `{prefix}` (only ## is supported)"),
        ));
    }
    let id_of = |s: &str| vocab.get(s).and_then(Value::as_u64).map(|i| i as u32);
    let mut f = 0;
    match json.get("normalizer") {
        Some(n) if n.get("type").and_then(Value::as_str) == Some("BertNormalizer") => {
            let get = |k: &str| n.get(k).and_then(Value::as_bool);
            let lower = get("lowercase").unwrap_or(true);
            if get("clean_text").unwrap_or(true) {
                f |= flags::CLEAN_TEXT;
            }
            if get("handle_chinese_chars").unwrap_or(true) {
                f |= flags::CHINESE_CHARS;
            }
            if lower {
                f |= flags::LOWERCASE;
            }
            // strip_accents: null follows lowercase.
            if get("strip_accents").unwrap_or(lower) {
                f |= flags::STRIP_ACCENTS;
            }
        }
        Some(Value::Null) | None => {}
        Some(other) => {
            return Err(Error::UnsupportedModel(format!(
                "tokenizer `{}`: normalizer {} is not supported (BertNormalizer is)",
                path.display(),
                other.get("type").unwrap_or(&Value::Null)
            )));
        }
    }
    let pre = json
        .get("pre_tokenizer")
        .and_then(|p| p.get("type"))
        .and_then(Value::as_str);
    if pre != Some("BertPreTokenizer") {
        return Err(Error::UnsupportedModel(format!(
            "tokenizer `{}`: pre_tokenizer {pre:?} is not supported (BertPreTokenizer is)",
            path.display()
        )));
    }
    let (cls, sep) = (id_of("[CLS]"), id_of("[SEP]"));
    let template = json
        .get("post_processor")
        .and_then(|p| p.get("type"))
        .and_then(Value::as_str);
    if matches!(template, Some("TemplateProcessing" | "BertProcessing"))
        && cls.is_some()
        && sep.is_some()
    {
        f |= flags::CLS_SEP;
    }
    let unk = model
        .get("unk_token")
        .and_then(Value::as_str)
        .and_then(id_of);
    Ok(TokenizerSpec {
        kind: Kind::WordPiece,
        pieces,
        scores: None,
        flags: f,
        bos: None,
        eos: None,
        unk,
        cls,
        sep,
        pad: id_of("[PAD]"),
        max_word_chars: model
            .get("max_input_chars_per_word")
            .and_then(Value::as_u64)
            .unwrap_or(100) as u32,
    })
}

/// The blob `runtime_core::tokenizer::Tokenizer::new` reads.
pub fn bake(spec: &TokenizerSpec) -> Result<Vec<u8>> {
    let n = spec.pieces.len();
    let limit = |what: &str| Error::Limit(format!("tokenizer {what} exceed 4 GiB"));
    let mut header = [0u32; HEADER_WORDS];
    let mut set = |f: Field, v: u32| header[f as usize] = v;
    set(Field::Magic, MAGIC);
    set(Field::Version, VERSION);
    set(Field::Kind, spec.kind as u32);
    set(Field::Vocab, u32::try_from(n).map_err(|_| limit("tokens"))?);
    set(Field::Flags, spec.flags);
    set(Field::Bos, spec.bos.unwrap_or(NONE));
    set(Field::Eos, spec.eos.unwrap_or(NONE));
    set(Field::Unk, spec.unk.unwrap_or(NONE));
    set(Field::Cls, spec.cls.unwrap_or(NONE));
    set(Field::Sep, spec.sep.unwrap_or(NONE));
    set(Field::Pad, spec.pad.unwrap_or(NONE));
    set(Field::MaxWordChars, spec.max_word_chars);
    let byte_base = spec
        .pieces
        .iter()
        .position(|p| p == b"<0x00>")
        .filter(|&i| {
            (0..256).all(|b| {
                spec.pieces.get(i + b).map(Vec::as_slice) == Some(format!("<0x{b:02X}>").as_bytes())
            })
        });
    set(
        Field::ByteFallbackBase,
        byte_base.map_or(NONE, |i| i as u32),
    );
    let offsets_at = HEADER_WORDS * 4;
    let sorted_at = offsets_at + (n + 1) * 4;
    let scores_at = sorted_at + n * 4;
    let strings_at = scores_at + if spec.scores.is_some() { n * 4 } else { 0 };
    let total_strings: usize = spec.pieces.iter().map(Vec::len).sum();
    if strings_at + total_strings > u32::MAX as usize {
        return Err(limit("tables"));
    }
    set(Field::OffsetsAt, offsets_at as u32);
    set(Field::SortedAt, sorted_at as u32);
    set(
        Field::ScoresAt,
        if spec.scores.is_some() {
            scores_at as u32
        } else {
            0
        },
    );
    set(Field::StringsAt, strings_at as u32);
    let mut blob: Vec<u8> = header.iter().flat_map(|w| w.to_le_bytes()).collect();
    let mut offset = 0u32;
    for p in &spec.pieces {
        blob.extend_from_slice(&offset.to_le_bytes());
        offset += p.len() as u32;
    }
    blob.extend_from_slice(&offset.to_le_bytes());
    let mut sorted: Vec<u32> = (0..n as u32).collect();
    sorted.sort_by(|&a, &b| {
        spec.pieces[a as usize]
            .cmp(&spec.pieces[b as usize])
            .then(a.cmp(&b))
    });
    for id in sorted {
        blob.extend_from_slice(&id.to_le_bytes());
    }
    if let Some(scores) = &spec.scores {
        for s in scores {
            blob.extend_from_slice(&s.to_le_bytes());
        }
    }
    for p in &spec.pieces {
        blob.extend_from_slice(p);
    }
    Ok(blob)
}

/// Add a baked tokenizer to a generated crate: `tokenizer.bin` and `tokenizer()`.
pub fn add_to_crate(generated: &mut GeneratedCrate, blob: Vec<u8>) -> Result<()> {
    let lib = PathBuf::from("src/lib.rs");
    let text = generated
        .files
        .get(&lib)
        .ok_or_else(|| Error::Internal("generated crate has no lib.rs".into()))?;
    let mut text = String::from_utf8_lossy(text).into_owned();
    text.push_str(&format!(
        "\n/// Bytes of the baked tokenizer tables (`tokenizer.bin`).\npub const TOKENIZER_BYTES: usize = {};\n\
         static TOKENIZER: [u8; TOKENIZER_BYTES] = *include_bytes!(\"../tokenizer.bin\");\n\n\
         /// The model's tokenizer, baked into the crate: `encode` into your id buffer, `decode` into\n\
         /// any `core::fmt::Write`; no allocation.\n\
         pub fn tokenizer() -> Result<rt::tokenizer::Tokenizer<'static>, rt::tokenizer::TokenizerError> {{\n    \
         rt::tokenizer::Tokenizer::new(&TOKENIZER)\n}}\n",
        blob.len()
    ));
    generated.files.insert(lib, text.into_bytes());
    generated.files.insert(PathBuf::from("tokenizer.bin"), blob);
    Ok(())
}
