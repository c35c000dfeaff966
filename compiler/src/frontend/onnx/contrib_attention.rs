//! ONNX Runtime's BERT/GPT-2 fusions from `com.microsoft`: `Attention` (packed QKV
//! projection), its int8 form `QAttention`, `MultiHeadAttention` and
//! `EmbedLayerNormalization` (and its uint8 form `QEmbedLayerNormalization`), lowered to the IR ops
//! our passes fuse: per-head projections become `Linear`s, `MatMul · scale + mask →
//! Softmax → MatMul` becomes the fused `Attention` op, the embedding sum a `LayerNorm`.
//! Masks follow ORT's CPU kernels: masked scores get `mask_filter_value` (default -10000)
//! added, not `-inf`, so a fully masked row is a uniform average as in ORT.
#![deny(clippy::indexing_slicing)]
use super::attention::{merge_heads, softmax_keys, split_heads};
use super::node::NodeCtx;
use super::ops::{bin, cast_v, reduce_to, reshape_v, scalar, transpose_v};
use crate::error::OpError;
use crate::ir::{DType, Data, Tensor, ValueId};
use crate::ops::binary::BinaryKind;
use crate::ops::qlinear::ActQuant;
use crate::ops::{self, Op};
use crate::{invalid, unsupported};
use runtime_core::kernels::reduce::ReduceKind;

/// Refuse a non-default integer attribute, naming it.
fn refuse_attr(c: &NodeCtx<'_>, name: &str, default: i64, what: &str) -> Result<(), OpError> {
    match c.attr_int(name, default)? {
        v if v == default => Ok(()),
        v => unsupported!("attribute `{name}`={v} ({what})"),
    }
}

/// The head count, positive and dividing every hidden size given.
fn num_heads(c: &NodeCtx<'_>, sizes: &[usize]) -> Result<usize, OpError> {
    let n = c.attr_int("num_heads", 0)?;
    match usize::try_from(n) {
        Ok(n) if n > 0 && sizes.iter().all(|s| s.is_multiple_of(n)) => Ok(n),
        _ => invalid!("num_heads={n} does not divide the hidden sizes {sizes:?}"),
    }
}

/// `x · w + b` over the last axis.
fn project(
    c: &mut NodeCtx<'_>,
    x: ValueId,
    w: ValueId,
    b: Option<ValueId>,
) -> Result<ValueId, OpError> {
    let y = c.add1(Op::MatMul(ops::matmul::MatMul {}), &[x, w])?;
    match b {
        Some(b) => bin(c, BinaryKind::Add, y, b),
        None => Ok(y),
    }
}

/// `x` cut into `sizes` along `axis` (constant operands fold at import).
fn split(
    c: &mut NodeCtx<'_>,
    x: ValueId,
    axis: usize,
    sizes: Vec<usize>,
) -> Result<Vec<ValueId>, OpError> {
    c.add(Op::Split(ops::split::Split { axis, sizes }), &[x])
}

/// `[0 | filter]` bias `[batch, 1, rows, total]` from an ORT mask: lengths `[batch]`,
/// end/start positions `[2·batch]`, or a raw 0/1 mask `[batch, total]` /
/// `[batch, rows, total]` (nonzero keeps).
fn mask_bias(
    c: &mut NodeCtx<'_>,
    mask: ValueId,
    batch: usize,
    total: usize,
    filter: f64,
) -> Result<ValueId, OpError> {
    let ty = c.ty(mask).clone();
    let zero = scalar(c, DType::F32, 0.0)?;
    let filter = scalar(c, DType::F32, filter)?;
    let keep = match *ty.shape.as_slice() {
        [n] if n == batch || n == 2 * batch => {
            let lens = cast_v(c, mask, DType::I64)?;
            let cols = Tensor::from_i64s(vec![1, 1, 1, total], (0..total as i64).collect())?;
            let cols = c.constant_value(cols);
            let parts = split(c, lens, 0, vec![batch; n / batch])?;
            let end = reshape_v(
                c,
                parts.first().copied().unwrap_or(lens),
                vec![batch, 1, 1, 1],
            )?;
            let keep = bin(c, BinaryKind::Less, cols, end)?;
            match parts.get(1) {
                Some(&start) => {
                    let start = reshape_v(c, start, vec![batch, 1, 1, 1])?;
                    let after = bin(c, BinaryKind::GreaterOrEqual, cols, start)?;
                    bin(c, BinaryKind::And, keep, after)?
                }
                None => keep,
            }
        }
        [b, t] if b == batch && t == total => {
            let z = scalar(c, ty.dtype, 0.0)?;
            let keep = bin(c, BinaryKind::Greater, mask, z)?;
            reshape_v(c, keep, vec![batch, 1, 1, total])?
        }
        [b, s, t] if b == batch && t == total => {
            let z = scalar(c, ty.dtype, 0.0)?;
            let keep = bin(c, BinaryKind::Greater, mask, z)?;
            reshape_v(c, keep, vec![batch, 1, s, total])?
        }
        _ => {
            return unsupported!(
                "mask {ty} for batch {batch} and {total} keys (lengths [batch], end/start \
                 [2·batch], or a raw mask [batch, total] / [batch, seq, total])"
            );
        }
    };
    c.add1(Op::Where(ops::where_::Where {}), &[keep, zero, filter])
}

