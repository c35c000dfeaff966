//! f32 GEMM with register and cache blocking: `C = act(A · B + bias)`.
//!
//! `A` is `m×k` with row stride `lda` (rows contiguous); `B` is either a constant weight
//! pre-packed at compile time into panels of `nr` columns ([`BMatrix::packed`], see
//! [`pack_b`]) or a row-major activation read in place ([`BMatrix::row_major`]); `C` is `m×n`
//! with row stride `ldc`. One driver ([`drive`]) walks the cache blocks — `kc` of the depth,
//! `mc` rows of `A`, then every `nr`-column panel of `B` and `mr`-row block of `A` — and
//! calls an ISA micro-kernel per `mr×nr` tile; the bias and activation epilogue runs on the
//! tile after its last depth block, while it is still in L1.
//!
//! Variants: [`reference`] (portable, the oracle of the test battery and of the compiler's
//! reference evaluator), `x86_avx2` (nr = 16, mr ≤ 6), `x86_avx512` (nr = 32, mr ≤ 14),
//! `aarch64_neon` (nr = 8, mr ≤ 12). [`gemm`] picks one at compile time from the enabled
//! target features and the operand's `nr`; anything else runs the reference.
/// The body shared by the ISA variants' tile callbacks: `micro::<R, MASKED>` for the tile's
/// row count `R` (one of the listed literals), `MASKED` when the tile is narrower than `nr`.
/// Expands inside a function that enables the variant's target features; the micro-kernel's
/// contract is met by `check_bounds` and `drive`, which bound every access of the tile.
macro_rules! dispatch_tile {
    ($micro:ident, $tile:expr, $nr:expr, $args:expr, [$($rows:literal)*]) => {
        match ($tile.rows, $tile.cols == $nr) {
            $(
                // SAFETY: `check_bounds` and `drive` bound every access of the tile, and the enclosing function enables the variant's target features.
                ($rows, true) => unsafe { $micro::<$rows, false>($args) },
                // SAFETY: as above.
                ($rows, false) => unsafe { $micro::<$rows, true>($args) },
            )*
            _ => {}
        }
    };
}

#[cfg(target_arch = "aarch64")]
pub mod aarch64_neon;
pub mod reference;
#[cfg(target_arch = "x86_64")]
pub mod x86_avx2;
#[cfg(target_arch = "x86_64")]
pub mod x86_avx512;

#[cfg(test)]
mod tests;

use super::rowwise::{self, Unary};

/// The activation applied by the epilogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    None,
    Relu,
    /// GELU, erf form.
    Gelu,
    /// GELU, tanh approximation.
    GeluTanh,
    /// SiLU / swish: `x · sigmoid(x)`.
    Silu,
}

/// Register block (`mr×nr`) and cache blocks (`kc` of the depth, `mc` rows of `A`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tiles {
    pub mr: usize,
    pub kc: usize,
    pub mc: usize,
}

/// The `B` operand: element `(p, j)` is at `(j / nr) * panel_stride + p * row_stride + j % nr`.
#[derive(Clone, Copy, Debug)]
pub struct BMatrix<'a> {
    pub data: &'a [f32],
    pub row_stride: usize,
    pub panel_stride: usize,
    pub nr: usize,
    /// Packed panels are zero-padded to `nr` columns, so full-width loads are in bounds.
    pub padded: bool,
}

impl<'a> BMatrix<'a> {
    /// A `k×n` matrix packed by [`pack_b`] with panel width `nr`.
    pub fn packed(data: &'a [f32], k: usize, nr: usize) -> Self {
        BMatrix {
            data,
            row_stride: nr,
            panel_stride: k * nr,
            nr,
            padded: true,
        }
    }

    /// A row-major matrix with row stride `ldb`, read in `nr`-column panels.
    pub fn row_major(data: &'a [f32], ldb: usize, nr: usize) -> Self {
        BMatrix {
            data,
            row_stride: ldb,
            panel_stride: nr,
            nr,
            padded: false,
        }
    }

    #[inline]
    pub fn index(&self, p: usize, j: usize) -> usize {
        (j / self.nr) * self.panel_stride + p * self.row_stride + j % self.nr
    }
}

/// The product's geometry and epilogue.
#[derive(Clone, Copy, Debug)]
pub struct Gemm<'a> {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub lda: usize,
    pub ldc: usize,
    /// `n` values added to every row.
    pub bias: Option<&'a [f32]>,
    pub activation: Activation,
    pub tiles: Tiles,
}

/// Elements of a `k×n` matrix packed with panel width `nr`.
pub const fn packed_len(k: usize, n: usize, nr: usize) -> usize {
    n.div_ceil(nr) * k * nr
}

/// Pack a row-major `k×n` matrix into panels of `nr` columns (`[panel][k][nr]`, the last
/// panel zero-padded). `out` has [`packed_len`] elements.
pub fn pack_b(b: &[f32], k: usize, n: usize, nr: usize, out: &mut [f32]) {
    out.fill(0.0);
    for p in 0..k {
        for j in 0..n {
            out[(j / nr) * k * nr + p * nr + j % nr] = b[p * n + j];
        }
    }
}

