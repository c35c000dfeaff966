//! Tokenizers baked into generated crates: `encode` text into a caller's id buffer and
//! `decode` ids into a `core::fmt::Write`, without allocation. The tables are one byte
//! blob (`include_bytes!` in the generated crate, written by the compiler from a
//! `tokenizer.json` or a llama2.c `tokenizer.bin`), read in place.
//!
//! Kinds:
//! - [`Kind::BpeScores`]: SentencePiece-style BPE by merge scores with byte fallback, as
//!   llama2.c's `tokenizer.bin` and Llama's SentencePiece model (dummy prefix space, merge
//!   the best-scoring adjacent pair until none is in the vocabulary).
//! - [`Kind::WordPiece`]: BERT's (normaliser: clean text, pad CJK, strip accents,
//!   lowercase; split on whitespace and punctuation; greedy longest match with `##`),
//!   with the `[CLS] … [SEP]` template.
//!
//! Blob layout: a header of [`HEADER_WORDS`] little-endian u32 (see [`Field`]), then the
//! tables the header points to: piece offsets (`n + 1` u32), piece bytes, piece ids sorted
//! by bytes (for lookup), and f32 scores (BPE).
mod unicode_tables;

use core::cmp::Ordering;
use core::fmt;

pub const MAGIC: u32 = u32::from_le_bytes(*b"SLMT");
pub const VERSION: u32 = 1;
/// u32 words in the header.
pub const HEADER_WORDS: usize = 20;
/// "No such token" in header fields.
pub const NONE: u32 = u32::MAX;

/// The header fields, by word index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Field {
    Magic = 0,
    Version,
    Kind,
    Vocab,
    Flags,
    Bos,
    Eos,
    Unk,
    Cls,
    Sep,
    Pad,
    MaxWordChars,
    OffsetsAt,
    StringsAt,
    SortedAt,
    ScoresAt,
    ByteFallbackBase,
}

/// Flag bits.
pub mod flags {
    pub const ADD_DUMMY_PREFIX: u32 = 1;
    pub const LOWERCASE: u32 = 2;
    pub const STRIP_ACCENTS: u32 = 4;
    pub const CLEAN_TEXT: u32 = 8;
    pub const CHINESE_CHARS: u32 = 16;
    pub const BYTE_FALLBACK: u32 = 32;
    /// Wrap encodings in `[CLS] … [SEP]`.
    pub const CLS_SEP: u32 = 64;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    BpeScores = 1,
    WordPiece = 2,
}

/// What can go wrong tokenizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenizerError {
    /// The blob is not a tokenizer this runtime reads.
    BadBlob,
    /// The id buffer is too small for the encoding (`needed` is a lower bound).
    BufferTooSmall { needed: usize },
    /// A character maps to no token and the tokenizer has no unknown token.
    NoToken,
}

impl fmt::Display for TokenizerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenizerError::BadBlob => write!(f, "not a tokenizer blob this runtime reads"),
            TokenizerError::BufferTooSmall { needed } => {
                write!(f, "the id buffer is too small (at least {needed} needed)")
            }
            TokenizerError::NoToken => {
                write!(f, "a character has no token and there is no unknown token")
            }
        }
    }
}

/// A tokenizer reading its tables from a baked blob.
#[derive(Clone, Copy)]
pub struct Tokenizer<'a> {
    blob: &'a [u8],
}

fn word(blob: &[u8], at: usize) -> u32 {
    match blob.get(at..at + 4) {
        Some(b) => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        None => 0,
    }
}

/// Compare `a ++ b` with `key` bytewise.
fn cmp_concat(key: &[u8], a: &[u8], b: &[u8]) -> Ordering {
    let n = a.len() + b.len();
    for i in 0..n.min(key.len()) {
        let x = if i < a.len() { a[i] } else { b[i - a.len()] };
        match key[i].cmp(&x) {
            Ordering::Equal => {}
            other => return other,
        }
    }
    key.len().cmp(&n)
}

