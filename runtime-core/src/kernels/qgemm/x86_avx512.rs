//! x86-64 AVX-512 quantized kernels: the int8 GEMM on VNNI `vpdpbusd` (tiles of up to 12
//! rows × 32 columns) and the int4 GEMM/GEMV (32 columns, up to 4 rows per pass over the
//! weights).
//!
//! `vpdpbusd` multiplies unsigned by signed bytes. The weights are made unsigned in the
//! register (`w ^ 0x80` = `w + 128`), so each sum is `Σ a·w + 128·Σ a`, exact in i32 for any
//! i8 inputs; the row sum of `a` is subtracted afterwards.
use super::{Q4Scales, Q4Weights, QGemm, QWeights, check_q4, check_qgemm, drive_q4_blocked};
use crate::kernels::gemm::{Activation, Gemm, epilogue};
use crate::math;
use core::arch::x86_64::*;

/// int8 panel width read by [`qgemm`].
pub const NR: usize = 32;
/// int4 panel width read by [`gemm_q4`].
pub const Q4_NR: usize = 32;
/// The largest register block of rows of [`qgemm`].
pub const MAX_MR: usize = 12;
/// From this many rows of `A` on, [`gemm_q4`] dequantizes blocks of a panel to f32 once and
/// runs an f32 register tile over them.
const BLOCKED_MIN_M: usize = 8;
/// Depths per dequantized block (32 KiB of f32).
const KB: usize = 256;
/// Rows of the f32 register tile (16 accumulators).
const BLOCK_MR: usize = 8;

/// Rows of `A` whose sums are kept at once (a stack array).
const ROW_BLOCK: usize = 256;

/// The int8 GEMM; `w.nr` must be [`NR`]. Same loop nest as `drive_i8` (blocks of rows, each
/// panel, register tiles), but each tile finishes in registers: row sums of `A` are taken
/// once per block of rows, and zero points, scales and bias are applied before the one
/// store of `C` (bit-identical to `finish_row`).
///
/// # Safety
/// The CPU must support AVX-512F, AVX-512BW and AVX-512 VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
pub unsafe fn qgemm(qa: &[i8], w: QWeights<'_>, c: &mut [f32], g: &QGemm<'_>) {
    // SAFETY: this function's contract.
    unsafe { qgemm_residual(qa, w, c, g, None) }
}

/// [`qgemm`] with a residual added to each finished element before its store, `C[i][j] =
/// act(…) + r[i·ldc + j]` (bit-identical to the product, then `gemv::add_assign`).
///
/// # Safety
/// As [`qgemm`].
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
pub unsafe fn qgemm_residual(
    qa: &[i8],
    w: QWeights<'_>,
    c: &mut [f32],
    g: &QGemm<'_>,
    residual: Option<&[f32]>,
) {
    assert_eq!(w.nr, NR);
    check_qgemm(qa, &w, c, g);
    if let Some(r) = residual {
        assert!(
            g.m == 0 || r.len() >= (g.m - 1) * g.ldc + g.n,
            "residual too short"
        );
    }
    let (m, n, kp) = (g.m, g.n, w.kp);
    if m == 0 || n == 0 {
        return;
    }
    let mr = g.tiles.mr.clamp(1, MAX_MR);
    let block = g.tiles.mc.clamp(1, ROW_BLOCK);
    let mut fix = [0i32; ROW_BLOCK];
    let mut ic = 0;
    while ic < m {
        let mb = block.min(m - ic);
        for (r, f) in fix[..mb].iter_mut().enumerate() {
            // SAFETY: row `ic + r < m` of `qa` is `kp` bytes (`check_qgemm`).
            *f = unsafe { row_sum(&qa[(ic + r) * kp..(ic + r + 1) * kp]) }.wrapping_mul(128);
        }
        let panels = n.div_ceil(NR);
        // Each register tile of a panel prefetches its share of the next panel's cache lines.
        let share = (kp * NR / 64).div_ceil(mb.div_ceil(mr));
        for panel in 0..panels {
            let wp = w.panel(panel);
            let next = if panel + 1 < panels {
                w.panel(panel + 1)
            } else {
                &[]
            };
            let mut ir = ic;
            let mut nth = 0;
            while ir < ic + mb {
                let left = ic + mb - ir;
                let rows = left.div_ceil(left.div_ceil(mr));
                let start = (nth * share * 64).min(next.len());
                let t = Tile {
                    a: &qa[ir * kp..(ir + rows) * kp],
                    fix: &fix[ir - ic..ir - ic + rows],
                    row0: ir,
                    panel,
                    prefetch: &next[start..(start + share * 64).min(next.len())],
                    residual,
                };
                nth += 1;
                // SAFETY: the tile's rows exist in `qa` and `C`, `wp` is a whole panel
                // (`check_qgemm`); the CPU features are this function's.
                unsafe {
                    by_rows!(rows, tile, (&t, kp, wp, &w, c, g), [1 2 3 4 5 6 7 8 9 10 11] _ => 12)
                }
                ir += rows;
            }
        }
        ic += mb;
    }
}

