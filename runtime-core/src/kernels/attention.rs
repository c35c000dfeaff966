//! Fused scaled-dot-product attention: `out = softmax(Q · Kᵀ + mask) · V` per head, a tile
//! of query rows at a time, so only `rows × kv` scores are ever materialised (in `scratch`).
//! Both products run the blocked GEMM with the key and value matrices read in place, except
//! for decode-shaped calls (keys stored as rows, or only the first `live` key slots attended),
//! which run direct dot-product loops over the live slots.
use super::gemm::{self, Activation, BMatrix, Gemm, Tiles};
use super::softmax::{exp_sub_sum_in_place, row_max};

/// How the key operand is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keys {
    /// `[heads, d, skv]` (keys already transposed).
    Transposed,
    /// `[heads, skv, d]` (one key per row, as a KV cache holds them).
    Rows,
}

/// Geometry of one call. `q` is `[heads, sq, d]`, the keys `[heads, d, skv]` or
/// `[heads, skv, d]` (see [`Keys`]), `v` `[heads, skv, dv]`, `out` `[heads, sq, dv]`, all contiguous; the mask's element
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
    pub keys: Keys,
}

/// The number of leading key slots a step attends to when slot `j` is unmasked iff
/// `j < position + offset`: `min(position + offset, skv)`, or all `skv` slots when none is
/// unmasked (then every slot carries the same mask and all must be kept).
#[inline]
pub fn live_slots(position: i64, offset: i64, skv: usize) -> usize {
    let n = position.saturating_add(offset);
    if n <= 0 {
        skv
    } else {
        usize::try_from(n).map_or(skv, |n| n.min(skv))
    }
}

