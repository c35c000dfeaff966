//! runtime-core: the only dependency of every crate that slm-aot generates.
//!
//! `#![no_std]`, no `alloc`, no dependency but `libm`. It holds the arena helpers that hand
//! out typed, non-overlapping views of one static byte arena, and the portable kernels that
//! generated code calls. The compiler's reference evaluator calls the same portable kernels
//! on heap buffers, so an op's math is written once.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(test)]
extern crate std;

pub mod arena;
pub mod blob_object;
pub mod element;
pub mod error;
pub mod kernels;
pub mod math;
pub mod sampling;
pub mod sha256;
pub mod stack;
pub mod tokenizer;

pub use arena::Aligned64;
pub use error::Error;

/// The largest tensor rank the kernels iterate over; the compiler rejects higher ranks
/// after coalescing dimensions.
pub const MAX_RANK: usize = 8;

#[cfg(not(target_endian = "little"))]
compile_error!("runtime-core and generated weight blobs assume a little-endian target");