/// `Σ_p a[p]` (`a.len()` a multiple of 4), exact.
///
/// # Safety
/// AVX-512F/BW/VNNI.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
unsafe fn row_sum(a: &[i8]) -> i32 {
    let ones = _mm512_set1_epi8(1);
    // Four independent sums, so the loop runs at the product's throughput, not its latency.
    let mut acc = [_mm512_setzero_si512(); 4];
    let mut p = 0;
    while p + 256 <= a.len() {
        for (j, s) in acc.iter_mut().enumerate() {
            // SAFETY: bytes `p..p+256` of `a` exist (loop condition).
            let x = unsafe { _mm512_loadu_si512(a.as_ptr().add(p + 64 * j).cast()) };
            *s = _mm512_dpbusd_epi32(*s, ones, x);
        }
        p += 256;
    }
    let mut j = 0;
    while p < a.len() {
        let left = a.len() - p;
        let mask = if left >= 64 { !0 } else { (1u64 << left) - 1 };
        // SAFETY: the mask covers bytes `p..p+left` of `a` only.
        let x = unsafe { _mm512_maskz_loadu_epi8(mask, a.as_ptr().add(p)) };
        acc[j] = _mm512_dpbusd_epi32(acc[j], ones, x);
        (p, j) = (p + 64, j + 1);
    }
    let sum = _mm512_add_epi32(
        _mm512_add_epi32(acc[0], acc[1]),
        _mm512_add_epi32(acc[2], acc[3]),
    );
    _mm512_reduce_add_epi32(sum)
}

/// One register tile: rows `row0..` (`a`, with `128·Σ a` per row in `fix`) × panel `panel`,
/// prefetching the bytes of `prefetch` (its share of the next panel) while it runs.
struct Tile<'t> {
    a: &'t [i8],
    fix: &'t [i32],
    row0: usize,
    panel: usize,
    prefetch: &'t [i8],
    /// Added to `C` after the activation (same indexing as `C`).
    residual: Option<&'t [f32]>,
}

