//! Recognition of ONNX Runtime's quantized matmul patterns before import, so they become
//! integer IR (`QLinear`) instead of the float/i32 arithmetic of `quant.rs`:
//!
//! - QOperator dynamic (`quantize_dynamic`): `DynamicQuantizeLinear(x)` → `MatMulInteger(xq,
//!   W: int8 const, x_zp, w_zp = 0)` → `Cast(float)` → `Mul(·, Mul(x_scale, w_scale))`
//!   (→ `Add(·, bias)`) becomes `QLinear{act = dynamic-tensor-u8}(x, bias?)` (anchored at
//!   the Mul, or the bias Add).
//! - QDQ static (`quantize_static`, QDQ): `MatMul`/`Gemm(DQ(Q(x, s, z)), DQ(W: int8 const,
//!   per tensor or per output channel, zero point 0))` becomes `QLinear{act = static s, z}(x)`
//!   (+ Gemm's bias).
//! - QOperator static: `QLinearMatMul(Q(x, s, z), s, z, W, sw, 0, sy, zy)` becomes
//!   `QuantizeLinear(QLinear{act = static s, z}(x), sy, zy)`; when `xq` comes from another
//!   quantized op instead of a `QuantizeLinear`, `x` is `(xq - z) · s` (quantized back to
//!   the same integers).
//!
//! - Convolutions become `QConv` (int8 weights packed per group at build time): QDQ
//!   `Conv(DQ(xq, s, z), DQ(W: int8 const, per tensor or per output channel, zero point 0),
//!   bias?)` reads the integer `xq` (and a `QuantizeLinear` that is its only reader folds in
//!   as a requantization, so QDQ conv chains stay integer); dynamic `DynamicQuantizeLinear(x)` → `ConvInteger` →
//!   `Cast` → `Mul(x_scale · w_scale)` (→ `Add(bias)`) reads `x`; `QLinearConv(xq, …)` reads
//!   `xq` and requantizes to its output scale and zero point inside the kernel.
//!
//! - `com.microsoft`: `QAttention(DynamicQuantizeLinear(x)…, W: int8 const, zero point 0)`
//!   reads `x` (its packed projection becomes `QLinear`s, `contrib_attention.rs`), and
//!   `MatMulIntegerToFloat(DynamicQuantizeLinear(x)…, W, …, bias?)` becomes
//!   `QLinear{act = dynamic-tensor-u8}(x, bias?)`.
//!
//! - QDQ embedding tables: `Gather(DQ(T: uint8/int8 const, per tensor), ids)` gathers the
//!   integer rows and dequantizes them (`(q - z) · s`, as DequantizeLinear), so the table
//!   keeps one byte per value.
//!
//! Nodes whose only readers were absorbed are not imported at all. Every quantized node
//! that still goes through the float lowering gets a note saying why (the build report
//! prints them).
#![deny(clippy::indexing_slicing)]
use crate::ir::{DType, Data, Tensor};
use onnx_protobuf::{GraphProto, NodeProto};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// How the fused layer quantizes its activations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Act {
    /// ONNX `DynamicQuantizeLinear` over the whole tensor (uint8, asymmetric).
    DynamicU8,
    /// `QuantizeLinear` with a constant scale and zero point.
    Static {
        scale: f32,
        zero_point: i32,
        u8: bool,
    },
    /// The activation arrives already quantized with this constant scale and zero point
    /// (`QLinearMatMul` reading another QOperator op's output): it is dequantized and
    /// quantized back exactly as [`Act::Static`].
    Quantized {
        scale: f32,
        zero_point: i32,
        u8: bool,
    },
}

/// One recognised quantized matmul, imported at its anchor node.
#[derive(Debug, Clone)]
pub struct Fusion {
    /// The f32 activation the pattern quantizes.
    pub x: String,
    /// Row-major `k × n` int8 weight and its per-column scales.
    pub k: usize,
    pub n: usize,
    pub q: Vec<i8>,
    pub scales: Vec<f32>,
    pub act: Act,
    /// A bias value (`Gemm`'s C, or a constant `[n]` added to a dynamic product).
    pub bias: Option<String>,
    /// `QLinearMatMul`: the output scale and zero point to requantize to.
    pub requant: Option<(String, String)>,
}

impl Fusion {
    /// The values the anchor reads in place of its ONNX inputs, in order.
    pub fn reads(&self) -> Vec<&str> {
        let mut r = vec![self.x.as_str()];
        r.extend(self.bias.as_deref());
        if let Some((s, z)) = &self.requant {
            r.push(s);
            r.push(z);
        }
        r
    }
}

/// The activation of a recognised quantized convolution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConvAct {
    /// f32, quantized per tensor to uint8 at run time (`DynamicQuantizeLinear`).
    DynamicU8,
    /// Already an integer tensor (uint8 when `u8`) with this scale and zero point.
    Quantized {
        scale: f32,
        zero_point: i32,
        u8: bool,
    },
}

/// The bias of a recognised quantized convolution.
#[derive(Debug, Clone, PartialEq)]
pub enum ConvBias {
    None,
    /// The convolution's own bias input (`[M]`, folded into the kernel when constant).
    Input(String),
    /// The other operand of an `Add` after the convolution (folded into the kernel when it
    /// is a constant that broadcasts per output channel).
    Add(String),
    /// `QLinearConv`'s int32 bias, added to the accumulator before requantization.
    Int(Vec<i32>),
}

/// One recognised quantized convolution, imported at its anchor node.
#[derive(Debug, Clone)]
pub struct ConvFusion {
    /// The convolution node (its attributes give the geometry).
    pub conv: NodeProto,
    /// The activation the kernel reads (f32 for `DynamicU8`, else the integer tensor).
    pub x: String,
    pub act: ConvAct,
    /// ONNX-layout int8 weight `[M, C/group, kernel..]` and per-output-channel scales.
    pub w: Vec<i8>,
    pub w_shape: Vec<usize>,
    pub scales: Vec<f32>,
    pub bias: ConvBias,
    /// `QLinearConv`: `(multipliers x_scale·w_scale[m]/y_scale, y zero point, uint8 output)`.
    pub requant: Option<(Vec<f32>, i32, bool)>,
}

