//! ONNX ops that are compositions of IR ops: parameterised activations, normalisations,
//! one-hot encodings, losses, window functions and depth/space rearrangements.
#![deny(clippy::indexing_slicing)]
use super::node::NodeCtx;
use super::ops::{bin, cast_v, reduce_to, reshape_v, scalar, transpose_v, un};
use crate::error::OpError;
use crate::invalid;
use crate::ir::{DType, Tensor, ValueId};
use crate::ops::binary::BinaryKind;
use crate::ops::unary::UnaryKind;
use crate::ops::util::normalize_axis;
use crate::ops::{self, Op};
use runtime_core::kernels::reduce::ReduceKind;

fn where_(c: &mut NodeCtx<'_>, cond: ValueId, a: ValueId, b: ValueId) -> Result<ValueId, OpError> {
    c.add1(Op::Where(ops::where_::Where {}), &[cond, a, b])
}

/// `alpha · (exp(x) - 1)`.
fn exp_minus_one(c: &mut NodeCtx<'_>, x: ValueId, alpha: f64) -> Result<ValueId, OpError> {
    let dtype = c.ty(x).dtype;
    let e = un(c, UnaryKind::Exp, x)?;
    let one = scalar(c, dtype, 1.0)?;
    let e = bin(c, BinaryKind::Sub, e, one)?;
    let a = scalar(c, dtype, alpha)?;
    bin(c, BinaryKind::Mul, e, a)
}

/// The parameterised activations, by ONNX op type.
pub fn activation(c: &mut NodeCtx<'_>, op: &str) -> Result<Vec<ValueId>, OpError> {
    let x = c.input(0)?;
    let dtype = c.ty(x).dtype;
    let zero = scalar(c, dtype, 0.0)?;
    let y = match op {
        "Elu" => {
            let alpha = c.attr_float("alpha", 1.0)? as f64;
            let neg = exp_minus_one(c, x, alpha)?;
            let pos = bin(c, BinaryKind::Greater, x, zero)?;
            where_(c, pos, x, neg)?
        }
        "Celu" => {
            let alpha = c.attr_float("alpha", 1.0)? as f64;
            let a = scalar(c, dtype, alpha)?;
            let scaled = bin(c, BinaryKind::Div, x, a)?;
            let neg = exp_minus_one(c, scaled, alpha)?;
            let neg = bin(c, BinaryKind::Min, neg, zero)?;
            let pos = bin(c, BinaryKind::Max, x, zero)?;
            bin(c, BinaryKind::Add, pos, neg)?
        }
        "Selu" => {
            let alpha = c.attr_float("alpha", 1.673_263_2)? as f64;
            let gamma = c.attr_float("gamma", 1.050_701)? as f64;
            let neg = exp_minus_one(c, x, alpha)?;
            let pos = bin(c, BinaryKind::Greater, x, zero)?;
            let y = where_(c, pos, x, neg)?;
            let g = scalar(c, dtype, gamma)?;
            bin(c, BinaryKind::Mul, y, g)?
        }
        "HardSigmoid" | "HardSwish" => {
            let (alpha, beta) = if op == "HardSwish" {
                (1.0 / 6.0, 0.5)
            } else {
                (
                    c.attr_float("alpha", 0.2)? as f64,
                    c.attr_float("beta", 0.5)? as f64,
                )
            };
            let (a, b, one) = (
                scalar(c, dtype, alpha)?,
                scalar(c, dtype, beta)?,
                scalar(c, dtype, 1.0)?,
            );
            let y = bin(c, BinaryKind::Mul, x, a)?;
            let y = bin(c, BinaryKind::Add, y, b)?;
            let y = bin(c, BinaryKind::Min, y, one)?;
            let y = bin(c, BinaryKind::Max, y, zero)?;
            if op == "HardSwish" {
                bin(c, BinaryKind::Mul, x, y)?
            } else {
                y
            }
        }
        "LeakyRelu" | "PRelu" => {
            let slope = if op == "PRelu" {
                c.input(1)?
            } else {
                scalar(c, dtype, c.attr_float("alpha", 0.01)? as f64)?
            };
            let neg = bin(c, BinaryKind::Less, x, zero)?;
            let scaled = bin(c, BinaryKind::Mul, x, slope)?;
            where_(c, neg, scaled, x)?
        }
        "ThresholdedRelu" => {
            let alpha = scalar(c, dtype, c.attr_float("alpha", 1.0)? as f64)?;
            let above = bin(c, BinaryKind::Greater, x, alpha)?;
            where_(c, above, x, zero)?
        }
        "Shrink" => {
            let bias = c.attr_float("bias", 0.0)? as f64;
            let lambd = c.attr_float("lambd", 0.5)? as f64;
            let (b, l, nl) = (
                scalar(c, dtype, bias)?,
                scalar(c, dtype, lambd)?,
                scalar(c, dtype, -lambd)?,
            );
            let below = bin(c, BinaryKind::Less, x, nl)?;
            let above = bin(c, BinaryKind::Greater, x, l)?;
            let plus = bin(c, BinaryKind::Add, x, b)?;
            let minus = bin(c, BinaryKind::Sub, x, b)?;
            let inner = where_(c, above, minus, zero)?;
            where_(c, below, plus, inner)?
        }
        "Mish" => {
            let sp = un(c, UnaryKind::Softplus, x)?;
            let t = un(c, UnaryKind::Tanh, sp)?;
            bin(c, BinaryKind::Mul, x, t)?
        }
        "Swish" => {
            let alpha = scalar(c, dtype, c.attr_float("alpha", 1.0)? as f64)?;
            let ax = bin(c, BinaryKind::Mul, x, alpha)?;
            let s = un(c, UnaryKind::Sigmoid, ax)?;
            bin(c, BinaryKind::Mul, x, s)?
        }
        other => return invalid!("no activation `{other}`"),
    };
    Ok(vec![y])
}

