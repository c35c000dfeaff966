//! Baking tokenizers into generated crates: read a Hugging Face `tokenizer.json`
//! (WordPiece; BPE, byte-level as GPT-2's or SentencePiece style with byte fallback as
//! Llama's) or a llama2.c `tokenizer.bin` (BPE by scores, byte fallback) and write the
//! blob `runtime_core::tokenizer::Tokenizer` reads in place (layout documented there).
//! A `tokenizer.json` feature the runtime does not implement is an error naming the
//! field, never a tokenizer that gives different ids.
#![deny(clippy::indexing_slicing)]
use crate::codegen::GeneratedCrate;
use crate::error::{Error, Result};
use runtime_core::tokenizer::{Field, HEADER_WORDS, Kind, MAGIC, NONE, VERSION, flags};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A tokenizer's content before baking.
#[derive(Debug, Clone)]
pub struct TokenizerSpec {
    pub kind: Kind,
    pub pieces: Vec<Vec<u8>>,
    /// Piece scores: f32 merge scores (BPE by scores) or f64 log probabilities (Unigram).
    pub scores: Option<Vec<f64>>,
    /// Unigram: the longest piece (bytes) and the score of an unknown character.
    pub max_piece_bytes: u32,
    pub unk_score: f64,
    pub flags: u32,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub unk: Option<u32>,
    pub cls: Option<u32>,
    pub sep: Option<u32>,
    pub pad: Option<u32>,
    pub max_word_chars: u32,
    /// BPE merges `(left, right, rank, result)`.
    pub merges: Vec<[u32; 4]>,
    /// Added tokens the text is split on first: `(id, special)`.
    pub added: Vec<(u32, bool)>,
}

fn unsupported(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::UnsupportedModel(format!("tokenizer `{}`: {what}", path.display()))
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
    parse(path, &bytes)
}

/// Read a tokenizer from bytes already in memory: `tokenizer.json` when `path` ends in
/// `.json`, else llama2.c's `tokenizer.bin`. `path` only names the file in errors (the
/// fuzzing entry point).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<TokenizerSpec> {
    if path.extension().is_some_and(|e| e == "json") {
        let json: Value = serde_json::from_slice(bytes).map_err(|e| bad(path, e))?;
        from_json(path, &json)
    } else {
        from_llama2c(path, bytes)
    }
}

/// llama2.c's format: `i32 max_token_length`, then per token `f32 score, i32 len, bytes`.
fn from_llama2c(path: &Path, bytes: &[u8]) -> Result<TokenizerSpec> {
    let take = |at: &mut usize| -> Result<[u8; 4]> {
        let b = bytes
            .get(*at..)
            .and_then(<[u8]>::first_chunk::<4>)
            .ok_or_else(|| bad(path, format!("truncated at byte {at}")))?;
        *at += 4;
        Ok(*b)
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
        scores.push(f64::from(score));
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
        merges: Vec::new(),
        added: Vec::new(),
        max_piece_bytes: 0,
        unk_score: 0.0,
    })
}

/// The added tokens (`added_tokens`): `(id, content, special)`; options that change how
/// they match are refused.
fn added_tokens(path: &Path, json: &Value) -> Result<Vec<(u32, String, bool)>> {
    let Some(list) = json.get("added_tokens") else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| bad(path, "added_tokens is not an array"))?;
    let normalizer = !matches!(json.get("normalizer"), None | Some(Value::Null));
    let mut out = Vec::new();
    for (i, t) in list.iter().enumerate() {
        let flag = |k: &str| t.get(k).and_then(Value::as_bool).unwrap_or(false);
        let content = t
            .get("content")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(path, format!("added_tokens[{i}].content is not a string")))?;
        let id = t
            .get("id")
            .and_then(Value::as_u64)
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(|| bad(path, format!("added_tokens[{i}].id is not a token id")))?;
        for option in ["single_word", "lstrip", "rstrip"] {
            if flag(option) {
                return Err(unsupported(
                    path,
                    format!("added_tokens[{i}] (`{content}`): `{option}: true` is not supported"),
                ));
            }
        }
        if flag("normalized") && normalizer {
            return Err(unsupported(
                path,
                format!(
                    "added_tokens[{i}] (`{content}`): `normalized: true` with a normalizer is \
                     not supported"
                ),
            ));
        }
        out.push((id, content.to_owned(), flag("special")));
    }
    Ok(out)
}