/// `R` rows × 32 columns of `C`, finished: exact sums, zero points, scales, bias, then the
/// activation on the stored row.
///
/// # Safety
/// AVX-512F/BW/VNNI; `t.a.len() >= R·kp`, `t.fix.len() >= R`, `panel.len() >= kp·NR`, and
/// `check_qgemm` passed with rows `t.row0..t.row0+R` inside `g.m`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
unsafe fn tile<const R: usize>(
    t: &Tile<'_>,
    kp: usize,
    panel: &[i8],
    w: &QWeights<'_>,
    c: &mut [f32],
    g: &QGemm<'_>,
) {
    debug_assert!(t.a.len() >= R * kp && panel.len() >= kp * NR && t.fix.len() >= R);
    let (ap, wp) = (t.a.as_ptr(), panel.as_ptr());
    let flip = _mm512_set1_epi8(-128);
    let group = |gi: usize| {
        // SAFETY: group `gi < kp/4` of the panel is 128 bytes at `gi·128` (length above).
        let (w0, w1) = unsafe {
            (
                _mm512_loadu_si512(wp.add(gi * 128).cast()),
                _mm512_loadu_si512(wp.add(gi * 128 + 64).cast()),
            )
        };
        (_mm512_xor_si512(w0, flip), _mm512_xor_si512(w1, flip))
    };
    // SAFETY: bytes `4·gi..4·gi+4` of row `r < R` lie inside `a` (length above).
    let row = |r: usize, gi: usize| unsafe {
        _mm512_set1_epi32(ap.add(r * kp + 4 * gi).cast::<i32>().read_unaligned())
    };
    let zero = _mm512_setzero_si512();
    // The first depth group initialises the sums: a zeroed array of vectors would be
    // cleared in memory for every tile.
    let mut acc: [[__m512i; 2]; R] = if kp == 0 {
        [[zero; 2]; R]
    } else {
        let (w0, w1) = group(0);
        core::array::from_fn(|r| {
            let x = row(r, 0);
            [
                _mm512_dpbusd_epi32(zero, w0, x),
                _mm512_dpbusd_epi32(zero, w1, x),
            ]
        })
    };
    let (pf, pf_lines) = (t.prefetch.as_ptr(), t.prefetch.len().div_ceil(64));
    for gi in 1..kp / 4 {
        if gi <= pf_lines {
            // SAFETY: line `gi - 1` of the share starts inside `t.prefetch`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(pf.add((gi - 1) * 64)) };
        }
        let (w0, w1) = group(gi);
        for (r, cr) in acc.iter_mut().enumerate() {
            let x = row(r, gi);
            cr[0] = _mm512_dpbusd_epi32(cr[0], w0, x);
            cr[1] = _mm512_dpbusd_epi32(cr[1], w1, x);
        }
    }
    let col0 = t.panel * NR;
    let cols = NR.min(g.n - col0);
    let mask = if cols >= 32 {
        !0u32
    } else {
        (1u32 << cols) - 1
    };
    let (lo, hi) = (mask as __mmask16, (mask >> 16) as __mmask16);
    // SAFETY: scales and column sums hold `n_pad` entries (a multiple of 32), the bias `n`
    // (masked to `cols`).
    let (ws, cs, bias) = unsafe {
        let bias = g.bias.map(|b| {
            let b = b.as_ptr().add(col0);
            [
                _mm512_maskz_loadu_ps(lo, b),
                _mm512_maskz_loadu_ps(hi, b.add(16)),
            ]
        });
        (
            [
                _mm512_loadu_ps(w.scales.as_ptr().add(col0)),
                _mm512_loadu_ps(w.scales.as_ptr().add(col0 + 16)),
            ],
            [
                _mm512_loadu_si512(w.sums.as_ptr().add(col0).cast()),
                _mm512_loadu_si512(w.sums.as_ptr().add(col0 + 16).cast()),
            ],
            bias,
        )
    };
    for (r, cr) in acc.iter().enumerate() {
        let i = t.row0 + r;
        let (z, sa) = (g.a_zero_points[i], _mm512_set1_ps(g.a_scales[i]));
        let zp = _mm512_set1_epi32(z);
        let fix = _mm512_set1_epi32(t.fix[r]);
        let span = i * g.ldc + col0..i * g.ldc + col0 + cols;
        let res = t.residual.map(|r| &r[span.clone()]);
        let row = &mut c[span];
        let out = row.as_mut_ptr();
        let in_register = matches!(g.activation, Activation::None | Activation::Gelu);
        for h in 0..2 {
            // Symmetric rows (zero point 0, the dynamic default) skip the column-sum term.
            let exact = match z {
                0 => _mm512_sub_epi32(cr[h], fix),
                _ => _mm512_sub_epi32(_mm512_sub_epi32(cr[h], fix), _mm512_mullo_epi32(zp, cs[h])),
            };
            let mut v = _mm512_mul_ps(_mm512_cvtepi32_ps(exact), _mm512_mul_ps(sa, ws[h]));
            if let Some(b) = bias {
                v = _mm512_add_ps(v, b[h]);
            }
            if g.activation == Activation::Gelu {
                v = gelu(v);
            }
            if let (Some(r), true) = (res, in_register) {
                // SAFETY: the masks cover exactly the `cols` elements of `r` (as of `row`).
                v = _mm512_add_ps(v, unsafe {
                    _mm512_maskz_loadu_ps([lo, hi][h], r.as_ptr().wrapping_add(16 * h))
                });
            }
            // SAFETY: the masks cover exactly the `cols` elements of `row`.
            unsafe { _mm512_mask_storeu_ps(out.wrapping_add(16 * h), [lo, hi][h], v) };
        }
        if !in_register {
            epilogue(row, None, g.activation);
            if let Some(r) = res {
                crate::kernels::gemv::add_assign(row, r);
            }
        }
    }
}