/// A recognised `com.microsoft.QAttention` whose input is `DynamicQuantizeLinear(x)`: imported
/// with `x` in place of the quantized input and without the activation scale and zero point
/// (the projection becomes `QLinear`s quantizing `x` themselves).
#[derive(Debug, Clone)]
pub struct AttentionFusion {
    /// The node's inputs, `x` first, slots 3 and 6 (input scale, zero point) empty.
    pub reads: Vec<String>,
}

/// `Gather(DQ(T: uint8/int8 const, scale, zero point), ids)` (QDQ embedding tables): the
/// table stays integer, each gathered row dequantized as `(q - zero_point) · scale`.
#[derive(Debug, Clone)]
pub struct GatherFusion {
    pub table: String,
    pub ids: String,
    pub scale: f32,
    pub zero_point: f32,
}

/// A recognised pattern: a matmul (`QLinear`), a convolution (`QConv`), a `QAttention`
/// (`QLinear` projections + `Attention`) or an integer embedding table.
#[derive(Debug, Clone)]
pub enum Fused {
    MatMul(Fusion),
    Conv(Box<ConvFusion>),
    QAttention(AttentionFusion),
    Gather(GatherFusion),
}

impl Fused {
    /// The values the anchor reads in place of its ONNX inputs, in order.
    pub fn reads(&self) -> Vec<&str> {
        match self {
            Fused::MatMul(f) => f.reads(),
            Fused::Conv(f) => {
                let mut r = vec![f.x.as_str()];
                if let ConvBias::Input(b) | ConvBias::Add(b) = &f.bias {
                    r.push(b);
                }
                r
            }
            Fused::QAttention(f) => f.reads.iter().map(String::as_str).collect(),
            Fused::Gather(f) => vec![f.table.as_str(), f.ids.as_str()],
        }
    }
}

/// What import does differently: anchors imported as fusions, nodes skipped, notes.
#[derive(Debug, Default)]
pub struct QuantPlan {
    pub fused: BTreeMap<usize, Fused>,
    pub skip: BTreeSet<usize>,
    /// `(node name, why it runs through the float lowering)`.
    pub notes: Vec<(String, String)>,
}

const ACT_BY_ACT: &str =
    "activation × activation product (the right operand is computed at run time)";

const QUANT_OPS: &[&str] = &[
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "MatMulInteger",
    "QLinearMatMul",
    "ConvInteger",
    "QLinearConv",
    "MatMulIntegerToFloat",
    "DynamicQuantizeMatMul",
];

struct View<'a> {
    nodes: &'a [NodeProto],
    producer: HashMap<&'a str, (usize, usize)>,
    consumers: HashMap<&'a str, Vec<usize>>,
    consts: &'a dyn Fn(&str) -> Option<Arc<Tensor>>,
}

impl<'a> View<'a> {
    fn from(&self, value: &str, op: &str) -> Option<(usize, usize)> {
        let &(i, slot) = self.producer.get(value)?;
        let n = self.nodes.get(i)?;
        (n.op_type == op && n.domain.is_empty()).then_some((i, slot))
    }
    fn input(&self, node: usize, i: usize) -> Option<&'a str> {
        self.nodes
            .get(node)?
            .input
            .get(i)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }
    /// A constant's value by name, through `Identity` nodes (exporters alias shared
    /// weights that way).
    fn konst(&self, value: &str) -> Option<Arc<Tensor>> {
        let mut value = value;
        for _ in 0..8 {
            if let Some(t) = (self.consts)(value) {
                return Some(t);
            }
            let (i, _) = self.from(value, "Identity")?;
            value = self.input(i, 0)?;
        }
        None
    }
    fn int_attr(&self, node: usize, name: &str, default: i64) -> i64 {
        self.nodes
            .get(node)
            .and_then(|n| n.attribute.iter().find(|a| a.name == name))
            .map_or(default, |a| a.i)
    }
    fn float_attr(&self, node: usize, name: &str, default: f32) -> f32 {
        self.nodes
            .get(node)
            .and_then(|n| n.attribute.iter().find(|a| a.name == name))
            .map_or(default, |a| a.f)
    }
    /// A constant scalar (one element) as f64.
    fn scalar(&self, value: Option<&str>) -> Option<f64> {
        let t = self.konst(value?)?;
        (t.ty.numel() == 1).then(|| t.to_f64_vec().first().copied())?
    }
    /// A constant zero point: absent, or every element 0.
    fn zero(&self, value: Option<&str>) -> Result<(), String> {
        let Some(v) = value else { return Ok(()) };
        match self.konst(v) {
            Some(t) if t.to_f64_vec().iter().all(|&z| z == 0.0) => Ok(()),
            Some(_) => Err("the weight zero point is not 0 (asymmetric weights)".into()),
            None => Err("the weight zero point is computed at run time".into()),
        }
    }
}

/// A constant 2-D int8 weight `[rows, cols]`.
fn int8_weight(t: &Tensor) -> Result<(usize, usize, &[i8]), String> {
    match (&t.data, t.ty.shape.as_slice()) {
        (Data::I8(q), &[r, c]) => Ok((r, c, q)),
        (Data::I8(_), _) => Err(format!("the weight is {}, not 2-D", t.ty)),
        _ => Err(format!(
            "the weight is {} (only int8 weights map to the integer kernels)",
            t.ty.dtype
        )),
    }
}

