//! Target profiles: data in `targets/*.toml`, deserialised with serde. `--target NAME`
//! picks a shipped profile; `--target path/to/file.toml` loads a user's own.
use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::Path;

/// The shipped profiles, embedded so the binary works from any directory.
const SHIPPED: &[(&str, &str)] = &[
    ("x86", include_str!("../../targets/x86.toml")),
    ("x86-avx512", include_str!("../../targets/x86-avx512.toml")),
    ("rpi4", include_str!("../../targets/rpi4.toml")),
    ("jetson", include_str!("../../targets/jetson.toml")),
    ("cortex-m55", include_str!("../../targets/cortex-m55.toml")),
];

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TargetProfile {
    pub name: String,
    pub description: String,
    /// Rust target triple of the generated crate's intended build.
    pub triple: String,
    /// `-C target-cpu` for that build.
    pub cpu: String,
    /// Target features the kernels may assume.
    #[serde(default)]
    pub features: Vec<String>,
    /// Width of one SIMD register in bits (0: scalar only).
    pub vector_bits: u32,
    /// Number of SIMD (or FP) registers.
    pub vector_registers: u32,
    pub cache: Cache,
    pub memory: Memory,
    /// SHA-256 of the profile's TOML text (for the integrity manifest).
    #[serde(skip)]
    pub source_sha256: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Cache {
    pub l1d_bytes: usize,
    pub l2_bytes: usize,
    #[serde(default)]
    pub l3_bytes: usize,
    pub line_bytes: usize,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    /// RAM available to the arena (and state).
    pub ram_bytes: usize,
    /// Read-only storage available to weights and code.
    pub flash_bytes: usize,
    /// Where weights live: "ram" (loaded with the program) or "flash" (read in place).
    pub weights_in: String,
    /// Linker section for the weight blob ("" keeps the default `.rodata`).
    #[serde(default)]
    pub weights_section: String,
}

impl TargetProfile {
    /// Resolve `--target`: a shipped name or a path to a `.toml` profile.
    pub fn load(spec: &str) -> Result<TargetProfile> {
        if let Some((_, text)) = SHIPPED.iter().find(|(name, _)| *name == spec) {
            return Self::parse(text, spec);
        }
        let path = Path::new(spec);
        if path.extension().is_some_and(|e| e == "toml") || path.exists() {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            return Self::parse(&text, spec);
        }
        let names: Vec<&str> = SHIPPED.iter().map(|(n, _)| *n).collect();
        Err(Error::Usage(format!(
            "unknown target `{spec}`: use one of {names:?} or a path to a profile .toml"
        )))
    }

    fn parse(text: &str, origin: &str) -> Result<TargetProfile> {
        let mut profile: TargetProfile = toml::from_str(text)
            .map_err(|e| Error::Usage(format!("target profile `{origin}` is invalid: {e}")))?;
        profile.source_sha256 = crate::manifest::hex_digest(text.as_bytes());
        Ok(profile)
    }

    pub fn shipped_names() -> Vec<&'static str> {
        SHIPPED.iter().map(|(n, _)| *n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_profile_parses() {
        for name in TargetProfile::shipped_names() {
            let p = TargetProfile::load(name).unwrap();
            assert_eq!(p.name, name);
        }
        assert!(TargetProfile::load("no-such-target").is_err());
    }
}