/// Fused attention over the first `live` key slots (clamped to `1..=skv`); see
/// [`AttentionSpec`]. The slots past `live` are skipped: the caller guarantees their
/// probabilities would be zero (masked with a large negative number).
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &[f32],
    k: &[f32],
    mask: Option<&[f32]>,
    v: &[f32],
    out: &mut [f32],
    scratch: &mut [f32],
    s: &AttentionSpec,
    live: usize,
) {
    let live = live.clamp(1, s.skv.max(1));
    if s.keys == Keys::Rows || live < s.skv {
        direct(q, k, mask, v, out, scratch, s, live);
        return;
    }
    let kt = k;
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

/// One query row at a time with plain loops over the first `live` slots: for the small
/// heads and few query rows of a decode step, where the GEMM's blocking costs more than it
/// saves. `scratch` holds the row's `live` scores. Keys stored as rows with a head size of
/// 8, 16, 32 or 64 take a path specialised to that size.
#[allow(clippy::too_many_arguments)]
fn direct(
    q: &[f32],
    k: &[f32],
    mask: Option<&[f32]>,
    v: &[f32],
    out: &mut [f32],
    scratch: &mut [f32],
    s: &AttentionSpec,
    live: usize,
) {
    let (sq, skv, d, dv) = (s.sq, s.skv, s.d, s.dv);
    for h in 0..s.heads {
        let k_h = &k[h * skv * d..(h + 1) * skv * d];
        let v_h = &v[h * skv * dv..(h + 1) * skv * dv];
        for i in 0..sq {
            let q_i = &q[(h * sq + i) * d..(h * sq + i + 1) * d];
            let row = &mut scratch[..live];
            match (s.keys, d) {
                (Keys::Rows, 8) => scores_rows::<8>(q_i, k_h, row),
                (Keys::Rows, 16) => scores_rows::<16>(q_i, k_h, row),
                (Keys::Rows, 32) => scores_rows::<32>(q_i, k_h, row),
                (Keys::Rows, 64) => scores_rows::<64>(q_i, k_h, row),
                (Keys::Rows, _) => {
                    for (x, k_j) in row.iter_mut().zip(k_h.chunks_exact(d.max(1))) {
                        *x = q_i.iter().zip(k_j).map(|(a, b)| a * b).sum();
                    }
                }
                (Keys::Transposed, _) => {
                    row.fill(0.0);
                    for (t, &qt) in q_i.iter().enumerate() {
                        for (x, &kv) in row.iter_mut().zip(&k_h[t * skv..t * skv + live]) {
                            *x += qt * kv;
                        }
                    }
                }
            }
            if let Some(mask) = mask {
                let at = h * s.mask_head_stride + i * s.mask_row_stride;
                for (x, &b) in row.iter_mut().zip(&mask[at..at + live]) {
                    *x = *x * s.scale + b;
                }
            } else if s.scale != 1.0 {
                for x in row.iter_mut() {
                    *x *= s.scale;
                }
            }
            let max = row_max(row);
            let inv = 1.0 / exp_sub_sum_in_place(row, max);
            let o = &mut out[(h * sq + i) * dv..(h * sq + i + 1) * dv];
            if s.nan_to_zero && inv.is_nan() {
                o.fill(0.0);
                continue;
            }
            match dv {
                8 => weighted_sum::<8>(row, inv, v_h, o),
                16 => weighted_sum::<16>(row, inv, v_h, o),
                32 => weighted_sum::<32>(row, inv, v_h, o),
                64 => weighted_sum::<64>(row, inv, v_h, o),
                _ => {
                    o.fill(0.0);
                    for (&p, v_j) in row.iter().zip(v_h.chunks_exact(dv.max(1))) {
                        for (o, &x) in o.iter_mut().zip(v_j) {
                            *o += p * inv * x;
                        }
                    }
                }
            }
        }
    }
}

/// `row[j] = q · k_j` for the first `row.len()` keys of `k` (rows of `D`), summed in the
/// order of the reference GEMM (so fusing does not change the rounding).
#[inline(always)]
fn scores_rows<const D: usize>(q: &[f32], k: &[f32], row: &mut [f32]) {
    let Ok(q) = <&[f32; D]>::try_from(q) else {
        return;
    };
    for (x, k_j) in row.iter_mut().zip(k.chunks_exact(D)) {
        let mut acc = 0.0f32;
        for (&a, &b) in q.iter().zip(k_j) {
            acc += a * b;
        }
        *x = acc;
    }
}

/// `o = Σ_j (p_j · inv) · v_j` over the first `p.len()` rows of `v` (rows of `DV`).
#[inline(always)]
fn weighted_sum<const DV: usize>(p: &[f32], inv: f32, v: &[f32], o: &mut [f32]) {
    let mut acc = [0.0f32; DV];
    for (&p, v_j) in p.iter().zip(v.chunks_exact(DV)) {
        let w = p * inv;
        for (a, &x) in acc.iter_mut().zip(v_j) {
            *a += w * x;
        }
    }
    o.copy_from_slice(&acc);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// Runs the kernel with keys in `keys` layout attending to `live` slots, the slots from
    /// `masked_from` on masked with `-1e9`, and compares with the unfused definition over all
    /// slots.
    fn check(keys: Keys, sq: usize, skv: usize, masked_from: usize, live: usize, d: usize) {
        let (heads, dv, rows) = (3, if d == 5 { 6 } else { d }, 2);
        let val = |i: usize| ((i * 7919) % 97) as f32 / 97.0 - 0.5;
        let q: Vec<f32> = (0..heads * sq * d).map(val).collect();
        let kt: Vec<f32> = (0..heads * d * skv).map(|i| val(i + 3)).collect();
        let v: Vec<f32> = (0..heads * skv * dv).map(|i| val(i + 5)).collect();
        let k_rows: Vec<f32> = (0..heads * skv * d)
            .map(|i| {
                let (h, j, t) = (i / (skv * d), i / d % skv, i % d);
                kt[(h * d + t) * skv + j]
            })
            .collect();
        // One mask row shared by every head and query.
        let mask: Vec<f32> = (0..skv)
            .map(|j| if j >= masked_from { -1e9 } else { 0.1 })
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
            rows,
            tiles: Tiles {
                mr: 4,
                kc: 8,
                mc: 8,
            },
            keys,
        };
        let mut out = vec![0.0; heads * sq * dv];
        let mut scratch = vec![0.0; rows.clamp(1, sq) * skv];
        let k = if keys == Keys::Rows { &k_rows } else { &kt };
        attention(&q, k, Some(&mask), &v, &mut out, &mut scratch, &spec, live);
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
                        "{keys:?} live {live} head {h} row {i} col {c}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn matches_the_unfused_ops() {
        check(Keys::Transposed, 7, 11, 9, 11, 5);
    }

    #[test]
    fn key_rows_and_live_slots_match_the_unfused_ops() {
        for keys in [Keys::Transposed, Keys::Rows] {
            for (sq, skv, masked_from, live) in [
                (1, 1, 1, 1),
                (2, 11, 4, 4),
                (2, 11, 4, 7),
                (1, 33, 20, 20),
                (7, 11, 9, 11),
                (3, 17, 17, 100),
                (3, 17, 1, 0),
            ] {
                for d in [5, 8, 16, 64] {
                    check(keys, sq, skv, masked_from, live, d);
                }
            }
        }
    }

    #[test]
    fn live_slots_follow_the_position() {
        assert_eq!(live_slots(0, 1, 256), 1);
        assert_eq!(live_slots(9, 1, 256), 10);
        assert_eq!(live_slots(255, 1, 256), 256);
        assert_eq!(live_slots(400, 1, 256), 256);
        assert_eq!(live_slots(0, 0, 256), 256);
        assert_eq!(live_slots(-3, 1, 256), 256);
        assert_eq!(live_slots(i64::MAX, 1, 8), 8);
    }
}