/// Per-column scales of a weight with `n` output columns from a scale of one or `n` values.
pub(super) fn column_scales(t: &Tensor, n: usize) -> Result<Vec<f32>, String> {
    let s: Vec<f32> = t.to_f64_vec().iter().map(|&v| v as f32).collect();
    match s.len() {
        1 => Ok(vec![s.first().copied().unwrap_or(0.0); n]),
        len if len == n => Ok(s),
        len => Err(format!("{len} weight scales for {n} output columns")),
    }
}

/// `[rows, cols]` row-major → `[cols, rows]`.
fn transpose(q: &[i8], rows: usize, cols: usize) -> Vec<i8> {
    (0..cols)
        .flat_map(|c| (0..rows).map(move |r| q.get(r * cols + c).copied().unwrap_or(0)))
        .collect()
}

/// `x` behind `DQ(Q(x, s, z), s, z)` (or `Q(x, s, z)` itself when `dq` is false) with the
/// static activation quantization.
fn static_act(v: &View<'_>, value: &str, dq: bool) -> Result<(String, Act), String> {
    let (q_out, s1, z1) = if dq {
        let (d, _) = v
            .from(value, "DequantizeLinear")
            .ok_or("the activation does not come from DequantizeLinear")?;
        let q_out = v.input(d, 0).ok_or("DequantizeLinear without input")?;
        (q_out, v.scalar(v.input(d, 1)), v.scalar(v.input(d, 2)))
    } else {
        (value, None, None)
    };
    let (q, _) = v
        .from(q_out, "QuantizeLinear")
        .ok_or("the activation is not quantized by QuantizeLinear")?;
    let x = v.input(q, 0).ok_or("QuantizeLinear without input")?;
    let Act::Quantized {
        scale,
        zero_point,
        u8,
    } = quantized_act(v, v.input(q, 1), v.input(q, 2))?
    else {
        return Err("not a static activation".into());
    };
    if dq && (s1.map(|s| s as f32) != Some(scale) || z1.unwrap_or(0.0) != f64::from(zero_point)) {
        return Err("DequantizeLinear and QuantizeLinear parameters differ".into());
    }
    Ok((
        x.to_string(),
        Act::Static {
            scale,
            zero_point,
            u8,
        },
    ))
}

/// `DQ(W)` of a constant int8 weight with zero point 0, as `(k, n, q [k, n], scales [n])`;
/// `trans`: W is `[n, k]` (Gemm's transB).
fn dq_weight(
    v: &View<'_>,
    value: &str,
    trans: bool,
) -> Result<(usize, usize, Vec<i8>, Vec<f32>), String> {
    let (d, _) = v
        .from(value, "DequantizeLinear")
        .ok_or("the weight is not a DequantizeLinear of a constant")?;
    let w = v.konst(v.input(d, 0).unwrap_or("")).ok_or(ACT_BY_ACT)?;
    let (rows, cols, q) = int8_weight(&w)?;
    v.zero(v.input(d, 2))?;
    let scale = v
        .konst(v.input(d, 1).unwrap_or(""))
        .ok_or("the weight scale is computed")?;
    let (k, n) = if trans { (cols, rows) } else { (rows, cols) };
    if scale.ty.numel() > 1 {
        if v.int_attr(d, "block_size", 0) != 0 {
            return Err("blocked weight scales".into());
        }
        let axis = v.int_attr(d, "axis", 1);
        let axis = if axis < 0 { axis + 2 } else { axis };
        if axis != if trans { 0 } else { 1 } {
            return Err("weight scales are not per output channel".into());
        }
    }
    let scales = column_scales(&scale, n)?;
    let q = if trans {
        transpose(q, rows, cols)
    } else {
        q.to_vec()
    };
    Ok((k, n, q, scales))
}

/// The f32 `x` behind `DynamicQuantizeLinear(x)` whose outputs are node `i`'s inputs
/// `slots` = (quantized input, scale, zero point).
fn dynamic_act(v: &View<'_>, i: usize, [q, s, z]: [usize; 3]) -> Result<String, String> {
    let (dql, 0) = v
        .from(v.input(i, q).unwrap_or(""), "DynamicQuantizeLinear")
        .ok_or("the input is not from DynamicQuantizeLinear")?
    else {
        return Err("the input is not DynamicQuantizeLinear's first output".into());
    };
    let out = &v.nodes.get(dql).ok_or("no such node")?.output;
    if v.input(i, s) != out.get(1).map(String::as_str)
        || v.input(i, z) != out.get(2).map(String::as_str)
    {
        return Err("the input scale / zero point are not DynamicQuantizeLinear's".into());
    }
    Ok(v.input(dql, 0)
        .ok_or("DynamicQuantizeLinear without input")?
        .to_string())
}

/// Node `i`'s constant 2-D int8 weight, its scale and its zero point (absent or 0) at `slots`
/// = (weight, scale, zero point), as `(k, n, q [k, n], per-column scales)`.
fn int8_input_weight(
    v: &View<'_>,
    i: usize,
    [w, s, z]: [usize; 3],
) -> Result<(usize, usize, Vec<i8>, Vec<f32>), String> {
    let t = v.konst(v.input(i, w).unwrap_or("")).ok_or(ACT_BY_ACT)?;
    let (k, n, q) = int8_weight(&t)?;
    v.zero(v.input(i, z))?;
    let scale = v
        .konst(v.input(i, s).unwrap_or(""))
        .ok_or("the weight scale is computed")?;
    Ok((k, n, q.to_vec(), column_scales(&scale, n)?))
}

/// `com.microsoft.QAttention(DynamicQuantizeLinear(x)…, W: int8 const, bias, x_scale, w_scale,
/// mask?, x_zp, w_zp = 0?, past?)`.
fn q_attention(v: &View<'_>, i: usize) -> Result<AttentionFusion, String> {
    let x = dynamic_act(v, i, [0, 3, 6])?;
    int8_input_weight(v, i, [1, 4, 7])?;
    let node = v.nodes.get(i).ok_or("no such node")?;
    let reads = node
        .input
        .iter()
        .enumerate()
        .map(|(slot, name)| match slot {
            0 => x.clone(),
            3 | 6 => String::new(),
            _ => name.clone(),
        })
        .collect();
    Ok(AttentionFusion { reads })
}

