//! The `com.microsoft` QOperator ops `quantize_static` (QOperator format) emits around its
//! integer convolutions and matmuls: `QLinearAdd`, `QLinearMul`, `QLinearLeakyRelu`,
//! `QLinearSigmoid`, `QLinearGlobalAveragePool`, `QLinearAveragePool`, `QLinearConcat`,
//! `QLinearSoftmax`, `QLinearWhere` (each as
//! dequantize → the float op → quantize, ONNX `QuantizeLinear` rounding) and `QGemm` (a
//! constant int8 `B` with zero point 0 becomes a `QLinear` with the static activation
//! quantization of `A`, so it runs the integer kernel; other forms the exact i32 product).
//! ONNX Runtime computes the elementwise ones with fixed-point rescaling or 256-entry lookup
//! tables, so a value within float noise of a rounding tie can land one output step apart.
#![deny(clippy::indexing_slicing)]
use super::node::NodeCtx;
use super::ops::{bin, cast_v, reduce_to, reshape_v, scalar, transpose_v, un};
use super::quant::saturate;
use crate::error::OpError;
use crate::ir::{DType, Data, ValueId};
use crate::ops::binary::BinaryKind;
use crate::ops::qlinear::ActQuant;
use crate::ops::unary::UnaryKind;
use crate::ops::util::normalize_axis;
use crate::ops::{self, Op};
use crate::{invalid, unsupported};
use runtime_core::kernels::reduce::ReduceKind;

/// A scale or zero point as a rank-0 value when it has one element (ORT's are `[]` or
/// `[1]`); per-channel parameters are refused.
fn per_tensor(c: &mut NodeCtx<'_>, v: ValueId, what: &str) -> Result<ValueId, OpError> {
    match c.ty(v).numel() {
        1 => reshape_v(c, v, vec![]),
        n => unsupported!("{n} values of {what} (only per-tensor quantization)"),
    }
}

/// `(x - zero_point) · scale` in f32 of the quantized input at `slot` (scale `slot + 1`,
/// optional zero point `slot + 2`).
fn dequantize(c: &mut NodeCtx<'_>, slot: usize) -> Result<ValueId, OpError> {
    let x = c.input(slot)?;
    let scale = c.input(slot + 1)?;
    let scale = per_tensor(c, scale, "scale")?;
    let scale = cast_v(c, scale, DType::F32)?;
    let mut v = cast_v(c, x, DType::F32)?;
    if let Some(zp) = c.opt_input(slot + 2) {
        let zp = per_tensor(c, zp, "zero point")?;
        let zp = cast_v(c, zp, DType::F32)?;
        v = bin(c, BinaryKind::Sub, v, zp)?;
    }
    bin(c, BinaryKind::Mul, v, scale)
}

/// `saturate(round_half_even(y / scale) + zero_point)` to the output scale at `slot` and zero
/// point at `slot + 1` (its type; without one, the type of input 0).
fn quantize(c: &mut NodeCtx<'_>, y: ValueId, slot: usize) -> Result<ValueId, OpError> {
    let fallback = c.ty(c.input(0)?).dtype;
    quantize_or(c, y, slot, fallback)
}

/// [`quantize`] whose output type without a zero point is `fallback`.
fn quantize_or(
    c: &mut NodeCtx<'_>,
    y: ValueId,
    slot: usize,
    fallback: DType,
) -> Result<ValueId, OpError> {
    let scale = c.input(slot)?;
    let scale = per_tensor(c, scale, "output scale")?;
    let scale = cast_v(c, scale, DType::F32)?;
    let q = bin(c, BinaryKind::Div, y, scale)?;
    let mut q = un(c, UnaryKind::Round, q)?;
    let dtype = match c.opt_input(slot + 1) {
        Some(zp) => {
            let dtype = c.ty(zp).dtype;
            let zp = per_tensor(c, zp, "output zero point")?;
            let zp = cast_v(c, zp, DType::F32)?;
            q = bin(c, BinaryKind::Add, q, zp)?;
            dtype
        }
        None => fallback,
    };
    saturate(c, q, dtype)
}

