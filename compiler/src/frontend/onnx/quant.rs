//! ONNX quantization ops lowered to IR arithmetic: (de)quantization with per-tensor,
//! per-axis and blocked parameters, dynamic quantization, and the integer matmul and
//! convolution families (computed in i32, requantized through f32 as ONNX's reference does),
//! and the integer layers (`QLinear`) the matmul patterns `quant_fuse` recognises become.
#![deny(clippy::indexing_slicing)]
use super::conv::geometry;
use super::node::NodeCtx;
use super::ops::{bin, cast_v, reduce_to, reshape_v, scalar, un};
use super::quant_fuse::{Act, ConvAct, ConvBias, ConvFusion, Fused, Fusion};
use crate::error::OpError;
use crate::ir::{DType, Data, Tensor, TensorType, ValueId};
use crate::ops::binary::BinaryKind;
use crate::ops::conv::Conv;
use crate::ops::qconv::{self, QConv, QConvInput, QConvOutput};
use crate::ops::qlinear::{ActQuant, QLinear};
use crate::ops::unary::UnaryKind;
use crate::ops::util::normalize_axis;
use crate::ops::{self, Op};
use crate::{invalid, unsupported};
use runtime_core::kernels::gemm::Activation;
use runtime_core::kernels::qgemm;
use runtime_core::kernels::reduce::ReduceKind;

/// A scale or zero point broadcast against `x`: as is when it has one element, reshaped
/// onto `axis` when 1-D, expanded block-wise along `axis` when it has `x`'s rank.
fn broadcast_param(
    c: &mut NodeCtx<'_>,
    p: ValueId,
    x: ValueId,
    axis: usize,
    block_size: usize,
) -> Result<ValueId, OpError> {
    let (pt, xt) = (c.ty(p).clone(), c.ty(x).clone());
    if pt.numel() == 1 {
        return reshape_v(c, p, vec![]);
    }
    let along = xt.shape.get(axis).copied();
    if block_size == 0 {
        let Some(n) = along.filter(|&n| pt.shape == [n]) else {
            return invalid!("per-axis parameter {pt} does not fit axis {axis} of {xt}");
        };
        let shape = (0..xt.rank())
            .map(|d| if d == axis { n } else { 1 })
            .collect();
        return reshape_v(c, p, shape);
    }
    let fits =
        |n: &usize| pt.rank() == xt.rank() && pt.shape.get(axis) == Some(&n.div_ceil(block_size));
    let Some(n) = along.filter(fits) else {
        return invalid!("blocked parameter {pt} does not fit {xt} with block size {block_size}");
    };
    let index: Vec<i64> = (0..n).map(|i| (i / block_size) as i64).collect();
    let index = c.constant_value(Tensor::from_i64s(vec![n], index)?);
    c.add1(Op::Gather(ops::gather::Gather { axis }), &[p, index])
}

fn axis_and_block(c: &NodeCtx<'_>, x: ValueId) -> Result<(usize, usize), OpError> {
    let rank = c.ty(x).rank().max(1);
    let axis = normalize_axis(c.attr_int("axis", 1)?, rank).or_else(|_| normalize_axis(0, rank))?;
    let block = usize::try_from(c.attr_int("block_size", 0)?)
        .map_err(|_| OpError::Invalid("negative block_size".into()))?;
    Ok((axis, block))
}

/// The representable range of an integer quantized type.
fn int_range(dtype: DType) -> Result<(f64, f64), OpError> {
    Ok(match dtype {
        DType::U8 => (0.0, 255.0),
        DType::I8 => (-128.0, 127.0),
        DType::U16 => (0.0, 65535.0),
        DType::I16 => (-32768.0, 32767.0),
        DType::I32 => (i32::MIN as f64, i32::MAX as f64),
        other => return unsupported!("quantization to {other}"),
    })
}