/// `math::fast_gelu` on 16 lanes, the same operations in the same order (no fused
/// multiply-adds), so bit-identical to it for finite inputs.
#[inline]
#[target_feature(enable = "avx512f")]
fn gelu(x: __m512) -> __m512 {
    let mul = |a, b| _mm512_mul_ps(a, b);
    let poly = |x2: __m512, cs: &[f32]| {
        let mut p = _mm512_set1_ps(cs[0]);
        for &c in &cs[1..] {
            p = _mm512_add_ps(mul(p, x2), _mm512_set1_ps(c));
        }
        p
    };
    let e = mul(x, _mm512_set1_ps(core::f32::consts::FRAC_1_SQRT_2));
    let e = _mm512_min_ps(_mm512_max_ps(e, _mm512_set1_ps(-4.0)), _mm512_set1_ps(4.0));
    let e2 = mul(e, e);
    let p = poly(e2, &math::ERF_NUMERATOR);
    let q = poly(e2, &math::ERF_DENOMINATOR);
    let erf = _mm512_div_ps(mul(e, p), q);
    mul(
        mul(_mm512_set1_ps(0.5), x),
        _mm512_add_ps(_mm512_set1_ps(1.0), erf),
    )
}

/// The int4 GEMM; `w.nr` must be [`Q4_NR`].
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
pub unsafe fn gemm_q4(a: &[f32], w: Q4Weights<'_>, c: &mut [f32], g: &Gemm<'_>) {
    assert_eq!(w.nr, Q4_NR);
    check_q4(a, &w, c, g);
    if g.n == 0 {
        return;
    }
    // Panel by panel, so a panel's nibbles stay in cache while every block of rows reads it.
    for panel in 0..g.n.div_ceil(Q4_NR) {
        if g.m >= BLOCKED_MIN_M {
            // SAFETY: as for this function.
            unsafe { blocked(a, &w, c, g, panel) };
            continue;
        }
        let mut i = 0;
        while i < g.m {
            let rows = (g.m - i).min(4);
            // SAFETY: rows `i..i+rows` exist in `a` and `c` (checked by `check_q4`).
            unsafe { by_rows!(rows, rows_q4, (a, &w, c, g, i, panel), [1 2 3] _ => 4) }
            i += rows;
        }
    }
    for r in 0..g.m {
        epilogue(&mut c[r * g.ldc..r * g.ldc + g.n], g.bias, g.activation);
    }
}