/// `QLinearAdd` / `QLinearMul(A, A_scale, A_zp, B, B_scale, B_zp, C_scale, C_zp)`.
pub(super) fn binary(c: &mut NodeCtx<'_>, kind: BinaryKind) -> Result<Vec<ValueId>, OpError> {
    let a = dequantize(c, 0)?;
    let b = dequantize(c, 3)?;
    let y = bin(c, kind, a, b)?;
    Ok(vec![quantize(c, y, 6)?])
}

/// `QLinearLeakyRelu` / `QLinearSigmoid(X, X_scale, X_zp, Y_scale, Y_zp)`.
pub(super) fn activation(c: &mut NodeCtx<'_>, sigmoid: bool) -> Result<Vec<ValueId>, OpError> {
    let x = dequantize(c, 0)?;
    let y = if sigmoid {
        un(c, UnaryKind::Sigmoid, x)?
    } else {
        let zero = scalar(c, DType::F32, 0.0)?;
        let alpha = scalar(c, DType::F32, c.attr_float("alpha", 0.01)? as f64)?;
        let neg = bin(c, BinaryKind::Less, x, zero)?;
        let scaled = bin(c, BinaryKind::Mul, x, alpha)?;
        c.add1(Op::Where(ops::where_::Where {}), &[neg, scaled, x])?
    };
    Ok(vec![quantize(c, y, 3)?])
}

/// `QLinearGlobalAveragePool(X, x_scale, x_zp, y_scale, y_zp)`, channels first.
pub(super) fn global_average_pool(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    if c.attr_int("channels_last", 0)? != 0 {
        return unsupported!("attribute `channels_last`=1 (only NCHW)");
    }
    let x = dequantize(c, 0)?;
    let rank = c.ty(x).rank();
    if rank < 3 {
        return invalid!("input must be [N, C, spatial..], got {}", c.ty(x));
    }
    let axes: Vec<usize> = (2..rank).collect();
    let y = reduce_to(c, ReduceKind::Mean, x, &axes, true)?;
    Ok(vec![quantize(c, y, 3)?])
}

/// `QLinearAveragePool(X, x_scale, x_zp, y_scale, y_zp)`, channels first: ONNX
/// `AveragePool` (same window attributes) of the dequantized input, as ONNX Runtime computes
/// it in float before quantizing.
pub(super) fn average_pool(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    if c.attr_int("channels_last", 0)? != 0 {
        return unsupported!("attribute `channels_last`=1 (only NCHW)");
    }
    let x = dequantize(c, 0)?;
    let kernel = super::conv::kernel_shape(c)?;
    let geometry = super::conv::geometry(c, &super::conv::spatial(c, x)?, kernel)?;
    let include_pad = c.attr_int("count_include_pad", 0)? != 0;
    let kind = ops::pool::PoolKind::Avg { include_pad };
    let y = c.add1(Op::Pool(ops::pool::Pool { kind, geometry }), &[x])?;
    Ok(vec![quantize(c, y, 3)?])
}

/// `QLinearWhere(condition, X, x_scale, x_zp, Y, y_scale, y_zp, z_scale, z_zp)`: each
/// branch requantized to the output scale (ONNX Runtime's 256-entry tables hold exactly
/// `quantize(dequantize(v))`), chosen by `condition`.
pub(super) fn where_(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let cond = c.input(0)?;
    let x = dequantize(c, 1)?;
    let y = dequantize(c, 4)?;
    let z = c.add1(Op::Where(ops::where_::Where {}), &[cond, x, y])?;
    let fallback = c.ty(c.input(1)?).dtype;
    Ok(vec![quantize_or(c, z, 7, fallback)?])
}

