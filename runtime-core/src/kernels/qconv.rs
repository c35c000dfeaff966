//! Quantized convolution: int8/uint8 activations × int8 weights with exact i32 accumulation,
//! as im2col of the quantized input into a bounded scratch block (`rows` output positions at
//! a time) followed by the int8 GEMM of [`qgemm`](super::qgemm) (so its ISA variants run),
//! for any number of spatial axes, groups, strides, pads and dilations. Depthwise layers (one
//! input channel per group) take a direct path instead, [`depthwise`]: each output channel
//! is a `ksize`-tap filter of one input channel, too thin for a GEMM, so the taps are summed
//! along the last axis (contiguous at stride 1, pairs at stride 2, so the loop vectorises)
//! with no im2col; it gives the same i32 sums and the same f32 epilogue, so the same bits,
//! as the GEMM path.
//!
//! Layouts: the input `xq` is `[batch, in_channels, input..]` quantized and stored as i8
//! (uint8 values shifted by -128, their zero point too, as `qgemm` does); the weight blob
//! is `group` int8 blobs of [`qgemm::pack_i8`] back to back (each a multiple of 64 bytes),
//! group `g`'s holding the `kg × mg` matrix `W[ci·ksize + kp][j] = w[g·mg + j][ci][kp]`
//! (`kg = in_channels / group · ksize`, `mg = out_channels / group`); the output is
//! `[batch, out_channels, output..]`. Padding positions read the input zero point, i.e. a
//! real zero.
use super::conv::{Window, advance};
use super::gemm::{Activation, Tiles};
use super::qgemm::{self, QGemm, QWeights};
use crate::MAX_RANK;

/// Bytes of im2col scratch one block aims at (rows are added while they fit, at least 8).
const SCRATCH_BYTES: usize = 16 * 1024;

/// Output positions per im2col block for `positions` output positions and a depth of `kg`:
/// what [`Scratch`] is sized for.
pub const fn block_rows(positions: usize, kg: usize) -> usize {
    let mut rows = SCRATCH_BYTES / qgemm::qa_stride(kg);
    if rows < 8 {
        rows = 8;
    }
    if rows > positions {
        rows = positions;
    }
    if rows == 0 { 1 } else { rows }
}

/// Bytes of the packed weight blob: `group` int8 blobs of a `kg × mg` matrix.
pub fn packed_bytes(kg: usize, mg: usize, group: usize, nr: usize) -> usize {
    group * qgemm::packed_i8_bytes(kg, mg, nr)
}

/// Scratch buffers (planned in the arena by the compiler) for `rows` = [`block_rows`]:
/// `cols: i8[rows · qa_stride(kg)]`, `c: f32[rows · mg]`, `scales: f32[rows]`,
/// `zero_points: i32[rows]`.
pub struct Scratch<'a> {
    pub cols: &'a mut [i8],
    pub c: &'a mut [f32],
    pub scales: &'a mut [f32],
    pub zero_points: &'a mut [i32],
}

/// Where the result goes: f32 (`y = x_scale · w_scale[m] · acc + bias[m]`), or requantized
/// as ONNX `QLinearConv` does: `y = saturate(round_half_even(acc · multipliers[m]) + zp)`,
/// where the weight blob's scales are 1, `x_scale` is 1 and `bias` holds the int32 bias (as
/// f32), so `acc` is the exact integer sum including the bias (for |acc| < 2^24).
pub enum Output<'a> {
    F32(&'a mut [f32]),
    U8 {
        y: &'a mut [u8],
        multipliers: &'a [f32],
        zero_point: i32,
    },
    I8 {
        y: &'a mut [i8],
        multipliers: &'a [f32],
        zero_point: i32,
    },
}

impl Output<'_> {
    /// Write output channel `m`'s f32 results `values` from element `base` on, requantized
    /// in the quantized modes.
    #[inline]
    fn store(&mut self, base: usize, m: usize, values: impl Iterator<Item = f32>) {
        match self {
            Output::F32(y) => {
                for (o, v) in y[base..].iter_mut().zip(values) {
                    *o = v;
                }
            }
            Output::U8 {
                y,
                multipliers,
                zero_point,
            } => {
                let (mul, zp) = (multipliers[m], *zero_point);
                requantize_into(&mut y[base..], values, (mul, zp, 0, 255), |v| v as u8)
            }
            Output::I8 {
                y,
                multipliers,
                zero_point,
            } => {
                let (mul, zp) = (multipliers[m], *zero_point);
                requantize_into(&mut y[base..], values, (mul, zp, -128, 127), |v| v as i8)
            }
        }
    }
}