/// `Cast(clip(v, range of dtype))` of an already rounded f32 value.
pub(super) fn saturate(c: &mut NodeCtx<'_>, v: ValueId, dtype: DType) -> Result<ValueId, OpError> {
    let (lo, hi) = int_range(dtype)?;
    let (lo, hi) = (scalar(c, DType::F32, lo)?, scalar(c, DType::F32, hi)?);
    let v = bin(c, BinaryKind::Max, v, lo)?;
    let v = bin(c, BinaryKind::Min, v, hi)?;
    cast_v(c, v, dtype)
}

pub fn dequantize_linear(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let (x, scale) = (c.input(0)?, c.input(1)?);
    let (axis, block) = axis_and_block(c, x)?;
    let scale_dtype = c.ty(scale).dtype;
    let scale = broadcast_param(c, scale, x, axis, block)?;
    let mut v = cast_v(c, x, DType::F32)?;
    if let Some(zp) = c.opt_input(2) {
        let zp = broadcast_param(c, zp, x, axis, block)?;
        let zp = cast_v(c, zp, DType::F32)?;
        v = bin(c, BinaryKind::Sub, v, zp)?;
    }
    let scale = cast_v(c, scale, DType::F32)?;
    let y = bin(c, BinaryKind::Mul, v, scale)?;
    Ok(vec![cast_v(c, y, scale_dtype)?])
}

pub fn quantize_linear(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let (x, scale) = (c.input(0)?, c.input(1)?);
    let (axis, block) = axis_and_block(c, x)?;
    let zp = c.opt_input(2);
    let dtype = match zp {
        Some(z) => c.ty(z).dtype,
        None => match c.attr_int("output_dtype", 0)? {
            0 => DType::U8,
            code => super::tensor::dtype_from_onnx(code as i32).map_err(OpError::Unsupported)?,
        },
    };
    int_range(dtype)?;
    let scale = broadcast_param(c, scale, x, axis, block)?;
    let scale = cast_v(c, scale, DType::F32)?;
    let xf = cast_v(c, x, DType::F32)?;
    let q = bin(c, BinaryKind::Div, xf, scale)?;
    let mut q = un(c, UnaryKind::Round, q)?;
    if let Some(zp) = zp {
        let zp = broadcast_param(c, zp, x, axis, block)?;
        let zp = cast_v(c, zp, DType::F32)?;
        q = bin(c, BinaryKind::Add, q, zp)?;
    }
    Ok(vec![saturate(c, q, dtype)?])
}

/// `DynamicQuantizeLinear`: uint8 with scale and zero point from the input's range
/// (widened to include 0).
pub fn dynamic_quantize_linear(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let x = c.input(0)?;
    Ok(dynamic_quantize(c, x)?.to_vec())
}

/// `x` quantized to uint8 over its whole range: `[y, y_scale, y_zero_point]`.
pub(super) fn dynamic_quantize(c: &mut NodeCtx<'_>, x: ValueId) -> Result<[ValueId; 3], OpError> {
    if c.ty(x).dtype != DType::F32 {
        return invalid!("DynamicQuantizeLinear needs f32, got {}", c.ty(x).dtype);
    }
    let axes: Vec<usize> = (0..c.ty(x).rank()).collect();
    let zero = scalar(c, DType::F32, 0.0)?;
    let hi = reduce_to(c, ReduceKind::Max, x, &axes, false)?;
    let hi = bin(c, BinaryKind::Max, hi, zero)?;
    let lo = reduce_to(c, ReduceKind::Min, x, &axes, false)?;
    let lo = bin(c, BinaryKind::Min, lo, zero)?;
    let range = bin(c, BinaryKind::Sub, hi, lo)?;
    // A zero range (all zeros) uses scale 1/255.
    let is_zero = bin(c, BinaryKind::Equal, range, zero)?;
    let one = scalar(c, DType::F32, 1.0)?;
    let range = c.add1(Op::Where(ops::where_::Where {}), &[is_zero, one, range])?;
    let q_span = scalar(c, DType::F32, 255.0)?;
    let y_scale = bin(c, BinaryKind::Div, range, q_span)?;
    let lo_scaled = bin(c, BinaryKind::Div, lo, y_scale)?;
    let zp = bin(c, BinaryKind::Sub, zero, lo_scaled)?;
    let zp = bin(c, BinaryKind::Max, zp, zero)?;
    let zp = bin(c, BinaryKind::Min, zp, q_span)?;
    let zp = un(c, UnaryKind::Round, zp)?;
    let q = bin(c, BinaryKind::Div, x, y_scale)?;
    let q = un(c, UnaryKind::Round, q)?;
    let q = bin(c, BinaryKind::Add, q, zp)?;
    let y = saturate(c, q, DType::U8)?;
    let zp = cast_v(c, zp, DType::U8)?;
    Ok([y, y_scale, zp])
}

