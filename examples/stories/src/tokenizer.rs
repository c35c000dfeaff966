//! Decoding side of a llama2.c tokenizer file (`tok512.bin`): token ids to text.

use std::path::Path;

/// Beginning-of-sequence token id.
pub const BOS: usize = 1;

/// A llama2.c vocabulary: one byte string per token id.
pub struct Tokenizer {
    pieces: Vec<Vec<u8>>,
}

/// Read a little-endian 4-byte field at `*at`, advancing it.
fn take4(bytes: &[u8], at: &mut usize) -> Result<[u8; 4], String> {
    let field = bytes
        .get(*at..*at + 4)
        .ok_or_else(|| format!("tokenizer file truncated at byte {}", *at))?;
    *at += 4;
    Ok(field.try_into().expect("4-byte slice"))
}

impl Tokenizer {
    /// Load a llama2.c tokenizer file: `i32 max_token_length`, then for each token
    /// `f32 score`, `i32 len`, `len` bytes. Scores only matter for encoding and are skipped.
    pub fn load(path: &Path) -> Result<Tokenizer, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let mut at = 0;
        let max_len = i32::from_le_bytes(take4(&bytes, &mut at)?);
        let mut pieces = Vec::new();
        while at < bytes.len() {
            let _score = f32::from_le_bytes(take4(&bytes, &mut at)?);
            let len = i32::from_le_bytes(take4(&bytes, &mut at)?);
            if len < 0 || len > max_len {
                return Err(format!(
                    "token {}: length {len} outside 0..={max_len}",
                    pieces.len()
                ));
            }
            let piece = bytes
                .get(at..at + len as usize)
                .ok_or_else(|| format!("tokenizer file truncated in token {}", pieces.len()))?;
            pieces.push(piece.to_vec());
            at += len as usize;
        }
        Ok(Tokenizer { pieces })
    }

    /// Number of tokens in the vocabulary.
    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    /// Append the bytes of `token` following `prev` to `out`, as llama2.c's `decode` does:
    /// the leading space of a piece right after BOS is dropped, and byte tokens `<0xXX>`
    /// stand for the raw byte `XX`.
    pub fn decode_into(&self, prev: usize, token: usize, out: &mut Vec<u8>) {
        let Some(mut piece) = self.pieces.get(token).map(Vec::as_slice) else {
            return;
        };
        if prev == BOS && piece.first() == Some(&b' ') {
            piece = &piece[1..];
        }
        match byte_token(piece) {
            Some(byte) => out.push(byte),
            None => out.extend_from_slice(piece),
        }
    }
}

/// The byte a `<0xXX>` piece stands for.
fn byte_token(piece: &[u8]) -> Option<u8> {
    let hex = piece.strip_prefix(b"<0x")?.strip_suffix(b">")?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}
