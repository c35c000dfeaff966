//! Quantized GEMM: int8 weights × int8 activations with exact i32 accumulation, int4
//! weight-only GEMM/GEMV (dequantized inside the kernel), int8/int4 row tables (Gather), and
//! the quantizers that produce their operands.
//!
//! # Layouts (one byte blob per layer; every section starts on a 64-byte boundary)
//! - **Activations** (`qa`): `m` rows of [`qa_stride`]`(k)` = `k` rounded up to 4 bytes, the
//!   tail zero.
//! - **int8 weights** ([`pack_i8`]): `n` padded to a multiple of `nr`; panel `P` (columns
//!   `P·nr..`) holds `kp/4` depth groups (`kp` = `qa_stride(k)`), each `nr` columns × 4 bytes:
//!   element `(p, j)` at `P·kp·nr + (p/4)·4·nr + (j%nr)·4 + p%4`. Four consecutive depths of a
//!   column are one 32-bit lane, what AVX-512 VNNI `vpdpbusd` and AArch64 `sdot` read. Then
//!   the per-column scales (f32) and column sums `Σ_p q[p][j]` (i32, for zero points), both
//!   padded to the same width.
//! - **int4 weights** ([`pack_q4`]): panel `P` holds `k` rows of `nr/2` bytes; byte `b` of row
//!   `p` holds column `P·nr + b` in its low nibble and column `P·nr + nr/2 + b` in its high
//!   nibble. Then scales (`groups × n_pad`, f32 or f16 bits), then optional zero points
//!   (0..=15), two per byte in the panels' nibble order: group `g`, panel `P` is `nr/2` bytes
//!   at `(g·n_pad + P·nr)/2`, byte `b` holding column `P·nr + b` low and `P·nr + nr/2 + b`
//!   high, so a kernel widens a panel's zero points exactly as a row of its weights.
//!
//! # Panel width (`nr`) per ISA
//! [`qgemm_nr_for`] and [`q4_nr_for`] give it from a target's arch and features (the
//! compiler calls them with its profile); [`native_i8_nr`] / [`native_q4_nr`] give the
//! compiled-in choice. int8: AVX-512 VNNI (`avx512vnni` + `avx512bw`) 32, AVX2 8, aarch64
//! `dotprod` 16, aarch64 NEON 8, otherwise (portable, e.g. Cortex-M55 Helium) 16. int4: 32
//! with `avx512f`, otherwise 16. Any `nr` in 1..=64 (even for int4) is valid: a blob packed
//! for another width runs the portable kernel.
//!
//! Variants (register tiles `mr × nr`; `QGemm::tiles.mr` is clamped to the variant's
//! maximum): [`reference`](mod@reference) (portable, any `nr`; the oracle of the test battery and what the
//! compiler's reference evaluator runs), `x86_avx512` (int8 on VNNI `vpdpbusd`, 12×32; int4
//! 32 columns), `x86_avx2` (int8 widened to i16 for `vpmaddwd`, 6×8; int4 16 columns),
//! `aarch64_neon` (int8 by `smull` + `sadalp`, 6×8, Armv8.0; int4 16 columns),
//! `aarch64_dotprod` (int8 by `sdot`, 6×16). [`qgemm`] and [`gemm_q4`] pick one at compile
//! time from the enabled target features and the blob's `nr`; anything else runs the
//! reference. The int4 kernels, for fewer than 8 rows of `A` (decoding), convert each row of
//! nibbles once for up to 4 (x86) or 2 (NEON) rows and factor scale and zero point out of
//! each group: `Σ_p a·(q - zp)·s = s·(Σ_p a·q - zp·Σ_p a)`; for 8 rows or more (prefill) the
//! ISA variants dequantize 256-deep blocks of a panel to f32 once and run an f32 register
//! tile over them.
/// `by_rows!(rows, f, (args..), [1 2 ..] _ => last)`: calls the const-generic `f::<R>(args..)`
/// for the run-time row count `rows`, `f::<last>` for any other count.
macro_rules! by_rows {
    ($rows:expr, $f:ident, $args:tt, [$($r:literal)*] _ => $last:literal) => {
        match $rows {
            $($r => $f::<$r> $args,)*
            _ => $f::<$last> $args,
        }
    };
}

/// Defines the int4 blocked variants' f32 register tile, written once over an ISA's
/// primitives (`$feat` its target features, `$w` lanes per vector, `$zero` a zero vector,
/// `$load(ptr)`, `$splat(x)`, `$fma(x, b, acc)` = `x·b + acc` fused):
/// `unsafe fn f32_tile<const R: usize>(a, block, c, g, (i0, pc, kb, col0, cols, first))`
/// computes `C[i0..i0+R, col0..col0+cols] (=|+=) A[i0..i0+R, pc..pc+kb] · block[..kb]`
/// (`block`: `kb` rows of `Q4_NR` floats), the depths summed in order, then runs `$store`
/// with `$ar` (the row's `Q4_NR / $w` sums), `$row` (its `cols` elements of `C`) and `$first`
/// (write, else add). Its safety contract: the CPU has `$feat`, the rows, depths and columns
/// exist in `a` and `c`, and `block` holds `kb·Q4_NR` floats.
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(unused_macros)
)]
macro_rules! f32_tile {
    ($feat:literal, $w:expr, $zero:expr, $load:expr, $splat:expr, $fma:expr,
     |$ar:ident, $row:ident, $first:ident| $store:block) => {
        /// See `qgemm::f32_tile!`.
        ///
        /// # Safety
        /// See `qgemm::f32_tile!`.
        #[inline]
        #[target_feature(enable = $feat)]
        // SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
        unsafe fn f32_tile<const R: usize>(
            a: &[f32],
            block: &[f32],
            c: &mut [f32],
            g: &Gemm<'_>,
            (i0, pc, kb, col0, cols, first): super::Q4Tile,
        ) {
            let (ap, bp) = (a.as_ptr(), block.as_ptr());
            let mut acc = [[$zero; Q4_NR / $w]; R];
            for p in 0..kb {
                // SAFETY: the function's contract.
                unsafe {
                    let mut b = [$zero; Q4_NR / $w];
                    for (h, bh) in b.iter_mut().enumerate() {
                        *bh = $load(bp.add(Q4_NR * p + $w * h));
                    }
                    for (r, ar) in acc.iter_mut().enumerate() {
                        let x = $splat(*ap.add((i0 + r) * g.lda + pc + p));
                        for (v, &bh) in ar.iter_mut().zip(&b) {
                            *v = $fma(x, bh, *v);
                        }
                    }
                }
            }
            for (r, $ar) in acc.iter().enumerate() {
                let at = (i0 + r) * g.ldc + col0;
                let ($row, $first) = (&mut c[at..at + cols], first);
                $store
            }
        }
    };
}