impl<'a> Tokenizer<'a> {
    /// Read a blob, checking its header and table bounds.
    pub fn new(blob: &'a [u8]) -> Result<Self, TokenizerError> {
        let t = Tokenizer { blob };
        if blob.len() < HEADER_WORDS * 4
            || t.field(Field::Magic) != MAGIC
            || t.field(Field::Version) != VERSION
        {
            return Err(TokenizerError::BadBlob);
        }
        let n = t.vocab_size();
        let end = |at: u32, len: usize| {
            (at as usize)
                .checked_add(len)
                .is_some_and(|e| e <= blob.len())
        };
        let tables_fit = end(t.field(Field::OffsetsAt), (n + 1) * 4)
            && end(t.field(Field::SortedAt), n * 4)
            && (t.field(Field::ScoresAt) == 0 || end(t.field(Field::ScoresAt), n * 4));
        if !tables_fit || !matches!(t.field(Field::Kind), 1 | 2) {
            return Err(TokenizerError::BadBlob);
        }
        let strings = t.field(Field::StringsAt) as usize;
        for i in 0..n {
            let (a, b) = (t.offset(i), t.offset(i + 1));
            if a > b || strings + b > blob.len() || t.sorted(i) as usize >= n {
                return Err(TokenizerError::BadBlob);
            }
        }
        Ok(t)
    }

    fn field(&self, f: Field) -> u32 {
        word(self.blob, f as usize * 4)
    }

    fn offset(&self, i: usize) -> usize {
        word(self.blob, self.field(Field::OffsetsAt) as usize + i * 4) as usize
    }

    fn sorted(&self, i: usize) -> u32 {
        word(self.blob, self.field(Field::SortedAt) as usize + i * 4)
    }

    fn score(&self, id: u32) -> f32 {
        f32::from_bits(word(
            self.blob,
            self.field(Field::ScoresAt) as usize + id as usize * 4,
        ))
    }

    fn has(&self, flag: u32) -> bool {
        self.field(Field::Flags) & flag != 0
    }

    fn special(&self, f: Field) -> Option<u32> {
        Some(self.field(f)).filter(|&v| v != NONE)
    }

    pub fn kind(&self) -> Kind {
        if self.field(Field::Kind) == 2 {
            Kind::WordPiece
        } else {
            Kind::BpeScores
        }
    }

    pub fn vocab_size(&self) -> usize {
        self.field(Field::Vocab) as usize
    }

    pub fn bos(&self) -> Option<u32> {
        self.special(Field::Bos)
    }

    pub fn eos(&self) -> Option<u32> {
        self.special(Field::Eos)
    }

    pub fn pad(&self) -> Option<u32> {
        self.special(Field::Pad)
    }