/// The additive mask bias of an attention over `total` keys, of which the last `seq` are the
/// new tokens: padding mask, causal (`unidirectional`) part and `attention_bias`, summed.
struct Masking {
    mask: Option<ValueId>,
    attention_bias: Option<ValueId>,
    unidirectional: bool,
    filter: f64,
}

impl Masking {
    fn read(c: &NodeCtx<'_>, mask: usize, bias: Option<usize>) -> Result<Self, OpError> {
        Ok(Masking {
            mask: c.opt_input(mask),
            attention_bias: bias.and_then(|b| c.opt_input(b)),
            unidirectional: c.attr_int("unidirectional", 0)? != 0,
            filter: c.attr_float("mask_filter_value", -10000.0)? as f64,
        })
    }

    fn bias(
        &self,
        c: &mut NodeCtx<'_>,
        batch: usize,
        seq: usize,
        total: usize,
    ) -> Result<Option<ValueId>, OpError> {
        let mut bias = match self.mask {
            Some(m) => Some(mask_bias(c, m, batch, total, self.filter)?),
            None => None,
        };
        if self.unidirectional {
            let past = total.saturating_sub(seq);
            let values: Vec<f32> = (0..seq)
                .flat_map(|i| (0..total).map(move |j| if j > i + past { 1.0 } else { 0.0 }))
                .map(|m| m * self.filter as f32)
                .collect();
            let causal = c.constant_value(Tensor::from_f32s(vec![seq, total], values)?);
            bias = Some(match bias {
                Some(b) => bin(c, BinaryKind::Add, b, causal)?,
                None => causal,
            });
        }
        if let Some(ab) = self.attention_bias {
            let ab = cast_v(c, ab, DType::F32)?;
            bias = Some(match bias {
                Some(b) => bin(c, BinaryKind::Add, b, ab)?,
                None => ab,
            });
        }
        Ok(bias)
    }
}

/// `softmax(scale · Q·Kᵀ + bias) · V` on `[b, heads, s, d]` operands, in the shape
/// `fuse_attention` turns into one `Attention` op; returns `[b, s, heads·d_v]`.
fn attend(
    c: &mut NodeCtx<'_>,
    q: ValueId,
    k: ValueId,
    v: ValueId,
    bias: Option<ValueId>,
) -> Result<ValueId, OpError> {
    let head = c.dim(q, 3)?;
    let scale = match c.attr_float("scale", 0.0)? {
        s if s != 0.0 => s as f64,
        _ => 1.0 / (head as f64).sqrt(),
    };
    let kt = transpose_v(c, k, vec![0, 1, 3, 2])?;
    let s = c.add1(Op::MatMul(ops::matmul::MatMul {}), &[q, kt])?;
    let sc = scalar(c, DType::F32, scale)?;
    let mut s = bin(c, BinaryKind::Mul, s, sc)?;
    if let Some(mut b) = bias {
        // The fused kernel reads the mask with one stride per flat (batch·head) index: a
        // per-batch mask shared by the heads is repeated over them (rows stay broadcast).
        if let &[nb, 1, rows, t] = c.ty(b).shape.as_slice()
            && nb > 1
        {
            let heads = c.dim(q, 1)?;
            b = c.add1(
                Op::Expand(ops::expand::Expand {
                    shape: vec![nb, heads, rows, t],
                }),
                &[b],
            )?;
        }
        s = bin(c, BinaryKind::Add, s, b)?;
    }
    let p = softmax_keys(c, s)?;
    let y = c.add1(Op::MatMul(ops::matmul::MatMul {}), &[p, v])?;
    merge_heads(c, y)
}

