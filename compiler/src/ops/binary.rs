//! `Binary`: elementwise arithmetic, comparison and logic of two broadcast operands
//! (ONNX Add, Sub, Mul, Div, Pow, Max, Min, Mod, Equal, Less, Greater, And, Or, ...).
use super::OpDef;
use super::util::{
    self, EmitCtx, broadcast_shapes, broadcast_strides, coalesce, expect_inputs, isize_slice,
    storage_ty, usize_slice,
};
use crate::error::OpError;
use crate::ir::{DType, Tensor, TensorType};
use crate::{for_dtype, invalid, unsupported};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::elementwise;
use runtime_core::math;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryKind {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Max,
    Min,
    /// Integer-style modulo: the sign follows the divisor (ONNX `Mod`, fmod=0).
    Mod,
    /// C-style remainder: the sign follows the dividend (ONNX `Mod`, fmod=1).
    FMod,
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    And,
    Or,
    Xor,
}

impl BinaryKind {
    fn is_comparison(self) -> bool {
        matches!(
            self,
            Self::Equal | Self::Less | Self::LessOrEqual | Self::Greater | Self::GreaterOrEqual
        )
    }
    fn is_logic(self) -> bool {
        matches!(self, Self::And | Self::Or | Self::Xor)
    }
    fn math_fn(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Sub => "sub",
            Self::Mul => "mul",
            Self::Div => "div",
            Self::Pow => "pow",
            Self::Max => "max",
            Self::Min => "min",
            Self::Mod => "modulo",
            Self::FMod => "fmod",
            Self::Equal => "equal",
            Self::Less => "less",
            Self::LessOrEqual => "less_or_equal",
            Self::Greater => "greater",
            Self::GreaterOrEqual => "greater_or_equal",
            Self::And => "and",
            Self::Or => "or",
            Self::Xor => "xor",
        }
    }
}

/// `out = a ∘ b` with NumPy broadcasting. Both operands share a dtype; comparisons and
/// logic produce `bool`; logic takes `bool` operands.
#[derive(Debug, Clone, PartialEq)]
pub struct Binary {
    pub kind: BinaryKind,
}

impl OpDef for Binary {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        expect_inputs(inputs, 2, 2)?;
        let (a, b) = (inputs[0], inputs[1]);
        if a.dtype != b.dtype {
            return invalid!("operand types differ: {} and {}", a.dtype, b.dtype);
        }
        if self.kind.is_logic() && a.dtype != DType::Bool {
            return invalid!("{:?} needs bool operands, got {}", self.kind, a.dtype);
        }
        if !self.kind.is_logic() && a.dtype == DType::Bool && self.kind != BinaryKind::Equal {
            return unsupported!("{:?} on bool operands", self.kind);
        }
        let shape = broadcast_shapes(&[&a.shape, &b.shape])?;
        crate::ir::checked_numel(&shape)?;
        let dtype = if self.kind.is_comparison() || self.kind.is_logic() {
            DType::Bool
        } else {
            a.dtype
        };
        Ok(vec![TensorType::new(dtype, shape)])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let (a, b) = (inputs[0], inputs[1]);
        let shape = &outputs[0].shape;
        let sa = broadcast_strides(&a.ty.shape, shape);
        let sb = broadcast_strides(&b.ty.shape, shape);
        let mut out = util::zeros(&outputs[0])?;
        let kind = self.kind;
        if kind.is_logic() {
            let f = match kind {
                BinaryKind::And => math::and,
                BinaryKind::Or => math::or,
                _ => math::xor,
            };
            elementwise::binary(
                util::data::<u8>(a)?,
                &sa,
                util::data::<u8>(b)?,
                &sb,
                util::data_mut::<u8>(&mut out)?,
                shape,
                f,
            );
            return Ok(vec![out]);
        }
        for_dtype!(a.ty.dtype, T => {
            let (x, y) = (util::data::<T>(a)?, util::data::<T>(b)?);
            if kind.is_comparison() {
                let f: fn(T, T) -> u8 = match kind {
                    BinaryKind::Equal => math::equal::<T>,
                    BinaryKind::Less => math::less::<T>,
                    BinaryKind::LessOrEqual => math::less_or_equal::<T>,
                    BinaryKind::Greater => math::greater::<T>,
                    _ => math::greater_or_equal::<T>,
                };
                elementwise::binary(x, &sa, y, &sb, util::data_mut::<u8>(&mut out)?, shape, f);
            } else {
                let f: fn(T, T) -> T = match kind {
                    BinaryKind::Add => math::add::<T>,
                    BinaryKind::Sub => math::sub::<T>,
                    BinaryKind::Mul => math::mul::<T>,
                    BinaryKind::Div => math::div::<T>,
                    BinaryKind::Pow => math::pow::<T>,
                    BinaryKind::Max => math::max::<T>,
                    BinaryKind::Min => math::min::<T>,
                    BinaryKind::Mod => math::modulo::<T>,
                    _ => math::fmod::<T>,
                };
                elementwise::binary(x, &sa, y, &sb, util::data_mut::<T>(&mut out)?, shape, f);
            }
        });
        Ok(vec![out])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        let shape = &ctx.outputs[0].shape;
        let sa = broadcast_strides(&ctx.inputs[0].shape, shape);
        let sb = broadcast_strides(&ctx.inputs[1].shape, shape);
        let (shape, strides) = coalesce(shape, &[sa, sb]);
        let f = quote::format_ident!("{}", self.kind.math_fn());
        let func = if self.kind.is_logic() {
            quote!(rt::math::#f)
        } else {
            let t = storage_ty(ctx.inputs[0].dtype);
            quote!(rt::math::#f::<#t>)
        };
        let (a, b, o) = (ctx.input(0), ctx.input(1), ctx.output(0));
        let (sa, sb, shape) = (
            isize_slice(&strides[0]),
            isize_slice(&strides[1]),
            usize_slice(&shape),
        );
        Ok(quote! { rt::kernels::elementwise::binary(#a, #sa, #b, #sb, #o, #shape, #func); })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![("kind", format!("{:?}", self.kind))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_broadcasts_and_compare_gives_bool() {
        let a = Tensor::from_f32s(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let b = Tensor::from_f32s(vec![2], vec![10.0, 20.0]).unwrap();
        let op = Binary {
            kind: BinaryKind::Add,
        };
        let ty = op.infer(&[&a.ty, &b.ty]).unwrap();
        let out = op.eval(&[&a, &b], &ty).unwrap();
        assert_eq!(out[0].data.to_f64_vec(), vec![11.0, 22.0, 13.0, 24.0]);
        let less = Binary {
            kind: BinaryKind::Less,
        };
        let ty = less.infer(&[&a.ty, &b.ty]).unwrap();
        assert_eq!(ty[0].dtype, DType::Bool);
        let out = less.eval(&[&a, &b], &ty).unwrap();
        assert_eq!(out[0].data.to_f64_vec(), vec![1.0, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn mismatched_shapes_are_rejected() {
        let a = TensorType::new(DType::F32, vec![2, 3]);
        let b = TensorType::new(DType::F32, vec![4]);
        assert!(
            Binary {
                kind: BinaryKind::Mul
            }
            .infer(&[&a, &b])
            .is_err()
        );
    }
}