    /// The bytes of token `id`.
    pub fn piece(&self, id: u32) -> Option<&'a [u8]> {
        let i = id as usize;
        if i >= self.vocab_size() {
            return None;
        }
        let s = self.field(Field::StringsAt) as usize;
        self.blob.get(s + self.offset(i)..s + self.offset(i + 1))
    }

    /// The id of the token whose bytes are `a ++ b`.
    fn lookup2(&self, a: &[u8], b: &[u8]) -> Option<u32> {
        let (mut lo, mut hi) = (0usize, self.vocab_size());
        while lo < hi {
            let mid = (lo + hi) / 2;
            let id = self.sorted(mid);
            match cmp_concat(self.piece(id)?, a, b) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Some(id),
            }
        }
        None
    }

    /// The id of the token with exactly these bytes.
    pub fn lookup(&self, bytes: &[u8]) -> Option<u32> {
        self.lookup2(bytes, &[])
    }

    /// Encode `text` into `out`; returns the number of ids written. Special tokens the
    /// tokenizer's template adds (`[CLS]`/`[SEP]`) are included; a decoder's BOS is not
    /// (prepend [`Tokenizer::bos`] yourself).
    pub fn encode(&self, text: &str, out: &mut [u32]) -> Result<usize, TokenizerError> {
        match self.kind() {
            Kind::BpeScores => self.encode_bpe(text, out),
            Kind::WordPiece => self.encode_wordpiece(text, out),
        }
    }

    fn encode_bpe(&self, text: &str, out: &mut [u32]) -> Result<usize, TokenizerError> {
        let mut n = 0usize;
        let mut push = |id: u32, n: &mut usize| -> Result<(), TokenizerError> {
            let slot = out
                .get_mut(*n)
                .ok_or(TokenizerError::BufferTooSmall { needed: *n + 1 })?;
            *slot = id;
            *n += 1;
            Ok(())
        };
        if self.has(flags::ADD_DUMMY_PREFIX)
            && !text.is_empty()
            && let Some(id) = self.lookup(b" ")
        {
            push(id, &mut n)?;
        }
        let mut buf = [0u8; 4];
        for c in text.chars() {
            let bytes = c.encode_utf8(&mut buf).as_bytes();
            if let Some(id) = self.lookup(bytes) {
                push(id, &mut n)?;
            } else if self.has(flags::BYTE_FALLBACK) && self.field(Field::ByteFallbackBase) != NONE
            {
                for &b in bytes {
                    push(self.field(Field::ByteFallbackBase) + b as u32, &mut n)?;
                }
            } else {
                push(
                    self.special(Field::Unk).ok_or(TokenizerError::NoToken)?,
                    &mut n,
                )?;
            }
        }
        let ids = &mut out[..n];
        loop {
            let mut best: Option<(f32, usize, u32)> = None;
            for i in 0..n.saturating_sub(1) {
                let (Some(a), Some(b)) = (self.piece(ids[i]), self.piece(ids[i + 1])) else {
                    continue;
                };
                if let Some(id) = self.lookup2(a, b) {
                    let score = self.score(id);
                    if best.is_none_or(|(s, _, _)| score > s) {
                        best = Some((score, i, id));
                    }
                }
            }
            let Some((_, i, id)) = best else { break };
            ids[i] = id;
            ids.copy_within(i + 2..n, i + 1);
            n -= 1;
        }
        Ok(n)
    }

    fn encode_wordpiece(&self, text: &str, out: &mut [u32]) -> Result<usize, TokenizerError> {
        let mut n = 0usize;
        let cls_sep = self.has(flags::CLS_SEP);
        if cls_sep {
            let cls = self.special(Field::Cls).ok_or(TokenizerError::NoToken)?;
            push_id(out, &mut n, cls)?;
        }
        let max_chars = self.field(Field::MaxWordChars) as usize;
        let mut word = [' '; WORD_CHARS];
        let mut len = 0usize;
        let mut overflow = false;
        let mut result: Result<(), TokenizerError> = Ok(());
        let flush = |word: &[char], overflow: bool, out: &mut [u32], n: &mut usize| {
            if word.is_empty() {
                return Ok(());
            }
            self.wordpiece_word(word, overflow || word.len() > max_chars, out, n)
        };
        self.normalized_chars(text, |c| {
            if result.is_err() {
                return;
            }
            let space = is_bert_whitespace(c);
            let punct = !space && is_bert_punctuation(c);
            if space || punct {
                result = flush(&word[..len], overflow, out, &mut n);
                len = 0;
                overflow = false;
                if punct && result.is_ok() {
                    result = flush(&[c], false, out, &mut n);
                }
            } else if len < WORD_CHARS {
                word[len] = c;
                len += 1;
            } else {
                overflow = true;
            }
        });
        result?;
        flush(&word[..len], overflow, out, &mut n)?;
        if cls_sep {
            let sep = self.special(Field::Sep).ok_or(TokenizerError::NoToken)?;
            push_id(out, &mut n, sep)?;
        }
        Ok(n)
    }

    /// Greedy longest-match-first WordPiece of one word; the whole word is `[UNK]` if any
    /// part has no token.
    fn wordpiece_word(
        &self,
        word: &[char],
        too_long: bool,
        out: &mut [u32],
        n: &mut usize,
    ) -> Result<(), TokenizerError> {
        let unk = self.special(Field::Unk).ok_or(TokenizerError::NoToken)?;
        if too_long {
            return push_id(out, n, unk);
        }
        let start_n = *n;
        let mut start = 0;
        let mut bytes = [0u8; WORD_CHARS * 4];
        while start < word.len() {
            let mut end = word.len();
            let mut found = None;
            while end > start {
                let mut len = 0;
                for c in &word[start..end] {
                    len += c.encode_utf8(&mut bytes[len..]).len();
                }
                let prefix: &[u8] = if start > 0 { b"##" } else { b"" };
                if let Some(id) = self.lookup2(prefix, &bytes[..len]) {
                    found = Some(id);
                    break;
                }
                end -= 1;
            }
            match found {
                Some(id) => {
                    push_id(out, n, id)?;
                    start = end;
                }
                None => {
                    *n = start_n;
                    return push_id(out, n, unk);
                }
            }
        }
        Ok(())
    }

    /// BERT's normaliser, char by char: clean text, pad CJK with spaces, strip accents,
    /// lowercase.
    fn normalized_chars(&self, text: &str, mut emit: impl FnMut(char)) {
        let (clean, cjk, strip, lower) = (
            self.has(flags::CLEAN_TEXT),
            self.has(flags::CHINESE_CHARS),
            self.has(flags::STRIP_ACCENTS),
            self.has(flags::LOWERCASE),
        );
        let finish = |c: char, emit: &mut dyn FnMut(char)| {
            if lower {
                for l in c.to_lowercase() {
                    emit(l);
                }
            } else {
                emit(c);
            }
        };
        for c in text.chars() {
            let c = if clean {
                if c == '\0' || c == '\u{fffd}' || is_bert_control(c) {
                    continue;
                }
                if is_bert_whitespace(c) { ' ' } else { c }
            } else {
                c
            };
            let pad = cjk && is_chinese_char(c);
            if pad {
                emit(' ');
            }
            if strip {
                strip_accents(c, |s| finish(s, &mut emit));
            } else {
                finish(c, &mut emit);
            }
            if pad {
                emit(' ');
            }
        }
    }

    /// Write the text of `ids` (special tokens skipped): byte tokens `<0xXX>` become bytes
    /// (assembled into UTF-8; invalid sequences become U+FFFD), WordPiece `##` pieces join
    /// the previous one and others are separated by a space; a BPE decoding drops the
    /// dummy prefix space of the first piece.
    pub fn decode(&self, ids: &[u32], w: &mut dyn fmt::Write) -> fmt::Result {
        let mut sink = Utf8Sink::new(w);
        let mut first = true;
        for &id in ids {
            if self.is_special(id) {
                continue;
            }
            let Some(mut piece) = self.piece(id) else {
                continue;
            };
            match self.kind() {
                Kind::BpeScores => {
                    if first && self.has(flags::ADD_DUMMY_PREFIX) && piece.first() == Some(&b' ') {
                        piece = &piece[1..];
                    }
                    match byte_piece(piece) {
                        Some(b) => sink.push(&[b])?,
                        None => sink.push(piece)?,
                    }
                }
                Kind::WordPiece => match piece.strip_prefix(b"##") {
                    Some(rest) => sink.push(rest)?,
                    None => {
                        if !first {
                            sink.push(b" ")?;
                        }
                        sink.push(piece)?;
                    }
                },
            }
            first = false;
        }
        sink.finish()
    }

    /// Decode into a byte buffer; returns the bytes written (truncated at the buffer end).
    pub fn decode_into(&self, ids: &[u32], buf: &mut [u8]) -> usize {
        let mut w = SliceWriter { buf, len: 0 };
        let _ = self.decode(ids, &mut w);
        w.len
    }

    /// The text of one generated token following `prev` (for streaming output): like
    /// llama2.c, a leading space right after BOS is dropped.
    pub fn decode_step(&self, prev: u32, id: u32, w: &mut dyn fmt::Write) -> fmt::Result {
        if self.is_special(id) {
            return Ok(());
        }
        let Some(mut piece) = self.piece(id) else {
            return Ok(());
        };
        if self.kind() == Kind::BpeScores
            && Some(prev) == self.bos()
            && piece.first() == Some(&b' ')
        {
            piece = &piece[1..];
        }
        let mut sink = Utf8Sink::new(w);
        match byte_piece(piece) {
            Some(b) => sink.push(&[b])?,
            None => sink.push(piece)?,
        }
        sink.finish()
    }

    fn is_special(&self, id: u32) -> bool {
        [Field::Bos, Field::Eos, Field::Cls, Field::Sep, Field::Pad]
            .iter()
            .any(|&f| self.special(f) == Some(id))
    }
}

