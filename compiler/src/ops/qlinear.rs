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
/// per output column with its scales, packed for panels of `nr` columns), and (when `bias`)
/// `bias: f32[n]`. Outputs: `y: f32[..., n]` and the activation-quantization scratch, planned
/// in the arena and never read by other nodes: `qa: i8[m · qa_stride(k)]`,
/// `a_scales: f32[m]`, `a_zero_points: i32[m]` with `m` the number of rows of `x`.
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
}

impl QLinear {
    /// Bytes of this layer's weight blob.
    pub fn weight_bytes(&self) -> usize {
        qgemm::packed_i8_bytes(self.k, self.n, self.nr)
    }

    fn rows(&self, x: &TensorType) -> usize {
        x.numel().checked_div(self.k).unwrap_or(0)
    }
}

impl OpDef for QLinear {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        util::check_blob_linear(
            inputs,
            self.bias,
            [self.k, self.n, self.nr],
            self.weight_bytes(),
        )?;
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
        let m = self.rows(x);
        let qa = m
            .checked_mul(qgemm::qa_stride(self.k))
            .ok_or_else(|| OpError::Invalid("activation scratch overflows".into()))?;
        Ok(vec![
            output,
            TensorType::new(DType::I8, vec![qa]),
            TensorType::new(DType::F32, vec![m]),
            TensorType::new(DType::I32, vec![m]),
        ])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let x = util::data::<f32>(inputs[0])?;
        let w = util::data::<u8>(inputs[1])?;
        let bias = util::optional_bias(inputs)?;
        let m = self.rows(&inputs[0].ty);
        let mut out = util::zeros(&outputs[0])?;
        let mut qa = util::zeros(&outputs[1])?;
        let mut scales = util::zeros(&outputs[2])?;
        let mut zps = util::zeros(&outputs[3])?;
        {
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
        let g = QGemm {
            m,
            k: self.k,
            n: self.n,
            ldc: self.n,
            a_scales: util::data::<f32>(&scales)?,
            a_zero_points: util::data::<i32>(&zps)?,
            bias,
            activation: self.activation,
            tiles: self.tiles,
        };
        qgemm::qgemm(
            util::data::<i8>(&qa)?,
            QWeights::new(w, self.k, self.n, self.nr),
            util::data_mut::<f32>(&mut out)?,
            &g,
        );
        Ok(vec![out, qa, scales, zps])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        let m = lit_usize(self.rows(&ctx.inputs[0]));
        let (k, n, nr) = (lit_usize(self.k), lit_usize(self.n), lit_usize(self.nr));
        let (mr, kc, mc) = (
            lit_usize(self.tiles.mr),
            lit_usize(self.tiles.kc),
            lit_usize(self.tiles.mc),
        );
        let (x, w, y) = (ctx.input(0), ctx.input(1), ctx.output(0));
        let (qa, s, z) = (ctx.output(1), ctx.output(2), ctx.output(3));
        let quantize = match self.act_quant {
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
        let bias = if self.bias {
            let b = ctx.input(2);
            quote!(Some(#b))
        } else {
            quote!(None)
        };
        let act = activation_path(self.activation);
        // One row (a decode step) runs the one-row product; same bits as the GEMM.
        let kernel = if self.rows(&ctx.inputs[0]) == 1 {
            quote!(rt::kernels::qgemv::qgemv)
        } else {
            quote!(rt::kernels::qgemm::qgemm)
        };
        Ok(quote! {
            #quantize
            #kernel(#qa, rt::kernels::qgemm::QWeights::new(#w, #k, #n, #nr), #y,
                &rt::kernels::qgemm::QGemm {
                    m: #m, k: #k, n: #n, ldc: #n,
                    a_scales: #s, a_zero_points: #z,
                    bias: #bias,
                    activation: #act,
                    tiles: rt::kernels::gemm::Tiles { mr: #mr, kc: #kc, mc: #mc },
                });
        })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("k", self.k.to_string()),
            ("n", self.n.to_string()),
            ("nr", self.nr.to_string()),
            (
                "epilogue",
                super::linear::epilogue(self.bias, self.activation),
            ),
            ("act", self.act_quant.describe()),
            (
                "tiles",
                format!(
                    "{} {}x{} kc={} mc={}",
                    self.kernel, self.tiles.mr, self.nr, self.tiles.kc, self.tiles.mc
                ),
            ),
        ]
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
