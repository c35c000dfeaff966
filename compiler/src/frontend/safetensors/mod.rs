//! The checkpoint frontend: a Hugging Face folder (`config.json` + `*.safetensors`) → the
//! same typed IR the ONNX frontend builds, one builder per family (`llama`, `gpt2`,
//! `bert`). Only this module knows the checkpoint formats.
//!
//! A decoder is built either as a whole-sequence graph (`input_ids [1, sequence]` →
//! `logits`, causal attention; `--dim sequence=N`) or, with `--max-context N`, as the one-step
//! graph a decoder-with-past export has (`input_ids`, `position_ids`, `past_key_values.*`
//! growing by `Concat` into `present.*`), which [`crate::stateful`] then turns into model
//! state exactly as for an ONNX export.
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
use std::path::Path;

/// True when `path` is a checkpoint folder (holds a `config.json`).
pub fn is_checkpoint(path: &Path) -> bool {
    path.is_dir() && path.join("config.json").is_file()
}

/// Import a checkpoint folder.
pub fn import(dir: &Path, options: &ImportOptions) -> Result<Graph> {
    let config = Config::load(&dir.join("config.json"))?;
    let checkpoint = Checkpoint::load(dir, options.limits.max_weight_bytes)?;
    let model_type = config.str("model_type")?;
    let graph = match model_type.as_str() {
        "llama" => llama::build(&config, &checkpoint, options)?,
        "gpt2" => gpt2::build(&config, &checkpoint, options)?,
        "bert" => bert::build(&config, &checkpoint, dir, options)?,
        other => {
            return Err(Error::UnsupportedModel(format!(
                "`{}`: model_type `{other}` is not supported (supported: llama, gpt2, bert)",
                dir.join("config.json").display()
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
