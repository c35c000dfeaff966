//! ONNX convolution, pooling and batch-normalization constructors: window attributes
//! (`kernel_shape`, `strides`, `dilations`, `pads`, `auto_pad`, `ceil_mode`) resolved into
//! an explicit [`Geometry`].
#![deny(clippy::indexing_slicing)]
use super::node::NodeCtx;
use super::ops::{bin, cast_v, reduce_to, reshape_v, scalar, un};
use crate::error::OpError;
use crate::invalid;
use crate::ir::{DType, ValueId};
use crate::ops::Op;
use crate::ops::binary::BinaryKind;
use crate::ops::conv::{Conv, Geometry};
use crate::ops::pool::{Pool, PoolKind};
use crate::ops::unary::UnaryKind;
use runtime_core::kernels::reduce::ReduceKind;

fn sizes(c: &NodeCtx<'_>, name: &str, n: usize, default: usize) -> Result<Vec<usize>, OpError> {
    match c.attr_ints(name)? {
        None => Ok(vec![default; n]),
        Some(v) => v
            .iter()
            .map(|&x| {
                usize::try_from(x).map_err(|_| OpError::Invalid(format!("negative {name} {v:?}")))
            })
            .collect(),
    }
}

/// The geometry of a window op on an input with spatial sizes `input`.
pub fn geometry(c: &NodeCtx<'_>, input: &[usize], kernel: Vec<usize>) -> Result<Geometry, OpError> {
    let n = input.len();
    let strides = sizes(c, "strides", n, 1)?;
    let dilations = sizes(c, "dilations", n, 1)?;
    let ceil_mode = c.attr_int("ceil_mode", 0)? != 0;
    if strides.len() != n || dilations.len() != n || kernel.len() != n {
        return invalid!("kernel/strides/dilations do not have {n} spatial entries");
    }
    let (pads_begin, pads_end) = match c.attr_string("auto_pad", "NOTSET")?.as_str() {
        "NOTSET" => {
            let pads = sizes(c, "pads", 2 * n, 0)?;
            match pads.split_at_checked(n) {
                Some((begin, end)) if pads.len() == 2 * n => (begin.to_vec(), end.to_vec()),
                _ => return invalid!("pads {pads:?} need {} entries", 2 * n),
            }
        }
        "VALID" => (vec![0; n], vec![0; n]),
        mode @ ("SAME_UPPER" | "SAME_LOWER") => {
            let (mut begin, mut end) = (Vec::with_capacity(n), Vec::with_capacity(n));
            let axes = input.iter().zip(&strides).zip(&kernel).zip(&dilations);
            for (((&size, &stride), &k), &dilation) in axes {
                if stride == 0 || k == 0 {
                    return invalid!("zero stride or kernel size");
                }
                let out = size.div_ceil(stride);
                let extent = (k - 1) * dilation + 1;
                let total = ((out.max(1) - 1) * stride + extent).saturating_sub(size);
                let small = total / 2;
                let (b, e) = if mode == "SAME_UPPER" {
                    (small, total - small)
                } else {
                    (total - small, small)
                };
                begin.push(b);
                end.push(e);
            }
            (begin, end)
        }
        other => return invalid!("unknown auto_pad `{other}`"),
    };
    Ok(Geometry {
        kernel,
        strides,
        dilations,
        pads_begin,
        pads_end,
        ceil_mode,
    })
}

pub(super) fn spatial(c: &NodeCtx<'_>, x: ValueId) -> Result<Vec<usize>, OpError> {
    let shape = &c.ty(x).shape;
    match shape.as_slice() {
        [_, _, spatial @ ..] if !spatial.is_empty() => Ok(spatial.to_vec()),
        _ => invalid!("input must be [N, C, spatial..], got {}", c.ty(x)),
    }
}

fn group(c: &NodeCtx<'_>) -> Result<usize, OpError> {
    let g = c.attr_int("group", 1)?;
    usize::try_from(g)
        .ok()
        .filter(|&g| g > 0)
        .ok_or_else(|| OpError::Invalid(format!("bad group {g}")))
}

/// `Conv` with optional bias.
pub fn conv(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let (x, w) = (c.input(0)?, c.input(1)?);
    let kernel = c.ty(w).shape.get(2..).unwrap_or(&[]).to_vec();
    let geometry = geometry(c, &spatial(c, x)?, kernel)?;
    let group = group(c)?;
    let mut inputs = vec![x, w];
    inputs.extend(c.opt_input(2));
    Ok(vec![c.add1(Op::Conv(Conv { geometry, group }), &inputs)?])
}

/// `v - zero_point` in i32, the zero point (scalar or per channel on `axis`) reshaped to
/// broadcast against `v`.
fn minus_zero_point(
    c: &mut NodeCtx<'_>,
    v: ValueId,
    zero_point: Option<ValueId>,
    axis: usize,
) -> Result<ValueId, OpError> {
    let wide = cast_v(c, v, DType::I32)?;
    let Some(zp) = zero_point else {
        return Ok(wide);
    };
    let mut zp = cast_v(c, zp, DType::I32)?;
    let n = c.ty(zp).numel();
    if n > 1 {
        let rank = c.ty(v).rank();
        let mut shape = vec![1; rank];
        *shape
            .get_mut(axis)
            .ok_or_else(|| OpError::Invalid(format!("axis {axis} is outside rank {rank}")))? = n;
        zp = reshape_v(c, zp, shape)?;
    }
    bin(c, BinaryKind::Sub, wide, zp)
}