/// `v - zero_point` in i32; a 1-D zero point lies on `axis` (counted from the end when
/// negative).
pub(super) fn shifted(
    c: &mut NodeCtx<'_>,
    v: ValueId,
    zero_point: Option<ValueId>,
    axis: isize,
) -> Result<ValueId, OpError> {
    let wide = cast_v(c, v, DType::I32)?;
    let Some(zp) = zero_point else {
        return Ok(wide);
    };
    let mut zp = cast_v(c, zp, DType::I32)?;
    let n = c.ty(zp).numel();
    let rank = c.ty(v).rank();
    if n == 1 {
        zp = reshape_v(c, zp, vec![])?;
    } else {
        let a = if axis < 0 { rank as isize + axis } else { axis };
        let a = usize::try_from(a).map_err(|_| OpError::Invalid("bad zero point axis".into()))?;
        if c.ty(v).shape.get(a) != Some(&n) {
            return invalid!("zero point {} does not fit {}", c.ty(zp), c.ty(v));
        }
        // `n` on axis `a`, broadcast over the axes after it.
        let shape = (a..rank).map(|d| if d == a { n } else { 1 }).collect();
        zp = reshape_v(c, zp, shape)?;
    }
    bin(c, BinaryKind::Sub, wide, zp)
}

pub fn matmul_integer(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let (a, b) = (c.input(0)?, c.input(1)?);
    let (az, bz) = (c.opt_input(2), c.opt_input(3));
    let a = shifted(c, a, az, -2)?;
    let b = shifted(c, b, bz, -1)?;
    Ok(vec![c.add1(Op::MatMul(ops::matmul::MatMul {}), &[a, b])?])
}

/// `saturate(round(acc · (sa·sb / sy)) + zy)` of an i32 accumulator.
fn requantize(
    c: &mut NodeCtx<'_>,
    acc: ValueId,
    scales: [ValueId; 3],
    y_zero_point: Option<ValueId>,
    dtype: DType,
) -> Result<ValueId, OpError> {
    let [sa, sb, sy] = scales;
    let sa = cast_v(c, sa, DType::F32)?;
    let sb = cast_v(c, sb, DType::F32)?;
    let sy = cast_v(c, sy, DType::F32)?;
    let m = bin(c, BinaryKind::Mul, sa, sb)?;
    let m = bin(c, BinaryKind::Div, m, sy)?;
    let accf = cast_v(c, acc, DType::F32)?;
    let mut d = bin(c, BinaryKind::Mul, accf, m)?;
    if let Some(zy) = y_zero_point {
        let zy = cast_v(c, zy, DType::F32)?;
        d = bin(c, BinaryKind::Add, d, zy)?;
    }
    let d = un(c, UnaryKind::Round, d)?;
    saturate(c, d, dtype)
}