#[cfg(all(target_arch = "aarch64", target_feature = "dotprod"))]
pub mod aarch64_dotprod;
#[cfg(target_arch = "aarch64")]
pub mod aarch64_neon;
pub mod reference;
#[cfg(target_arch = "x86_64")]
pub mod x86_avx2;
#[cfg(target_arch = "x86_64")]
pub mod x86_avx512;

#[cfg(test)]
mod tests;

pub use crate::kernels::gemm::{Activation, Tiles};

use crate::arena::cast;
use crate::error::Error;
use crate::kernels::gather::{Index, fill_rows};
use crate::kernels::gemm::{Gemm, epilogue};
use crate::math::f32_to_f16;

/// Largest panel width any kernel accepts.
pub const MAX_NR: usize = 64;
/// i32 sums in one register tile (`mr·nr`; `mr` shrinks for wide panels). Kept small: it
/// lives on the stack of microcontrollers too.
const TILE: usize = 512;
/// Depth group: activation rows and weight panels are padded to a multiple of it.
pub const DEPTH_GROUP: usize = 4;

const fn align64(x: usize) -> usize {
    x.div_ceil(64) * 64
}

/// 1.5·2^23: for `|x| <= 2^22`, `x + MAGIC` rounds `x` to an integer (half to even, the
/// default rounding mode) and holds it in its low mantissa bits.
const MAGIC: f32 = 12_582_912.0;

/// `x` rounded half to even, as an integer, for `|x| <= 2^22` (pure float and integer
/// arithmetic, so row loops vectorise without saturating conversions).
#[inline(always)]
fn rint_i32(x: f32) -> i32 {
    ((x + MAGIC).to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32)
}

/// Round half to even (ONNX QuantizeLinear / DynamicQuantizeLinear). Inputs are clamped to
/// ±2^22 first (which cannot change a result saturated to 8 bits).
#[inline(always)]
fn round_even(x: f32) -> f32 {
    let x = x.clamp(-4_194_304.0, 4_194_304.0);
    (x + MAGIC) - MAGIC
}

/// Round half away from zero (the weight and symmetric-row quantizers' rounding) for
/// `|x| <= 2^22`: round to even, then move exact halves away from zero.
#[inline(always)]
fn round_away(x: f32) -> f32 {
    let r = (x + MAGIC) - MAGIC;
    if (x - r).abs() == 0.5 {
        x + 0.5f32.copysign(x)
    } else {
        r
    }
}

/// The largest `|x|` (integer maximum over the magnitude bits, which orders non-NaN floats
/// like their values and vectorises).
#[inline(always)]
fn max_abs(x: &[f32]) -> f32 {
    f32::from_bits(x.iter().fold(0u32, |m, v| m.max(v.to_bits() & 0x7fff_ffff)))
}

/// A float's bits mapped to an i32 that orders like the value (for vectorised min/max).
#[inline(always)]
pub fn ordered(x: f32) -> i32 {
    let i = x.to_bits() as i32;
    if i < 0 { i ^ 0x7fff_ffff } else { i }
}

#[inline(always)]
fn from_ordered(i: i32) -> f32 {
    f32::from_bits((if i < 0 { i ^ 0x7fff_ffff } else { i }) as u32)
}

// ---------------------------------------------------------------- int8 weights

/// Quantize a row-major `k×n` f32 weight per output column (symmetric):
/// `scale[j] = max_p |w[p][j]| / 127` (a zero column gets scale 1.0 and all-zero q),
/// `q = round_half_away_from_zero(w / scale)` clamped to [-127, 127]. Deterministic.
pub fn quantize_weights_i8(w: &[f32], k: usize, n: usize, q: &mut [i8], scales: &mut [f32]) {
    assert!(w.len() >= k * n && q.len() >= k * n && scales.len() >= n);
    for j in 0..n {
        let max = (0..k).fold(0.0f32, |m, p| m.max(w[p * n + j].abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        scales[j] = scale;
        for p in 0..k {
            q[p * n + j] = round_away((w[p * n + j] / scale).clamp(-127.0, 127.0)) as i8;
        }
    }
}

#[derive(Clone, Copy)]
struct I8Layout {
    kp: usize,
    n_pad: usize,
    scales: usize,
    sums: usize,
    total: usize,
}

fn i8_layout(k: usize, n: usize, nr: usize) -> I8Layout {
    assert!(
        (1..=MAX_NR).contains(&nr),
        "int8 panel width must be 1..=64"
    );
    let kp = qa_stride(k);
    let n_pad = n.div_ceil(nr) * nr;
    let scales = align64(kp * n_pad);
    let sums = scales + align64(4 * n_pad);
    I8Layout {
        kp,
        n_pad,
        scales,
        sums,
        total: sums + align64(4 * n_pad),
    }
}

/// Bytes of the packed int8 blob for a `k×n` weight with panel width `nr`.
pub fn packed_i8_bytes(k: usize, n: usize, nr: usize) -> usize {
    i8_layout(k, n, nr).total
}

/// Byte offset of weight `(p, j)` in the panel section of an int8 blob.
#[inline]
pub fn i8_panel_index(p: usize, j: usize, kp: usize, nr: usize) -> usize {
    (j / nr) * kp * nr + (p / 4) * 4 * nr + (j % nr) * 4 + p % 4
}

/// Pack row-major `k×n` int8 weights `q` (any values in [-128, 127]) with per-column
/// `scales` into `out` ([`packed_i8_bytes`] long): panels, scales and column sums.
pub fn pack_i8(q: &[i8], scales: &[f32], k: usize, n: usize, nr: usize, out: &mut [u8]) {
    let l = i8_layout(k, n, nr);
    assert!(q.len() >= k * n && scales.len() >= n && out.len() == l.total);
    out.fill(0);
    for p in 0..k {
        for j in 0..n {
            out[i8_panel_index(p, j, l.kp, nr)] = q[p * n + j] as u8;
        }
    }
    for j in 0..n {
        let sum: i32 = (0..k).map(|p| q[p * n + j] as i32).sum();
        let s = l.scales + 4 * j;
        out[s..s + 4].copy_from_slice(&scales[j].to_le_bytes());
        let s = l.sums + 4 * j;
        out[s..s + 4].copy_from_slice(&sum.to_le_bytes());
    }
}

/// A view of a packed int8 blob.
#[derive(Clone, Copy, Debug)]
pub struct QWeights<'a> {
    /// `n_pad / nr` panels of `kp·nr` bytes (see the module doc).
    pub panels: &'a [i8],
    /// `n_pad` per-column scales.
    pub scales: &'a [f32],
    /// `n_pad` per-column sums of the quantized weights.
    pub sums: &'a [i32],
    pub k: usize,
    pub n: usize,
    pub nr: usize,
    /// Depth padded to the depth group ([`qa_stride`]).
    pub kp: usize,
}

impl<'a> QWeights<'a> {
    /// Panics when `blob` is not [`packed_i8_bytes`] long or not 4-byte aligned: blob and
    /// shapes are compile-time constants of a generated crate, so a mismatch is a compiler bug.
    pub fn new(blob: &'a [u8], k: usize, n: usize, nr: usize) -> Self {
        let l = i8_layout(k, n, nr);
        assert_eq!(blob.len(), l.total, "int8 weight blob length");
        QWeights {
            panels: cast::<i8>(&blob[..l.kp * l.n_pad]),
            scales: cast::<f32>(&blob[l.scales..l.scales + 4 * l.n_pad]),
            sums: cast::<i32>(&blob[l.sums..l.sums + 4 * l.n_pad]),
            k,
            n,
            nr,
            kp: l.kp,
        }
    }

    /// The `kp·nr` bytes of panel `panel`.
    #[inline]
    pub fn panel(&self, panel: usize) -> &'a [i8] {
        let len = self.kp * self.nr;
        &self.panels[panel * len..(panel + 1) * len]
    }
}

