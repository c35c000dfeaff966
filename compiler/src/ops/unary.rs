//! `Unary`: elementwise functions of one operand (ONNX Neg, Abs, Sqrt, Exp, Log, Erf, Tanh,
//! Sigmoid, Sin, Cos, Relu, Not, Gelu, IsNaN, ...).
use super::OpDef;
use super::util::{self, EmitCtx, expect_inputs, storage_ty};
use crate::error::OpError;
use crate::ir::{DType, Tensor, TensorType};
use crate::{for_dtype, invalid, unsupported};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use runtime_core::kernels::elementwise;
use runtime_core::math;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryKind {
    // Any numeric type.
    Neg,
    Abs,
    Sign,
    // f32 only.
    Sqrt,
    Reciprocal,
    Exp,
    Log,
    Erf,
    Tanh,
    Sigmoid,
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Asinh,
    Acosh,
    Atanh,
    Floor,
    Ceil,
    Round,
    Relu,
    Softplus,
    Softsign,
    Gelu,
    GeluTanh,
    Silu,
    // f32 -> bool.
    IsNaN,
    IsInf,
    // bool -> bool.
    Not,
}

impl UnaryKind {
    fn is_numeric_generic(self) -> bool {
        matches!(self, Self::Neg | Self::Abs | Self::Sign)
    }
    fn to_bool(self) -> bool {
        matches!(self, Self::IsNaN | Self::IsInf)
    }
    fn math_fn(self) -> &'static str {
        match self {
            Self::Neg => "neg",
            Self::Abs => "abs",
            Self::Sign => "sign",
            Self::Sqrt => "sqrt",
            Self::Reciprocal => "reciprocal",
            Self::Exp => "exp",
            Self::Log => "log",
            Self::Erf => "erf",
            Self::Tanh => "tanh",
            Self::Sigmoid => "sigmoid",
            Self::Sin => "sin",
            Self::Cos => "cos",
            Self::Tan => "tan",
            Self::Asin => "asin",
            Self::Acos => "acos",
            Self::Atan => "atan",
            Self::Sinh => "sinh",
            Self::Cosh => "cosh",
            Self::Asinh => "asinh",
            Self::Acosh => "acosh",
            Self::Atanh => "atanh",
            Self::Floor => "floor",
            Self::Ceil => "ceil",
            Self::Round => "round",
            Self::Relu => "relu",
            Self::Softplus => "softplus",
            Self::Softsign => "softsign",
            Self::Gelu => "gelu",
            Self::GeluTanh => "gelu_tanh",
            Self::Silu => "silu",
            Self::IsNaN => "is_nan",
            Self::IsInf => "is_inf",
            Self::Not => "not",
        }
    }
    fn f32_fn(self) -> fn(f32) -> f32 {
        match self {
            Self::Sqrt => math::sqrt,
            Self::Reciprocal => math::reciprocal,
            Self::Exp => math::exp,
            Self::Log => math::log,
            Self::Erf => math::erf,
            Self::Tanh => math::tanh,
            Self::Sigmoid => math::sigmoid,
            Self::Sin => math::sin,
            Self::Cos => math::cos,
            Self::Tan => math::tan,
            Self::Asin => math::asin,
            Self::Acos => math::acos,
            Self::Atan => math::atan,
            Self::Sinh => math::sinh,
            Self::Cosh => math::cosh,
            Self::Asinh => math::asinh,
            Self::Acosh => math::acosh,
            Self::Atanh => math::atanh,
            Self::Floor => math::floor,
            Self::Ceil => math::ceil,
            Self::Round => math::round,
            Self::Relu => math::relu,
            Self::Softplus => math::softplus,
            Self::Softsign => math::softsign,
            Self::Gelu => math::gelu,
            Self::GeluTanh => math::gelu_tanh,
            Self::Silu => math::silu,
            Self::Neg => math::neg::<f32>,
            Self::Abs => math::abs::<f32>,
            Self::Sign => math::sign::<f32>,
            Self::IsNaN | Self::IsInf | Self::Not => math::identity::<f32>,
        }
    }
}

