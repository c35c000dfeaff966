//! `CumSum`: running sum along one axis (ONNX CumSum).
use super::OpDef;
use super::util::{self, EmitCtx, expect_inputs, lit_usize, split_at_axis};
use crate::error::OpError;
use crate::ir::{DType, Tensor, TensorType};
use crate::{for_dtype, invalid};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::cumsum;

/// Running sum of `x` along `axis` (`< rank`, normalised by the frontend from ONNX's axis
/// input); `exclusive` leaves out the current element, `reverse` sums from the end.
/// Numeric dtypes; integers wrap.
#[derive(Debug, Clone, PartialEq)]
pub struct CumSum {
    pub axis: usize,
    pub exclusive: bool,
    pub reverse: bool,
}

impl OpDef for CumSum {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        expect_inputs(inputs, 1, 1)?;
        let x = inputs[0];
        if x.dtype == DType::Bool {
            return invalid!("CumSum needs a numeric input, got bool");
        }
        if self.axis >= x.rank() {
            return invalid!("axis {} out of range for rank {}", self.axis, x.rank());
        }
        crate::ir::checked_numel(&x.shape)?;
        Ok(vec![x.clone()])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let x = inputs[0];
        let mut out = util::zeros(&outputs[0])?;
        let (outer, len, inner) = split_at_axis(&x.ty.shape, self.axis);
        for_dtype!(x.ty.dtype, T => {
            let (src, dst) = (util::data::<T>(x)?, util::data_mut::<T>(&mut out)?);
            cumsum::cumsum(src, dst, outer, len, inner, self.exclusive, self.reverse)
        });
        Ok(vec![out])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        if ctx.outputs[0].numel() == 0 {
            return Ok(TokenStream::new());
        }
        let (outer, len, inner) = split_at_axis(&ctx.inputs[0].shape, self.axis);
        let (outer, len, inner) = (lit_usize(outer), lit_usize(len), lit_usize(inner));
        let (x, o, exclusive, reverse) =
            (ctx.input(0), ctx.output(0), self.exclusive, self.reverse);
        Ok(
            quote! { rt::kernels::cumsum::cumsum(#x, #o, #outer, #len, #inner, #exclusive, #reverse); },
        )
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("axis", self.axis.to_string()),
            ("exclusive", self.exclusive.to_string()),
            ("reverse", self.reverse.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_rows_and_columns() {
        // [[1,2,3],[4,5,6]]
        let x = Tensor::from_i64s(vec![2, 3], vec![1, 2, 3, 4, 5, 6]).unwrap();
        let op = CumSum {
            axis: 1,
            exclusive: false,
            reverse: false,
        };
        let ty = op.infer(&[&x.ty]).unwrap();
        assert_eq!(
            op.eval(&[&x], &ty).unwrap()[0].data.to_f64_vec(),
            vec![1.0, 3.0, 6.0, 4.0, 9.0, 15.0]
        );
        // Exclusive reverse down the columns: row 0 gets row 1, row 1 gets 0.
        let op = CumSum {
            axis: 0,
            exclusive: true,
            reverse: true,
        };
        assert_eq!(
            op.eval(&[&x], &ty).unwrap()[0].data.to_f64_vec(),
            vec![4.0, 5.0, 6.0, 0.0, 0.0, 0.0]
        );
    }

    #[test]
    fn rejects_bad_axis() {
        let x = TensorType::new(DType::F32, vec![2, 3]);
        assert!(
            CumSum {
                axis: 2,
                exclusive: false,
                reverse: false
            }
            .infer(&[&x])
            .is_err()
        );
    }
}
