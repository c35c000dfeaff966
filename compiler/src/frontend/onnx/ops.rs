//! ONNX op constructors: one function per ONNX op type, turning a node (attributes, inputs,
//! opset) into IR ops. [`CONSTRUCTORS`] is the supported-op table.
#![deny(clippy::indexing_slicing)]
use super::node::NodeCtx;
use super::tensor::dtype_from_onnx;
use crate::error::OpError;
use crate::ir::{DType, Tensor, TensorType, ValueId};
use crate::ops::binary::{Binary, BinaryKind};
use crate::ops::bitwise::{Bitwise, BitwiseKind};
use crate::ops::cast::Cast;
use crate::ops::unary::{Unary, UnaryKind};
use crate::ops::util::{normalize_axis, product};
use crate::ops::{self, Op};
use crate::{invalid, unsupported};
use runtime_core::kernels::reduce::ReduceKind;

pub type Constructor = fn(&mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError>;

macro_rules! table {
    ($($name:literal => $ctor:expr),* $(,)?) => {
        /// Every supported ONNX op type (default domain) and its constructor.
        pub const CONSTRUCTORS: &[(&str, Constructor)] = &[$(($name, $ctor)),*];
    };
}

table! {
    "Add" => |c| binary(c, BinaryKind::Add),
    "Sub" => |c| binary(c, BinaryKind::Sub),
    "Mul" => |c| binary(c, BinaryKind::Mul),
    "Div" => |c| binary(c, BinaryKind::Div),
    "Pow" => pow,
    "Mod" => modulo,
    "Max" => |c| variadic(c, BinaryKind::Max),
    "Min" => |c| variadic(c, BinaryKind::Min),
    "Sum" => |c| variadic(c, BinaryKind::Add),
    "Mean" => mean,
    "Equal" => |c| binary(c, BinaryKind::Equal),
    "Less" => |c| binary(c, BinaryKind::Less),
    "LessOrEqual" => |c| binary(c, BinaryKind::LessOrEqual),
    "Greater" => |c| binary(c, BinaryKind::Greater),
    "GreaterOrEqual" => |c| binary(c, BinaryKind::GreaterOrEqual),
    "And" => |c| binary(c, BinaryKind::And),
    "Or" => |c| binary(c, BinaryKind::Or),
    "Xor" => |c| binary(c, BinaryKind::Xor),
    "Neg" => |c| unary(c, UnaryKind::Neg),
    "Abs" => |c| unary(c, UnaryKind::Abs),
    "Sign" => |c| unary(c, UnaryKind::Sign),
    "Sqrt" => |c| unary(c, UnaryKind::Sqrt),
    "Reciprocal" => |c| unary(c, UnaryKind::Reciprocal),
    "Exp" => |c| unary(c, UnaryKind::Exp),
    "Log" => |c| unary(c, UnaryKind::Log),
    "Erf" => |c| unary(c, UnaryKind::Erf),
    "Tanh" => |c| unary(c, UnaryKind::Tanh),
    "Sigmoid" => |c| unary(c, UnaryKind::Sigmoid),
    "Sin" => |c| unary(c, UnaryKind::Sin),
    "Cos" => |c| unary(c, UnaryKind::Cos),
    "Tan" => |c| unary(c, UnaryKind::Tan),
    "Asin" => |c| unary(c, UnaryKind::Asin),
    "Acos" => |c| unary(c, UnaryKind::Acos),
    "Atan" => |c| unary(c, UnaryKind::Atan),
    "Sinh" => |c| unary(c, UnaryKind::Sinh),
    "Cosh" => |c| unary(c, UnaryKind::Cosh),
    "Asinh" => |c| unary(c, UnaryKind::Asinh),
    "Acosh" => |c| unary(c, UnaryKind::Acosh),
    "Atanh" => |c| unary(c, UnaryKind::Atanh),
    "Floor" => |c| unary(c, UnaryKind::Floor),
    "Ceil" => |c| unary(c, UnaryKind::Ceil),
    "Round" => |c| unary(c, UnaryKind::Round),
    "Relu" => |c| unary(c, UnaryKind::Relu),
    "Softplus" => |c| unary(c, UnaryKind::Softplus),
    "Softsign" => |c| unary(c, UnaryKind::Softsign),
    "Not" => |c| unary(c, UnaryKind::Not),
    "IsNaN" => |c| unary(c, UnaryKind::IsNaN),
    "IsInf" => is_inf,
    "Gelu" => gelu,
    "Clip" => clip,
    "Where" => where_,
    "Cast" => cast,
    "CastLike" => cast_like,
    "MatMul" => matmul,
    "Gemm" => gemm,
    "Softmax" => |c| softmax(c, false),
    "LogSoftmax" => |c| softmax(c, true),
    "LayerNormalization" => layer_norm,
    "RMSNormalization" => rms_norm,
    // ONNX Runtime's exports put it in the default domain.
    "SimplifiedLayerNormalization" => super::contrib::simplified_layer_norm,
    "Attention" => super::attention::attention,
    "RotaryEmbedding" => super::rotary::rotary_embedding,
    "Einsum" => super::einsum::einsum,
    "Elu" => |c| super::extra::activation(c, "Elu"),
    "Celu" => |c| super::extra::activation(c, "Celu"),
    "Selu" => |c| super::extra::activation(c, "Selu"),
    "HardSigmoid" => |c| super::extra::activation(c, "HardSigmoid"),
    "HardSwish" => |c| super::extra::activation(c, "HardSwish"),
    "LeakyRelu" => |c| super::extra::activation(c, "LeakyRelu"),
    "PRelu" => |c| super::extra::activation(c, "PRelu"),
    "ThresholdedRelu" => |c| super::extra::activation(c, "ThresholdedRelu"),
    "Shrink" => |c| super::extra::activation(c, "Shrink"),
    "Mish" => |c| super::extra::activation(c, "Mish"),
    "Swish" => |c| super::extra::activation(c, "Swish"),
    "LpNormalization" => super::extra::lp_normalization,
    "Hardmax" => super::extra::hardmax,
    "OneHot" => super::extra::one_hot,
    "NegativeLogLikelihoodLoss" => super::extra::nll_loss,
    "SoftmaxCrossEntropyLoss" => super::extra::softmax_cross_entropy,
    "HannWindow" => |c| super::extra::window(c, "HannWindow"),
    "HammingWindow" => |c| super::extra::window(c, "HammingWindow"),
    "BlackmanWindow" => |c| super::extra::window(c, "BlackmanWindow"),
    "EyeLike" => super::extra::eye_like,
    "DepthToSpace" => |c| super::extra::depth_space(c, true),
    "SpaceToDepth" => |c| super::extra::depth_space(c, false),
    "ReduceMean" => |c| reduce(c, ReduceKind::Mean),
    "ReduceSum" => |c| reduce(c, ReduceKind::Sum),
    "ReduceMax" => |c| reduce(c, ReduceKind::Max),
    "ReduceMin" => |c| reduce(c, ReduceKind::Min),
    "ReduceProd" => |c| reduce(c, ReduceKind::Prod),
    "ReduceSumSquare" => |c| reduce(c, ReduceKind::SumSquare),
    "ReduceL1" => |c| reduce(c, ReduceKind::L1),
    "ReduceL2" => |c| reduce(c, ReduceKind::L2),
    "ReduceLogSum" => |c| reduce(c, ReduceKind::LogSum),
    "ReduceLogSumExp" => |c| reduce(c, ReduceKind::LogSumExp),
    "ArgMax" => |c| arg_extreme(c, true),
    "ArgMin" => |c| arg_extreme(c, false),
    "Gather" => gather,
    "GatherElements" => gather_elements,
    "GatherND" => gather_nd,
    "Reshape" => reshape,
    "Flatten" => flatten,
    "Squeeze" => squeeze,
    "Unsqueeze" => unsqueeze,
    "Identity" => identity,
    "Dropout" => dropout,
    "Transpose" => transpose,
    "Concat" => concat,
    "Split" => split,
    "Slice" => slice,
    "Expand" => expand,
    "Tile" => tile,
    "Pad" => pad,
    "BitwiseAnd" => |c| bitwise(c, BitwiseKind::And),
    "BitwiseOr" => |c| bitwise(c, BitwiseKind::Or),
    "BitwiseXor" => |c| bitwise(c, BitwiseKind::Xor),
    "BitwiseNot" => |c| bitwise(c, BitwiseKind::Not),
    "BitShift" => bit_shift,
    "ScatterND" => scatter_nd,
    "ScatterElements" => scatter_elements,
    "Scatter" => scatter_elements,
    "Conv" => super::conv::conv,
    "ConvInteger" => super::conv::conv_integer,
    "MaxPool" => super::conv::max_pool,
    "AveragePool" => super::conv::average_pool,
    "LpPool" => super::conv::lp_pool,
    "GlobalAveragePool" => |c| super::conv::global_pool(c, ReduceKind::Mean),
    "GlobalMaxPool" => |c| super::conv::global_pool(c, ReduceKind::Max),
    "BatchNormalization" => super::conv::batch_norm,
    "QuantizeLinear" => super::quant::quantize_linear,
    "DequantizeLinear" => super::quant::dequantize_linear,
    "DynamicQuantizeLinear" => super::quant::dynamic_quantize_linear,
    "MatMulInteger" => super::quant::matmul_integer,
    "QLinearMatMul" => super::quant::qlinear_matmul,
    "QLinearConv" => super::quant::qlinear_conv,
    "Shape" => shape,
    "Size" => size,
    "Constant" => constant,
    "ConstantOfShape" => constant_of_shape,
    "Range" => range,
    "Trilu" => trilu,
    "CumSum" => cumsum,
}

/// The constructor for an op type of a domain (the default one or `com.microsoft`), if
/// supported.
pub fn constructor(domain: &str, op_type: &str) -> Option<Constructor> {
    let table = match domain {
        "" | "ai.onnx" => CONSTRUCTORS,
        super::contrib::DOMAIN => super::contrib::CONSTRUCTORS,
        _ => return None,
    };
    table
        .iter()
        .find(|(name, _)| *name == op_type)
        .map(|(_, c)| *c)
}

/// Supported op types, sorted: the default domain's, then `com.microsoft.<op>`.
pub fn supported_ops() -> Vec<String> {
    let mut v: Vec<String> = CONSTRUCTORS.iter().map(|(n, _)| n.to_string()).collect();
    v.sort_unstable();
    let mut contrib: Vec<String> = super::contrib::CONSTRUCTORS
        .iter()
        .map(|(n, _)| format!("{}.{n}", super::contrib::DOMAIN))
        .collect();
    contrib.sort_unstable();
    v.extend(contrib);
    v
}

fn one(v: ValueId) -> Result<Vec<ValueId>, OpError> {
    Ok(vec![v])
}

fn rank_of(c: &NodeCtx<'_>, v: ValueId) -> usize {
    c.ty(v).rank()
}

fn binary(c: &mut NodeCtx<'_>, kind: BinaryKind) -> Result<Vec<ValueId>, OpError> {
    let (a, b) = (c.input(0)?, c.input(1)?);
    let v = c.add1(Op::Binary(Binary { kind }), &[a, b])?;
    one(v)
}

/// Convert `v` to `dtype` (folded when constant).
fn cast_to(c: &mut NodeCtx<'_>, v: ValueId, dtype: DType) -> Result<ValueId, OpError> {
    if c.ty(v).dtype == dtype {
        return Ok(v);
    }
    c.add1(Op::Cast(Cast { to: dtype }), &[v])
}

fn pow(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let (a, b) = (c.input(0)?, c.input(1)?);
    let dtype = c.ty(a).dtype;
    let b = cast_to(c, b, dtype)?;
    let v = c.add1(
        Op::Binary(Binary {
            kind: BinaryKind::Pow,
        }),
        &[a, b],
    )?;
    one(v)
}

fn modulo(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let fmod = c.attr_int("fmod", 0)? != 0;
    binary(
        c,
        if fmod {
            BinaryKind::FMod
        } else {
            BinaryKind::Mod
        },
    )
}

fn variadic(c: &mut NodeCtx<'_>, kind: BinaryKind) -> Result<Vec<ValueId>, OpError> {
    let inputs = c.all_inputs();
    let Some((&first, rest)) = inputs.split_first() else {
        return invalid!("needs at least one input");
    };
    let mut acc = first;
    for &next in rest {
        acc = c.add1(Op::Binary(Binary { kind }), &[acc, next])?;
    }
    if rest.is_empty() {
        acc = c.add1(
            Op::Reshape(ops::reshape::Reshape {
                shape: c.ty(first).shape.clone(),
            }),
            &[first],
        )?;
    }
    one(acc)
}

fn mean(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let n = c.all_inputs().len();
    let Some(&sum) = variadic(c, BinaryKind::Add)?.first() else {
        return invalid!("needs at least one input");
    };
    let dtype = c.ty(sum).dtype;
    let count = scalar_of(dtype, n as f64)?;
    let count = c.constant_value(count);
    one(c.add1(
        Op::Binary(Binary {
            kind: BinaryKind::Div,
        }),
        &[sum, count],
    )?)
}

/// A rank-0 tensor of `dtype` holding `value`.
fn scalar_of(dtype: DType, value: f64) -> Result<Tensor, OpError> {
    let t = Tensor::new(
        TensorType::new(DType::F64, vec![]),
        crate::ir::Data::F64(vec![value]),
    )?;
    let op = Cast { to: dtype };
    let ty = crate::ops::OpDef::infer(&op, &[&t.ty])?;
    let mut out = crate::ops::OpDef::eval(&op, &[&t], &ty)?;
    out.pop()
        .ok_or_else(|| OpError::Invalid("cast produced nothing".into()))
}

fn unary(c: &mut NodeCtx<'_>, kind: UnaryKind) -> Result<Vec<ValueId>, OpError> {
    let x = c.input(0)?;
    one(c.add1(Op::Unary(Unary { kind }), &[x])?)
}

fn is_inf(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    if c.attr_int("detect_negative", 1)? == 0 || c.attr_int("detect_positive", 1)? == 0 {
        return unsupported!("IsInf detecting only one sign");
    }
    unary(c, UnaryKind::IsInf)
}

fn gelu(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    match c.attr_string("approximate", "none")?.as_str() {
        "none" => unary(c, UnaryKind::Gelu),
        "tanh" => unary(c, UnaryKind::GeluTanh),
        other => invalid!("unknown approximate=`{other}`"),
    }
}

/// `Clip` lowers to `Min(Max(x, min), max)` (bounds as attributes before opset 11, as
/// optional inputs after).
fn clip(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let mut y = c.input(0)?;
    let dtype = c.ty(y).dtype;
    let (lo, hi) = if c.opset < 11 {
        let lo = c
            .has_attr("min")
            .then(|| c.attr_float("min", f32::MIN))
            .transpose()?;
        let hi = c
            .has_attr("max")
            .then(|| c.attr_float("max", f32::MAX))
            .transpose()?;
        let lo = lo
            .map(|v| scalar_of(dtype, v as f64).map(|t| c.constant_value(t)))
            .transpose()?;
        let hi = hi
            .map(|v| scalar_of(dtype, v as f64).map(|t| c.constant_value(t)))
            .transpose()?;
        (lo, hi)
    } else {
        (c.opt_input(1), c.opt_input(2))
    };
    if let Some(lo) = lo {
        y = c.add1(
            Op::Binary(Binary {
                kind: BinaryKind::Max,
            }),
            &[y, lo],
        )?;
    }
    if let Some(hi) = hi {
        y = c.add1(
            Op::Binary(Binary {
                kind: BinaryKind::Min,
            }),
            &[y, hi],
        )?;
    }
    if lo.is_none() && hi.is_none() {
        return identity(c);
    }
    one(y)
}

fn where_(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let (cond, x, y) = (c.input(0)?, c.input(1)?, c.input(2)?);
    one(c.add1(Op::Where(ops::where_::Where {}), &[cond, x, y])?)
}

/// `Cast`; conversions to or from half precision go through f32.
fn cast(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let to = c.attr_int("to", 0)?;
    let to = i32::try_from(to).map_err(|_| OpError::Invalid(format!("bad `to` {to}")))?;
    let dtype = dtype_from_onnx(to).map_err(OpError::Unsupported)?;
    let x = c.input(0)?;
    one(cast_through_f32(c, x, dtype)?)
}

fn cast_through_f32(c: &mut NodeCtx<'_>, x: ValueId, dtype: DType) -> Result<ValueId, OpError> {
    let from = c.ty(x).dtype;
    if (from.is_half() || dtype.is_half())
        && from != dtype
        && from != DType::F32
        && dtype != DType::F32
    {
        let wide = cast_to(c, x, DType::F32)?;
        return cast_to(c, wide, dtype);
    }
    c.add1(Op::Cast(Cast { to: dtype }), &[x])
}

fn cast_like(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let (x, like) = (c.input(0)?, c.input(1)?);
    let dtype = c.ty(like).dtype;
    one(cast_through_f32(c, x, dtype)?)
}

/// Ops whose kernels compute in f32 only: f64 operands are computed in f32 too (within
/// ONNX's tolerance), like half precision.
const F32_KERNELS: &[&str] = &[
    "Sqrt",
    "Reciprocal",
    "Exp",
    "Log",
    "Erf",
    "Tanh",
    "Sigmoid",
    "Sin",
    "Cos",
    "Tan",
    "Asin",
    "Acos",
    "Atan",
    "Sinh",
    "Cosh",
    "Asinh",
    "Acosh",
    "Atanh",
    "Floor",
    "Ceil",
    "Round",
    "Relu",
    "Softplus",
    "Softsign",
    "Gelu",
    "Softmax",
    "LogSoftmax",
    "LayerNormalization",
    "RMSNormalization",
    "IsNaN",
    "IsInf",
    "Elu",
    "Celu",
    "Selu",
    "HardSigmoid",
    "HardSwish",
    "Mish",
    "Swish",
    "SwiGLU",
    "ThresholdedRelu",
    "LeakyRelu",
    "Shrink",
    "SoftmaxCrossEntropyLoss",
    "Attention",
    "RotaryEmbedding",
    "LpPool",
    "AveragePool",
    "ReduceLogSumExp",
    "ReduceLogSum",
    "ReduceL2",
];

/// Run a constructor with half-precision (`F16`/`BF16`) inputs widened to f32 and f32
/// outputs narrowed back, so IR ops other than `Cast` never compute on half types.
pub fn construct(ctor: Constructor, c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    if matches!(c.node.op_type.as_str(), "Cast" | "CastLike") {
        return ctor(c);
    }
    let widen_f64 = F32_KERNELS.contains(&c.node.op_type.as_str());
    let mut half = None;
    for slot in 0..c.inputs.len() {
        if let Some(&Some(v)) = c.inputs.get(slot) {
            let dtype = c.ty(v).dtype;
            if dtype.is_half() || (widen_f64 && dtype == DType::F64) {
                half.get_or_insert(dtype);
                let wide = cast_to(c, v, DType::F32)?;
                if let Some(input) = c.inputs.get_mut(slot) {
                    *input = Some(wide);
                }
            }
        }
    }
    let outputs = ctor(c)?;
    let Some(half) = half else {
        return Ok(outputs);
    };
    outputs
        .into_iter()
        .map(|v| {
            if c.ty(v).dtype == DType::F32 {
                cast_to(c, v, half)
            } else {
                Ok(v)
            }
        })
        .collect()
}

fn matmul(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let (a, b) = (c.input(0)?, c.input(1)?);
    one(c.add1(Op::MatMul(ops::matmul::MatMul {}), &[a, b])?)
}

fn transpose_2d(c: &mut NodeCtx<'_>, v: ValueId) -> Result<ValueId, OpError> {
    c.add1(
        Op::Transpose(ops::transpose::Transpose { perm: vec![1, 0] }),
        &[v],
    )
}

/// `Gemm` lowers to `MatMul` (+ `Mul` by alpha, + `Add` of beta·C); transposes of constant
/// operands fold away at import.
fn gemm(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let (mut a, mut b) = (c.input(0)?, c.input(1)?);
    if rank_of(c, a) != 2 || rank_of(c, b) != 2 {
        return invalid!("A and B must be 2-D, got {} and {}", c.ty(a), c.ty(b));
    }
    if c.attr_int("transA", 0)? != 0 {
        a = transpose_2d(c, a)?;
    }
    if c.attr_int("transB", 0)? != 0 {
        b = transpose_2d(c, b)?;
    }
    let (alpha, beta) = (c.attr_float("alpha", 1.0)?, c.attr_float("beta", 1.0)?);
    let mut y = c.add1(Op::MatMul(ops::matmul::MatMul {}), &[a, b])?;
    let dtype = c.ty(y).dtype;
    if alpha != 1.0 {
        let s = c.constant_value(scalar_of(dtype, alpha as f64)?);
        y = c.add1(
            Op::Binary(Binary {
                kind: BinaryKind::Mul,
            }),
            &[y, s],
        )?;
    }
    if let Some(mut bias) = c.opt_input(2) {
        if beta != 1.0 {
            let s = c.constant_value(scalar_of(dtype, beta as f64)?);
            bias = c.add1(
                Op::Binary(Binary {
                    kind: BinaryKind::Mul,
                }),
                &[bias, s],
            )?;
        }
        y = c.add1(
            Op::Binary(Binary {
                kind: BinaryKind::Add,
            }),
            &[y, bias],
        )?;
    }
    one(y)
}

fn softmax(c: &mut NodeCtx<'_>, log: bool) -> Result<Vec<ValueId>, OpError> {
    let x = c.input(0)?;
    let legacy = c.opset < 13;
    let axis = c.attr_int("axis", if legacy { 1 } else { -1 })?;
    let axis = normalize_axis(axis, rank_of(c, x))?;
    one(c.add1(
        Op::Softmax(ops::softmax::Softmax {
            axis,
            log,
            coerce_2d: legacy,
        }),
        &[x],
    )?)
}

/// `LayerNormalization`: the fused IR op, or (when the optional Mean / InvStdDev outputs
/// are used) `Sub(x, ReduceMean)`, `Reciprocal(Sqrt(ReduceMean(d·d) + eps))`, scale, bias.
fn layer_norm(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let x = c.input(0)?;
    let axis = normalize_axis(c.attr_int("axis", -1)?, rank_of(c, x))?;
    let epsilon = c.attr_float("epsilon", 1e-5)?;
    if c.proto.output.iter().skip(1).any(|o| !o.is_empty()) {
        let dtype = c.ty(x).dtype;
        let axes: Vec<usize> = (axis..rank_of(c, x)).collect();
        let mean = reduce_to(c, ReduceKind::Mean, x, &axes, true)?;
        let d = bin(c, BinaryKind::Sub, x, mean)?;
        let d2 = bin(c, BinaryKind::Mul, d, d)?;
        let var = reduce_to(c, ReduceKind::Mean, d2, &axes, true)?;
        let eps = scalar(c, dtype, epsilon as f64)?;
        let var = bin(c, BinaryKind::Add, var, eps)?;
        let std = un(c, UnaryKind::Sqrt, var)?;
        let inv = un(c, UnaryKind::Reciprocal, std)?;
        let normed = bin(c, BinaryKind::Mul, d, inv)?;
        let scale = c.input(1)?;
        let mut y = bin(c, BinaryKind::Mul, normed, scale)?;
        if let Some(bias) = c.opt_input(2) {
            y = bin(c, BinaryKind::Add, y, bias)?;
        }
        return Ok(vec![y, mean, inv]);
    }
    let mut inputs = vec![x, c.input(1)?];
    if let Some(bias) = c.opt_input(2) {
        inputs.push(bias);
    }
    one(c.add1(
        Op::LayerNorm(ops::layer_norm::LayerNorm { axis, epsilon }),
        &inputs,
    )?)
}

/// `RMSNormalization`: `x · Reciprocal(Sqrt(ReduceMean(x·x over axis..) + eps)) · scale`.
fn rms_norm(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let (x, scale) = (c.input(0)?, c.input(1)?);
    let rank = rank_of(c, x);
    let axis = normalize_axis(c.attr_int("axis", -1)?, rank)?;
    let epsilon = c.attr_float("epsilon", 1e-5)?;
    let dtype = c.ty(x).dtype;
    let axes: Vec<usize> = (axis..rank).collect();
    let x2 = bin(c, BinaryKind::Mul, x, x)?;
    let ms = reduce_to(c, ReduceKind::Mean, x2, &axes, true)?;
    let eps = scalar(c, dtype, epsilon as f64)?;
    let ms = bin(c, BinaryKind::Add, ms, eps)?;
    let rms = un(c, UnaryKind::Sqrt, ms)?;
    let inv = un(c, UnaryKind::Reciprocal, rms)?;
    let normed = bin(c, BinaryKind::Mul, x, inv)?;
    one(bin(c, BinaryKind::Mul, normed, scale)?)
}

pub(super) fn bin(
    c: &mut NodeCtx<'_>,
    kind: BinaryKind,
    a: ValueId,
    b: ValueId,
) -> Result<ValueId, OpError> {
    c.add1(Op::Binary(Binary { kind }), &[a, b])
}

pub(super) fn un(c: &mut NodeCtx<'_>, kind: UnaryKind, x: ValueId) -> Result<ValueId, OpError> {
    c.add1(Op::Unary(Unary { kind }), &[x])
}

/// A rank-0 constant of `dtype`.
pub(super) fn scalar(c: &mut NodeCtx<'_>, dtype: DType, value: f64) -> Result<ValueId, OpError> {
    let t = scalar_of(dtype, value)?;
    Ok(c.constant_value(t))
}

pub(super) fn reduce_to(
    c: &mut NodeCtx<'_>,
    kind: ReduceKind,
    x: ValueId,
    axes: &[usize],
    keepdims: bool,
) -> Result<ValueId, OpError> {
    c.add1(
        Op::Reduce(ops::reduce::Reduce {
            kind,
            axes: axes.to_vec(),
            keepdims,
        }),
        &[x],
    )
}

pub(super) fn reshape_v(
    c: &mut NodeCtx<'_>,
    x: ValueId,
    shape: Vec<usize>,
) -> Result<ValueId, OpError> {
    c.add1(Op::Reshape(ops::reshape::Reshape { shape }), &[x])
}

pub(super) fn transpose_v(
    c: &mut NodeCtx<'_>,
    x: ValueId,
    perm: Vec<usize>,
) -> Result<ValueId, OpError> {
    c.add1(Op::Transpose(ops::transpose::Transpose { perm }), &[x])
}

pub(super) fn cast_v(c: &mut NodeCtx<'_>, x: ValueId, dtype: DType) -> Result<ValueId, OpError> {
    cast_to(c, x, dtype)
}

/// Normalise, sort and dedupe axes against a rank.
fn axes_list(axes: &[i64], rank: usize) -> Result<Vec<usize>, OpError> {
    let mut out: Vec<usize> = axes
        .iter()
        .map(|&a| normalize_axis(a, rank))
        .collect::<Result<_, _>>()?;
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn reduce(c: &mut NodeCtx<'_>, kind: ReduceKind) -> Result<Vec<ValueId>, OpError> {
    let x = c.input(0)?;
    let rank = rank_of(c, x);
    let keepdims = c.attr_int("keepdims", 1)? != 0;
    // Axes moved from attribute to input: ReduceSum at opset 13, the others at 18.
    let axes_as_input = if kind == ReduceKind::Sum {
        c.opset >= 13
    } else {
        c.opset >= 18
    };
    let axes = if axes_as_input {
        c.opt_const_ints(1, "reduction axes")?
    } else {
        c.attr_ints("axes")?
    };
    let noop_with_empty = c.attr_int("noop_with_empty_axes", 0)? != 0;
    let axes = match axes {
        Some(a) if !a.is_empty() => axes_list(&a, rank)?,
        _ if noop_with_empty => vec![],
        _ => (0..rank).collect(),
    };
    if c.ty(x).dtype == DType::Bool && matches!(kind, ReduceKind::Max | ReduceKind::Min) {
        let bytes = cast_to(c, x, DType::U8)?;
        let r = reduce_to(c, kind, bytes, &axes, keepdims)?;
        return one(cast_to(c, r, DType::Bool)?);
    }
    one(reduce_to(c, kind, x, &axes, keepdims)?)
}

fn arg_extreme(c: &mut NodeCtx<'_>, max: bool) -> Result<Vec<ValueId>, OpError> {
    let x = c.input(0)?;
    let axis = normalize_axis(c.attr_int("axis", 0)?, rank_of(c, x))?;
    let keepdims = c.attr_int("keepdims", 1)? != 0;
    let select_last = c.attr_int("select_last_index", 0)? != 0;
    one(c.add1(
        Op::ArgExtreme(ops::arg_extreme::ArgExtreme {
            axis,
            keepdims,
            select_last,
            max,
        }),
        &[x],
    )?)
}

fn gather(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let (data, idx) = (c.input(0)?, c.input(1)?);
    let axis = normalize_axis(c.attr_int("axis", 0)?, rank_of(c, data))?;
    one(c.add1(Op::Gather(ops::gather::Gather { axis }), &[data, idx])?)
}

fn gather_elements(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let (data, idx) = (c.input(0)?, c.input(1)?);
    let axis = normalize_axis(c.attr_int("axis", 0)?, rank_of(c, data))?;
    one(c.add1(
        Op::GatherElements(ops::gather_elements::GatherElements { axis }),
        &[data, idx],
    )?)
}

fn gather_nd(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let (data, idx) = (c.input(0)?, c.input(1)?);
    let batch_dims = usize::try_from(c.attr_int("batch_dims", 0)?)
        .map_err(|_| OpError::Invalid("negative batch_dims".into()))?;
    one(c.add1(
        Op::GatherNd(ops::gather_nd::GatherNd { batch_dims }),
        &[data, idx],
    )?)
}

fn reshape_to(c: &mut NodeCtx<'_>, x: ValueId, shape: Vec<usize>) -> Result<Vec<ValueId>, OpError> {
    one(c.add1(Op::Reshape(ops::reshape::Reshape { shape }), &[x])?)
}

fn reshape(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let x = c.input(0)?;
    let spec = if c.opset < 5 {
        c.attr_ints("shape")?
            .ok_or_else(|| OpError::Invalid("missing `shape` attribute".into()))?
    } else {
        c.const_ints(1, "target shape")?
    };
    let allow_zero = c.attr_int("allowzero", 0)? != 0;
    let input_shape = c.ty(x).shape.clone();
    let mut shape = Vec::with_capacity(spec.len());
    let mut infer_at = None;
    for (i, &d) in spec.iter().enumerate() {
        match d {
            -1 if infer_at.is_none() => {
                infer_at = Some(i);
                shape.push(1);
            }
            -1 => return invalid!("target shape {spec:?} has more than one -1"),
            0 if !allow_zero => match input_shape.get(i) {
                Some(&v) => shape.push(v),
                None => {
                    return invalid!(
                        "target shape {spec:?} copies axis {i}, which the input {input_shape:?} lacks"
                    );
                }
            },
            d if d >= 0 => shape.push(d as usize),
            d => return invalid!("target shape {spec:?} has negative size {d}"),
        }
    }
    if let Some(i) = infer_at {
        let known = product(&shape);
        let total = product(&input_shape);
        if known == 0 || !total.is_multiple_of(known) {
            return invalid!("cannot infer -1 in {spec:?} for input shape {input_shape:?}");
        }
        if let Some(d) = shape.get_mut(i) {
            *d = total / known;
        }
    }
    reshape_to(c, x, shape)
}

fn flatten(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let x = c.input(0)?;
    let shape = c.ty(x).shape.clone();
    let axis = c.attr_int("axis", 1)?;
    let r = shape.len() as i64;
    let axis = if axis < 0 { axis + r } else { axis };
    let Some((head, tail)) = usize::try_from(axis)
        .ok()
        .and_then(|a| shape.split_at_checked(a))
    else {
        return invalid!("axis {axis} out of range for rank {r}");
    };
    reshape_to(c, x, vec![product(head), product(tail)])
}

fn squeeze(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let x = c.input(0)?;
    let shape = c.ty(x).shape.clone();
    let axes = if c.opset >= 13 {
        c.opt_const_ints(1, "axes")?
    } else {
        c.attr_ints("axes")?
    };
    let new_shape: Vec<usize> = match axes {
        Some(axes) => {
            let axes = axes_list(&axes, shape.len())?;
            for &a in &axes {
                match shape.get(a) {
                    Some(1) => {}
                    Some(d) => return invalid!("cannot squeeze axis {a} of size {d}"),
                    None => return invalid!("cannot squeeze axis {a} of {shape:?}"),
                }
            }
            shape
                .iter()
                .enumerate()
                .filter(|(i, _)| !axes.contains(i))
                .map(|(_, &d)| d)
                .collect()
        }
        None => shape.iter().copied().filter(|&d| d != 1).collect(),
    };
    reshape_to(c, x, new_shape)
}

fn unsqueeze(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let x = c.input(0)?;
    let shape = c.ty(x).shape.clone();
    let axes = if c.opset >= 13 {
        c.const_ints(1, "axes")?
    } else {
        c.attr_ints("axes")?
            .ok_or_else(|| OpError::Invalid("missing `axes`".into()))?
    };
    let out_rank = shape.len() + axes.len();
    let axes = axes_list(&axes, out_rank)?;
    if axes.len() != out_rank - shape.len() {
        return invalid!("repeated axes in {axes:?}");
    }
    let mut dims = shape.into_iter();
    let new_shape: Vec<usize> = (0..out_rank)
        .map(|i| {
            if axes.contains(&i) {
                1
            } else {
                dims.next().unwrap_or(1)
            }
        })
        .collect();
    reshape_to(c, x, new_shape)
}

fn identity(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    one(c.input(0)?)
}

/// Inference-mode `Dropout`: the input, and an all-true mask when asked for.
fn dropout(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    if let Some(mode) = c.opt_const_ints(2, "training mode")?
        && mode.iter().any(|&m| m != 0)
    {
        return unsupported!("Dropout in training mode");
    }
    if c.opset < 7 && c.attr_int("is_test", 0)? == 0 {
        return unsupported!("Dropout in training mode (is_test=0)");
    }
    let x = c.input(0)?;
    if c.proto.output.get(1).is_some_and(|o| !o.is_empty()) {
        let shape = c.ty(x).shape.clone();
        let mask = c.add1(
            Op::Fill(ops::fill::Fill {
                dtype: DType::Bool,
                value: 1.0,
                shape,
            }),
            &[],
        )?;
        return Ok(vec![x, mask]);
    }
    one(x)
}

fn transpose(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let x = c.input(0)?;
    let rank = rank_of(c, x);
    let perm = match c.attr_ints("perm")? {
        Some(p) => p
            .iter()
            .map(|&a| usize::try_from(a).map_err(|_| OpError::Invalid(format!("bad perm {p:?}"))))
            .collect::<Result<Vec<_>, _>>()?,
        None => (0..rank).rev().collect(),
    };
    one(c.add1(Op::Transpose(ops::transpose::Transpose { perm }), &[x])?)
}

fn concat(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let inputs = c.all_inputs();
    let Some(&first) = inputs.first() else {
        return invalid!("needs at least one input");
    };
    let axis = normalize_axis(c.attr_int("axis", 0)?, rank_of(c, first))?;
    one(c.add1(Op::Concat(ops::concat::Concat { axis }), &inputs)?)
}

fn split(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let x = c.input(0)?;
    let shape = c.ty(x).shape.clone();
    let axis = normalize_axis(c.attr_int("axis", 0)?, shape.len())?;
    let dim = c.dim(x, axis)?;
    let explicit = if c.opset >= 13 {
        c.opt_const_ints(1, "split sizes")?
    } else {
        c.attr_ints("split")?
    };
    let sizes: Vec<usize> = match explicit {
        Some(s) => s
            .iter()
            .map(|&v| {
                usize::try_from(v)
                    .map_err(|_| OpError::Invalid(format!("negative split size in {s:?}")))
            })
            .collect::<Result<_, _>>()?,
        None => {
            let n = if c.has_attr("num_outputs") {
                c.attr_int("num_outputs", 1)?
            } else {
                c.proto.output.len() as i64
            };
            let n = usize::try_from(n)
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| OpError::Invalid(format!("bad output count {n}")))?;
            let chunk = dim.div_ceil(n);
            (0..n)
                .map(|i| chunk.min(dim.saturating_sub(i * chunk)))
                .collect()
        }
    };
    c.add(Op::Split(ops::split::Split { axis, sizes }), &[x])
}

fn slice(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let x = c.input(0)?;
    let rank = rank_of(c, x);
    let (starts, ends, axes, steps) = if c.opset < 10 {
        let starts = c
            .attr_ints("starts")?
            .ok_or_else(|| OpError::Invalid("missing `starts`".into()))?;
        let ends = c
            .attr_ints("ends")?
            .ok_or_else(|| OpError::Invalid("missing `ends`".into()))?;
        (starts, ends, c.attr_ints("axes")?, None)
    } else {
        (
            c.const_ints(1, "starts")?,
            c.const_ints(2, "ends")?,
            c.opt_const_ints(3, "axes")?,
            c.opt_const_ints(4, "steps")?,
        )
    };
    let axes: Vec<i64> = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return invalid!("starts, ends, axes and steps have different lengths");
    }
    if steps.contains(&0) {
        return invalid!("a step of 0");
    }
    let axes: Vec<usize> = axes
        .iter()
        .map(|&a| normalize_axis(a, rank))
        .collect::<Result<_, _>>()?;
    let mut seen = axes.clone();
    seen.sort_unstable();
    seen.dedup();
    if seen.len() != axes.len() {
        return invalid!("repeated axes {axes:?}");
    }
    one(c.add1(
        Op::Slice(ops::slice::Slice {
            starts,
            ends,
            axes,
            steps,
        }),
        &[x],
    )?)
}