/// `com.microsoft.MatMulIntegerToFloat(DynamicQuantizeLinear(x)…, W: int8 const, x_scale,
/// w_scale, x_zp, w_zp = 0?, bias?)` (what ORT's graph optimizer makes of the dynamic
/// `MatMulInteger` chain).
fn matmul_integer_to_float(v: &View<'_>, i: usize) -> Result<Fusion, String> {
    let x = dynamic_act(v, i, [0, 2, 4])?;
    let (k, n, q, scales) = int8_input_weight(v, i, [1, 3, 5])?;
    Ok(Fusion {
        x,
        k,
        n,
        q,
        scales,
        act: Act::DynamicU8,
        bias: v.input(i, 6).map(str::to_string),
        requant: None,
    })
}

fn dynamic(v: &View<'_>, mul: usize) -> Result<Fusion, String> {
    let n = v.nodes.get(mul).ok_or("no such node")?;
    let (a, b) = (v.input(mul, 0).unwrap_or(""), v.input(mul, 1).unwrap_or(""));
    let (cast, scales_v) = match (v.from(a, "Cast"), v.from(b, "Cast")) {
        (Some((c, _)), _) => (c, b),
        (_, Some((c, _))) => (c, a),
        _ => return Err(format!("`{}` does not scale a Cast", n.name)),
    };
    if v.int_attr(cast, "to", 0) != 1 {
        return Err("the integer product is not cast to float".into());
    }
    let acc = v.input(cast, 0).unwrap_or("");
    let (mm, _) = v
        .from(acc, "MatMulInteger")
        .ok_or("the Cast does not read a MatMulInteger")?;
    let xq = v.input(mm, 0).unwrap_or("");
    let (dql, 0) = v
        .from(xq, "DynamicQuantizeLinear")
        .ok_or("the activation is not from DynamicQuantizeLinear")?
    else {
        return Err("the activation is not DynamicQuantizeLinear's first output".into());
    };
    let dq_out = &v.nodes.get(dql).ok_or("no such node")?.output;
    if v.input(mm, 2) != dq_out.get(2).map(String::as_str) {
        return Err("the activation zero point is not DynamicQuantizeLinear's".into());
    }
    let w = v.konst(v.input(mm, 1).unwrap_or("")).ok_or(ACT_BY_ACT)?;
    let (k, cols, q) = int8_weight(&w)?;
    v.zero(v.input(mm, 3))?;
    // scales_v = Mul(x_scale, w_scale), either order.
    let (smul, _) = v
        .from(scales_v, "Mul")
        .ok_or("the scale is not x_scale · w_scale")?;
    let x_scale = dq_out.get(1).map(String::as_str);
    let w_scale = match (v.input(smul, 0), v.input(smul, 1)) {
        (s, Some(w)) if s == x_scale => w,
        (Some(w), s) if s == x_scale => w,
        _ => return Err("the scale is not x_scale · w_scale".into()),
    };
    let w_scale = v.konst(w_scale).ok_or("the weight scale is computed")?;
    let scales = column_scales(&w_scale, cols)?;
    let x = v
        .input(dql, 0)
        .ok_or("DynamicQuantizeLinear without input")?;
    Ok(Fusion {
        x: x.to_string(),
        k,
        n: cols,
        q: q.to_vec(),
        scales,
        act: Act::DynamicU8,
        bias: None,
        requant: None,
    })
}

fn qdq(v: &View<'_>, i: usize) -> Result<Fusion, String> {
    let node = v.nodes.get(i).ok_or("no such node")?;
    let gemm = node.op_type == "Gemm";
    if gemm
        && (v.int_attr(i, "transA", 0) != 0
            || v.float_attr(i, "alpha", 1.0) != 1.0
            || v.float_attr(i, "beta", 1.0) != 1.0)
    {
        return Err("Gemm with transA, alpha or beta".into());
    }
    let trans = gemm && v.int_attr(i, "transB", 0) != 0;
    let (k, n, q, scales) = dq_weight(v, v.input(i, 1).unwrap_or(""), trans)?;
    let a = v.input(i, 0).unwrap_or("");
    let (x, act) = match static_act(v, a, true) {
        Ok(found) => found,
        // `DQ(xq)` of another quantized op's output (a QOperator op, or a QDQ chain whose
        // QuantizeLinear was folded away).
        Err(e) => {
            let (d, _) = v.from(a, "DequantizeLinear").ok_or(e)?;
            let xq = v.input(d, 0).ok_or("DequantizeLinear without input")?;
            let act = quantized_act(v, v.input(d, 1), v.input(d, 2))?;
            (xq.to_string(), act)
        }
    };
    Ok(Fusion {
        x,
        k,
        n,
        q,
        scales,
        act,
        bias: if gemm {
            v.input(i, 2).map(str::to_string)
        } else {
            None
        },
        requant: None,
    })
}

fn qlinear_matmul(v: &View<'_>, i: usize) -> Result<Fusion, String> {
    let a = v.input(i, 0).unwrap_or("");
    let (x, act) = match static_act(v, a, false) {
        Ok((x, act)) => {
            let Act::Static {
                scale, zero_point, ..
            } = act
            else {
                return Err("not a static activation".into());
            };
            if v.scalar(v.input(i, 1)) != Some(scale as f64)
                || v.scalar(v.input(i, 2)).unwrap_or(0.0) != zero_point as f64
            {
                return Err("the input scale differs from its QuantizeLinear's".into());
            }
            (x, act)
        }
        // `A` comes from another quantized op (QLinearAdd, a quantized Reshape, …).
        Err(_) => (
            a.to_string(),
            quantized_act(v, v.input(i, 1), v.input(i, 2))?,
        ),
    };
    let w = v.konst(v.input(i, 3).unwrap_or("")).ok_or(ACT_BY_ACT)?;
    let (k, n, q) = int8_weight(&w)?;
    v.zero(v.input(i, 5))?;
    let sw = v
        .konst(v.input(i, 4).unwrap_or(""))
        .ok_or("the weight scale is computed")?;
    let scales = column_scales(&sw, n)?;
    let (Some(sy), Some(zy)) = (v.input(i, 6), v.input(i, 7)) else {
        return Err("no output zero point".into());
    };
    Ok(Fusion {
        x,
        k,
        n,
        q: q.to_vec(),
        scales,
        act,
        bias: None,
        requant: Some((sy.to_string(), zy.to_string())),
    })
}