/// `[b, s, hidden]` of `x` (3-D input check).
fn dims3(c: &NodeCtx<'_>, x: ValueId, what: &str) -> Result<[usize; 3], OpError> {
    match *c.ty(x).shape.as_slice() {
        [b, s, h] => Ok([b, s, h]),
        _ => invalid!("{what} must be [batch, seq, hidden], got {}", c.ty(x)),
    }
}

/// `Attention(input, weights, bias?, mask_index?, past?, attention_bias?,
/// past_sequence_length?)`: self-attention with the Q/K/V projections packed in one weight
/// `[hidden_in, q + k + v]`. `past` `[2, b, heads, past, d]` is concatenated (present =
/// past ++ new); shared past/present buffers and rotary embedding are not supported.
pub(super) fn attention(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let (x, w) = (c.input(0)?, c.input(1)?);
    if c.opt_input(6).is_some() {
        return unsupported!("input `past_sequence_length` (shared past/present buffers)");
    }
    let sizes = qkv_sizes(c, x, w)?;
    let heads = num_heads(c, &sizes)?;
    let ws = split(c, w, 1, sizes.clone())?;
    let bs = match c.opt_input(2) {
        Some(b) => split(c, b, 0, sizes.clone())?
            .into_iter()
            .map(Some)
            .collect(),
        None => vec![None; 3],
    };
    let mut qkv = Vec::with_capacity(3);
    for (w, b) in ws.into_iter().zip(bs) {
        qkv.push(project(c, x, w, b)?);
    }
    let &[q, k, v] = qkv.as_slice() else {
        return invalid!("Q/K/V split did not give three parts");
    };
    self_attention(
        c,
        [q, k, v],
        heads,
        Slots {
            mask: 3,
            past: 4,
            attention_bias: Some(5),
        },
    )
}

/// `QAttention(input, weight, bias, input_scale, weight_scale, mask_index?, input_zero_point?,
/// weight_zero_point?, past?)`: `Attention` whose packed projection is the exact integer
/// product `(input - zp)·(weight - w_zp)` scaled back to float (weight scale and zero point
/// per tensor or per column), plus the float bias. When `quant_fuse` found the input to be
/// `DynamicQuantizeLinear(x)` and the weight a constant int8 with zero point 0, input 0 is
/// the f32 `x` and the Q/K/V projections become three `QLinear`s that quantize `x` as
/// `DynamicQuantizeLinear` does (`merge_linears` makes them one); otherwise the product runs
/// as i32 arithmetic.
pub(super) fn q_attention(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let (x, w, bias) = (c.input(0)?, c.input(1)?, c.input(2)?);
    let sizes = qkv_sizes(c, x, w)?;
    let heads = num_heads(c, &sizes)?;
    let parts = if c.ty(x).dtype == DType::F32 {
        integer_projections(c, x, bias, &sizes)?
    } else {
        let y = super::contrib::integer_product_to_float(
            c,
            [Some(x), c.opt_input(3), c.opt_input(6)],
            [Some(w), c.opt_input(4), c.opt_input(7)],
            Some(bias),
        )?;
        split(c, y, 2, sizes)?
    };
    let &[q, k, v] = parts.as_slice() else {
        return invalid!("Q/K/V split did not give three parts");
    };
    let slots = Slots {
        mask: 5,
        past: 8,
        attention_bias: None,
    };
    self_attention(c, [q, k, v], heads, slots)
}

