//! Half-precision weights: `C = act(A · W + bias)` with `A`, `C` and the bias in f32 and the
//! constant `W` stored as IEEE binary16 (`--quantize f16`), pre-packed at build time.
//!
//! Blob layout ([`pack_h`]): little-endian `u16` half bit patterns in panels of `nr` columns,
//! `[panel][k][nr]` as [`gemm::pack_b`] lays out f32 (the last panel zero-padded), so a panel
//! converted to f32 is exactly a packed f32 `B` panel.
//!
//! Two shapes of work ([`hgemm`]):
//! - one row (`m == 1`, decoding): a GEMV that converts each weight vector to f32 in registers
//!   and multiplies it at once — x86 F16C (`vcvtph2ps`) with AVX2+FMA (`nr` 16) or AVX-512F
//!   (`nr` 32), aarch64 `fcvtl`/`fcvtl2` + f32 `fmla` (`nr` 8, Armv8.0), and on targets with
//!   the Armv8.2 half-precision arithmetic (`fp16`: Jetson) [`aarch64_fp16`], which multiplies
//!   in f16 lanes over short depth blocks widened into f32 accumulators;
//! - several rows: each panel is converted once into the caller's f32 scratch (`k·nr`
//!   values, planned in the arena) and run through the blocked f32 [`gemm::gemm`], so the
//!   conversion is paid once per weight and call, not once per row; on `fp16` targets
//!   [`aarch64_fp16::rows`] instead multiplies 4 rows × 8 columns in half lanes per depth
//!   block (the same scratch holds the rows' scaled half activations).
//!
//! [`reference`] is the portable oracle (scalar [`math::f16_to_f32`], plain loops);
//! [`gather`] reads rows of half embedding tables (row-major, or a tied classifier's blob).
#[cfg(all(target_arch = "aarch64", target_feature = "fp16"))]
pub mod aarch64_fp16;
#[cfg(target_arch = "aarch64")]
pub mod aarch64_neon;
pub mod gather;
pub mod reference;
#[cfg(target_arch = "x86_64")]
pub mod x86;

#[cfg(test)]
mod tests;

use super::gemm::{self, BMatrix, Gemm};
use crate::math;

/// A packed half-precision weight: `k×n`, panels of `nr` columns, `data` as [`pack_h`] wrote.
#[derive(Clone, Copy, Debug)]
pub struct HWeights<'a> {
    pub data: &'a [u8],
    pub k: usize,
    pub n: usize,
    pub nr: usize,
}

impl<'a> HWeights<'a> {
    pub fn new(data: &'a [u8], k: usize, n: usize, nr: usize) -> Self {
        HWeights { data, k, n, nr }
    }

    /// The half bits of element `(p, j)`.
    #[inline(always)]
    pub fn bits(&self, p: usize, j: usize) -> u16 {
        let at = 2 * ((j / self.nr) * self.k * self.nr + p * self.nr + j % self.nr);
        u16::from_le_bytes([self.data[at], self.data[at + 1]])
    }

    /// Bytes of panel `panel` (`k·nr` halves).
    #[inline(always)]
    pub fn panel(&self, panel: usize) -> &'a [u8] {
        let len = 2 * self.k * self.nr;
        &self.data[panel * len..(panel + 1) * len]
    }
}

/// Bytes of a `k×n` half weight packed for panel width `nr`.
pub const fn packed_h_bytes(k: usize, n: usize, nr: usize) -> usize {
    2 * gemm::packed_len(k, n, nr)
}

/// f32 scratch values [`hgemm`] needs for `m` rows: one converted panel (`k·nr`) when
/// `m > 1`, none for one row.
pub const fn scratch_len(m: usize, k: usize, nr: usize) -> usize {
    if m > 1 { k * nr } else { 0 }
}

/// Round a row-major `k×n` f32 matrix to half (nearest even, [`math::f32_to_f16`]) and pack
/// it (build time). `out` has [`packed_h_bytes`] bytes. Values beyond the half range become
/// ±inf and values below half's smallest subnormal (2⁻²⁴) round to ±0: callers that must
/// not change a weight's meaning check the range first.
pub fn pack_h(w: &[f32], k: usize, n: usize, nr: usize, out: &mut [u8]) {
    out.fill(0);
    for p in 0..k {
        for j in 0..n {
            let at = 2 * ((j / nr) * k * nr + p * nr + j % nr);
            out[at..at + 2].copy_from_slice(&math::f32_to_f16(w[p * n + j]).to_le_bytes());
        }
    }
}