/// `LpNormalization`: `x / ‖x‖_p` along `axis` (0 where the norm is 0).
pub fn lp_normalization(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let x = c.input(0)?;
    let axis = normalize_axis(c.attr_int("axis", -1)?, c.ty(x).rank())?;
    let kind = match c.attr_int("p", 2)? {
        1 => ReduceKind::L1,
        2 => ReduceKind::L2,
        p => return invalid!("p must be 1 or 2, got {p}"),
    };
    let dtype = c.ty(x).dtype;
    let norm = reduce_to(c, kind, x, &[axis], true)?;
    let zero = scalar(c, dtype, 0.0)?;
    let is_zero = bin(c, BinaryKind::Equal, norm, zero)?;
    let y = bin(c, BinaryKind::Div, x, norm)?;
    Ok(vec![where_(c, is_zero, zero, y)?])
}

/// `[0, 1, .., n-1]` shaped to lie on `axis` of a rank-`rank` tensor.
fn iota(c: &mut NodeCtx<'_>, n: usize, axis: usize, rank: usize) -> Result<ValueId, OpError> {
    let mut shape = vec![1; rank];
    if let Some(d) = shape.get_mut(axis) {
        *d = n;
    }
    let t = Tensor::from_i64s(shape, (0..n as i64).collect())?;
    Ok(c.constant_value(t))
}

/// `Hardmax`: 1 at the first maximum along `axis`, 0 elsewhere.
pub fn hardmax(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let x = c.input(0)?;
    let rank = c.ty(x).rank();
    if c.opset < 13 {
        return crate::unsupported!("Hardmax before opset 13 (2-D coercion)");
    }
    let axis = normalize_axis(c.attr_int("axis", -1)?, rank)?;
    let n = c.dim(x, axis)?;
    let arg = c.add1(
        Op::ArgExtreme(ops::arg_extreme::ArgExtreme {
            axis,
            keepdims: true,
            select_last: false,
            max: true,
        }),
        &[x],
    )?;
    let idx = iota(c, n, axis, rank)?;
    let hit = bin(c, BinaryKind::Equal, arg, idx)?;
    Ok(vec![cast_v(c, hit, c.ty(x).dtype)?])
}

/// `OneHot`: `values[1]` where the position on `axis` equals the (wrapped) index, else
/// `values[0]`.
pub fn one_hot(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let (indices, values) = (c.input(0)?, c.input(2)?);
    let depth = c.const_tensor(1, "depth")?.scalar_f64()?;
    if depth.is_nan() || depth < 1.0 || depth > (1u64 << 32) as f64 {
        return invalid!("bad depth {depth}");
    }
    let depth = depth as usize;
    let rank = c.ty(indices).rank() + 1;
    let axis = normalize_axis(c.attr_int("axis", -1)?, rank)?;
    let idx = cast_v(c, indices, DType::I64)?;
    let zero = scalar(c, DType::I64, 0.0)?;
    let d = scalar(c, DType::I64, depth as f64)?;
    let negative = bin(c, BinaryKind::Less, idx, zero)?;
    let wrapped = bin(c, BinaryKind::Add, idx, d)?;
    let idx = where_(c, negative, wrapped, idx)?;
    let mut shape = c.ty(idx).shape.clone();
    shape.insert(axis, 1);
    let idx = reshape_v(c, idx, shape)?;
    let positions = iota(c, depth, axis, rank)?;
    let hit = bin(c, BinaryKind::Equal, idx, positions)?;
    if c.ty(values).numel() != 2 {
        return invalid!("values must hold [off, on], got {}", c.ty(values));
    }
    let values = reshape_v(c, values, vec![2])?;
    let slice = |c: &mut NodeCtx<'_>, k: i64| {
        c.add1(
            Op::Slice(ops::slice::Slice {
                starts: vec![k],
                ends: vec![k + 1],
                axes: vec![0],
                steps: vec![1],
            }),
            &[values],
        )
        .and_then(|v| reshape_v(c, v, vec![]))
    };
    let (off, on) = (slice(c, 0)?, slice(c, 1)?);
    Ok(vec![where_(c, hit, on, off)?])
}

