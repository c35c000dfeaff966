//! `Elementwise`: a chain of f32 elementwise maps evaluated per element in one loop (made by
//! the pass `fuse_elementwise` from runs of `Unary`/`Binary` nodes).
use super::OpDef;
use super::util::{
    self, EmitCtx, broadcast_shapes, broadcast_strides, coalesce, isize_slice, lit_float,
    usize_slice,
};
use crate::error::OpError;
use crate::invalid;
use crate::ir::{DType, Tensor, TensorType};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use runtime_core::kernels::elementwise::{
    self as kernel, FUSED_INPUTS, FusedBinary, FusedUnary, Instr, Src,
};

/// Inputs: 1..=`FUSED_INPUTS` f32 tensors that broadcast to `shape`. The output is
/// `program` evaluated per element of `shape` (`runtime_core::kernels::elementwise::fused`:
/// registers, inputs `Src::Input(k)`, immediate constants; the last instruction's register
/// is the result).
#[derive(Debug, Clone, PartialEq)]
pub struct Elementwise {
    pub shape: Vec<usize>,
    pub program: Vec<Instr>,
}

fn src_text(s: Src) -> String {
    match s {
        Src::Reg(r) => format!("r{r}"),
        Src::Input(k) => format!("i{k}"),
        Src::Const(c) => format!("{c:?}"),
    }
}