/// `QLinearConcat(Y_scale, Y_zp, (X, X_scale, X_zp)...)`.
pub(super) fn concat(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let count = c.proto.input.len().saturating_sub(2);
    if count == 0 || !count.is_multiple_of(3) {
        return invalid!("{count} inputs after Y_scale, Y_zp (want triples X, scale, zero point)");
    }
    let mut parts = Vec::with_capacity(count / 3);
    for i in 0..count / 3 {
        parts.push(dequantize(c, 2 + 3 * i)?);
    }
    let rank = parts.first().map_or(0, |&p| c.ty(p).rank());
    let axis = normalize_axis(c.attr_int("axis", 0)?, rank)?;
    let y = c.add1(Op::Concat(ops::concat::Concat { axis }), &parts)?;
    let fallback = c.ty(c.input(2)?).dtype;
    Ok(vec![quantize_or(c, y, 0, fallback)?])
}

/// `QLinearSoftmax(X, X_scale, x_zp, y_scale, y_zp)`; the `opset` attribute says which
/// Softmax it stands for (before 13: the axes from `axis` on flattened, default axis 1).
pub(super) fn softmax(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let legacy = c.attr_int("opset", 13)? < 13;
    let x = dequantize(c, 0)?;
    let rank = c.ty(x).rank();
    let axis = normalize_axis(c.attr_int("axis", if legacy { 1 } else { -1 })?, rank)?;
    let y = c.add1(
        Op::Softmax(ops::softmax::Softmax {
            axis,
            log: false,
            coerce_2d: legacy && axis + 1 != rank,
        }),
        &[x],
    )?;
    Ok(vec![quantize(c, y, 3)?])
}

/// `QGemm(A, a_scale, a_zp, B, b_scale, b_zp, C?, y_scale?, y_zp?)`: `alpha · (A' · B' + C)`
/// of the zero-point-shifted integers times `a_scale · b_scale`, `C` an int32 bias in that
/// scale (ONNX Runtime folds `alpha` into the output multiplier, so it scales `C` too);
/// quantized to `y_scale`/`y_zp` when given, else f32. `A' = Aᵀ` with `transA` (a transpose
/// of a constant `A` folds at build time).
pub(super) fn qgemm(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let trans_a = c.attr_int("transA", 0)? != 0;
    let alpha = c.attr_float("alpha", 1.0)?;
    if !alpha.is_finite() {
        return invalid!("attribute `alpha`={alpha}");
    }
    let trans_b = c.attr_int("transB", 0)? != 0;
    let mut a = dequantize(c, 0)?;
    if c.ty(a).rank() != 2 {
        return invalid!("A must be 2-D, got {}", c.ty(a));
    }
    if trans_a {
        a = transpose_v(c, a, vec![1, 0])?;
    }
    let (sa, sb) = (c.input(1)?, c.input(4)?);
    let y = match integer_weight(c, trans_b)? {
        Some((q, scales, k, n)) => {
            let (scale, zero_point, u8) = static_act(c)?;
            let act = ActQuant::Static {
                scale,
                zero_point,
                u8,
            };
            let y = super::quant::qlinear(c, a, (&q, &scales, k, n), act, None)?;
            match c.opt_input(6) {
                Some(bias) => {
                    let bias = scaled_bias(c, bias, sa, sb)?;
                    bin(c, BinaryKind::Add, y, bias)?
                }
                None => y,
            }
        }
        None => {
            let b = c.input(3)?;
            let b = if trans_b {
                transpose_v(c, b, vec![1, 0])?
            } else {
                b
            };
            let mut qa = c.input(0)?;
            if trans_a {
                qa = transpose_v(c, qa, vec![1, 0])?;
            }
            let (za, zb) = (c.opt_input(2), c.opt_input(5));
            let sa1 = per_tensor(c, sa, "a_scale")?;
            let y = super::contrib::integer_product_to_float(
                c,
                [Some(qa), Some(sa1), za],
                [Some(b), Some(sb), zb],
                None,
            )?;
            match c.opt_input(6) {
                Some(bias) => {
                    let bias = scaled_bias(c, bias, sa, sb)?;
                    bin(c, BinaryKind::Add, y, bias)?
                }
                None => y,
            }
        }
    };
    let y = if alpha == 1.0 {
        y
    } else {
        let alpha = scalar(c, DType::F32, alpha as f64)?;
        bin(c, BinaryKind::Mul, y, alpha)?
    };
    match c.opt_input(7) {
        Some(_) => Ok(vec![quantize(c, y, 7)?]),
        None => Ok(vec![y]),
    }
}

