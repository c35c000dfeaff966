//! The typed IR: values with static dtypes and shapes, nodes applying [`crate::ops::Op`]s,
//! a stable textual printer and the verifier.
pub mod dtype;
pub mod graph;
pub mod printer;
pub mod tensor;
pub mod verify;

pub use dtype::DType;
pub use graph::{Graph, Node, NodeId, StateSlot, Value, ValueId};
pub use tensor::{Data, Tensor, TensorType, checked_numel};