/// Rows `i0..i0+R` × the columns of `panel` of `C` (before the epilogue).
///
/// # Safety
/// AVX-512F; `check_q4` passed for these operands and `i0 + R <= g.m`.
#[inline]
#[target_feature(enable = "avx512f")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
unsafe fn rows_q4<const R: usize>(
    a: &[f32],
    w: &Q4Weights<'_>,
    c: &mut [f32],
    g: &Gemm<'_>,
    i0: usize,
    panel: usize,
) {
    let (k, n, lda) = (g.k, g.n, g.lda);
    let ap = a.as_ptr();
    let m15 = _mm512_set1_epi32(15);
    {
        let bytes = w.panel(panel).as_ptr();
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        let mut p0 = 0;
        let mut gi = 0;
        while p0 < k {
            let p1 = k.min(p0 + w.group);
            // Two sets of partial sums (even and odd depths) hide the FMA latency.
            let (mut even, mut odd) =
                ([[_mm512_setzero_ps(); 2]; R], [[_mm512_setzero_ps(); 2]; R]);
            let mut sa = [0.0f32; R];
            let mut step = |p: usize, set: &mut [[__m512; 2]; R]| {
                // SAFETY: row `p < k` of the panel is 16 bytes at `16·p` (`Q4Weights::new`).
                let v = unsafe { _mm512_cvtepu8_epi32(_mm_loadu_si128(bytes.add(16 * p).cast())) };
                let lo = _mm512_cvtepi32_ps(_mm512_and_si512(v, m15));
                let hi = _mm512_cvtepi32_ps(_mm512_srli_epi32::<4>(v));
                for r in 0..R {
                    // SAFETY: `(i0 + r, p)` is inside `A` (`check_q4`).
                    let x = unsafe { *ap.add((i0 + r) * lda + p) };
                    sa[r] += x;
                    let xv = _mm512_set1_ps(x);
                    set[r][0] = _mm512_fmadd_ps(xv, lo, set[r][0]);
                    set[r][1] = _mm512_fmadd_ps(xv, hi, set[r][1]);
                }
            };
            let mut p = p0;
            while p + 1 < p1 {
                step(p, &mut even);
                step(p + 1, &mut odd);
                p += 2;
            }
            if p < p1 {
                step(p, &mut even);
            }
            let e = gi * w.n_pad + panel * Q4_NR;
            // SAFETY: scales hold `groups × n_pad` entries and zero points `groups × n_pad / 2`
            // bytes, `n_pad` a multiple of 32, so scales `e..e+32` and bytes `e/2..e/2+16`
            // exist.
            let (s, z) = unsafe {
                let s = match w.scales {
                    Q4Scales::F32(s) => [
                        _mm512_loadu_ps(s.as_ptr().add(e)),
                        _mm512_loadu_ps(s.as_ptr().add(e + 16)),
                    ],
                    Q4Scales::F16(s) => [
                        _mm512_cvtph_ps(_mm256_loadu_si256(s.as_ptr().add(e).cast())),
                        _mm512_cvtph_ps(_mm256_loadu_si256(s.as_ptr().add(e + 16).cast())),
                    ],
                };
                let z = match w.zero_points {
                    Some(z) => zero_points(z.as_ptr().add(e / 2)),
                    None => [_mm512_set1_ps(8.0); 2],
                };
                (s, z)
            };
            for r in 0..R {
                let sa = _mm512_set1_ps(sa[r]);
                for h in 0..2 {
                    let q = _mm512_add_ps(even[r][h], odd[r][h]);
                    acc[r][h] = _mm512_fmadd_ps(s[h], _mm512_fnmadd_ps(z[h], sa, q), acc[r][h]);
                }
            }
            p0 = p1;
            gi += 1;
        }
        let col0 = panel * Q4_NR;
        let cols = Q4_NR.min(n - col0);
        let lo = if cols >= 16 {
            0xffff
        } else {
            (1u32 << cols) - 1
        } as __mmask16;
        let hi = if cols > 16 {
            ((1u64 << (cols - 16)) - 1) as __mmask16
        } else {
            0
        };
        for (r, ar) in acc.iter().enumerate() {
            let row = &mut c[(i0 + r) * g.ldc + col0..(i0 + r) * g.ldc + col0 + cols];
            // SAFETY: the masks cover exactly `cols` elements of `row`.
            unsafe {
                _mm512_mask_storeu_ps(row.as_mut_ptr(), lo, ar[0]);
                _mm512_mask_storeu_ps(row.as_mut_ptr().wrapping_add(16), hi, ar[1]);
            }
        }
    }
}

/// The 32 zero points of a panel's group as f32 (columns 0..16, 16..32) from its 16 bytes
/// (low nibbles columns 0..16, high nibbles 16..32, as a row of the panel's weights).
///
/// # Safety
/// AVX-512F; 16 bytes are readable at `z`.
#[inline]
#[target_feature(enable = "avx512f")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
unsafe fn zero_points(z: *const u8) -> [__m512; 2] {
    // SAFETY: 16 bytes are readable at `z` (the contract above).
    let v = unsafe { _mm512_cvtepu8_epi32(_mm_loadu_si128(z.cast())) };
    [
        _mm512_cvtepi32_ps(_mm512_and_si512(v, _mm512_set1_epi32(15))),
        _mm512_cvtepi32_ps(_mm512_srli_epi32::<4>(v)),
    ]
}

