//! `Reduce`: fold a tensor over a set of axes (ONNX ReduceSum, ReduceMean, ReduceMax,
//! ReduceMin, ReduceProd, ReduceSumSquare, ReduceL1, ReduceL2, ReduceLogSum,
//! ReduceLogSumExp).
use super::OpDef;
use super::util::{
    self, EmitCtx, coalesce, contiguous_strides, expect_inputs, isize_slice, lit_usize, usize_slice,
};
use crate::error::OpError;
use crate::ir::{DType, Tensor, TensorType};
use crate::{for_dtype, invalid, unsupported};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use runtime_core::kernels::reduce::ReduceKind;
use runtime_core::kernels::{layout, reduce};

/// Reduce `x` over `axes` (sorted, unique, each `< rank`). With `keepdims` reduced axes stay
/// as 1, otherwise they are dropped. Empty `axes` means no reduction at all: the output is
/// a copy of the input whatever the kind (ONNX `noop_with_empty_axes = 1`; the frontend
/// turns "empty axes, reduce everything" into the full axis list). Numeric dtypes only;
/// integer inputs of the log/sqrt kinds are computed through f64 and converted back.
#[derive(Debug, Clone, PartialEq)]
pub struct Reduce {
    pub kind: ReduceKind,
    pub axes: Vec<usize>,
    pub keepdims: bool,
}

/// What the kernel walks: `x`'s coalesced shape, the output strides in that index space
/// and the element count per output.
struct Plan {
    shape: Vec<usize>,
    out_strides: Vec<isize>,
    count: usize,
}

impl Reduce {
    fn plan(&self, shape: &[usize]) -> Plan {
        let mut kept = shape.to_vec();
        let mut count = 1usize;
        for &a in &self.axes {
            if let Some(d) = kept.get_mut(a) {
                count = count.saturating_mul(*d);
                *d = 1;
            }
        }
        let mut strides = contiguous_strides(&kept);
        for &a in &self.axes {
            if let Some(s) = strides.get_mut(a) {
                *s = 0;
            }
        }
        let (shape, mut strides) = coalesce(shape, &[strides]);
        Plan {
            shape,
            out_strides: strides.pop().unwrap_or_default(),
            count,
        }
    }
}

impl OpDef for Reduce {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        expect_inputs(inputs, 1, 1)?;
        let x = inputs[0];
        if x.dtype == DType::Bool {
            return invalid!("Reduce{:?} needs a numeric input, got bool", self.kind);
        }
        if !self.axes.windows(2).all(|w| w[0] < w[1]) {
            return invalid!("reduction axes {:?} must be sorted and unique", self.axes);
        }
        if let Some(&a) = self.axes.iter().find(|&&a| a >= x.rank()) {
            return invalid!("reduction axis {a} out of range for rank {}", x.rank());
        }
        crate::ir::checked_numel(&x.shape)?;
        let shape: Vec<usize> = if self.keepdims {
            x.shape
                .iter()
                .enumerate()
                .map(|(d, &n)| if self.axes.contains(&d) { 1 } else { n })
                .collect()
        } else {
            x.shape
                .iter()
                .enumerate()
                .filter(|(d, _)| !self.axes.contains(d))
                .map(|(_, &n)| n)
                .collect()
        };
        crate::ir::checked_numel(&shape)?;
        let plan = self.plan(&x.shape);
        if plan.shape.len() > runtime_core::MAX_RANK {
            return unsupported!(
                "reduction over {} non-mergeable axes (at most {})",
                plan.shape.len(),
                runtime_core::MAX_RANK
            );
        }
        Ok(vec![TensorType::new(x.dtype, shape)])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let x = inputs[0];
        let mut out = util::zeros(&outputs[0])?;
        if out.data.is_empty() {
            return Ok(vec![out]);
        }
        let plan = self.plan(&x.ty.shape);
        for_dtype!(x.ty.dtype, T => {
            let (src, dst) = (util::data::<T>(x)?, util::data_mut::<T>(&mut out)?);
            if self.axes.is_empty() {
                layout::copy(src, dst);
            } else {
                reduce::reduce(src, &plan.shape, dst, &plan.out_strides, plan.count, self.kind);
            }
        });
        Ok(vec![out])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        let (x, o) = (ctx.input(0), ctx.output(0));
        if ctx.outputs[0].numel() == 0 {
            return Ok(TokenStream::new());
        }
        if self.axes.is_empty() {
            return Ok(quote! { rt::kernels::layout::copy(#x, #o); });
        }
        let plan = self.plan(&ctx.inputs[0].shape);
        let (shape, strides, count) = (
            usize_slice(&plan.shape),
            isize_slice(&plan.out_strides),
            lit_usize(plan.count),
        );
        let kind = format_ident!("{}", format!("{:?}", self.kind));
        Ok(quote! {
            rt::kernels::reduce::reduce(#x, #shape, #o, #strides, #count, rt::kernels::reduce::ReduceKind::#kind);
        })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("kind", format!("{:?}", self.kind)),
            ("axes", format!("{:?}", self.axes).replace(' ', "")),
            ("keepdims", self.keepdims.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(op: &Reduce, x: &Tensor) -> (Vec<usize>, Vec<f64>) {
        let ty = op.infer(&[&x.ty]).unwrap();
        let out = op.eval(&[x], &ty).unwrap();
        (ty[0].shape.clone(), out[0].data.to_f64_vec())
    }

    #[test]
    fn sums_and_maxes_over_axes() {
        // x[2,3] = [[1,2,3],[4,5,6]]
        let x = Tensor::from_f32s(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let sum0 = Reduce {
            kind: ReduceKind::Sum,
            axes: vec![0],
            keepdims: false,
        };
        assert_eq!(run(&sum0, &x), (vec![3], vec![5.0, 7.0, 9.0]));
        let max1 = Reduce {
            kind: ReduceKind::Max,
            axes: vec![1],
            keepdims: true,
        };
        assert_eq!(run(&max1, &x), (vec![2, 1], vec![3.0, 6.0]));
        let mean_all = Reduce {
            kind: ReduceKind::Mean,
            axes: vec![0, 1],
            keepdims: false,
        };
        assert_eq!(run(&mean_all, &x), (vec![], vec![3.5]));
        let noop = Reduce {
            kind: ReduceKind::SumSquare,
            axes: vec![],
            keepdims: true,
        };
        assert_eq!(run(&noop, &x).1, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        // Middle axis of [2,2,2] on integers: pairs (0,2), (1,3), (4,6), (5,7) multiply.
        let i = Tensor::from_i64s(vec![2, 2, 2], vec![0, 1, 2, 3, 4, 5, 6, 7]).unwrap();
        let prod = Reduce {
            kind: ReduceKind::Prod,
            axes: vec![1],
            keepdims: false,
        };
        assert_eq!(run(&prod, &i), (vec![2, 2], vec![0.0, 3.0, 24.0, 35.0]));
    }

    #[test]
    fn rejects_bad_axes() {
        let x = TensorType::new(DType::F32, vec![2, 3]);
        assert!(
            Reduce {
                kind: ReduceKind::Sum,
                axes: vec![2],
                keepdims: true
            }
            .infer(&[&x])
            .is_err()
        );
        assert!(
            Reduce {
                kind: ReduceKind::Sum,
                axes: vec![1, 0],
                keepdims: true
            }
            .infer(&[&x])
            .is_err()
        );
        let b = TensorType::new(DType::Bool, vec![2]);
        assert!(
            Reduce {
                kind: ReduceKind::Sum,
                axes: vec![0],
                keepdims: true
            }
            .infer(&[&b])
            .is_err()
        );
    }
}
