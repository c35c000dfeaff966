//! Fused scaled-dot-product attention: `out = softmax(Q · Kᵀ + mask) · V` per head, a tile
//! of query rows at a time, so only `rows × kv` scores are ever materialised (in `scratch`).
//! Both products run the blocked GEMM with the key and value matrices read in place.
use super::gemm::{self, Activation, BMatrix, Gemm, Tiles};
use super::softmax::{exp_sub_sum, row_max};

/// Geometry of one call. `q` is `[heads, sq, d]`, `kt` the transposed keys `[heads, d, skv]`,
/// `v` `[heads, skv, dv]`, `out` `[heads, sq, dv]`, all contiguous; the mask's element
/// `(h, i, j)` is at `h·mask_head_stride + i·mask_row_stride + j`.
#[derive(Clone, Copy, Debug)]
pub struct AttentionSpec {
    pub heads: usize,
    pub sq: usize,
    pub skv: usize,
    pub d: usize,
    pub dv: usize,
    pub mask_head_stride: usize,
    pub mask_row_stride: usize,
    /// Factor applied to `Q · Kᵀ` before the mask is added.
    pub scale: f32,
    /// Replace NaN probabilities (rows masked entirely with `-inf`) by 0.
    pub nan_to_zero: bool,
    /// Query rows per tile; `scratch` holds `rows × skv` scores.
    pub rows: usize,
    pub tiles: Tiles,
}

/// Fused attention; see [`AttentionSpec`].
pub fn attention(
    q: &[f32],
    kt: &[f32],
    mask: Option<&[f32]>,
    v: &[f32],
    out: &mut [f32],
    scratch: &mut [f32],
    s: &AttentionSpec,
) {
    let (sq, skv, d, dv) = (s.sq, s.skv, s.d, s.dv);
    let rows = s.rows.clamp(1, sq.max(1));
    let nr = gemm::native_nr();
    let plain = |m, k, n| Gemm {
        m,
        k,
        n,
        lda: k,
        ldc: n,
        bias: None,
        activation: Activation::None,
        tiles: s.tiles,
    };
    for h in 0..s.heads {
        let kt_h = BMatrix::row_major(&kt[h * d * skv..(h + 1) * d * skv], skv, nr);
        let v_h = BMatrix::row_major(&v[h * skv * dv..(h + 1) * skv * dv], dv, nr);
        let mut r0 = 0;
        while r0 < sq {
            let m = rows.min(sq - r0);
            let scores = &mut scratch[..m * skv];
            let q_rows = &q[(h * sq + r0) * d..(h * sq + r0 + m) * d];
            gemm::gemm(q_rows, kt_h, scores, &plain(m, d, skv));
            for (i, row) in scores.chunks_exact_mut(skv.max(1)).enumerate() {
                if let Some(mask) = mask {
                    let at = h * s.mask_head_stride + (r0 + i) * s.mask_row_stride;
                    for (x, &b) in row.iter_mut().zip(&mask[at..at + skv]) {
                        *x = *x * s.scale + b;
                    }
                } else if s.scale != 1.0 {
                    for x in row.iter_mut() {
                        *x *= s.scale;
                    }
                }
                let max = row_max(row);
                let sum = exp_sub_sum_in_place(row, max);
                let scale = 1.0 / sum;
                for x in row.iter_mut() {
                    *x *= scale;
                }
                if s.nan_to_zero {
                    for x in row.iter_mut() {
                        if x.is_nan() {
                            *x = 0.0;
                        }
                    }
                }
            }
            let o = &mut out[(h * sq + r0) * dv..(h * sq + r0 + m) * dv];
            gemm::gemm(scores, v_h, o, &plain(m, skv, dv));
            r0 += m;
        }
    }
}

/// [`exp_sub_sum`] writing over its input.
#[inline]
fn exp_sub_sum_in_place(row: &mut [f32], max: f32) -> f32 {
    let mut sum = 0.0f32;
    let mut buf = [0.0f32; 64];
    for chunk in row.chunks_mut(64) {
        let n = chunk.len();
        sum += exp_sub_sum(chunk, max, &mut buf[..n]);
        chunk.copy_from_slice(&buf[..n]);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn matches_the_unfused_ops() {
        let (heads, sq, skv, d, dv) = (3, 7, 11, 5, 6);
        let val = |i: usize| ((i * 7919) % 97) as f32 / 97.0 - 0.5;
        let q: Vec<f32> = (0..heads * sq * d).map(val).collect();
        let kt: Vec<f32> = (0..heads * d * skv).map(|i| val(i + 3)).collect();
        let v: Vec<f32> = (0..heads * skv * dv).map(|i| val(i + 5)).collect();
        // One mask row shared by every head and query: the last two keys are masked.
        let mask: Vec<f32> = (0..skv)
            .map(|j| if j >= skv - 2 { -1e30 } else { 0.0 })
            .collect();
        let spec = AttentionSpec {
            heads,
            sq,
            skv,
            d,
            dv,
            mask_head_stride: 0,
            mask_row_stride: 0,
            scale: 0.5,
            nan_to_zero: true,
            rows: 3,
            tiles: Tiles {
                mr: 4,
                kc: 8,
                mc: 8,
            },
        };
        let mut out = vec![0.0; heads * sq * dv];
        let mut scratch = vec![0.0; 3 * skv];
        attention(&q, &kt, Some(&mask), &v, &mut out, &mut scratch, &spec);
        for h in 0..heads {
            for i in 0..sq {
                let mut p: Vec<f32> = (0..skv)
                    .map(|j| {
                        (0..d)
                            .map(|t| q[(h * sq + i) * d + t] * kt[(h * d + t) * skv + j])
                            .sum::<f32>()
                            * 0.5
                            + mask[j]
                    })
                    .collect();
                let max = p.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let sum: f32 = p
                    .iter_mut()
                    .map(|x| {
                        *x = libm::expf(*x - max);
                        *x
                    })
                    .sum();
                for c in 0..dv {
                    let want: f32 = (0..skv)
                        .map(|j| p[j] / sum * v[(h * skv + j) * dv + c])
                        .sum();
                    let got = out[(h * sq + i) * dv + c];
                    assert!(
                        (got - want).abs() < 1e-5,
                        "head {h} row {i} col {c}: {got} vs {want}"
                    );
                }
            }
        }
    }
}
