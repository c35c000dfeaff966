//! `QAttention`: the multi-row `Attention` of int8 builds with both products on int8 dot
//! products (made by the pass `quantize_attention`; no ONNX op maps to it): Q per row, K per
//! key, V per column quantized symmetric at run time, the probabilities as u8.
use super::OpDef;
use super::attention::Attention;
use super::util::{self, EmitCtx, contiguous_strides, lit_usize};
use crate::error::OpError;
use crate::ir::{DType, Tensor, TensorType};
use crate::{invalid, unsupported};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::attention::Keys;
use runtime_core::kernels::qattention::{self, Layout, QAttentionSpec};

/// Inputs as `Attention` with keys transposed and no live length: `q: f32[..., sq, d]`,
/// `kt: f32[..., d, skv]`, then `mask` (when `base.mask`), then `v: f32[..., skv, dv]`; each of
/// `q`, `kt`, `v` read through its permutation (`Transpose{perm}` of the stored input, which
/// the pass absorbed; empty: as stored), so the heads of a projection's `[..., seq, heads·d]`
/// output are read in place. Outputs: `f32[..., sq, dv]` permuted by `out_perm` (the transpose
/// that followed, absorbed; empty: none), and three scratch buffers planned in the arena (never
/// read): `i8` packed keys/values and quantized rows, `f32` scales and a score row, `i32` sums.
#[derive(Debug, Clone, PartialEq)]
pub struct QAttention {
    /// The float op it replaces (its `mask`, `scale`, `nan_to_zero`; `rows` and `tiles` are
    /// unused).
    pub base: Attention,
    pub q_perm: Vec<usize>,
    pub k_perm: Vec<usize>,
    pub v_perm: Vec<usize>,
    pub out_perm: Vec<usize>,
}

/// `shape` read through `perm` (empty: as stored): the logical shape and each logical axis's
/// element stride in the stored tensor.
fn permuted(shape: &[usize], perm: &[usize]) -> Result<(Vec<usize>, Vec<usize>), OpError> {
    let r = shape.len();
    let strides: Vec<usize> = contiguous_strides(shape)
        .iter()
        .map(|&s| s as usize)
        .collect();
    if perm.is_empty() {
        return Ok((shape.to_vec(), strides));
    }
    let mut seen = vec![false; r];
    for &p in perm {
        match seen.get_mut(p) {
            Some(s) if !*s => *s = true,
            _ => return invalid!("{perm:?} is not a permutation of {r} axes"),
        }
    }
    if perm.len() != r {
        return invalid!("{perm:?} is not a permutation of {r} axes");
    }
    Ok((
        perm.iter().map(|&p| shape[p]).collect(),
        perm.iter().map(|&p| strides[p]).collect(),
    ))
}

/// The kernel layout of a logical `[lead..., rows, cols]` operand with element `strides` whose
/// column stride is 1: the leading axes split as (all but the last, the last) — the first
/// part must flatten to one stride.
fn layout(shape: &[usize], strides: &[usize]) -> Result<Layout, OpError> {
    let r = shape.len();
    if r < 2 || (shape[r - 1] > 1 && strides[r - 1] != 1) {
        return unsupported!("an operand of shape {shape:?} with strides {strides:?}");
    }
    let n = r - 2;
    let stride = |i: usize| if shape[i] > 1 { strides[i] } else { 0 };
    let inner = if n > 0 { stride(n - 1) } else { 0 };
    let outer_axes: Vec<usize> = (0..n.saturating_sub(1)).filter(|&i| shape[i] > 1).collect();
    for w in outer_axes.windows(2) {
        if strides[w[0]] != strides[w[1]] * shape[w[1]] {
            return unsupported!(
                "the leading axes of {shape:?} (strides {strides:?}) do not flatten"
            );
        }
    }
    let outer = outer_axes.last().map_or(0, |&i| strides[i]);
    Ok(Layout {
        outer,
        inner,
        row: strides[n],
    })
}

impl QAttention {
    /// The float attention `base` on stored, contiguous operands.
    pub fn new(base: Attention) -> Self {
        QAttention {
            base,
            q_perm: vec![],
            k_perm: vec![],
            v_perm: vec![],
            out_perm: vec![],
        }
    }

