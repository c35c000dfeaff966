//! `Slice`: strided sub-tensor with ONNX clamping rules (ONNX Slice).
use super::OpDef;
use super::util::{self, EmitCtx, coalesce, contiguous_strides, expect_inputs};
use crate::error::OpError;
use crate::ir::{Tensor, TensorType};
use crate::{invalid, unsupported};
use proc_macro2::TokenStream;

/// Raw ONNX Slice parameters: `starts`, `ends`, `axes` and `steps` have one entry per sliced
/// axis; axes are already normalised to `0..rank` and unique, steps are non-zero. Starts and
/// ends are as in the model (negative counts from the end, huge values clamp); axes not
/// listed are taken whole. Any dtype.
#[derive(Debug, Clone, PartialEq)]
pub struct Slice {
    pub starts: Vec<i64>,
    pub ends: Vec<i64>,
    pub axes: Vec<usize>,
    pub steps: Vec<i64>,
}

/// Strided copy parameters: source offset, coalesced output shape and source strides.
struct Plan {
    offset: isize,
    shape: Vec<usize>,
    strides: Vec<isize>,
}

impl Slice {
    /// `(start, step, len)` for every axis of `shape`, with ONNX's clamping: negative starts
    /// and ends add the dim; for step > 0 both clamp to `[0, dim]`, for step < 0 the start
    /// clamps to `[0, dim - 1]` and the end to `[-1, dim - 1]`; the length is
    /// `max(0, ceil((end - start) / step))`. A start is only a valid index when `len > 0`.
    pub fn resolve(&self, shape: &[usize]) -> Result<Vec<(i64, i64, usize)>, OpError> {
        let n = self.axes.len();
        if self.starts.len() != n || self.ends.len() != n || self.steps.len() != n {
            return invalid!(
                "starts, ends, axes and steps have different lengths ({}, {}, {n}, {})",
                self.starts.len(),
                self.ends.len(),
                self.steps.len()
            );
        }
        let mut out: Vec<(i64, i64, usize)> = shape.iter().map(|&d| (0, 1, d)).collect();
        let mut seen = vec![false; shape.len()];
        for k in 0..n {
            let axis = self.axes[k];
            match seen.get_mut(axis) {
                Some(s) if !*s => *s = true,
                Some(_) => return invalid!("axis {axis} is sliced twice"),
                None => return invalid!("axis {axis} out of range for rank {}", shape.len()),
            }
            let step = self.steps[k];
            if step == 0 {
                return invalid!("step on axis {axis} is zero");
            }
            let dim = shape[axis] as i128;
            let wrap = |v: i64| if v < 0 { v as i128 + dim } else { v as i128 };
            let (mut start, mut end) = (wrap(self.starts[k]), wrap(self.ends[k]));
            let step_w = step as i128;
            let len = if step > 0 {
                start = start.clamp(0, dim);
                end = end.clamp(0, dim);
                if end > start {
                    (end - start + step_w - 1) / step_w
                } else {
                    0
                }
            } else {
                start = start.max(0).min(dim - 1);
                end = end.max(-1).min(dim - 1);
                if start > end {
                    (start - end - step_w - 1) / -step_w
                } else {
                    0
                }
            };
            // start lies in [-1, dim] and len in [0, dim], so both conversions succeed.
            let start = i64::try_from(start)
                .map_err(|_| OpError::Invalid(format!("slice start overflows on axis {axis}")))?;
            let len = usize::try_from(len)
                .map_err(|_| OpError::Invalid(format!("slice length overflows on axis {axis}")))?;
            out[axis] = (start, step, len);
        }
        Ok(out)
    }

    /// The strided copy; only meaningful for a non-empty output.
    fn plan(&self, shape: &[usize]) -> Result<Plan, OpError> {
        let own = contiguous_strides(shape);
        let mut offset: i128 = 0;
        let mut out_shape = Vec::with_capacity(shape.len());
        let mut strides = Vec::with_capacity(shape.len());
        for ((start, step, len), &stride) in self.resolve(shape)?.into_iter().zip(&own) {
            offset += start as i128 * stride as i128;
            out_shape.push(len);
            // With len <= 1 the stride is never applied; otherwise |step| < dim keeps it small.
            let s = if len <= 1 {
                0
            } else {
                step as i128 * stride as i128
            };
            strides.push(
                isize::try_from(s)
                    .map_err(|_| OpError::Invalid("slice stride overflows".into()))?,
            );
        }
        let offset = isize::try_from(offset)
            .map_err(|_| OpError::Invalid("slice offset overflows".into()))?;
        let (shape, mut strides) = coalesce(&out_shape, &[strides]);
        Ok(Plan {
            offset,
            shape,
            strides: strides.pop().unwrap_or_default(),
        })
    }
}