fn to_sizes(v: &[i64], what: &str) -> Result<Vec<usize>, OpError> {
    v.iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| OpError::Invalid(format!("negative {what} in {v:?}")))
        })
        .collect()
}

fn expand(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let x = c.input(0)?;
    let shape = to_sizes(&c.const_ints(1, "target shape")?, "size")?;
    one(c.add1(Op::Expand(ops::expand::Expand { shape }), &[x])?)
}

fn tile(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let x = c.input(0)?;
    let repeats = to_sizes(&c.const_ints(1, "repeats")?, "repeat")?;
    one(c.add1(Op::Tile(ops::tile::Tile { repeats }), &[x])?)
}

/// `Shape` is always a constant: every shape is static after import.
fn shape(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let x = c.input(0)?;
    let dims: Vec<i64> = c.ty(x).shape.iter().map(|&d| d as i64).collect();
    let r = dims.len() as i64;
    let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let start = clamp(c.attr_int("start", 0)?);
    let end = clamp(c.attr_int("end", r)?);
    let picked: Vec<i64> = if start < end {
        dims.get(start..end).unwrap_or_default().to_vec()
    } else {
        vec![]
    };
    let t = Tensor::from_i64s(vec![picked.len()], picked)?;
    one(c.constant_value(t))
}

fn size(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let x = c.input(0)?;
    let n = c.ty(x).numel() as i64;
    one(c.constant_value(Tensor::scalar_i64(n)))
}