/// `NegativeLogLikelihoodLoss` of log-probabilities `[N, C, d..]` and targets `[N, d..]`.
fn nll(
    c: &mut NodeCtx<'_>,
    input: ValueId,
    target: ValueId,
    weight: Option<ValueId>,
) -> Result<ValueId, OpError> {
    let dtype = c.ty(input).dtype;
    let shape = c.ty(input).shape.clone();
    if shape.len() < 2 {
        return invalid!("input must be [N, C, ..], got {}", c.ty(input));
    }
    let target = cast_v(c, target, DType::I64)?;
    let ignore = c
        .has_attr("ignore_index")
        .then(|| c.attr_int("ignore_index", 0))
        .transpose()?;
    let (safe, keep) = match ignore {
        Some(i) => {
            let iv = scalar(c, DType::I64, i as f64)?;
            let ignored = bin(c, BinaryKind::Equal, target, iv)?;
            let zero = scalar(c, DType::I64, 0.0)?;
            let safe = where_(c, ignored, zero, target)?;
            let (z, o) = (scalar(c, dtype, 0.0)?, scalar(c, dtype, 1.0)?);
            (safe, Some(where_(c, ignored, z, o)?))
        }
        None => (target, None),
    };
    let mut tshape = c.ty(safe).shape.clone();
    tshape.insert(1, 1);
    let t1 = reshape_v(c, safe, tshape)?;
    let picked = c.add1(
        Op::GatherElements(ops::gather_elements::GatherElements { axis: 1 }),
        &[input, t1],
    )?;
    let squeezed = c.ty(safe).shape.clone();
    let picked = reshape_v(c, picked, squeezed)?;
    let mut w = match weight {
        Some(w) => Some(c.add1(Op::Gather(ops::gather::Gather { axis: 0 }), &[w, safe])?),
        None => None,
    };
    if let Some(k) = keep {
        w = Some(match w {
            Some(w) => bin(c, BinaryKind::Mul, w, k)?,
            None => k,
        });
    }
    let mut loss = un(c, UnaryKind::Neg, picked)?;
    if let Some(w) = w {
        loss = bin(c, BinaryKind::Mul, loss, w)?;
    }
    let all: Vec<usize> = (0..c.ty(loss).rank()).collect();
    match c.attr_string("reduction", "mean")?.as_str() {
        "none" => Ok(loss),
        "sum" => reduce_to(c, ReduceKind::Sum, loss, &all, false),
        "mean" => {
            let total = reduce_to(c, ReduceKind::Sum, loss, &all, false)?;
            let count = match w {
                Some(w) => reduce_to(c, ReduceKind::Sum, w, &all, false)?,
                None => scalar(c, dtype, c.ty(loss).numel() as f64)?,
            };
            bin(c, BinaryKind::Div, total, count)
        }
        other => invalid!("unknown reduction `{other}`"),
    }
}

pub fn nll_loss(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let (input, target, weight) = (c.input(0)?, c.input(1)?, c.opt_input(2));
    Ok(vec![nll(c, input, target, weight)?])
}

/// `SoftmaxCrossEntropyLoss`: NLL of `LogSoftmax` over the class axis (also returned).
pub fn softmax_cross_entropy(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let (scores, labels, weight) = (c.input(0)?, c.input(1)?, c.opt_input(2));
    if c.ty(scores).rank() < 2 {
        return invalid!("scores must be [N, C, ..], got {}", c.ty(scores));
    }
    let log_prob = c.add1(
        Op::Softmax(ops::softmax::Softmax {
            axis: 1,
            log: true,
            coerce_2d: false,
        }),
        &[scores],
    )?;
    let loss = nll(c, log_prob, labels, weight)?;
    Ok(vec![loss, log_prob])
}