// ---------------------------------------------------------------- activations

/// Bytes per quantized activation row: `k` rounded up to the depth group (4).
pub const fn qa_stride(k: usize) -> usize {
    k.div_ceil(DEPTH_GROUP) * DEPTH_GROUP
}

fn check_quantize_args(
    a: &[f32],
    m: usize,
    k: usize,
    lda: usize,
    q: &[i8],
    scales: &[f32],
    zero_points: &[i32],
) {
    assert!(lda >= k, "activation stride too small");
    if m > 0 {
        assert!(a.len() >= (m - 1) * lda + k, "activation too short");
    }
    assert!(
        q.len() >= m * qa_stride(k),
        "quantized activation too short"
    );
    assert!(scales.len() >= m && zero_points.len() >= m);
}

/// Dynamic per-row symmetric quantization: `scale[i] = max |a[i][..k]| / 127` (0 for an
/// all-zero row), `q = round_half_away_from_zero(a · (127 / max))` in [-127, 127] (a product
/// by the one reciprocal per row, not a division per value),
/// `zero_point[i] = 0`. `q` holds `m` rows of [`qa_stride`]`(k)` bytes (zero-padded tail).
pub fn quantize_rows_symmetric(
    a: &[f32],
    m: usize,
    k: usize,
    lda: usize,
    q: &mut [i8],
    scales: &mut [f32],
    zero_points: &mut [i32],
) {
    check_quantize_args(a, m, k, lda, q, scales, zero_points);
    let kp = qa_stride(k);
    for i in 0..m {
        let out = &mut q[i * kp..(i + 1) * kp];
        scales[i] = native::symmetric_row(&a[i * lda..i * lda + k], out);
        zero_points[i] = 0;
        out[k..].fill(0);
    }
}

/// One row of [`quantize_rows_symmetric`]: writes `out[..row.len()]`, returns the scale.
#[inline(always)]
pub fn symmetric_row(row: &[f32], out: &mut [i8]) -> f32 {
    let max = max_abs(row);
    if max > 0.0 {
        let inv = 127.0 / max;
        for (o, &x) in out.iter_mut().zip(row) {
            *o = rint_i32(round_away((x * inv).clamp(-127.0, 127.0))) as i8;
        }
        max / 127.0
    } else {
        out[..row.len()].fill(0);
        0.0
    }
}

/// The smallest and largest value of `a`'s `m` rows of `k` (stride `lda`) and 0, as
/// [`ordered`] integers.
#[inline(always)]
pub fn ordered_range(a: &[f32], m: usize, k: usize, lda: usize) -> (i32, i32) {
    let (mut lo, mut hi) = (0i32, 0i32);
    for i in 0..m {
        for &x in &a[i * lda..i * lda + k] {
            lo = lo.min(ordered(x));
            hi = hi.max(ordered(x));
        }
    }
    (lo, hi)
}

/// Row quantizers with the fastest variant compiled in (bit-identical to the portable ones
/// for finite inputs).
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx512f",
    target_feature = "avx512bw"
))]
mod native {
    use super::x86_avx512 as isa;

    pub(super) fn symmetric_row(row: &[f32], out: &mut [i8]) -> f32 {
        // SAFETY: this code is compiled with AVX-512F/BW enabled, so the CPU has them.
        unsafe { isa::symmetric_row(row, out) }
    }

    pub(super) fn affine_row(
        row: &[f32],
        scale: f32,
        zp: i32,
        range: (i32, i32, i32),
        out: &mut [i8],
    ) {
        // SAFETY: as above.
        unsafe { isa::affine_row(row, scale, zp, range, out) }
    }

    pub(super) fn ordered_range(a: &[f32], m: usize, k: usize, lda: usize) -> (i32, i32) {
        // SAFETY: as above.
        unsafe { isa::ordered_range(a, m, k, lda) }
    }
}
#[cfg(not(all(
    target_arch = "x86_64",
    target_feature = "avx512f",
    target_feature = "avx512bw"
)))]
mod native {
    pub(super) use super::{affine_row, ordered_range, symmetric_row};
}

/// Write `round_half_even(x / scale) + zp` saturated to `[lo, hi]`, shifted by `shift`.
#[inline(always)]
pub fn affine_row(
    row: &[f32],
    scale: f32,
    zp: i32,
    (lo, hi, shift): (i32, i32, i32),
    out: &mut [i8],
) {
    let (zp, lo, hi) = (zp as f32, lo as f32, hi as f32);
    for (o, &x) in out.iter_mut().zip(row) {
        let v = (round_even(x / scale) + zp).clamp(lo, hi);
        *o = (rint_i32(v) + shift) as i8;
    }
}

