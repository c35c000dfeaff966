//! `Conv`: grouped N-D convolution with optional bias (ONNX Conv, ConvInteger through
//! casts), and the window geometry it shares with pooling.
use super::OpDef;
use super::util::{self, EmitCtx, expect_inputs, lit_usize, usize_slice};
use crate::error::OpError;
use crate::ir::{DType, Tensor, TensorType};
use crate::{for_dtype, invalid, unsupported};
use proc_macro2::TokenStream;
use quote::quote;
use runtime_core::kernels::conv;

/// Kernel, strides, dilations and explicit pads per spatial axis (auto_pad is resolved by
/// the frontend); `ceil_mode` rounds the output size up (pooling).
#[derive(Debug, Clone, PartialEq)]
pub struct Geometry {
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    pub pads_begin: Vec<usize>,
    pub pads_end: Vec<usize>,
    pub ceil_mode: bool,
}

impl Geometry {
    /// Output spatial sizes for input spatial sizes, validating everything the kernels
    /// rely on.
    pub fn output(&self, input: &[usize]) -> Result<Vec<usize>, OpError> {
        let n = input.len();
        if n == 0 || n + 2 > runtime_core::MAX_RANK {
            return unsupported!("{n} spatial axes");
        }
        for (what, v) in [
            ("kernel", &self.kernel),
            ("strides", &self.strides),
            ("dilations", &self.dilations),
            ("pads", &self.pads_begin),
            ("pads", &self.pads_end),
        ] {
            if v.len() != n {
                return invalid!("{what} {v:?} does not have {n} spatial entries");
            }
        }
        if self.kernel.contains(&0) || self.strides.contains(&0) || self.dilations.contains(&0) {
            return invalid!("zero kernel size, stride or dilation");
        }
        let mut out = Vec::with_capacity(n);
        for (d, &size_in) in input.iter().enumerate() {
            let extent = (self.kernel[d] - 1) * self.dilations[d] + 1;
            let padded = size_in + self.pads_begin[d] + self.pads_end[d];
            if padded < extent {
                return invalid!(
                    "window {extent} exceeds padded input {padded} on spatial axis {d}"
                );
            }
            let s = self.strides[d];
            let mut size = if self.ceil_mode {
                (padded - extent).div_ceil(s) + 1
            } else {
                (padded - extent) / s + 1
            };
            // A window that starts in the end padding is dropped.
            if self.ceil_mode && (size - 1) * s >= size_in + self.pads_begin[d] {
                size -= 1;
            }
            out.push(size);
        }
        Ok(out)
    }

    /// `rt::kernels::conv::Window { .. }` for the given spatial sizes.
    pub fn window_tokens(&self, input: &[usize], output: &[usize]) -> TokenStream {
        let (i, o, k, s, d, pb, pe) = (
            usize_slice(input),
            usize_slice(output),
            usize_slice(&self.kernel),
            usize_slice(&self.strides),
            usize_slice(&self.dilations),
            usize_slice(&self.pads_begin),
            usize_slice(&self.pads_end),
        );
        quote!(&rt::kernels::conv::Window { input: #i, output: #o, kernel: #k, strides: #s, dilations: #d, pads_begin: #pb, pads_end: #pe })
    }

    pub fn window<'a>(&'a self, input: &'a [usize], output: &'a [usize]) -> conv::Window<'a> {
        conv::Window {
            input,
            output,
            kernel: &self.kernel,
            strides: &self.strides,
            dilations: &self.dilations,
            pads_begin: &self.pads_begin,
            pads_end: &self.pads_end,
        }
    }

    pub fn attrs(&self) -> Vec<(&'static str, String)> {
        let list = |v: &[usize]| format!("{v:?}").replace(' ', "");
        vec![
            ("kernel", list(&self.kernel)),
            ("strides", list(&self.strides)),
            ("dilations", list(&self.dilations)),
            ("pads_begin", list(&self.pads_begin)),
            ("pads_end", list(&self.pads_end)),
            ("ceil_mode", self.ceil_mode.to_string()),
        ]
    }
}

/// `y = conv(x, w) + bias`: `x` `[N, C, spatial..]`, `w` `[M, C/group, kernel..]`, bias
/// `[M]`; all one numeric non-bool dtype (integers wrap).
#[derive(Debug, Clone, PartialEq)]
pub struct Conv {
    pub geometry: Geometry,
    pub group: usize,
}