/// The constant scalar scale and zero point (a `QuantizeLinear`'s, or the consumer's own:
/// `QLinearMatMul`'s `a_scale`/`a_zero_point`, a `DequantizeLinear`'s) of an activation
/// that arrives quantized.
fn quantized_act(v: &View<'_>, scale: Option<&str>, zp_name: Option<&str>) -> Result<Act, String> {
    let scale = v
        .scalar(scale)
        .ok_or("the activation scale is not a constant scalar")?;
    let zero_point = match zp_name {
        Some(z) if !z.is_empty() => v
            .scalar(Some(z))
            .ok_or("the activation zero point is not a constant scalar")?,
        _ => 0.0,
    };
    let u8 = match zp_name.and_then(|z| v.konst(z)) {
        None => true,
        Some(t) => match t.ty.dtype {
            DType::U8 => true,
            DType::I8 => false,
            d => return Err(format!("{d} activations")),
        },
    };
    if !(scale.is_finite() && scale > 0.0) {
        return Err(format!("activation scale {scale}"));
    }
    Ok(Act::Quantized {
        scale: scale as f32,
        zero_point: zero_point as i32,
        u8,
    })
}

/// `Gather(DQ(T), ids)` on axis 0 of a constant uint8/int8 table quantized per tensor, when
/// every reader of `DQ(T)` is such a `Gather` (else the f32 table stays anyway).
fn qdq_gather(v: &View<'_>, i: usize) -> Option<GatherFusion> {
    let data = v.input(i, 0)?;
    let ids = v.input(i, 1)?;
    if v.int_attr(i, "axis", 0) != 0 {
        return None;
    }
    let (d, _) = v.from(data, "DequantizeLinear")?;
    let table = v.input(d, 0)?;
    let t = v.konst(table)?;
    if !matches!(t.ty.dtype, DType::U8 | DType::I8) || t.ty.rank() < 1 {
        return None;
    }
    let scale = v.scalar(v.input(d, 1))?;
    let zero_point = match v.input(d, 2) {
        Some(z) => v.scalar(Some(z))?,
        None => 0.0,
    };
    let only_gathers = v.consumers.get(data).is_some_and(|readers| {
        readers.iter().all(|&r| {
            v.nodes.get(r).is_some_and(|n| {
                n.op_type == "Gather"
                    && n.domain.is_empty()
                    && n.input.first().map(String::as_str) == Some(data)
                    && !n.input.iter().skip(1).any(|x| x == data)
                    && v.int_attr(r, "axis", 0) == 0
            })
        })
    });
    (only_gathers && scale.is_finite() && scale > 0.0).then(|| GatherFusion {
        table: table.to_string(),
        ids: ids.to_string(),
        scale: scale as f32,
        zero_point: zero_point as f32,
    })
}

/// `(q, shape, per-output-channel scales)` of an int8 convolution weight.
type ConvWeight = (Vec<i8>, Vec<usize>, Vec<f32>);

/// A constant int8 convolution weight `[M, C/group, kernel..]` with zero point 0 and its
/// per-output-channel scales from a scale of one or `M` values.
fn conv_weight(
    v: &View<'_>,
    w: &str,
    scale: Option<&str>,
    zero_point: Option<&str>,
) -> Result<ConvWeight, String> {
    let t = v.konst(w).ok_or("the weight is computed at run time")?;
    let Data::I8(q) = &t.data else {
        return Err(format!(
            "the weight is {} (only int8 weights map to the integer kernels)",
            t.ty.dtype
        ));
    };
    let shape = t.ty.shape.clone();
    let m = match shape.as_slice() {
        [m, _, _, ..] => *m,
        _ => {
            return Err(format!(
                "the weight is {}, not [M, C/group, kernel..]",
                t.ty
            ));
        }
    };
    if let Some(z) = zero_point.and_then(|z| v.konst(z))
        && z.ty.numel() != 1
        && z.ty.numel() != m
    {
        return Err(format!(
            "weight zero point {} for {m} output channels",
            z.ty
        ));
    }
    v.zero(zero_point)?;
    let scale = v
        .konst(scale.ok_or("no weight scale")?)
        .ok_or("the weight scale is computed")?;
    let scales = column_scales(&scale, m)?;
    if scales.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err("a weight scale is not a positive finite number".into());
    }
    Ok((q.clone(), shape, scales))
}

/// The constant scalar `(scale, zero point, uint8)` of a quantized activation.
fn act_params(
    v: &View<'_>,
    scale: Option<&str>,
    zero_point: Option<&str>,
) -> Result<(f32, i32, bool), String> {
    let s = v
        .scalar(scale)
        .ok_or("the activation scale is not a constant scalar")?;
    if !(s.is_finite() && s > 0.0) {
        return Err(format!("activation scale {s}"));
    }
    let (z, u8) = match zero_point {
        None => (0.0, true),
        Some(name) => {
            let t = v
                .konst(name)
                .filter(|t| t.ty.numel() == 1)
                .ok_or("the activation zero point is not a constant scalar")?;
            let u8 = match t.ty.dtype {
                DType::U8 => true,
                DType::I8 => false,
                d => return Err(format!("{d} activations")),
            };
            (t.to_f64_vec().first().copied().unwrap_or(0.0), u8)
        }
    };
    Ok((s as f32, z as i32, u8))
}

