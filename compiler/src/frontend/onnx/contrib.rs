//! ONNX Runtime's `com.microsoft` contrib ops that ORT-optimised and ORT-quantised exports
//! carry, lowered to IR ops. Semantics follow ORT's contrib-op documentation; the golden
//! fixtures in `tests/models/contrib_*` hold ORT's outputs.
#![deny(clippy::indexing_slicing)]
use super::node::NodeCtx;
use super::ops::{bin, cast_v, reduce_to, reshape_v, scalar, un};
use super::quant::{dynamic_quantize, shifted};
use crate::error::OpError;
use crate::ir::{DType, Data, Tensor, TensorType, ValueId};
use crate::ops::binary::BinaryKind;
use crate::ops::q4linear::Q4Linear;
use crate::ops::unary::UnaryKind;
use crate::ops::{self, Op};
use crate::{invalid, unsupported};
use runtime_core::kernels::gemm::Activation;
use runtime_core::kernels::qgemm;
use runtime_core::kernels::reduce::ReduceKind;

/// The contrib ops' domain.
pub const DOMAIN: &str = "com.microsoft";

/// Every supported `com.microsoft` op type and its constructor.
pub const CONSTRUCTORS: &[(&str, super::ops::Constructor)] = &[
    ("FastGelu", fast_gelu),
    ("BiasGelu", bias_gelu),
    ("QuickGelu", quick_gelu),
    ("SkipLayerNormalization", |c| skip_norm(c, false)),
    ("SkipSimplifiedLayerNormalization", |c| skip_norm(c, true)),
    ("SimplifiedLayerNormalization", simplified_layer_norm),
    ("MatMulNBits", matmul_nbits),
    ("DynamicQuantizeMatMul", dynamic_quantize_matmul),
    ("MatMulIntegerToFloat", matmul_integer_to_float),
    ("RotaryEmbedding", rotary_embedding),
    ("GroupQueryAttention", group_query_attention),
    ("Attention", super::contrib_attention::attention),
    ("QAttention", super::contrib_attention::q_attention),
    (
        "MultiHeadAttention",
        super::contrib_attention::multi_head_attention,
    ),
    (
        "EmbedLayerNormalization",
        super::contrib_attention::embed_layer_norm,
    ),
    (
        "QEmbedLayerNormalization",
        super::contrib_attention::q_embed_layer_norm,
    ),
    ("QLinearAdd", |c| {
        super::contrib_quant::binary(c, BinaryKind::Add)
    }),
    ("QLinearMul", |c| {
        super::contrib_quant::binary(c, BinaryKind::Mul)
    }),
    ("QLinearLeakyRelu", |c| {
        super::contrib_quant::activation(c, false)
    }),
    ("QLinearSigmoid", |c| {
        super::contrib_quant::activation(c, true)
    }),
    (
        "QLinearGlobalAveragePool",
        super::contrib_quant::global_average_pool,
    ),
    ("QLinearConcat", super::contrib_quant::concat),
    ("QLinearAveragePool", super::contrib_quant::average_pool),
    ("QLinearWhere", super::contrib_quant::where_),
    ("QLinearSoftmax", super::contrib_quant::softmax),
    ("QGemm", super::contrib_quant::qgemm),
    ("FusedMatMul", fused_matmul),
    ("Gelu", gelu),
    ("BiasAdd", bias_add),
    ("BiasSoftmax", bias_softmax),
];

/// `x + bias` when the optional input `i` is present.
fn plus_optional(c: &mut NodeCtx<'_>, x: ValueId, i: usize) -> Result<ValueId, OpError> {
    match c.opt_input(i) {
        Some(b) => bin(c, BinaryKind::Add, x, b),
        None => Ok(x),
    }
}

/// `FastGelu(X, bias?)`: the tanh approximation of GELU of `X + bias`.
fn fast_gelu(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let x = c.input(0)?;
    let x = plus_optional(c, x, 1)?;
    Ok(vec![un(c, UnaryKind::GeluTanh, x)?])
}

/// `BiasGelu(A, B)`: exact GELU of `A + B`.
fn bias_gelu(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let (a, b) = (c.input(0)?, c.input(1)?);
    let x = bin(c, BinaryKind::Add, a, b)?;
    Ok(vec![un(c, UnaryKind::Gelu, x)?])
}

/// `com.microsoft.Gelu(X)`: exact (erf) GELU.
fn gelu(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let x = c.input(0)?;
    Ok(vec![un(c, UnaryKind::Gelu, x)?])
}