/// ONNX `DynamicQuantizeLinear` over the whole `m×k` tensor (uint8, asymmetric, one scale and
/// zero point for all rows, round half to even), stored shifted by -128 into i8
/// (`q_i8 = q_u8 - 128`, `zp_i8 = zp_u8 - 128`); every row gets the same scale and zero
/// point. As ONNX Runtime does, an all-zero tensor gets scale 1.0 (and zero point 0 in u8).
pub fn quantize_tensor_dynamic_u8(
    a: &[f32],
    m: usize,
    k: usize,
    lda: usize,
    q: &mut [i8],
    scales: &mut [f32],
    zero_points: &mut [i32],
) {
    check_quantize_args(a, m, k, lda, q, scales, zero_points);
    let (lo, hi) = native::ordered_range(a, m, k, lda);
    let (lo, hi) = (from_ordered(lo), from_ordered(hi));
    let scale = if hi == lo { 1.0 } else { (hi - lo) / 255.0 };
    let zp = round_even((0.0 - lo / scale).clamp(0.0, 255.0)) as i32;
    let kp = qa_stride(k);
    for i in 0..m {
        let out = &mut q[i * kp..(i + 1) * kp];
        native::affine_row(&a[i * lda..i * lda + k], scale, zp, (0, 255, -128), out);
        out[k..].fill(0);
        scales[i] = scale;
        zero_points[i] = zp - 128;
    }
}

/// Static quantization with a fixed `(scale, zero_point)` as ONNX `QuantizeLinear`
/// (`u8`: uint8 semantics stored shifted by -128, zero point included; else int8), round half
/// to even, saturating.
#[allow(clippy::too_many_arguments)]
pub fn quantize_rows_static(
    a: &[f32],
    m: usize,
    k: usize,
    lda: usize,
    scale: f32,
    zero_point: i32,
    u8: bool,
    q: &mut [i8],
    scales: &mut [f32],
    zero_points: &mut [i32],
) {
    check_quantize_args(a, m, k, lda, q, scales, zero_points);
    let (lo, hi, shift) = if u8 { (0, 255, -128) } else { (-128, 127, 0) };
    let kp = qa_stride(k);
    for i in 0..m {
        let out = &mut q[i * kp..(i + 1) * kp];
        native::affine_row(
            &a[i * lda..i * lda + k],
            scale,
            zero_point,
            (lo, hi, shift),
            out,
        );
        out[k..].fill(0);
        scales[i] = scale;
        zero_points[i] = zero_point + shift;
    }
}

// ---------------------------------------------------------------- int8 GEMM

/// `C = act(a_scales[i] · w.scales[j] · Σ_p (qa[i][p] - a_zero_points[i]) · qw[p][j] + bias[j])`
/// with exact i32 accumulation for any i8 values of `qa` and `qw` and zero points in
/// [-128, 127] (while the exact sum fits i32: any `k` up to 65 535). `qa` rows are
/// [`qa_stride`]`(k)` bytes; `tiles.mr` and `tiles.mc` block rows (`kc` is not used: a
/// tile's whole depth accumulates in registers).
#[derive(Clone, Copy, Debug)]
pub struct QGemm<'a> {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// C row stride (f32 elements).
    pub ldc: usize,
    pub a_scales: &'a [f32],
    pub a_zero_points: &'a [i32],
    pub bias: Option<&'a [f32]>,
    pub activation: Activation,
    pub tiles: Tiles,
}

/// Check every access the kernels make, once. A failure is a compiler bug.
pub(crate) fn check_qgemm(qa: &[i8], w: &QWeights<'_>, c: &[f32], g: &QGemm<'_>) {
    assert!(
        g.k == w.k && g.n == w.n,
        "qgemm shape differs from the packed weight"
    );
    assert!(g.tiles.mr > 0 && g.tiles.mc > 0);
    if g.m == 0 || g.n == 0 {
        return;
    }
    assert!(g.ldc >= g.n, "qgemm C stride too small");
    assert!(c.len() >= (g.m - 1) * g.ldc + g.n, "qgemm C too short");
    assert!(qa.len() >= g.m * w.kp, "qgemm A too short");
    assert!(g.a_scales.len() >= g.m && g.a_zero_points.len() >= g.m);
    if let Some(bias) = g.bias {
        assert!(bias.len() >= g.n, "qgemm bias too short");
    }
}

/// The loop nest of the int8 variants that return raw sums (all but VNNI, which finishes its
/// tiles in registers): blocks of `mc` rows, each panel, blocks of at
/// most `mr` rows. `micro(ir, a, rows, panel, acc)` fills the tile's exact sums
/// `acc[r·nr + c] = Σ_p a[r][p] · panel(p, c)` (wrapping i32) for `rows` rows of `a` (rows
/// `ir..` of `qa`, row stride `kp`) and all `nr` columns; the shared epilogue then applies zero points, scales,
/// bias and activation, so every variant rounds identically.
#[inline(always)]
pub(crate) fn drive_i8(
    qa: &[i8],
    w: &QWeights<'_>,
    c: &mut [f32],
    g: &QGemm<'_>,
    max_mr: usize,
    mut micro: impl FnMut(usize, &[i8], usize, &[i8], &mut [i32]),
) {
    let (m, n, nr, kp) = (g.m, g.n, w.nr, w.kp);
    if m == 0 || n == 0 {
        return;
    }
    let mr = g.tiles.mr.min(max_mr).min(TILE / nr).max(1);
    let mut acc = [0i32; TILE];
    let mut ic = 0;
    while ic < m {
        let mb = g.tiles.mc.min(m - ic);
        for panel in 0..n.div_ceil(nr) {
            let col0 = panel * nr;
            let cols = nr.min(n - col0);
            let wp = w.panel(panel);
            let mut ir = ic;
            while ir < ic + mb {
                let left = ic + mb - ir;
                let rows = left.div_ceil(left.div_ceil(mr));
                let tile = &mut acc[..rows * nr];
                micro(ir, &qa[ir * kp..(ir + rows) * kp], rows, wp, tile);
                for r in 0..rows {
                    let i = ir + r;
                    let (sa, zp) = (g.a_scales[i], g.a_zero_points[i]);
                    let out = &mut c[i * g.ldc + col0..i * g.ldc + col0 + cols];
                    let sums = &tile[r * nr..r * nr + cols];
                    let ws = &w.scales[col0..col0 + cols];
                    let cs = &w.sums[col0..col0 + cols];
                    finish_row(
                        out,
                        sums,
                        ws,
                        cs,
                        (sa, zp),
                        g.bias.map(|b| &b[col0..col0 + cols]),
                    );
                    epilogue(out, None, g.activation);
                }
                ir += rows;
            }
        }
        ic += mb;
    }
}

