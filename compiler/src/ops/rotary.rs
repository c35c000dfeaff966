//! `Rotary`: rotary position embedding, rotate-half form (made by the pass `fuse_rotary`
//! from the exported `x·cos + concat(-x2, x1)·sin` chain).
use super::OpDef;
use super::util::{self, EmitCtx, expect_inputs, lit_usize};
use crate::error::OpError;
use crate::invalid;
use crate::ir::{DType, Tensor, TensorType};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::rotary;

/// Inputs `[x, cos, sin]`, f32. `x: [..., d]` with `d` even; `cos` and `sin` have one shape
/// which, without its leading 1s, is a suffix of `x`'s shape (so row `r` of `x` reads row
/// `r % period` of them). Output: `x · cos + [-x[..., d/2..], x[..., ..d/2]] · sin`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rotary {}

/// `(d, period)` when the operands fit; see [`Rotary`].
pub fn geometry(
    x: &TensorType,
    cos: &TensorType,
    sin: &TensorType,
) -> Result<(usize, usize), OpError> {
    if [x, cos, sin].iter().any(|t| t.dtype != DType::F32) {
        return invalid!("Rotary is f32 only");
    }
    if cos.shape != sin.shape {
        return invalid!("cos {cos} and sin {sin} differ");
    }
    let d = x.shape.last().copied().unwrap_or(0);
    if d == 0 || d % 2 != 0 {
        return invalid!("the last axis of {x} must be even and non-empty");
    }
    let first = cos.shape.iter().position(|&n| n != 1).unwrap_or(cos.rank());
    let core = &cos.shape[first..];
    let suffix_ok = core.len() <= x.rank() && x.shape.ends_with(core) && cos.rank() <= x.rank();
    if !suffix_ok || cos.shape.last() != Some(&d) && cos.numel() != 0 {
        return invalid!("cos {cos} must broadcast to {x} as its trailing axes");
    }
    Ok((d, cos.numel() / d))
}

impl OpDef for Rotary {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        expect_inputs(inputs, 3, 3)?;
        geometry(inputs[0], inputs[1], inputs[2])?;
        Ok(vec![inputs[0].clone()])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let (d, period) = geometry(&inputs[0].ty, &inputs[1].ty, &inputs[2].ty)?;
        let mut out = util::zeros(&outputs[0])?;
        rotary::rotary_half(
            util::data::<f32>(inputs[0])?,
            util::data::<f32>(inputs[1])?,
            util::data::<f32>(inputs[2])?,
            util::data_mut::<f32>(&mut out)?,
            d,
            period,
        );
        Ok(vec![out])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        let (d, period) = geometry(&ctx.inputs[0], &ctx.inputs[1], &ctx.inputs[2])?;
        let (d, period) = (lit_usize(d), lit_usize(period));
        let (x, c, s, o) = (ctx.input(0), ctx.input(1), ctx.input(2), ctx.output(0));
        Ok(quote! { rt::kernels::rotary::rotary_half(#x, #c, #s, #o, #d, #period); })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_trailing_broadcast_only() {
        let f = |s: Vec<usize>| TensorType::new(DType::F32, s);
        let x = f(vec![1, 8, 3, 8]);
        assert_eq!(
            geometry(&x, &f(vec![1, 1, 3, 8]), &f(vec![1, 1, 3, 8])).unwrap(),
            (8, 3)
        );
        assert_eq!(geometry(&x, &f(vec![8]), &f(vec![8])).unwrap(), (8, 1));
        assert!(geometry(&x, &f(vec![1, 8, 1, 8]), &f(vec![1, 8, 1, 8])).is_err());
        assert!(geometry(&f(vec![2, 7]), &f(vec![7]), &f(vec![7])).is_err());
    }
}
