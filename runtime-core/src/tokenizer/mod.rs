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
//! - [`Kind::BpeMerges`]: Hugging Face `tokenizers`' BPE model (merge the adjacent pair
//!   with the lowest merge rank until none is in the merge table), either byte-level
//!   (GPT-2: the GPT-2 split regex as a hand-written scanner, pieces stored as raw bytes)
//!   or SentencePiece style (Llama: `▁` for spaces, stored as a space, prepended to the
//!   text; characters missing from the vocabulary fall back to `<0xXX>` byte tokens or
//!   `<unk>`).
//! - [`Kind::Unigram`]: SentencePiece's unigram model as `tokenizers` runs it (the
//!   segmentation with the best sum of piece scores, an unknown character scored 10 below
//!   the worst piece, runs of unknowns fused, byte fallback).
//!
//! `tokenizer.json` kinds first split the text on the added tokens (longest match,
//! leftmost first), as `tokenizers` does, and encode the pieces between them.
//!
//! Blob layout: a header of [`HEADER_WORDS`] little-endian u32 (see [`Field`]), then the
//! tables the header points to: piece offsets (`n + 1` u32), piece bytes, piece ids sorted
//! by bytes (for lookup), f32 scores (BPE by scores), merges (`[left, right, rank,
//! result]` u32 sorted by `(left, right)`) and added tokens (`[id, special]` u32).
mod unicode_tables;

use core::cmp::Ordering;
use core::fmt;

pub const MAGIC: u32 = u32::from_le_bytes(*b"SLMT");
pub const VERSION: u32 = 2;
/// u32 words in the header.
pub const HEADER_WORDS: usize = 28;
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
    MergesAt,
    Merges,
    AddedAt,
    Added,
    /// Unigram: the score of an unknown character (f64 bits, low word then high word).
    UnkScoreLo,
    UnkScoreHi,
    /// Unigram: the longest piece in bytes.
    MaxPieceBytes,
}

/// Flag bits.
pub mod flags {
    pub const ADD_DUMMY_PREFIX: u32 = 1;
    pub const LOWERCASE: u32 = 2;
    pub const STRIP_ACCENTS: u32 = 4;
    pub const CLEAN_TEXT: u32 = 8;
    pub const CHINESE_CHARS: u32 = 16;
    pub const BYTE_FALLBACK: u32 = 32;
    /// Wrap encodings in the template's tokens: `[CLS] … [SEP]` (WordPiece), or whichever
    /// of the `Cls` (before) and `Sep` (after) fields are set, as Llama's `<s> …`.
    pub const CLS_SEP: u32 = 64;
    /// Byte-level BPE: pieces are raw bytes, the initial symbols of a word are its bytes.
    pub const BYTE_LEVEL: u32 = 128;
    /// Split byte-level text into words with the GPT-2 pattern.
    pub const GPT2_SPLIT: u32 = 256;
    /// Byte-level: prepend a space to text that does not start with one.
    pub const ADD_PREFIX_SPACE: u32 = 512;
    /// SentencePiece-style BPE: `▁` in the text is a space (pieces store `▁` as a space).
    pub const METASPACE: u32 = 1024;
    /// Consecutive unknown characters become one `<unk>`.
    pub const FUSE_UNK: u32 = 2048;
    /// A word that is itself a piece is not split (`ignore_merges`).
    pub const IGNORE_MERGES: u32 = 4096;
    /// SentencePiece-style: split the text into words before each space (`▁`).
    pub const METASPACE_SPLIT: u32 = 8192;
    /// SentencePiece-style: prepend a space unless the text starts with one (Metaspace
    /// `prepend_scheme: always`).
    pub const PREFIX_UNLESS_SPACE: u32 = 16384;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    BpeScores = 1,
    WordPiece = 2,
    BpeMerges = 3,
    Unigram = 4,
}

/// Longest word (in UTF-8 bytes, after the prefix space) the Unigram model segments; the
/// Viterbi tables live on the stack.
pub const UNIGRAM_WORD_BYTES: usize = 256;

/// Entry sizes (u32 words) of the merge and added-token tables.
pub const MERGE_WORDS: usize = 4;
pub const ADDED_WORDS: usize = 2;

