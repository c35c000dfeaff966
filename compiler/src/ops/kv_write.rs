//! `KvWrite`: store a decode step's new keys or values into their slots of a KV cache held
//! as model state. Made by the stateful-decoder rewrite (`crate::stateful`), never by a
//! frontend constructor directly.
use super::OpDef;
use super::util::{self, EmitCtx, expect_inputs, lit_usize, product};
use crate::error::OpError;
use crate::ir::{DType, Tensor, TensorType};
use crate::{for_dtype, invalid};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::kv_cache;

/// `out = cache` with `out[.., position + j, ..] = new[.., j, ..]` along `axis`.
/// Inputs: `cache` (`[.., slots, ..]`), `new` (same shape but `n` along `axis`), `position`
/// (one i64/i32 element). The output has the cache's type and is written in place into
/// the cache (input 0): the planner gives both the same state buffer, so a step never
/// copies the cache. Slots outside the cache are a run-time error.
#[derive(Debug, Clone, PartialEq)]
pub struct KvWrite {
    pub axis: usize,
}

impl KvWrite {
    /// `(outer, slots, inner)` of the cache.
    fn dims(&self, cache: &[usize]) -> (usize, usize, usize) {
        (
            product(&cache[..self.axis]),
            cache[self.axis],
            product(&cache[self.axis + 1..]),
        )
    }
}

impl OpDef for KvWrite {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        expect_inputs(inputs, 3, 3)?;
        let (cache, new, position) = (inputs[0], inputs[1], inputs[2]);
        if self.axis >= cache.rank() {
            return invalid!("axis {} out of range for rank {}", self.axis, cache.rank());
        }
        if new.dtype != cache.dtype || new.rank() != cache.rank() {
            return invalid!("new entries {new} do not fit cache {cache}");
        }
        let other = (0..cache.rank()).find(|&d| d != self.axis && new.shape[d] != cache.shape[d]);
        if other.is_some() || new.shape[self.axis] > cache.shape[self.axis] {
            return invalid!("new entries {new} do not fit cache {cache}");
        }
        if !matches!(position.dtype, DType::I64 | DType::I32) || position.numel() != 1 {
            return invalid!("position must be one int64/int32 element, got {position}");
        }
        crate::ir::checked_numel(&cache.shape)?;
        Ok(vec![cache.clone()])
    }

    fn eval(&self, inputs: &[&Tensor], _outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let (outer, slots, inner) = self.dims(&inputs[0].ty.shape);
        let position = inputs[2].data.to_f64_vec().first().copied().unwrap_or(-1.0) as i64;
        let mut out = inputs[0].clone();
        let result = for_dtype!(out.ty.dtype, T => {
            let new = util::data::<T>(inputs[1])?;
            kv_cache::write_slots(util::data_mut::<T>(&mut out)?, new, outer, slots, inner, position)
        });
        result.map_err(|e| {
            OpError::Invalid(format!(
                "cache position {} out of range for {} slots",
                e.index, e.bound
            ))
        })?;
        Ok(vec![out])
    }

    /// Writes only `o0` (which is the cache itself: see [`OpDef::in_place_input`]).
    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        let (outer, slots, inner) = self.dims(&ctx.inputs[0].shape);
        let (outer, slots, inner) = (lit_usize(outer), lit_usize(slots), lit_usize(inner));
        let (new, position, o, name) = (ctx.input(1), ctx.input(2), ctx.output(0), ctx.name_lit());
        Ok(quote! {
            rt::kernels::kv_cache::write_slots(#o, #new, #outer, #slots, #inner, #position[0] as i64).map_err(|e| e.at(#name))?;
        })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![("axis", self.axis.to_string())]
    }

    fn in_place_input(&self) -> Option<usize> {
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_slot_and_checks_the_position() {
        let cache = Tensor::from_f32s(vec![1, 2, 3, 1], vec![0.0; 6]).unwrap();
        let new = Tensor::from_f32s(vec![1, 2, 1, 1], vec![5.0, 6.0]).unwrap();
        let pos = Tensor::from_i64s(vec![1, 1], vec![2]).unwrap();
        let op = KvWrite { axis: 2 };
        let ty = op.infer(&[&cache.ty, &new.ty, &pos.ty]).unwrap();
        assert_eq!(ty[0], cache.ty);
        let out = op.eval(&[&cache, &new, &pos], &ty).unwrap();
        assert_eq!(out[0].data.to_f64_vec(), vec![0.0, 0.0, 5.0, 0.0, 0.0, 6.0]);
        let far = Tensor::from_i64s(vec![1], vec![3]).unwrap();
        assert!(op.eval(&[&cache, &new, &far], &ty).is_err());
        let wide = TensorType::new(DType::F32, vec![1, 3, 1, 1]);
        assert!(op.infer(&[&cache.ty, &wide, &pos.ty]).is_err());
    }
}
