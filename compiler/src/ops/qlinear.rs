//! `QLinear`: `y = act(x · W + bias)` with W stored as int8 per output channel (symmetric) and
//! the activations quantized to int8 at run time, products accumulated exactly in i32 (made
//! by the pass `quantize_int8` or by the import of pre-quantized ONNX; no ONNX op maps to it
//! one to one).
use super::OpDef;
use super::linear::activation_path;
use super::util::{self, EmitCtx, lit_float, lit_i64, lit_usize};
use crate::error::OpError;
use crate::invalid;
use crate::ir::{DType, Tensor, TensorType};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::gemm::{Activation, Tiles};
use runtime_core::kernels::qgemm::{self, QGemm, QWeights};

/// How the activations (`x`) are quantized before the integer product.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ActQuant {
    /// Per row (token), symmetric int8: `scale = max|row| / 127`, zero point 0
    /// (`qgemm::quantize_rows_symmetric`). The default of `--quantize int8`.
    DynamicRow,
    /// One uint8 scale and zero point for the whole tensor, computed at run time exactly as
    /// ONNX `DynamicQuantizeLinear` does (`qgemm::quantize_tensor_dynamic_u8`).
    DynamicTensorU8,
    /// A fixed scale and zero point, ONNX `QuantizeLinear` semantics (round half to even,
    /// saturating) to uint8 (`u8`) or int8 (`qgemm::quantize_rows_static`).
    Static {
        scale: f32,
        zero_point: i32,
        u8: bool,
    },
}

impl ActQuant {
    /// Short form for the IR printer and reports.
    pub fn describe(&self) -> String {
        match self {
            ActQuant::DynamicRow => "dynamic-row".into(),
            ActQuant::DynamicTensorU8 => "dynamic-tensor-u8".into(),
            ActQuant::Static {
                scale,
                zero_point,
                u8,
            } => format!(
                "static-{} scale={scale:e} zp={zero_point}",
                if *u8 { "u8" } else { "i8" }
            ),
        }
    }
}

/// Inputs: `x: f32[..., k]`, the weight blob `w: u8[qgemm::packed_i8_bytes(k, n, nr)]` (int8
/// per output column with its scales, packed for panels of `nr` columns), (when `bias`)
/// `bias: f32[n]`, (when `fused.residual`) `r: f32[..., n]`. Outputs: `y: f32[..., n]` and the
/// activation-quantization scratch, planned in the arena and never read by other nodes:
/// `qa: i8[m · qa_stride(k)]`, `a_scales: f32[m]`, `a_zero_points: i32[m]` with `m` the
/// number of rows of `x`.
///
/// With `fused.parts` the blob is several layers' blobs concatenated (part `i`, `parts[i]`
/// columns, packed on its own), the bias the parts' biases concatenated, and each part is its
/// own output `f32[..., parts[i]]` before the three scratch outputs: `x` is quantized once for
/// all of them. With `fused.swiglu` there are two equal parts (gate, up) and one output
/// `act(x·Wg + bg) ⊙ (x·Wu + bu)` (the activation applies to the gate), plus, for more than
/// one row, a scratch output `f32[m · n/2]` holding the up-projection, before the three.
#[derive(Debug, Clone, PartialEq)]
pub struct QLinear {
    pub k: usize,
    pub n: usize,
    /// Panel width the weight blob was packed for.
    pub nr: usize,
    pub bias: bool,
    pub activation: Activation,
    pub act_quant: ActQuant,
    /// Register block rows and cache blocks, from the target profile.
    pub tiles: Tiles,
    /// The kernel the blob was packed for (for reports).
    pub kernel: &'static str,
    /// Layers merged and epilogues fused into this one by the passes `merge_linears`,
    /// `fuse_swiglu`, `fuse_residual` (default: none).
    pub fused: Fused,
}

/// What the fusion passes folded into a `QLinear` (as the float `Linear`'s fields of the
/// same names).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fused {
    /// Output widths of the layers merged into this one (empty: one output of `n`).
    pub parts: Vec<usize>,
    /// Two parts combined as `act(gate) ⊙ up` into one output.
    pub swiglu: bool,
    /// A residual input added after the activation: `y = act(x·W + b) + r`.
    pub residual: bool,
    /// `x` arrives already quantized per row (dynamic-row only, no residual): three more
    /// inputs after the bias, `qa`, `a_scales`, `a_zero_points` as the scratch outputs would
    /// hold them (made by a `LayerNormRows`, pass `fuse_layer_norm_rows`), and no scratch
    /// outputs. `x` stays an input for its type.
    pub prequantized: bool,
}

