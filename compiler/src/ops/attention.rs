//! `Attention`: `out = softmax(scale · Q · Kᵀ + mask) · V` in one op (made by the pass
//! `fuse_attention`; no ONNX op maps to it), computed a tile of query rows at a time.
use super::OpDef;
use super::util::{self, EmitCtx, broadcast_shapes, broadcast_strides, expect_inputs, lit_usize};
use crate::error::OpError;
use crate::invalid;
use crate::ir::{DType, Tensor, TensorType};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::attention::{self, AttentionSpec, Keys};
use runtime_core::kernels::gemm::Tiles;

/// Inputs: `q: f32[..., sq, d]`, `kt: f32[..., d, skv]` (keys already transposed; with
/// `key_rows`, `k: f32[..., skv, d]`), then `mask` (when `mask`) broadcastable to
/// `[..., sq, skv]`, then `v: f32[..., skv, dv]`, then (when `live_offset` is set) a one-element
/// `i64` position `p`; the leading axes of `q`, `k`, `v` are equal. With `p`, only the first
/// `min(p + live_offset, skv)` key slots are attended (all when that is ≤ 0): the pass that sets
/// it has proved the mask gives the others a large negative bias. Outputs: `f32[..., sq, dv]` and the scores
/// tile `f32[rows · skv]` (scratch: planned in the arena, never read).
#[derive(Debug, Clone, PartialEq)]
pub struct Attention {
    pub mask: bool,
    /// Factor applied to the scores `Q · Kᵀ` before the mask.
    pub scale: f32,
    /// Zero the probabilities of rows that are NaN (fully masked with `-inf`), as torch's
    /// export does with `Where(IsNaN(p), 0, p)`.
    pub nan_to_zero: bool,
    /// Query rows per tile.
    pub rows: usize,
    pub tiles: Tiles,
    /// The keys are stored one per row (`[..., skv, d]`), not transposed.
    pub key_rows: bool,
    /// Attend only to the key slots below `p + live_offset` (`p` the last input).
    pub live_offset: Option<i64>,
}

struct Geometry {
    heads: usize,
    sq: usize,
    skv: usize,
    d: usize,
    dv: usize,
    mask_head_stride: usize,
    mask_row_stride: usize,
    out_shape: Vec<usize>,
}

impl Attention {
    fn geometry(&self, inputs: &[&TensorType]) -> Result<Geometry, OpError> {
        expect_inputs(inputs, 3, 5)?;
        let want = 3 + usize::from(self.mask) + usize::from(self.live_offset.is_some());
        if inputs.len() != want {
            return invalid!(
                "mask={} live_offset={:?} needs {want} inputs",
                self.mask,
                self.live_offset
            );
        }
        let (q, kt, v) = (inputs[0], inputs[1], inputs[self.v_index()]);
        if [q, kt, v].iter().any(|t| t.dtype != DType::F32)
            || (self.mask && inputs[2].dtype != DType::F32)
        {
            return invalid!("Attention is f32 only");
        }
        if self.live_offset.is_some() {
            let p = inputs[want - 1];
            if p.dtype != DType::I64 || p.numel() != 1 {
                return invalid!("the live-length position must be one i64, not {p}");
            }
        }
        let r = q.rank();
        if r < 2 || kt.rank() != r || v.rank() != r {
            return invalid!("q, kt, v need one rank >= 2: {q}, {kt}, {v}");
        }
        let lead = &q.shape[..r - 2];
        if &kt.shape[..r - 2] != lead || &v.shape[..r - 2] != lead {
            return invalid!("leading axes differ: {q}, {kt}, {v}");
        }
        let (sq, d) = (q.shape[r - 2], q.shape[r - 1]);
        let (d2, skv) = if self.key_rows {
            (kt.shape[r - 1], kt.shape[r - 2])
        } else {
            (kt.shape[r - 2], kt.shape[r - 1])
        };
        let (skv2, dv) = (v.shape[r - 2], v.shape[r - 1]);
        if d != d2 || skv != skv2 {
            return invalid!("inner dimensions differ: {q}, {kt}, {v}");
        }
        let heads: usize = lead.iter().product();
        let mut scores = lead.to_vec();
        scores.extend([sq, skv]);
        let (mut mask_head_stride, mut mask_row_stride) = (0, 0);
        if self.mask {
            let m = inputs[2];
            if broadcast_shapes(&[&m.shape, &scores])? != scores {
                return invalid!("mask {m} does not broadcast to scores {scores:?}");
            }
            let st = broadcast_strides(&m.shape, &scores);
            if skv > 1 && st[r - 1] != 1 {
                return invalid!("mask {m} must vary along the keys");
            }
            mask_row_stride = st[r - 2] as usize;
            // The leading axes must read as one flat head index.
            let lead_strides = &st[..r - 2];
            let flat = lead_strides.last().copied().unwrap_or(0);
            let mut expect = flat;
            for (i, &s) in lead_strides.iter().enumerate().rev() {
                if s != expect {
                    return invalid!("mask {m} broadcasts over heads in an unsupported way");
                }
                expect *= lead[i] as isize;
            }
            mask_head_stride = flat as usize;
        }
        let mut out_shape = lead.to_vec();
        out_shape.extend([sq, dv]);
        Ok(Geometry {
            heads,
            sq,
            skv,
            d,
            dv,
            mask_head_stride,
            mask_row_stride,
            out_shape,
        })
    }