pub fn qlinear_matmul(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let (a, sa, za) = (c.input(0)?, c.input(1)?, c.opt_input(2));
    let (b, sb, zb) = (c.input(3)?, c.input(4)?, c.opt_input(5));
    let (sy, zy) = (c.input(6)?, c.opt_input(7));
    let dtype = zy.map_or(c.ty(a).dtype, |z| c.ty(z).dtype);
    let a = shifted(c, a, za, -2)?;
    let b = shifted(c, b, zb, -1)?;
    let acc = c.add1(Op::MatMul(ops::matmul::MatMul {}), &[a, b])?;
    let sa = reshape_if_single(c, sa)?;
    let sb = reshape_if_single(c, sb)?;
    let sy = reshape_if_single(c, sy)?;
    Ok(vec![requantize(c, acc, [sa, sb, sy], zy, dtype)?])
}

fn reshape_if_single(c: &mut NodeCtx<'_>, v: ValueId) -> Result<ValueId, OpError> {
    if c.ty(v).numel() == 1 {
        reshape_v(c, v, vec![])
    } else {
        Ok(v)
    }
}

pub fn qlinear_conv(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let (x, sx, zx) = (c.input(0)?, c.input(1)?, c.opt_input(2));
    let (w, sw, zw) = (c.input(3)?, c.input(4)?, c.opt_input(5));
    let (sy, zy) = (c.input(6)?, c.opt_input(7));
    let dtype = zy.map_or(c.ty(x).dtype, |z| c.ty(z).dtype);
    let xs = c.ty(x).shape.clone();
    let Some(spatial) = xs.get(2..).filter(|s| !s.is_empty()) else {
        return invalid!("input must be [N, C, spatial..], got {}", c.ty(x));
    };
    let kernel = c.ty(w).shape.get(2..).unwrap_or(&[]).to_vec();
    let geometry = geometry(c, spatial, kernel)?;
    let group = usize::try_from(c.attr_int("group", 1)?)
        .map_err(|_| OpError::Invalid("bad group".into()))?;
    let rank = xs.len();
    let xi = shifted(c, x, zx, 1 - rank as isize)?;
    let wi = shifted(c, w, zw, -(rank as isize))?;
    let mut inputs = vec![xi, wi];
    if let Some(bias) = c.opt_input(8) {
        inputs.push(cast_v(c, bias, DType::I32)?);
    }
    let acc = c.add1(Op::Conv(Conv { geometry, group }), &inputs)?;
    let sx = reshape_if_single(c, sx)?;
    let sy = reshape_if_single(c, sy)?;
    let sw = if c.ty(sw).numel() > 1 {
        let n = c.ty(sw).numel();
        let shape = (0..rank).map(|d| if d == 1 { n } else { 1 }).collect();
        reshape_v(c, sw, shape)?
    } else {
        reshape_if_single(c, sw)?
    };
    Ok(vec![requantize(c, acc, [sx, sw, sy], zy, dtype)?])
}

/// A `u8` blob constant.
pub(super) fn blob(c: &mut NodeCtx<'_>, bytes: Vec<u8>) -> Result<ValueId, OpError> {
    let t = Tensor::new(
        TensorType::new(DType::U8, vec![bytes.len()]),
        Data::U8(bytes),
    )?;
    Ok(c.constant_value(t))
}

/// A recognised quantized pattern (see `quant_fuse`) as integer IR.
pub(super) fn fused<'a>(c: &mut NodeCtx<'a>, f: &'a Fused) -> Result<Vec<ValueId>, OpError> {
    match f {
        Fused::MatMul(f) => fused_matmul(c, f),
        Fused::QAttention(_) => super::contrib_attention::q_attention(c),
        Fused::Gather(f) => {
            let (table, ids) = (c.input(0)?, c.input(1)?);
            let rows = c.add1(Op::Gather(ops::gather::Gather { axis: 0 }), &[table, ids])?;
            Ok(vec![dequantize_rows(c, rows, f.scale, f.zero_point)?])
        }
        Fused::Conv(f) if f.conv.op_type == c.proto.op_type => fused_conv(c, f),
        // Anchored at the Mul/Add after a ConvInteger: name the convolution too.
        Fused::Conv(f) => {
            let conv = if f.conv.name.is_empty() {
                f.conv.op_type.clone()
            } else {
                format!("{} `{}`", f.conv.op_type, f.conv.name)
            };
            fused_conv(c, f).map_err(|e| match e {
                OpError::Invalid(r) => OpError::Invalid(format!("{conv}: {r}")),
                OpError::Unsupported(r) => OpError::Unsupported(format!("{conv}: {r}")),
            })
        }
    }
}

