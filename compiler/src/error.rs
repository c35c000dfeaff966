//! Errors by fault: the model is unsupported, the model is invalid, the user asked for
//! something impossible, or the compiler has a bug. Messages name node, op and opset.
use std::fmt;

/// Where in the model an error arose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeRef {
    pub name: String,
    pub op_type: String,
    pub opset: i64,
}

impl fmt::Display for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "node `{}` ({}, opset {})",
            self.name, self.op_type, self.opset
        )
    }
}

/// One unsupported op occurrence, for the all-at-once report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    pub node: NodeRef,
    pub domain: String,
}

fn list_unsupported(items: &[Unsupported]) -> String {
    let mut out = String::new();
    for u in items {
        let domain = if u.domain.is_empty() {
            String::new()
        } else {
            format!(" [domain {}]", u.domain)
        };
        out.push_str(&format!("\n  - {}{}", u.node, domain));
    }
    out
}

/// Every error the compiler reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unsupported: the model uses {} op(s) slm-aot does not implement:{}", .0.len(), list_unsupported(.0))]
    UnsupportedOps(Vec<Unsupported>),
    #[error("unsupported: {node}: {reason}")]
    UnsupportedAttr { node: NodeRef, reason: String },
    #[error("invalid model: {node}: {reason}")]
    InvalidNode { node: NodeRef, reason: String },
    #[error("invalid model: {0}")]
    InvalidModel(String),
    /// A checkpoint architecture or setting slm-aot does not build.
    #[error("unsupported: {0}")]
    UnsupportedModel(String),
    /// A checkpoint tensor is missing or malformed.
    #[error("invalid checkpoint: tensor `{tensor}`: {reason}")]
    CheckpointTensor { tensor: String, reason: String },
    /// A `config.json` field is missing, malformed, or asks for math slm-aot does not do.
    #[error("config.json: field `{field}`: {reason}")]
    ConfigField { field: String, reason: String },
    #[error("{0}")]
    Usage(String),
    #[error("I/O error on `{path}`: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("limit exceeded: {0}")]
    Limit(String),
    #[error("internal compiler error (a bug in slm-aot, please report it): {0}")]
    Internal(String),
    #[error("verification failed: {0}")]
    Mismatch(String),
}

impl Error {
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An op-level failure without node context; the caller attaches the node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unsupported(String),
}

impl OpError {
    pub fn at(self, node: NodeRef) -> Error {
        match self {
            OpError::Invalid(reason) => Error::InvalidNode { node, reason },
            OpError::Unsupported(reason) => Error::UnsupportedAttr { node, reason },
        }
    }
}

/// Shorthand for `Err(OpError::Invalid(format!(...)))`.
#[macro_export]
macro_rules! invalid {
    ($($arg:tt)*) => { Err($crate::error::OpError::Invalid(format!($($arg)*))) };
}

/// Shorthand for `Err(OpError::Unsupported(format!(...)))`.
#[macro_export]
macro_rules! unsupported {
    ($($arg:tt)*) => { Err($crate::error::OpError::Unsupported(format!($($arg)*))) };
}