/// `out[i] = narrow(requantize(values[i], multiplier, zero_point, lo, hi))`.
#[inline]
fn requantize_into<T>(
    out: &mut [T],
    values: impl Iterator<Item = f32>,
    (multiplier, zero_point, lo, hi): (f32, i32, i32, i32),
    narrow: fn(i32) -> T,
) {
    for (o, v) in out.iter_mut().zip(values) {
        *o = narrow(requantize(v, multiplier, zero_point, lo, hi));
    }
}

/// Shapes and tiling of one quantized convolution.
pub struct QConv<'a> {
    pub batch: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub group: usize,
    pub win: &'a Window<'a>,
    /// Panel width the weight blob was packed for.
    pub nr: usize,
    /// Output positions per im2col block ([`block_rows`]).
    pub rows: usize,
    pub tiles: Tiles,
}

/// uint8 → the shifted i8 storage (`q - 128`).
pub fn shift_u8(x: &[u8], out: &mut [i8]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = (v ^ 0x80) as i8;
    }
}

/// ONNX `DynamicQuantizeLinear` of the whole input into `xq` (shifted i8, at least
/// `qa_stride(x.len())` long); returns `(scale, zero point)` in the shifted domain.
pub fn quantize_dynamic(x: &[f32], xq: &mut [i8], s: &mut Scratch<'_>) -> (f32, i32) {
    let k = x.len();
    qgemm::quantize_tensor_dynamic_u8(x, 1, k, k, xq, s.scales, s.zero_points);
    (s.scales[0], s.zero_points[0])
}

fn product(dims: &[usize]) -> usize {
    dims.iter().product()
}

/// The convolution of the quantized input `xq` (scale `x_scale`, zero point
/// `x_zero_point` in the shifted domain) with the packed weights `w`, plus `bias[m]`.
/// Panics on inconsistent shapes or buffer lengths (compile-time constants of a generated
/// crate, so a mismatch is a compiler bug).
#[allow(clippy::too_many_arguments)]
pub fn qconv(
    xq: &[i8],
    x_scale: f32,
    x_zero_point: i32,
    w: &[u8],
    bias: Option<&[f32]>,
    out: Output<'_>,
    s: Scratch<'_>,
    p: &QConv<'_>,
) {
    let win = p.win;
    let (in_size, out_size, ksize) = (product(win.input), product(win.output), product(win.kernel));
    let (c_in, m_out, group) = (p.in_channels, p.out_channels, p.group);
    assert!(
        group > 0 && c_in % group == 0 && m_out % group == 0,
        "qconv groups"
    );
    let (cg, mg) = (c_in / group, m_out / group);
    let kg = cg * ksize;
    let kgs = qgemm::qa_stride(kg);
    let gbytes = qgemm::packed_i8_bytes(kg, mg, p.nr);
    let rows = p.rows;
    assert!(rows > 0 && (-128..=127).contains(&x_zero_point));
    assert!(
        xq.len() >= p.batch * c_in * in_size,
        "qconv input too short"
    );
    assert!(w.len() == group * gbytes, "qconv weight blob length");
    assert!(s.cols.len() >= rows * kgs && s.c.len() >= rows * mg);
    assert!(s.scales.len() >= rows && s.zero_points.len() >= rows);
    let total = p.batch * m_out * out_size;
    match &out {
        Output::F32(y) => assert!(y.len() >= total),
        Output::U8 { y, multipliers, .. } => {
            assert!(y.len() >= total && multipliers.len() >= m_out)
        }
        Output::I8 { y, multipliers, .. } => {
            assert!(y.len() >= total && multipliers.len() >= m_out)
        }
    }
    if let Some(b) = bias {
        assert!(b.len() >= m_out, "qconv bias too short");
    }
    if cg == 1 {
        depthwise(xq, x_scale, x_zero_point, w, bias, out, p);
        return;
    }
    im2col_gemm(xq, x_scale, x_zero_point, w, bias, out, s, p);
}