/// `ConvInteger`: `Conv` in i32 of the zero-point-shifted operands.
pub fn conv_integer(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let (x, w) = (c.input(0)?, c.input(1)?);
    let kernel = c.ty(w).shape.get(2..).unwrap_or(&[]).to_vec();
    let geometry = geometry(c, &spatial(c, x)?, kernel)?;
    let group = group(c)?;
    let (xz, wz) = (c.opt_input(2), c.opt_input(3));
    let x = minus_zero_point(c, x, xz, 1)?;
    let w = minus_zero_point(c, w, wz, 0)?;
    Ok(vec![c.add1(Op::Conv(Conv { geometry, group }), &[x, w])?])
}

pub(super) fn kernel_shape(c: &NodeCtx<'_>) -> Result<Vec<usize>, OpError> {
    let k = c
        .attr_ints("kernel_shape")?
        .ok_or_else(|| OpError::Invalid("missing `kernel_shape`".into()))?;
    k.iter()
        .map(|&v| {
            usize::try_from(v).map_err(|_| OpError::Invalid(format!("bad kernel_shape {k:?}")))
        })
        .collect()
}

fn pool(c: &mut NodeCtx<'_>, kind: PoolKind) -> Result<Vec<ValueId>, OpError> {
    let x = c.input(0)?;
    let geometry = geometry(c, &spatial(c, x)?, kernel_shape(c)?)?;
    c.add(Op::Pool(Pool { kind, geometry }), &[x])
}

pub fn max_pool(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let indices = c.proto.output.get(1).is_some_and(|o| !o.is_empty());
    let column_major = c.attr_int("storage_order", 0)? != 0;
    pool(
        c,
        PoolKind::Max {
            indices,
            column_major,
        },
    )
}

pub fn average_pool(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let include_pad = c.attr_int("count_include_pad", 0)? != 0;
    pool(c, PoolKind::Avg { include_pad })
}

pub fn lp_pool(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let p = c.attr_int("p", 2)? as f32;
    pool(c, PoolKind::Lp { p })
}

/// `GlobalAveragePool` / `GlobalMaxPool`: a reduction over every spatial axis.
pub fn global_pool(c: &mut NodeCtx<'_>, kind: ReduceKind) -> Result<Vec<ValueId>, OpError> {
    let x = c.input(0)?;
    let rank = c.ty(x).rank();
    if rank < 3 {
        return invalid!("input must be [N, C, spatial..], got {}", c.ty(x));
    }
    let axes: Vec<usize> = (2..rank).collect();
    Ok(vec![reduce_to(c, kind, x, &axes, true)?])
}

/// `BatchNormalization`: inference with the running statistics, or (training_mode=1)
/// with the batch's own, also returning the updated running statistics.
pub fn batch_norm(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let x = c.input(0)?;
    let (scale, bias, mean, var) = (c.input(1)?, c.input(2)?, c.input(3)?, c.input(4)?);
    let rank = c.ty(x).rank();
    if rank < 2 {
        return invalid!("input must be [N, C, ..], got {}", c.ty(x));
    }
    let channels = c.dim(x, 1)?;
    let dtype = c.ty(x).dtype;
    let epsilon = c.attr_float("epsilon", 1e-5)? as f64;
    let training = c.attr_int("training_mode", 0)? != 0;
    let mut per_channel = vec![1; rank - 1];
    if let Some(first) = per_channel.first_mut() {
        *first = channels;
    }
    let column = |c: &mut NodeCtx<'_>, v: ValueId| reshape_v(c, v, per_channel.clone());
    let (scale_c, bias_c) = (column(c, scale)?, column(c, bias)?);
    let (batch_mean, batch_var, extra) = if training {
        let axes: Vec<usize> = (0..rank).filter(|&a| a != 1).collect();
        let m = reduce_to(c, ReduceKind::Mean, x, &axes, true)?;
        let d = bin(c, BinaryKind::Sub, x, m)?;
        let d2 = bin(c, BinaryKind::Mul, d, d)?;
        let v = reduce_to(c, ReduceKind::Mean, d2, &axes, true)?;
        let momentum = c.attr_float("momentum", 0.9)? as f64;
        let (mom, rest) = (
            scalar(c, dtype, momentum)?,
            scalar(c, dtype, 1.0 - momentum)?,
        );
        let mut running = Vec::new();
        for (old, new) in [(mean, m), (var, v)] {
            let new = reshape_v(c, new, vec![channels])?;
            let a = bin(c, BinaryKind::Mul, old, mom)?;
            let b = bin(c, BinaryKind::Mul, new, rest)?;
            running.push(bin(c, BinaryKind::Add, a, b)?);
        }
        let m = reshape_v(c, m, per_channel.clone())?;
        let v = reshape_v(c, v, per_channel.clone())?;
        (m, v, running)
    } else {
        (column(c, mean)?, column(c, var)?, vec![])
    };
    let d = bin(c, BinaryKind::Sub, x, batch_mean)?;
    let eps = scalar(c, dtype, epsilon)?;
    let v = bin(c, BinaryKind::Add, batch_var, eps)?;
    let std = un(c, UnaryKind::Sqrt, v)?;
    let normed = bin(c, BinaryKind::Div, d, std)?;
    let y = bin(c, BinaryKind::Mul, normed, scale_c)?;
    let y = bin(c, BinaryKind::Add, y, bias_c)?;
    Ok(std::iter::once(y).chain(extra).collect())
}
