//! `Einsum`: Einstein summation with labels resolved by the frontend (ONNX Einsum).
use super::OpDef;
use super::util::{self, EmitCtx, isize_slice, lit_usize, storage_ty, usize_slice};
use crate::error::OpError;
use crate::ir::{DType, Tensor, TensorType};
use crate::{for_dtype, invalid, unsupported};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::einsum::{self, MAX_LABELS};

/// Operand k's axis a carries label `operands[k][a]`; labels `0..output_rank` are the
/// output's axes in order, the rest are summed; `sizes[l]` is label l's extent (an operand
/// axis of size 1 broadcasts). One numeric non-bool dtype.
#[derive(Debug, Clone, PartialEq)]
pub struct Einsum {
    pub operands: Vec<Vec<usize>>,
    pub output_rank: usize,
    pub sizes: Vec<usize>,
}

impl Einsum {
    /// Per operand, one stride per label (summing repeated labels: a diagonal).
    fn strides(&self, shapes: &[&[usize]]) -> Vec<Vec<isize>> {
        self.operands
            .iter()
            .zip(shapes)
            .map(|(labels, shape)| {
                let contiguous = util::contiguous_strides(shape);
                let mut s = vec![0isize; self.sizes.len()];
                for (a, &l) in labels.iter().enumerate() {
                    if shape[a] == self.sizes[l] {
                        s[l] += contiguous[a];
                    }
                }
                s
            })
            .collect()
    }
}

impl OpDef for Einsum {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        if inputs.len() != self.operands.len() || inputs.is_empty() {
            return invalid!(
                "{} inputs for {} operands",
                inputs.len(),
                self.operands.len()
            );
        }
        let dtype = inputs[0].dtype;
        if dtype == DType::Bool {
            return invalid!("Einsum of bool");
        }
        if self.sizes.len() > MAX_LABELS || self.output_rank > self.sizes.len() {
            return unsupported!(
                "Einsum with {} labels (at most {MAX_LABELS})",
                self.sizes.len()
            );
        }
        for (x, labels) in inputs.iter().zip(&self.operands) {
            if x.dtype != dtype || x.rank() != labels.len() {
                return invalid!("operand {x} does not fit labels {labels:?}");
            }
            for (&d, &l) in x.shape.iter().zip(labels) {
                if l >= self.sizes.len() || (d != self.sizes[l] && d != 1) {
                    return invalid!("operand {x} does not fit label sizes {:?}", self.sizes);
                }
            }
            crate::ir::checked_numel(&x.shape)?;
        }
        crate::ir::checked_numel(&self.sizes)?;
        Ok(vec![TensorType::new(
            dtype,
            self.sizes[..self.output_rank].to_vec(),
        )])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let mut out = util::zeros(&outputs[0])?;
        let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.ty.shape.as_slice()).collect();
        let strides = self.strides(&shapes);
        let stride_refs: Vec<&[isize]> = strides.iter().map(Vec::as_slice).collect();
        for_dtype!(inputs[0].ty.dtype, T => {
            let data = inputs.iter().map(|t| util::data::<T>(t)).collect::<Result<Vec<_>, _>>()?;
            einsum::einsum(&data, &stride_refs, &self.sizes, util::data_mut::<T>(&mut out)?, self.output_rank)
        });
        Ok(vec![out])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        let shapes: Vec<&[usize]> = ctx.inputs.iter().map(|t| t.shape.as_slice()).collect();
        let strides = self
            .strides(&shapes)
            .iter()
            .map(|s| isize_slice(s))
            .collect::<Vec<_>>();
        let ins = (0..ctx.inputs.len()).map(|k| ctx.input(k));
        let (o, sizes, n) = (
            ctx.output(0),
            usize_slice(&self.sizes),
            lit_usize(self.output_rank),
        );
        let t = storage_ty(ctx.inputs[0].dtype);
        Ok(
            quote! { rt::kernels::einsum::einsum::<#t>(&[#(#ins),*], &[#(#strides),*], #sizes, #o, #n); },
        )
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("operands", format!("{:?}", self.operands).replace(' ', "")),
            ("output_rank", self.output_rank.to_string()),
            ("sizes", format!("{:?}", self.sizes).replace(' ', "")),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_by_labels() {
        // "ij->ji": output labels j=0, i=1; operand labels [i, j] = [1, 0].
        let x = Tensor::from_f32s(vec![2, 3], vec![1., 2., 3., 4., 5., 6.]).unwrap();
        let op = Einsum {
            operands: vec![vec![1, 0]],
            output_rank: 2,
            sizes: vec![3, 2],
        };
        let ty = op.infer(&[&x.ty]).unwrap();
        assert_eq!(ty[0].shape, vec![3, 2]);
        assert_eq!(
            op.eval(&[&x], &ty).unwrap()[0].data.to_f64_vec(),
            vec![1., 4., 2., 5., 3., 6.]
        );
        let wrong = TensorType::new(DType::F32, vec![4, 3]);
        assert!(op.infer(&[&wrong]).is_err());
    }
}