/// The Q/K/V projections of f32 `x` by QAttention's constant int8 weight (input 1, zero
/// point 0) and weight scale (input 4, per tensor or per column), one `QLinear` with
/// ONNX's per-tensor uint8 dynamic activations per part, the bias split alike.
fn integer_projections(
    c: &mut NodeCtx<'_>,
    x: ValueId,
    bias: ValueId,
    sizes: &[usize],
) -> Result<Vec<ValueId>, OpError> {
    let w = c.const_tensor(1, "weight")?;
    let (Data::I8(q), &[k, n]) = (&w.data, w.ty.shape.as_slice()) else {
        return invalid!("the weight is {}, not a 2-D int8 constant", w.ty);
    };
    if let Some(z) = c.opt_input(7) {
        let zero = c
            .constant(z)
            .is_some_and(|t| t.to_f64_vec().iter().all(|&v| v == 0.0));
        if !zero {
            return invalid!("the weight zero point is not a constant 0");
        }
    }
    let scales = super::quant_fuse::column_scales(&*c.const_tensor(4, "weight scale")?, n)
        .map_err(OpError::Invalid)?;
    let biases = split(c, bias, 0, sizes.to_vec())?;
    let mut out = Vec::with_capacity(sizes.len());
    let mut start = 0;
    for (&size, b) in sizes.iter().zip(biases) {
        let cols = start..start + size;
        let part: Vec<i8> = (0..k)
            .flat_map(|r| q.get(r * n + cols.start..r * n + cols.end).unwrap_or(&[]))
            .copied()
            .collect();
        let part_scales = scales.get(cols).unwrap_or(&[]);
        if part.len() != k * size || part_scales.len() != size {
            return invalid!("weight {} does not hold the Q/K/V sizes {sizes:?}", w.ty);
        }
        out.push(super::quant::qlinear(
            c,
            x,
            (&part, part_scales, k, size),
            ActQuant::DynamicTensorU8,
            Some(b),
        )?);
        start += size;
    }
    Ok(out)
}

/// Where `Attention` and `QAttention` keep their optional inputs.
struct Slots {
    mask: usize,
    past: usize,
    attention_bias: Option<usize>,
}

/// The Q/K/V hidden sizes of a packed weight `[hidden_in, q + k + v]` for input `x`,
/// after refusing the attributes neither `Attention` nor `QAttention` lowering supports.
fn qkv_sizes(c: &NodeCtx<'_>, x: ValueId, w: ValueId) -> Result<Vec<usize>, OpError> {
    refuse_attr(c, "do_rotary", 0, "rotary embedding inside Attention")?;
    refuse_attr(
        c,
        "past_present_share_buffer",
        0,
        "shared past/present buffers",
    )?;
    let [_, _, hidden_in] = dims3(c, x, "input")?;
    let &[w_in, w_out] = c.ty(w).shape.as_slice() else {
        return invalid!("weights must be 2-D, got {}", c.ty(w));
    };
    if w_in != hidden_in {
        return invalid!("weights {} do not fit input {}", c.ty(w), c.ty(x));
    }
    let sizes = match c.attr_ints("qkv_hidden_sizes")? {
        Some(s) => {
            let s: Vec<usize> = s.iter().filter_map(|&v| usize::try_from(v).ok()).collect();
            match *s.as_slice() {
                [q, k, v] if q == k && q + k + v == w_out && q > 0 && v > 0 => s,
                _ => return invalid!("qkv_hidden_sizes {s:?} do not fit weights {}", c.ty(w)),
            }
        }
        None if w_out.is_multiple_of(3) => vec![w_out / 3; 3],
        None => return invalid!("weights {} are not three equal parts", c.ty(w)),
    };
    Ok(sizes)
}

