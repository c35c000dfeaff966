//! Convolution and pooling over the spatial axes of `[batch, channels, spatial..]` tensors
//! (any number of spatial axes up to `MAX_RANK`), direct loops over each output position's
//! window; positions in the padding are skipped (zero for convolution, ignored by pooling).
use crate::MAX_RANK;
use crate::element::Numeric;

/// The window geometry of a convolution or pooling, per spatial axis.
pub struct Window<'a> {
    pub input: &'a [usize],
    pub output: &'a [usize],
    pub kernel: &'a [usize],
    pub strides: &'a [usize],
    pub dilations: &'a [usize],
    pub pads_begin: &'a [usize],
    pub pads_end: &'a [usize],
}

fn product(dims: &[usize]) -> usize {
    dims.iter().product()
}

/// Advance a row-major multi-index over `dims`.
#[inline]
pub(crate) fn advance(index: &mut [usize; MAX_RANK], dims: &[usize]) {
    let mut axis = dims.len();
    while axis > 0 {
        axis -= 1;
        index[axis] += 1;
        if index[axis] < dims[axis] {
            return;
        }
        index[axis] = 0;
    }
}

impl Window<'_> {
    /// The input coordinate (per axis, relative to the unpadded input) of kernel position
    /// `k` of output position `o` on axis `d`.
    #[inline]
    fn coordinate(&self, o: &[usize; MAX_RANK], k: &[usize; MAX_RANK], d: usize) -> isize {
        (o[d] * self.strides[d] + k[d] * self.dilations[d]) as isize - self.pads_begin[d] as isize
    }

    /// Row-major offset of the input position, or `None` in the padding.
    #[inline]
    pub(crate) fn offset(&self, o: &[usize; MAX_RANK], k: &[usize; MAX_RANK]) -> Option<usize> {
        let mut off = 0usize;
        for d in 0..self.input.len() {
            let i = self.coordinate(o, k, d);
            if i < 0 || i >= self.input[d] as isize {
                return None;
            }
            off = off * self.input[d] + i as usize;
        }
        Some(off)
    }
}

/// Grouped N-D convolution: `x` `[batch, in_channels, input..]`, `w`
/// `[out_channels, in_channels / group, kernel..]`, `bias` `[out_channels]` or empty,
/// `out` `[batch, out_channels, output..]`.
#[allow(clippy::too_many_arguments)]
pub fn conv<T: Numeric>(
    x: &[T],
    w: &[T],
    bias: &[T],
    out: &mut [T],
    batch: usize,
    in_channels: usize,
    out_channels: usize,
    group: usize,
    win: &Window<'_>,
) {
    let (in_size, out_size, k_size) =
        (product(win.input), product(win.output), product(win.kernel));
    let (cg, mg) = (in_channels / group, out_channels / group);
    for n in 0..batch {
        for m in 0..out_channels {
            let g = m / mg;
            let mut o = [0usize; MAX_RANK];
            for op in 0..out_size {
                let mut acc = if bias.is_empty() { T::ZERO } else { bias[m] };
                let mut k = [0usize; MAX_RANK];
                for kp in 0..k_size {
                    if let Some(off) = win.offset(&o, &k) {
                        for ci in 0..cg {
                            let xv = x[(n * in_channels + g * cg + ci) * in_size + off];
                            let wv = w[(m * cg + ci) * k_size + kp];
                            acc = acc.add(xv.mul(wv));
                        }
                    }
                    advance(&mut k, win.kernel);
                }
                out[(n * out_channels + m) * out_size + op] = acc;
                advance(&mut o, win.output);
            }
        }
    }
}

/// Max pooling of `planes` (= batch · channels) planes. When `indices` is not empty it
/// receives each maximum's flat index into `x` (spatial part row-major, or column-major
/// when `column_major`).
pub fn max_pool<T: Numeric>(
    x: &[T],
    out: &mut [T],
    indices: &mut [i64],
    planes: usize,
    column_major: bool,
    win: &Window<'_>,
) {
    let (in_size, out_size, k_size) =
        (product(win.input), product(win.output), product(win.kernel));
    for p in 0..planes {
        let mut o = [0usize; MAX_RANK];
        for op in 0..out_size {
            let mut best = T::LOWEST;
            let mut best_at = None;
            let mut k = [0usize; MAX_RANK];
            for _ in 0..k_size {
                if let Some(off) = win.offset(&o, &k) {
                    let v = x[p * in_size + off];
                    if best_at.is_none() || v > best {
                        best = v;
                        best_at = Some((off, k));
                    }
                }
                advance(&mut k, win.kernel);
            }
            let at = p * out_size + op;
            out[at] = best;
            if !indices.is_empty() {
                let spatial = match best_at {
                    Some((_, k)) if column_major => {
                        let (mut off, mut scale) = (0usize, 1usize);
                        for d in 0..win.input.len() {
                            off += win.coordinate(&o, &k, d) as usize * scale;
                            scale *= win.input[d];
                        }
                        off
                    }
                    Some((off, _)) => off,
                    None => 0,
                };
                indices[at] = (p * in_size + spatial) as i64;
            }
            advance(&mut o, win.output);
        }
    }
}

