//! Frontends: the only code that knows model file formats. Each produces the same typed
//! IR [`crate::ir::Graph`].
pub mod onnx;

use std::collections::BTreeMap;

/// How to bind what the model file leaves open.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Symbolic dimension bindings from `--dim NAME=VALUE` (also `INPUT.AXIS=VALUE` for an
    /// unnamed dynamic axis).
    pub dims: BTreeMap<String, usize>,
}