/// QDQ: `Conv(DQ(xq, sx, zx), DQ(W, sw, 0), bias?)` reading the integer `xq`.
fn qdq_conv(v: &View<'_>, i: usize) -> Result<ConvFusion, String> {
    let conv = v.nodes.get(i).ok_or("no such node")?.clone();
    let (dw, _) = v
        .from(v.input(i, 1).unwrap_or(""), "DequantizeLinear")
        .ok_or("the weight is not a DequantizeLinear")?;
    let (w, w_shape, scales) = conv_weight(
        v,
        v.input(dw, 0).unwrap_or(""),
        v.input(dw, 1),
        v.input(dw, 2),
    )?;
    if scales.len() > 1 && v.int_attr(dw, "axis", 1) != 0 {
        return Err("weight scales are not per output channel (axis 0)".into());
    }
    if v.int_attr(dw, "block_size", 0) != 0 {
        return Err("blocked weight scales".into());
    }
    let (dx, _) = v
        .from(v.input(i, 0).unwrap_or(""), "DequantizeLinear")
        .ok_or("the activation does not come from DequantizeLinear")?;
    let (scale, zero_point, u8) = act_params(v, v.input(dx, 1), v.input(dx, 2))?;
    let x = v.input(dx, 0).ok_or("DequantizeLinear without input")?;
    Ok(ConvFusion {
        conv,
        x: x.to_string(),
        act: ConvAct::Quantized {
            scale,
            zero_point,
            u8,
        },
        w,
        w_shape,
        scales,
        bias: v
            .input(i, 2)
            .map_or(ConvBias::None, |b| ConvBias::Input(b.to_string())),
        requant: None,
    })
}

/// QDQ `Q(Conv(DQ(xq, sx, zx), DQ(W, sw), DQ(b: int32, sx·sw)?), sy, zy)`: the QuantizeLinear
/// that is the convolution's only reader folds into the kernel as a requantization (as
/// `QLinearConv`), so the layer reads and writes integers. Returns the Q node (the new
/// anchor) and turns `f` into the requantizing form; `None` (and `f` unchanged) when the
/// output or the bias does not have that form.
fn qdq_requant(v: &View<'_>, i: usize, f: &mut ConvFusion, outputs: &[&str]) -> Option<usize> {
    let y = v.nodes.get(i)?.output.first()?.as_str();
    let &[q] = v.consumers.get(y)?.as_slice() else {
        return None;
    };
    let qn = v.nodes.get(q)?;
    if outputs.contains(&y) || qn.op_type != "QuantizeLinear" || !qn.domain.is_empty() {
        return None;
    }
    let (sy, zy, y_u8) = act_params(v, v.input(q, 1), v.input(q, 2)).ok()?;
    let ConvAct::Quantized { scale: sx, .. } = f.act else {
        return None;
    };
    let m = f.scales.len();
    let bias = match &f.bias {
        ConvBias::None => ConvBias::None,
        ConvBias::Input(b) => {
            // DQ(int32 [M], scale sx·sw[m] per channel or one value, zero point 0).
            let (d, _) = v.from(b, "DequantizeLinear")?;
            let t = v.konst(v.input(d, 0)?)?;
            let Data::I32(q) = &t.data else { return None };
            let scale = v.konst(v.input(d, 1)?)?;
            let bs = column_scales(&scale, m).ok()?;
            v.zero(v.input(d, 2)).ok()?;
            let fits = q.len() == m && bs.iter().zip(&f.scales).all(|(&b, &w)| b == sx * w);
            if !fits {
                return None;
            }
            ConvBias::Int(q.clone())
        }
        ConvBias::Add(_) | ConvBias::Int(_) => return None,
    };
    let multipliers = f.scales.iter().map(|&w| sx * w / sy).collect();
    f.requant = Some((multipliers, zy, y_u8));
    f.scales = vec![1.0; m];
    f.bias = bias;
    Some(q)
}

/// `QLinearConv(xq, sx, zx, W, sw, 0, sy, zy, B?)` requantized inside the kernel.
fn qlinear_conv(v: &View<'_>, i: usize) -> Result<ConvFusion, String> {
    let conv = v.nodes.get(i).ok_or("no such node")?.clone();
    let (sx, zx, u8) = act_params(v, v.input(i, 1), v.input(i, 2))?;
    let (w, w_shape, sw) =
        conv_weight(v, v.input(i, 3).unwrap_or(""), v.input(i, 4), v.input(i, 5))?;
    let zy_name = v.input(i, 7).ok_or("no output zero point")?;
    let (sy, zy, y_u8) = act_params(v, v.input(i, 6), Some(zy_name))?;
    let m = sw.len();
    let bias = match v.input(i, 8) {
        None => ConvBias::None,
        Some(b) => {
            let t = v.konst(b).ok_or("the bias is computed at run time")?;
            match (&t.data, t.ty.shape.as_slice()) {
                (Data::I32(b), &[n]) if n == m => ConvBias::Int(b.clone()),
                _ => return Err(format!("the bias is {}, not int32 [{m}]", t.ty)),
            }
        }
    };
    let multipliers = sw.iter().map(|&s| sx * s / sy).collect();
    Ok(ConvFusion {
        conv,
        x: v.input(i, 0).ok_or("no input")?.to_string(),
        act: ConvAct::Quantized {
            scale: sx,
            zero_point: zx,
            u8,
        },
        w,
        w_shape,
        scales: vec![1.0; m],
        bias,
        requant: Some((multipliers, zy, y_u8)),
    })
}

