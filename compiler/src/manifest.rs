//! The integrity manifest written into every generated crate: which model files (by
//! SHA-256), which compiler, which flags and target profile produced it, and the weight
//! blob's digest, which the crate's build script re-checks at compile time.
#![deny(clippy::indexing_slicing)]
use crate::error::{Error, Result};
use runtime_core::sha256::{self, Sha256};
use std::io::Read;
use std::path::Path;

/// Provenance of one build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// File name (relative to the model's folder) and SHA-256 of every source file.
    pub model_files: Vec<(String, String)>,
    pub compiler: String,
    /// The build flags that change the output, in canonical order.
    pub flags: String,
    pub target: String,
    pub target_sha256: String,
}

/// Lower-case hex SHA-256 of bytes.
pub fn hex_digest(bytes: &[u8]) -> String {
    let mut out = [0u8; 64];
    sha256::hex(&sha256::digest(bytes), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Lower-case hex SHA-256 of a file, streamed (no second copy of a large model in memory).
pub fn file_digest(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(buf.get(..n).unwrap_or_default());
    }
    let mut out = [0u8; 64];
    sha256::hex(&h.finish(), &mut out);
    Ok(String::from_utf8_lossy(&out).into_owned())
}
