//! ONNX `Attention` (opset 23+) lowered to IR ops, following the operator's function body:
//! heads split from 3-D inputs, KV cache concatenated, grouped KV heads repeated, scaled
//! `Q·Kᵀ`, softcap, additive bias (mask, causal, sliding window, padding), softmax with the
//! fully-masked-row guard, `·V`. The bias depends only on shapes and constants except for
//! a run-time `attn_mask`, so most of it folds at import.
#![deny(clippy::indexing_slicing)]
use super::node::NodeCtx;
use super::ops::{bin, cast_v, reduce_to, reshape_v, scalar, transpose_v, un};
use crate::error::OpError;
use crate::ir::{DType, Tensor, TensorType, ValueId};
use crate::ops::binary::BinaryKind;
use crate::ops::unary::UnaryKind;
use crate::ops::{self, Op};
use crate::{invalid, unsupported};
use runtime_core::kernels::reduce::ReduceKind;

/// A constant f32 tensor → value of `dtype`.
fn constant_of(
    c: &mut NodeCtx<'_>,
    shape: Vec<usize>,
    values: Vec<f32>,
    dtype: DType,
) -> Result<ValueId, OpError> {
    let t = Tensor::from_f32s(shape, values)?;
    let v = c.constant_value(t);
    cast_v(c, v, dtype)
}

/// `0` where `allowed(batch, i, j)`, `-inf` elsewhere, shaped `(batches, 1, q, kv)` (or
/// `(q, kv)` when `batches` is `None`).
fn bias_where(
    c: &mut NodeCtx<'_>,
    batches: Option<usize>,
    q: usize,
    kv: usize,
    dtype: DType,
    allowed: impl Fn(usize, i64, i64) -> bool,
) -> Result<ValueId, OpError> {
    let nb = batches.unwrap_or(1);
    let mut values = Vec::with_capacity(nb * q * kv);
    for b in 0..nb {
        for i in 0..q {
            for j in 0..kv {
                values.push(if allowed(b, i as i64, j as i64) {
                    0.0
                } else {
                    f32::NEG_INFINITY
                });
            }
        }
    }
    let shape = match batches {
        Some(nb) => vec![nb, 1, q, kv],
        None => vec![q, kv],
    };
    constant_of(c, shape, values, dtype)
}

/// `[b, s, heads·d]` → `[b, heads, s, d]`.
pub(super) fn split_heads(
    c: &mut NodeCtx<'_>,
    x: ValueId,
    heads: usize,
) -> Result<ValueId, OpError> {
    let shape = c.ty(x).shape.clone();
    let &[b, s, hidden] = shape.as_slice() else {
        return invalid!("expected a 3-D input, got {}", c.ty(x));
    };
    if heads == 0 || !hidden.is_multiple_of(heads) {
        return invalid!("hidden size {hidden} is not a multiple of {heads} heads");
    }
    let x = reshape_v(c, x, vec![b, s, heads, hidden / heads])?;
    transpose_v(c, x, vec![0, 2, 1, 3])
}

/// `[b, heads, s, d]` → `[b, s, heads·d]`, the inverse of `split_heads`.
pub(super) fn merge_heads(c: &mut NodeCtx<'_>, y: ValueId) -> Result<ValueId, OpError> {
    let &[b, heads, s, d] = c.ty(y).shape.as_slice() else {
        return invalid!("attention output must be 4-D, got {}", c.ty(y));
    };
    let y = transpose_v(c, y, vec![0, 2, 1, 3])?;
    reshape_v(c, y, vec![b, s, heads * d])
}

/// Softmax over the last axis of a 4-D value (attention scores).
pub(super) fn softmax_keys(c: &mut NodeCtx<'_>, x: ValueId) -> Result<ValueId, OpError> {
    c.add1(
        Op::Softmax(ops::softmax::Softmax {
            axis: 3,
            log: false,
            coerce_2d: false,
        }),
        &[x],
    )
}

fn positive_attr(c: &NodeCtx<'_>, name: &str) -> Result<Option<usize>, OpError> {
    if !c.has_attr(name) {
        return Ok(None);
    }
    let v = c.attr_int(name, 0)?;
    usize::try_from(v)
        .ok()
        .filter(|&v| v > 0)
        .map(Some)
        .ok_or_else(|| OpError::Invalid(format!("`{name}` must be positive, got {v}")))
}