/// `BiasAdd(X, bias, skip)`: `X + bias + skip`.
fn bias_add(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let (x, b, skip) = (c.input(0)?, c.input(1)?, c.input(2)?);
    let y = bin(c, BinaryKind::Add, x, b)?;
    Ok(vec![bin(c, BinaryKind::Add, y, skip)?])
}

/// `BiasSoftmax(data, bias)`: softmax of `data + bias` (numpy broadcasting, as ORT's fusion
/// of `Add` + `Softmax` writes it; `is_inner_broadcast` only describes that broadcast) over
/// the axes from `axis` on, flattened as opset-1 Softmax.
fn bias_softmax(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let (x, bias) = (c.input(0)?, c.input(1)?);
    let rank = c.ty(x).rank();
    let axis = c.attr_int("axis", 1)?;
    let axis = usize::try_from(if axis < 0 { axis + rank as i64 } else { axis })
        .ok()
        .filter(|&a| a < rank)
        .ok_or_else(|| OpError::Invalid(format!("axis {axis} out of range for {}", c.ty(x))))?;
    let y = bin(c, BinaryKind::Add, x, bias)?;
    let y = c.add1(
        Op::Softmax(ops::softmax::Softmax {
            axis,
            log: false,
            coerce_2d: axis + 1 != rank,
        }),
        &[y],
    )?;
    Ok(vec![y])
}

/// `FusedMatMul(A, B)`: `alpha · op(A) · op(B)`, `op` transposing the last two axes when
/// `transA` / `transB` is set. The batch-axis transposes (`transBatchA`/`transBatchB`)
/// are not supported.
fn fused_matmul(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let (mut a, mut b) = (c.input(0)?, c.input(1)?);
    for name in ["transBatchA", "transBatchB"] {
        if c.attr_int(name, 0)? != 0 {
            return unsupported!("attribute `{name}`=1 (batch-axis transpose)");
        }
    }
    for (x, name) in [(&mut a, "transA"), (&mut b, "transB")] {
        if c.attr_int(name, 0)? == 0 {
            continue;
        }
        let rank = c.ty(*x).rank();
        if rank < 2 {
            return invalid!("`{name}` on a {}-D operand", rank);
        }
        let mut perm: Vec<usize> = (0..rank).collect();
        perm.swap(rank - 2, rank - 1);
        *x = super::ops::transpose_v(c, *x, perm)?;
    }
    let mut y = c.add1(Op::MatMul(ops::matmul::MatMul {}), &[a, b])?;
    let alpha = c.attr_float("alpha", 1.0)?;
    if alpha != 1.0 {
        let s = scalar(c, c.ty(y).dtype, alpha as f64)?;
        y = bin(c, BinaryKind::Mul, y, s)?;
    }
    Ok(vec![y])
}

/// `QuickGelu(X)`: `x · sigmoid(alpha · x)`.
fn quick_gelu(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let x = c.input(0)?;
    let alpha = c.attr_float("alpha", 1.702)? as f64;
    let a = scalar(c, c.ty(x).dtype, alpha)?;
    let ax = bin(c, BinaryKind::Mul, x, a)?;
    let s = un(c, UnaryKind::Sigmoid, ax)?;
    Ok(vec![bin(c, BinaryKind::Mul, x, s)?])
}

/// `x · Reciprocal(Sqrt(mean(x²) + eps))` over the last axis, and the reciprocal.
fn rms(c: &mut NodeCtx<'_>, x: ValueId, epsilon: f64) -> Result<(ValueId, ValueId), OpError> {
    let rank = c.ty(x).rank();
    if rank == 0 {
        return invalid!("input must have at least one axis");
    }
    let x2 = bin(c, BinaryKind::Mul, x, x)?;
    let ms = reduce_to(c, ReduceKind::Mean, x2, &[rank - 1], true)?;
    let eps = scalar(c, c.ty(x).dtype, epsilon)?;
    let ms = bin(c, BinaryKind::Add, ms, eps)?;
    let r = un(c, UnaryKind::Sqrt, ms)?;
    let inv = un(c, UnaryKind::Reciprocal, r)?;
    Ok((bin(c, BinaryKind::Mul, x, inv)?, inv))
}

pub(super) fn wants_output(c: &NodeCtx<'_>, k: usize) -> bool {
    c.proto.output.get(k).is_some_and(|o| !o.is_empty())
}