/// Dynamic: `Mul(Cast(ConvInteger(DynamicQuantizeLinear(x)…, W, x_zp, 0)), x_scale · w_scale)`.
/// `Ok(None)` when the Mul does not scale a ConvInteger; an error names the ConvInteger.
fn dynamic_conv(v: &View<'_>, mul: usize) -> Result<Option<ConvFusion>, (usize, String)> {
    let (a, b) = (v.input(mul, 0).unwrap_or(""), v.input(mul, 1).unwrap_or(""));
    let found = [(a, b), (b, a)].into_iter().find_map(|(p, s)| {
        let (cast, _) = v.from(p, "Cast")?;
        let (ci, _) = v.from(v.input(cast, 0)?, "ConvInteger")?;
        Some((cast, ci, s))
    });
    let Some((cast, ci, scales_v)) = found else {
        return Ok(None);
    };
    let fail = |e: &str| Err((ci, e.to_string()));
    if v.int_attr(cast, "to", 0) != 1 {
        return fail("the integer product is not cast to float");
    }
    let xq = v.input(ci, 0).unwrap_or("");
    let Some((dql, 0)) = v.from(xq, "DynamicQuantizeLinear") else {
        return fail("the activation is not DynamicQuantizeLinear's first output");
    };
    let Some(dq_out) = v.nodes.get(dql).map(|n| &n.output) else {
        return fail("no such node");
    };
    if v.input(ci, 2) != dq_out.get(2).map(String::as_str) {
        return fail("the activation zero point is not DynamicQuantizeLinear's");
    }
    let Some((smul, _)) = v.from(scales_v, "Mul") else {
        return fail("the scale is not x_scale · w_scale");
    };
    let x_scale = dq_out.get(1).map(String::as_str);
    let w_scale = match (v.input(smul, 0), v.input(smul, 1)) {
        (s, Some(w)) if s == x_scale => w,
        (Some(w), s) if s == x_scale => w,
        _ => return fail("the scale is not x_scale · w_scale"),
    };
    if v.konst(w_scale).is_none_or(|t| t.ty.numel() != 1) {
        return fail("the weight scale is not one constant (per-channel dynamic scales)");
    }
    let (w, w_shape, scales) = conv_weight(
        v,
        v.input(ci, 1).unwrap_or(""),
        Some(w_scale),
        v.input(ci, 3),
    )
    .map_err(|e| (ci, e))?;
    let Some(x) = v.input(dql, 0) else {
        return fail("DynamicQuantizeLinear without input");
    };
    let Some(conv) = v.nodes.get(ci).cloned() else {
        return fail("no such node");
    };
    Ok(Some(ConvFusion {
        conv,
        x: x.to_string(),
        act: ConvAct::DynamicU8,
        w,
        w_shape,
        scales,
        bias: ConvBias::None,
        requant: None,
    }))
}

/// The `Add` that is the only reader of convolution node `i`'s output, as `(add node, the
/// other operand)`: `quantize_dynamic` leaves the bias as its own (per channel) Add.
fn conv_bias_add(v: &View<'_>, i: usize, outputs: &[&str]) -> Option<(usize, String)> {
    let y = v.nodes.get(i)?.output.first()?.as_str();
    let &[add] = v.consumers.get(y)?.as_slice() else {
        return None;
    };
    let a = v.nodes.get(add)?;
    if outputs.contains(&y) || a.op_type != "Add" || !a.domain.is_empty() {
        return None;
    }
    match (v.input(add, 0), v.input(add, 1)) {
        (Some(a), Some(b)) if a == y && b != y => Some((add, b.to_string())),
        (Some(a), Some(b)) if b == y && a != y => Some((add, a.to_string())),
        _ => None,
    }
}

/// The `Add` of a constant f32 `[n]` bias that is the only reader of node `i`'s output
/// (`quantize_dynamic` leaves the bias as its own Add), as `(add node, bias name)`.
fn bias_add(v: &View<'_>, i: usize, n: usize, outputs: &[&str]) -> Option<(usize, String)> {
    let y = v.nodes.get(i)?.output.first()?.as_str();
    let &[add] = v.consumers.get(y)?.as_slice() else {
        return None;
    };
    let a = v.nodes.get(add)?;
    if outputs.contains(&y) || a.op_type != "Add" || !a.domain.is_empty() {
        return None;
    }
    let other = match (v.input(add, 0), v.input(add, 1)) {
        (Some(a), Some(b)) if a == y => b,
        (Some(a), Some(b)) if b == y => a,
        _ => return None,
    };
    let t = v.konst(other)?;
    (t.ty.dtype == DType::F32 && t.ty.shape == [n]).then(|| (add, other.to_string()))
}

/// Nodes needed for the graph outputs when each anchor reads `reads(anchor)` instead of its
/// ONNX inputs.
fn live(v: &View<'_>, outputs: &[&str], reads: &BTreeMap<usize, Vec<&str>>) -> BTreeSet<usize> {
    let mut live = BTreeSet::new();
    let mut work: Vec<&str> = outputs.to_vec();
    while let Some(value) = work.pop() {
        let Some(&(i, _)) = v.producer.get(value) else {
            continue;
        };
        if !live.insert(i) {
            continue;
        }
        match reads.get(&i) {
            Some(r) => work.extend(r.iter().copied()),
            None => work.extend(
                v.nodes
                    .get(i)
                    .into_iter()
                    .flat_map(|n| n.input.iter().map(String::as_str)),
            ),
        }
    }
    live
}

