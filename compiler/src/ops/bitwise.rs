//! `Bitwise`: integer bit operations with NumPy broadcasting (ONNX BitShift, BitwiseAnd,
//! BitwiseOr, BitwiseXor, BitwiseNot).
use super::OpDef;
use super::util::{
    self, EmitCtx, broadcast_shapes, broadcast_strides, coalesce, isize_slice, storage_ty,
    usize_slice,
};
use crate::error::OpError;
use crate::invalid;
use crate::ir::{DType, Tensor, TensorType};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use runtime_core::kernels::elementwise;
use runtime_core::math;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitwiseKind {
    And,
    Or,
    Xor,
    /// Unary.
    Not,
    ShiftLeft,
    ShiftRight,
}

impl BitwiseKind {
    fn math_fn(self) -> &'static str {
        match self {
            Self::And => "bit_and",
            Self::Or => "bit_or",
            Self::Xor => "bit_xor",
            Self::Not => "bit_not",
            Self::ShiftLeft => "shift_left",
            Self::ShiftRight => "shift_right",
        }
    }
}

/// One (Not) or two operands of one integer dtype.
#[derive(Debug, Clone, PartialEq)]
pub struct Bitwise {
    pub kind: BitwiseKind,
}

/// Run `$body` with `$T` bound to an integer dtype's type, or fail.
macro_rules! for_int {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            DType::U8 => {
                type $T = u8;
                $body
            }
            DType::U16 => {
                type $T = u16;
                $body
            }
            DType::U32 => {
                type $T = u32;
                $body
            }
            DType::U64 => {
                type $T = u64;
                $body
            }
            DType::I8 => {
                type $T = i8;
                $body
            }
            DType::I16 => {
                type $T = i16;
                $body
            }
            DType::I32 => {
                type $T = i32;
                $body
            }
            DType::I64 => {
                type $T = i64;
                $body
            }
            other => return invalid!("bitwise operation on {other}"),
        }
    };
}

impl OpDef for Bitwise {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        let arity = if self.kind == BitwiseKind::Not { 1 } else { 2 };
        util::expect_inputs(inputs, arity, arity)?;
        let dtype = inputs[0].dtype;
        let integer = matches!(
            dtype,
            DType::U8
                | DType::U16
                | DType::U32
                | DType::U64
                | DType::I8
                | DType::I16
                | DType::I32
                | DType::I64
        );
        if !integer || inputs.iter().any(|t| t.dtype != dtype) {
            return invalid!("{:?} needs integer operands of one type", self.kind);
        }
        let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape.as_slice()).collect();
        let shape = broadcast_shapes(&shapes)?;
        crate::ir::checked_numel(&shape)?;
        Ok(vec![TensorType::new(dtype, shape)])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let mut out = util::zeros(&outputs[0])?;
        let shape = &outputs[0].shape;
        let kind = self.kind;
        for_int!(inputs[0].ty.dtype, T => {
            if kind == BitwiseKind::Not {
                elementwise::unary(util::data::<T>(inputs[0])?, util::data_mut::<T>(&mut out)?, math::bit_not::<T>);
            } else {
                let f: fn(T, T) -> T = match kind {
                    BitwiseKind::And => math::bit_and::<T>,
                    BitwiseKind::Or => math::bit_or::<T>,
                    BitwiseKind::Xor => math::bit_xor::<T>,
                    BitwiseKind::ShiftLeft => math::shift_left::<T>,
                    _ => math::shift_right::<T>,
                };
                let (a, b) = (inputs[0], inputs[1]);
                let sa = broadcast_strides(&a.ty.shape, shape);
                let sb = broadcast_strides(&b.ty.shape, shape);
                elementwise::binary(util::data::<T>(a)?, &sa, util::data::<T>(b)?, &sb, util::data_mut::<T>(&mut out)?, shape, f);
            }
        });
        Ok(vec![out])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        let t = storage_ty(ctx.inputs[0].dtype);
        let f = format_ident!("{}", self.kind.math_fn());
        let o = ctx.output(0);
        if self.kind == BitwiseKind::Not {
            let x = ctx.input(0);
            return Ok(quote! { rt::kernels::elementwise::unary(#x, #o, rt::math::#f::<#t>); });
        }
        let shape = &ctx.outputs[0].shape;
        let sa = broadcast_strides(&ctx.inputs[0].shape, shape);
        let sb = broadcast_strides(&ctx.inputs[1].shape, shape);
        let (shape, strides) = coalesce(shape, &[sa, sb]);
        let (a, b) = (ctx.input(0), ctx.input(1));
        let (sa, sb, shape) = (
            isize_slice(&strides[0]),
            isize_slice(&strides[1]),
            usize_slice(&shape),
        );
        Ok(
            quote! { rt::kernels::elementwise::binary(#a, #sa, #b, #sb, #o, #shape, rt::math::#f::<#t>); },
        )
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![("kind", format!("{:?}", self.kind))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_and_masks() {
        let a = Tensor::new(
            TensorType::new(DType::U8, vec![3]),
            crate::ir::Data::U8(vec![1, 2, 255]),
        )
        .unwrap();
        let b = Tensor::new(
            TensorType::new(DType::U8, vec![3]),
            crate::ir::Data::U8(vec![1, 3, 9]),
        )
        .unwrap();
        let shl = Bitwise {
            kind: BitwiseKind::ShiftLeft,
        };
        let ty = shl.infer(&[&a.ty, &b.ty]).unwrap();
        assert_eq!(
            shl.eval(&[&a, &b], &ty).unwrap()[0].data.to_f64_vec(),
            vec![2.0, 16.0, 0.0]
        );
        let and = Bitwise {
            kind: BitwiseKind::And,
        };
        assert_eq!(
            and.eval(&[&a, &b], &ty).unwrap()[0].data.to_f64_vec(),
            vec![1.0, 2.0, 9.0]
        );
        let f = TensorType::new(DType::F32, vec![3]);
        assert!(and.infer(&[&f, &f]).is_err());
    }
}