/// The general path of [`qconv`] (which checks the arguments; public for the speed example
/// to compare with the depthwise path): im2col blocks of `p.rows` output
/// positions, one int8 GEMM per block and group.
#[allow(clippy::too_many_arguments)]
pub fn im2col_gemm(
    xq: &[i8],
    x_scale: f32,
    x_zero_point: i32,
    w: &[u8],
    bias: Option<&[f32]>,
    mut out: Output<'_>,
    s: Scratch<'_>,
    p: &QConv<'_>,
) {
    let win = p.win;
    let (in_size, out_size, ksize) = (product(win.input), product(win.output), product(win.kernel));
    let (c_in, m_out, group) = (p.in_channels, p.out_channels, p.group);
    let (cg, mg) = (c_in / group, m_out / group);
    let kg = cg * ksize;
    let kgs = qgemm::qa_stride(kg);
    let gbytes = qgemm::packed_i8_bytes(kg, mg, p.nr);
    let rows = p.rows;
    s.scales[..rows].fill(x_scale);
    s.zero_points[..rows].fill(x_zero_point);
    let pad = x_zero_point as i8;
    for n in 0..p.batch {
        for g in 0..group {
            let weights = QWeights::new(&w[g * gbytes..(g + 1) * gbytes], kg, mg, p.nr);
            let x0 = (n * c_in + g * cg) * in_size;
            let mut p0 = 0;
            while p0 < out_size {
                let r = rows.min(out_size - p0);
                // Multi-index of output position p0.
                let mut o = [0usize; MAX_RANK];
                let mut rem = p0;
                for d in (0..win.output.len()).rev() {
                    o[d] = rem % win.output[d];
                    rem /= win.output[d];
                }
                for row in s.cols[..r * kgs].chunks_exact_mut(kgs) {
                    let mut k = [0usize; MAX_RANK];
                    for kp in 0..ksize {
                        match win.offset(&o, &k) {
                            Some(off) => {
                                for ci in 0..cg {
                                    row[ci * ksize + kp] = xq[x0 + ci * in_size + off];
                                }
                            }
                            None => {
                                for ci in 0..cg {
                                    row[ci * ksize + kp] = pad;
                                }
                            }
                        }
                        advance(&mut k, win.kernel);
                    }
                    row[kg..].fill(0);
                    advance(&mut o, win.output);
                }
                let gemm = QGemm {
                    m: r,
                    k: kg,
                    n: mg,
                    ldc: mg,
                    a_scales: &s.scales[..r],
                    a_zero_points: &s.zero_points[..r],
                    bias: bias.map(|b| &b[g * mg..(g + 1) * mg]),
                    activation: Activation::None,
                    tiles: p.tiles,
                };
                qgemm::qgemm(&s.cols[..r * kgs], weights, &mut s.c[..r * mg], &gemm);
                for j in 0..mg {
                    let m = g * mg + j;
                    let base = (n * m_out + m) * out_size + p0;
                    let column = s.c[..r * mg].iter().skip(j).step_by(mg).copied();
                    out.store(base, m, column);
                }
                p0 += r;
            }
        }
    }
}

/// Output positions summed at once by [`depthwise`] (an i32 block on the stack).
const DW_BLOCK: usize = 64;