/// Self-attention of projected `[b, s, hidden]` Q/K/V: heads split, `past`
/// `[2, b, heads, past, d]` prepended (output `present`), masks, fused attention chain.
fn self_attention(
    c: &mut NodeCtx<'_>,
    [q, k, v]: [ValueId; 3],
    heads: usize,
    slots: Slots,
) -> Result<Vec<ValueId>, OpError> {
    let [batch, seq, _] = dims3(c, q, "query")?;
    let q = split_heads(c, q, heads)?;
    let mut k = split_heads(c, k, heads)?;
    let mut v = split_heads(c, v, heads)?;
    let present = match c.opt_input(slots.past) {
        Some(past) => {
            let &[2, pb, ph, plen, pd] = c.ty(past).shape.as_slice() else {
                return invalid!(
                    "past must be [2, batch, heads, past, head_size], got {}",
                    c.ty(past)
                );
            };
            if pb != batch || ph != heads || Some(&pd) != c.ty(k).shape.get(3) || c.ty(k) != c.ty(v)
            {
                return invalid!(
                    "past {} does not fit {heads} heads of {}",
                    c.ty(past),
                    c.ty(k)
                );
            }
            let parts = split(c, past, 0, vec![1, 1])?;
            let mut halves = Vec::with_capacity(2);
            for (part, new) in parts.into_iter().zip([k, v]) {
                let old = reshape_v(c, part, vec![batch, heads, plen, pd])?;
                halves.push(c.add1(Op::Concat(ops::concat::Concat { axis: 2 }), &[old, new])?);
            }
            let &[pk, pv] = halves.as_slice() else {
                return invalid!("past split did not give two parts");
            };
            (k, v) = (pk, pv);
            let total = plen + seq;
            let k5 = reshape_v(c, k, vec![1, batch, heads, total, pd])?;
            let v5 = reshape_v(c, v, vec![1, batch, heads, total, pd])?;
            Some(c.add1(Op::Concat(ops::concat::Concat { axis: 0 }), &[k5, v5])?)
        }
        None if super::contrib::wants_output(c, 1) => {
            let d = c.dim(k, 3)?;
            let k5 = reshape_v(c, k, vec![1, batch, heads, seq, d])?;
            let v5 = reshape_v(c, v, vec![1, batch, heads, seq, d])?;
            Some(c.add1(Op::Concat(ops::concat::Concat { axis: 0 }), &[k5, v5])?)
        }
        None => None,
    };
    let total = c.dim(k, 2)?;
    let bias = Masking::read(c, slots.mask, slots.attention_bias)?.bias(c, batch, seq, total)?;
    let y = attend(c, q, k, v, bias)?;
    Ok(std::iter::once(y).chain(present).collect())
}

/// `MultiHeadAttention(query, key, value, bias?, key_padding_mask?, attention_bias?,
/// past_key?, past_value?)` with 3-D query/key/value `[b, s, hidden]` (projection bias
/// added, heads split) or 4-D key/value `[b, heads, kv, d]` used as they are. Packed QKV/KV,
/// shared buffers, beam-search cache indirection and the `qk` output are not supported.
pub(super) fn multi_head_attention(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let q = c.input(0)?;
    let (Some(k), Some(v)) = (c.opt_input(1), c.opt_input(2)) else {
        return unsupported!("packed QKV (query without separate key and value)");
    };
    if c.opt_input(8).is_some() || c.opt_input(9).is_some() {
        return unsupported!(
            "inputs `past_sequence_length` / `cache_indirection` (shared buffers, beam search)"
        );
    }
    if super::contrib::wants_output(c, 3) {
        return unsupported!("the `qk` output");
    }
    let [batch, seq, hidden] = dims3(c, q, "query")?;
    let (k_rank, v_rank) = (c.ty(k).rank(), c.ty(v).rank());
    let k_hidden = match (k_rank, v_rank) {
        (3, 3) => dims3(c, k, "key")?[2],
        (4, 4) => c.dim(k, 1)? * c.dim(k, 3)?,
        _ => {
            return unsupported!(
                "key {} / value {} (packed KV, or mixed 3-D and 4-D)",
                c.ty(k),
                c.ty(v)
            );
        }
    };
    if k_hidden != hidden {
        return invalid!("key {} does not fit query {}", c.ty(k), c.ty(q));
    }
    let v_hidden = match v_rank {
        3 => dims3(c, v, "value")?[2],
        _ => c.dim(v, 1)? * c.dim(v, 3)?,
    };
    let heads = num_heads(c, &[hidden, v_hidden])?;
    let biases = match c.opt_input(3) {
        Some(b) => split(c, b, 0, vec![hidden, hidden, v_hidden])?
            .into_iter()
            .map(Some)
            .collect(),
        None => vec![None; 3],
    };
    let bias = |i: usize| biases.get(i).copied().flatten();
    let mut parts = Vec::with_capacity(3);
    for (i, x) in [q, k, v].into_iter().enumerate() {
        parts.push(if c.ty(x).rank() == 4 {
            x
        } else {
            let y = match bias(i) {
                Some(b) => bin(c, BinaryKind::Add, x, b)?,
                None => x,
            };
            split_heads(c, y, heads)?
        });
    }
    let &[q, mut k, mut v] = parts.as_slice() else {
        return invalid!("Q/K/V did not give three parts");
    };
    if c.ty(k).shape.get(1) != Some(&heads) {
        return invalid!("key {} does not have {heads} heads", c.ty(k));
    }
    match (c.opt_input(6), c.opt_input(7)) {
        (Some(pk), Some(pv)) => {
            k = c.add1(Op::Concat(ops::concat::Concat { axis: 2 }), &[pk, k])?;
            v = c.add1(Op::Concat(ops::concat::Concat { axis: 2 }), &[pv, v])?;
        }
        (None, None) => {}
        _ => return invalid!("past_key and past_value must be given together"),
    }
    let total = c.dim(k, 2)?;
    let mask = Masking::read(c, 4, Some(5))?.bias(c, batch, seq, total)?;
    let y = attend(c, q, k, v, mask)?;
    Ok(vec![y, k, v])
}

