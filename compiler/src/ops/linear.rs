//! `Linear`: `y = act(x · W + bias)` — a MatMul whose right operand is a constant weight,
//! with the bias add and activation fused into the GEMM's epilogue (made by the passes
//! `fuse_linear`, `fuse_linear_activation`, `pack_linear_weights`; no ONNX op maps to it).
use super::OpDef;
use super::util::{self, EmitCtx, expect_inputs, lit_usize};
use crate::error::OpError;
use crate::invalid;
use crate::ir::{DType, Tensor, TensorType};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use runtime_core::kernels::gemm::{self, Activation, BMatrix, Gemm, Tiles};

/// Inputs: `x: f32[..., k]`, the weight, and (when `bias`) `bias: f32[n]`; output
/// `f32[..., n]`. The weight is row-major `f32[k, n]` while `nr == 0`, else packed into
/// panels of `nr` columns (`f32[ceil(n/nr)·k·nr]`, see `runtime_core::kernels::gemm::pack_b`).
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    pub k: usize,
    pub n: usize,
    /// Panel width of the packed weight; 0 while the weight is still row-major.
    pub nr: usize,
    pub bias: bool,
    pub activation: Activation,
    /// Register block rows and cache blocks, from the target profile.
    pub tiles: Tiles,
    /// The kernel the tiles were chosen for (`avx512`, `avx2`, `neon`, `portable`), for
    /// reports.
    pub kernel: &'static str,
}

impl Linear {
    /// An unpacked linear layer with default tiles (until `pack_linear_weights` runs).
    pub fn new(k: usize, n: usize) -> Self {
        Linear {
            k,
            n,
            nr: 0,
            bias: false,
            activation: Activation::None,
            tiles: Tiles {
                mr: 4,
                kc: 256,
                mc: 64,
            },
            kernel: "portable",
        }
    }

    fn weight_type(&self) -> TensorType {
        if self.nr == 0 {
            TensorType::new(DType::F32, vec![self.k, self.n])
        } else {
            TensorType::new(DType::F32, vec![gemm::packed_len(self.k, self.n, self.nr)])
        }
    }

    /// The epilogue in words, for reports.
    pub fn epilogue(&self) -> String {
        epilogue(self.bias, self.activation)
    }
}

/// A GEMM epilogue in words (`bias+gelu`, `none`, ..), for reports.
pub fn epilogue(bias: bool, activation: Activation) -> String {
    let act = match activation {
        Activation::None => None,
        Activation::Relu => Some("relu"),
        Activation::Gelu => Some("gelu"),
        Activation::GeluTanh => Some("gelu_tanh"),
        Activation::Silu => Some("silu"),
    };
    match (bias, act) {
        (true, Some(a)) => format!("bias+{a}"),
        (true, None) => "bias".into(),
        (false, Some(a)) => a.into(),
        (false, None) => "none".into(),
    }
}

