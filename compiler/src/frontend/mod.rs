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
    /// The integer kernels pre-quantized layers (QDQ, QOperator, MatMulNBits) are packed
    /// for; `None`: the portable kernels' panel widths (correct on any target, as every
    /// kernel accepts any width). `pipeline::build` sets the target's.
    pub quant_tiling: Option<crate::target::QuantTiling>,
}

/// The portable integer kernels' panel widths with default tiles: what an import packs
/// quantized layers for when not told the target's (every kernel accepts any width).
pub fn portable_quant_tiling() -> crate::target::QuantTiling {
    use runtime_core::kernels::qgemm;
    crate::target::QuantTiling {
        kernel: "portable",
        i8_nr: qgemm::qgemm_nr_for("", &[]),
        q4_nr: qgemm::q4_nr_for("", &[]),
        tiles: runtime_core::kernels::gemm::Tiles {
            mr: 4,
            kc: 256,
            mc: 64,
        },
    }
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
