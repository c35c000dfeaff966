//! Helpers shared by op files: broadcasting, axes, typed eval dispatch, token literals.
use crate::error::OpError;
use crate::invalid;
use crate::ir::{DType, Data, Tensor, TensorType};
use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::{format_ident, quote};

/// What an op's `emit` sees: the node and its operand types. Inputs are bound to `i0..`,
/// outputs to `o0..`.
pub struct EmitCtx<'a> {
    pub node_name: &'a str,
    pub inputs: &'a [TensorType],
    pub outputs: &'a [TensorType],
}

impl EmitCtx<'_> {
    pub fn input(&self, i: usize) -> Ident {
        format_ident!("i{}", i)
    }
    pub fn output(&self, i: usize) -> Ident {
        format_ident!("o{}", i)
    }
    /// The node name as a string literal (for run-time error values).
    pub fn name_lit(&self) -> Literal {
        Literal::string(self.node_name)
    }
}

/// Check the input count.
pub fn expect_inputs(inputs: &[&TensorType], min: usize, max: usize) -> Result<(), OpError> {
    if inputs.len() < min || inputs.len() > max {
        if min == max {
            return invalid!("expects {min} input(s), got {}", inputs.len());
        }
        return invalid!("expects {min} to {max} inputs, got {}", inputs.len());
    }
    Ok(())
}

/// Multidirectional (NumPy) broadcast of shapes.
pub fn broadcast_shapes(shapes: &[&[usize]]) -> Result<Vec<usize>, OpError> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1usize; rank];
    for shape in shapes {
        let pad = rank - shape.len();
        for (i, &d) in shape.iter().enumerate() {
            let o = &mut out[pad + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return invalid!(
                    "shapes {shapes:?} do not broadcast (axis {} has {} and {d})",
                    pad + i,
                    *o
                );
            }
        }
    }
    Ok(out)
}

/// Row-major element strides.
pub fn contiguous_strides(shape: &[usize]) -> Vec<isize> {
    let mut strides = vec![0isize; shape.len()];
    let mut acc = 1isize;
    for i in (0..shape.len()).rev() {
        strides[i] = acc;
        acc = acc.saturating_mul(shape[i] as isize);
    }
    strides
}

/// Strides for reading a tensor of `shape` in the index space of `out` (right-aligned;
/// 0 on broadcast axes).
pub fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<isize> {
    let own = contiguous_strides(shape);
    let pad = out.len() - shape.len().min(out.len());
    (0..out.len())
        .map(|i| {
            if i < pad || shape[i - pad] == 1 {
                0
            } else {
                own[i - pad]
            }
        })
        .collect()
}

/// Merge adjacent axes that every operand reads contiguously, and drop unit axes, so
/// kernels walk as few axes as possible. Returns the new shape and operand strides.
pub fn coalesce(shape: &[usize], strides: &[Vec<isize>]) -> (Vec<usize>, Vec<Vec<isize>>) {
    let mut out_shape: Vec<usize> = Vec::new();
    let mut out_strides: Vec<Vec<isize>> = vec![Vec::new(); strides.len()];
    for axis in 0..shape.len() {
        if shape[axis] == 1 {
            continue;
        }
        let mergeable = match out_shape.last() {
            Some(&prev) => strides.iter().enumerate().all(|(k, s)| {
                let last = out_strides[k].last().copied().unwrap_or(0);
                last == s[axis] * shape[axis] as isize && (prev > 0)
            }),
            None => false,
        };
        if mergeable {
            if let Some(last) = out_shape.last_mut() {
                *last *= shape[axis];
            }
            for (k, s) in strides.iter().enumerate() {
                if let Some(l) = out_strides[k].last_mut() {
                    *l = s[axis];
                }
            }
        } else {
            out_shape.push(shape[axis]);
            for (k, s) in strides.iter().enumerate() {
                out_strides[k].push(s[axis]);
            }
        }
    }
    (out_shape, out_strides)
}

/// Resolve a possibly negative axis against a rank.
pub fn normalize_axis(axis: i64, rank: usize) -> Result<usize, OpError> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return invalid!("axis {axis} is out of range for rank {rank}");
    }
    Ok(a as usize)
}

/// Product of a slice of dims.
pub fn product(dims: &[usize]) -> usize {
    dims.iter().product()
}

/// `shape` seen as `[outer, len, inner]` around `axis` (all zero when `axis` is out of range).
pub fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    match shape.get(axis) {
        Some(&len) => (product(&shape[..axis]), len, product(&shape[axis + 1..])),
        None => (0, 0, 0),
    }
}