/// `(q - zero_point) · scale` in f32 of integer values (ONNX `DequantizeLinear` with a
/// per-tensor scale and zero point: the difference is exact, one rounding in the product).
pub(super) fn dequantize_rows(
    c: &mut NodeCtx<'_>,
    q: ValueId,
    scale: f32,
    zero_point: f32,
) -> Result<ValueId, OpError> {
    let mut v = cast_v(c, q, DType::F32)?;
    if zero_point != 0.0 {
        let z = scalar(c, DType::F32, zero_point as f64)?;
        v = bin(c, BinaryKind::Sub, v, z)?;
    }
    let s = super::ops::scalar(c, DType::F32, scale as f64)?;
    bin(c, BinaryKind::Mul, v, s)
}

/// A recognised quantized convolution as one `QConv`; the context's inputs are
/// [`Fused::reads`]: `x`, then a bias value. The geometry comes from the convolution node's
/// attributes.
fn fused_conv<'a>(c: &mut NodeCtx<'a>, f: &'a ConvFusion) -> Result<Vec<ValueId>, OpError> {
    let x = c.input(0)?;
    let xt = c.ty(x).clone();
    let anchor = c.proto;
    c.proto = &f.conv;
    let attrs = (|| {
        let kernel = f.w_shape.get(2..).unwrap_or(&[]).to_vec();
        let spatial = match xt.shape.get(2..) {
            Some(s) if !s.is_empty() && xt.rank() == f.w_shape.len() => s.to_vec(),
            _ => return invalid!("input {xt} does not fit the weight {:?}", f.w_shape),
        };
        let geometry = geometry(c, &spatial, kernel)?;
        let group = c.attr_int("group", 1)?;
        Ok((geometry, group))
    })();
    c.proto = anchor;
    let (geometry, group) = attrs?;
    let (m, cg) = match f.w_shape.as_slice() {
        [m, cg, ..] => (*m, *cg),
        _ => return invalid!("weight {:?} is not [M, C/group, kernel..]", f.w_shape),
    };
    let channels = xt.shape.get(1).copied().unwrap_or(0);
    let group = usize::try_from(group)
        .ok()
        .filter(|&g| g > 0 && m % g == 0 && cg * g == channels)
        .ok_or_else(|| {
            OpError::Invalid(format!(
                "group {group} does not fit input {xt} and weight {:?}",
                f.w_shape
            ))
        })?;
    let input = match f.act {
        ConvAct::DynamicU8 => QConvInput::Dynamic,
        ConvAct::Quantized {
            scale,
            zero_point,
            u8,
        } => {
            let want = if u8 { DType::U8 } else { DType::I8 };
            if xt.dtype != want {
                return invalid!("the quantized input is {xt}, its zero point says {want}");
            }
            QConvInput::Quantized {
                scale,
                zero_point,
                u8,
            }
        }
    };
    let kg = cg * f.w_shape.iter().skip(2).product::<usize>();
    let nr = c.quant.i8_nr;
    let packed = qconv::pack_weight(&f.w, &f.scales, m, group, kg, nr)?;
    let w = blob(c, packed)?;
    let mut inputs = vec![x, w];
    let mut bias_after = None;
    match &f.bias {
        ConvBias::None => {}
        ConvBias::Int(b) => {
            let b = b.iter().map(|&v| v as f32).collect();
            inputs.push(c.constant_value(Tensor::from_f32s(vec![m], b)?));
        }
        ConvBias::Input(_) | ConvBias::Add(_) => {
            let b = c.input(1)?;
            let bt = c.ty(b).clone();
            let per_channel = if matches!(f.bias, ConvBias::Input(_)) {
                if bt.shape != [m] {
                    return invalid!("bias {bt} is not [{m}]");
                }
                true
            } else {
                // [1, M, 1..] or [M, 1..] broadcasting against [N, M, spatial..].
                let ones = bt.shape.iter().rev().take_while(|&&d| d == 1).count();
                bt.numel() == m
                    && bt.rank() < xt.rank() + 1
                    && ones + 2 == xt.rank()
                    && bt.shape.iter().rev().nth(ones) == Some(&m)
            };
            match c.constant(b) {
                Some(t) if bt.dtype == DType::F32 && per_channel => {
                    let v: Vec<f32> = t.to_f64_vec().iter().map(|&v| v as f32).collect();
                    inputs.push(c.constant_value(Tensor::from_f32s(vec![m], v)?));
                }
                _ if matches!(f.bias, ConvBias::Input(_)) => {
                    let shape = std::iter::once(m)
                        .chain(std::iter::repeat_n(1, xt.rank() - 2))
                        .collect();
                    bias_after = Some(reshape_v(c, b, shape)?);
                }
                _ => bias_after = Some(b),
            }
        }
    }
    let has_bias = inputs.len() == 3;
    let output = match &f.requant {
        None => QConvOutput::F32,
        Some((multipliers, zero_point, u8)) => {
            inputs.push(c.constant_value(Tensor::from_f32s(vec![m], multipliers.clone())?));
            QConvOutput::Quantized {
                zero_point: *zero_point,
                u8: *u8,
            }
        }
    };
    let op = QConv {
        geometry,
        group,
        out_channels: m,
        nr,
        bias: has_bias,
        input,
        output,
        tiles: c.quant.tiles,
        kernel: c.quant.kernel,
    };
    let y = c.add1(Op::QConv(op), &inputs)?;
    match bias_after {
        Some(b) => Ok(vec![bin(c, BinaryKind::Add, y, b)?]),
        None => Ok(vec![y]),
    }
}

