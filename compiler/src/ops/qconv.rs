//! `QConv`: a convolution of quantized activations (uint8/int8, or f32 quantized at run time
//! as ONNX `DynamicQuantizeLinear` does) with int8 weights packed at build time, products
//! accumulated exactly in i32 (`runtime_core::kernels::qconv`); made by the import of
//! ONNX Runtime's quantized Conv patterns (QDQ Conv, ConvInteger, QLinearConv).
use super::OpDef;
use super::conv::Geometry;
use super::util::{self, EmitCtx, expect_inputs, lit_float, lit_i64, lit_usize};
use crate::error::OpError;
use crate::invalid;
use crate::ir::{DType, Tensor, TensorType};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::gemm::Tiles;
use runtime_core::kernels::qconv::{self, Output, Scratch};
use runtime_core::kernels::qgemm;

/// The activation operand.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QConvInput {
    /// `x: f32`, quantized per tensor to uint8 at run time (ONNX `DynamicQuantizeLinear`).
    Dynamic,
    /// `x` already quantized: `u8` (uint8) or int8, with this scale and zero point.
    Quantized {
        scale: f32,
        zero_point: i32,
        u8: bool,
    },
}

/// The result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QConvOutput {
    /// `y: f32 = x_scale · w_scale[m] · Σ (x - zx)·w + bias[m]`.
    F32,
    /// `y: u8/i8 = saturate(round_half_even((Σ (x - zx)·w + bias[m]) · multipliers[m]) + zero_point)`
    /// (ONNX `QLinearConv`; `multipliers[m] = x_scale · w_scale[m] / y_scale`, the blob's
    /// weight scales are 1 and `bias` holds the int32 bias).
    Quantized { zero_point: i32, u8: bool },
}

/// Inputs: `x` `[N, C, spatial..]` (f32, u8 or i8 per [`QConvInput`]), the weight blob
/// `w: u8[qconv::packed_bytes(kg, mg, group, nr)]` (per group, the `kg × mg` int8 matrix
/// with its per-column scales, see [`pack_weight`]), `bias: f32[M]` when `bias`, and
/// `multipliers: f32[M]` for a quantized output. Outputs: `y` `[N, M, output..]` and the
/// scratch, planned in the arena and read by no other node: the quantized input `xq: i8`,
/// the im2col block `cols: i8[rows · qa_stride(kg)]`, the block result `c: f32[rows · mg]`,
/// `scales: f32[rows]`, `zero_points: i32[rows]` (`rows = qconv::block_rows(positions, kg)`).
#[derive(Debug, Clone, PartialEq)]
pub struct QConv {
    pub geometry: Geometry,
    pub group: usize,
    pub out_channels: usize,
    /// Panel width the weight blob was packed for.
    pub nr: usize,
    pub bias: bool,
    pub input: QConvInput,
    pub output: QConvOutput,
    pub tiles: Tiles,
    /// The kernel the blob was packed for (for reports).
    pub kernel: &'static str,
}

struct Dims {
    batch: usize,
    c: usize,
    mg: usize,
    kg: usize,
    rows: usize,
    output: Vec<usize>,
}

fn storage(u8: bool) -> DType {
    if u8 { DType::U8 } else { DType::I8 }
}

impl QConv {
    fn dims(&self, x: &TensorType) -> Result<Dims, OpError> {
        let (g, m) = (self.group, self.out_channels);
        let [batch, c, spatial @ ..] = x.shape.as_slice() else {
            return invalid!("input {x} is not [N, C, spatial..]");
        };
        if spatial.is_empty() {
            return invalid!("input {x} has no spatial axes");
        }
        if g == 0 || !c.is_multiple_of(g) || !m.is_multiple_of(g) || m == 0 {
            return invalid!("group {g} does not divide {c} input and {m} output channels");
        }
        let output = self.geometry.output(spatial)?;
        let ksize = util::product(&self.geometry.kernel);
        let kg = (c / g)
            .checked_mul(ksize)
            .filter(|&k| k > 0 && k <= 65_535)
            .ok_or_else(|| OpError::Unsupported("a depth outside 1..=65535".into()))?;
        let positions = util::product(&output);
        Ok(Dims {
            batch: *batch,
            c: *c,
            mg: m / g,
            kg,
            rows: qconv::block_rows(positions, kg),
            output,
        })
    }