/// The operands of a layer over a packed weight blob (`QLinear`, `Q4Linear`, `HLinear`):
/// `x: f32[..., k]`, the blob `u8[weight_bytes]`, and a bias input exactly when `bias`;
/// `k`, `n` and the panel width `nr` (`[k, n, nr]`) positive.
pub fn check_blob_linear(
    inputs: &[&TensorType],
    bias: bool,
    [k, n, nr]: [usize; 3],
    weight_bytes: usize,
) -> Result<(), OpError> {
    expect_inputs(inputs, 2, 3)?;
    if inputs.len() != 2 + usize::from(bias) {
        return invalid!("bias={bias} needs {} inputs", 2 + usize::from(bias));
    }
    if k == 0 || n == 0 || nr == 0 {
        return invalid!("k, n and nr must be positive");
    }
    let x = inputs[0];
    if x.dtype != DType::F32 || x.shape.last() != Some(&k) {
        return invalid!("input {x} is not f32[..., {k}]");
    }
    let w = TensorType::new(DType::U8, vec![weight_bytes]);
    if inputs[1] != &w {
        return invalid!("weight blob is {}, expected {w}", inputs[1]);
    }
    Ok(())
}

/// A linear layer's output type: `x` with its last dim replaced by `n`, after checking the
/// optional bias is `f32[n]`.
pub fn linear_output(
    x: &TensorType,
    n: usize,
    bias: Option<&TensorType>,
) -> Result<TensorType, OpError> {
    if let Some(bias) = bias
        && (bias.dtype != DType::F32 || bias.shape != [n])
    {
        return invalid!("bias is {bias}, expected f32[{n}]");
    }
    let mut shape = x.shape.clone();
    if let Some(last) = shape.last_mut() {
        *last = n;
    }
    crate::ir::checked_numel(&shape)?;
    Ok(TensorType::new(DType::F32, shape))
}

/// A table lookup's output type, `f32[indices.shape ++ [cols]]`, after checking the table
/// input is `table` and the indices (`inputs[1]`) are i64 or i32.
pub fn lookup_output(
    inputs: &[&TensorType],
    table: &TensorType,
    cols: usize,
) -> Result<TensorType, OpError> {
    expect_inputs(inputs, 2, 2)?;
    if inputs[0] != table {
        return invalid!("table blob is {}, expected {table}", inputs[0]);
    }
    let idx = inputs[1];
    if !matches!(idx.dtype, DType::I64 | DType::I32) {
        return invalid!("indices must be int64 or int32, got {}", idx.dtype);
    }
    let mut shape = idx.shape.clone();
    shape.push(cols);
    crate::ir::checked_numel(&shape)?;
    Ok(TensorType::new(DType::F32, shape))
}

/// A linear layer's optional bias (its third input).
pub fn optional_bias<'a>(inputs: &[&'a Tensor]) -> Result<Option<&'a [f32]>, OpError> {
    inputs.get(2).map(|b| data::<f32>(b)).transpose()
}

/// Zero-filled output tensor of a type.
pub fn zeros(ty: &TensorType) -> Result<Tensor, OpError> {
    Tensor::zeros(ty.clone())
}

/// Element types the eval code can name generically: wrap/unwrap [`Data`].
pub trait Storage: Sized + Copy + 'static {
    fn slice(data: &Data) -> Option<&[Self]>;
    fn slice_mut(data: &mut Data) -> Option<&mut [Self]>;
}

macro_rules! storage {
    ($($t:ty => $v:ident),*) => {$(
        impl Storage for $t {
            fn slice(data: &Data) -> Option<&[Self]> {
                if let Data::$v(v) = data { Some(v) } else { None }
            }
            fn slice_mut(data: &mut Data) -> Option<&mut [Self]> {
                if let Data::$v(v) = data { Some(v) } else { None }
            }
        }
    )*};
}
storage!(f32 => F32, f64 => F64, i64 => I64, i32 => I32, i16 => I16, i8 => I8, u8 => U8, u16 => U16, u32 => U32, u64 => U64);

/// Typed view of a tensor's data; errors name the expected type.
pub fn data<T: Storage>(t: &Tensor) -> Result<&[T], OpError> {
    T::slice(&t.data)
        .ok_or_else(|| OpError::Invalid(format!("unexpected element type {}", t.ty.dtype)))
}

/// Typed mutable view of a tensor's data.
pub fn data_mut<T: Storage>(t: &mut Tensor) -> Result<&mut [T], OpError> {
    let dtype = t.ty.dtype;
    T::slice_mut(&mut t.data)
        .ok_or_else(|| OpError::Invalid(format!("unexpected element type {dtype}")))
}

/// Run a generic block with `$T` bound to the storage type of a dtype, for every numeric
/// dtype (booleans use `u8`).
#[macro_export]
macro_rules! for_dtype {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::ir::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::ir::DType::F64 => {
                type $T = f64;
                $body
            }
            $crate::ir::DType::I64 => {
                type $T = i64;
                $body
            }
            $crate::ir::DType::I32 => {
                type $T = i32;
                $body
            }
            $crate::ir::DType::I16 => {
                type $T = i16;
                $body
            }
            $crate::ir::DType::I8 => {
                type $T = i8;
                $body
            }
            $crate::ir::DType::U8 | $crate::ir::DType::Bool => {
                type $T = u8;
                $body
            }
            // Half-precision values are bits here: only data movement may use this arm
            // (import widens them to f32 for everything else; `ir::verify` checks).
            $crate::ir::DType::U16 | $crate::ir::DType::F16 | $crate::ir::DType::BF16 => {
                type $T = u16;
                $body
            }
            $crate::ir::DType::U32 => {
                type $T = u32;
                $body
            }
            $crate::ir::DType::U64 => {
                type $T = u64;
                $body
            }
        }
    };
}