    fn spec(&self, inputs: &[&TensorType]) -> Result<(QAttentionSpec, Vec<usize>), OpError> {
        if self.base.key_rows || self.base.live_offset.is_some() {
            return invalid!("QAttention takes transposed keys and no live length");
        }
        let vi = self.base.v_index();
        if inputs.len() <= vi {
            return invalid!("QAttention needs {} inputs", vi + 1);
        }
        let (qs, qst) = permuted(&inputs[0].shape, &self.q_perm)?;
        let (ks, kst) = permuted(&inputs[1].shape, &self.k_perm)?;
        let (vs, vst) = permuted(&inputs[vi].shape, &self.v_perm)?;
        let logical = |t: &TensorType, shape: Vec<usize>| TensorType::new(t.dtype, shape);
        let (lq, lk, lv) = (
            logical(inputs[0], qs.clone()),
            logical(inputs[1], ks.clone()),
            logical(inputs[vi], vs.clone()),
        );
        let mut types = inputs.to_vec();
        (types[0], types[1], types[vi]) = (&lq, &lk, &lv);
        let a = self.base.spec_of(&types)?;
        debug_assert_eq!(a.keys, Keys::Transposed);
        let r = qs.len();
        let mut out = qs.clone();
        out[r - 1] = a.dv;
        let (out_shape, out_strides) = if self.out_perm.is_empty() {
            permuted(&out, &[])?
        } else {
            // The stored output is `Transpose{out_perm}` of the logical one.
            let (stored, _) = permuted(&out, &self.out_perm)?;
            let cs = contiguous_strides(&stored);
            let mut st = vec![0; r];
            for (i, &p) in self.out_perm.iter().enumerate() {
                st[p] = cs[i] as usize;
            }
            (stored, st)
        };
        // Keys: one per column (transposed) when contiguous along the keys, else one per row.
        let key_rows = ks[r - 1] > 1 && kst[r - 1] != 1;
        let k = if key_rows {
            let (mut shape, mut st) = (ks.clone(), kst.clone());
            shape.swap(r - 2, r - 1);
            st.swap(r - 2, r - 1);
            layout(&shape, &st)?
        } else {
            layout(&ks, &kst)?
        };
        let group = if r > 2 { qs[r - 3].max(1) } else { 1 };
        Ok((
            QAttentionSpec {
                heads: a.heads,
                group,
                sq: a.sq,
                skv: a.skv,
                d: a.d,
                dv: a.dv,
                q: layout(&qs, &qst)?,
                k,
                key_rows,
                v: layout(&vs, &vst)?,
                out: layout(&out, &out_strides)?,
                mask_head_stride: a.mask_head_stride,
                mask_row_stride: a.mask_row_stride,
                scale: a.scale,
                nan_to_zero: a.nan_to_zero,
            },
            out_shape,
        ))
    }
}

fn lit_layout(l: &Layout) -> TokenStream {
    let (o, i, r) = (lit_usize(l.outer), lit_usize(l.inner), lit_usize(l.row));
    quote!(rt::kernels::qattention::Layout { outer: #o, inner: #i, row: #r })
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
        let (heads, group, sq, skv, d, dv) = (
            lit_usize(s.heads),
            lit_usize(s.group),
            lit_usize(s.sq),
            lit_usize(s.skv),
            lit_usize(s.d),
            lit_usize(s.dv),
        );
        let (lq, lk, lv, lo) = (
            lit_layout(&s.q),
            lit_layout(&s.k),
            lit_layout(&s.v),
            lit_layout(&s.out),
        );
        let key_rows = s.key_rows;
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
                    heads: #heads, group: #group, sq: #sq, skv: #skv, d: #d, dv: #dv,
                    q: #lq, k: #lk, key_rows: #key_rows, v: #lv, out: #lo,
                    mask_head_stride: #mhs, mask_row_stride: #mrs, scale: #scale,
                    nan_to_zero: #nan,
                });
        })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        let list = |p: &[usize]| format!("{p:?}").replace(' ', "");
        let mut attrs = vec![
            ("mask", self.base.mask.to_string()),
            ("scale", format!("{:?}", self.base.scale)),
            ("nan_to_zero", self.base.nan_to_zero.to_string()),
        ];
        for (name, perm) in [
            ("q_perm", &self.q_perm),
            ("k_perm", &self.k_perm),
            ("v_perm", &self.v_perm),
            ("out_perm", &self.out_perm),
        ] {
            if !perm.is_empty() {
                attrs.push((name, list(perm)));
            }
        }
        attrs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime_core::kernels::gemm::Tiles;

    fn op(key_rows: bool) -> QAttention {
        QAttention::new(Attention {
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
        })
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
