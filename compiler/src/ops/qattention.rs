//! `QAttention`: the multi-row `Attention` of int8 builds with both products on int8 dot
//! products (made by the pass `quantize_attention`; no ONNX op maps to it): Q per row, K per
//! key, V per column quantized symmetric at run time, the probabilities as u8.
use super::OpDef;
use super::attention::Attention;
use super::util::{self, EmitCtx, lit_usize};
use crate::error::OpError;
use crate::invalid;
use crate::ir::{DType, Tensor, TensorType};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::attention::Keys;
use runtime_core::kernels::qattention::{self, QAttentionSpec};

/// Inputs as `Attention` with keys transposed and no live length: `q: f32[..., sq, d]`,
/// `kt: f32[..., d, skv]`, then `mask` (when `base.mask`), then `v: f32[..., skv, dv]`.
/// Outputs: `f32[..., sq, dv]` and three scratch buffers planned in the arena (never read):
/// `i8` packed keys/values and quantized rows, `f32` scales and a score row, `i32` sums.
#[derive(Debug, Clone, PartialEq)]
pub struct QAttention {
    /// The float op it replaces (its `mask`, `scale`, `nan_to_zero`; `rows` and `tiles` are
    /// unused).
    pub base: Attention,
}

impl QAttention {
    fn spec(&self, inputs: &[&TensorType]) -> Result<(QAttentionSpec, Vec<usize>), OpError> {
        if self.base.key_rows || self.base.live_offset.is_some() {
            return invalid!("QAttention takes transposed keys and no live length");
        }
        let a = self.base.spec_of(inputs)?;
        debug_assert_eq!(a.keys, Keys::Transposed);
        let mut out_shape = inputs[0].shape.clone();
        if let Some(last) = out_shape.last_mut() {
            *last = a.dv;
        }
        Ok((
            QAttentionSpec {
                heads: a.heads,
                sq: a.sq,
                skv: a.skv,
                d: a.d,
                dv: a.dv,
                mask_head_stride: a.mask_head_stride,
                mask_row_stride: a.mask_row_stride,
                scale: a.scale,
                nan_to_zero: a.nan_to_zero,
            },
            out_shape,
        ))
    }
}

impl OpDef for QAttention {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        let (s, out_shape) = self.spec(inputs)?;
        crate::ir::checked_numel(&out_shape)?;
        Ok(vec![
            TensorType::new(DType::F32, out_shape),
            TensorType::new(DType::I8, vec![s.bytes_len()]),
            TensorType::new(DType::F32, vec![s.floats_len()]),
            TensorType::new(DType::I32, vec![s.ints_len()]),
        ])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let types: Vec<&TensorType> = inputs.iter().map(|t| &t.ty).collect();
        let (s, _) = self.spec(&types)?;
        let mut out = util::zeros(&outputs[0])?;
        let mut bytes = util::zeros(&outputs[1])?;
        let mut floats = util::zeros(&outputs[2])?;
        let mut ints = util::zeros(&outputs[3])?;
        let mask = if self.base.mask {
            Some(util::data::<f32>(inputs[2])?)
        } else {
            None
        };
        qattention::qattention(
            util::data::<f32>(inputs[0])?,
            util::data::<f32>(inputs[1])?,
            mask,
            util::data::<f32>(inputs[self.base.v_index()])?,
            util::data_mut::<f32>(&mut out)?,
            util::data_mut::<i8>(&mut bytes)?,
            util::data_mut::<f32>(&mut floats)?,
            util::data_mut::<i32>(&mut ints)?,
            &s,
        );
        Ok(vec![out, bytes, floats, ints])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        let types: Vec<&TensorType> = ctx.inputs.iter().collect();
        let (s, _) = self.spec(&types)?;
        let (heads, sq, skv, d, dv) = (
            lit_usize(s.heads),
            lit_usize(s.sq),
            lit_usize(s.skv),
            lit_usize(s.d),
            lit_usize(s.dv),
        );
        let (mhs, mrs) = (lit_usize(s.mask_head_stride), lit_usize(s.mask_row_stride));
        let nan = s.nan_to_zero;
        let scale = proc_macro2::Literal::f32_suffixed(s.scale);
        let (q, kt) = (ctx.input(0), ctx.input(1));
        let v = ctx.input(self.base.v_index());
        let mask = if self.base.mask {
            let m = ctx.input(2);
            quote!(Some(#m))
        } else {
            quote!(None)
        };
        let (o, bytes, floats, ints) = (ctx.output(0), ctx.output(1), ctx.output(2), ctx.output(3));
        Ok(quote! {
            rt::kernels::qattention::qattention(#q, #kt, #mask, #v, #o, #bytes, #floats, #ints,
                &rt::kernels::qattention::QAttentionSpec {
                    heads: #heads, sq: #sq, skv: #skv, d: #d, dv: #dv,
                    mask_head_stride: #mhs, mask_row_stride: #mrs, scale: #scale,
                    nan_to_zero: #nan,
                });
        })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("mask", self.base.mask.to_string()),
            ("scale", format!("{:?}", self.base.scale)),
            ("nan_to_zero", self.base.nan_to_zero.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime_core::kernels::gemm::Tiles;

    fn op(key_rows: bool) -> QAttention {
        QAttention {
            base: Attention {
                mask: false,
                scale: 0.5,
                nan_to_zero: false,
                rows: 4,
                tiles: Tiles {
                    mr: 4,
                    kc: 8,
                    mc: 8,
                },
                key_rows,
                live_offset: None,
            },
        }
    }

    #[test]
    fn infer_gives_the_output_and_the_scratch() {
        let q = TensorType::new(DType::F32, vec![2, 5, 8]);
        let kt = TensorType::new(DType::F32, vec![2, 8, 7]);
        let v = TensorType::new(DType::F32, vec![2, 7, 6]);
        let t = op(false).infer(&[&q, &kt, &v]).unwrap();
        assert_eq!(t[0], TensorType::new(DType::F32, vec![2, 5, 6]));
        assert_eq!(
            (t[1].dtype, t[2].dtype, t[3].dtype),
            (DType::I8, DType::F32, DType::I32)
        );
        let err = op(true).infer(&[&q, &kt, &v]).unwrap_err().to_string();
        assert!(err.contains("transposed keys"), "{err}");
        let bad = TensorType::new(DType::F32, vec![2, 9, 7]);
        assert!(op(false).infer(&[&q, &bad, &v]).is_err());
    }

    /// `eval` on a hand-checked case: one key, so every probability is 1 and the output is
    /// the value row, up to its i8 rounding (exact here: its largest entry is 127 steps).
    #[test]
    fn eval_with_one_key_returns_the_value_row() {
        let t = |shape: Vec<usize>, v: Vec<f32>| {
            Tensor::new(TensorType::new(DType::F32, shape), crate::ir::Data::F32(v)).unwrap()
        };
        let q = t(vec![1, 2, 2], vec![1.0, 2.0, -3.0, 0.5]);
        let kt = t(vec![1, 2, 1], vec![0.25, -1.0]);
        let v = t(vec![1, 1, 2], vec![1.27, -0.5]);
        let a = op(false);
        let types = a.infer(&[&q.ty, &kt.ty, &v.ty]).unwrap();
        let out = a.eval(&[&q, &kt, &v], &types).unwrap();
        let got = util::data::<f32>(&out[0]).unwrap();
        for (g, w) in got.iter().zip([1.27, -0.5, 1.27, -0.5]) {
            assert!((g - w).abs() < 0.006, "{got:?}");
        }
    }
}