fn constant(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let t = if let Some(t) = c.attr_tensor("value")? {
        t
    } else if c.has_attr("value_float") {
        Tensor::new(
            TensorType::new(DType::F32, vec![]),
            crate::ir::Data::F32(vec![c.attr_float("value_float", 0.0)?]),
        )?
    } else if let Some(v) = c.attr_floats("value_floats")? {
        Tensor::from_f32s(vec![v.len()], v)?
    } else if c.has_attr("value_int") {
        Tensor::scalar_i64(c.attr_int("value_int", 0)?)
    } else if let Some(v) = c.attr_ints("value_ints")? {
        Tensor::from_i64s(vec![v.len()], v)?
    } else if c.has_attr("sparse_value") {
        return unsupported!("sparse constants");
    } else {
        return unsupported!("a Constant without a numeric value (strings are not supported)");
    };
    one(c.constant_value(t))
}

fn constant_of_shape(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let shape = to_sizes(&c.const_ints(0, "shape")?, "size")?;
    let (dtype, value) = match c.attr_tensor("value")? {
        Some(t) => (t.ty.dtype, t.scalar_f64()?),
        None => (DType::F32, 0.0),
    };
    if dtype.is_half() {
        let wide = c.add1(
            Op::Fill(ops::fill::Fill {
                dtype: DType::F32,
                value,
                shape,
            }),
            &[],
        )?;
        return one(cast_to(c, wide, dtype)?);
    }
    one(c.add1(
        Op::Fill(ops::fill::Fill {
            dtype,
            value,
            shape,
        }),
        &[],
    )?)
}

