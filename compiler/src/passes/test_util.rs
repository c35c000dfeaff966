//! Graph-building helpers shared by the pass tests: one node per call, its output named
//! `<name>.out`.
use crate::ir::{Graph, ValueId};
use crate::ops::Op;
use crate::ops::binary::{Binary, BinaryKind};
use crate::ops::unary::{Unary, UnaryKind};

/// `kind(a, b)` as a node `name` (op type `Bin`).
pub fn bin(g: &mut Graph, name: &str, kind: BinaryKind, a: ValueId, b: ValueId) -> ValueId {
    g.add_node(
        name,
        "Bin",
        Op::Binary(Binary { kind }),
        vec![a, b],
        &[format!("{name}.out")],
    )
    .unwrap()
    .1[0]
}

/// `kind(a)` as a node `name` (op type `Un`).
pub fn un(g: &mut Graph, name: &str, kind: UnaryKind, a: ValueId) -> ValueId {
    g.add_node(
        name,
        "Un",
        Op::Unary(Unary { kind }),
        vec![a],
        &[format!("{name}.out")],
    )
    .unwrap()
    .1[0]
}