/// `rt::kernels::gemm::Activation::X` as tokens.
pub fn activation_path(a: Activation) -> TokenStream {
    let v = format_ident!("{}", format!("{a:?}"));
    quote!(rt::kernels::gemm::Activation::#v)
}

impl OpDef for Linear {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        expect_inputs(inputs, 2, 3)?;
        if inputs.len() != 2 + usize::from(self.bias) {
            return invalid!(
                "bias={} needs {} inputs",
                self.bias,
                2 + usize::from(self.bias)
            );
        }
        let x = inputs[0];
        if inputs.iter().any(|t| t.dtype != DType::F32) {
            return invalid!("Linear is f32 only");
        }
        if x.shape.last() != Some(&self.k) {
            return invalid!("input {x} does not end in k = {}", self.k);
        }
        if inputs[1] != &self.weight_type() {
            return invalid!("weight is {}, expected {}", inputs[1], self.weight_type());
        }
        let output = util::linear_output(x, self.n, self.bias.then(|| inputs[2]))?;
        Ok(vec![output])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let x = util::data::<f32>(inputs[0])?;
        let w = util::data::<f32>(inputs[1])?;
        let bias = util::optional_bias(inputs)?;
        let mut out = util::zeros(&outputs[0])?;
        let m = x
            .len()
            .checked_div(self.k)
            .unwrap_or(outputs[0].numel() / self.n.max(1));
        let b = if self.nr == 0 {
            BMatrix::row_major(w, self.n, 8)
        } else {
            BMatrix::packed(w, self.k, self.nr)
        };
        let g = Gemm {
            m,
            k: self.k,
            n: self.n,
            lda: self.k,
            ldc: self.n,
            bias,
            activation: self.activation,
            tiles: self.tiles,
        };
        gemm::reference::gemm(x, b, util::data_mut::<f32>(&mut out)?, &g);
        Ok(vec![out])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        let numel = ctx.outputs[0].numel();
        let m = lit_usize(numel.checked_div(self.n).unwrap_or(0));
        let (k, n) = (lit_usize(self.k), lit_usize(self.n));
        let (mr, kc, mc) = (
            lit_usize(self.tiles.mr),
            lit_usize(self.tiles.kc),
            lit_usize(self.tiles.mc),
        );
        let (x, w, o) = (ctx.input(0), ctx.input(1), ctx.output(0));
        let b = if self.nr == 0 {
            quote!(rt::kernels::gemm::BMatrix::row_major(#w, #n, rt::kernels::gemm::native_nr()))
        } else {
            let nr = lit_usize(self.nr);
            quote!(rt::kernels::gemm::BMatrix::packed(#w, #k, #nr))
        };
        let bias = if self.bias {
            let b = ctx.input(2);
            quote!(Some(#b))
        } else {
            quote!(None)
        };
        let act = activation_path(self.activation);
        if numel == self.n && self.nr != 0 {
            // One row (a decode step): the matrix-vector kernel over the same packed panels.
            return Ok(quote! {
                rt::kernels::gemv::gemv(#x, #b, #o, #k, #n, #bias, #act);
            });
        }
        Ok(quote! {
            rt::kernels::gemm::gemm(#x, #b, #o, &rt::kernels::gemm::Gemm {
                m: #m, k: #k, n: #n, lda: #k, ldc: #n,
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
            ("epilogue", self.epilogue()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_and_row_major_weights_give_the_same_product() {
        let x = Tensor::from_f32s(vec![2, 3], vec![1.0, 2.0, 3.0, -1.0, 0.5, 2.0]).unwrap();
        let w: Vec<f32> = (0..12).map(|v| v as f32 * 0.25 - 1.0).collect();
        let bias = Tensor::from_f32s(vec![4], vec![0.5, -0.5, 1.0, 0.0]).unwrap();
        let mut op = Linear::new(3, 4);
        op.bias = true;
        op.activation = Activation::Relu;
        let wt = Tensor::from_f32s(vec![3, 4], w.clone()).unwrap();
        let ty = op.infer(&[&x.ty, &wt.ty, &bias.ty]).unwrap();
        let plain = op.eval(&[&x, &wt, &bias], &ty).unwrap();
        op.nr = 3;
        let mut packed = vec![0.0; gemm::packed_len(3, 4, 3)];
        gemm::pack_b(&w, 3, 4, 3, &mut packed);
        let pt = Tensor::from_f32s(vec![packed.len()], packed).unwrap();
        let ty2 = op.infer(&[&x.ty, &pt.ty, &bias.ty]).unwrap();
        assert_eq!(ty, ty2);
        let out = op.eval(&[&x, &pt, &bias], &ty2).unwrap();
        assert_eq!(plain[0].data.to_f64_vec(), out[0].data.to_f64_vec());
        // Row 0: [1,2,3]·W + bias, then relu.
        let row0: Vec<f64> = (0..4)
            .map(|j| {
                let s: f32 = (0..3).map(|p| [1.0f32, 2.0, 3.0][p] * w[p * 4 + j]).sum();
                ((s + [0.5f32, -0.5, 1.0, 0.0][j]).max(0.0)) as f64
            })
            .collect();
        assert_eq!(&out[0].data.to_f64_vec()[..4], &row0[..]);
    }
}