/// The inverse of [`pack_b`].
pub fn unpack_b(packed: &[f32], k: usize, n: usize, nr: usize, out: &mut [f32]) {
    for p in 0..k {
        for j in 0..n {
            out[p * n + j] = packed[(j / nr) * k * nr + p * nr + j % nr];
        }
    }
}

/// `C = act(A · B + bias)` with the fastest variant compiled in for `b.nr`.
pub fn gemm(a: &[f32], b: BMatrix<'_>, c: &mut [f32], g: &Gemm<'_>) {
    check_bounds(a, &b, c, g);
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
    if b.nr == x86_avx512::NR {
        // SAFETY: this code is compiled with AVX-512F enabled, so the CPU running it has it.
        unsafe { x86_avx512::gemm(a, b, c, g) };
        return;
    }
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    if b.nr == x86_avx2::NR {
        // SAFETY: this code is compiled with AVX2 and FMA enabled, so the CPU running it has them.
        unsafe { x86_avx2::gemm(a, b, c, g) };
        return;
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    if b.nr == aarch64_neon::NR {
        aarch64_neon::gemm(a, b, c, g);
        return;
    }
    reference::gemm(a, b, c, g);
}

/// The panel width the variant compiled in for this target reads (what the compiler packs
/// for when it does not know better).
pub const fn native_nr() -> usize {
    if cfg!(all(target_arch = "x86_64", target_feature = "avx512f")) {
        32
    } else if cfg!(all(target_arch = "x86_64", target_feature = "avx2")) {
        16
    } else {
        8
    }
}

/// Check every access the kernels make, once, so micro-kernels may index without checks.
/// A failure is a compiler bug (the shapes are compile-time constants).
pub(crate) fn check_bounds(a: &[f32], b: &BMatrix<'_>, c: &[f32], g: &Gemm<'_>) {
    assert!(g.tiles.mr > 0 && g.tiles.kc > 0 && g.tiles.mc > 0 && b.nr > 0);
    if g.m == 0 || g.n == 0 {
        return;
    }
    assert!(g.lda >= g.k && g.ldc >= g.n, "gemm strides too small");
    assert!(c.len() >= (g.m - 1) * g.ldc + g.n, "gemm C too short");
    if let Some(bias) = g.bias {
        assert!(bias.len() >= g.n, "gemm bias too short");
    }
    if g.k == 0 {
        return;
    }
    assert!(a.len() >= (g.m - 1) * g.lda + g.k, "gemm A too short");
    let last_col = if b.padded {
        g.n.div_ceil(b.nr) * b.nr - 1
    } else {
        g.n - 1
    };
    assert!(
        b.data.len() > b.index(g.k - 1, last_col),
        "gemm B too short"
    );
}

/// One micro-kernel call: the tile of `rows×cols` at `C[c_off..]`, depth `kb` from `A[a_off..]`
/// (element `(r, p)` at `a_off + r·lda + p`: `A` is read in place, never packed) and
/// `B[b_off..]`; `first` overwrites `C`, else accumulates. `B[pf_off..pf_off + pf_len]` is a
/// share of the packed block the next tiles read (the next panel, or the next depth block's
/// first one), which a kernel may prefetch while it computes this tile: each tile of a panel
/// prefetches its share, so the weights stream in from memory during the panel's compute
/// instead of stalling its first tile. Empty for an unpacked `B`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tile {
    pub a_off: usize,
    pub b_off: usize,
    pub c_off: usize,
    pub rows: usize,
    pub cols: usize,
    pub kb: usize,
    pub first: bool,
    pub pf_off: usize,
    pub pf_len: usize,
}

/// Raw pointers and strides of one tile, as the ISA micro-kernels read them: `A` at `a`
/// (row stride `lda`), `B` at `b` (row stride `ldb`), `C` at `c` (row stride
/// `ldc`), depth `kb`; `first` overwrites `C`, else accumulates; `cols` valid columns;
/// `pf_lines` cache lines from `pf` to prefetch (addresses only: prefetching never faults).
#[derive(Clone, Copy, Debug)]
// Only the x86 kernels prefetch.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) struct TilePtrs {
    pub a: *const f32,
    pub lda: usize,
    pub b: *const f32,
    pub ldb: usize,
    pub kb: usize,
    pub c: *mut f32,
    pub ldc: usize,
    pub first: bool,
    pub cols: usize,
    pub pf: *const f32,
    pub pf_lines: usize,
}