/// `out[j] = (sums[j] - zp·col_sums[j]) as f32 · (sa · w_scales[j]) (+ bias[j])` (wrapping
/// i32, then two f32 roundings, never fused): the dequantizing epilogue every int8 variant
/// reproduces bit for bit, before the activation.
#[inline(always)]
pub(crate) fn finish_row(
    out: &mut [f32],
    sums: &[i32],
    w_scales: &[f32],
    col_sums: &[i32],
    (sa, zp): (f32, i32),
    bias: Option<&[f32]>,
) {
    let it = out.iter_mut().zip(sums).zip(w_scales).zip(col_sums);
    match bias {
        Some(bias) => {
            for ((((o, &s), &sw), &cs), &b) in it.zip(bias) {
                *o = s.wrapping_sub(zp.wrapping_mul(cs)) as f32 * (sa * sw) + b;
            }
        }
        None => {
            for (((o, &s), &sw), &cs) in it {
                *o = s.wrapping_sub(zp.wrapping_mul(cs)) as f32 * (sa * sw);
            }
        }
    }
}

/// [`qgemm`] plus a residual, `C = act(qa · W + bias) + r` (`r` indexed as `C`, row stride
/// `g.ldc`): bit-identical to [`qgemm`] then `gemv::add_assign` row by row. The AVX-512 VNNI
/// kernel adds `r` in registers before its one store of each tile; others add it afterwards.
pub fn qgemm_residual(qa: &[i8], w: QWeights<'_>, c: &mut [f32], g: &QGemm<'_>, r: &[f32]) {
    check_qgemm(qa, &w, c, g);
    assert!(
        g.m == 0 || r.len() >= (g.m - 1) * g.ldc + g.n,
        "residual too short"
    );
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx512f",
        target_feature = "avx512bw",
        target_feature = "avx512vnni"
    ))]
    if w.nr == x86_avx512::NR {
        // SAFETY: this code is compiled with AVX-512F/BW/VNNI enabled, so the CPU has them.
        unsafe { x86_avx512::qgemm_residual(qa, w, c, g, Some(r)) };
        return;
    }
    qgemm(qa, w, c, g);
    for i in 0..g.m {
        let span = i * g.ldc..i * g.ldc + g.n;
        super::gemv::add_assign(&mut c[span.clone()], &r[span]);
    }
}

/// The quantized GEMM with the fastest variant compiled in for `w.nr`.
pub fn qgemm(qa: &[i8], w: QWeights<'_>, c: &mut [f32], g: &QGemm<'_>) {
    check_qgemm(qa, &w, c, g);
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx512f",
        target_feature = "avx512bw",
        target_feature = "avx512vnni"
    ))]
    if w.nr == x86_avx512::NR {
        // SAFETY: this code is compiled with AVX-512F/BW/VNNI enabled, so the CPU has them.
        unsafe { x86_avx512::qgemm(qa, w, c, g) };
        return;
    }
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    if w.nr == x86_avx2::NR {
        // SAFETY: this code is compiled with AVX2 enabled, so the CPU has it.
        unsafe { x86_avx2::qgemm(qa, w, c, g) };
        return;
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "dotprod"))]
    if w.nr == aarch64_dotprod::NR {
        aarch64_dotprod::qgemm(qa, w, c, g);
        return;
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    if w.nr == aarch64_neon::NR {
        aarch64_neon::qgemm(qa, w, c, g);
        return;
    }
    reference::qgemm(qa, w, c, g);
}

// ---------------------------------------------------------------- int4 weights

/// Quantize a row-major `k×n` f32 weight per (group of `group` rows of k, column)
/// symmetric: `scale = max|w| / 7` (zero group: 1.0), `q = clamp(round_half_away(w / scale),
/// -8, 7) + 8` stored as 0..=15. `scales` is `k.div_ceil(group) × n` row-major.
pub fn quantize_weights_q4(
    w: &[f32],
    k: usize,
    n: usize,
    group: usize,
    q: &mut [u8],
    scales: &mut [f32],
) {
    assert!(group > 0);
    let groups = k.div_ceil(group);
    assert!(w.len() >= k * n && q.len() >= k * n && scales.len() >= groups * n);
    for gi in 0..groups {
        let rows = gi * group..k.min((gi + 1) * group);
        for j in 0..n {
            let max = rows.clone().fold(0.0f32, |m, p| m.max(w[p * n + j].abs()));
            let scale = if max > 0.0 { max / 7.0 } else { 1.0 };
            scales[gi * n + j] = scale;
            for p in rows.clone() {
                q[p * n + j] = (round_away((w[p * n + j] / scale).clamp(-8.0, 7.0)) + 8.0) as u8;
            }
        }
    }
}

#[derive(Clone, Copy)]
struct Q4Layout {
    n_pad: usize,
    groups: usize,
    scales: usize,
    scale_bytes: usize,
    zps: usize,
    total: usize,
}

fn q4_layout(
    k: usize,
    n: usize,
    group: usize,
    nr: usize,
    f16_scales: bool,
    zero_points: bool,
) -> Q4Layout {
    assert!(group > 0, "int4 group must be positive");
    assert!(
        (2..=MAX_NR).contains(&nr) && nr.is_multiple_of(2),
        "int4 panel width must be even and at most 64"
    );
    let n_pad = n.div_ceil(nr) * nr;
    let groups = k.div_ceil(group);
    let scales = align64(k * n_pad / 2);
    let scale_bytes = groups * n_pad * if f16_scales { 2 } else { 4 };
    let zps = scales + align64(scale_bytes);
    let total = zps
        + if zero_points {
            align64(groups * n_pad / 2)
        } else {
            0
        };
    Q4Layout {
        n_pad,
        groups,
        scales,
        scale_bytes,
        zps,
        total,
    }
}