/// `SimplifiedLayerNormalization(X, scale)`: RMS normalisation over the last axis.
pub(super) fn simplified_layer_norm(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let (x, scale) = (c.input(0)?, c.input(1)?);
    let axis = c.attr_int("axis", -1)?;
    if axis != -1 && axis != c.ty(x).rank() as i64 - 1 {
        return unsupported!("SimplifiedLayerNormalization over axis {axis} (only the last)");
    }
    let epsilon = c.attr_float("epsilon", 1e-5)? as f64;
    let (normed, inv) = rms(c, x, epsilon)?;
    Ok(vec![bin(c, BinaryKind::Mul, normed, scale)?, inv])
}

/// `Skip(Simplified)LayerNormalization(input, skip, gamma, beta?, bias?)`: normalise
/// `input + skip (+ bias)` over the last axis; output 3 is that sum.
fn skip_norm(c: &mut NodeCtx<'_>, simplified: bool) -> Result<Vec<ValueId>, OpError> {
    let (x, skip, gamma) = (c.input(0)?, c.input(1)?, c.input(2)?);
    if wants_output(c, 1) || (!simplified && wants_output(c, 2)) {
        return unsupported!("the mean / inverse standard deviation outputs");
    }
    let epsilon = c.attr_float("epsilon", 1e-12)? as f64;
    let sum = bin(c, BinaryKind::Add, x, skip)?;
    // SkipSimplified has no beta: its bias is input 3.
    let (beta, bias_slot) = if simplified {
        (None, 3)
    } else {
        (c.opt_input(3), 4)
    };
    let sum = plus_optional(c, sum, bias_slot)?;
    let rank = c.ty(sum).rank();
    let (y, inv) = if simplified {
        let (normed, inv) = rms(c, sum, epsilon)?;
        (bin(c, BinaryKind::Mul, normed, gamma)?, inv)
    } else {
        let mut inputs = vec![sum, gamma];
        inputs.extend(beta);
        let y = c.add1(
            Op::LayerNorm(ops::layer_norm::LayerNorm {
                axis: rank.saturating_sub(1),
                epsilon: epsilon as f32,
            }),
            &inputs,
        )?;
        (y, sum)
    };
    Ok(vec![y, inv, inv, sum])
}