/// Longest word (in chars) WordPiece looks at; longer words are `[UNK]` (BERT's limit is
/// 100).
const WORD_CHARS: usize = 128;

fn push_id(out: &mut [u32], n: &mut usize, id: u32) -> Result<(), TokenizerError> {
    let slot = out
        .get_mut(*n)
        .ok_or(TokenizerError::BufferTooSmall { needed: *n + 1 })?;
    *slot = id;
    *n += 1;
    Ok(())
}

/// The byte a `<0xXX>` piece stands for.
fn byte_piece(piece: &[u8]) -> Option<u8> {
    let hex = piece.strip_prefix(b"<0x")?.strip_suffix(b">")?;
    let digit = |c: u8| (c as char).to_digit(16);
    match hex {
        [a, b] => Some((digit(*a)? * 16 + digit(*b)?) as u8),
        _ => None,
    }
}

fn in_ranges(table: &[(u32, u32)], c: char) -> bool {
    let c = c as u32;
    table
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                Ordering::Less
            } else if lo > c {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        })
        .is_ok()
}

fn is_bert_whitespace(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || c.is_whitespace()
}

fn is_bert_control(c: char) -> bool {
    !matches!(c, '\t' | '\n' | '\r') && in_ranges(unicode_tables::OTHER, c)
}

