//! `--verify-signature`: refuse a model whose detached Ed25519 signature does not verify
//! against the given public key. Keys and signatures are raw bytes or hex text.
#![deny(clippy::indexing_slicing)]
use crate::error::{Error, Result};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use std::path::Path;

/// Decode a key or signature file: exactly `N` raw bytes, or `2N` hex digits (whitespace
/// ignored).
fn read_bytes<const N: usize>(path: &Path, what: &str) -> Result<[u8; N]> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if raw.len() == N {
        let mut out = [0u8; N];
        out.copy_from_slice(&raw);
        return Ok(out);
    }
    let text: String = String::from_utf8_lossy(&raw)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let bad = || {
        Error::Usage(format!(
            "`{}` is not a {what}: expected {N} raw bytes or {} hex digits",
            path.display(),
            2 * N
        ))
    };
    if text.len() != 2 * N {
        return Err(bad());
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = text
            .get(2 * i..2 * i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .ok_or_else(bad)?;
    }
    Ok(out)
}

/// Verify `model`'s bytes against `signature` (default `<model>.sig`) with `public_key`.
pub fn verify_model(model: &Path, public_key: &Path, signature: Option<&Path>) -> Result<()> {
    let default_sig = {
        let mut s = model.as_os_str().to_owned();
        s.push(".sig");
        std::path::PathBuf::from(s)
    };
    let sig_path = signature.unwrap_or(&default_sig);
    let key = VerifyingKey::from_bytes(&read_bytes::<32>(public_key, "Ed25519 public key")?)
        .map_err(|e| {
            Error::Usage(format!(
                "`{}` is not a valid Ed25519 public key: {e}",
                public_key.display()
            ))
        })?;
    let sig = Signature::from_bytes(&read_bytes::<64>(sig_path, "Ed25519 signature")?);
    let bytes = std::fs::read(model).map_err(|e| Error::io(model, e))?;
    key.verify(&bytes, &sig).map_err(|_| {
        Error::Mismatch(format!(
            "the signature `{}` does not match `{}` for this public key: refusing to compile",
            sig_path.display(),
            model.display()
        ))
    })
}
