//! Frontends: the only code that knows model file formats. Each produces the same typed
//! IR [`crate::ir::Graph`].
#![deny(clippy::indexing_slicing)]
pub mod onnx;
pub mod safetensors;

use std::collections::BTreeMap;

/// How to bind what the model file leaves open.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Symbolic dimension bindings from `--dim NAME=VALUE` (also `INPUT.AXIS=VALUE` for an
    /// unnamed dynamic axis).
    pub dims: BTreeMap<String, usize>,
    /// `--max-context N`: build a stateful decoder whose KV cache holds N tokens (see
    /// [`crate::stateful`]); also binds the step's still-unbound dims.
    pub max_context: Option<usize>,
    pub limits: Limits,
}

/// Resource limits, checked before the work they bound (defaults sized for 1B-parameter
/// models; each is overridable on the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Total bytes of weights (initializers), checked from their declared shapes before
    /// any is read.
    pub max_weight_bytes: u64,
    /// Bytes of the planned arena.
    pub max_arena_bytes: u64,
    /// Nodes in the model file.
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_weight_bytes: 8 << 30,
            max_arena_bytes: 4 << 30,
            max_nodes: 200_000,
        }
    }
}