/// [`qconv`] of a depthwise layer (`in_channels == group`, any channel multiplier
/// `out_channels / group`): what `qconv` runs for one, after checking the arguments (public
/// for the speed example). For each output channel and each block
/// of up to [`DW_BLOCK`] positions along the last axis: `acc[t] = Σ_taps (x - x_zero_point) ·
/// w[tap]` over the taps inside the input (padding reads the zero point, so contributes 0),
/// exact in i32, then `acc · (x_scale · w_scale[m]) + bias[m]` as the GEMM epilogue rounds it.
pub fn depthwise(
    xq: &[i8],
    x_scale: f32,
    x_zero_point: i32,
    w: &[u8],
    bias: Option<&[f32]>,
    mut out: Output<'_>,
    p: &QConv<'_>,
) {
    let win = p.win;
    let rank = win.output.len();
    assert!(rank > 0 && win.input.len() == rank && win.kernel.len() == rank);
    let (in_size, out_size, ksize) = (product(win.input), product(win.output), product(win.kernel));
    let (c_in, m_out) = (p.in_channels, p.out_channels);
    let mg = m_out / p.group;
    let gbytes = qgemm::packed_i8_bytes(ksize, mg, p.nr);
    let last = rank - 1;
    let (ow, iw, kw) = (win.output[last], win.input[last], win.kernel[last]);
    let (sw, dw, pw) = (win.strides[last], win.dilations[last], win.pads_begin[last]);
    let (outer_out, outer_k) = (&win.output[..last], &win.kernel[..last]);
    let (outer_count, k_outer_count) = (product(outer_out), product(outer_k));
    for n in 0..p.batch {
        for g in 0..p.group {
            let weights = QWeights::new(&w[g * gbytes..(g + 1) * gbytes], ksize, mg, p.nr);
            let x = &xq[(n * c_in + g) * in_size..(n * c_in + g + 1) * in_size];
            for j in 0..mg {
                let m = g * mg + j;
                let scale = x_scale * weights.scales[j];
                let b = bias.map(|b| b[m]);
                let y0 = (n * m_out + m) * out_size;
                let mut o = [0usize; MAX_RANK];
                for op in 0..outer_count {
                    let mut ox0 = 0;
                    while ox0 < ow {
                        let len = DW_BLOCK.min(ow - ox0);
                        let mut acc = [0i32; DW_BLOCK];
                        let mut k = [0usize; MAX_RANK];
                        for ko in 0..k_outer_count {
                            if let Some(row) = outer_row(win, &o, &k) {
                                let xr = &x[row * iw..(row + 1) * iw];
                                for kx in 0..kw {
                                    let tap = ko * kw + kx;
                                    let wv = weights.panels
                                        [qgemm::i8_panel_index(tap, j, weights.kp, p.nr)]
                                        as i32;
                                    // Positions whose input `ox·sw + kx·dw - pw` is in 0..iw.
                                    let shift = kx * dw;
                                    let lo = pw.saturating_sub(shift).div_ceil(sw);
                                    let hi = (pw + iw).saturating_sub(shift).div_ceil(sw);
                                    let (lo, hi) = (lo.max(ox0), hi.min(ox0 + len));
                                    if lo >= hi {
                                        continue;
                                    }
                                    let acc = &mut acc[lo - ox0..hi - ox0];
                                    let x0 = lo * sw + shift - pw;
                                    if sw == 1 {
                                        // Contiguous: the loop vectorises.
                                        let xs = &xr[x0..x0 + acc.len()];
                                        for (a, &xv) in acc.iter_mut().zip(xs) {
                                            *a += (xv as i32 - x_zero_point) * wv;
                                        }
                                    } else if sw == 2 {
                                        // Every other input as the first of each pair: an
                                        // interleaved load, so this loop vectorises too.
                                        let n = acc.len();
                                        let full = ((iw - x0) / 2).min(n);
                                        let pairs = xr[x0..x0 + 2 * full].chunks_exact(2);
                                        for (a, p) in acc.iter_mut().zip(pairs) {
                                            *a += (p[0] as i32 - x_zero_point) * wv;
                                        }
                                        // The last position's input may end the row.
                                        if full < n {
                                            acc[n - 1] +=
                                                (xr[x0 + 2 * (n - 1)] as i32 - x_zero_point) * wv;
                                        }
                                    } else {
                                        let xs = xr[x0..].iter().step_by(sw);
                                        for (a, &xv) in acc.iter_mut().zip(xs) {
                                            *a += (xv as i32 - x_zero_point) * wv;
                                        }
                                    }
                                }
                            }
                            advance(&mut k, outer_k);
                        }
                        let values = acc[..len].iter().map(|&a| match b {
                            Some(b) => a as f32 * scale + b,
                            None => a as f32 * scale,
                        });
                        out.store(y0 + op * ow + ox0, m, values);
                        ox0 += len;
                    }
                    advance(&mut o, outer_out);
                }
            }
        }
    }
}

/// Row-major index (over the input's axes but the last) of the input row that kernel
/// position `k` of output position `o` reads on those axes, or `None` in the padding.
#[inline]
fn outer_row(win: &Window<'_>, o: &[usize; MAX_RANK], k: &[usize; MAX_RANK]) -> Option<usize> {
    let mut row = 0usize;
    for d in 0..win.input.len() - 1 {
        let i =
            (o[d] * win.strides[d] + k[d] * win.dilations[d]) as isize - win.pads_begin[d] as isize;
        if i < 0 || i >= win.input[d] as isize {
            return None;
        }
        row = row * win.input[d] + i as usize;
    }
    Some(row)
}

/// `clamp(round_half_even(acc · multiplier) + zero_point, lo, hi)`, ONNX Runtime's
/// requantization of an integer accumulator (held exactly in `acc`).
#[inline]
fn requantize(acc: f32, multiplier: f32, zero_point: i32, lo: i32, hi: i32) -> i32 {
    let v = libm::rintf(acc * multiplier);
    let v = v.clamp((lo - zero_point) as f32, (hi - zero_point) as f32);
    v as i32 + zero_point
}