    /// The kernel geometry of this node's inputs (checked as `infer` checks them).
    pub(crate) fn spec_of(&self, inputs: &[&TensorType]) -> Result<AttentionSpec, OpError> {
        Ok(self.spec(&self.geometry(inputs)?))
    }

    pub(crate) fn v_index(&self) -> usize {
        2 + usize::from(self.mask)
    }

    fn spec(&self, g: &Geometry) -> AttentionSpec {
        AttentionSpec {
            heads: g.heads,
            sq: g.sq,
            skv: g.skv,
            d: g.d,
            dv: g.dv,
            mask_head_stride: g.mask_head_stride,
            mask_row_stride: g.mask_row_stride,
            scale: self.scale,
            nan_to_zero: self.nan_to_zero,
            rows: self.rows,
            tiles: self.tiles,
            keys: if self.key_rows {
                Keys::Rows
            } else {
                Keys::Transposed
            },
        }
    }
}

impl OpDef for Attention {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        let g = self.geometry(inputs)?;
        crate::ir::checked_numel(&g.out_shape)?;
        Ok(vec![
            TensorType::new(DType::F32, g.out_shape),
            TensorType::new(DType::F32, vec![self.rows.clamp(1, g.sq.max(1)) * g.skv]),
        ])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let types: Vec<&TensorType> = inputs.iter().map(|t| &t.ty).collect();
        let g = self.geometry(&types)?;
        let mut out = util::zeros(&outputs[0])?;
        let mut scratch = util::zeros(&outputs[1])?;
        let mask = if self.mask {
            Some(util::data::<f32>(inputs[2])?)
        } else {
            None
        };
        let live = match self.live_offset {
            Some(offset) => {
                let p = util::data::<i64>(inputs[self.v_index() + 1])?;
                attention::live_slots(p[0], offset, g.skv)
            }
            None => g.skv,
        };
        attention::attention(
            util::data::<f32>(inputs[0])?,
            util::data::<f32>(inputs[1])?,
            mask,
            util::data::<f32>(inputs[self.v_index()])?,
            util::data_mut::<f32>(&mut out)?,
            util::data_mut::<f32>(&mut scratch)?,
            &self.spec(&g),
            live,
        );
        Ok(vec![out, scratch])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        let types: Vec<&TensorType> = ctx.inputs.iter().collect();
        let g = self.geometry(&types)?;
        let s = self.spec(&g);
        let (heads, sq, skv, d, dv) = (
            lit_usize(s.heads),
            lit_usize(s.sq),
            lit_usize(s.skv),
            lit_usize(s.d),
            lit_usize(s.dv),
        );
        let (mhs, mrs, rows) = (
            lit_usize(s.mask_head_stride),
            lit_usize(s.mask_row_stride),
            lit_usize(s.rows),
        );
        let (mr, kc, mc) = (
            lit_usize(s.tiles.mr),
            lit_usize(s.tiles.kc),
            lit_usize(s.tiles.mc),
        );
        let nan = self.nan_to_zero;
        let scale = proc_macro2::Literal::f32_suffixed(self.scale);
        let (q, kt) = (ctx.input(0), ctx.input(1));
        let v = ctx.input(self.v_index());
        let keys = if self.key_rows {
            quote!(rt::kernels::attention::Keys::Rows)
        } else {
            quote!(rt::kernels::attention::Keys::Transposed)
        };
        let live = match self.live_offset {
            Some(offset) => {
                let p = ctx.input(self.v_index() + 1);
                let offset = proc_macro2::Literal::i64_suffixed(offset);
                quote!(rt::kernels::attention::live_slots(#p[0], #offset, #skv))
            }
            None => quote!(#skv),
        };
        let mask = if self.mask {
            let m = ctx.input(2);
            quote!(Some(#m))
        } else {
            quote!(None)
        };
        let (o, scratch) = (ctx.output(0), ctx.output(1));
        Ok(quote! {
            rt::kernels::attention::attention(#q, #kt, #mask, #v, #o, #scratch, &rt::kernels::attention::AttentionSpec {
                heads: #heads, sq: #sq, skv: #skv, d: #d, dv: #dv,
                mask_head_stride: #mhs, mask_row_stride: #mrs, scale: #scale,
                nan_to_zero: #nan, rows: #rows,
                tiles: rt::kernels::gemm::Tiles { mr: #mr, kc: #kc, mc: #mc },
                keys: #keys,
            }, #live);
        })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        let mut a = vec![
            ("mask", self.mask.to_string()),
            ("scale", format!("{:?}", self.scale)),
            ("nan_to_zero", self.nan_to_zero.to_string()),
            ("rows", self.rows.to_string()),
            (
                "tiles",
                format!(
                    "mr={} kc={} mc={}",
                    self.tiles.mr, self.tiles.kc, self.tiles.mc
                ),
            ),
        ];
        if self.key_rows {
            a.push(("key_rows", "true".into()));
        }
        if let Some(o) = self.live_offset {
            a.push(("live_offset", o.to_string()));
        }
        a
    }
}