/// Put the added tokens' text into the piece table (growing it for ids past the model's
/// vocabulary) and list them.
fn place_added(
    path: &Path,
    pieces: &mut Vec<Vec<u8>>,
    added: &[(u32, String, bool)],
) -> Result<Vec<(u32, bool)>> {
    let mut list = Vec::new();
    for (id, content, special) in added {
        let i = *id as usize;
        if i > pieces.len() + added.len() {
            return Err(bad(path, format!("added token `{content}` has id {id}")));
        }
        if pieces.len() <= i {
            pieces.resize(i + 1, Vec::new());
        }
        let slot = pieces
            .get_mut(i)
            .ok_or_else(|| bad(path, format!("added token `{content}` has id {id}")))?;
        *slot = content.as_bytes().to_vec();
        list.push((*id, *special));
    }
    Ok(list)
}

/// GPT-2's byte-to-unicode map: printable bytes stand for themselves, the others for
/// U+0100 onwards.
fn byte_level_chars() -> [char; 256] {
    let mut map = ['\0'; 256];
    let mut next = 256u32;
    for (b, slot) in (0..=255u8).zip(map.iter_mut()) {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        *slot = if printable {
            b as char
        } else {
            let c = char::from_u32(next).unwrap_or('\0');
            next += 1;
            c
        };
    }
    map
}

/// The string of a merge (`"a b"` or `["a", "b"]`).
fn merge_pair(merge: &Value) -> Option<(String, String)> {
    match merge {
        Value::String(s) => {
            let (a, b) = s.split_once(' ')?;
            Some((a.to_owned(), b.to_owned()))
        }
        Value::Array(pair) => match pair.as_slice() {
            [Value::String(a), Value::String(b)] => Some((a.clone(), b.clone())),
            _ => None,
        },
        _ => None,
    }
}

fn type_of(v: Option<&Value>) -> Option<&str> {
    v.and_then(|v| v.get("type")).and_then(Value::as_str)
}

/// Whether a normalizer is Llama's `Prepend("▁")` + `Replace(" ", "▁")`.
fn is_metaspace_normalizer(n: &Value) -> bool {
    let Some(list) = n.get("normalizers").and_then(Value::as_array) else {
        return false;
    };
    let prepend = |v: &Value| {
        type_of(Some(v)) == Some("Prepend") && v.get("prepend").and_then(Value::as_str) == Some("▁")
    };
    let replace = |v: &Value| {
        type_of(Some(v)) == Some("Replace")
            && v.get("pattern")
                .and_then(|p| p.get("String"))
                .and_then(Value::as_str)
                == Some(" ")
            && v.get("content").and_then(Value::as_str) == Some("▁")
    };
    type_of(Some(n)) == Some("Sequence")
        && matches!(list.as_slice(), [a, b] if (prepend(a) && replace(b)) || (replace(a) && prepend(b)))
}

/// The flags of SentencePiece-style text handling (`▁` for spaces): Llama's normalizer
/// `Prepend("▁")` + `Replace(" ", "▁")` with no pre-tokenizer, or a `Metaspace`
/// pre-tokenizer with no normalizer; Llama's decoder (`▁` → space, byte
/// fallback, fuse, strip one leading space).
fn sentencepiece_flags(path: &Path, json: &Value) -> Result<u32> {
    let normalizer = json.get("normalizer").filter(|v| !v.is_null());
    let pre = json.get("pre_tokenizer").filter(|v| !v.is_null());
    let mut f = flags::METASPACE;
    match (normalizer, type_of(pre)) {
        (Some(n), None) if is_metaspace_normalizer(n) => f |= flags::ADD_DUMMY_PREFIX,
        (None, Some("Metaspace")) => {
            let p = pre.unwrap_or(&Value::Null);
            if p.get("replacement").and_then(Value::as_str) != Some("▁") {
                return Err(unsupported(
                    path,
                    "pre_tokenizer.replacement other than `▁`",
                ));
            }
            if p.get("split").and_then(Value::as_bool).unwrap_or(true) {
                f |= flags::METASPACE_SPLIT;
            }
            let legacy = p.get("add_prefix_space").and_then(Value::as_bool);
            match (p.get("prepend_scheme").and_then(Value::as_str), legacy) {
                (Some("always"), _) | (None, Some(true)) => f |= flags::PREFIX_UNLESS_SPACE,
                (Some("never"), _) | (None, Some(false)) => {}
                (other, _) => {
                    return Err(unsupported(
                        path,
                        format!("pre_tokenizer.prepend_scheme {other:?} is not supported"),
                    ));
                }
            }
        }
        _ => {
            return Err(unsupported(
                path,
                format!(
                    "normalizer {:?} with pre_tokenizer {:?} is not supported (byte-level BPE: \
                     no normalizer and a ByteLevel pre_tokenizer; SentencePiece style: the \
                     Prepend(\"▁\") + Replace(\" \", \"▁\") normalizer and no pre_tokenizer, or \
                     no normalizer and a Metaspace pre_tokenizer)",
                    type_of(normalizer),
                    type_of(pre)
                ),
            ));
        }
    }
    let decoder = json.get("decoder").unwrap_or(&Value::Null);
    let steps = decoder.get("decoders").and_then(Value::as_array);
    let llama = serde_json::json!([
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
        {"type": "ByteFallback"},
        {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0},
    ]);
    if type_of(Some(decoder)) != Some("Sequence") || steps != llama.as_array() {
        return Err(unsupported(
            path,
            "decoder: only Llama's Sequence [Replace(\"▁\", \" \"), ByteFallback, Fuse, \
             Strip(\" \", 1, 0)] is supported with `▁` text handling",
        ));
    }
    Ok(f)
}