/// `C · a_scale · b_scale` in f32 (`b_scale` per tensor or per column).
fn scaled_bias(
    c: &mut NodeCtx<'_>,
    bias: ValueId,
    sa: ValueId,
    sb: ValueId,
) -> Result<ValueId, OpError> {
    let bias = cast_v(c, bias, DType::F32)?;
    let sa = per_tensor(c, sa, "a_scale")?;
    let sa = cast_v(c, sa, DType::F32)?;
    let sb = cast_v(c, sb, DType::F32)?;
    let scale = bin(c, BinaryKind::Mul, sa, sb)?;
    bin(c, BinaryKind::Mul, bias, scale)
}

/// `A`'s constant scalar scale and zero point, as `QLinear` quantizes it back from f32.
fn static_act(c: &NodeCtx<'_>) -> Result<(f32, i32, bool), OpError> {
    let scale = c.const_tensor(1, "a_scale")?.to_f64_vec();
    let &[scale] = scale.as_slice() else {
        return unsupported!("a per-channel a_scale");
    };
    let (zero_point, u8) = match c.opt_input(2) {
        Some(_) => {
            let t = c.const_tensor(2, "a_zero_point")?;
            let z = t.to_f64_vec().first().copied().unwrap_or(0.0);
            (z as i32, t.ty.dtype == DType::U8)
        }
        None => (0, c.ty(c.input(0)?).dtype == DType::U8),
    };
    if !(scale.is_finite() && scale > 0.0) {
        return invalid!("a_scale {scale}");
    }
    Ok((scale as f32, zero_point, u8))
}

/// A constant int8 `B` with zero point 0 (absent or all zeros), constant scales and constant
/// `A` parameters, as `(q [k, n], per-column scales, k, n)`; `None` for other forms.
type IntWeight = (Vec<i8>, Vec<f32>, usize, usize);
fn integer_weight(c: &NodeCtx<'_>, trans_b: bool) -> Result<Option<IntWeight>, OpError> {
    let b = c.input(3)?;
    let consts = [1, 4]
        .iter()
        .all(|&i| c.opt_input(i).and_then(|v| c.constant(v)).is_some())
        && [2, 5]
            .iter()
            .all(|&i| c.opt_input(i).is_none_or(|v| c.constant(v).is_some()));
    let Some(t) = c.constant(b).filter(|_| consts) else {
        return Ok(None);
    };
    let (Data::I8(q), &[rows, cols]) = (&t.data, t.ty.shape.as_slice()) else {
        return Ok(None);
    };
    if let Some(z) = c.opt_input(5).and_then(|z| c.constant(z))
        && z.to_f64_vec().iter().any(|&v| v != 0.0)
    {
        return Ok(None);
    }
    let (k, n) = if trans_b { (cols, rows) } else { (rows, cols) };
    let q: Vec<i8> = if trans_b {
        (0..k)
            .flat_map(|p| (0..n).map(move |j| q.get(j * cols + p).copied().unwrap_or(0)))
            .collect()
    } else {
        q.clone()
    };
    let scales = super::quant_fuse::column_scales(&*c.const_tensor(4, "b_scale")?, n)
        .map_err(OpError::Invalid)?;
    Ok(Some((q, scales, k, n)))
}