/// Average pooling of `planes` planes. The divisor counts the window's positions inside the
/// input, or (`include_pad`) inside the padded input.
pub fn avg_pool<T: Numeric>(
    x: &[T],
    out: &mut [T],
    planes: usize,
    include_pad: bool,
    win: &Window<'_>,
) {
    let (in_size, out_size, k_size) =
        (product(win.input), product(win.output), product(win.kernel));
    for p in 0..planes {
        let mut o = [0usize; MAX_RANK];
        for op in 0..out_size {
            let mut sum = T::ZERO;
            let mut count = 0usize;
            let mut k = [0usize; MAX_RANK];
            for _ in 0..k_size {
                if let Some(off) = win.offset(&o, &k) {
                    sum = sum.add(x[p * in_size + off]);
                    count += 1;
                } else if include_pad {
                    let in_padded = (0..win.input.len()).all(|d| {
                        let i = win.coordinate(&o, &k, d);
                        i >= -(win.pads_begin[d] as isize)
                            && i < (win.input[d] + win.pads_end[d]) as isize
                    });
                    count += usize::from(in_padded);
                }
                advance(&mut k, win.kernel);
            }
            out[p * out_size + op] = if count == 0 {
                T::ZERO
            } else {
                sum.div(T::from_usize(count))
            };
            advance(&mut o, win.output);
        }
    }
}

/// Lp pooling: `(Σ |x|^p)^(1/p)` over each window (padding counts as zero).
pub fn lp_pool(x: &[f32], out: &mut [f32], planes: usize, p_norm: f32, win: &Window<'_>) {
    let (in_size, out_size, k_size) =
        (product(win.input), product(win.output), product(win.kernel));
    for p in 0..planes {
        let mut o = [0usize; MAX_RANK];
        for op in 0..out_size {
            let mut sum = 0.0f32;
            let mut k = [0usize; MAX_RANK];
            for _ in 0..k_size {
                if let Some(off) = win.offset(&o, &k) {
                    sum += libm::powf(libm::fabsf(x[p * in_size + off]), p_norm);
                }
                advance(&mut k, win.kernel);
            }
            out[p * out_size + op] = libm::powf(sum, 1.0 / p_norm);
            advance(&mut o, win.output);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window<'a>(
        input: &'a [usize],
        output: &'a [usize],
        kernel: &'a [usize],
        pads: &'a [usize],
    ) -> Window<'a> {
        Window {
            input,
            output,
            kernel,
            strides: &[1, 1],
            dilations: &[1, 1],
            pads_begin: pads,
            pads_end: pads,
        }
    }

    #[test]
    fn conv_pool_by_hand() {
        // 3x3 input 1..9, 2x2 all-ones kernel: window sums.
        let x: [f32; 9] = [1., 2., 3., 4., 5., 6., 7., 8., 9.];
        let w = [1.0f32; 4];
        let mut out = [0.0f32; 4];
        let win = window(&[3, 3], &[2, 2], &[2, 2], &[0, 0]);
        conv(&x, &w, &[10.0], &mut out, 1, 1, 1, 1, &win);
        assert_eq!(out, [22., 26., 34., 38.]);
        let mut maxes = [0.0f32; 4];
        let mut idx = [0i64; 4];
        max_pool(&x, &mut maxes, &mut idx, 1, false, &win);
        assert_eq!(maxes, [5., 6., 8., 9.]);
        assert_eq!(idx, [4, 5, 7, 8]);
        // Padding 1, 2x2 windows: the corner window sees only x[0].
        let win = window(&[3, 3], &[4, 4], &[2, 2], &[1, 1]);
        let mut avg = [0.0f32; 16];
        avg_pool(&x, &mut avg, 1, false, &win);
        assert_eq!(avg[0], 1.0);
        avg_pool(&x, &mut avg, 1, true, &win);
        assert_eq!(avg[0], 0.25);
    }
}