/// One panel of `C` (before the epilogue) for many rows: blocks of [`KB`] depths dequantized
/// to f32 (`q·s - zp·s`), then [`f32_tile`]s of up to [`BLOCK_MR`] rows over each block.
///
/// # Safety
/// AVX-512F; `check_q4` passed for these operands.
#[target_feature(enable = "avx512f")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
unsafe fn blocked(a: &[f32], w: &Q4Weights<'_>, c: &mut [f32], g: &Gemm<'_>, panel: usize) {
    let n = g.n;
    let bytes = w.panel(panel).as_ptr();
    let col0 = panel * Q4_NR;
    let cols = Q4_NR.min(n - col0);
    let m15 = _mm512_set1_epi32(15);
    let mut block = [0.0f32; KB * Q4_NR];
    let bp = block.as_mut_ptr();
    drive_q4_blocked(
        c,
        g,
        w.group,
        (col0, cols),
        (KB, BLOCK_MR),
        |gi, d, end, pc| {
            let e = gi * w.n_pad + col0;
            // SAFETY: scales `e..e+32` and zero-point bytes `e/2..e/2+16` exist (`n_pad` is a
            // multiple of 32); rows `d < k` of the panel are 16 bytes at `16·d`; the block holds `KB`
            // rows of 32 floats and `d - pc < KB`.
            unsafe {
                let s = match w.scales {
                    Q4Scales::F32(s) => [
                        _mm512_loadu_ps(s.as_ptr().add(e)),
                        _mm512_loadu_ps(s.as_ptr().add(e + 16)),
                    ],
                    Q4Scales::F16(s) => [
                        _mm512_cvtph_ps(_mm256_loadu_si256(s.as_ptr().add(e).cast())),
                        _mm512_cvtph_ps(_mm256_loadu_si256(s.as_ptr().add(e + 16).cast())),
                    ],
                };
                let z = match w.zero_points {
                    Some(z) => zero_points(z.as_ptr().add(e / 2)),
                    None => [_mm512_set1_ps(8.0); 2],
                };
                let zs = [_mm512_mul_ps(z[0], s[0]), _mm512_mul_ps(z[1], s[1])];
                for dd in d..end {
                    let v = _mm512_cvtepu8_epi32(_mm_loadu_si128(bytes.add(16 * dd).cast()));
                    let lo = _mm512_cvtepi32_ps(_mm512_and_si512(v, m15));
                    let hi = _mm512_cvtepi32_ps(_mm512_srli_epi32::<4>(v));
                    let out = bp.add((dd - pc) * Q4_NR);
                    _mm512_storeu_ps(out, _mm512_fmsub_ps(lo, s[0], zs[0]));
                    _mm512_storeu_ps(out.add(16), _mm512_fmsub_ps(hi, s[1], zs[1]));
                }
            }
        },
        |c, rows, t| {
            // SAFETY: rows `i..i+rows` and depths `pc..pc+kb` exist in `a`, columns
            // `col0..col0+cols` of those rows in `c` (`check_q4`); the block holds `kb` rows.
            unsafe { by_rows!(rows, f32_tile, (a, &block, c, g, t), [1 2 3 4 5 6 7] _ => 8) }
        },
    );
}

f32_tile!(
    "avx512f",
    16,
    _mm512_setzero_ps(),
    _mm512_loadu_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    |ar, row, first| {
        let (lo, hi) = (lanes(row.len()), lanes(row.len().saturating_sub(16)));
        let (p0, p1) = (row.as_mut_ptr(), row.as_mut_ptr().wrapping_add(16));
        // SAFETY: the masks cover exactly the elements of `row`.
        unsafe {
            let (mut v0, mut v1) = (ar[0], ar[1]);
            if !first {
                v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(lo, p0));
                v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(hi, p1));
            }
            _mm512_mask_storeu_ps(p0, lo, v0);
            _mm512_mask_storeu_ps(p1, hi, v1);
        }
    }
);

/// Mask of the first `min(left, 16)` lanes.
#[inline(always)]
fn lanes(left: usize) -> __mmask16 {
    if left >= 16 {
        !0
    } else {
        ((1u32 << left) - 1) as __mmask16
    }
}