fn range(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let start = c.const_tensor(0, "start")?;
    let limit = c.const_tensor(1, "limit")?.scalar_f64()?;
    let delta = c.const_tensor(2, "delta")?.scalar_f64()?;
    let dtype = start.ty.dtype;
    let start = start.scalar_f64()?;
    if delta == 0.0 {
        return invalid!("delta is 0");
    }
    let len = ((limit - start) / delta).ceil();
    if !len.is_finite() {
        return invalid!("range length is not finite");
    }
    let len = len.max(0.0) as usize;
    crate::ir::checked_numel(&[len])?;
    one(c.add1(
        Op::Range(ops::range::Range {
            dtype,
            start,
            delta,
            len,
        }),
        &[],
    )?)
}

fn trilu(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let x = c.input(0)?;
    let upper = c.attr_int("upper", 1)? != 0;
    let k = match c.opt_const_ints(1, "diagonal offset k")? {
        Some(v) => v.first().copied().unwrap_or(0),
        None => 0,
    };
    one(c.add1(Op::Trilu(ops::trilu::Trilu { upper, k }), &[x])?)
}

fn cumsum(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let x = c.input(0)?;
    let axis = c.const_ints(1, "axis")?;
    let axis = match axis.as_slice() {
        [a] => normalize_axis(*a, rank_of(c, x))?,
        _ => return invalid!("axis must hold one value, got {axis:?}"),
    };
    let exclusive = c.attr_int("exclusive", 0)? != 0;
    let reverse = c.attr_int("reverse", 0)? != 0;
    one(c.add1(
        Op::CumSum(ops::cumsum::CumSum {
            axis,
            exclusive,
            reverse,
        }),
        &[x],
    )?)
}

