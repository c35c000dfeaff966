//! The IR op set. One file per op: attributes, type/shape inference, reference evaluation
//! (which is also the constant folder) and emission of the runtime-core call.
//!
//! The [`ops!`] list below is the single source of truth: it produces the [`Op`] enum, its
//! exhaustive dispatch and [`IR_OPS`]. Adding an op means one file here, one frontend
//! constructor and one test directory.
use crate::error::OpError;
use crate::ir::{Tensor, TensorType};
use proc_macro2::TokenStream;

pub mod util;

pub mod arg_extreme;
pub mod attention;
pub mod binary;
pub mod bitwise;
pub mod cast;
pub mod concat;
pub mod conv;
pub mod cumsum;
pub mod einsum;
pub mod elementwise;
pub mod expand;
pub mod fill;
pub mod gather;
pub mod gather_elements;
pub mod gather_nd;
pub mod hgather;
pub mod hlinear;
pub mod kv_write;
pub mod layer_norm;
pub mod layer_norm_rows;
pub mod linear;
pub mod matmul;
pub mod pad;
pub mod permuted_matmul;
pub mod pool;
pub mod q4linear;
pub mod qattention;
pub mod qconv;
pub mod qgather;
pub mod qlinear;
pub mod range;
pub mod reduce;
pub mod reshape;
pub mod rms_norm;
pub mod rotary;
pub mod scatter;
pub mod slice;
pub mod softmax;
pub mod split;
pub mod tied_gather;
pub mod tile;
pub mod transpose;
pub mod trilu;
pub mod unary;
pub mod where_;

pub use util::EmitCtx;

/// What every op provides.
pub trait OpDef {
    /// Output types from input types; fails with the reason an input does not fit.
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError>;
    /// Reference evaluation on heap buffers with runtime-core's portable kernels.
    /// `outputs` are the types [`OpDef::infer`] returned.
    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError>;
    /// Statements that compute the outputs; the codegen has bound inputs to `i0, i1, ..`
    /// (`&[T]`) and outputs to `o0, o1, ..` (`&mut [T]`), in runtime storage types.
    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError>;
    /// Attributes shown by the textual IR printer, in a fixed order.
    fn attrs(&self) -> Vec<(&'static str, String)>;
    /// True when the single output is input 0's bytes reinterpreted (a reshape), so the
    /// planner may alias it instead of copying.
    fn is_view(&self) -> bool {
        false
    }
    /// `Some(k)` when the op updates input `k` in place: its output must get input `k`'s
    /// buffer, and `emit` writes `o0` without reading `i{k}` (which the codegen does not
    /// bind when the buffers are shared).
    fn in_place_input(&self) -> Option<usize> {
        None
    }
}

macro_rules! ops {
    ($($variant:ident($attrs:ty)),* $(,)?) => {
        /// An IR operation with its attributes.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Op {
            $($variant($attrs)),*
        }

        impl Op {
            pub fn name(&self) -> &'static str {
                match self { $(Op::$variant(_) => stringify!($variant)),* }
            }
            pub fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
                match self { $(Op::$variant(a) => a.infer(inputs)),* }
            }
            pub fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
                match self { $(Op::$variant(a) => a.eval(inputs, outputs)),* }
            }
            pub fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
                match self { $(Op::$variant(a) => a.emit(ctx)),* }
            }
            pub fn attrs(&self) -> Vec<(&'static str, String)> {
                match self { $(Op::$variant(a) => a.attrs()),* }
            }
            pub fn is_view(&self) -> bool {
                match self { $(Op::$variant(a) => a.is_view()),* }
            }
            pub fn in_place_input(&self) -> Option<usize> {
                match self { $(Op::$variant(a) => a.in_place_input()),* }
            }
        }

        /// Every IR op name.
        pub const IR_OPS: &[&str] = &[$(stringify!($variant)),*];
    };
}

ops! {
    Binary(binary::Binary),
    Unary(unary::Unary),
    Elementwise(elementwise::Elementwise),
    Where(where_::Where),
    Cast(cast::Cast),
    MatMul(matmul::MatMul),
    PermutedMatMul(permuted_matmul::PermutedMatMul),
    Linear(linear::Linear),
    QLinear(qlinear::QLinear),
    Q4Linear(q4linear::Q4Linear),
    HLinear(hlinear::HLinear),
    HGather(hgather::HGather),
    QGather(qgather::QGather),
    TiedGather(tied_gather::TiedGather),
    Attention(attention::Attention),
    QAttention(qattention::QAttention),
    Softmax(softmax::Softmax),
    LayerNorm(layer_norm::LayerNorm),
    LayerNormRows(layer_norm_rows::LayerNormRows),
    RmsNorm(rms_norm::RmsNorm),
    Rotary(rotary::Rotary),
    Reduce(reduce::Reduce),
    ArgExtreme(arg_extreme::ArgExtreme),
    Gather(gather::Gather),
    GatherElements(gather_elements::GatherElements),
    GatherNd(gather_nd::GatherNd),
    Reshape(reshape::Reshape),
    Transpose(transpose::Transpose),
    Concat(concat::Concat),
    Split(split::Split),
    Slice(slice::Slice),
    Expand(expand::Expand),
    Tile(tile::Tile),
    Trilu(trilu::Trilu),
    CumSum(cumsum::CumSum),
    Range(range::Range),
    Fill(fill::Fill),
    KvWrite(kv_write::KvWrite),
    Pad(pad::Pad),
    Conv(conv::Conv),
    QConv(qconv::QConv),
    Pool(pool::Pool),
    ScatterNd(scatter::ScatterNd),
    Einsum(einsum::Einsum),
    Bitwise(bitwise::Bitwise),
    ScatterElements(scatter::ScatterElements),
}
