//! `Split`: cut a tensor into consecutive pieces along one axis (ONNX Split).
use super::OpDef;
use super::util::{self, EmitCtx, expect_inputs, lit_usize, product, usize_slice};
use crate::error::OpError;
use crate::ir::{Tensor, TensorType};
use crate::{for_dtype, invalid};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::layout;

/// One output per entry of `sizes`, output k taking the next `sizes[k]` elements along
/// `axis` (`< rank`). `sizes` is non-empty and sums to `x.shape[axis]`; zero sizes are
/// allowed. The frontend resolves ONNX's `split` input or `num_outputs` into `sizes`.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub axis: usize,
    pub sizes: Vec<usize>,
}

impl Split {
    fn blocks(&self, shape: &[usize]) -> (usize, Vec<usize>) {
        let axis = self.axis.min(shape.len());
        let inner = product(shape.get(axis + 1..).unwrap_or(&[]));
        (
            product(&shape[..axis]),
            self.sizes.iter().map(|&s| s * inner).collect(),
        )
    }
}

impl OpDef for Split {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        expect_inputs(inputs, 1, 1)?;
        let x = inputs[0];
        if self.axis >= x.rank() {
            return invalid!("axis {} out of range for rank {}", self.axis, x.rank());
        }
        if self.sizes.is_empty() {
            return invalid!("Split needs at least one output");
        }
        let total = self
            .sizes
            .iter()
            .try_fold(0usize, |acc, &s| acc.checked_add(s));
        if total != Some(x.shape[self.axis]) {
            return invalid!(
                "split sizes {:?} do not add up to axis {} of {x}",
                self.sizes,
                self.axis
            );
        }
        crate::ir::checked_numel(&x.shape)?;
        Ok(self
            .sizes
            .iter()
            .map(|&s| {
                let mut shape = x.shape.clone();
                shape[self.axis] = s;
                TensorType::new(x.dtype, shape)
            })
            .collect())
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let x = inputs[0];
        let mut outs = outputs
            .iter()
            .map(util::zeros)
            .collect::<Result<Vec<_>, _>>()?;
        if x.data.is_empty() {
            return Ok(outs);
        }
        let (outer, blocks) = self.blocks(&x.ty.shape);
        for_dtype!(x.ty.dtype, T => {
            let mut dsts = outs.iter_mut().map(util::data_mut::<T>).collect::<Result<Vec<_>, _>>()?;
            layout::split(util::data::<T>(x)?, &blocks, &mut dsts, outer);
        });
        Ok(outs)
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        if ctx.inputs[0].numel() == 0 {
            return Ok(TokenStream::new());
        }
        let (outer, blocks) = self.blocks(&ctx.inputs[0].shape);
        let outs = (0..ctx.outputs.len()).map(|i| ctx.output(i));
        let (x, blocks, outer) = (ctx.input(0), usize_slice(&blocks), lit_usize(outer));
        Ok(quote! { rt::kernels::layout::split(#x, #blocks, &mut [#(#outs),*], #outer); })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("axis", self.axis.to_string()),
            ("sizes", format!("{:?}", self.sizes).replace(' ', "")),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::DType;

    #[test]
    fn splits_columns_unevenly() {
        // [[1,2,3],[4,5,6]] split 2+1 on axis 1 = [[1,2],[4,5]] and [[3],[6]]
        let x = Tensor::from_i64s(vec![2, 3], vec![1, 2, 3, 4, 5, 6]).unwrap();
        let op = Split {
            axis: 1,
            sizes: vec![2, 1],
        };
        let ty = op.infer(&[&x.ty]).unwrap();
        assert_eq!(
            (ty[0].shape.clone(), ty[1].shape.clone()),
            (vec![2, 2], vec![2, 1])
        );
        let out = op.eval(&[&x], &ty).unwrap();
        assert_eq!(out[0].data.to_f64_vec(), vec![1.0, 2.0, 4.0, 5.0]);
        assert_eq!(out[1].data.to_f64_vec(), vec![3.0, 6.0]);
    }

    #[test]
    fn rejects_sizes_that_do_not_sum() {
        let x = TensorType::new(DType::F32, vec![2, 3]);
        assert!(
            Split {
                axis: 1,
                sizes: vec![2, 2]
            }
            .infer(&[&x])
            .is_err()
        );
        assert!(
            Split {
                axis: 2,
                sizes: vec![1]
            }
            .infer(&[&x])
            .is_err()
        );
        assert!(
            Split {
                axis: 0,
                sizes: vec![]
            }
            .infer(&[&x])
            .is_err()
        );
    }
}