/// Bytes of the packed int4 blob. `f16_scales`: scales stored as IEEE half. `zero_points`:
/// an explicit per-(group, column) zero point (0..=15, a nibble) is stored (else 8).
pub fn packed_q4_bytes(
    k: usize,
    n: usize,
    group: usize,
    nr: usize,
    f16_scales: bool,
    zero_points: bool,
) -> usize {
    q4_layout(k, n, group, nr, f16_scales, zero_points).total
}

/// The unpadded bytes of an int4 blob's sections: `[nibbles, scales, zero points]` (the
/// rest of [`packed_q4_bytes`] is alignment and `n` padded to `nr`).
pub fn q4_blob_parts(
    k: usize,
    n: usize,
    group: usize,
    f16_scales: bool,
    zero_points: bool,
) -> [usize; 3] {
    let cells = k.div_ceil(group) * n;
    [
        (k * n).div_ceil(2),
        cells * if f16_scales { 2 } else { 4 },
        if zero_points { cells.div_ceil(2) } else { 0 },
    ]
}

/// Pack `q` (`k×n` values 0..=15), `scales` (`groups×n` f32) and optional zero points
/// (`groups×n`, 0..=15) into `out` ([`packed_q4_bytes`] long).
#[allow(clippy::too_many_arguments)]
pub fn pack_q4(
    q: &[u8],
    scales: &[f32],
    zero_points: Option<&[u8]>,
    k: usize,
    n: usize,
    group: usize,
    nr: usize,
    f16_scales: bool,
    out: &mut [u8],
) {
    let l = q4_layout(k, n, group, nr, f16_scales, zero_points.is_some());
    assert!(q.len() >= k * n && scales.len() >= l.groups * n && out.len() == l.total);
    out.fill(0);
    let half = nr / 2;
    for p in 0..k {
        for j in 0..n {
            let (panel, c) = (j / nr, j % nr);
            let at = panel * k * half + p * half + c % half;
            let v = q[p * n + j] & 15;
            out[at] |= if c < half { v } else { v << 4 };
        }
    }
    for gi in 0..l.groups {
        for j in 0..n {
            let s = scales[gi * n + j];
            let e = gi * l.n_pad + j;
            if f16_scales {
                let at = l.scales + 2 * e;
                out[at..at + 2].copy_from_slice(&f32_to_f16(s).to_le_bytes());
            } else {
                let at = l.scales + 4 * e;
                out[at..at + 4].copy_from_slice(&s.to_le_bytes());
            }
            if let Some(zp) = zero_points {
                let (c, half) = (j % nr, nr / 2);
                let at = l.zps + (gi * l.n_pad + j - c) / 2 + c % half;
                out[at] |= (zp[gi * n + j] & 15) << if c < half { 0 } else { 4 };
            }
        }
    }
}

/// Per-(group, column) scales of an int4 blob.
#[derive(Clone, Copy, Debug)]
pub enum Q4Scales<'a> {
    F32(&'a [f32]),
    /// IEEE half bits.
    F16(&'a [u16]),
}

impl Q4Scales<'_> {
    #[inline]
    pub fn get(&self, at: usize) -> f32 {
        match self {
            Q4Scales::F32(s) => s[at],
            Q4Scales::F16(s) => half_to_f32(s[at]),
        }
    }
}

/// IEEE half bits → f32, branch-free (so loops over scales vectorise): the magnitude bits
/// moved into an f32 and scaled by 2^112 give every finite value exactly (subnormals
/// included); the all-ones exponent becomes infinity / NaN.
#[inline(always)]
pub fn half_to_f32(h: u16) -> f32 {
    let h = h as u32;
    let bits = (h & 0x7fff) << 13;
    let finite = f32::from_bits(bits) * f32::from_bits(0x7780_0000);
    let mag = if h & 0x7c00 == 0x7c00 {
        f32::from_bits(bits | 0x7f80_0000)
    } else {
        finite
    };
    f32::from_bits(mag.to_bits() | ((h & 0x8000) << 16))
}

/// A view of a packed int4 blob.
#[derive(Clone, Copy, Debug)]
pub struct Q4Weights<'a> {
    /// `n_pad / nr` panels of `k · nr/2` bytes (see the module doc).
    pub nibbles: &'a [u8],
    /// `groups × n_pad`.
    pub scales: Q4Scales<'a>,
    /// `groups × n_pad / 2` bytes of zero points in the panels' nibble order (see the module
    /// doc), or `None` for 8.
    pub zero_points: Option<&'a [u8]>,
    pub k: usize,
    pub n: usize,
    pub group: usize,
    pub nr: usize,
    /// `n` padded to a multiple of `nr` (the row length of scales and zero points).
    pub n_pad: usize,
}

impl<'a> Q4Weights<'a> {
    /// Panics like [`QWeights::new`] on a length or alignment mismatch.
    pub fn new(
        blob: &'a [u8],
        k: usize,
        n: usize,
        group: usize,
        nr: usize,
        f16_scales: bool,
        zero_points: bool,
    ) -> Self {
        let l = q4_layout(k, n, group, nr, f16_scales, zero_points);
        assert_eq!(blob.len(), l.total, "int4 weight blob length");
        let sb = &blob[l.scales..l.scales + l.scale_bytes];
        Q4Weights {
            nibbles: &blob[..k * l.n_pad / 2],
            scales: if f16_scales {
                Q4Scales::F16(cast::<u16>(sb))
            } else {
                Q4Scales::F32(cast::<f32>(sb))
            },
            zero_points: zero_points.then(|| &blob[l.zps..l.zps + l.groups * l.n_pad / 2]),
            k,
            n,
            group,
            nr,
            n_pad: l.n_pad,
        }
    }

