//! `HLinear`: `y = act(x · W + bias)` with W stored as IEEE half (`--quantize f16`), packed
//! into the panels the target's kernel reads and widened to f32 inside the kernel
//! (`runtime_core::kernels::hgemm`; made by the pass `quantize_f16`, no ONNX op maps to it).
use super::OpDef;
use super::linear::activation_path;
use super::util::{self, EmitCtx, lit_usize};
use crate::error::OpError;
use crate::ir::{DType, Tensor, TensorType};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::gemm::{Activation, Gemm, Tiles};
use runtime_core::kernels::hgemm::{self, HWeights};

/// Inputs: `x: f32[..., k]`, the weight blob `w: u8[hgemm::packed_h_bytes(k, n, nr)]` (half
/// bits, panels of `nr` columns) and (when `bias`) `bias: f32[n]`. Outputs: `y: f32[..., n]`
/// and, for more than one row of `x`, the scratch panel `f32[k · nr]` (planned in the arena,
/// read by no other node) that the kernel widens one weight panel into.
#[derive(Debug, Clone, PartialEq)]
pub struct HLinear {
    pub k: usize,
    pub n: usize,
    /// Panel width the blob was packed for.
    pub nr: usize,
    pub bias: bool,
    pub activation: Activation,
    /// Register block rows and cache blocks of the f32 GEMM, from the target profile.
    pub tiles: Tiles,
    /// The kernel the blob was packed for (for reports).
    pub kernel: &'static str,
}

impl HLinear {
    /// Bytes of this layer's weight blob.
    pub fn weight_bytes(&self) -> usize {
        hgemm::packed_h_bytes(self.k, self.n, self.nr)
    }

    fn rows(&self, x: &TensorType) -> usize {
        x.numel().checked_div(self.k).unwrap_or(0)
    }

    /// Whether the node for input `x` has the scratch output.
    pub fn has_scratch(&self, x: &TensorType) -> bool {
        hgemm::scratch_len(self.rows(x), self.k, self.nr) > 0
    }
}

impl OpDef for HLinear {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        util::check_blob_linear(
            inputs,
            self.bias,
            [self.k, self.n, self.nr],
            self.weight_bytes(),
        )?;
        let x = inputs[0];
        let mut out = vec![util::linear_output(
            x,
            self.n,
            self.bias.then(|| inputs[2]),
        )?];
        let scratch = hgemm::scratch_len(self.rows(x), self.k, self.nr);
        if scratch > 0 {
            out.push(TensorType::new(DType::F32, vec![scratch]));
        }
        Ok(out)
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let x = util::data::<f32>(inputs[0])?;
        let w = util::data::<u8>(inputs[1])?;
        let bias = util::optional_bias(inputs)?;
        let mut out = util::zeros(&outputs[0])?;
        let mut scratch = match outputs.get(1) {
            Some(t) => Some(util::zeros(t)?),
            None => None,
        };
        let g = Gemm {
            m: self.rows(&inputs[0].ty),
            k: self.k,
            n: self.n,
            lda: self.k,
            ldc: self.n,
            bias,
            activation: self.activation,
            tiles: self.tiles,
        };
        let s: &mut [f32] = match scratch.as_mut() {
            Some(t) => util::data_mut::<f32>(t)?,
            None => &mut [],
        };
        hgemm::hgemm(
            x,
            HWeights::new(w, self.k, self.n, self.nr),
            util::data_mut::<f32>(&mut out)?,
            &g,
            s,
        );
        Ok(std::iter::once(out).chain(scratch).collect())
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
        let scratch = if self.has_scratch(&ctx.inputs[0]) {
            let s = ctx.output(1);
            quote!(#s)
        } else {
            quote!(&mut [])
        };
        let bias = if self.bias {
            let b = ctx.input(2);
            quote!(Some(#b))
        } else {
            quote!(None)
        };
        let act = activation_path(self.activation);
        Ok(quote! {
            rt::kernels::hgemm::hgemm(#x, rt::kernels::hgemm::HWeights::new(#w, #k, #n, #nr), #y,
                &rt::kernels::gemm::Gemm {
                    m: #m, k: #k, n: #n, lda: #k, ldc: #n,
                    bias: #bias,
                    activation: #act,
                    tiles: rt::kernels::gemm::Tiles { mr: #mr, kc: #kc, mc: #mc },
                }, #scratch);
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

/// Round a row-major `f32[k, n]` weight to half and pack it for panels of `nr` columns:
/// the `HLinear` weight blob (build time). The caller checks the range first.
pub fn pack_weight(w: &[f32], k: usize, n: usize, nr: usize) -> Vec<u8> {
    let mut out = vec![0u8; hgemm::packed_h_bytes(k, n, nr)];
    hgemm::pack_h(w, k, n, nr, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::util::blob;

    fn layer(k: usize, n: usize, nr: usize, bias: bool) -> HLinear {
        HLinear {
            k,
            n,
            nr,
            bias,
            activation: Activation::Relu,
            tiles: Tiles {
                mr: 4,
                kc: 256,
                mc: 64,
            },
            kernel: "portable",
        }
    }

    /// Weights exact in half give the float product, for one row (no scratch) and several
    /// rows (a scratch output); a wrong blob size or bias count is refused.
    #[test]
    fn half_exact_weights_give_the_float_product() {
        let (k, n) = (5, 3);
        let w: Vec<f32> = (0..k * n).map(|i| (i as f32 - 7.0) * 0.125).collect();
        let b = Tensor::from_f32s(vec![n], vec![0.5, -1.0, 0.25]).unwrap();
        let wt = blob(pack_weight(&w, k, n, 4));
        for m in [1, 3] {
            let x: Vec<f32> = (0..m * k).map(|v| v as f32 * 0.5 - 2.0).collect();
            let expect: Vec<f64> = (0..m)
                .flat_map(|i| {
                    let (x, w, b) = (&x, &w, [0.5f32, -1.0, 0.25]);
                    (0..n).map(move |j| {
                        let s: f32 = (0..k).map(|p| x[i * k + p] * w[p * n + j]).sum();
                        (s + b[j]).max(0.0) as f64
                    })
                })
                .collect();
            let xt = Tensor::from_f32s(vec![m, k], x).unwrap();
            let op = layer(k, n, 4, true);
            let ty = op.infer(&[&xt.ty, &wt.ty, &b.ty]).unwrap();
            assert_eq!(ty.len(), if m == 1 { 1 } else { 2 });
            let got = op.eval(&[&xt, &wt, &b], &ty).unwrap()[0].data.to_f64_vec();
            assert_eq!(got, expect);
            assert!(op.infer(&[&xt.ty, &wt.ty]).is_err());
        }
        let short = blob(vec![0; 6]);
        let x = Tensor::from_f32s(vec![1, k], vec![0.0; k]).unwrap();
        assert!(layer(k, n, 4, false).infer(&[&x.ty, &short.ty]).is_err());
    }
}