/// SentencePiece-style pieces as stored: `▁` is a space. Two pieces that become the same
/// bytes are refused.
fn check_unique(path: &Path, pieces: &[Vec<u8>]) -> Result<()> {
    let mut seen = HashMap::new();
    for (id, p) in pieces.iter().enumerate() {
        if let Some(other) = seen.insert(p.as_slice(), id) {
            return Err(unsupported(
                path,
                format!(
                    "tokens {other} and {id} have the same text `{}` once stored as bytes",
                    String::from_utf8_lossy(p)
                ),
            ));
        }
    }
    Ok(())
}

/// A `post_processor` as the special tokens it puts before and after a single text:
/// `TemplateProcessing` (`single` = at most one special token, `$A`, at most one special
/// token) or `BertProcessing`; null adds nothing. Anything else is refused.
fn template(path: &Path, json: &Value) -> Result<(Option<u32>, Option<u32>)> {
    let post = json.get("post_processor").unwrap_or(&Value::Null);
    let refuse = |why: &str| {
        unsupported(
            path,
            format!(
                "post_processor {}: {why}",
                type_of(Some(post)).unwrap_or("?")
            ),
        )
    };
    match type_of(Some(post)) {
        None => Ok((None, None)),
        Some("BertProcessing") => {
            let id = |k: &str| {
                post.get(k)
                    .and_then(|v| v.get(1))
                    .and_then(Value::as_u64)
                    .map(|i| i as u32)
                    .ok_or_else(|| refuse(&format!("`{k}` is not [token, id]")))
            };
            Ok((Some(id("cls")?), Some(id("sep")?)))
        }
        Some("TemplateProcessing") => {
            let single = post
                .get("single")
                .and_then(Value::as_array)
                .ok_or_else(|| refuse("no `single` template"))?;
            let special = |piece: &Value| -> Result<Option<u32>> {
                let Some(name) = piece
                    .get("SpecialToken")
                    .and_then(|s| s.get("id"))
                    .and_then(Value::as_str)
                else {
                    return Ok(None);
                };
                let ids = post
                    .get("special_tokens")
                    .and_then(|t| t.get(name))
                    .and_then(|t| t.get("ids"))
                    .and_then(Value::as_array);
                match ids.map(Vec::as_slice) {
                    Some([id]) => Ok(id.as_u64().map(|i| i as u32)),
                    _ => Err(refuse(&format!("special token `{name}` is not one id"))),
                }
            };
            let is_a = |piece: &Value| {
                piece
                    .get("Sequence")
                    .and_then(|s| s.get("id"))
                    .and_then(Value::as_str)
                    == Some("A")
            };
            let a = single
                .iter()
                .position(is_a)
                .ok_or_else(|| refuse("`single` has no $A"))?;
            let before = single.get(..a).unwrap_or_default();
            let after = single.get(a + 1..).unwrap_or_default();
            if before.len() > 1 || after.len() > 1 {
                return Err(refuse("`single` adds more than one token on a side"));
            }
            let side = |s: &[Value]| -> Result<Option<u32>> {
                match s.first() {
                    None => Ok(None),
                    Some(p) => special(p)?
                        .map(Some)
                        .ok_or_else(|| refuse("`single` has an entry that is not a special token")),
                }
            };
            Ok((side(before)?, side(after)?))
        }
        Some(other) => Err(unsupported(
            path,
            format!("post_processor `{other}` is not supported"),
        )),
    }
}