/// `HannWindow` / `HammingWindow` / `BlackmanWindow` of a build-time size.
pub fn window(c: &mut NodeCtx<'_>, op: &str) -> Result<Vec<ValueId>, OpError> {
    let size = c.const_tensor(0, "window size")?.scalar_f64()?;
    if !(0.0..=(1u64 << 24) as f64).contains(&size) {
        return invalid!("bad window size {size}");
    }
    let n = size as usize;
    let periodic = c.attr_int("periodic", 1)? != 0;
    let denominator = if periodic { n as f64 } else { n as f64 - 1.0 };
    let values: Vec<f64> = (0..n)
        .map(|k| {
            let t = 2.0 * std::f64::consts::PI * k as f64 / denominator;
            match op {
                "HannWindow" => 0.5 - 0.5 * t.cos(),
                "HammingWindow" => 25.0 / 46.0 - 21.0 / 46.0 * t.cos(),
                _ => 0.42 - 0.5 * t.cos() + 0.08 * (2.0 * t).cos(),
            }
        })
        .collect();
    let t = Tensor::new(
        crate::ir::TensorType::new(DType::F64, vec![n]),
        crate::ir::Data::F64(values),
    )?;
    let v = c.constant_value(t);
    let code = c.attr_int("output_datatype", 1)?;
    let dtype = super::tensor::dtype_from_onnx(code as i32).map_err(OpError::Unsupported)?;
    Ok(vec![cast_v(c, v, dtype)?])
}

/// `EyeLike`: ones on diagonal `k` of a 2-D shape, as a constant.
pub fn eye_like(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let x = c.input(0)?;
    let shape = c.ty(x).shape.clone();
    let &[rows, cols] = shape.as_slice() else {
        return invalid!("EyeLike needs a 2-D input, got {}", c.ty(x));
    };
    let k = c.attr_int("k", 0)?;
    let dtype = if c.has_attr("dtype") {
        super::tensor::dtype_from_onnx(c.attr_int("dtype", 1)? as i32)
            .map_err(OpError::Unsupported)?
    } else {
        c.ty(x).dtype
    };
    let values: Vec<f32> = (0..rows)
        .flat_map(|r| (0..cols).map(move |col| f32::from(col as i64 - r as i64 == k)))
        .collect();
    let t = c.constant_value(Tensor::from_f32s(shape, values)?);
    Ok(vec![cast_v(c, t, dtype)?])
}

/// `DepthToSpace` (DCR or CRD) and `SpaceToDepth` as reshape–transpose–reshape.
pub fn depth_space(c: &mut NodeCtx<'_>, to_space: bool) -> Result<Vec<ValueId>, OpError> {
    let x = c.input(0)?;
    let s = c.ty(x).shape.clone();
    let b = usize::try_from(c.attr_int("blocksize", 0)?)
        .ok()
        .filter(|&b| b > 0)
        .ok_or_else(|| OpError::Invalid("bad blocksize".into()))?;
    let &[n, ch, h, w] = s.as_slice() else {
        return invalid!("input must be 4-D, got {}", c.ty(x));
    };
    let y = if to_space {
        if !ch.is_multiple_of(b * b) {
            return invalid!("channels {ch} not divisible by blocksize² {}", b * b);
        }
        let crd = c.attr_string("mode", "DCR")? == "CRD";
        let (shape, perm) = if crd {
            (vec![n, ch / (b * b), b, b, h, w], vec![0, 1, 4, 2, 5, 3])
        } else {
            (vec![n, b, b, ch / (b * b), h, w], vec![0, 3, 4, 1, 5, 2])
        };
        let y = reshape_v(c, x, shape)?;
        let y = transpose_v(c, y, perm)?;
        reshape_v(c, y, vec![n, ch / (b * b), h * b, w * b])?
    } else {
        if !h.is_multiple_of(b) || !w.is_multiple_of(b) {
            return invalid!("spatial size {h}x{w} not divisible by blocksize {b}");
        }
        let crd = c.attr_string("mode", "DCR")? == "CRD";
        let perm = if crd {
            vec![0, 1, 3, 5, 2, 4]
        } else {
            vec![0, 3, 5, 1, 2, 4]
        };
        let y = reshape_v(c, x, vec![n, ch, h / b, b, w / b, b])?;
        let y = transpose_v(c, y, perm)?;
        reshape_v(c, y, vec![n, ch * b * b, h / b, w / b])?
    };
    Ok(vec![y])
}