/// An embedding table: f32 values, or (`QEmbedLayerNormalization`) the uint8/int8 table as
/// stored, each gathered row dequantized as `(q - zero_point) · scale`.
#[derive(Clone, Copy)]
struct Table {
    values: ValueId,
    dequantize: Option<(f32, f32)>,
}

impl Table {
    fn float(values: ValueId) -> Table {
        Table {
            values,
            dequantize: None,
        }
    }

    /// The f32 rows `idx` selects.
    fn gather(self, c: &mut NodeCtx<'_>, idx: ValueId) -> Result<ValueId, OpError> {
        let rows = c.add1(
            Op::Gather(ops::gather::Gather { axis: 0 }),
            &[self.values, idx],
        )?;
        let Some((scale, zero_point)) = self.dequantize else {
            return Ok(rows);
        };
        super::quant::dequantize_rows(c, rows, scale, zero_point)
    }
}

/// The tables and parameters of an `EmbedLayerNormalization`.
struct Embed {
    ids: ValueId,
    segment_ids: Option<ValueId>,
    word: Table,
    position: Table,
    segment: Option<Table>,
    gamma: ValueId,
    beta: ValueId,
    mask: Option<ValueId>,
    position_ids: Option<ValueId>,
}

/// `EmbedLayerNormalization(input_ids, segment_ids?, word_embedding, position_embedding,
/// segment_embedding?, gamma, beta, mask?, position_ids?)`: LayerNorm of the summed
/// embeddings; output 1 is the mask index (count of mask values equal to 1 per row, or
/// zeros without a mask), output 2 the sum before normalisation.
pub(super) fn embed_layer_norm(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let e = Embed {
        ids: c.input(0)?,
        segment_ids: c.opt_input(1),
        word: Table::float(c.input(2)?),
        position: Table::float(c.input(3)?),
        segment: c.opt_input(4).map(Table::float),
        gamma: c.input(5)?,
        beta: c.input(6)?,
        mask: c.opt_input(7),
        position_ids: c.opt_input(8),
    };
    embed(c, &e)
}