impl OpDef for Conv {
    fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, OpError> {
        expect_inputs(inputs, 2, 3)?;
        let (x, w) = (inputs[0], inputs[1]);
        if x.dtype != w.dtype || inputs.get(2).is_some_and(|b| b.dtype != x.dtype) {
            return invalid!("operand types differ: {x}, {w}");
        }
        if x.dtype == DType::Bool {
            return invalid!("Conv of bool");
        }
        if x.rank() < 3 || w.rank() != x.rank() {
            return invalid!(
                "Conv needs X [N,C,spatial..] and W of the same rank, got {x} and {w}"
            );
        }
        let (c, m) = (x.shape[1], w.shape[0]);
        let g = self.group;
        if g == 0 || !c.is_multiple_of(g) || !m.is_multiple_of(g) || w.shape[1] * g != c {
            return invalid!("group {g} does not fit X {x} and W {w}");
        }
        if w.shape[2..] != self.geometry.kernel[..] {
            return invalid!("kernel {:?} differs from W {w}", self.geometry.kernel);
        }
        if let Some(b) = inputs.get(2)
            && b.shape != [m]
        {
            return invalid!("bias {b} must be [{m}]");
        }
        let spatial = self.geometry.output(&x.shape[2..])?;
        let mut shape = vec![x.shape[0], m];
        shape.extend(spatial);
        crate::ir::checked_numel(&x.shape)?;
        crate::ir::checked_numel(&shape)?;
        Ok(vec![TensorType::new(x.dtype, shape)])
    }

    fn eval(&self, inputs: &[&Tensor], outputs: &[TensorType]) -> Result<Vec<Tensor>, OpError> {
        let (x, w) = (inputs[0], inputs[1]);
        let mut out = util::zeros(&outputs[0])?;
        let (xs, os) = (&x.ty.shape, &outputs[0].shape);
        let win = self.geometry.window(&xs[2..], &os[2..]);
        for_dtype!(x.ty.dtype, T => {
            let bias: &[T] = match inputs.get(2) { Some(b) => util::data::<T>(b)?, None => &[] };
            conv::conv(util::data::<T>(x)?, util::data::<T>(w)?, bias, util::data_mut::<T>(&mut out)?, xs[0], xs[1], os[1], self.group, &win)
        });
        Ok(vec![out])
    }

    fn emit(&self, ctx: &EmitCtx<'_>) -> Result<TokenStream, OpError> {
        if ctx.outputs[0].numel() == 0 {
            return Ok(TokenStream::new());
        }
        let (x, w, o) = (ctx.input(0), ctx.input(1), ctx.output(0));
        let bias = if ctx.inputs.len() > 2 {
            let b = ctx.input(2);
            quote!(#b)
        } else {
            quote!(&[])
        };
        let (xs, os) = (&ctx.inputs[0].shape, &ctx.outputs[0].shape);
        let win = self.geometry.window_tokens(&xs[2..], &os[2..]);
        let (n, c, m, g) = (
            lit_usize(xs[0]),
            lit_usize(xs[1]),
            lit_usize(os[1]),
            lit_usize(self.group),
        );
        Ok(quote! { rt::kernels::conv::conv(#x, #w, #bias, #o, #n, #c, #m, #g, #win); })
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        let mut a = self.geometry.attrs();
        a.push(("group", self.group.to_string()));
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(kernel: usize, pad: usize, ceil_mode: bool) -> Geometry {
        Geometry {
            kernel: vec![kernel],
            strides: vec![2],
            dilations: vec![1],
            pads_begin: vec![pad],
            pads_end: vec![pad],
            ceil_mode,
        }
    }

    #[test]
    fn output_sizes_floor_and_ceil() {
        assert_eq!(geometry(3, 0, false).output(&[6]).unwrap(), vec![2]);
        assert_eq!(geometry(3, 0, true).output(&[6]).unwrap(), vec![3]);
        assert!(geometry(9, 0, false).output(&[6]).is_err());
    }

    #[test]
    fn conv_1d_with_bias() {
        // x = [1,2,3,4], w = [1,1] stride 2 -> [3, 7] + bias 1.
        let x = Tensor::from_f32s(vec![1, 1, 4], vec![1., 2., 3., 4.]).unwrap();
        let w = Tensor::from_f32s(vec![1, 1, 2], vec![1., 1.]).unwrap();
        let b = Tensor::from_f32s(vec![1], vec![1.]).unwrap();
        let op = Conv {
            geometry: geometry(2, 0, false),
            group: 1,
        };
        let ty = op.infer(&[&x.ty, &w.ty, &b.ty]).unwrap();
        assert_eq!(ty[0].shape, vec![1, 1, 2]);
        assert_eq!(
            op.eval(&[&x, &w, &b], &ty).unwrap()[0].data.to_f64_vec(),
            vec![4.0, 8.0]
        );
        let bad = Conv {
            geometry: geometry(3, 0, false),
            group: 1,
        };
        assert!(bad.infer(&[&x.ty, &w.ty]).is_err());
    }
}