/// `out[i] = f(x[i])`. Neg/Abs/Sign take any numeric type, Not takes bool, IsNaN/IsInf map
/// f32 to bool, everything else is f32 → f32.
#[derive(Debug, Clone, PartialEq)]
pub struct Unary {
    pub kind: UnaryKind,
}

impl OpDef for Unary {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        expect_inputs(inputs, 1, 1)?;
        let x = inputs[0];
        let ok = match self.kind {
            UnaryKind::Not => x.dtype == DType::Bool,
            k if k.is_numeric_generic() => x.dtype != DType::Bool,
            _ => x.dtype == DType::F32,
        };
        if !ok {
            if x.dtype == DType::F64 {
                return unsupported!("{:?} on f64 tensors", self.kind);
            }
            return invalid!("{:?} does not take {} tensors", self.kind, x.dtype);
        }
        let dtype = if self.kind.to_bool() {
            DType::Bool
        } else {
            x.dtype
        };
        Ok(vec![TensorType::new(dtype, x.shape.clone())])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let x = inputs[0];
        let mut out = util::zeros(&outputs[0])?;
        match self.kind {
            UnaryKind::Not => elementwise::unary(
                util::data::<u8>(x)?,
                util::data_mut::<u8>(&mut out)?,
                math::not,
            ),
            UnaryKind::IsNaN => elementwise::unary(
                util::data::<f32>(x)?,
                util::data_mut::<u8>(&mut out)?,
                math::is_nan,
            ),
            UnaryKind::IsInf => elementwise::unary(
                util::data::<f32>(x)?,
                util::data_mut::<u8>(&mut out)?,
                math::is_inf,
            ),
            k if k.is_numeric_generic() => for_dtype!(x.ty.dtype, T => {
                let f: fn(T) -> T = match k {
                    UnaryKind::Neg => math::neg::<T>,
                    UnaryKind::Abs => math::abs::<T>,
                    _ => math::sign::<T>,
                };
                elementwise::unary(util::data::<T>(x)?, util::data_mut::<T>(&mut out)?, f)
            }),
            k => elementwise::unary(
                util::data::<f32>(x)?,
                util::data_mut::<f32>(&mut out)?,
                k.f32_fn(),
            ),
        }
        Ok(vec![out])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        let f = format_ident!("{}", self.kind.math_fn());
        let func = if self.kind.is_numeric_generic() {
            let t = storage_ty(ctx.inputs[0].dtype);
            quote!(rt::math::#f::<#t>)
        } else {
            quote!(rt::math::#f)
        };
        let (x, o) = (ctx.input(0), ctx.output(0));
        Ok(quote! { rt::kernels::elementwise::unary(#x, #o, #func); })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![("kind", format!("{:?}", self.kind))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relu_and_neg_on_ints() {
        let x = Tensor::from_f32s(vec![3], vec![-1.0, 0.0, 2.0]).unwrap();
        let op = Unary {
            kind: UnaryKind::Relu,
        };
        let ty = op.infer(&[&x.ty]).unwrap();
        assert_eq!(
            op.eval(&[&x], &ty).unwrap()[0].data.to_f64_vec(),
            vec![0.0, 0.0, 2.0]
        );
        let i = Tensor::from_i64s(vec![2], vec![3, -4]).unwrap();
        let neg = Unary {
            kind: UnaryKind::Neg,
        };
        let ty = neg.infer(&[&i.ty]).unwrap();
        assert_eq!(
            neg.eval(&[&i], &ty).unwrap()[0].data.to_f64_vec(),
            vec![-3.0, 4.0]
        );
        assert!(
            Unary {
                kind: UnaryKind::Exp
            }
            .infer(&[&i.ty])
            .is_err()
        );
    }
}