    /// The `k · nr/2` bytes of panel `panel`.
    #[inline]
    pub fn panel(&self, panel: usize) -> &'a [u8] {
        let len = self.k * self.nr / 2;
        &self.nibbles[panel * len..(panel + 1) * len]
    }

    /// Scale and zero point of `(group, column)` as f32.
    #[inline]
    pub fn scale_zp(&self, gi: usize, j: usize) -> (f32, f32) {
        let e = gi * self.n_pad + j;
        let zp = self.zero_points.map_or(8, |z| {
            let (c, half) = (j % self.nr, self.nr / 2);
            z[(e - c) / 2 + c % half] >> if c < half { 0 } else { 4 } & 15
        });
        (self.scales.get(e), zp as f32)
    }

    /// Scales and zero points of group `gi` for the `nr` columns of the panel starting at
    /// column `col0` (a multiple of `nr`; `s` and `z` are `nr` long). Vectorising loops per
    /// storage kind.
    #[inline(always)]
    pub fn group_params(&self, gi: usize, col0: usize, s: &mut [f32], z: &mut [f32]) {
        let e = gi * self.n_pad + col0;
        let len = s.len();
        assert!(len == self.nr && z.len() == len && col0.is_multiple_of(len));
        match self.scales {
            Q4Scales::F32(v) => s.copy_from_slice(&v[e..e + len]),
            Q4Scales::F16(v) => {
                for (o, &h) in s.iter_mut().zip(&v[e..e + len]) {
                    *o = half_to_f32(h);
                }
            }
        }
        match self.zero_points {
            Some(v) => {
                let half = len / 2;
                let (lo, hi) = z.split_at_mut(half);
                for ((l, h), &b) in lo.iter_mut().zip(hi).zip(&v[e / 2..e / 2 + half]) {
                    *l = (b & 15) as f32;
                    *h = (b >> 4) as f32;
                }
            }
            None => z.fill(8.0),
        }
    }
}

pub(crate) fn check_q4(a: &[f32], w: &Q4Weights<'_>, c: &[f32], g: &Gemm<'_>) {
    assert!(
        g.k == w.k && g.n == w.n,
        "gemm_q4 shape differs from the packed weight"
    );
    if g.m == 0 || g.n == 0 {
        return;
    }
    assert!(g.lda >= g.k && g.ldc >= g.n, "gemm_q4 strides too small");
    assert!(c.len() >= (g.m - 1) * g.ldc + g.n, "gemm_q4 C too short");
    assert!(a.len() >= (g.m - 1) * g.lda + g.k, "gemm_q4 A too short");
    if let Some(bias) = g.bias {
        assert!(bias.len() >= g.n, "gemm_q4 bias too short");
    }
}

/// Write (`first`) or add `sums` into a row of `C`: the end of an f32 register tile of the
/// int4 blocked variants that spill their sums to an array.
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
#[inline(always)]
pub(crate) fn write_tile_row(row: &mut [f32], sums: &[f32], first: bool) {
    if first {
        row.copy_from_slice(&sums[..row.len()]);
    } else {
        for (o, &v) in row.iter_mut().zip(sums) {
            *o += v;
        }
    }
}

/// One f32 register tile of the int4 blocked path: `(i0, pc, kb, col0, cols, first)` —
/// rows `i0..`, depths `pc..pc+kb`, columns `col0..col0+cols`, and whether `C` is written
/// (`first`) or accumulated into.
pub(crate) type Q4Tile = (usize, usize, usize, usize, usize, bool);

/// The loop nest shared by the int4 blocked (prefill) variants for the panel of columns
/// `col0..col0+cols`: for each block of at most `kb_max` depths from `pc`,
/// `dequant(gi, d, end, pc)` writes depths `d..end` (all in quantization group `gi`) of the
/// block as f32, then `tile(c, rows, t)` multiplies `rows` rows of `A` (at most `block_mr`)
/// by the block. With `k == 0` the panel of `C` is zeroed. Inlined, so closures defined in a
/// `#[target_feature]` function keep its features.
#[inline(always)]
pub(crate) fn drive_q4_blocked(
    c: &mut [f32],
    g: &Gemm<'_>,
    group: usize,
    (col0, cols): (usize, usize),
    (kb_max, block_mr): (usize, usize),
    mut dequant: impl FnMut(usize, usize, usize, usize),
    mut tile: impl FnMut(&mut [f32], usize, Q4Tile),
) {
    let k = g.k;
    if k == 0 {
        for i in 0..g.m {
            c[i * g.ldc + col0..i * g.ldc + col0 + cols].fill(0.0);
        }
    }
    let mut pc = 0;
    while pc < k {
        let kb = kb_max.min(k - pc);
        let mut d = pc;
        while d < pc + kb {
            let gi = d / group;
            let end = (pc + kb).min((gi + 1) * group);
            dequant(gi, d, end, pc);
            d = end;
        }
        let mut i = 0;
        while i < g.m {
            let rows = (g.m - i).min(block_mr);
            tile(c, rows, (i, pc, kb, col0, cols, pc == 0));
            i += rows;
        }
        pc += kb;
    }
}

