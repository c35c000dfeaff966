//! `Linear`: `y = act(x · W + bias)` — a MatMul whose right operand is a constant weight,
//! with the bias add and activation fused into the GEMM's epilogue (made by the passes
//! `fuse_linear`, `fuse_linear_activation`, `pack_linear_weights`, `fuse_swiglu`,
//! `merge_linears`, `fuse_residual`; no ONNX op maps to it).
use super::OpDef;
use super::util::{self, EmitCtx, expect_inputs, lit_usize};
use crate::error::OpError;
use crate::invalid;
use crate::ir::{DType, Tensor, TensorType};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use runtime_core::kernels::gemm::{self, Activation, BMatrix, Gemm, Tiles};

/// Inputs: `x: f32[..., k]`, the weight, (when `bias`) `bias: f32[n]`, (when `residual`)
/// `r: f32[..., n]`; output `f32[..., n]`. The weight is row-major `f32[k, n]` while
/// `nr == 0`, else packed into panels of `nr` columns (`f32[ceil(n/nr)·k·nr]`, see
/// `runtime_core::kernels::gemm::pack_b`).
///
/// With `parts` (packed weights only) the weight is several layers' side by side: part `i`
/// (`parts[i]` columns) is packed on its own and the blobs are concatenated, the bias is the
/// parts' biases concatenated, and each part is its own output `f32[..., parts[i]]` (no
/// split or view: every part's product writes its output directly). With `swiglu` there are
/// two equal parts (gate, up) and one output `silu(x·Wg + bg) ⊙ (x·Wu + bu)`, plus, for
/// more than one row, a scratch output `f32[rows · n/2]` holding the up-projection.
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
    /// Output widths of the layers merged into this one (empty: one output of `n`).
    pub parts: Vec<usize>,
    /// Two parts combined as `silu(gate) ⊙ up` into one output (the activation stays `None`).
    pub swiglu: bool,
    /// A residual input added after the activation: `y = act(x·W + b) + r`.
    pub residual: bool,
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
            parts: Vec::new(),
            swiglu: false,
            residual: false,
        }
    }

    /// The output widths of the layers side by side in the weight (`[n]` unless merged).
    pub fn part_widths(&self) -> Vec<usize> {
        if self.parts.is_empty() {
            vec![self.n]
        } else {
            self.parts.clone()
        }
    }

    fn weight_type(&self) -> TensorType {
        if self.nr == 0 {
            TensorType::new(DType::F32, vec![self.k, self.n])
        } else {
            let len = self
                .part_widths()
                .iter()
                .map(|&w| gemm::packed_len(self.k, w, self.nr))
                .sum();
            TensorType::new(DType::F32, vec![len])
        }
    }

    /// The epilogue in words, for reports.
    pub fn epilogue(&self) -> String {
        let mut s = epilogue(self.bias, self.activation);
        if self.swiglu {
            s = if self.bias { "bias+swiglu" } else { "swiglu" }.into();
        }
        if self.residual {
            s = if s == "none" {
                "residual".into()
            } else {
                s + "+residual"
            };
        }
        s
    }

    /// Inputs the op takes: x, weight, bias?, residual?.
    fn input_count(&self) -> usize {
        2 + usize::from(self.bias) + usize::from(self.residual)
    }
}