/// `MatMulNBits(A, B, scales, zero_points?, g_idx?, bias?)`: `A · Wᵀ` with `W` `[N, K]`
/// block-quantized to `bits` (4 or 8) bits. 4 bits with f32 scales and packed 4-bit (or no)
/// zero points become a `Q4Linear` (the weights stay 4-bit, dequantized in the kernel);
/// other forms are dequantized to f32 at build time.
fn matmul_nbits(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let a = c.input(0)?;
    let attr = |c: &NodeCtx<'_>, name: &str, default: i64| -> Result<usize, OpError> {
        usize::try_from(c.attr_int(name, default)?)
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| OpError::Invalid(format!("bad `{name}`")))
    };
    let (k, n, bits, block) = (
        attr(c, "K", 0)?,
        attr(c, "N", 0)?,
        attr(c, "bits", 4)?,
        attr(c, "block_size", 0)?,
    );
    if bits != 4 && bits != 8 {
        return unsupported!("MatMulNBits with {bits} bits (4 or 8)");
    }
    if c.opt_input(4).is_some() {
        return unsupported!("MatMulNBits with g_idx");
    }
    let blocks = k.div_ceil(block);
    if block < 2 || (block * bits) % 8 != 0 {
        return invalid!("block_size {block} does not pack whole bytes of {bits}-bit values");
    }
    let blob = block * bits / 8;
    let packed = c.const_tensor(1, "quantized weights")?;
    let scales = c.const_tensor(2, "scales")?.to_f64_vec();
    let Data::U8(q) = &packed.data else {
        return invalid!("B must be uint8, got {}", packed.ty);
    };
    if q.len() != n * blocks * blob || scales.len() != n * blocks {
        return invalid!(
            "B {} / scales do not fit N={n} K={k} block_size={block}",
            packed.ty
        );
    }
    let zero_points: Option<Tensor> = match c.opt_input(3) {
        Some(_) => Some(c.const_tensor(3, "zero points")?.as_ref().clone()),
        None => None,
    };
    let per_byte = 8 / bits;
    let zp_row = blocks.div_ceil(per_byte);
    let zero_point = |row: usize, b: usize| -> f64 {
        match &zero_points {
            None => (1 << (bits - 1)) as f64,
            Some(t) => match &t.data {
                Data::U8(z) => {
                    let byte = z.get(row * zp_row + b / per_byte).copied().unwrap_or(0);
                    let shift = (b % per_byte) * bits;
                    ((byte >> shift) & ((1u16 << bits) - 1) as u8) as f64
                }
                _ => t.to_f64_vec().get(row * blocks + b).copied().unwrap_or(0.0),
            },
        }
    };
    // Block `b` of row `row`: its (scale, zero point), and its `bits`-bit value `j`. The
    // lengths of `q` and `scales` were checked above, so these reads are in range.
    let zp_values: Vec<f64> = (0..n * blocks)
        .map(|i| zero_point(i / blocks, i % blocks))
        .collect();
    let param = |row: usize, b: usize| {
        let at = row * blocks + b;
        let scale = scales.get(at).copied().unwrap_or(0.0);
        (scale, zp_values.get(at).copied().unwrap_or(0.0))
    };
    let value = |row: usize, b: usize, j: usize| -> u8 {
        let byte = q.get((row * blocks + b) * blob + j / per_byte).copied();
        (byte.unwrap_or(0) >> ((j % per_byte) * bits)) & ((1u16 << bits) - 1) as u8
    };
    if bits == 4 && c.ty(a).dtype == DType::F32 && c.ty(a).shape.last() == Some(&k) {
        let zp_u8 = match &zero_points {
            None => Some(None),
            Some(t) => match &t.data {
                Data::U8(z) if z.len() == n * zp_row => Some(Some(())),
                _ => None,
            },
        };
        if let Some(zp) = zp_u8 {
            // q [K, N] in 0..=15, scales and zero points [blocks, N].
            let qk: Vec<u8> = (0..k)
                .flat_map(|col| (0..n).map(move |row| value(row, col / block, col % block)))
                .collect();
            let sk: Vec<f32> = (0..blocks)
                .flat_map(|b| (0..n).map(move |row| param(row, b).0 as f32))
                .collect();
            let zk: Vec<u8> = (0..blocks)
                .flat_map(|b| (0..n).map(move |row| param(row, b).1 as u8))
                .collect();
            let nr = c.quant.q4_nr;
            let zps = zp.map(|_| zk.as_slice());
            let mut packed =
                vec![0u8; qgemm::packed_q4_bytes(k, n, block, nr, false, zps.is_some())];
            qgemm::pack_q4(&qk, &sk, zps, k, n, block, nr, false, &mut packed);
            let w = super::quant::blob(c, packed)?;
            let mut inputs = vec![a, w];
            let bias = c.opt_input(5);
            let fused_bias = bias.filter(|&b| {
                c.constant(b).is_some() && c.ty(b).dtype == DType::F32 && c.ty(b).shape == [n]
            });
            inputs.extend(fused_bias);
            let op = Q4Linear {
                k,
                n,
                group: block,
                nr,
                f16_scales: false,
                zero_points: zps.is_some(),
                bias: fused_bias.is_some(),
                activation: Activation::None,
                tiles: c.quant.tiles,
                kernel: c.quant.kernel,
            };
            let y = c.add1(Op::Q4Linear(op), &inputs)?;
            return match (bias, fused_bias) {
                (Some(b), None) => Ok(vec![bin(c, BinaryKind::Add, y, b)?]),
                _ => Ok(vec![y]),
            };
        }
    }
    // Wᵀ, [K, N].
    let wt: Vec<f32> = (0..k)
        .flat_map(|col| {
            (0..n).map(move |row| {
                let (b, j) = (col / block, col % block);
                let (scale, zp) = param(row, b);
                ((value(row, b, j) as f64 - zp) * scale) as f32
            })
        })
        .collect();
    let w = c.constant_value(Tensor::from_f32s(vec![k, n], wt)?);
    let w = cast_v(c, w, c.ty(a).dtype)?;
    let y = c.add1(Op::MatMul(ops::matmul::MatMul {}), &[a, w])?;
    Ok(vec![plus_optional(c, y, 5)?])
}