/// Store the low bytes of 16 i32 lanes to `out[..min(left, 16)]`.
///
/// # Safety
/// AVX-512F; `out` holds `min(left, 16)` bytes.
#[inline]
#[target_feature(enable = "avx512f")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
unsafe fn store_bytes(out: *mut i8, left: usize, v: __m512i) {
    let b = _mm512_cvtepi32_epi8(v);
    if left >= 16 {
        // SAFETY: the caller's contract.
        unsafe { _mm_storeu_si128(out.cast(), b) };
    } else {
        let mut tmp = [0i8; 16];
        // SAFETY: `tmp` is 16 bytes.
        unsafe { _mm_storeu_si128(tmp.as_mut_ptr().cast(), b) };
        // SAFETY: the caller's contract.
        unsafe { core::ptr::copy_nonoverlapping(tmp.as_ptr(), out, left) };
    }
}

/// `super::symmetric_row`: 64 values at a time (four vectors, packed to one 64-byte store),
/// then 16 at a time for the tail.
///
/// # Safety
/// AVX-512F/BW; `out.len() >= row.len()`.
#[target_feature(enable = "avx512f,avx512bw")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
pub unsafe fn symmetric_row(row: &[f32], out: &mut [i8]) -> f32 {
    let k = row.len();
    assert!(out.len() >= k);
    let (rp, op) = (row.as_ptr(), out.as_mut_ptr());
    let abs = _mm512_set1_epi32(0x7fff_ffff);
    // |x| compared as unsigned bits: a NaN's bits exceed every finite |x| and infinity.
    let mut mx = [_mm512_setzero_si512(); 4];
    let mut p = 0;
    while p + 64 <= k {
        for (j, m) in mx.iter_mut().enumerate() {
            // SAFETY: elements `p..p+64` of `row` exist (loop condition).
            let x = unsafe { _mm512_loadu_si512(rp.add(p + 16 * j).cast()) };
            *m = _mm512_max_epu32(*m, _mm512_and_si512(x, abs));
        }
        p += 64;
    }
    let mut m = _mm512_max_epu32(
        _mm512_max_epu32(mx[0], mx[1]),
        _mm512_max_epu32(mx[2], mx[3]),
    );
    while p < k {
        // SAFETY: the mask covers elements `p..min(p+16, k)` of `row`.
        let x = unsafe { _mm512_maskz_loadu_epi32(lanes(k - p), rp.add(p).cast()) };
        m = _mm512_max_epu32(m, _mm512_and_si512(x, abs));
        p += 16;
    }
    let max = f32::from_bits(_mm512_reduce_max_epu32(m) as u32);
    // A NaN maximum compares false, as in the portable code.
    if max.partial_cmp(&0.0) != Some(core::cmp::Ordering::Greater) {
        out[..k].fill(0);
        return 0.0;
    }
    if !(127.0 / max).is_finite() {
        // A maximum so small that `127 / max` overflows: the portable code's clamp decides.
        return super::symmetric_row(row, out);
    }
    let inv = _mm512_set1_ps(127.0 / max);
    let (half, zero) = (_mm512_set1_ps(0.5), _mm512_setzero_si512());
    // `|t| = |x|·(127/max)` is at most 127 plus two roundings, so no clamp is needed.
    // Half away from zero is `trunc(|t| + 0.5)`: for `|t| >= 0.5` the sum's rounding never
    // crosses an integer (below the next power of two it is exact; above, it stays under
    // that power plus 0.5); `|t| < 0.5` (where it could round up to 1) gives 0.
    let quantize = |x: __m512| {
        let t = _mm512_mul_ps(x, inv);
        let a = _mm512_abs_ps(t);
        let q = _mm512_maskz_cvttps_epi32(
            _mm512_cmp_ps_mask::<_CMP_GE_OQ>(a, half),
            _mm512_add_ps(a, half),
        );
        _mm512_mask_sub_epi32(
            q,
            _mm512_cmp_ps_mask::<_CMP_LT_OQ>(t, _mm512_setzero_ps()),
            zero,
            q,
        )
    };
    // The two packs interleave the four vectors by 128-bit lane: dword `4·l + j` of the
    // packed bytes holds elements `16·j + 4·l ..+4`; this permutation restores the order.
    let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    let mut p = 0;
    while p + 64 <= k {
        // SAFETY: elements `p..p+64` of `row` exist (loop condition).
        let v: [__m512i; 4] =
            core::array::from_fn(|j| quantize(unsafe { _mm512_loadu_ps(rp.add(p + 16 * j)) }));
        // Values lie in [-127, 127], so the saturating packs are exact.
        let b = _mm512_packs_epi16(
            _mm512_packs_epi32(v[0], v[1]),
            _mm512_packs_epi32(v[2], v[3]),
        );
        // SAFETY: `out` holds `k >= p + 64` bytes.
        unsafe { _mm512_storeu_si512(op.add(p).cast(), _mm512_permutexvar_epi32(order, b)) };
        p += 64;
    }
    while p < k {
        // SAFETY: the mask covers elements `p..min(p+16, k)` of `row`.
        let x = unsafe { _mm512_maskz_loadu_ps(lanes(k - p), rp.add(p)) };
        // SAFETY: `out` holds `k` bytes.
        unsafe { store_bytes(op.add(p), k - p, quantize(x)) };
        p += 16;
    }
    max / 127.0
}