/// `QEmbedLayerNormalization(input_ids, segment_ids?, word_embedding, position_embedding,
/// segment_embedding?, gamma, beta, mask?, word/position/segment/gamma/beta scales (8–12),
/// their zero points (13–17))`: `EmbedLayerNormalization` of uint8 tables and LayerNorm
/// parameters quantized per tensor, as `quantize_dynamic` writes it. ONNX Runtime
/// dequantizes each value to float (`(q - zero_point) · scale`, one f32 rounding) and
/// computes in float. The embedding tables stay uint8/int8 here, each gathered row
/// dequantized by that formula; gamma and beta (one row each) are dequantized at build
/// time. The results are ORT's up to float summation order.
pub(super) fn q_embed_layer_norm(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let table = |c: &mut NodeCtx<'_>, slot: usize| -> Result<Option<Table>, OpError> {
        let Some(values) = c.opt_input(slot) else {
            return Ok(None);
        };
        let q = c.const_tensor(slot, "quantized table")?;
        let scale = c.const_tensor(slot + 6, "scale")?.to_f64_vec();
        let zero_point = match c.opt_input(slot + 11) {
            Some(_) => c.const_tensor(slot + 11, "zero point")?.to_f64_vec(),
            None => vec![0.0],
        };
        let (&[s], &[z]) = (scale.as_slice(), zero_point.as_slice()) else {
            return unsupported!(
                "input {slot}: {} scales / {} zero points (only per-tensor quantization)",
                scale.len(),
                zero_point.len()
            );
        };
        if !matches!(q.data, Data::U8(_) | Data::I8(_)) {
            return invalid!("input {slot} is {}, not uint8/int8", q.ty);
        }
        Ok(Some(Table {
            values,
            dequantize: Some((s as f32, z as f32)),
        }))
    };
    let row = |c: &mut NodeCtx<'_>, slot: usize| -> Result<Option<ValueId>, OpError> {
        let Some(Table {
            dequantize: Some((s, z)),
            ..
        }) = table(c, slot)?
        else {
            return Ok(None);
        };
        let q = c.const_tensor(slot, "quantized parameter")?;
        let values = q.to_f64_vec().iter().map(|&v| (v as f32 - z) * s).collect();
        let t = Tensor::from_f32s(q.ty.shape.clone(), values)?;
        Ok(Some(c.constant_value(t)))
    };
    fn required<T>(v: Option<T>, what: &str) -> Result<T, OpError> {
        v.ok_or_else(|| OpError::Invalid(format!("missing {what}")))
    }
    let word = table(c, 2)?;
    let position = table(c, 3)?;
    let segment = table(c, 4)?;
    let gamma = row(c, 5)?;
    let beta = row(c, 6)?;
    let e = Embed {
        ids: c.input(0)?,
        segment_ids: c.opt_input(1),
        word: required(word, "word_embedding")?,
        position: required(position, "position_embedding")?,
        segment,
        gamma: required(gamma, "gamma")?,
        beta: required(beta, "beta")?,
        mask: c.opt_input(7),
        position_ids: None,
    };
    let outputs = embed(c, &e)?;
    Ok(outputs.into_iter().take(2).collect())
}

fn embed(c: &mut NodeCtx<'_>, e: &Embed) -> Result<Vec<ValueId>, OpError> {
    let ids = e.ids;
    let &[batch, seq] = c.ty(ids).shape.as_slice() else {
        return invalid!("input_ids must be [batch, seq], got {}", c.ty(ids));
    };
    let mut sum = e.word.gather(c, ids)?;
    let positions = match e.position_ids {
        Some(p) => p,
        None => c.constant_value(Tensor::from_i64s(vec![seq], (0..seq as i64).collect())?),
    };
    let pos = e.position.gather(c, positions)?;
    sum = bin(c, BinaryKind::Add, sum, pos)?;
    match (e.segment_ids, e.segment) {
        (Some(seg_ids), Some(seg_table)) => {
            let seg = seg_table.gather(c, seg_ids)?;
            sum = bin(c, BinaryKind::Add, sum, seg)?;
        }
        (None, None) => {}
        _ => return invalid!("segment_ids and segment_embedding must be given together"),
    }
    let epsilon = c.attr_float("epsilon", 1e-12)?;
    let axis = c.ty(sum).rank().saturating_sub(1);
    let y = c.add1(
        Op::LayerNorm(ops::layer_norm::LayerNorm { axis, epsilon }),
        &[sum, e.gamma, e.beta],
    )?;
    let mask_index = match e.mask {
        Some(mask) => {
            let one = scalar(c, c.ty(mask).dtype, 1.0)?;
            let ones = bin(c, BinaryKind::Equal, mask, one)?;
            let ones = cast_v(c, ones, DType::I32)?;
            reduce_to(c, ReduceKind::Sum, ones, &[1], false)?
        }
        None => c.constant_value(Tensor::new(
            crate::ir::TensorType::new(DType::I32, vec![batch]),
            crate::ir::Data::I32(vec![0; batch]),
        )?),
    };
    Ok(vec![y, mask_index, sum])
}