    /// Bytes of this layer's weight blob for an input of `c` channels.
    pub fn weight_bytes(&self, c: usize) -> usize {
        let (g, m) = (self.group.max(1), self.out_channels);
        let kg = c / g * util::product(&self.geometry.kernel);
        qconv::packed_bytes(kg, m / g, g, self.nr)
    }

    fn xq_len(&self, x: &TensorType) -> usize {
        match self.input {
            QConvInput::Dynamic => qgemm::qa_stride(x.numel()),
            QConvInput::Quantized { u8: true, .. } => x.numel(),
            // int8 input is read in place.
            QConvInput::Quantized { u8: false, .. } => 1,
        }
    }
}

impl OpDef for QConv {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        let requant = matches!(self.output, QConvOutput::Quantized { .. });
        let want = 2 + usize::from(self.bias) + usize::from(requant);
        expect_inputs(inputs, 2, 4)?;
        if inputs.len() != want {
            return invalid!("expects {want} inputs, got {}", inputs.len());
        }
        if self.nr == 0 || self.nr > qgemm::MAX_NR {
            return invalid!("panel width {}", self.nr);
        }
        let x = inputs[0];
        let d = self.dims(x)?;
        match self.input {
            QConvInput::Dynamic if x.dtype != DType::F32 => {
                return invalid!("dynamic quantization of {x}, expected f32");
            }
            QConvInput::Dynamic if requant => {
                return invalid!("a requantized output needs a constant input scale");
            }
            QConvInput::Quantized {
                scale,
                zero_point,
                u8,
            } => {
                if x.dtype != storage(u8) {
                    return invalid!("input {x} is not {}", storage(u8));
                }
                let range = if u8 { 0..=255 } else { -128..=127 };
                if !scale.is_finite() || scale <= 0.0 || !range.contains(&zero_point) {
                    return invalid!("input scale {scale} / zero point {zero_point}");
                }
            }
            QConvInput::Dynamic => {}
        }
        let w = TensorType::new(DType::U8, vec![self.weight_bytes(d.c)]);
        if inputs[1] != &w {
            return invalid!("weight blob is {}, expected {w}", inputs[1]);
        }
        let per_channel = TensorType::new(DType::F32, vec![self.out_channels]);
        for (i, t) in inputs.iter().enumerate().skip(2) {
            if *t != &per_channel {
                return invalid!("input {i} is {t}, expected {per_channel}");
            }
        }
        let dtype = match self.output {
            QConvOutput::F32 => DType::F32,
            QConvOutput::Quantized { zero_point, u8 } => {
                let range = if u8 { 0..=255 } else { -128..=127 };
                if !range.contains(&zero_point) {
                    return invalid!("output zero point {zero_point}");
                }
                storage(u8)
            }
        };
        let mut shape = vec![d.batch, self.out_channels];
        shape.extend(&d.output);
        crate::ir::checked_numel(&shape)?;
        let cols = d
            .rows
            .checked_mul(qgemm::qa_stride(d.kg))
            .ok_or_else(|| OpError::Invalid("im2col scratch overflows".into()))?;
        Ok(vec![
            TensorType::new(dtype, shape),
            TensorType::new(DType::I8, vec![self.xq_len(x)]),
            TensorType::new(DType::I8, vec![cols]),
            TensorType::new(DType::F32, vec![d.rows * d.mg]),
            TensorType::new(DType::F32, vec![d.rows]),
            TensorType::new(DType::I32, vec![d.rows]),
        ])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let x = inputs[0];
        let d = self.dims(&x.ty)?;
        let w = util::data::<u8>(inputs[1])?;
        let bias = match self.bias {
            true => Some(util::data::<f32>(inputs[2])?),
            false => None,
        };
        let multipliers = inputs.get(2 + usize::from(self.bias));
        let mut outs = outputs
            .iter()
            .map(util::zeros)
            .collect::<Result<Vec<_>, _>>()?;
        let [y, xq, cols, c, scales, zps] = outs.as_mut_slice() else {
            return invalid!("QConv has 6 outputs");
        };
        let mut scratch = Scratch {
            cols: util::data_mut::<i8>(cols)?,
            c: util::data_mut::<f32>(c)?,
            scales: util::data_mut::<f32>(scales)?,
            zero_points: util::data_mut::<i32>(zps)?,
        };
        let xq = util::data_mut::<i8>(xq)?;
        let (xs, (x_scale, x_zp)): (&[i8], _) = match self.input {
            QConvInput::Dynamic => {
                let q = qconv::quantize_dynamic(util::data::<f32>(x)?, xq, &mut scratch);
                (xq, q)
            }
            QConvInput::Quantized {
                scale,
                zero_point,
                u8,
            } => {
                let (scale, shift) = match self.output {
                    QConvOutput::F32 => (scale, if u8 { -128 } else { 0 }),
                    QConvOutput::Quantized { .. } => (1.0, if u8 { -128 } else { 0 }),
                };
                if u8 {
                    qconv::shift_u8(util::data::<u8>(x)?, xq);
                    (xq, (scale, zero_point + shift))
                } else {
                    (util::data::<i8>(x)?, (scale, zero_point))
                }
            }
        };
        let (xs_shape, os) = (&x.ty.shape, &outputs[0].shape);
        let win = self.geometry.window(&xs_shape[2..], &os[2..]);
        let p = qconv::QConv {
            batch: d.batch,
            in_channels: d.c,
            out_channels: self.out_channels,
            group: self.group,
            win: &win,
            nr: self.nr,
            rows: d.rows,
            tiles: self.tiles,
        };
        let out = match self.output {
            QConvOutput::F32 => Output::F32(util::data_mut::<f32>(y)?),
            QConvOutput::Quantized { zero_point, u8 } => {
                let multipliers = util::data::<f32>(
                    multipliers.ok_or_else(|| OpError::Invalid("no multipliers".into()))?,
                )?;
                if u8 {
                    Output::U8 {
                        y: util::data_mut::<u8>(y)?,
                        multipliers,
                        zero_point,
                    }
                } else {
                    Output::I8 {
                        y: util::data_mut::<i8>(y)?,
                        multipliers,
                        zero_point,
                    }
                }
            }
        };
        qconv::qconv(xs, x_scale, x_zp, w, bias, out, scratch, &p);
        Ok(outs)
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        if ctx.outputs[0].numel() == 0 {
            return Ok(TokenStream::new());
        }
        let d = self.dims(&ctx.inputs[0])?;
        let (x, w, y) = (ctx.input(0), ctx.input(1), ctx.output(0));
        let (xq, cols, c, s, z) = (
            ctx.output(1),
            ctx.output(2),
            ctx.output(3),
            ctx.output(4),
            ctx.output(5),
        );
        let (xs, os) = (&ctx.inputs[0].shape, &ctx.outputs[0].shape);
        let win = self.geometry.window_tokens(&xs[2..], &os[2..]);
        let (batch, ch, m, g, nr, rows) = (
            lit_usize(d.batch),
            lit_usize(d.c),
            lit_usize(self.out_channels),
            lit_usize(self.group),
            lit_usize(self.nr),
            lit_usize(d.rows),
        );
        let (mr, kc, mc) = (
            lit_usize(self.tiles.mr),
            lit_usize(self.tiles.kc),
            lit_usize(self.tiles.mc),
        );
        let bias = if self.bias {
            let b = ctx.input(2);
            quote!(Some(#b))
        } else {
            quote!(None)
        };
        let out = match self.output {
            QConvOutput::F32 => quote!(rt::kernels::qconv::Output::F32(#y)),
            QConvOutput::Quantized { zero_point, u8 } => {
                let mul = ctx.input(2 + usize::from(self.bias));
                let zp = lit_i64(zero_point as i64);
                if u8 {
                    quote!(rt::kernels::qconv::Output::U8 { y: #y, multipliers: #mul, zero_point: #zp })
                } else {
                    quote!(rt::kernels::qconv::Output::I8 { y: #y, multipliers: #mul, zero_point: #zp })
                }
            }
        };
        let quantize = match self.input {
            QConvInput::Dynamic => quote! {
                let (x_scale, x_zero_point) = rt::kernels::qconv::quantize_dynamic(#x, #xq, &mut scratch);
                let xq: &[i8] = #xq;
            },
            QConvInput::Quantized {
                scale,
                zero_point,
                u8,
            } => {
                let scale = match self.output {
                    QConvOutput::F32 => scale,
                    QConvOutput::Quantized { .. } => 1.0,
                };
                let scale = lit_float(scale as f64, DType::F32);
                if u8 {
                    let zp = lit_i64(zero_point as i64 - 128);
                    quote! {
                        rt::kernels::qconv::shift_u8(#x, #xq);
                        let (x_scale, x_zero_point, xq): (f32, i32, &[i8]) = (#scale, #zp, #xq);
                    }
                } else {
                    let zp = lit_i64(zero_point as i64);
                    quote! {
                        let _ = #xq;
                        let (x_scale, x_zero_point, xq): (f32, i32, &[i8]) = (#scale, #zp, #x);
                    }
                }
            }
        };
        Ok(quote! {{
            let mut scratch = rt::kernels::qconv::Scratch { cols: #cols, c: #c, scales: #s, zero_points: #z };
            #quantize
            rt::kernels::qconv::qconv(xq, x_scale, x_zero_point, #w, #bias, #out, scratch,
                &rt::kernels::qconv::QConv {
                    batch: #batch, in_channels: #ch, out_channels: #m, group: #g,
                    win: #win, nr: #nr, rows: #rows,
                    tiles: rt::kernels::gemm::Tiles { mr: #mr, kc: #kc, mc: #mc },
                });
        }})
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        let mut a = self.geometry.attrs();
        a.push(("group", self.group.to_string()));
        a.push(("out_channels", self.out_channels.to_string()));
        a.push(("nr", self.nr.to_string()));
        a.push(("bias", self.bias.to_string()));
        a.push((
            "input",
            match self.input {
                QConvInput::Dynamic => "dynamic-tensor-u8".into(),
                QConvInput::Quantized {
                    scale,
                    zero_point,
                    u8,
                } => format!(
                    "{} scale={scale:e} zp={zero_point}",
                    if u8 { "u8" } else { "i8" }
                ),
            },
        ));
        a.push((
            "output",
            match self.output {
                QConvOutput::F32 => "f32".into(),
                QConvOutput::Quantized { zero_point, u8 } => {
                    format!("{} zp={zero_point}", if u8 { "u8" } else { "i8" })
                }
            },
        ));
        a.push((
            "tiles",
            format!("{} {}x{}", self.kernel, self.tiles.mr, self.nr),
        ));
        a
    }
}

/// Pack ONNX int8 weights `w` `[M, C/group, kernel..]` (`kg = C/group · ksize` values per
/// output channel) with per-output-channel `scales` (`M`) into the `QConv` blob for panels of
/// `nr` columns (build time).
pub fn pack_weight(
    w: &[i8],
    scales: &[f32],
    out_channels: usize,
    group: usize,
    kg: usize,
    nr: usize,
) -> Result<Vec<u8>, OpError> {
    if group == 0
        || !out_channels.is_multiple_of(group)
        || w.len() != out_channels * kg
        || scales.len() != out_channels
    {
        return invalid!(
            "{} weights / {} scales do not fit {out_channels} channels of depth {kg} in {group} groups",
            w.len(),
            scales.len()
        );
    }
    let mg = out_channels / group;
    let gb = qgemm::packed_i8_bytes(kg, mg, nr);
    let mut out = vec![0u8; group * gb];
    let mut q = vec![0i8; kg * mg];
    for (g, blob) in out.chunks_exact_mut(gb).enumerate() {
        for (j, row) in w.chunks_exact(kg).skip(g * mg).take(mg).enumerate() {
            for (p, &v) in row.iter().enumerate() {
                q[p * mg + j] = v;
            }
        }
        qgemm::pack_i8(&q, &scales[g * mg..(g + 1) * mg], kg, mg, nr, blob);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::conv::Conv;
    use crate::ops::util::blob;

    fn geometry() -> Geometry {
        Geometry {
            kernel: vec![3, 3],
            strides: vec![2, 1],
            dilations: vec![1, 1],
            pads_begin: vec![1, 1],
            pads_end: vec![1, 0],
            ceil_mode: false,
        }
    }

    fn op(input: QConvInput, output: QConvOutput, group: usize) -> QConv {
        QConv {
            geometry: geometry(),
            group,
            out_channels: 4,
            nr: 8,
            bias: true,
            input,
            output,
            tiles: Tiles {
                mr: 4,
                kc: 256,
                mc: 64,
            },
            kernel: "portable",
        }
    }

    /// A grouped u8 convolution equals the float `Conv` of the dequantized operands.
    #[test]
    fn equals_the_float_conv_of_dequantized_operands() {
        let (c, m, g) = (4, 4, 2);
        let xq: Vec<u8> = (0..c * 5 * 4).map(|i| (i * 37 % 256) as u8).collect();
        let kg = c / g * 9;
        let wq: Vec<i8> = (0..m * kg)
            .map(|i| (i as i32 * 53 % 255 - 127) as i8)
            .collect();
        let (sx, zx) = (0.02f32, 120);
        let sw = [0.5f32, 0.25, 0.125, 1.0];
        let bias = vec![0.5f32, -1.0, 2.0, 0.0];
        let x = Tensor::new(
            TensorType::new(DType::U8, vec![1, c, 5, 4]),
            crate::ir::Data::U8(xq.clone()),
        )
        .unwrap();
        let w = blob(pack_weight(&wq, &sw, m, g, kg, 8).unwrap());
        let b = Tensor::from_f32s(vec![m], bias.clone()).unwrap();
        let q = op(
            QConvInput::Quantized {
                scale: sx,
                zero_point: zx,
                u8: true,
            },
            QConvOutput::F32,
            g,
        );
        let ty = q.infer(&[&x.ty, &w.ty, &b.ty]).unwrap();
        let got = q.eval(&[&x, &w, &b], &ty).unwrap()[0].data.to_f64_vec();
        let xf: Vec<f32> = xq.iter().map(|&v| (v as i32 - zx) as f32 * sx).collect();
        let wf: Vec<f32> = wq
            .iter()
            .enumerate()
            .map(|(i, &v)| v as f32 * sw[i / kg])
            .collect();
        let conv = Conv {
            geometry: geometry(),
            group: g,
        };
        let xf = Tensor::from_f32s(vec![1, c, 5, 4], xf).unwrap();
        let wf = Tensor::from_f32s(vec![m, c / g, 3, 3], wf).unwrap();
        let cty = conv.infer(&[&xf.ty, &wf.ty, &b.ty]).unwrap();
        assert_eq!(cty[0], ty[0]);
        let want = conv.eval(&[&xf, &wf, &b], &cty).unwrap()[0]
            .data
            .to_f64_vec();
        for (a, e) in got.iter().zip(&want) {
            assert!(
                (a - e).abs() <= 1e-4 * e.abs().max(1.0),
                "{got:?} vs {want:?}"
            );
        }
    }

    #[test]
    fn infer_rejects_bad_groups_dtypes_and_blobs() {
        let x = TensorType::new(DType::U8, vec![1, 4, 5, 4]);
        let b = TensorType::new(DType::F32, vec![4]);
        let quant = QConvInput::Quantized {
            scale: 0.1,
            zero_point: 3,
            u8: true,
        };
        let good = op(quant, QConvOutput::F32, 2);
        let w = TensorType::new(DType::U8, vec![good.weight_bytes(4)]);
        assert!(good.infer(&[&x, &w, &b]).is_ok());
        // group 3 does not divide 4 channels.
        assert!(op(quant, QConvOutput::F32, 3).infer(&[&x, &w, &b]).is_err());
        // int8 input declared uint8.
        let xi = TensorType::new(DType::I8, vec![1, 4, 5, 4]);
        assert!(good.infer(&[&xi, &w, &b]).is_err());
        // wrong blob length.
        let bad = TensorType::new(DType::U8, vec![7]);
        assert!(good.infer(&[&x, &bad, &b]).is_err());
        // requantized output without multipliers, and after a dynamic input.
        let rq = QConvOutput::Quantized {
            zero_point: 0,
            u8: true,
        };
        assert!(op(quant, rq, 2).infer(&[&x, &w, &b]).is_err());
        let xf = TensorType::new(DType::F32, vec![1, 4, 5, 4]);
        assert!(
            op(QConvInput::Dynamic, rq, 2)
                .infer(&[&xf, &w, &b, &b])
                .is_err()
        );
    }
}