impl QLinear {
    /// Bytes of this layer's weight blob (every part's blob).
    pub fn weight_bytes(&self) -> usize {
        self.part_widths()
            .iter()
            .map(|&n| qgemm::packed_i8_bytes(self.k, n, self.nr))
            .sum()
    }

    /// The output widths of the layers side by side in the blob (`[n]` unless merged).
    pub fn part_widths(&self) -> Vec<usize> {
        if self.fused.parts.is_empty() {
            vec![self.n]
        } else {
            self.fused.parts.clone()
        }
    }

    /// `(blob offset, blob length, column offset, columns)` of each part.
    fn part_ranges(&self) -> Vec<(usize, usize, usize, usize)> {
        let (mut w_off, mut c_off) = (0, 0);
        self.part_widths()
            .into_iter()
            .map(|n| {
                let r = (w_off, qgemm::packed_i8_bytes(self.k, n, self.nr), c_off, n);
                w_off += r.1;
                c_off += n;
                r
            })
            .collect()
    }

    /// The epilogue in words, for reports.
    pub fn epilogue(&self) -> String {
        let mut s = super::linear::epilogue(self.bias, self.activation);
        if self.fused.swiglu {
            s = format!("{s}+swiglu").replace("none+", "");
        }
        if self.fused.residual {
            s = format!("{s}+residual").replace("none+", "");
        }
        s
    }

    fn rows(&self, x: &TensorType) -> usize {
        x.numel().checked_div(self.k).unwrap_or(0)
    }

    /// Index of the first of the three activation-scratch outputs.
    fn scratch_at(&self, rows: usize) -> usize {
        if self.fused.swiglu {
            1 + usize::from(rows > 1)
        } else {
            self.part_widths().len()
        }
    }
}