/// `Pad`: pads from the `pads` attribute (opset < 11) or input (with optional
/// `constant_value` and `axes` inputs).
fn pad(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    use ops::pad::{Pad, PadMode};
    let x = c.input(0)?;
    let rank = rank_of(c, x);
    let mode = match c.attr_string("mode", "constant")?.as_str() {
        "constant" => PadMode::Constant,
        "reflect" => PadMode::Reflect,
        "edge" => PadMode::Edge,
        "wrap" => PadMode::Wrap,
        other => return invalid!("unknown mode `{other}`"),
    };
    let (pads, value, axes) = if c.opset < 11 {
        let name = if c.opset < 2 { "paddings" } else { "pads" };
        let pads = c
            .attr_ints(name)?
            .ok_or_else(|| OpError::Invalid(format!("missing `{name}`")))?;
        (pads, c.attr_float("value", 0.0)? as f64, None)
    } else {
        let pads = c.const_ints(1, "pads")?;
        let value = match c.opt_input(2) {
            Some(_) => c.const_tensor(2, "constant value")?.scalar_f64()?,
            None => 0.0,
        };
        (pads, value, c.opt_const_ints(3, "axes")?)
    };
    let axes: Vec<usize> = match axes {
        Some(a) => a
            .iter()
            .map(|&a| normalize_axis(a, rank))
            .collect::<Result<_, _>>()?,
        None => (0..rank).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return invalid!("{} pads for {} axes", pads.len(), axes.len());
    }
    let (mut before, mut after) = (vec![0isize; rank], vec![0isize; rank]);
    let (pads_before, pads_after) = pads.split_at_checked(axes.len()).unwrap_or_default();
    for ((&a, &b), &e) in axes.iter().zip(pads_before).zip(pads_after) {
        if let (Some(before), Some(after)) = (before.get_mut(a), after.get_mut(a)) {
            (*before, *after) = (b as isize, e as isize);
        }
    }
    one(c.add1(
        Op::Pad(Pad {
            before,
            after,
            mode,
            value,
        }),
        &[x],
    )?)
}