impl Tile {
    /// The tile's pointers into `a` (the slice `drive` hands the callback), `b` and `c`.
    /// Pointer arithmetic only (`wrapping_add`); dereferencing is the micro-kernel's job.
    #[inline(always)]
    pub(crate) fn ptrs(
        &self,
        a: &[f32],
        lda: usize,
        b: &BMatrix<'_>,
        c: &mut [f32],
        ldc: usize,
    ) -> TilePtrs {
        TilePtrs {
            a: a.as_ptr().wrapping_add(self.a_off),
            lda,
            b: b.data.as_ptr().wrapping_add(self.b_off),
            ldb: b.row_stride,
            kb: self.kb,
            c: c.as_mut_ptr().wrapping_add(self.c_off),
            ldc,
            first: self.first,
            cols: self.cols,
            pf: b.data.as_ptr().wrapping_add(self.pf_off),
            pf_lines: self.pf_len.div_ceil(16),
        }
    }
}

impl TilePtrs {
    /// `(a, lda, b, ldb, kb, c, ldc, first, cols)`.
    #[allow(clippy::type_complexity)]
    #[inline(always)]
    pub(crate) fn parts(
        self,
    ) -> (
        *const f32,
        usize,
        *const f32,
        usize,
        usize,
        *mut f32,
        usize,
        bool,
        usize,
    ) {
        (
            self.a, self.lda, self.b, self.ldb, self.kb, self.c, self.ldc, self.first, self.cols,
        )
    }
}

/// The blocked loop nest shared by every variant; `micro` computes one tile. `A` is read in
/// place: its rows are contiguous, and the micro-kernels broadcast from `mr` row streams.
#[inline(always)]
pub(crate) fn drive(
    a: &[f32],
    b: &BMatrix<'_>,
    c: &mut [f32],
    g: &Gemm<'_>,
    max_mr: usize,
    mut micro: impl FnMut(Tile, &[f32], &mut [f32]),
) {
    let (m, k, n, nr) = (g.m, g.k, g.n, b.nr);
    if m == 0 || n == 0 {
        return;
    }
    let mr = g.tiles.mr.min(max_mr);
    let panels = n.div_ceil(nr);
    if k == 0 {
        for i in 0..m {
            let row = &mut c[i * g.ldc..i * g.ldc + n];
            row.fill(0.0);
            epilogue(row, g.bias, g.activation);
        }
        return;
    }
    let mut pc = 0;
    while pc < k {
        let kb = g.tiles.kc.min(k - pc);
        let last = pc + kb == k;
        let mc = g.tiles.mc;
        let mut ic = 0;
        while ic < m {
            let mb = mc.min(m - ic);
            for panel in 0..panels {
                let col0 = panel * nr;
                let cols = nr.min(n - col0);
                // The packed block after this one: the next panel at this depth, else the
                // first panel of the next depth block. Its contiguous `kb'·nr` elements are
                // split over this panel's row blocks.
                let (pf_start, pf_total) = if !b.padded {
                    (0, 0)
                } else if panel + 1 < panels {
                    ((panel + 1) * b.panel_stride + pc * b.row_stride, kb * nr)
                } else if !last {
                    ((pc + kb) * b.row_stride, g.tiles.kc.min(k - pc - kb) * nr)
                } else {
                    (0, 0)
                };
                let blocks = mb.div_ceil(mr);
                let mut block = 0;
                let mut ir = ic;
                while ir < ic + mb {
                    // Balanced row blocks: 128 rows with mr = 14 run as 10 blocks of 12-13
                    // rows, not 9 of 14 and a slow one of 2.
                    let left = ic + mb - ir;
                    let rows = left.div_ceil(left.div_ceil(mr));
                    let tile = Tile {
                        a_off: ir * g.lda + pc,
                        b_off: panel * b.panel_stride + pc * b.row_stride,
                        c_off: ir * g.ldc + col0,
                        rows,
                        cols,
                        kb,
                        first: pc == 0,
                        pf_off: pf_start + pf_total * block / blocks,
                        pf_len: pf_total * (block + 1) / blocks - pf_total * block / blocks,
                    };
                    block += 1;
                    micro(tile, a, c);
                    if last && (g.bias.is_some() || g.activation != Activation::None) {
                        for r in 0..rows {
                            let at = (ir + r) * g.ldc + col0;
                            let bias = g.bias.map(|bias| &bias[col0..col0 + cols]);
                            epilogue(&mut c[at..at + cols], bias, g.activation);
                        }
                    }
                    ir += rows;
                }
            }
            ic += mb;
        }
        pc += kb;
    }
}

/// Add the bias and apply the activation to a run of outputs.
#[inline(always)]
pub fn epilogue(row: &mut [f32], bias: Option<&[f32]>, activation: Activation) {
    if let Some(bias) = bias {
        for (o, &b) in row.iter_mut().zip(bias) {
            *o += b;
        }
    }
    match activation {
        Activation::None => {}
        Activation::Relu => row.iter_mut().for_each(|o| *o = o.max(0.0)),
        Activation::Gelu => rowwise::map_in_place(row, Unary::Gelu),
        Activation::GeluTanh => rowwise::map_in_place(row, Unary::GeluTanh),
        Activation::Silu => rowwise::map_in_place(row, Unary::Silu),
    }
}