/// What can go wrong tokenizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenizerError {
    /// The blob is not a tokenizer this runtime reads.
    BadBlob,
    /// The id buffer is too small for the encoding (`needed` is a lower bound).
    BufferTooSmall { needed: usize },
    /// A character maps to no token and the tokenizer has no unknown token.
    NoToken,
    /// A word is longer than the Unigram model's work tables ([`UNIGRAM_WORD_BYTES`]).
    WordTooLong { max_bytes: usize },
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
            TokenizerError::WordTooLong { max_bytes } => {
                write!(f, "a word is longer than {max_bytes} bytes")
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
        let count = |f: Field| t.field(f) as usize;
        let score_bytes = if t.field(Field::Kind) == Kind::Unigram as u32 {
            8
        } else {
            4
        };
        let tables_fit = end(t.field(Field::OffsetsAt), (n + 1) * 4)
            && end(t.field(Field::SortedAt), n * 4)
            && (t.field(Field::ScoresAt) == 0 || end(t.field(Field::ScoresAt), n * score_bytes))
            && end(
                t.field(Field::MergesAt),
                count(Field::Merges) * MERGE_WORDS * 4,
            )
            && end(
                t.field(Field::AddedAt),
                count(Field::Added) * ADDED_WORDS * 4,
            );
        if !tables_fit || !matches!(t.field(Field::Kind), 1..=4) {
            return Err(TokenizerError::BadBlob);
        }
        for i in 0..count(Field::Merges) {
            if (0..MERGE_WORDS).any(|k| k != 2 && t.merge_word(i, k) as usize >= n) {
                return Err(TokenizerError::BadBlob);
            }
        }
        for i in 0..count(Field::Added) {
            if t.added(i).0 as usize >= n {
                return Err(TokenizerError::BadBlob);
            }
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

    /// A Unigram piece's score (f64 table).
    fn score64(&self, id: u32) -> f64 {
        let at = self.field(Field::ScoresAt) as usize + id as usize * 8;
        f64::from_bits(u64::from(word(self.blob, at)) | u64::from(word(self.blob, at + 4)) << 32)
    }

    fn score(&self, id: u32) -> f32 {
        f32::from_bits(word(
            self.blob,
            self.field(Field::ScoresAt) as usize + id as usize * 4,
        ))
    }

    fn merge_word(&self, i: usize, k: usize) -> u32 {
        word(
            self.blob,
            self.field(Field::MergesAt) as usize + (i * MERGE_WORDS + k) * 4,
        )
    }

    /// `(id, special)` of added token `i`.
    fn added(&self, i: usize) -> (u32, bool) {
        let at = self.field(Field::AddedAt) as usize + i * ADDED_WORDS * 4;
        (word(self.blob, at), word(self.blob, at + 4) != 0)
    }

    /// `(rank, result)` of the merge of `left` and `right`, if there is one.
    fn merge(&self, left: u32, right: u32) -> Option<(u32, u32)> {
        let (mut lo, mut hi) = (0usize, self.field(Field::Merges) as usize);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match (self.merge_word(mid, 0), self.merge_word(mid, 1)).cmp(&(left, right)) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Some((self.merge_word(mid, 2), self.merge_word(mid, 3))),
            }
        }
        None
    }

    fn has(&self, flag: u32) -> bool {
        self.field(Field::Flags) & flag != 0
    }

    fn special(&self, f: Field) -> Option<u32> {
        Some(self.field(f)).filter(|&v| v != NONE)
    }

    pub fn kind(&self) -> Kind {
        match self.field(Field::Kind) {
            2 => Kind::WordPiece,
            3 => Kind::BpeMerges,
            4 => Kind::Unigram,
            _ => Kind::BpeScores,
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
    /// tokenizer's template adds (`[CLS]`/`[SEP]`, a `tokenizer.json`'s `<s>`) are included;
    /// otherwise a decoder's BOS is not (prepend [`Tokenizer::bos`] yourself). BPE works in `out` itself, so `out` must
    /// also hold the initial symbols (characters, or bytes) of the longest word, before
    /// merging; otherwise the error is [`TokenizerError::BufferTooSmall`].
    pub fn encode(&self, text: &str, out: &mut [u32]) -> Result<usize, TokenizerError> {
        if self.kind() == Kind::BpeScores {
            return self.encode_bpe(text, out);
        }
        let mut n = 0usize;
        let cls_sep = self.has(flags::CLS_SEP);
        if cls_sep && let Some(cls) = self.special(Field::Cls) {
            push_id(out, &mut n, cls)?;
        }
        let mut rest = text;
        loop {
            let (before, added) = self.next_added(rest);
            let segment = &rest[..before];
            if !segment.is_empty() {
                match self.kind() {
                    Kind::WordPiece => self.encode_wordpiece(segment, out, &mut n)?,
                    _ => self.encode_model_segment(segment, out, &mut n)?,
                }
            }
            let Some((id, len)) = added else { break };
            push_id(out, &mut n, id)?;
            rest = &rest[before + len..];
        }
        if cls_sep && let Some(sep) = self.special(Field::Sep) {
            push_id(out, &mut n, sep)?;
        }
        Ok(n)
    }

    /// The first added token in `text` (leftmost, then longest): the bytes before it and
    /// `(id, byte length)`.
    fn next_added(&self, text: &str) -> (usize, Option<(u32, usize)>) {
        let count = self.field(Field::Added) as usize;
        if count == 0 {
            return (text.len(), None);
        }
        let bytes = text.as_bytes();
        for (at, _) in text.char_indices() {
            let mut best: Option<(u32, usize)> = None;
            for i in 0..count {
                let id = self.added(i).0;
                let Some(piece) = self.piece(id) else {
                    continue;
                };
                if !piece.is_empty()
                    && bytes[at..].starts_with(piece)
                    && best.is_none_or(|(_, len)| piece.len() > len)
                {
                    best = Some((id, piece.len()));
                }
            }
            if best.is_some() {
                return (at, best);
            }
        }
        (text.len(), None)
    }

    /// One segment between added tokens: split into words, run the model on each.
    fn encode_model_segment(
        &self,
        text: &str,
        out: &mut [u32],
        n: &mut usize,
    ) -> Result<(), TokenizerError> {
        if self.has(flags::BYTE_LEVEL) {
            let prefix: &[u8] = if self.has(flags::ADD_PREFIX_SPACE) && !text.starts_with(' ') {
                b" "
            } else {
                b""
            };
            if !self.has(flags::GPT2_SPLIT) {
                return self.bpe_merges_word(prefix, text, out, n);
            }
            let mut rest = text;
            let mut prefix = prefix;
            while !rest.is_empty() {
                let virtual_len =
                    gpt2_pretoken_len(prefix.iter().map(|&b| b as char).chain(rest.chars()));
                let len = virtual_len - prefix.len();
                self.bpe_merges_word(prefix, &rest[..len], out, n)?;
                rest = &rest[len..];
                prefix = b"";
            }
            Ok(())
        } else {
            let starts_with_space = text.starts_with([' ', '▁']);
            let prefix: &[u8] = if self.has(flags::ADD_DUMMY_PREFIX)
                || (self.has(flags::PREFIX_UNLESS_SPACE) && !starts_with_space)
            {
                b" "
            } else {
                b""
            };
            if !self.has(flags::METASPACE_SPLIT) {
                return self.model_word(prefix, text, out, n);
            }
            // Words start at each space (`▁`), which stays with the text after it.
            let mut rest = text;
            let mut prefix = prefix;
            while !rest.is_empty() || !prefix.is_empty() {
                let from = if prefix.is_empty() {
                    rest.chars().next().map_or(0, char::len_utf8)
                } else {
                    0
                };
                let len = rest[from..]
                    .find([' ', '▁'])
                    .map_or(rest.len(), |i| from + i);
                self.model_word(prefix, &rest[..len], out, n)?;
                rest = &rest[len..];
                prefix = b"";
            }
            Ok(())
        }
    }

    fn model_word(
        &self,
        prefix: &[u8],
        text: &str,
        out: &mut [u32],
        n: &mut usize,
    ) -> Result<(), TokenizerError> {
        if self.kind() == Kind::Unigram {
            self.unigram_word(prefix, text, out, n)
        } else {
            self.bpe_merges_word(prefix, text, out, n)
        }
    }

    /// One word (`prefix ++ text`, `▁` read as a space) through the Unigram model: the
    /// segmentation with the best total score (Viterbi; a character no piece starts with
    /// is `<unk>` scored below every piece), consecutive unknowns fused, and unknown text
    /// as `<0xXX>` byte tokens when the model has byte fallback.
    fn unigram_word(
        &self,
        prefix: &[u8],
        text: &str,
        out: &mut [u32],
        n: &mut usize,
    ) -> Result<(), TokenizerError> {
        let mut word = [0u8; UNIGRAM_WORD_BYTES];
        let mut len = 0usize;
        let mut buf = [0u8; 4];
        for c in prefix.iter().map(|&b| b as char).chain(text.chars()) {
            let c = if c == '▁' { ' ' } else { c };
            let bytes = c.encode_utf8(&mut buf).as_bytes();
            let slot = word
                .get_mut(len..len + bytes.len())
                .ok_or(TokenizerError::WordTooLong {
                    max_bytes: UNIGRAM_WORD_BYTES,
                })?;
            slot.copy_from_slice(bytes);
            len += bytes.len();
        }
        let word = &word[..len];
        const UNSET: u16 = u16::MAX;
        let mut best = [0f64; UNIGRAM_WORD_BYTES + 1];
        let mut from = [UNSET; UNIGRAM_WORD_BYTES + 1];
        let mut ids = [0u32; UNIGRAM_WORD_BYTES + 1];
        let unk = self.special(Field::Unk);
        let unk_score = f64::from_bits(
            u64::from(self.field(Field::UnkScoreLo))
                | u64::from(self.field(Field::UnkScoreHi)) << 32,
        );
        let max_piece = self.field(Field::MaxPieceBytes) as usize;
        let mut start = 0;
        while start < len {
            let char_len = utf8_len(word[start]);
            let here = best[start];
            let mut single = false;
            let mut end = start + 1;
            while end <= len && end - start <= max_piece {
                if (end == len || (word[end] & 0xC0) != 0x80)
                    && let Some(id) = self.lookup(&word[start..end])
                {
                    {
                        let score = here + self.score64(id);
                        if from[end] == UNSET || score > best[end] {
                            (best[end], from[end], ids[end]) = (score, start as u16, id);
                        }
                        single |= end - start == char_len;
                    }
                }
                end += 1;
            }
            let end = (start + char_len).min(len);
            if !single {
                let unk = unk.ok_or(TokenizerError::NoToken)?;
                let score = here + unk_score;
                if from[end] == UNSET || score > best[end] {
                    (best[end], from[end], ids[end]) = (score, start as u16, unk);
                }
            }
            start = end;
        }
        // Link the best path forwards (reusing `best`'s slots is not possible: f64), then
        // walk it, fusing runs of unknowns.
        let mut next = [UNSET; UNIGRAM_WORD_BYTES + 1];
        let mut at = len;
        while at > 0 {
            let prev = from[at] as usize;
            next[prev] = at as u16;
            at = prev;
        }
        let mut at = 0;
        while at < len {
            let mut end = next[at] as usize;
            let id = ids[end];
            if Some(id) == unk {
                while end < len && Some(ids[next[end] as usize]) == unk {
                    end = next[end] as usize;
                }
            }
            let piece = &word[at..end];
            if Some(id) != unk {
                push_id(out, n, id)?;
            } else if let Some(id) = self.lookup(piece) {
                push_id(out, n, id)?;
            } else if let Some(bytes) = self.byte_ids(piece) {
                for b in bytes {
                    push_id(out, n, b?)?;
                }
            } else {
                push_id(out, n, id)?;
            }
            at = end;
        }
        Ok(())
    }

    /// The `<0xXX>` token ids of `bytes`, if byte fallback is on and all exist.
    fn byte_ids<'b>(
        &'b self,
        bytes: &'b [u8],
    ) -> Option<impl Iterator<Item = Result<u32, TokenizerError>> + 'b> {
        if !self.has(flags::BYTE_FALLBACK)
            || bytes
                .iter()
                .any(|&b| self.lookup(&byte_piece_name(b)).is_none())
        {
            return None;
        }
        Some(bytes.iter().map(|&b| {
            self.lookup(&byte_piece_name(b))
                .ok_or(TokenizerError::NoToken)
        }))
    }

    /// One word (`prefix ++ text`) through the BPE model, written at `out[*n..]`.
    fn bpe_merges_word(
        &self,
        prefix: &[u8],
        text: &str,
        out: &mut [u32],
        n: &mut usize,
    ) -> Result<(), TokenizerError> {
        let start = *n;
        if self.has(flags::IGNORE_MERGES)
            && let Some(id) = self.lookup2(prefix, text.as_bytes())
        {
            return push_id(out, n, id);
        }
        let unk = self.special(Field::Unk);
        let mut last_was_unk = false;
        let mut symbol = |bytes: &[u8], n: &mut usize| -> Result<(), TokenizerError> {
            if let Some(id) = self.lookup(bytes) {
                last_was_unk = false;
                return push_id(out, n, id);
            }
            if self.has(flags::BYTE_FALLBACK) {
                let mut ids = [0u32; 4];
                let mut all = true;
                for (slot, &b) in ids.iter_mut().zip(bytes) {
                    match self.lookup(&byte_piece_name(b)) {
                        Some(id) => *slot = id,
                        None => all = false,
                    }
                }
                if all && bytes.len() <= 4 {
                    last_was_unk = false;
                    for &id in &ids[..bytes.len()] {
                        push_id(out, n, id)?;
                    }
                    return Ok(());
                }
            }
            // Without an unknown token, `tokenizers` drops the character.
            if let Some(unk) = unk
                && !(self.has(flags::FUSE_UNK) && last_was_unk)
            {
                push_id(out, n, unk)?;
                last_was_unk = true;
            }
            Ok(())
        };
        if self.has(flags::BYTE_LEVEL) {
            for &b in prefix.iter().chain(text.as_bytes()) {
                symbol(&[b], n)?;
            }
        } else {
            let mut buf = [0u8; 4];
            for c in prefix.iter().map(|&b| b as char).chain(text.chars()) {
                let c = if self.has(flags::METASPACE) && c == '▁' {
                    ' '
                } else {
                    c
                };
                symbol(c.encode_utf8(&mut buf).as_bytes(), n)?;
            }
        }
        let ids = &mut out[start..*n];
        let mut len = ids.len();
        loop {
            let mut best: Option<(u32, usize, u32)> = None;
            for i in 0..len.saturating_sub(1) {
                if let Some((rank, id)) = self.merge(ids[i], ids[i + 1])
                    && best.is_none_or(|(r, _, _)| rank < r)
                {
                    best = Some((rank, i, id));
                }
            }
            let Some((_, i, id)) = best else { break };
            ids[i] = id;
            ids.copy_within(i + 2..len, i + 1);
            len -= 1;
        }
        *n = start + len;
        Ok(())
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
            // SentencePiece reads its own `▁` in the text as a space.
            let c = if c == '▁' { ' ' } else { c };
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

    fn encode_wordpiece(
        &self,
        text: &str,
        out: &mut [u32],
        n: &mut usize,
    ) -> Result<(), TokenizerError> {
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
                result = flush(&word[..len], overflow, out, n);
                len = 0;
                overflow = false;
                if punct && result.is_ok() {
                    result = flush(&[c], false, out, n);
                }
            } else if len < WORD_CHARS {
                word[len] = c;
                len += 1;
            } else {
                overflow = true;
            }
        });
        result?;
        flush(&word[..len], overflow, out, n)
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
                Kind::BpeScores | Kind::BpeMerges | Kind::Unigram => {
                    if first
                        && self.has(flags::ADD_DUMMY_PREFIX | flags::PREFIX_UNLESS_SPACE)
                        && piece.first() == Some(&b' ')
                    {
                        piece = &piece[1..];
                    }
                    match byte_piece(piece).filter(|_| self.has(flags::BYTE_FALLBACK)) {
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
        if self.kind() != Kind::WordPiece
            && self.has(flags::ADD_DUMMY_PREFIX | flags::PREFIX_UNLESS_SPACE)
            && Some(prev) == self.bos()
            && piece.first() == Some(&b' ')
        {
            piece = &piece[1..];
        }
        let mut sink = Utf8Sink::new(w);
        match byte_piece(piece).filter(|_| self.has(flags::BYTE_FALLBACK)) {
            Some(b) => sink.push(&[b])?,
            None => sink.push(piece)?,
        }
        sink.finish()
    }

    fn is_special(&self, id: u32) -> bool {
        [Field::Bos, Field::Eos, Field::Cls, Field::Sep, Field::Pad]
            .iter()
            .any(|&f| self.special(f) == Some(id))
            || (0..self.field(Field::Added) as usize).any(|i| self.added(i) == (id, true))
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

/// The length of the UTF-8 sequence a lead byte starts.
fn utf8_len(lead: u8) -> usize {
    match lead {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// The `<0xXX>` piece of a byte.
fn byte_piece_name(b: u8) -> [u8; 6] {
    let hex = b"0123456789ABCDEF";
    [
        b'<',
        b'0',
        b'x',
        hex[(b >> 4) as usize],
        hex[(b & 15) as usize],
        b'>',
    ]
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Gpt2Class {
    Space,
    Letter,
    Number,
    Other,
}

fn gpt2_class(c: char) -> Gpt2Class {
    if c.is_whitespace() {
        Gpt2Class::Space
    } else if is_letter(c) {
        Gpt2Class::Letter
    } else if c.is_numeric() {
        Gpt2Class::Number
    } else {
        Gpt2Class::Other
    }
}

/// Byte length of the first match of GPT-2's split pattern
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
/// in a non-empty text (the alternatives in order, as the regex engine tries them).
fn gpt2_pretoken_len(chars: impl Iterator<Item = char> + Clone) -> usize {
    let mut look = chars.clone();
    let Some(first) = look.next() else { return 0 };
    if first == '\'' {
        for suffix in ["s", "t", "re", "ve", "m", "ll", "d"] {
            let mut rest = look.clone();
            if suffix.chars().all(|s| rest.next() == Some(s)) {
                return 1 + suffix.len();
            }
        }
    }
    let second = look.clone().next();
    let (skip, class) = match (first, second) {
        (' ', Some(c)) if gpt2_class(c) != Gpt2Class::Space => (1, gpt2_class(c)),
        _ => (0, gpt2_class(first)),
    };
    if class != Gpt2Class::Space {
        return skip
            + chars
                .skip(skip)
                .take_while(|&c| gpt2_class(c) == class)
                .map(char::len_utf8)
                .sum::<usize>();
    }
    // `\s+(?!\S)`: a whitespace run followed by text gives back its last character
    // (unless that is all of it, then `\s+` takes the one character).
    let (mut len, mut last_len, mut count, mut at_end) = (0, 0, 0, true);
    for c in chars {
        if !c.is_whitespace() {
            at_end = false;
            break;
        }
        len += c.len_utf8();
        last_len = c.len_utf8();
        count += 1;
    }
    if at_end || count == 1 {
        len
    } else {
        len - last_len
    }
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
        assert_eq!(&byte_piece_name(0x0A), b"<0x0A>");
    }

    #[test]
    fn gpt2_split_follows_the_pattern() {
        fn split(text: &str) -> ([&str; 16], usize) {
            let mut parts = [""; 16];
            let (mut n, mut rest) = (0, text);
            while !rest.is_empty() {
                let len = gpt2_pretoken_len(rest.chars());
                parts[n] = &rest[..len];
                n += 1;
                rest = &rest[len..];
            }
            (parts, n)
        }
        let (parts, n) = split("Hi  there's 42!!\n\n x  ");
        assert_eq!(
            &parts[..n],
            &["Hi", " ", " there", "'s", " 42", "!!", "\n\n", " x", "  "]
        );
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
