//! The portable quantized kernels: plain loops over the same blob layouts and epilogue as
//! the ISA variants, written so LLVM vectorises them (e.g. Helium on Cortex-M55). They are
//! the oracle of the test battery and what the compiler's reference evaluator runs.
use super::{Q4Weights, QGemm, QWeights, drive_i8};
use crate::kernels::gemm::{Gemm, epilogue};

/// One tile: `acc[r·nr + c] = Σ_p a[r][p] · w(p, c)` over 4-deep groups.
#[inline(always)]
fn micro<const NR: usize>(a: &[i8], rows: usize, panel: &[i8], nr: usize, acc: &mut [i32]) {
    let nr = if NR == 0 { nr } else { NR };
    let kp = panel.len() / nr;
    for r in 0..rows {
        let acc = &mut acc[r * nr..(r + 1) * nr];
        acc.fill(0);
        for (a4, w) in a[r * kp..(r + 1) * kp]
            .chunks_exact(4)
            .zip(panel.chunks_exact(4 * nr))
        {
            let (a0, a1, a2, a3) = (a4[0] as i32, a4[1] as i32, a4[2] as i32, a4[3] as i32);
            for (o, w4) in acc.iter_mut().zip(w.chunks_exact(4)) {
                let dot =
                    a0 * w4[0] as i32 + a1 * w4[1] as i32 + a2 * w4[2] as i32 + a3 * w4[3] as i32;
                *o = o.wrapping_add(dot);
            }
        }
    }
}

/// The int8 GEMM (see [`super::QGemm`]).
pub fn qgemm(qa: &[i8], w: QWeights<'_>, c: &mut [f32], g: &QGemm<'_>) {
    super::check_qgemm(qa, &w, c, g);
    let nr = w.nr;
    drive_i8(qa, &w, c, g, 8, |_, a, rows, panel, acc| match nr {
        8 => micro::<8>(a, rows, panel, nr, acc),
        16 => micro::<16>(a, rows, panel, nr, acc),
        32 => micro::<32>(a, rows, panel, nr, acc),
        _ => micro::<0>(a, rows, panel, nr, acc),
    });
}

/// One row of `C` for one panel: `out[c] = Σ_groups s·(Σ_p a[p]·q[p][c] - zp·Σ_p a[p])`.
#[inline(always)]
fn row_panel<const NR: usize>(
    a: &[f32],
    w: &Q4Weights<'_>,
    panel: usize,
    nr: usize,
    out: &mut [f32],
) {
    let nr = if NR == 0 { nr } else { NR };
    let half = nr / 2;
    let bytes = w.panel(panel);
    let mut acc = [0.0f32; super::MAX_NR];
    let mut gq = [0.0f32; super::MAX_NR];
    let (mut sc, mut zc) = ([0.0f32; super::MAX_NR], [0.0f32; super::MAX_NR]);
    let mut p0 = 0;
    let mut gi = 0;
    while p0 < w.k {
        let p1 = w.k.min(p0 + w.group);
        let gq = &mut gq[..nr];
        gq.fill(0.0);
        let mut sa = 0.0f32;
        for (p, &x) in a.iter().enumerate().take(p1).skip(p0) {
            sa += x;
            let row = &bytes[p * half..(p + 1) * half];
            let (lo, hi) = gq.split_at_mut(half);
            for ((l, h), &b) in lo.iter_mut().zip(hi.iter_mut()).zip(row) {
                *l += x * (b & 15) as f32;
                *h += x * (b >> 4) as f32;
            }
        }
        w.group_params(gi, panel * nr, &mut sc[..nr], &mut zc[..nr]);
        for (((o, &q), &s), &zp) in acc[..nr].iter_mut().zip(gq.iter()).zip(&sc).zip(&zc) {
            *o += s * (q - zp * sa);
        }
        p0 = p1;
        gi += 1;
    }
    let cols = out.len();
    out.copy_from_slice(&acc[..cols]);
}

/// The int4 weight-only GEMM (see [`super::gemm_q4`]), one row at a time.
pub fn gemm_q4(a: &[f32], w: Q4Weights<'_>, c: &mut [f32], g: &Gemm<'_>) {
    super::check_q4(a, &w, c, g);
    let (n, nr) = (g.n, w.nr);
    for i in 0..g.m {
        let arow = &a[i * g.lda..i * g.lda + g.k];
        let row = &mut c[i * g.ldc..i * g.ldc + n];
        for panel in 0..n.div_ceil(nr) {
            let col0 = panel * nr;
            let out = &mut row[col0..n.min(col0 + nr)];
            match nr {
                16 => row_panel::<16>(arow, &w, panel, nr, out),
                32 => row_panel::<32>(arow, &w, panel, nr, out),
                _ => row_panel::<0>(arow, &w, panel, nr, out),
            }
        }
        epilogue(row, g.bias, g.activation);
    }
}