fn reduction(c: &NodeCtx<'_>) -> Result<ops::scatter::Reduction, OpError> {
    use ops::scatter::Reduction;
    Ok(match c.attr_string("reduction", "none")?.as_str() {
        "none" => Reduction::None,
        "add" => Reduction::Add,
        "mul" => Reduction::Mul,
        "max" => Reduction::Max,
        "min" => Reduction::Min,
        other => return invalid!("unknown reduction `{other}`"),
    })
}

fn scatter_nd(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let (data, idx, upd) = (c.input(0)?, c.input(1)?, c.input(2)?);
    let idx = cast_to(c, idx, DType::I64)?;
    let reduction = reduction(c)?;
    one(c.add1(
        Op::ScatterNd(ops::scatter::ScatterNd { reduction }),
        &[data, idx, upd],
    )?)
}

fn scatter_elements(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    let (data, idx, upd) = (c.input(0)?, c.input(1)?, c.input(2)?);
    let idx = cast_to(c, idx, DType::I64)?;
    let axis = normalize_axis(c.attr_int("axis", 0)?, rank_of(c, data))?;
    let reduction = reduction(c)?;
    one(c.add1(
        Op::ScatterElements(ops::scatter::ScatterElements { axis, reduction }),
        &[data, idx, upd],
    )?)
}

fn bitwise(c: &mut NodeCtx<'_>, kind: BitwiseKind) -> Result<Vec<ValueId>, OpError> {
    let inputs = c.all_inputs();
    one(c.add1(Op::Bitwise(Bitwise { kind }), &inputs)?)
}

fn bit_shift(c: &mut NodeCtx<'_>) -> Result<Vec<ValueId>, OpError> {
    match c.attr_string("direction", "")?.as_str() {
        "LEFT" => bitwise(c, BitwiseKind::ShiftLeft),
        "RIGHT" => bitwise(c, BitwiseKind::ShiftRight),
        other => invalid!("unknown direction `{other}`"),
    }
}