impl OpDef for Slice {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        expect_inputs(inputs, 1, 1)?;
        let x = inputs[0];
        crate::ir::checked_numel(&x.shape)?;
        let shape: Vec<usize> = self
            .resolve(&x.shape)?
            .iter()
            .map(|&(_, _, len)| len)
            .collect();
        if crate::ir::checked_numel(&shape)? > 0 {
            let plan = self.plan(&x.shape)?;
            if plan.shape.len() > runtime_core::MAX_RANK {
                return unsupported!(
                    "slice walking {} axes (at most {})",
                    plan.shape.len(),
                    runtime_core::MAX_RANK
                );
            }
        }
        Ok(vec![TensorType::new(x.dtype, shape)])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        if outputs[0].numel() == 0 {
            return Ok(vec![util::zeros(&outputs[0])?]);
        }
        let plan = self.plan(&inputs[0].ty.shape)?;
        util::eval_strided_copy(
            inputs[0],
            &outputs[0],
            plan.offset,
            &plan.strides,
            &plan.shape,
        )
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        if ctx.outputs[0].numel() == 0 {
            return Ok(TokenStream::new());
        }
        let plan = self.plan(&ctx.inputs[0].shape)?;
        Ok(util::emit_strided_copy(
            ctx,
            plan.offset,
            &plan.strides,
            &plan.shape,
        ))
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        let list = |v: String| v.replace(' ', "");
        vec![
            ("starts", list(format!("{:?}", self.starts))),
            ("ends", list(format!("{:?}", self.ends))),
            ("axes", list(format!("{:?}", self.axes))),
            ("steps", list(format!("{:?}", self.steps))),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::DType;

    fn slice(starts: &[i64], ends: &[i64], axes: &[usize], steps: &[i64]) -> Slice {
        Slice {
            starts: starts.to_vec(),
            ends: ends.to_vec(),
            axes: axes.to_vec(),
            steps: steps.to_vec(),
        }
    }

    #[test]
    fn resolves_onnx_clamping() {
        let dim = [10];
        // [2:i64::MAX] -> 2..10
        assert_eq!(
            slice(&[2], &[i64::MAX], &[0], &[1]).resolve(&dim).unwrap(),
            vec![(2, 1, 8)]
        );
        // [-3:-1] -> 7..9
        assert_eq!(
            slice(&[-3], &[-1], &[0], &[1]).resolve(&dim).unwrap(),
            vec![(7, 1, 2)]
        );
        // Full reverse [::-1] as ONNX writes it: start -1, end i64::MIN -> 9 down to 0.
        assert_eq!(
            slice(&[-1], &[i64::MIN], &[0], &[-1])
                .resolve(&dim)
                .unwrap(),
            vec![(9, -1, 10)]
        );
        // [i64::MAX:0:-3] -> start clamps to 9: 9, 6, 3 (0 excluded).
        assert_eq!(
            slice(&[i64::MAX], &[0], &[0], &[-3]).resolve(&dim).unwrap(),
            vec![(9, -3, 3)]
        );
        // [1:8:3] -> 1, 4, 7; an empty range gives length 0.
        assert_eq!(
            slice(&[1], &[8], &[0], &[3]).resolve(&dim).unwrap(),
            vec![(1, 3, 3)]
        );
        assert_eq!(slice(&[5], &[2], &[0], &[1]).resolve(&dim).unwrap()[0].2, 0);
        // A zero-length axis with a negative step stays empty.
        assert_eq!(
            slice(&[0], &[-10], &[0], &[-1]).resolve(&[0]).unwrap()[0].2,
            0
        );
    }

    #[test]
    fn slices_rows_and_reverses_columns() {
        // x = [[1,2,3],[4,5,6],[7,8,9]]; rows 1.., columns reversed with step 2 -> [[6,4],[9,7]]
        let x = Tensor::from_i64s(vec![3, 3], (1..=9).collect()).unwrap();
        let op = slice(&[1, -1], &[i64::MAX, i64::MIN], &[0, 1], &[1, -2]);
        let ty = op.infer(&[&x.ty]).unwrap();
        assert_eq!(ty[0].shape, vec![2, 2]);
        assert_eq!(
            op.eval(&[&x], &ty).unwrap()[0].data.to_f64_vec(),
            vec![6.0, 4.0, 9.0, 7.0]
        );
    }

    #[test]
    fn rejects_bad_parameters() {
        let x = TensorType::new(DType::F32, vec![4]);
        assert!(slice(&[0], &[1], &[1], &[1]).infer(&[&x]).is_err());
        assert!(slice(&[0], &[1], &[0], &[0]).infer(&[&x]).is_err());
        assert!(
            slice(&[0, 0], &[1, 1], &[0, 0], &[1, 1])
                .infer(&[&x])
                .is_err()
        );
        assert!(slice(&[0], &[1, 2], &[0], &[1]).infer(&[&x]).is_err());
    }
}