/// `(A - a_zp)·(B - b_zp) · a_scale · b_scale (+ bias)` with the zero-point-shifted
/// product in i32; `b_scale` (and `b_zp`) may be per column.
pub(super) fn integer_product_to_float(
    c: &mut NodeCtx<'_>,
    [a, a_scale, a_zp]: [Option<ValueId>; 3],
    [b, b_scale, b_zp]: [Option<ValueId>; 3],
    bias: Option<ValueId>,
) -> Result<ValueId, OpError> {
    let (Some(a), Some(b), Some(a_scale), Some(b_scale)) = (a, b, a_scale, b_scale) else {
        return invalid!("missing required inputs");
    };
    let a = shifted(c, a, a_zp, -2)?;
    let b = shifted(c, b, b_zp, -1)?;
    let acc = c.add1(Op::MatMul(ops::matmul::MatMul {}), &[a, b])?;
    let acc = cast_v(c, acc, DType::F32)?;
    let scale = bin(c, BinaryKind::Mul, a_scale, b_scale)?;
    let y = bin(c, BinaryKind::Mul, acc, scale)?;
    match bias {
        Some(b) => bin(c, BinaryKind::Add, y, b),
        None => Ok(y),
    }
}

/// `DynamicQuantizeMatMul(A, B, b_scale, b_zero_point?, bias?)`: A quantized to uint8 at
/// run time, then an integer product scaled back to float (a `QLinear` when B is a constant
/// int8 with zero point 0).
fn dynamic_quantize_matmul(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    if let Some(y) = super::quant::dynamic_quantize_matmul_int8(c)? {
        return Ok(vec![y]);
    }
    let a = c.input(0)?;
    let [qa, a_scale, a_zp] = dynamic_quantize(c, a)?;
    let (b, b_scale, b_zp, bias) = (c.input(1)?, c.input(2)?, c.opt_input(3), c.opt_input(4));
    let y = integer_product_to_float(
        c,
        [Some(qa), Some(a_scale), Some(a_zp)],
        [Some(b), Some(b_scale), b_zp],
        bias,
    )?;
    Ok(vec![y])
}

/// `MatMulIntegerToFloat(A, B, a_scale, b_scale, a_zp?, b_zp?, bias?)`.
fn matmul_integer_to_float(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let y = integer_product_to_float(
        c,
        [c.opt_input(0), c.opt_input(2), c.opt_input(4)],
        [c.opt_input(1), c.opt_input(3), c.opt_input(5)],
        c.opt_input(6),
    )?;
    Ok(vec![y])
}

/// `com.microsoft.RotaryEmbedding(input, position_ids, cos_cache, sin_cache)`: position ids
/// `[batch, seq]`, or `[1]` holding the first position of every sequence.
fn rotary_embedding(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let (x, pos, cos, sin) = (c.input(0)?, c.input(1)?, c.input(2)?, c.input(3)?);
    if c.attr_int("is_packed_batching", 0)? != 0 {
        return unsupported!("packed batching");
    }
    if c.attr_float("scale", 1.0)? != 1.0 {
        return unsupported!("a rotary scale other than 1");
    }
    let shape = c.ty(x).shape.clone();
    let (batch, seq) = match *shape.as_slice() {
        [batch, seq, _] | [batch, _, seq, _] => (batch, seq),
        _ => return invalid!("input must be 3-D or 4-D, got {}", c.ty(x)),
    };
    let pos = cast_v(c, pos, DType::I64)?;
    let pos = if c.ty(pos).numel() == 1 && batch * seq != 1 {
        let start = reshape_v(c, pos, vec![1, 1])?;
        let steps = Tensor::new(
            TensorType::new(DType::I64, vec![1, seq]),
            Data::I64((0..seq as i64).collect()),
        )?;
        let steps = c.constant_value(steps);
        let p = bin(c, BinaryKind::Add, start, steps)?;
        c.add1(
            Op::Expand(ops::expand::Expand {
                shape: vec![batch, seq],
            }),
            &[p],
        )?
    } else {
        pos
    };
    let params = super::rotary::Params::from_node(c, "interleaved")?;
    Ok(vec![super::rotary::apply(
        c,
        x,
        cos,
        sin,
        Some(pos),
        &params,
    )?])
}