/// Find every fusion in `g`; `consts` gives the value of a constant (initializer) by name.
pub fn plan(g: &GraphProto, consts: &dyn Fn(&str) -> Option<Arc<Tensor>>) -> QuantPlan {
    let nodes = g.node.as_slice();
    let mut producer = HashMap::new();
    let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for (slot, o) in n.output.iter().enumerate() {
            producer.insert(o.as_str(), (i, slot));
        }
        for input in n.input.iter().filter(|s| !s.is_empty()) {
            consumers.entry(input.as_str()).or_default().push(i);
        }
    }
    let v = View {
        nodes,
        producer,
        consumers,
        consts,
    };
    let outputs: Vec<&str> = g.output.iter().map(|o| o.name.as_str()).collect();
    let mut out = QuantPlan::default();
    let mut why: BTreeMap<usize, String> = BTreeMap::new();
    for (i, n) in nodes.iter().enumerate() {
        if n.domain == "com.microsoft" {
            let found = match n.op_type.as_str() {
                "QAttention" => q_attention(&v, i).map(Fused::QAttention),
                "MatMulIntegerToFloat" => matmul_integer_to_float(&v, i).map(Fused::MatMul),
                _ => continue,
            };
            match found {
                Ok(f) => {
                    out.fused.insert(i, f);
                }
                Err(e) => {
                    why.insert(i, e);
                }
            }
            continue;
        }
        if !n.domain.is_empty() {
            continue;
        }
        let found = match n.op_type.as_str() {
            "Mul" => match dynamic(&v, i) {
                Ok(f) => Ok(Some(f)),
                Err(e) => {
                    // Only a Mul that scales a MatMulInteger's product is worth a note.
                    let product = (0..2).find_map(|s| {
                        v.from(v.input(i, s).unwrap_or(""), "Cast")
                            .and_then(|(c, _)| v.from(v.input(c, 0).unwrap_or(""), "MatMulInteger"))
                    });
                    if let Some((mm, _)) = product {
                        why.insert(mm, e);
                    }
                    Ok(None)
                }
            },
            "MatMul" | "Gemm" => {
                let is_qdq = v
                    .from(v.input(i, 1).unwrap_or(""), "DequantizeLinear")
                    .is_some();
                match is_qdq.then(|| qdq(&v, i)) {
                    Some(Ok(f)) => Ok(Some(f)),
                    Some(Err(e)) => Err(e),
                    None => Ok(None),
                }
            }
            "QLinearMatMul" => qlinear_matmul(&v, i).map(Some),
            _ => Ok(None),
        };
        if n.op_type == "Gather"
            && let Some(f) = qdq_gather(&v, i)
        {
            out.fused.insert(i, Fused::Gather(f));
            continue;
        }
        let found_conv = match n.op_type.as_str() {
            "Mul" => dynamic_conv(&v, i),
            "Conv"
                if v.from(v.input(i, 1).unwrap_or(""), "DequantizeLinear")
                    .is_some() =>
            {
                qdq_conv(&v, i).map(Some).map_err(|e| (i, e))
            }
            "QLinearConv" => qlinear_conv(&v, i).map(Some).map_err(|e| (i, e)),
            _ => Ok(None),
        };
        match found_conv {
            Ok(Some(mut f)) => {
                let requant = match n.op_type.as_str() {
                    "Conv" => qdq_requant(&v, i, &mut f, &outputs),
                    _ => None,
                };
                let anchor = match conv_bias_add(&v, i, &outputs) {
                    _ if requant.is_some() => requant.unwrap_or(i),
                    Some((add, bias)) if f.bias == ConvBias::None && f.requant.is_none() => {
                        f.bias = ConvBias::Add(bias);
                        add
                    }
                    _ => i,
                };
                out.fused.insert(anchor, Fused::Conv(Box::new(f)));
                continue;
            }
            Ok(None) => {}
            Err((node, e)) => {
                why.insert(node, e);
                continue;
            }
        }
        match found {
            Ok(Some(mut f)) => {
                let anchor = match bias_add(&v, i, f.n, &outputs) {
                    Some((add, bias)) if f.bias.is_none() && f.requant.is_none() => {
                        f.bias = Some(bias);
                        add
                    }
                    _ => i,
                };
                out.fused.insert(anchor, Fused::MatMul(f));
            }
            Ok(None) => {}
            Err(e) => {
                why.insert(i, e);
            }
        }
    }
    let before = live(&v, &outputs, &BTreeMap::new());
    let reads: BTreeMap<usize, Vec<&str>> =
        out.fused.iter().map(|(&i, f)| (i, f.reads())).collect();
    let after = live(&v, &outputs, &reads);
    out.skip = before.difference(&after).copied().collect();
    let conv_biases: BTreeSet<&str> = out
        .fused
        .values()
        .filter_map(|f| match f {
            Fused::Conv(c) => match &c.bias {
                ConvBias::Input(b) | ConvBias::Add(b) => Some(b.as_str()),
                _ => None,
            },
            Fused::MatMul(_) | Fused::QAttention(_) | Fused::Gather(_) => None,
        })
        .collect();
    let mut elementwise = 0;
    for (i, n) in nodes.iter().enumerate() {
        if out.fused.contains_key(&i) || out.skip.contains(&i) || !after.contains(&i) {
            continue;
        }
        let quant = n.domain.is_empty() && QUANT_OPS.contains(&n.op_type.as_str());
        let reason = match why.remove(&i) {
            Some(r) => format!("{} not fused: {r}", n.op_type),
            None if !quant => continue,
            None => match n.op_type.as_str() {
                // A convolution bias (int32 · scale) folded to f32 at build time.
                "DequantizeLinear"
                    if n.output.iter().any(|o| conv_biases.contains(o.as_str())) =>
                {
                    continue;
                }
                "DequantizeLinear" if v.input(i, 0).and_then(consts).is_some() => {
                    "constant weight dequantized to f32 at build time (no integer consumer recognised)".into()
                }
                "QuantizeLinear" | "DequantizeLinear" | "DynamicQuantizeLinear" => {
                    elementwise += 1;
                    continue;
                }
                op => format!("{op} runs as i32/float arithmetic (no integer kernel for it)"),
            },
        };
        let name = if n.name.is_empty() {
            format!("{}_{i}", n.op_type)
        } else {
            n.name.clone()
        };
        out.notes.push((name, reason));
    }
    if elementwise > 0 {
        out.notes.push((
            format!("{elementwise} QuantizeLinear/DequantizeLinear nodes"),
            "elementwise rounding of activations to their quantization grid, computed in float"
                .into(),
        ));
    }
    out
}
