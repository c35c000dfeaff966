//! The checkpoint frontend: a Hugging Face folder (`config.json` + `*.safetensors`) → the
//! same typed IR the ONNX frontend builds, one builder per family (`llama`, `gpt2`,
//! `bert`). Only this module knows the checkpoint formats.
//!
//! A decoder is built either as a whole-sequence graph (`input_ids [1, sequence]` →
//! `logits`, causal attention; `--dim sequence=N`) or, with `--max-context N`, as the one-step
//! graph a decoder-with-past export has (`input_ids`, `position_ids`, `past_key_values.*`
//! growing by `Concat` into `present.*`), which [`crate::stateful`] then turns into model
//! state exactly as for an ONNX export.
#![deny(clippy::indexing_slicing)]
mod bert;
mod builder;
mod checkpoint;
mod config;
mod gpt2;
mod llama;

pub use checkpoint::Checkpoint;
pub use config::Config;

use super::ImportOptions;
use crate::error::{Error, Result};
use crate::ir::Graph;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// True when `path` is a checkpoint folder (holds a `config.json`).
pub fn is_checkpoint(path: &Path) -> bool {
    path.is_dir() && path.join("config.json").is_file()
}

/// Where a checkpoint's files come from: a folder on disk, or files held in memory by their
/// path relative to the folder (`config.json`, `model.safetensors`, `1_Pooling/config.json`;
/// the fuzzing entry point). The frontend reads only through this, by relative path.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    Dir(&'a Path),
    Memory(&'a BTreeMap<String, Vec<u8>>),
}

impl Source<'_> {
    /// The file's name in messages.
    pub fn path(&self, rel: &str) -> PathBuf {
        match self {
            Source::Dir(dir) => dir.join(rel),
            Source::Memory(_) => PathBuf::from(rel),
        }
    }

    pub fn is_file(&self, rel: &str) -> bool {
        match self {
            Source::Dir(dir) => dir.join(rel).is_file(),
            Source::Memory(files) => files.contains_key(rel),
        }
    }

    pub fn read(&self, rel: &str) -> Result<Vec<u8>> {
        inside(rel)?;
        match self {
            Source::Dir(dir) => {
                let path = dir.join(rel);
                std::fs::read(&path).map_err(|e| Error::io(&path, e))
            }
            Source::Memory(files) => files.get(rel).cloned().ok_or_else(|| missing(rel)),
        }
    }

    pub fn read_to_string(&self, rel: &str) -> Result<String> {
        String::from_utf8(self.read(rel)?).map_err(|e| {
            Error::InvalidModel(format!("`{}` is not UTF-8: {e}", self.path(rel).display()))
        })
    }

    /// The size of a file in bytes, without reading it.
    pub fn len(&self, rel: &str) -> Result<u64> {
        inside(rel)?;
        match self {
            Source::Dir(dir) => {
                let path = dir.join(rel);
                Ok(std::fs::metadata(&path)
                    .map_err(|e| Error::io(&path, e))?
                    .len())
            }
            Source::Memory(files) => files
                .get(rel)
                .map(|b| b.len() as u64)
                .ok_or_else(|| missing(rel)),
        }
    }

    /// The names of the folder's top-level files, sorted.
    pub fn file_names(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = match self {
            Source::Dir(dir) => std::fs::read_dir(dir)
                .map_err(|e| Error::io(dir, e))?
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect(),
            Source::Memory(files) => files.keys().filter(|k| !k.contains('/')).cloned().collect(),
        };
        names.sort();
        Ok(names)
    }
}

/// Refuse a relative path that is absolute or climbs out of the folder.
fn inside(rel: &str) -> Result<()> {
    let normal = Path::new(rel)
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if normal && !rel.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidModel(format!(
            "checkpoint file `{rel}` is outside the checkpoint folder"
        )))
    }
}

fn missing(rel: &str) -> Error {
    Error::io(
        Path::new(rel),
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "not among the in-memory files",
        ),
    )
}

/// Import a checkpoint folder.
pub fn import(dir: &Path, options: &ImportOptions) -> Result<Graph> {
    import_from(Source::Dir(dir), options)
}

/// Import a checkpoint from its files, on disk or in memory.
pub fn import_from(src: Source<'_>, options: &ImportOptions) -> Result<Graph> {
    let config = Config::read(src, "config.json")?;
    let checkpoint = Checkpoint::load(src, options.limits.max_weight_bytes)?;
    let model_type = config.str("model_type")?;
    let graph = match model_type.as_str() {
        "llama" => llama::build(&config, &checkpoint, options)?,
        "gpt2" => gpt2::build(&config, &checkpoint, options)?,
        "bert" => bert::build(&config, &checkpoint, src, options)?,
        other => {
            return Err(Error::UnsupportedModel(format!(
                "`{}`: model_type `{other}` is not supported (supported: llama, gpt2, bert)",
                src.path("config.json").display()
            )));
        }
    };
    Ok(graph)
}

/// The whole-sequence length of a stateless build: `--dim sequence=N` (or `seq`,
/// `sequence_length`).
pub(crate) fn sequence_length(options: &ImportOptions) -> Result<usize> {
    ["sequence", "seq", "sequence_length", "seq_len"]
        .iter()
        .find_map(|k| options.dims.get(*k).copied())
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            Error::Usage(
                "a checkpoint is built for a fixed sequence length: pass `--dim sequence=N` \
                 (or `--max-context N` for a stateful decoder)"
                    .into(),
            )
        })
}