/// Check every access [`hgemm`] and its variants make (once; a failure is a compiler bug).
pub(crate) fn check_bounds(a: &[f32], w: &HWeights<'_>, c: &[f32], g: &Gemm<'_>) {
    assert!(w.nr > 0 && g.k == w.k && g.n == w.n, "hgemm shape mismatch");
    assert!(
        w.data.len() >= packed_h_bytes(w.k, w.n, w.nr),
        "hgemm weights too short"
    );
    if g.m == 0 || g.n == 0 {
        return;
    }
    assert!(g.lda >= g.k && g.ldc >= g.n, "hgemm strides too small");
    assert!(c.len() >= (g.m - 1) * g.ldc + g.n, "hgemm C too short");
    assert!(a.len() >= (g.m - 1) * g.lda + g.k, "hgemm A too short");
    if let Some(bias) = g.bias {
        assert!(bias.len() >= g.n, "hgemm bias too short");
    }
}

/// Convert one packed panel (`2·k·nr` bytes) to f32 (`k·nr` values), with the fastest
/// conversion compiled in.
pub fn convert_panel(panel: &[u8], out: &mut [f32]) {
    assert!(panel.len() >= 2 * out.len());
    #[cfg(all(target_arch = "x86_64", target_feature = "f16c"))]
    {
        // SAFETY: compiled with F16C (and the AVX it implies) enabled; lengths checked above.
        unsafe { x86::convert_f16c(panel, out) };
        return;
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    {
        aarch64_neon::convert(panel, out);
        return;
    }
    #[allow(unreachable_code)]
    reference::convert(panel, out);
}

/// `C = act(A · W + bias)` with the fastest variant compiled in. `scratch` has at least
/// [`scratch_len`]`(g.m, g.k, w.nr)` values.
pub fn hgemm(a: &[f32], w: HWeights<'_>, c: &mut [f32], g: &Gemm<'_>, scratch: &mut [f32]) {
    check_bounds(a, &w, c, g);
    if g.m == 0 || g.n == 0 {
        return;
    }
    if g.m == 1 {
        gemv(a, w, c, g);
        return;
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "fp16"))]
    if w.nr == aarch64_fp16::NR {
        aarch64_fp16::rows(a, w, c, g, scratch);
        return;
    }
    rows(a, w, c, g, scratch, convert_panel);
}

/// The one-row product with the fastest variant compiled in for `w.nr`.
pub fn gemv(a: &[f32], w: HWeights<'_>, c: &mut [f32], g: &Gemm<'_>) {
    check_bounds(a, &w, c, g);
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
    if w.nr == x86::NR_AVX512 {
        // SAFETY: compiled with AVX-512F enabled, so the CPU running it has it.
        unsafe { x86::gemv_avx512(a, w, c, g) };
        return;
    }
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma",
        target_feature = "f16c"
    ))]
    if w.nr == x86::NR_AVX2 {
        // SAFETY: compiled with AVX2, FMA and F16C enabled, so the CPU running it has them.
        unsafe { x86::gemv_avx2(a, w, c, g) };
        return;
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "fp16"))]
    if w.nr == aarch64_fp16::NR {
        aarch64_fp16::gemv(a, w, c, g);
        return;
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    if w.nr == aarch64_neon::NR {
        aarch64_neon::gemv(a, w, c, g);
        return;
    }
    reference::gemv(a, w, c, g);
}

/// Several rows: every panel converted by `convert` into `scratch`, then the f32 GEMM on it
/// (its blocking, micro-kernel and epilogue).
pub(crate) fn rows(
    a: &[f32],
    w: HWeights<'_>,
    c: &mut [f32],
    g: &Gemm<'_>,
    scratch: &mut [f32],
    convert: fn(&[u8], &mut [f32]),
) {
    let (k, n, nr) = (g.k, g.n, w.nr);
    let panel_f32 = &mut scratch[..k * nr];
    for panel in 0..n.div_ceil(nr) {
        let col0 = panel * nr;
        let cols = nr.min(n - col0);
        convert(w.panel(panel), panel_f32);
        let sub = Gemm {
            n: cols,
            bias: g.bias.map(|b| &b[col0..col0 + cols]),
            ..*g
        };
        gemm::gemm(a, BMatrix::packed(panel_f32, k, nr), &mut c[col0..], &sub);
    }
}

/// The half panel width the one-row variant compiled for `arch` with `features` reads (the
/// f32 GEMM's `nr`, so a converted panel is a packed f32 panel): 32 with AVX-512F, 16 with
/// AVX2, 8 on aarch64 and elsewhere.
pub fn h_nr_for(arch: &str, features: &[&str]) -> usize {
    let has = |f: &str| features.contains(&f);
    match arch {
        "x86_64" if has("avx512f") => 32,
        "x86_64" if has("avx2") => 16,
        _ => 8,
    }
}

/// Write a panel's `nr` sums to `C` (the columns that exist) and run the epilogue on them.
#[inline(always)]
pub(crate) fn store_panel(panel: usize, nr: usize, out: &[f32], c: &mut [f32], g: &Gemm<'_>) {
    let col0 = panel * nr;
    let cols = nr.min(g.n - col0);
    let dst = &mut c[col0..col0 + cols];
    dst.copy_from_slice(&out[..cols]);
    gemm::epilogue(dst, g.bias.map(|b| &b[col0..col0 + cols]), g.activation);
}
