//! ONNX `RotaryEmbedding` (opset 23) lowered to IR ops, following ONNX's reference:
//! heads laid out `[batch, seq, heads, head]`, the first `rotary_embedding_dim` features
//! rotated pairwise (halves, or interleaved even/odd) by the cos/sin caches, which are
//! indexed by `position_ids` when given.
#![deny(clippy::indexing_slicing)]
use super::node::NodeCtx;
use super::ops::{bin, reshape_v, transpose_v};
use crate::error::OpError;
use crate::invalid;
use crate::ir::ValueId;
use crate::ops::binary::BinaryKind;
use crate::ops::{self, Op};

/// `x[.., start..end:step]` on the last axis.
pub(super) fn last_axis_slice(
    c: &mut NodeCtx<'_>,
    x: ValueId,
    start: usize,
    end: usize,
    step: usize,
) -> Result<ValueId, OpError> {
    let axis = c.ty(x).rank() - 1;
    c.add1(
        Op::Slice(ops::slice::Slice {
            starts: vec![start as i64],
            ends: vec![end as i64],
            axes: vec![axis],
            steps: vec![step as i64],
        }),
        &[x],
    )
}

pub(super) fn concat_last(c: &mut NodeCtx<'_>, parts: &[ValueId]) -> Result<ValueId, OpError> {
    let first = parts
        .first()
        .ok_or_else(|| OpError::Invalid("nothing to concatenate".into()))?;
    let axis = c.ty(*first).rank().saturating_sub(1);
    c.add1(Op::Concat(ops::concat::Concat { axis }), parts)
}

/// Rotate `x` (`[b, s, h, rotary]`) by `cos`/`sin` (`[b, s, 1, rotary/2]`).
pub(super) fn rotate(
    c: &mut NodeCtx<'_>,
    x: ValueId,
    cos: ValueId,
    sin: ValueId,
    interleaved: bool,
) -> Result<ValueId, OpError> {
    let shape = c.ty(x).shape.clone();
    let rd = *shape
        .last()
        .ok_or_else(|| OpError::Invalid("cannot rotate a scalar".into()))?;
    let half = rd / 2;
    let (x1, x2) = if interleaved {
        (
            last_axis_slice(c, x, 0, rd, 2)?,
            last_axis_slice(c, x, 1, rd, 2)?,
        )
    } else {
        (
            last_axis_slice(c, x, 0, half, 1)?,
            last_axis_slice(c, x, half, rd, 1)?,
        )
    };
    let a = bin(c, BinaryKind::Mul, cos, x1)?;
    let b = bin(c, BinaryKind::Mul, sin, x2)?;
    let real = bin(c, BinaryKind::Sub, a, b)?;
    let a = bin(c, BinaryKind::Mul, sin, x1)?;
    let b = bin(c, BinaryKind::Mul, cos, x2)?;
    let imag = bin(c, BinaryKind::Add, a, b)?;
    if interleaved {
        let mut pair = c.ty(real).shape.clone();
        pair.push(1);
        let real = reshape_v(c, real, pair.clone())?;
        let imag = reshape_v(c, imag, pair)?;
        let both = concat_last(c, &[real, imag])?;
        reshape_v(c, both, shape)
    } else {
        concat_last(c, &[real, imag])
    }
}

pub fn rotary_embedding(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let (x, cos, sin, pos) = (c.input(0)?, c.input(1)?, c.input(2)?, c.opt_input(3));
    let params = Params::from_node(c, "interleaved")?;
    Ok(vec![apply(c, x, cos, sin, pos, &params)?])
}

/// How to rotate: pairs interleaved or halves; heads of a 3-D input; rotated features
/// (0: the whole head).
pub(super) struct Params {
    pub interleaved: bool,
    pub num_heads: i64,
    pub dim: i64,
}

impl Params {
    /// From the node's `num_heads`, `rotary_embedding_dim` and the interleaving attribute.
    pub fn from_node(c: &NodeCtx<'_>, interleaved: &str) -> Result<Params, OpError> {
        Ok(Params {
            interleaved: c.attr_int(interleaved, 0)? != 0,
            num_heads: c.attr_int("num_heads", 0)?,
            dim: c.attr_int("rotary_embedding_dim", 0)?,
        })
    }
}

/// Rotate `x` (`[b, heads, s, head]` or `[b, s, heads·head]`); `pos` indexes the
/// `[positions, rotary/2]` caches (without it they are `[b, s, rotary/2]`).
pub(super) fn apply(
    c: &mut NodeCtx<'_>,
    x: ValueId,
    mut cos: ValueId,
    mut sin: ValueId,
    pos: Option<ValueId>,
    params: &Params,
) -> Result<ValueId, OpError> {
    let original = c.ty(x).shape.clone();
    let interleaved = params.interleaved;
    let mut y = match *original.as_slice() {
        [_, _, _, _] => transpose_v(c, x, vec![0, 2, 1, 3])?,
        [d0, d1, d2] => {
            let heads = params.num_heads;
            let heads = usize::try_from(heads)
                .ok()
                .filter(|&h| h > 0 && d2.is_multiple_of(h));
            let Some(heads) = heads else {
                return invalid!(
                    "3-D input {} needs a num_heads dividing its hidden size",
                    c.ty(x)
                );
            };
            reshape_v(c, x, vec![d0, d1, heads, d2 / heads])?
        }
        _ => return invalid!("input must be 3-D or 4-D, got {}", c.ty(x)),
    };
    let s = c.ty(y).shape.clone();
    let &[_, _, _, head] = s.as_slice() else {
        return invalid!(
            "rotary input must be 4-D after splitting heads, got {}",
            c.ty(y)
        );
    };
    let rd = match params.dim {
        0 => head,
        d => usize::try_from(d)
            .ok()
            .filter(|&d| d <= head && d.is_multiple_of(2))
            .ok_or_else(|| OpError::Invalid(format!("bad rotary_embedding_dim {d}")))?,
    };
    if let Some(pos) = pos {
        cos = c.add1(Op::Gather(ops::gather::Gather { axis: 0 }), &[cos, pos])?;
        sin = c.add1(Op::Gather(ops::gather::Gather { axis: 0 }), &[sin, pos])?;
    }
    let cs = c.ty(cos).shape.clone();
    let unsqueezed = match *cs.as_slice() {
        [c0, c1, c2] if c2 == rd / 2 && c.ty(sin).shape == cs => vec![c0, c1, 1, c2],
        _ => {
            return invalid!(
                "cos/sin caches {} / {} do not fit rotary dim {rd}",
                c.ty(cos),
                c.ty(sin)
            );
        }
    };
    cos = reshape_v(c, cos, unsqueezed.clone())?;
    sin = reshape_v(c, sin, unsqueezed)?;
    let rotated = if rd < head {
        let part = last_axis_slice(c, y, 0, rd, 1)?;
        let rest = last_axis_slice(c, y, rd, head, 1)?;
        let rotated = rotate(c, part, cos, sin, interleaved)?;
        concat_last(c, &[rotated, rest])?
    } else {
        rotate(c, y, cos, sin, interleaved)?
    };
    y = if original.len() == 3 {
        reshape_v(c, rotated, original)?
    } else {
        transpose_v(c, rotated, vec![0, 2, 1, 3])?
    };
    Ok(y)
}