/// A `tokenizer.json` Unigram model (SentencePiece style).
fn from_json_unigram(path: &Path, json: &Value, model: &Value) -> Result<TokenizerSpec> {
    let mut f = sentencepiece_flags(path, json)?;
    if model
        .get("byte_fallback")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        f |= flags::BYTE_FALLBACK;
    }
    let vocab = model
        .get("vocab")
        .and_then(Value::as_array)
        .ok_or_else(|| bad(path, "model.vocab is not an array"))?;
    let mut pieces = Vec::with_capacity(vocab.len());
    let mut scores = Vec::with_capacity(vocab.len());
    for (i, entry) in vocab.iter().enumerate() {
        let (Some(piece), Some(score)) = (
            entry.get(0).and_then(Value::as_str),
            entry.get(1).and_then(Value::as_f64),
        ) else {
            return Err(bad(path, format!("model.vocab[{i}] is not [piece, score]")));
        };
        pieces.push(piece.replace('▁', " ").into_bytes());
        scores.push(score);
    }
    let unk = match model.get("unk_id") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|&i| (i as usize) < pieces.len())
                .ok_or_else(|| bad(path, format!("model.unk_id {v} is not a token")))?
                as u32,
        ),
    };
    let max_piece_bytes = pieces.iter().map(Vec::len).max().unwrap_or(0);
    let min_score = scores.iter().copied().fold(f64::INFINITY, f64::min);
    let added = added_tokens(path, json)?;
    let added = place_added(path, &mut pieces, &added)?;
    scores.resize(pieces.len(), 0.0);
    check_unique(path, &pieces)?;
    let find = |s: &str| {
        pieces
            .iter()
            .position(|p| p == s.as_bytes())
            .map(|i| i as u32)
    };
    let (cls, sep) = template(path, json)?;
    if cls.is_some() || sep.is_some() {
        f |= flags::CLS_SEP;
    }
    Ok(TokenizerSpec {
        kind: Kind::Unigram,
        flags: f,
        bos: find("<s>"),
        eos: find("</s>"),
        unk,
        cls,
        sep,
        pad: find("<pad>"),
        max_word_chars: 0,
        scores: Some(scores),
        max_piece_bytes: max_piece_bytes as u32,
        unk_score: min_score - 10.0,
        merges: Vec::new(),
        added,
        pieces,
    })
}