/// `(weight offset, weight length, column offset, columns)` of each part.
fn part_ranges(k: usize, nr: usize, widths: &[usize]) -> Vec<(usize, usize, usize, usize)> {
    let (mut w_off, mut c_off) = (0, 0);
    widths
        .iter()
        .map(|&n| {
            let len = if nr == 0 {
                k * n
            } else {
                gemm::packed_len(k, n, nr)
            };
            let r = (w_off, len, c_off, n);
            w_off += len;
            c_off += n;
            r
        })
        .collect()
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
        expect_inputs(inputs, 2, 4)?;
        if inputs.len() != self.input_count() {
            return invalid!(
                "bias={} residual={} needs {} inputs",
                self.bias,
                self.residual,
                self.input_count()
            );
        }
        let widths = self.part_widths();
        if widths.iter().sum::<usize>() != self.n || (!self.parts.is_empty() && self.nr == 0) {
            return invalid!(
                "parts {:?} do not split n = {} of a packed weight",
                widths,
                self.n
            );
        }
        if self.swiglu
            && (widths.len() != 2 || widths[0] != widths[1] || self.activation != Activation::None)
        {
            return invalid!("swiglu needs two equal parts and no activation");
        }
        if self.residual && (widths.len() != 1 || self.swiglu) {
            return invalid!("a residual needs a single-part Linear");
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
        if self.residual && inputs[self.input_count() - 1] != &output {
            return invalid!(
                "residual is {}, expected {output}",
                inputs[self.input_count() - 1]
            );
        }
        let part_type = |n: usize| util::linear_output(x, n, None);
        if self.swiglu {
            let h = widths[0];
            let out = part_type(h)?;
            let rows = out.numel() / h.max(1);
            if rows > 1 {
                return Ok(vec![out, TensorType::new(DType::F32, vec![rows * h])]);
            }
            return Ok(vec![out]);
        }
        widths.iter().map(|&n| part_type(n)).collect()
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let x = util::data::<f32>(inputs[0])?;
        let w = util::data::<f32>(inputs[1])?;
        let bias = util::optional_bias(inputs)?.filter(|_| self.bias);
        let widths = self.part_widths();
        let m = x.len().checked_div(self.k).unwrap_or(0);
        let mut parts = Vec::with_capacity(widths.len());
        for (i, (w_off, w_len, c_off, n)) in part_ranges(self.k, self.nr, &widths)
            .into_iter()
            .enumerate()
        {
            let w = w
                .get(w_off..w_off + w_len)
                .ok_or_else(|| OpError::Invalid(format!("weight shorter than part {i}")))?;
            let b = if self.nr == 0 {
                BMatrix::row_major(w, n, 8)
            } else {
                BMatrix::packed(w, self.k, self.nr)
            };
            let activation = if self.swiglu && i == 0 {
                Activation::Silu
            } else {
                self.activation
            };
            let g = Gemm {
                m,
                k: self.k,
                n,
                lda: self.k,
                ldc: n,
                bias: bias.and_then(|b| b.get(c_off..c_off + n)),
                activation,
                tiles: self.tiles,
            };
            let mut out = vec![0.0f32; m * n];
            gemm::reference::gemm(x, b, &mut out, &g);
            parts.push(out);
        }
        if self.residual {
            let r = util::data::<f32>(inputs[self.input_count() - 1])?;
            runtime_core::kernels::gemv::add_assign(&mut parts[0], r);
        }
        if self.swiglu {
            let up = parts.pop().unwrap_or_default();
            runtime_core::kernels::gemv::mul_assign(&mut parts[0], &up);
            parts.push(up);
        }
        outputs
            .iter()
            .zip(parts)
            .map(|(ty, data)| {
                Tensor::new(ty.clone(), crate::ir::Data::F32(data))
                    .map_err(|e| OpError::Invalid(e.to_string()))
            })
            .collect()
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        let widths = self.part_widths();
        let rows = ctx.outputs[0].numel().checked_div(widths[0]).unwrap_or(0);
        let one_row = rows == 1 && self.nr != 0;
        let ranges = part_ranges(self.k, self.nr, &widths);
        let single = ranges.len() == 1;
        let (x, w) = (ctx.input(0), ctx.input(1));
        let k = lit_usize(self.k);
        // The weight and bias slices of part `i`.
        let slices = |i: usize| {
            let (w_off, w_len, c_off, n) = ranges[i];
            let wt = if single {
                quote!(#w)
            } else {
                let (a, b) = (lit_usize(w_off), lit_usize(w_off + w_len));
                quote!(&#w[#a..#b])
            };
            let bmat = if self.nr == 0 {
                let n = lit_usize(n);
                quote!(rt::kernels::gemm::BMatrix::row_major(#wt, #n, rt::kernels::gemm::native_nr()))
            } else {
                let nr = lit_usize(self.nr);
                quote!(rt::kernels::gemm::BMatrix::packed(#wt, #k, #nr))
            };
            let bias = if !self.bias {
                quote!(None)
            } else if single {
                let b = ctx.input(2);
                quote!(Some(#b))
            } else {
                let b = ctx.input(2);
                let (a, e) = (lit_usize(c_off), lit_usize(c_off + n));
                quote!(Some(&#b[#a..#e]))
            };
            (bmat, bias, lit_usize(n))
        };
        let product = |i: usize, out: &proc_macro2::Ident, act: Activation| {
            let (b, bias, n) = slices(i);
            let act = activation_path(act);
            if one_row {
                // One row (a decode step): the matrix-vector kernel over the same panels.
                return quote! {
                    rt::kernels::gemv::gemv(#x, #b, #out, #k, #n, #bias, #act);
                };
            }
            let m = lit_usize(rows);
            let (mr, kc, mc) = (
                lit_usize(self.tiles.mr),
                lit_usize(self.tiles.kc),
                lit_usize(self.tiles.mc),
            );
            quote! {
                rt::kernels::gemm::gemm(#x, #b, #out, &rt::kernels::gemm::Gemm {
                    m: #m, k: #k, n: #n, lda: #k, ldc: #n,
                    bias: #bias,
                    activation: #act,
                    tiles: rt::kernels::gemm::Tiles { mr: #mr, kc: #kc, mc: #mc },
                });
            }
        };
        let o = ctx.output(0);
        if self.swiglu {
            if one_row {
                let ((g, bg, n), (u, bu, _)) = (slices(0), slices(1));
                return Ok(quote! {
                    rt::kernels::gemv::gemv_swiglu(#x, #g, #u, #o, #k, #n, #bg, #bu);
                });
            }
            let scratch = ctx.output(1);
            let gate = product(0, &o, Activation::Silu);
            let up = product(1, &scratch, Activation::None);
            return Ok(quote! {
                #gate
                #up
                rt::kernels::gemv::mul_assign(#o, #scratch);
            });
        }
        let mut code = TokenStream::new();
        for i in 0..ranges.len() {
            code.extend(product(i, &ctx.output(i), self.activation));
        }
        if self.residual {
            let r = ctx.input(self.input_count() - 1);
            code.extend(quote!(rt::kernels::gemv::add_assign(#o, #r);));
        }
        Ok(code)
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        let mut attrs = vec![
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
        ];
        if !self.parts.is_empty() {
            let parts: Vec<String> = self.parts.iter().map(|p| p.to_string()).collect();
            attrs.push(("parts", parts.join("+")));
        }
        attrs
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