/// `C = act(A · W + bias)` with `W[p][j] = (q[p][j] - zp) · scale[p / group][j]`,
/// dequantized inside the kernel. `A` is f32 `m×k` with row stride `lda`.
pub fn gemm_q4(a: &[f32], w: Q4Weights<'_>, c: &mut [f32], g: &Gemm<'_>) {
    check_q4(a, &w, c, g);
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
    if w.nr == x86_avx512::Q4_NR {
        // SAFETY: this code is compiled with AVX-512F enabled, so the CPU has it.
        unsafe { x86_avx512::gemm_q4(a, w, c, g) };
        return;
    }
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    if w.nr == x86_avx2::Q4_NR {
        // SAFETY: this code is compiled with AVX2 and FMA enabled, so the CPU has them.
        unsafe { x86_avx2::gemm_q4(a, w, c, g) };
        return;
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    if w.nr == aarch64_neon::Q4_NR {
        aarch64_neon::gemm_q4(a, w, c, g);
        return;
    }
    reference::gemm_q4(a, w, c, g);
}

// ---------------------------------------------------------------- row tables

/// Bytes of a per-row symmetric int8 table: `rows` f32 scales, then `rows × cols` values.
pub fn packed_rows_i8_bytes(rows: usize, cols: usize) -> usize {
    align64(4 * rows) + rows * cols
}

/// Quantize a `rows × cols` f32 table per row, as [`quantize_weights_i8`] does per column.
pub fn pack_rows_i8(table: &[f32], rows: usize, cols: usize, out: &mut [u8]) {
    assert!(table.len() >= rows * cols && out.len() == packed_rows_i8_bytes(rows, cols));
    out.fill(0);
    let base = align64(4 * rows);
    for r in 0..rows {
        let row = &table[r * cols..(r + 1) * cols];
        let max = max_abs(row);
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        out[4 * r..4 * r + 4].copy_from_slice(&scale.to_le_bytes());
        for (o, &x) in out[base + r * cols..base + (r + 1) * cols]
            .iter_mut()
            .zip(row)
        {
            *o = round_away((x / scale).clamp(-127.0, 127.0)) as i8 as u8;
        }
    }
}

/// `out[r][..] =` dequantized row `indices[r]` (negative indices count from the end; anything
/// else out of range is `Error::IndexOutOfRange` naming `node`, like the float Gather).
pub fn gather_rows_i8<I: Index>(
    node: &'static str,
    blob: &[u8],
    rows: usize,
    cols: usize,
    indices: &[I],
    out: &mut [f32],
) -> Result<(), Error> {
    assert!(blob.len() == packed_rows_i8_bytes(rows, cols) && out.len() >= indices.len() * cols);
    let base = align64(4 * rows);
    let scales = cast::<f32>(&blob[..4 * rows]);
    let values = cast::<i8>(&blob[base..]);
    fill_rows(node, indices, rows, cols, out, |i, row| {
        for (o, &q) in row.iter_mut().zip(&values[i * cols..(i + 1) * cols]) {
            *o = q as f32 * scales[i];
        }
    })
}

/// Bytes of an int4 table: `rows × cols.div_ceil(group)` scales, then `rows ×
/// cols.div_ceil(2)` bytes (column `2b` in the low nibble of byte `b`, `2b + 1` in the high).
pub fn packed_rows_q4_bytes(rows: usize, cols: usize, group: usize, f16_scales: bool) -> usize {
    assert!(group > 0);
    let scale = if f16_scales { 2 } else { 4 };
    align64(rows * cols.div_ceil(group) * scale) + rows * cols.div_ceil(2)
}

/// Quantize a `rows × cols` f32 table per (row, group of `group` columns), as
/// [`quantize_weights_q4`] does per (group of rows, column).
pub fn pack_rows_q4(
    table: &[f32],
    rows: usize,
    cols: usize,
    group: usize,
    f16_scales: bool,
    out: &mut [u8],
) {
    assert!(
        table.len() >= rows * cols
            && out.len() == packed_rows_q4_bytes(rows, cols, group, f16_scales)
    );
    out.fill(0);
    let gpr = cols.div_ceil(group);
    let base = align64(rows * gpr * if f16_scales { 2 } else { 4 });
    let stride = cols.div_ceil(2);
    for r in 0..rows {
        for gi in 0..gpr {
            let span = gi * group..cols.min((gi + 1) * group);
            let vals = &table[r * cols + span.start..r * cols + span.end];
            let max = vals.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            let scale = if max > 0.0 { max / 7.0 } else { 1.0 };
            let e = r * gpr + gi;
            if f16_scales {
                out[2 * e..2 * e + 2].copy_from_slice(&f32_to_f16(scale).to_le_bytes());
            } else {
                out[4 * e..4 * e + 4].copy_from_slice(&scale.to_le_bytes());
            }
            for (t, &x) in vals.iter().enumerate() {
                let col = span.start + t;
                let v = (round_away((x / scale).clamp(-8.0, 7.0)) + 8.0) as u8;
                out[base + r * stride + col / 2] |= if col % 2 == 0 { v } else { v << 4 };
            }
        }
    }
}

/// As [`gather_rows_i8`] for an int4 table made by [`pack_rows_q4`].
#[allow(clippy::too_many_arguments)]
pub fn gather_rows_q4<I: Index>(
    node: &'static str,
    blob: &[u8],
    rows: usize,
    cols: usize,
    group: usize,
    f16_scales: bool,
    indices: &[I],
    out: &mut [f32],
) -> Result<(), Error> {
    assert!(
        blob.len() == packed_rows_q4_bytes(rows, cols, group, f16_scales)
            && out.len() >= indices.len() * cols
    );
    let gpr = cols.div_ceil(group);
    let scale_bytes = rows * gpr * if f16_scales { 2 } else { 4 };
    let scales = if f16_scales {
        Q4Scales::F16(cast::<u16>(&blob[..scale_bytes]))
    } else {
        Q4Scales::F32(cast::<f32>(&blob[..scale_bytes]))
    };
    let base = align64(scale_bytes);
    let stride = cols.div_ceil(2);
    fill_rows(node, indices, rows, cols, out, |i, out| {
        let bytes = &blob[base + i * stride..base + (i + 1) * stride];
        for gi in 0..gpr {
            let s = scales.get(i * gpr + gi);
            for col in gi * group..cols.min((gi + 1) * group) {
                let b = bytes[col / 2];
                let v = if col % 2 == 0 { b & 15 } else { b >> 4 };
                out[col] = (v as f32 - 8.0) * s;
            }
        }
    })
}

// ---------------------------------------------------------------- panel widths

/// The int8 panel width for a target, from its arch (`x86_64`, `aarch64`, …, the first
/// component of the triple) and its enabled target features (as in a profile:
/// `avx512vnni`, `avx512bw`, `avx2`, `dotprod`, `neon`, …).
pub fn qgemm_nr_for(triple_arch: &str, features: &[&str]) -> usize {
    let has = |f: &str| features.contains(&f);
    match triple_arch {
        "x86_64" if has("avx512vnni") && has("avx512bw") => 32,
        "x86_64" if has("avx2") || has("avx512f") => 8,
        "aarch64" if has("dotprod") => 16,
        "aarch64" => 8,
        _ => 16,
    }
}

/// The int4 panel width for a target (see [`qgemm_nr_for`]).
pub fn q4_nr_for(triple_arch: &str, features: &[&str]) -> usize {
    match triple_arch {
        "x86_64" if features.contains(&"avx512f") => 32,
        _ => 16,
    }
}

/// The int8 panel width the variant compiled in for this target reads.
pub const fn native_i8_nr() -> usize {
    if cfg!(all(
        target_arch = "x86_64",
        target_feature = "avx512vnni",
        target_feature = "avx512bw"
    )) {
        32
    } else if cfg!(all(target_arch = "x86_64", target_feature = "avx2")) {
        8
    } else if cfg!(all(target_arch = "aarch64", target_feature = "dotprod")) {
        16
    } else if cfg!(target_arch = "aarch64") {
        8
    } else {
        16
    }
}

/// The int4 panel width the variant compiled in for this target reads.
pub const fn native_q4_nr() -> usize {
    if cfg!(all(target_arch = "x86_64", target_feature = "avx512f")) {
        32
    } else {
        16
    }
}