pub fn attention(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let (mut q, mut k, mut v) = (c.input(0)?, c.input(1)?, c.input(2)?);
    let dtype = c.ty(q).dtype;
    if !dtype.is_float() {
        return invalid!("Attention needs floating-point Q, got {dtype}");
    }
    let rank = c.ty(q).rank();
    if rank != c.ty(k).rank() || rank != c.ty(v).rank() || !(rank == 3 || rank == 4) {
        return invalid!(
            "Q, K and V must all be 3-D or all 4-D, got {}, {} and {}",
            c.ty(q),
            c.ty(k),
            c.ty(v)
        );
    }
    let q_heads_attr = positive_attr(c, "q_num_heads")?;
    let kv_heads_attr = positive_attr(c, "kv_num_heads")?;
    if rank == 3 {
        let (Some(qh), Some(kvh)) = (q_heads_attr, kv_heads_attr) else {
            return invalid!("3-D inputs need the q_num_heads and kv_num_heads attributes");
        };
        q = split_heads(c, q, qh)?;
        k = split_heads(c, k, kvh)?;
        v = split_heads(c, v, kvh)?;
    }
    let head_size = c.dim(q, 3)?;
    let scale = if c.has_attr("scale") {
        c.attr_float("scale", 1.0)? as f64
    } else {
        1.0 / (head_size as f64).sqrt()
    };
    let sqrt_scale = scalar(c, DType::F32, (scale as f32).sqrt() as f64)?;
    let sqrt_scale = cast_v(c, sqrt_scale, dtype)?;

    // KV cache.
    let past_key = c.opt_input(4);
    let past_value = c.opt_input(5);
    if past_key.is_some() != past_value.is_some() {
        return invalid!("past_key and past_value must be given together");
    }
    let past_len = match past_key {
        Some(pk) => c.ty(pk).shape.get(2).copied().unwrap_or(0),
        None => 0,
    };
    if let (Some(pk), Some(pv)) = (past_key, past_value) {
        k = c.add1(Op::Concat(ops::concat::Concat { axis: 2 }), &[pk, k])?;
        v = c.add1(Op::Concat(ops::concat::Concat { axis: 2 }), &[pv, v])?;
    }
    let (present_key, present_value) = (k, v);
    let q_shape = c.ty(q).shape.clone();
    let &[batch, _, q_len, _] = q_shape.as_slice() else {
        return invalid!("Q must be 4-D, got {}", c.ty(q));
    };
    let kv_len = c.dim(k, 2)?;

    // Per-batch key lengths of an external cache (build-time constant).
    let nonpad = match c.opt_input(6) {
        Some(_) if past_key.is_some() => {
            return invalid!("nonpad_kv_seqlen cannot be combined with past_key/past_value");
        }
        Some(_) => Some(c.const_ints(6, "non-padded key lengths")?),
        None => None,
    };
    if let Some(n) = &nonpad
        && n.len() != batch
    {
        return invalid!("nonpad_kv_seqlen has {} values for batch {batch}", n.len());
    }

    // The additive bias.
    let zero_bias = constant_of(c, vec![q_len, kv_len], vec![0.0; q_len * kv_len], dtype)?;
    let mut bias = zero_bias;
    if let Some(mask) = c.opt_input(3) {
        let mask_ty: TensorType = c.ty(mask).clone();
        let mut mask = mask;
        if mask_ty.dtype == DType::Bool {
            let (zero, ninf) = (scalar(c, dtype, 0.0)?, scalar(c, dtype, f64::NEG_INFINITY)?);
            mask = c.add1(Op::Where(ops::where_::Where {}), &[mask, zero, ninf])?;
        } else if mask_ty.dtype != dtype {
            return invalid!("attn_mask is {} but Q is {dtype}", mask_ty.dtype);
        }
        let last = mask_ty.shape.last().copied().unwrap_or(0);
        if last < kv_len {
            let mut pad_shape = mask_ty.shape.clone();
            if let Some(l) = pad_shape.last_mut() {
                *l = kv_len - last;
            }
            let pad = c.add1(
                Op::Fill(ops::fill::Fill {
                    dtype,
                    value: f64::NEG_INFINITY,
                    shape: pad_shape,
                }),
                &[],
            )?;
            let axis = mask_ty.rank().saturating_sub(1);
            mask = c.add1(Op::Concat(ops::concat::Concat { axis }), &[mask, pad])?;
        }
        bias = bin(c, BinaryKind::Add, bias, mask)?;
    }
    // Query i of batch b sits at absolute position i + offset(b).
    let offsets: Option<Vec<i64>> = nonpad
        .as_ref()
        .map(|n| n.iter().map(|&l| l - q_len as i64).collect());
    let per_batch = offsets.as_ref().map(|o| o.len());
    let offset = |b: usize| -> i64 {
        match &offsets {
            Some(o) => o.get(b).copied().unwrap_or_default(),
            None => past_len as i64,
        }
    };
    if c.attr_int("is_causal", 0)? != 0 {
        let causal = bias_where(c, per_batch, q_len, kv_len, dtype, |b, i, j| {
            j <= i + offset(b)
        })?;
        bias = bin(c, BinaryKind::Add, bias, causal)?;
    }
    let (left, right) = (
        c.attr_int("left_window_size", -1)?,
        c.attr_int("right_window_size", -1)?,
    );
    if left >= 0 || right >= 0 {
        let window = bias_where(c, per_batch, q_len, kv_len, dtype, |b, i, j| {
            let diff = i + offset(b) - j;
            (left < 0 || diff <= left) && (right < 0 || -diff <= right)
        })?;
        bias = bin(c, BinaryKind::Add, bias, window)?;
    }
    if let Some(n) = &nonpad {
        let padding = bias_where(c, Some(batch), 1, kv_len, dtype, |b, _, j| {
            n.get(b).is_some_and(|&l| j < l)
        })?;
        bias = bin(c, BinaryKind::Add, bias, padding)?;
    }

    let softcap = c.attr_float("softcap", 0.0)? as f64;
    let [mut y, qk, with_bias, probs] = scaled_dot_product(c, q, k, v, bias, sqrt_scale, softcap)?;
    if rank == 3 {
        y = merge_heads(c, y)?;
    }
    let qk_out = match c.attr_int("qk_matmul_output_mode", 0)? {
        0 | 1 => qk,
        2 => with_bias,
        3 => probs,
        m => return unsupported!("qk_matmul_output_mode={m}"),
    };
    Ok(vec![y, present_key, present_value, qk_out])
}