#[cfg(test)]
mod tests {
    //! Against an i64 direct convolution: every geometry below, panel widths the ISA
    //! variants read and odd ones, block sizes that split the positions, all output modes.
    use super::*;
    use crate::arena::{Aligned64, from_blocks};
    use std::vec;
    use std::vec::Vec;

    struct Case {
        batch: usize,
        c: usize,
        m: usize,
        group: usize,
        input: Vec<usize>,
        kernel: Vec<usize>,
        strides: Vec<usize>,
        dilations: Vec<usize>,
        pads: (Vec<usize>, Vec<usize>),
    }

    fn cases() -> Vec<Case> {
        let case = |batch,
                    c,
                    m,
                    group,
                    input: &[usize],
                    kernel: &[usize],
                    strides: &[usize],
                    dilations: &[usize],
                    pb: &[usize],
                    pe: &[usize]| Case {
            batch,
            c,
            m,
            group,
            input: input.to_vec(),
            kernel: kernel.to_vec(),
            strides: strides.to_vec(),
            dilations: dilations.to_vec(),
            pads: (pb.to_vec(), pe.to_vec()),
        };
        vec![
            case(
                1,
                3,
                8,
                1,
                &[7, 9],
                &[3, 3],
                &[2, 2],
                &[1, 1],
                &[1, 1],
                &[1, 1],
            ),
            case(
                2,
                8,
                8,
                8,
                &[6, 5],
                &[3, 3],
                &[1, 1],
                &[1, 1],
                &[1, 1],
                &[1, 1],
            ),
            case(
                1,
                6,
                4,
                2,
                &[5, 6],
                &[2, 3],
                &[1, 2],
                &[2, 1],
                &[0, 2],
                &[1, 0],
            ),
            case(1, 12, 6, 1, &[20], &[3], &[1], &[2], &[2], &[2]),
            case(1, 4, 10, 2, &[11], &[4], &[3], &[1], &[0], &[3]),
            case(
                1,
                5,
                7,
                1,
                &[4, 4],
                &[1, 1],
                &[1, 1],
                &[1, 1],
                &[0, 0],
                &[0, 0],
            ),
            // Depthwise (one input channel per group): the direct path. Channel multiplier
            // 2, strides, dilations, asymmetric pads, rows longer than a block, 1-D and 3-D,
            // a kernel wider than the padded input's interior.
            case(
                1,
                6,
                12,
                6,
                &[9, 7],
                &[3, 3],
                &[2, 1],
                &[1, 2],
                &[1, 0],
                &[2, 3],
            ),
            case(
                2,
                3,
                3,
                3,
                &[3, 150],
                &[3, 5],
                &[1, 1],
                &[1, 1],
                &[1, 2],
                &[1, 2],
            ),
            case(1, 4, 4, 4, &[70], &[7], &[3], &[2], &[5], &[4]),
            // Stride 2 along the last axis (MobileNet's downsampling): even and odd widths,
            // the last position's input ending the row, rows longer than two blocks, a
            // dilated kernel.
            case(
                1,
                4,
                4,
                4,
                &[8, 9],
                &[3, 3],
                &[2, 2],
                &[1, 1],
                &[1, 1],
                &[1, 1],
            ),
            case(2, 3, 6, 3, &[300], &[5], &[2], &[2], &[3], &[4]),
            case(1, 2, 2, 2, &[10], &[3], &[2], &[1], &[0], &[0]),
            case(1, 2, 4, 2, &[4], &[5], &[1], &[1], &[3], &[3]),
            case(
                1,
                3,
                3,
                3,
                &[3, 4, 5],
                &[2, 3, 3],
                &[1, 2, 1],
                &[2, 1, 1],
                &[1, 1, 0],
                &[0, 1, 2],
            ),
            case(
                1,
                2,
                3,
                1,
                &[3, 2, 4],
                &[2, 1, 3],
                &[1, 1, 2],
                &[1, 1, 1],
                &[1, 0, 1],
                &[0, 0, 1],
            ),
        ]
    }

    impl Case {
        fn window<'a>(&'a self, output: &'a [usize]) -> Window<'a> {
            Window {
                input: &self.input,
                output,
                kernel: &self.kernel,
                strides: &self.strides,
                dilations: &self.dilations,
                pads_begin: &self.pads.0,
                pads_end: &self.pads.1,
            }
        }