/// A recognised quantized matmul as one `QLinear`; the context's inputs are
/// [`Fusion::reads`]: `x`, then the bias, then (`QLinearMatMul`) the output scale and zero
/// point, which requantize the float result as the ONNX op does.
fn fused_matmul(c: &mut NodeCtx<'_>, f: &Fusion) -> Result<Vec<ValueId>, OpError> {
    let mut x = c.input(0)?;
    if let Act::Quantized {
        scale, zero_point, ..
    } = f.act
    {
        let xt = c.ty(x);
        if !matches!(xt.dtype, DType::U8 | DType::I8) {
            return invalid!("quantized activation of type {xt}");
        }
        x = dequantize_rows(c, x, scale, zero_point as f32)?;
    }
    let xt = c.ty(x).clone();
    if xt.dtype != DType::F32 || xt.shape.last() != Some(&f.k) || xt.rank() < 2 {
        return invalid!("quantized matmul of {xt} with a {}x{} weight", f.k, f.n);
    }
    let mut next = 1;
    let bias = match f.bias {
        Some(_) => {
            next += 1;
            Some(c.input(1)?)
        }
        None => None,
    };
    let act = match f.act {
        Act::DynamicU8 => ActQuant::DynamicTensorU8,
        Act::Static {
            scale,
            zero_point,
            u8,
        }
        | Act::Quantized {
            scale,
            zero_point,
            u8,
        } => ActQuant::Static {
            scale,
            zero_point,
            u8,
        },
    };
    let mut y = qlinear(c, x, (&f.q, &f.scales, f.k, f.n), act, bias)?;
    if f.requant.is_some() {
        let (sy, zy) = (c.input(next)?, c.input(next + 1)?);
        let dtype = c.ty(zy).dtype;
        let sy = reshape_if_single(c, sy)?;
        let sy = cast_v(c, sy, DType::F32)?;
        let q = bin(c, BinaryKind::Div, y, sy)?;
        let q = un(c, UnaryKind::Round, q)?;
        let zy = reshape_if_single(c, zy)?;
        let zy = cast_v(c, zy, DType::F32)?;
        let q = bin(c, BinaryKind::Add, q, zy)?;
        y = saturate(c, q, dtype)?;
    }
    Ok(vec![y])
}