/// `softmax(softcap(Q·s · (K·s)ᵀ) + bias) · V` on `[b, heads, s, d]` operands, repeating
/// grouped KV heads; rows whose bias is all `-inf` get zero probabilities. Returns
/// `[y, qk (after softcap), qk + bias, probabilities]`.
pub(super) fn scaled_dot_product(
    c: &mut NodeCtx<'_>,
    q: ValueId,
    k: ValueId,
    v: ValueId,
    bias: ValueId,
    sqrt_scale: ValueId,
    softcap: f64,
) -> Result<[ValueId; 4], OpError> {
    let dtype = c.ty(q).dtype;
    let (q_heads, kv_heads) = (c.dim(q, 1)?, c.dim(k, 1)?);
    // Grouped KV heads: interleave-repeat each head.
    let (mut kk, mut vv) = (k, v);
    if q_heads != kv_heads {
        if kv_heads == 0 || !q_heads.is_multiple_of(kv_heads) {
            return invalid!("{q_heads} query heads are not a multiple of {kv_heads} KV heads");
        }
        let reps = q_heads / kv_heads;
        for x in [&mut kk, &mut vv] {
            let &[b, h, s, d] = c.ty(*x).shape.as_slice() else {
                return invalid!("K and V must be 4-D, got {}", c.ty(*x));
            };
            let y = reshape_v(c, *x, vec![b, h, 1, s, d])?;
            let y = c.add1(
                Op::Expand(ops::expand::Expand {
                    shape: vec![b, h, reps, s, d],
                }),
                &[y],
            )?;
            *x = reshape_v(c, y, vec![b, h * reps, s, d])?;
        }
    }

    let qs = bin(c, BinaryKind::Mul, q, sqrt_scale)?;
    let ks = bin(c, BinaryKind::Mul, kk, sqrt_scale)?;
    let kt = transpose_v(c, ks, vec![0, 1, 3, 2])?;
    let mut qk = c.add1(Op::MatMul(ops::matmul::MatMul {}), &[qs, kt])?;
    if softcap > 0.0 {
        let cap = scalar(c, dtype, softcap)?;
        let t = bin(c, BinaryKind::Div, qk, cap)?;
        let t = un(c, UnaryKind::Tanh, t)?;
        qk = bin(c, BinaryKind::Mul, t, cap)?;
    }
    let with_bias = bin(c, BinaryKind::Add, qk, bias)?;
    let probs = softmax_keys(c, with_bias)?;
    // Rows whose bias is -inf everywhere attend to nothing: their probabilities are 0.
    let bias_rank = c.ty(bias).rank();
    let row_max = reduce_to(c, ReduceKind::Max, bias, &[bias_rank - 1], true)?;
    let ninf = scalar(c, dtype, f64::NEG_INFINITY)?;
    let masked = bin(c, BinaryKind::Equal, row_max, ninf)?;
    let zero = scalar(c, dtype, 0.0)?;
    let probs = c.add1(Op::Where(ops::where_::Where {}), &[masked, zero, probs])?;
    let y = c.add1(Op::MatMul(ops::matmul::MatMul {}), &[probs, vv])?;
    Ok([y, qk, with_bias, probs])
}