/// A `tokenizer.json` BPE model: byte-level (GPT-2) or SentencePiece style (Llama).
fn from_json_bpe(path: &Path, json: &Value, model: &Value) -> Result<TokenizerSpec> {
    let get_bool = |k: &str| model.get(k).and_then(Value::as_bool).unwrap_or(false);
    let get_str = |k: &str| {
        model
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if model
        .get("dropout")
        .and_then(Value::as_f64)
        .is_some_and(|d| d > 0.0)
    {
        return Err(unsupported(
            path,
            "model.dropout (BPE dropout) is not supported",
        ));
    }
    for field in ["continuing_subword_prefix", "end_of_word_suffix"] {
        if let Some(v) = get_str(field) {
            return Err(unsupported(
                path,
                format!("model.{field} `{v}` is not supported"),
            ));
        }
    }
    let normalizer = json.get("normalizer").filter(|v| !v.is_null());
    let pre = json.get("pre_tokenizer").filter(|v| !v.is_null());
    let mut f = 0;
    let byte_level = normalizer.is_none() && type_of(pre) == Some("ByteLevel");
    if byte_level {
        let p = pre.unwrap_or(&Value::Null);
        f |= flags::BYTE_LEVEL;
        if p.get("add_prefix_space")
            .and_then(Value::as_bool)
            .unwrap_or(true)
        {
            f |= flags::ADD_PREFIX_SPACE;
        }
        if p.get("use_regex").and_then(Value::as_bool).unwrap_or(true) {
            f |= flags::GPT2_SPLIT;
        }
        if type_of(json.get("decoder")) != Some("ByteLevel") {
            return Err(unsupported(
                path,
                format!(
                    "decoder {:?} with a ByteLevel pre_tokenizer is not supported (ByteLevel is)",
                    type_of(json.get("decoder"))
                ),
            ));
        }
    } else {
        f |= sentencepiece_flags(path, json)?;
    }
    if get_bool("byte_fallback") {
        f |= flags::BYTE_FALLBACK;
    }
    if get_bool("fuse_unk") {
        f |= flags::FUSE_UNK;
    }
    if get_bool("ignore_merges") {
        f |= flags::IGNORE_MERGES;
    }
    let vocab = model
        .get("vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| bad(path, "model.vocab is not an object"))?;
    let added = added_tokens(path, json)?;
    let is_added: std::collections::HashSet<u32> = added.iter().map(|a| a.0).collect();
    let unbyte: HashMap<char, u8> = byte_level_chars()
        .iter()
        .enumerate()
        .map(|(b, &c)| (c, b as u8))
        .collect();
    let mut pieces = vec![Vec::new(); vocab.len()];
    for (piece, id) in vocab {
        let (id, slot) = id
            .as_u64()
            .and_then(|i| Some((i, pieces.get_mut(usize::try_from(i).ok()?)?)))
            .ok_or_else(|| bad(path, format!("token `{piece}` has id {id}")))?;
        *slot = if is_added.contains(&(id as u32)) {
            piece.as_bytes().to_vec()
        } else if byte_level {
            piece
                .chars()
                .map(|c| unbyte.get(&c).copied())
                .collect::<Option<Vec<u8>>>()
                .ok_or_else(|| {
                    bad(
                        path,
                        format!(
                            "byte-level token `{piece}` has a character outside the byte alphabet"
                        ),
                    )
                })?
        } else {
            piece.replace('▁', " ").into_bytes()
        };
    }
    let added = place_added(path, &mut pieces, &added)?;
    check_unique(path, &pieces)?;
    let id_of = |s: &str| vocab.get(s).and_then(Value::as_u64).map(|i| i as u32);
    let merges_json = model
        .get("merges")
        .and_then(Value::as_array)
        .ok_or_else(|| bad(path, "model.merges is not an array"))?;
    // Later duplicates win, as in `tokenizers`' merge map.
    let mut merge_map: HashMap<(u32, u32), (u32, u32)> = HashMap::new();
    for (rank, m) in merges_json.iter().enumerate() {
        let (a, b) = merge_pair(m)
            .ok_or_else(|| bad(path, format!("model.merges[{rank}] is not a pair")))?;
        let ids = (id_of(&a), id_of(&b), id_of(&format!("{a}{b}")));
        let (Some(l), Some(r), Some(result)) = ids else {
            return Err(bad(
                path,
                format!("model.merges[{rank}] `{a} {b}`: a token is not in the vocabulary"),
            ));
        };
        let rank = u32::try_from(rank).map_err(|_| Error::Limit("BPE merges exceed 4G".into()))?;
        merge_map.insert((l, r), (rank, result));
    }
    let mut merges: Vec<[u32; 4]> = merge_map
        .into_iter()
        .map(|((l, r), (rank, result))| [l, r, rank, result])
        .collect();
    merges.sort();
    let unk = match get_str("unk_token") {
        Some(u) => Some(
            id_of(u)
                .ok_or_else(|| bad(path, format!("unk_token `{u}` is not in the vocabulary")))?,
        ),
        None => None,
    };
    let find = |s: &str| id_of(s).or_else(|| added_id(&pieces, &added, s));
    // GPT-2's ByteLevel post-processor only trims offsets.
    let (cls, sep) = if type_of(json.get("post_processor")) == Some("ByteLevel") && byte_level {
        (None, None)
    } else {
        template(path, json)?
    };
    if cls.is_some() || sep.is_some() {
        f |= flags::CLS_SEP;
    }
    Ok(TokenizerSpec {
        kind: Kind::BpeMerges,
        flags: f,
        bos: find("<s>"),
        eos: find("</s>").or_else(|| find("<|endoftext|>")),
        unk,
        cls,
        sep,
        pad: None,
        max_word_chars: 0,
        scores: None,
        pieces,
        merges,
        added,
        max_piece_bytes: 0,
        unk_score: 0.0,
    })
}

fn added_id(pieces: &[Vec<u8>], added: &[(u32, bool)], text: &str) -> Option<u32> {
    added
        .iter()
        .map(|a| a.0)
        .find(|&id| pieces.get(id as usize).map(Vec::as_slice) == Some(text.as_bytes()))
}

fn from_json(path: &Path, json: &Value) -> Result<TokenizerSpec> {
    let model = json.get("model").ok_or_else(|| bad(path, "no `model`"))?;
    let kind = model.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "WordPiece" => {}
        "BPE" => return from_json_bpe(path, json, model),
        "Unigram" => return from_json_unigram(path, json, model),
        _ => {
            return Err(Error::UnsupportedModel(format!(
                "tokenizer `{}`: model type `{kind}` is not supported yet (WordPiece, BPE and \
                 Unigram are; llama2.c tokenizer.bin files are)",
                path.display()
            )));
        }
    }
    let vocab = model
        .get("vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| bad(path, "model.vocab is not an object"))?;
    let mut pieces = vec![Vec::new(); vocab.len()];
    for (piece, id) in vocab {
        let slot = id
            .as_u64()
            .and_then(|i| pieces.get_mut(usize::try_from(i).ok()?))
            .ok_or_else(|| bad(path, format!("token `{piece}` has id {id}")))?;
        *slot = piece.as_bytes().to_vec();
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
    match template(path, json)? {
        (None, None) => {}
        (Some(a), Some(b)) if (Some(a), Some(b)) == (cls, sep) => f |= flags::CLS_SEP,
        _ => {
            return Err(unsupported(
                path,
                "post_processor: only the `[CLS] $A [SEP]` template is supported for WordPiece",
            ));
        }
    }
    let unk = model
        .get("unk_token")
        .and_then(Value::as_str)
        .and_then(id_of);
    let added = added_tokens(path, json)?;
    let added = place_added(path, &mut pieces, &added)?;
    Ok(TokenizerSpec {
        kind: Kind::WordPiece,
        max_piece_bytes: 0,
        unk_score: 0.0,
        merges: Vec::new(),
        added,
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
    let mut set = |f: Field, v: u32| {
        if let Some(word) = header.get_mut(f as usize) {
            *word = v;
        }
    };
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
    let score_bytes = if spec.kind == Kind::Unigram { 8 } else { 4 };
    let merges_at = scores_at
        + if spec.scores.is_some() {
            n * score_bytes
        } else {
            0
        };
    let added_at = merges_at + spec.merges.len() * 16;
    let strings_at = added_at + spec.added.len() * 8;
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
    set(Field::MergesAt, merges_at as u32);
    set(Field::Merges, spec.merges.len() as u32);
    set(Field::AddedAt, added_at as u32);
    set(Field::Added, spec.added.len() as u32);
    let unk_score = spec.unk_score.to_bits();
    set(Field::UnkScoreLo, unk_score as u32);
    set(Field::UnkScoreHi, (unk_score >> 32) as u32);
    set(Field::MaxPieceBytes, spec.max_piece_bytes);
    let mut blob: Vec<u8> = header.iter().flat_map(|w| w.to_le_bytes()).collect();
    let mut offset = 0u32;
    for p in &spec.pieces {
        blob.extend_from_slice(&offset.to_le_bytes());
        offset += p.len() as u32;
    }
    blob.extend_from_slice(&offset.to_le_bytes());
    let mut sorted: Vec<u32> = (0..n as u32).collect();
    sorted.sort_by(|&a, &b| {
        let piece = |id: u32| spec.pieces.get(id as usize);
        piece(a).cmp(&piece(b)).then(a.cmp(&b))
    });
    for id in sorted {
        blob.extend_from_slice(&id.to_le_bytes());
    }
    if let Some(scores) = &spec.scores {
        for &s in scores {
            if score_bytes == 8 {
                blob.extend_from_slice(&s.to_le_bytes());
            } else {
                blob.extend_from_slice(&(s as f32).to_le_bytes());
            }
        }
    }
    for word in spec.merges.iter().flatten() {
        blob.extend_from_slice(&word.to_le_bytes());
    }
    for &(id, special) in &spec.added {
        blob.extend_from_slice(&id.to_le_bytes());
        blob.extend_from_slice(&u32::from(special).to_le_bytes());
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