fn is_bert_punctuation(c: char) -> bool {
    c.is_ascii_punctuation() || in_ranges(unicode_tables::PUNCTUATION, c)
}

/// A letter (general category L*), as `\p{L}`.
pub fn is_letter(c: char) -> bool {
    in_ranges(unicode_tables::LETTER, c)
}

fn is_chinese_char(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B820..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

/// NFD with combining marks removed, one char at a time.
fn strip_accents(c: char, mut emit: impl FnMut(char)) {
    let cp = c as u32;
    if in_ranges(unicode_tables::MARK, c) {
        return;
    }
    if (0xAC00..=0xD7A3).contains(&cp) {
        // Hangul syllables decompose into conjoining jamo.
        let s = cp - 0xAC00;
        let (l, v, t) = (0x1100 + s / 588, 0x1161 + (s % 588) / 28, s % 28);
        for x in [l, v] {
            emit(char::from_u32(x).unwrap_or(c));
        }
        if t != 0 {
            emit(char::from_u32(0x11A7 + t).unwrap_or(c));
        }
        return;
    }
    match unicode_tables::DECOMPOSED.binary_search_by_key(&cp, |&(k, _, _)| k) {
        Ok(i) => {
            let (_, start, len) = unicode_tables::DECOMPOSED[i];
            let (start, len) = (start as usize, len as usize);
            for &x in &unicode_tables::STRIPPED[start..start + len] {
                emit(char::from_u32(x).unwrap_or(c));
            }
        }
        Err(_) => emit(c),
    }
}

/// Assembles bytes into UTF-8 for a `fmt::Write`; invalid sequences become U+FFFD.
struct Utf8Sink<'w> {
    w: &'w mut dyn fmt::Write,
    pending: [u8; 4],
    len: usize,
}

impl<'w> Utf8Sink<'w> {
    fn new(w: &'w mut dyn fmt::Write) -> Self {
        Utf8Sink {
            w,
            pending: [0; 4],
            len: 0,
        }
    }

    fn push(&mut self, bytes: &[u8]) -> fmt::Result {
        for &b in bytes {
            if self.len == 0 && b < 0x80 {
                let one = [b];
                self.w
                    .write_str(core::str::from_utf8(&one).unwrap_or("\u{fffd}"))?;
                continue;
            }
            if self.len > 0 && (b & 0xC0) != 0x80 {
                // The pending sequence ended early.
                self.w.write_str("\u{fffd}")?;
                self.len = 0;
                if b < 0x80 {
                    self.push(&[b])?;
                    continue;
                }
            }
            self.pending[self.len] = b;
            self.len += 1;
            let need = match self.pending[0] {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xF7 => 4,
                _ => 1,
            };
            if self.len >= need {
                let s = core::str::from_utf8(&self.pending[..self.len]).unwrap_or("\u{fffd}");
                self.w.write_str(s)?;
                self.len = 0;
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> fmt::Result {
        if self.len > 0 {
            self.len = 0;
            self.w.write_str("\u{fffd}")?;
        }
        Ok(())
    }
}

struct SliceWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len() - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        if n < s.len() { Err(fmt::Error) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unicode_helpers() {
        assert!(is_bert_punctuation('!') && is_bert_punctuation('¿') && is_bert_punctuation('…'));
        assert!(!is_bert_punctuation('a') && !is_bert_punctuation('😀'));
        assert!(is_letter('é') && is_letter('字') && !is_letter('1'));
        let mut out = [' '; 4];
        let mut n = 0;
        strip_accents('é', |c| {
            out[n] = c;
            n += 1
        });
        assert_eq!(&out[..n], &['e']);
        assert_eq!(byte_piece(b"<0x0A>"), Some(10));
        assert_eq!(byte_piece(b"<0xZZ>"), None);
    }

    #[test]
    fn utf8_sink_assembles_split_characters() {
        struct S([u8; 32], usize);
        impl fmt::Write for S {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                self.0[self.1..self.1 + s.len()].copy_from_slice(s.as_bytes());
                self.1 += s.len();
                Ok(())
            }
        }
        let mut s = S([0; 32], 0);
        let mut sink = Utf8Sink::new(&mut s);
        let smile = "😀".as_bytes();
        sink.push(&smile[..2]).unwrap();
        sink.push(&smile[2..]).unwrap();
        sink.push(&[0xE2, b'a']).unwrap();
        sink.finish().unwrap();
        assert_eq!(core::str::from_utf8(&s.0[..s.1]).unwrap(), "😀\u{fffd}a");
    }
}