/// `act(x) · W (+ bias)` as a `QLinear` over `(q [k, n] int8, scales [n], k, n)`, packed for
/// the context's kernels; a bias that is not a constant f32 `[n]` is added afterwards.
pub(super) fn qlinear(
    c: &mut NodeCtx<'_>,
    x: ValueId,
    (q, scales, k, n): (&[i8], &[f32], usize, usize),
    act_quant: ActQuant,
    bias: Option<ValueId>,
) -> Result<ValueId, OpError> {
    let nr = c.quant.i8_nr;
    let mut packed = vec![0u8; qgemm::packed_i8_bytes(k, n, nr)];
    qgemm::pack_i8(q, scales, k, n, nr, &mut packed);
    let w = blob(c, packed)?;
    let mut inputs = vec![x, w];
    let mut bias_after = None;
    if let Some(b) = bias {
        let bt = c.ty(b);
        if c.constant(b).is_some() && bt.dtype == DType::F32 && bt.shape == [n] {
            inputs.push(b);
        } else {
            bias_after = Some(b);
        }
    }
    let op = QLinear {
        k,
        n,
        nr,
        bias: inputs.len() == 3,
        activation: Activation::None,
        act_quant,
        tiles: c.quant.tiles,
        kernel: c.quant.kernel,
        fused: Default::default(),
    };
    let y = c.add1(Op::QLinear(op), &inputs)?;
    match bias_after {
        Some(b) => bin(c, BinaryKind::Add, y, b),
        None => Ok(y),
    }
}

/// `com.microsoft.DynamicQuantizeMatMul(A, B, b_scale, b_zp?, bias?)` with a constant int8
/// `B` (zero point 0) as one `QLinear` with ONNX's per-tensor uint8 dynamic activations;
/// `None` (and a report note) for other forms, which keep the float/i32 lowering.
pub(super) fn dynamic_quantize_matmul_int8(
    c: &mut NodeCtx<'_>,
) -> Result<Option<ValueId>, OpError> {
    let (a, b, bs) = (c.input(0)?, c.input(1)?, c.input(2)?);
    let why = (|| {
        let (bt, st) = (c.constant(b)?, c.constant(bs)?);
        let Data::I8(q) = &bt.data else { return None };
        let &[k, n] = bt.ty.shape.as_slice() else {
            return None;
        };
        let zero = match c.opt_input(3) {
            None => true,
            Some(z) => c.constant(z)?.to_f64_vec().iter().all(|&v| v == 0.0),
        };
        let s: Vec<f32> = st.to_f64_vec().iter().map(|&v| v as f32).collect();
        let scales = match *s.as_slice() {
            [one] => vec![one; n],
            _ if s.len() == n => s,
            _ => return None,
        };
        let at = c.ty(a);
        let fits = at.dtype == DType::F32 && at.rank() >= 2 && at.shape.last() == Some(&k);
        (zero && fits).then(|| (q.clone(), scales, k, n))
    })();
    let Some((q, scales, k, n)) = why else {
        let note = (
            c.node.name.clone(),
            "DynamicQuantizeMatMul not fused: needs a constant 2-D int8 B with zero point 0".into(),
        );
        c.graph.float_notes.push(note);
        return Ok(None);
    };
    let bias = c.opt_input(4);
    qlinear(c, a, (&q, &scales, k, n), ActQuant::DynamicTensorU8, bias).map(Some)
}