fn src_tokens(s: Src) -> TokenStream {
    match s {
        Src::Reg(r) => quote!(S::Reg(#r)),
        Src::Input(k) => quote!(S::Input(#k)),
        Src::Const(c) => {
            let l = lit_float(f64::from(c), DType::F32);
            quote!(S::Const(#l))
        }
    }
}

/// The program as text: `r0=Mul(i0,0.5); r1=Tanh(r0)`.
pub fn program_text(program: &[Instr]) -> String {
    let parts: Vec<String> = program
        .iter()
        .map(|i| match *i {
            Instr::Unary { f, dst, x } => format!("r{dst}={f:?}({})", src_text(x)),
            Instr::Binary { f, dst, a, b } => {
                format!("r{dst}={f:?}({},{})", src_text(a), src_text(b))
            }
        })
        .collect();
    parts.join("; ")
}

impl OpDef for Elementwise {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        if inputs.is_empty() || inputs.len() > FUSED_INPUTS {
            return invalid!(
                "Elementwise takes 1 to {FUSED_INPUTS} inputs, got {}",
                inputs.len()
            );
        }
        if let Some(t) = inputs.iter().find(|t| t.dtype != DType::F32) {
            return invalid!("Elementwise needs f32 operands, got {}", t.dtype);
        }
        if self.shape.len() > runtime_core::MAX_RANK {
            return invalid!("Elementwise output rank {} is too high", self.shape.len());
        }
        let mut shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape.as_slice()).collect();
        shapes.push(&self.shape);
        if broadcast_shapes(&shapes)? != self.shape {
            return invalid!("Elementwise inputs do not broadcast to {:?}", self.shape);
        }
        crate::ir::checked_numel(&self.shape)?;
        if let Err(e) = kernel::check_program(&self.program, inputs.len()) {
            return invalid!("Elementwise program {e:?}: {}", program_text(&self.program));
        }
        Ok(vec![TensorType::new(DType::F32, self.shape.clone())])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let shape = &outputs[0].shape;
        let mut data = Vec::with_capacity(inputs.len());
        let mut strides = Vec::with_capacity(inputs.len());
        for t in inputs {
            data.push(util::data::<f32>(t)?);
            strides.push(broadcast_strides(&t.ty.shape, shape));
        }
        let strides: Vec<&[isize]> = strides.iter().map(Vec::as_slice).collect();
        let mut out = util::zeros(&outputs[0])?;
        kernel::fused(
            &data,
            &strides,
            util::data_mut::<f32>(&mut out)?,
            shape,
            &self.program,
        );
        Ok(vec![out])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        let shape = &ctx.outputs[0].shape;
        let s: Vec<Vec<isize>> = ctx
            .inputs
            .iter()
            .map(|t| broadcast_strides(&t.shape, shape))
            .collect();
        let (shape, s) = coalesce(shape, &s);
        let shape = usize_slice(&shape);
        let strides = s.iter().map(|s| isize_slice(s));
        let ins = (0..ctx.inputs.len()).map(|k| ctx.input(k));
        let o = ctx.output(0);
        let program = self.program.iter().map(|i| match *i {
            Instr::Unary { f, dst, x } => {
                let f = format_ident!("{f:?}");
                let x = src_tokens(x);
                quote!(I::Unary { f: U::#f, dst: #dst, x: #x })
            }
            Instr::Binary { f, dst, a, b } => {
                let f = format_ident!("{f:?}");
                let (a, b) = (src_tokens(a), src_tokens(b));
                quote!(I::Binary { f: B::#f, dst: #dst, a: #a, b: #b })
            }
        });
        // Only the aliases the program names: generated crates build without warnings.
        let mut aliases = Vec::new();
        if self
            .program
            .iter()
            .any(|i| matches!(i, Instr::Binary { .. }))
        {
            aliases.push(quote!(FusedBinary as B));
        }
        if self
            .program
            .iter()
            .any(|i| matches!(i, Instr::Unary { .. }))
        {
            aliases.push(quote!(FusedUnary as U));
        }
        Ok(quote! {
            use rt::kernels::elementwise::{#(#aliases,)* Instr as I, Src as S};
            const PROGRAM: &[I] = &[#(#program),*];
            rt::kernels::elementwise::fused(&[#(#ins),*], &[#(#strides),*], #o, #shape, PROGRAM);
        })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![("program", program_text(&self.program))]
    }
}

/// The fused-kernel function for an IR `Unary` kind, if it has one.
pub fn fused_unary(kind: super::unary::UnaryKind) -> Option<FusedUnary> {
    use super::unary::UnaryKind as K;
    Some(match kind {
        K::Neg => FusedUnary::Neg,
        K::Abs => FusedUnary::Abs,
        K::Sqrt => FusedUnary::Sqrt,
        K::Reciprocal => FusedUnary::Reciprocal,
        K::Exp => FusedUnary::Exp,
        K::Log => FusedUnary::Log,
        K::Erf => FusedUnary::Erf,
        K::Tanh => FusedUnary::Tanh,
        K::Sigmoid => FusedUnary::Sigmoid,
        K::Relu => FusedUnary::Relu,
        K::Gelu => FusedUnary::Gelu,
        K::GeluTanh => FusedUnary::GeluTanh,
        K::Silu => FusedUnary::Silu,
        _ => return None,
    })
}

/// The fused-kernel function for an IR `Binary` kind, if it has one.
pub fn fused_binary(kind: super::binary::BinaryKind) -> Option<FusedBinary> {
    use super::binary::BinaryKind as K;
    Some(match kind {
        K::Add => FusedBinary::Add,
        K::Sub => FusedBinary::Sub,
        K::Mul => FusedBinary::Mul,
        K::Div => FusedBinary::Div,
        K::Max => FusedBinary::Max,
        K::Min => FusedBinary::Min,
        K::Pow => FusedBinary::Pow,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(program: Vec<Instr>) -> Elementwise {
        Elementwise {
            shape: vec![2, 3],
            program,
        }
    }

    #[test]
    fn evaluates_a_broadcast_chain() {
        // (x + row) · 2, then relu.
        let x = Tensor::from_f32s(vec![2, 3], vec![1.0, -2.0, 3.0, -4.0, 5.0, -6.0]).unwrap();
        let row = Tensor::from_f32s(vec![3], vec![1.0, 1.0, -10.0]).unwrap();
        let e = op(vec![
            Instr::Binary {
                f: FusedBinary::Add,
                dst: 0,
                a: Src::Input(0),
                b: Src::Input(1),
            },
            Instr::Binary {
                f: FusedBinary::Mul,
                dst: 1,
                a: Src::Reg(0),
                b: Src::Const(2.0),
            },
            Instr::Unary {
                f: FusedUnary::Relu,
                dst: 1,
                x: Src::Reg(1),
            },
        ]);
        let ty = e.infer(&[&x.ty, &row.ty]).unwrap();
        let out = e.eval(&[&x, &row], &ty).unwrap();
        assert_eq!(
            out[0].data.to_f64_vec(),
            vec![4.0, 0.0, 0.0, 0.0, 12.0, 0.0]
        );
        assert_eq!(
            program_text(&e.program),
            "r0=Add(i0,i1); r1=Mul(r0,2.0); r1=Relu(r1)"
        );
    }

    #[test]
    fn invalid_programs_and_shapes_are_errors() {
        let x = TensorType::new(DType::F32, vec![2, 3]);
        let unwritten = op(vec![Instr::Unary {
            f: FusedUnary::Neg,
            dst: 0,
            x: Src::Reg(3),
        }]);
        assert!(unwritten.infer(&[&x]).is_err());
        let far = op(vec![Instr::Unary {
            f: FusedUnary::Neg,
            dst: kernel::FUSED_REGS as u8,
            x: Src::Input(0),
        }]);
        assert!(far.infer(&[&x]).is_err());
        let ok = op(vec![Instr::Unary {
            f: FusedUnary::Neg,
            dst: 0,
            x: Src::Input(0),
        }]);
        assert!(ok.infer(&[&x]).is_ok());
        let wide = TensorType::new(DType::F32, vec![4, 3]);
        assert!(ok.infer(&[&wide]).is_err());
        let ints = TensorType::new(DType::I64, vec![2, 3]);
        assert!(ok.infer(&[&ints]).is_err());
    }
}