/// `super::affine_row`, 16 values at a time.
///
/// # Safety
/// AVX-512F/BW; `out.len() >= row.len()`.
#[target_feature(enable = "avx512f,avx512bw")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
pub unsafe fn affine_row(
    row: &[f32],
    scale: f32,
    zp: i32,
    (lo, hi, shift): (i32, i32, i32),
    out: &mut [i8],
) {
    let k = row.len();
    assert!(out.len() >= k);
    let rp = row.as_ptr();
    let sv = _mm512_set1_ps(scale);
    let (big, magic) = (_mm512_set1_ps(4_194_304.0), _mm512_set1_ps(super::MAGIC));
    let zp = _mm512_set1_ps(zp as f32);
    let (lo, hi) = (_mm512_set1_ps(lo as f32), _mm512_set1_ps(hi as f32));
    let shift = _mm512_set1_epi32(shift);
    let mut p = 0;
    while p < k {
        // SAFETY: the mask covers elements `p..min(p+16, k)` of `row`.
        let x = unsafe { _mm512_maskz_loadu_ps(lanes(k - p), rp.add(p)) };
        let t = _mm512_div_ps(x, sv);
        let t = _mm512_min_ps(
            _mm512_max_ps(t, _mm512_sub_ps(_mm512_setzero_ps(), big)),
            big,
        );
        let r = _mm512_sub_ps(_mm512_add_ps(t, magic), magic);
        let v = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(r, zp), lo), hi);
        let i = _mm512_add_epi32(_mm512_cvtps_epi32(v), shift);
        // SAFETY: `out` holds `k` bytes.
        unsafe { store_bytes(out.as_mut_ptr().add(p), k - p, i) };
        p += 16;
    }
}

/// `super::ordered_range`, 16 values at a time.
///
/// # Safety
/// AVX-512F; `a` holds `m` rows of `k` with stride `lda`.
#[target_feature(enable = "avx512f")]
// SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
pub unsafe fn ordered_range(a: &[f32], m: usize, k: usize, lda: usize) -> (i32, i32) {
    let (mut lo, mut hi) = (_mm512_setzero_si512(), _mm512_setzero_si512());
    let (zero, flip) = (_mm512_setzero_si512(), _mm512_set1_epi32(0x7fff_ffff));
    for i in 0..m {
        let row = &a[i * lda..i * lda + k];
        let mut p = 0;
        while p < k {
            // SAFETY: the mask covers elements `p..min(p+16, k)` of `row`; masked-off lanes
            // read as 0, which the range includes anyway.
            let x = unsafe { _mm512_maskz_loadu_epi32(lanes(k - p), row.as_ptr().add(p).cast()) };
            let neg = _mm512_cmplt_epi32_mask(x, zero);
            let o = _mm512_mask_xor_epi32(x, neg, x, flip);
            lo = _mm512_min_epi32(lo, o);
            hi = _mm512_max_epi32(hi, o);
            p += 16;
        }
    }
    (_mm512_reduce_min_epi32(lo), _mm512_reduce_max_epi32(hi))
}