/// The runtime storage type of a dtype as tokens (`f32`, `u8` for bool, ...).
pub fn storage_ty(dtype: DType) -> TokenStream {
    let ident = Ident::new(dtype.rust_storage(), Span::call_site());
    quote!(#ident)
}

pub fn lit_usize(n: usize) -> Literal {
    Literal::usize_unsuffixed(n)
}

/// `&[a, b, c]` of unsuffixed usize literals.
pub fn usize_slice(values: &[usize]) -> TokenStream {
    let lits = values.iter().map(|&v| Literal::usize_unsuffixed(v));
    quote!(&[#(#lits),*])
}

/// `&[a, b, c]` of isize literals (negative values allowed).
pub fn isize_slice(values: &[isize]) -> TokenStream {
    let lits = values.iter().map(|&v| lit_isize(v));
    quote!(&[#(#lits),*])
}

pub fn lit_isize(v: isize) -> TokenStream {
    if v < 0 {
        let l = Literal::usize_unsuffixed(v.unsigned_abs());
        quote!(-#l)
    } else {
        let l = Literal::usize_unsuffixed(v as usize);
        quote!(#l)
    }
}

pub fn lit_i64(v: i64) -> TokenStream {
    let l = Literal::u64_unsuffixed(v.unsigned_abs());
    if v < 0 { quote!(-#l) } else { quote!(#l) }
}

/// A float literal of the given storage type; non-finite values use the named constants.
pub fn lit_float(v: f64, dtype: DType) -> TokenStream {
    let ty = storage_ty(dtype);
    if v.is_nan() {
        quote!(#ty::NAN)
    } else if v.is_infinite() {
        if v > 0.0 {
            quote!(#ty::INFINITY)
        } else {
            quote!(#ty::NEG_INFINITY)
        }
    } else if dtype == DType::F32 {
        let l = Literal::f32_suffixed(v as f32);
        quote!(#l)
    } else {
        let l = Literal::f64_suffixed(v);
        quote!(#l)
    }
}

/// A scalar literal of any dtype, as the runtime storage type.
pub fn lit_scalar(v: f64, dtype: DType) -> TokenStream {
    if dtype.is_float() {
        return lit_float(v, dtype);
    }
    let ty = storage_ty(dtype);
    let i = lit_i64(v as i64);
    quote!((#i as #ty))
}

/// The single value of a scalar constant as f64.
pub fn scalar_value(t: &Tensor) -> Result<f64, OpError> {
    t.scalar_f64()
}

/// Evaluate a copy of `x` read as `shape` with `strides` from element `offset` into a new
/// `out` tensor (how Transpose, Expand and Slice move data).
pub fn eval_strided_copy(
    x: &Tensor,
    out: &TensorType,
    offset: isize,
    strides: &[isize],
    shape: &[usize],
) -> Result<Vec<Tensor>, OpError> {
    let mut t = zeros(out)?;
    if !t.data.is_empty() {
        crate::for_dtype!(x.ty.dtype, T => {
            runtime_core::kernels::layout::copy_strided(data::<T>(x)?, offset, strides, data_mut::<T>(&mut t)?, shape)
        });
    }
    Ok(vec![t])
}

/// The generated code of the same copy from input 0 to output 0 (nothing for an empty output).
pub fn emit_strided_copy(
    ctx: &EmitCtx<'_>,
    offset: isize,
    strides: &[isize],
    shape: &[usize],
) -> TokenStream {
    if ctx.outputs[0].numel() == 0 {
        return TokenStream::new();
    }
    let (x, o) = (ctx.input(0), ctx.output(0));
    let (offset, strides, shape) = (lit_isize(offset), isize_slice(strides), usize_slice(shape));
    quote! { rt::kernels::layout::copy_strided(#x, #offset, #strides, #o, #shape); }
}

/// A `u8` weight blob constant (test graphs of the packed-weight ops).
#[cfg(test)]
pub(crate) fn blob(bytes: Vec<u8>) -> Tensor {
    Tensor::new(
        TensorType::new(DType::U8, vec![bytes.len()]),
        Data::U8(bytes),
    )
    .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_and_coalesce() {
        let out = broadcast_shapes(&[&[2, 1, 4], &[3, 1]]).unwrap();
        assert_eq!(out, vec![2, 3, 4]);
        assert!(broadcast_shapes(&[&[2, 3], &[4]]).is_err());
        let a = broadcast_strides(&[2, 3, 4], &out);
        let b = broadcast_strides(&[4], &out);
        assert_eq!(b, vec![0, 0, 1]);
        let (shape, strides) = coalesce(&out, &[a, b]);
        assert_eq!(shape, vec![6, 4]);
        assert_eq!(strides, vec![vec![4, 1], vec![0, 1]]);
    }
}