impl OpDef for QLinear {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        let residual = usize::from(self.fused.residual);
        let given = if self.fused.prequantized { 3 } else { 0 };
        if inputs.len() < 2 + residual + given {
            return invalid!("residual={} needs its input", self.fused.residual);
        }
        if self.fused.prequantized
            && (self.fused.residual || self.act_quant != ActQuant::DynamicRow)
        {
            return invalid!("prequantized rows need dynamic-row quantization and no residual");
        }
        let (inputs, given_qa) = inputs.split_at(inputs.len() - given);
        let (inputs, r) = inputs.split_at(inputs.len() - residual);
        util::check_blob_linear(
            inputs,
            self.bias,
            [self.k, self.n, self.nr],
            self.weight_bytes(),
        )?;
        let widths = self.part_widths();
        if widths.iter().sum::<usize>() != self.n {
            return invalid!("parts {widths:?} do not split n = {}", self.n);
        }
        if self.fused.swiglu && (widths.len() != 2 || widths[0] != widths[1]) {
            return invalid!("swiglu needs two equal parts");
        }
        if self.fused.residual && (widths.len() != 1 || self.fused.swiglu) {
            return invalid!("a residual needs a single-part QLinear");
        }
        let x = inputs[0];
        if let ActQuant::Static {
            scale, zero_point, ..
        } = self.act_quant
        {
            let range = if matches!(self.act_quant, ActQuant::Static { u8: true, .. }) {
                0..=255
            } else {
                -128..=127
            };
            if !scale.is_finite() || scale <= 0.0 || !range.contains(&zero_point) {
                return invalid!("static activation scale {scale} / zero point {zero_point}");
            }
        }
        let output = util::linear_output(x, self.n, self.bias.then(|| inputs[2]))?;
        if let Some(r) = r.first()
            && **r != output
        {
            return invalid!("residual is {r}, expected {output}");
        }
        let m = self.rows(x);
        let qa = m
            .checked_mul(qgemm::qa_stride(self.k))
            .ok_or_else(|| OpError::Invalid("activation scratch overflows".into()))?;
        let scratch = [
            TensorType::new(DType::I8, vec![qa]),
            TensorType::new(DType::F32, vec![m]),
            TensorType::new(DType::I32, vec![m]),
        ];
        if self.fused.prequantized && given_qa.iter().map(|t| (*t).clone()).ne(scratch.clone()) {
            return invalid!("quantized rows {given_qa:?}, expected {scratch:?}");
        }
        let mut outs = if self.fused.swiglu {
            let h = widths[0];
            let mut v = vec![util::linear_output(x, h, None)?];
            if m > 1 {
                v.push(TensorType::new(DType::F32, vec![m * h]));
            }
            v
        } else if widths.len() == 1 {
            vec![output]
        } else {
            widths
                .iter()
                .map(|&n| util::linear_output(x, n, None))
                .collect::<Result<_, _>>()?
        };
        if !self.fused.prequantized {
            outs.extend(scratch);
        }
        Ok(outs)
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let x = util::data::<f32>(inputs[0])?;
        let w = util::data::<u8>(inputs[1])?;
        let bias = if self.bias {
            Some(util::data::<f32>(inputs[2])?)
        } else {
            None
        };
        let m = self.rows(&inputs[0].ty);
        let at = self.scratch_at(m);
        let (mut qa, mut scales, mut zps);
        if self.fused.prequantized {
            let n = inputs.len();
            (qa, scales, zps) = (
                inputs[n - 3].clone(),
                inputs[n - 2].clone(),
                inputs[n - 1].clone(),
            );
        } else {
            qa = util::zeros(&outputs[at])?;
            scales = util::zeros(&outputs[at + 1])?;
            zps = util::zeros(&outputs[at + 2])?;

            let (q, s, z) = (
                util::data_mut::<i8>(&mut qa)?,
                util::data_mut::<f32>(&mut scales)?,
                util::data_mut::<i32>(&mut zps)?,
            );
            let k = self.k;
            match self.act_quant {
                ActQuant::DynamicRow => qgemm::quantize_rows_symmetric(x, m, k, k, q, s, z),
                ActQuant::DynamicTensorU8 => qgemm::quantize_tensor_dynamic_u8(x, m, k, k, q, s, z),
                ActQuant::Static {
                    scale,
                    zero_point,
                    u8,
                } => qgemm::quantize_rows_static(x, m, k, k, scale, zero_point, u8, q, s, z),
            }
        }
        let mut parts = Vec::new();
        for (i, (w_off, w_len, c_off, n)) in self.part_ranges().into_iter().enumerate() {
            let blob = w
                .get(w_off..w_off + w_len)
                .ok_or_else(|| OpError::Invalid(format!("weight blob shorter than part {i}")))?;
            let activation = if self.fused.swiglu && i == 1 {
                Activation::None
            } else {
                self.activation
            };
            let g = QGemm {
                m,
                k: self.k,
                n,
                ldc: n,
                a_scales: util::data::<f32>(&scales)?,
                a_zero_points: util::data::<i32>(&zps)?,
                bias: bias.and_then(|b| b.get(c_off..c_off + n)),
                activation,
                tiles: self.tiles,
            };
            let mut out = vec![0.0f32; m * n];
            qgemm::reference::qgemm(
                util::data::<i8>(&qa)?,
                QWeights::new(blob, self.k, n, self.nr),
                &mut out,
                &g,
            );
            parts.push(out);
        }
        if self.fused.residual {
            let r = util::data::<f32>(inputs[inputs.len() - 1])?;
            runtime_core::kernels::gemv::add_assign(&mut parts[0], r);
        }
        if self.fused.swiglu {
            let up = parts.pop().unwrap_or_default();
            runtime_core::kernels::gemv::mul_assign(&mut parts[0], &up);
            if m > 1 {
                parts.push(up);
            }
        }
        let mut outs = outputs
            .iter()
            .zip(parts)
            .map(|(ty, data)| {
                Tensor::new(ty.clone(), crate::ir::Data::F32(data))
                    .map_err(|e| OpError::Invalid(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !self.fused.prequantized {
            outs.extend([qa, scales, zps]);
        }
        Ok(outs)
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        let rows = self.rows(&ctx.inputs[0]);
        let m = lit_usize(rows);
        let (k, nr) = (lit_usize(self.k), lit_usize(self.nr));
        let (mr, kc, mc) = (
            lit_usize(self.tiles.mr),
            lit_usize(self.tiles.kc),
            lit_usize(self.tiles.mc),
        );
        let (x, w) = (ctx.input(0), ctx.input(1));
        let at = self.scratch_at(rows);
        let (qa, s, z) = if self.fused.prequantized {
            let n = ctx.inputs.len();
            (ctx.input(n - 3), ctx.input(n - 2), ctx.input(n - 1))
        } else {
            (ctx.output(at), ctx.output(at + 1), ctx.output(at + 2))
        };
        let quantize = match self.act_quant {
            // The f32 rows were quantized by their producer; only the quantized rows are read.
            _ if self.fused.prequantized => quote! { let _ = #x; },
            ActQuant::DynamicRow => quote! {
                rt::kernels::qgemm::quantize_rows_symmetric(#x, #m, #k, #k, #qa, #s, #z);
            },
            ActQuant::DynamicTensorU8 => quote! {
                rt::kernels::qgemm::quantize_tensor_dynamic_u8(#x, #m, #k, #k, #qa, #s, #z);
            },
            ActQuant::Static {
                scale,
                zero_point,
                u8,
            } => {
                let scale = lit_float(scale as f64, DType::F32);
                let zp = lit_i64(zero_point as i64);
                quote! {
                    rt::kernels::qgemm::quantize_rows_static(#x, #m, #k, #k, #scale, #zp, #u8, #qa, #s, #z);
                }
            }
        };
        let ranges = self.part_ranges();
        let single = ranges.len() == 1;
        // Part `i`'s weights and its product's settings.
        let part = |i: usize, act: Activation| {
            let (w_off, w_len, c_off, n) = ranges[i];
            let (wt, bias) = if single {
                let bias = self.bias.then(|| ctx.input(2)).map(|b| quote!(#b));
                (quote!(#w), bias)
            } else {
                let (a, b) = (lit_usize(w_off), lit_usize(w_off + w_len));
                let (c0, c1) = (lit_usize(c_off), lit_usize(c_off + n));
                let bias = self
                    .bias
                    .then(|| ctx.input(2))
                    .map(|b| quote!(&#b[#c0..#c1]));
                (quote!(&#w[#a..#b]), bias)
            };
            let bias = bias.map_or(quote!(None), |b| quote!(Some(#b)));
            let act = activation_path(act);
            let n = lit_usize(n);
            (
                quote!(rt::kernels::qgemm::QWeights::new(#wt, #k, #n, #nr)),
                quote! {
                    &rt::kernels::qgemm::QGemm {
                        m: #m, k: #k, n: #n, ldc: #n,
                        a_scales: #s, a_zero_points: #z,
                        bias: #bias,
                        activation: #act,
                        tiles: rt::kernels::gemm::Tiles { mr: #mr, kc: #kc, mc: #mc },
                    }
                },
            )
        };
        // One row (a decode step) runs the one-row product; same bits as the GEMM.
        let kernel = if rows == 1 {
            quote!(rt::kernels::qgemv::qgemv)
        } else {
            quote!(rt::kernels::qgemm::qgemm)
        };
        let y = ctx.output(0);
        let mut code = quantize;
        if self.fused.swiglu {
            let ((gw, gg), (uw, ug)) = (part(0, self.activation), part(1, Activation::None));
            code.extend(if rows == 1 {
                quote!(rt::kernels::qgemv::qgemv_swiglu(#qa, (#gw, #gg), (#uw, #ug), #y);)
            } else {
                let up = ctx.output(1);
                quote! {
                    rt::kernels::qgemm::qgemm(#qa, #gw, #y, #gg);
                    rt::kernels::qgemm::qgemm(#qa, #uw, #up, #ug);
                    rt::kernels::gemv::mul_assign(#y, #up);
                }
            });
        } else if self.fused.residual {
            let r = ctx.input(ctx.inputs.len() - 1);
            let (wt, g) = part(0, self.activation);
            code.extend(quote!(rt::kernels::qgemv::qgemv_residual(#qa, #wt, #y, #g, #r);));
        } else {
            for i in 0..ranges.len() {
                let (wt, g) = part(i, self.activation);
                let out = ctx.output(i);
                code.extend(quote!(#kernel(#qa, #wt, #out, #g);));
            }
        }
        Ok(code)
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        let mut attrs = vec![
            ("k", self.k.to_string()),
            ("n", self.n.to_string()),
            ("nr", self.nr.to_string()),
            ("epilogue", self.epilogue()),
            ("act", self.act_quant.describe()),
            (
                "tiles",
                format!(
                    "{} {}x{} kc={} mc={}",
                    self.kernel, self.tiles.mr, self.nr, self.tiles.kc, self.tiles.mc
                ),
            ),
        ];
        if !self.fused.parts.is_empty() {
            let parts: Vec<String> = self.fused.parts.iter().map(|p| p.to_string()).collect();
            attrs.push(("parts", parts.join("+")));
        }
        if self.fused.prequantized {
            attrs.push(("rows", "quantized by the producer".into()));
        }
        attrs
    }
}

/// Quantize a row-major `f32[k, n]` weight per output column and pack it for panels of `nr`
/// columns: the `QLinear` weight blob (build time).
pub fn pack_weight(w: &[f32], k: usize, n: usize, nr: usize) -> Vec<u8> {
    let mut q = vec![0i8; k * n];
    let mut scales = vec![0.0f32; n];
    qgemm::quantize_weights_i8(w, k, n, &mut q, &mut scales);
    let mut out = vec![0u8; qgemm::packed_i8_bytes(k, n, nr)];
    qgemm::pack_i8(&q, &scales, k, n, nr, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(act_quant: ActQuant) -> QLinear {
        QLinear {
            k: 5,
            n: 3,
            nr: 4,
            bias: true,
            activation: Activation::None,
            act_quant,
            tiles: Tiles {
                mr: 4,
                kc: 256,
                mc: 64,
            },
            kernel: "portable",
            fused: Fused::default(),
        }
    }

    /// Weights and activations that are exact multiples of their scales give the float
    /// product exactly, in every activation mode.
    #[test]
    fn representable_values_give_the_float_product() {
        // Columns have max |w| = 127·(1/64): scale 1/64, every value a multiple of it.
        let w: Vec<f32> = (0..15)
            .map(|i| [127.0, -64.0, 3.0, 0.0, -127.0][i / 3] / 64.0 * [1.0, -1.0, 0.5][i % 3])
            .collect();
        let x = vec![127.0, -1.0, 0.0, 5.0, 64.0, -127.0, 2.0, 3.0, 4.0, 127.0];
        let x: Vec<f32> = x.iter().map(|v| v / 8.0).collect();
        let bias = vec![0.5, -0.25, 1.0];
        let expect: Vec<f32> = (0..2)
            .flat_map(|i| {
                let (x, w, bias) = (&x, &w, &bias);
                (0..3).map(move |j| {
                    (0..5).map(|p| x[i * 5 + p] * w[p * 3 + j]).sum::<f32>() + bias[j]
                })
            })
            .collect();
        let blob = pack_weight(&w, 5, 3, 4);
        let xt = Tensor::from_f32s(vec![2, 5], x).unwrap();
        let wt = Tensor::new(
            TensorType::new(DType::U8, vec![blob.len()]),
            crate::ir::Data::U8(blob),
        )
        .unwrap();
        let bt = Tensor::from_f32s(vec![3], bias).unwrap();
        for mode in [
            ActQuant::DynamicRow,
            ActQuant::Static {
                scale: 1.0 / 8.0,
                zero_point: 0,
                u8: false,
            },
        ] {
            let op = layer(mode);
            let ty = op.infer(&[&xt.ty, &wt.ty, &bt.ty]).unwrap();
            assert_eq!(ty[1].shape, vec![2 * qgemm::qa_stride(5)]);
            let out = op.eval(&[&xt, &wt, &bt], &ty).unwrap();
            let got = out[0].data.to_f64_vec();
            for (g, e) in got.iter().zip(&expect) {
                assert!(
                    (g - *e as f64).abs() < 1e-5,
                    "{mode:?}: {got:?} vs {expect:?}"
                );
            }
        }
        // u8 per tensor: within one activation step of the float product.
        let op = layer(ActQuant::DynamicTensorU8);
        let ty = op.infer(&[&xt.ty, &wt.ty, &bt.ty]).unwrap();
        let got = op.eval(&[&xt, &wt, &bt], &ty).unwrap()[0].data.to_f64_vec();
        for (g, e) in got.iter().zip(&expect) {
            assert!((g - *e as f64).abs() < 0.2, "{got:?} vs {expect:?}");
        }
    }

    #[test]
    fn infer_rejects_a_wrong_blob_or_zero_point() {
        let op = layer(ActQuant::DynamicRow);
        let x = TensorType::new(DType::F32, vec![2, 5]);
        let b = TensorType::new(DType::F32, vec![3]);
        let bad = TensorType::new(DType::U8, vec![7]);
        assert!(op.infer(&[&x, &bad, &b]).is_err());
        let w = TensorType::new(DType::U8, vec![op.weight_bytes()]);
        assert!(op.infer(&[&x, &w, &b]).is_ok());
        let op = layer(ActQuant::Static {
            scale: 0.1,
            zero_point: 300,
            u8: true,
        });
        assert!(op.infer(&[&x, &w, &b]).is_err());
    }
}