        fn params<'a>(&self, win: &'a Window<'a>, nr: usize, rows: usize) -> QConv<'a> {
            QConv {
                batch: self.batch,
                in_channels: self.c,
                out_channels: self.m,
                group: self.group,
                win,
                nr,
                rows,
                tiles: Tiles {
                    mr: 4,
                    kc: 256,
                    mc: 64,
                },
            }
        }
    }

    /// Scratch buffers for `rows` positions of depth `kg` and `mg` outputs per group.
    struct Buffers(Vec<i8>, Vec<f32>, Vec<f32>, Vec<i32>);

    impl Buffers {
        fn new(rows: usize, kg: usize, mg: usize) -> Self {
            Buffers(
                vec![0; rows * qgemm::qa_stride(kg)],
                vec![0.0; rows * mg],
                vec![0.0; rows],
                vec![0; rows],
            )
        }

        fn scratch(&mut self) -> Scratch<'_> {
            Scratch {
                cols: &mut self.0,
                c: &mut self.1,
                scales: &mut self.2,
                zero_points: &mut self.3,
            }
        }
    }

    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u32 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) as u32
        }
    }

    fn output_dims(cs: &Case) -> Vec<usize> {
        (0..cs.input.len())
            .map(|d| {
                let extent = (cs.kernel[d] - 1) * cs.dilations[d] + 1;
                (cs.input[d] + cs.pads.0[d] + cs.pads.1[d] - extent) / cs.strides[d] + 1
            })
            .collect()
    }

    /// Exact `Σ (x - zx)·w` per output element (i64) by direct loops.
    fn direct(cs: &Case, x: &[i8], zx: i32, w: &[i8], out: &[usize]) -> Vec<i64> {
        let (isz, osz, ksz) = (product(&cs.input), product(out), product(&cs.kernel));
        let (cg, mg) = (cs.c / cs.group, cs.m / cs.group);
        let mut y = vec![0i64; cs.batch * cs.m * osz];
        for n in 0..cs.batch {
            for m in 0..cs.m {
                let g = m / mg;
                for op in 0..osz {
                    let mut acc = 0i64;
                    for kp in 0..ksz {
                        let (mut orem, mut krem, mut off, mut inside) = (op, kp, 0usize, true);
                        let mut coords = vec![0isize; out.len()];
                        for d in (0..out.len()).rev() {
                            let (od, kd) = (orem % out[d], krem % cs.kernel[d]);
                            orem /= out[d];
                            krem /= cs.kernel[d];
                            coords[d] = (od * cs.strides[d] + kd * cs.dilations[d]) as isize
                                - cs.pads.0[d] as isize;
                        }
                        for (d, &i) in coords.iter().enumerate() {
                            inside &= i >= 0 && i < cs.input[d] as isize;
                            off = off * cs.input[d] + i.max(0) as usize;
                        }
                        if !inside {
                            continue;
                        }
                        for ci in 0..cg {
                            let xv = x[(n * cs.c + g * cg + ci) * isz + off] as i64 - zx as i64;
                            acc += xv * w[(m * cg + ci) * ksz + kp] as i64;
                        }
                    }
                    y[(n * cs.m + m) * osz + op] = acc;
                }
            }
        }
        y
    }

    /// `w` `[m, cg, kernel..]` packed per group (what the compiler does at build time).
    fn pack(w: &[i8], scales: &[f32], cs: &Case, nr: usize) -> Vec<Aligned64<[u8; 64]>> {
        let ksz = product(&cs.kernel);
        let (cg, mg) = (cs.c / cs.group, cs.m / cs.group);
        let kg = cg * ksz;
        let gb = qgemm::packed_i8_bytes(kg, mg, nr);
        let mut buf = vec![Aligned64([0u8; 64]); (cs.group * gb).div_ceil(64)];
        let blob = from_blocks(&mut buf);
        for g in 0..cs.group {
            let mut q = vec![0i8; kg * mg];
            for j in 0..mg {
                for p in 0..kg {
                    q[p * mg + j] = w[(g * mg + j) * kg + p];
                }
            }
            qgemm::pack_i8(
                &q,
                &scales[g * mg..],
                kg,
                mg,
                nr,
                &mut blob[g * gb..(g + 1) * gb],
            );
        }
        buf
    }

    #[test]
    fn matches_direct_convolution() {
        let mut rng = Lcg(7);
        let native = qgemm::native_i8_nr();
        for (ci, cs) in cases().iter().enumerate() {
            let out = output_dims(cs);
            let (isz, osz, ksz) = (product(&cs.input), product(&out), product(&cs.kernel));
            let (cg, mg) = (cs.c / cs.group, cs.m / cs.group);
            let kg = cg * ksz;
            let x: Vec<i8> = (0..cs.batch * cs.c * isz)
                .map(|_| rng.next() as i8)
                .collect();
            let w: Vec<i8> = (0..cs.m * kg).map(|_| rng.next() as i8).collect();
            let zx = (rng.next() % 256) as i32 - 128;
            let exact = direct(cs, &x, zx, &w, &out);
            let scales: Vec<f32> = (0..cs.m).map(|j| 0.01 + j as f32 * 0.003).collect();
            let ones = vec![1.0f32; cs.m];
            let bias: Vec<f32> = (0..cs.m).map(|j| j as f32 * 7.0 - 20.0).collect();
            let mult: Vec<f32> = (0..cs.m).map(|j| 0.0007 + j as f32 * 0.0001).collect();
            let x_scale = 0.05f32;
            let positions = osz;
            for nr in [1, 3, 8, 16, 32, native] {
                for rows in [1, 5, block_rows(positions, kg)] {
                    let win = cs.window(&out);
                    let p = cs.params(&win, nr, rows);
                    let mut buffers = Buffers::new(rows, kg, mg);
                    let len = cs.group * qgemm::packed_i8_bytes(kg, mg, nr);
                    let total = cs.batch * cs.m * osz;
                    // f32 output with per-channel scales and bias.
                    let mut buf = pack(&w, &scales, cs, nr);
                    let blob = &from_blocks(&mut buf)[..len];
                    let mut y = vec![0f32; total];
                    let scratch = buffers.scratch();
                    qconv(
                        &x,
                        x_scale,
                        zx,
                        blob,
                        Some(&bias),
                        Output::F32(&mut y),
                        scratch,
                        &p,
                    );
                    for (i, (&got, &e)) in y.iter().zip(&exact).enumerate() {
                        let m = (i / osz) % cs.m;
                        let want = e as f32 * (x_scale * scales[m]) + bias[m];
                        assert_eq!(got, want, "case {ci} nr {nr} rows {rows} at {i}");
                    }
                    // Requantized u8 and i8 output: unit scales, integer bias.
                    let mut buf = pack(&w, &ones, cs, nr);
                    let blob = &from_blocks(&mut buf)[..len];
                    let mut yu = vec![0u8; total];
                    let scratch = buffers.scratch();
                    let o = Output::U8 {
                        y: &mut yu,
                        multipliers: &mult,
                        zero_point: 100,
                    };
                    qconv(&x, 1.0, zx, blob, Some(&bias), o, scratch, &p);
                    let mut yi = vec![0i8; total];
                    let scratch = buffers.scratch();
                    let o = Output::I8 {
                        y: &mut yi,
                        multipliers: &mult,
                        zero_point: -3,
                    };
                    qconv(&x, 1.0, zx, blob, Some(&bias), o, scratch, &p);
                    for (i, &e) in exact.iter().enumerate() {
                        let m = (i / osz) % cs.m;
                        let v = libm::rintf((e as f32 + bias[m]) * mult[m]);
                        let u = (v + 100.0).clamp(0.0, 255.0) as u8;
                        let s = (v - 3.0).clamp(-128.0, 127.0) as i8;
                        assert_eq!(
                            (yu[i], yi[i]),
                            (u, s),
                            "case {ci} nr {nr} rows {rows} at {i}"
                        );
                    }
                }
            }
        }
    }

    /// The depthwise direct path against the im2col + GEMM path (the reference for every
    /// group count): the same bits in all three output modes, every depthwise case, panel
    /// widths the ISA variants read and odd ones.
    #[test]
    fn depthwise_is_bit_identical_to_the_gemm_path() {
        let mut rng = Lcg(11);
        let mut seen = 0;
        for cs in cases().iter().filter(|cs| cs.c == cs.group) {
            seen += 1;
            let out = output_dims(cs);
            let (isz, osz, ksz) = (product(&cs.input), product(&out), product(&cs.kernel));
            let mg = cs.m / cs.group;
            let x: Vec<i8> = (0..cs.batch * cs.c * isz)
                .map(|_| rng.next() as i8)
                .collect();
            let w: Vec<i8> = (0..cs.m * ksz).map(|_| rng.next() as i8).collect();
            let scales: Vec<f32> = (0..cs.m).map(|j| 0.013 + j as f32 * 0.0021).collect();
            let bias: Vec<f32> = (0..cs.m).map(|j| j as f32 * 3.5 - 9.0).collect();
            let mult: Vec<f32> = (0..cs.m).map(|j| 0.002 + j as f32 * 0.0003).collect();
            let total = cs.batch * cs.m * osz;
            for nr in [1, 3, 8, 16, qgemm::native_i8_nr()] {
                let win = cs.window(&out);
                let rows = block_rows(osz, ksz);
                let p = cs.params(&win, nr, rows);
                let len = cs.group * qgemm::packed_i8_bytes(ksz, mg, nr);
                let mut buf = pack(&w, &scales, cs, nr);
                let blob = &from_blocks(&mut buf)[..len];
                let mut buffers = Buffers::new(rows, ksz, mg);
                for (zx, with_bias) in [(-128, true), (37, false), (127, true)] {
                    let b = with_bias.then_some(bias.as_slice());
                    let (mut want, mut got) = (vec![0f32; total], vec![0f32; total]);
                    let scratch = buffers.scratch();
                    im2col_gemm(&x, 0.07, zx, blob, b, Output::F32(&mut want), scratch, &p);
                    depthwise(&x, 0.07, zx, blob, b, Output::F32(&mut got), &p);
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&got), bits(&want), "{:?} nr {nr} zx {zx}", cs.input);
                    let (mut want, mut got) = (vec![0u8; total], vec![0u8; total]);
                    let scratch = buffers.scratch();
                    let o = |y| Output::U8 {
                        y,
                        multipliers: &mult,
                        zero_point: 90,
                    };
                    im2col_gemm(&x, 1.0, zx, blob, b, o(&mut want), scratch, &p);
                    depthwise(&x, 1.0, zx, blob, b, o(&mut got), &p);
                    assert_eq!(got, want, "{:?} nr {nr} zx {zx} u8", cs.input);
                    let (mut want, mut got) = (vec![0i8; total], vec![0i8; total]);
                    let scratch = buffers.scratch();
                    let o = |y| Output::I8 {
                        y,
                        multipliers: &mult,
                        zero_point: -5,
                    };
                    im2col_gemm(&x, 1.0, zx, blob, b, o(&mut want), scratch, &p);
                    depthwise(&x, 1.0, zx, blob, b, o(&mut got), &p);
                    assert_eq!(got, want, "{:?} nr {nr} zx {zx} i8", cs.input);
                }
            }
        }
        assert_eq!(seen, 9, "depthwise cases");
    }

    #[test]
    fn requantize_rounds_half_to_even_and_saturates() {
        assert_eq!(requantize(5.0, 0.5, 0, 0, 255), 2);
        assert_eq!(requantize(7.0, 0.5, 0, 0, 255), 4);
        assert_eq!(requantize(-5.0, 0.5, 10, 0, 255), 8);
        assert_eq!(requantize(1000.0, 1.0, 0, -128, 127), 127);
        assert_eq!(requantize(-1000.0, 1.0, 3, 0, 255), 0);
    }

    #[test]
    fn dynamic_quantization_and_u8_shift() {
        let x = [-1.0f32, 0.0, 0.5, 3.0];
        let mut xq = [0i8; 4];
        let (mut cols, mut c, mut sc, mut zp) = ([0i8; 4], [0f32; 1], [0f32; 1], [0i32; 1]);
        let mut s = Scratch {
            cols: &mut cols,
            c: &mut c,
            scales: &mut sc,
            zero_points: &mut zp,
        };
        let (scale, z) = quantize_dynamic(&x, &mut xq, &mut s);
        // ONNX: scale = (3 - -1) / 255, zp = round(1 / scale) = 64 (u8), shifted by -128.
        assert_eq!(scale, 4.0 / 255.0);
        assert_eq!(z, 64 - 128);
        let mut back = [0u8; 4];
        for (b, &q) in back.iter_mut().zip(&xq) {
            *b = (q as u8) ^ 0x80;
        }
        let mut again = [0i8; 4];
        shift_u8(&back, &mut again);
        assert_eq!(again, xq);
        assert_eq!(back[1], 64);
    }
}
