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
    pub quant_tiling: Option<QuantKernels>,
}

/// The integer kernels an imported quantized layer is packed for: panel widths from
/// runtime-core's `qgemm_nr_for`/`q4_nr_for`, register and cache tiles from the f32 GEMM's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantKernels {
    /// For reports: `avx512vnni`, `avx2`, `dotprod`, `neon` or `portable`.
    pub kernel: &'static str,
    pub i8_nr: usize,
    pub q4_nr: usize,
    pub tiles: runtime_core::kernels::gemm::Tiles,
}

impl QuantKernels {
    /// The portable kernels' widths with default tiles (any width runs on every kernel).
    pub fn portable() -> Self {
        Self::for_arch("", &[], "portable", 4, 256, 64)
    }

    /// What `target`'s triple and features select.
    pub fn for_target(target: &crate::target::TargetProfile) -> Self {
        let arch = target.triple.split('-').next().unwrap_or("");
        let features: Vec<&str> = target.features.iter().map(String::as_str).collect();
        let has = |f: &str| features.contains(&f);
        let kernel = match arch {
            "x86_64" if has("avx512vnni") && has("avx512bw") => "avx512vnni",
            "x86_64" if has("avx2") || has("avx512f") => "avx2",
            "aarch64" if has("dotprod") => "dotprod",
            "aarch64" => "neon",
            _ => "portable",
        };
        let g = target.gemm_tiling();
        Self::for_arch(arch, &features, kernel, g.mr, g.kc, g.mc)
    }

    fn for_arch(
        arch: &str,
        features: &[&str],
        kernel: &'static str,
        mr: usize,
        kc: usize,
        mc: usize,
    ) -> Self {
        use runtime_core::kernels::qgemm;
        QuantKernels {
            kernel,
            i8_nr: qgemm::qgemm_nr_for(arch, features),
            q4_nr: qgemm::q4_nr_for(arch, features),
            tiles: runtime_core::kernels::gemm::Tiles { mr, kc, mc },
        }
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