/// `GroupQueryAttention(query, key, value, past_key?, past_value?, seqlens_k,
/// total_sequence_length, cos_cache?, sin_cache?)`: causal attention of the new tokens
/// over the past (appended to, not shared) and themselves, with optional rotary embedding
/// of Q and K. Sequence lengths are build-time constants and equal across the batch.
fn group_query_attention(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    use super::attention::scaled_dot_product;
    let (q, k, v) = (c.input(0)?, c.input(1)?, c.input(2)?);
    let heads = c.attr_int("num_heads", 0)?;
    let kv_heads = c.attr_int("kv_num_heads", 0)?;
    if c.attr_int("local_window_size", -1)? != -1 {
        return unsupported!("a local attention window");
    }
    if (9..c.proto.input.len()).any(|i| c.opt_input(i).is_some()) {
        return unsupported!("position_ids / attention_bias / head_sink inputs");
    }
    let (&[batch, seq, _], 3) = (c.ty(q).shape.as_slice(), c.ty(k).rank()) else {
        return invalid!(
            "query and key must be [batch, seq, hidden] (packed QKV is not supported)"
        );
    };
    let seqlens = c.const_ints(5, "key sequence lengths")?;
    let total = c.const_ints(6, "total sequence length")?;
    let total = total.first().copied().unwrap_or(0);
    if seqlens.len() != batch || seqlens.iter().any(|&l| l + 1 != total) {
        return unsupported!("sequence lengths {seqlens:?} that differ from total {total} - 1");
    }
    let past_len = usize::try_from(total - seq as i64).map_err(|_| {
        OpError::Invalid(format!("total length {total} below the {seq} new tokens"))
    })?;
    let (mut q4, mut k4) = (q, k);
    if c.attr_int("do_rotary", 0)? != 0 {
        let (cos, sin) = (c.input(7)?, c.input(8)?);
        let positions: Vec<i64> = (0..batch)
            .flat_map(|_| (past_len..past_len + seq).map(|p| p as i64))
            .collect();
        let pos = c.constant_value(Tensor::from_i64s(vec![batch, seq], positions)?);
        let interleaved = c.attr_int("rotary_interleaved", 0)? != 0;
        for (x, h) in [(&mut q4, heads), (&mut k4, kv_heads)] {
            let params = super::rotary::Params {
                interleaved,
                num_heads: h,
                dim: 0,
            };
            *x = super::rotary::apply(c, *x, cos, sin, Some(pos), &params)?;
        }
    }
    let split = |c: &mut NodeCtx<'_>, x: ValueId, h: i64| -> Result<ValueId, OpError> {
        let &[b, s, hidden] = c.ty(x).shape.as_slice() else {
            return invalid!("query, key and value must be 3-D, got {}", c.ty(x));
        };
        let h = usize::try_from(h)
            .ok()
            .filter(|&h| h > 0 && hidden.is_multiple_of(h));
        let Some(h) = h else {
            return invalid!("head counts do not divide {}", c.ty(x));
        };
        let y = reshape_v(c, x, vec![b, s, h, hidden / h])?;
        super::ops::transpose_v(c, y, vec![0, 2, 1, 3])
    };
    let q4 = split(c, q4, heads)?;
    let mut k4 = split(c, k4, kv_heads)?;
    let mut v4 = split(c, v, kv_heads)?;
    if let (Some(pk), Some(pv)) = (c.opt_input(3), c.opt_input(4)) {
        if c.ty(pk).shape.get(2) != Some(&past_len) {
            return unsupported!(
                "a past buffer of {} for {past_len} past tokens (shared buffers)",
                c.ty(pk)
            );
        }
        k4 = c.add1(Op::Concat(ops::concat::Concat { axis: 2 }), &[pk, k4])?;
        v4 = c.add1(Op::Concat(ops::concat::Concat { axis: 2 }), &[pv, v4])?;
    }
    let head = c.dim(q4, 3)?;
    let dtype = c.ty(q4).dtype;
    let scale = match c.attr_float("scale", 0.0)? {
        s if s != 0.0 => s as f64,
        _ => 1.0 / (head as f64).sqrt(),
    };
    let sqrt_scale = scalar(c, dtype, scale.sqrt())?;
    let kv_len = past_len + seq;
    let mask: Vec<f32> = (0..seq)
        .flat_map(|i| {
            (0..kv_len).map(move |j| {
                if j <= i + past_len {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    let bias = c.constant_value(Tensor::from_f32s(vec![seq, kv_len], mask)?);
    let bias = cast_v(c, bias, dtype)?;
    let softcap = c.attr_float("softcap", 0.0)? as f64;
    let [y, ..] = scaled_dot_product(c, q4, k4, v4, bias, sqrt_scale, softcap)?;
    Ok(vec![super::attention::merge_heads(c, y)?, k4, v4])
}
