//! slm-aot: an ahead-of-time compiler from small language models to allocation-free,
//! `no_std` Rust crates. See `ARCHITECTURE.md` for the map; [`pipeline`] is the whole flow.
pub mod bench;
pub mod calibrate;
pub mod codegen;
pub mod error;
pub mod eval;
pub mod footprint;
pub mod frontend;
pub mod generate;
pub mod ir;
pub mod manifest;
pub mod npy;
pub mod ops;
pub mod passes;
pub mod pipeline;
pub mod plan;
pub mod quantize;
pub mod report;
pub mod signature;
pub mod stateful;
pub mod target;
pub mod tokenizer;
pub mod verify;

pub use error::{Error, Result};
