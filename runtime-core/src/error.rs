//! Errors a generated model can return at run time: only data-dependent faults.
use core::fmt;

/// A run-time fault of a generated model. Everything shape- or size-related is checked by
/// the compiler at build time; what is left depends on the data fed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The arena handed to `run` is shorter than the plan needs.
    ArenaTooSmall { needed: usize, got: usize },
    /// The arena handed to `run` does not start on a 64-byte boundary.
    ArenaMisaligned,
    /// An index tensor (e.g. token ids fed to a Gather) holds a value outside its axis.
    IndexOutOfRange {
        node: &'static str,
        index: i64,
        bound: usize,
    },
    /// A stateful decoder's KV cache is full: `capacity` tokens are already stored
    /// (`reset` the model to start again).
    ContextFull { capacity: usize },
    /// `prefill` was called with no tokens.
    EmptyPrompt,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ArenaTooSmall { needed, got } => {
                write!(
                    f,
                    "arena too small: the plan needs {needed} bytes, got {got}"
                )
            }
            Error::ArenaMisaligned => write!(f, "arena must start on a 64-byte boundary"),
            Error::IndexOutOfRange { node, index, bound } => {
                write!(
                    f,
                    "node `{node}`: index {index} out of range for axis of size {bound}"
                )
            }
            Error::ContextFull { capacity } => {
                write!(
                    f,
                    "the context is full: all {capacity} cache slots are used (reset the model)"
                )
            }
            Error::EmptyPrompt => write!(f, "prefill needs at least one token"),
        }
    }
}

/// An index fault raised inside a kernel, before the generated code names the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexError {
    pub index: i64,
    pub bound: usize,
}

impl IndexError {
    /// Attach the node name the generated code knows.
    pub fn at(self, node: &'static str) -> Error {
        Error::IndexOutOfRange {
            node,
            index: self.index,
            bound: self.bound,
        }
    }
}
