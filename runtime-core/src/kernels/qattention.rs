//! Integer multi-row attention: `out = softmax(scale · Q · Kᵀ + mask) · V` per head with
//! both products on int8 dot products (exact i32 sums), for the query-row-many (prefill,
//! encoder) shapes of int8 builds.
//!
//! Per head, once: every key (a column of the transposed keys) is quantized symmetric to i8
//! with its own scale, every value column (head dimension) likewise, both packed into
//! 16-column blocks of 4-deep byte groups (the layout of a `vpdpbusd`/`sdot` operand). Per
//! query row: the row is quantized symmetric (its own scale) and shifted to u8 (`q ^ 0x80`,
//! the `128 · Σ k` it adds is taken out with each key's sum), the i32 scores are scaled back
//! to f32 and masked, the softmax's exponentials `e = exp(s − max)` ∈ (0, 1] are quantized to
//! u8 as `round(255 · e)` (so the per-row scale is `1 / Σ p`, exact in integers), and the
//! weighted sum of the values is one more u8 × i8 product. The scale factors of K and V are
//! per key and per column, so they factor out of the sums.
//!
//! Only the two products [`dot_u8i8`] have ISA variants (`x86_avx512` VNNI, `x86_avx2`
//! `vpmaddwd`, `aarch64_neon` i16 multiplies with pairwise widening adds); everything else is shared code, so every variant gives bit-identical
//! results, and the battery checks the products exactly against [`reference`].
use super::qgemm;
use super::softmax::{exp_sub_sum_in_place, row_max};

/// Geometry of one call: `q` is `[heads, sq, d]`, the keys transposed `[heads, d, skv]`,
/// `v` `[heads, skv, dv]`, `out` `[heads, sq, dv]`, all contiguous; the mask's element
/// `(h, i, j)` is at `h·mask_head_stride + i·mask_row_stride + j`.
#[derive(Clone, Copy, Debug)]
pub struct QAttentionSpec {
    pub heads: usize,
    pub sq: usize,
    pub skv: usize,
    pub d: usize,
    pub dv: usize,
    pub mask_head_stride: usize,
    pub mask_row_stride: usize,
    /// Factor applied to `Q · Kᵀ` before the mask is added.
    pub scale: f32,
    /// Zero the output rows whose scores are all `-inf` (else NaN, as the float softmax).
    pub nan_to_zero: bool,
}

/// Columns per packed block.
pub const BLOCK: usize = 16;

impl QAttentionSpec {
    const fn d4(&self) -> usize {
        self.d.div_ceil(4) * 4
    }
    const fn skv4(&self) -> usize {
        self.skv.div_ceil(4) * 4
    }
    const fn skv16(&self) -> usize {
        self.skv.div_ceil(BLOCK) * BLOCK
    }
    const fn dv16(&self) -> usize {
        self.dv.div_ceil(BLOCK) * BLOCK
    }
    /// Bytes of the byte scratch: a head's packed keys, packed values and quantized query
    /// rows, one row of quantized probabilities.
    pub const fn bytes_len(&self) -> usize {
        self.d4() * self.skv16() + self.skv4() * self.dv16() + self.sq * self.d4() + self.skv4()
    }
    /// f32 scratch: key scales (times `scale`) and value scales, each with room for their
    /// reciprocals, the query rows' scales, one row of scores.
    pub const fn floats_len(&self) -> usize {
        3 * self.skv16() + 2 * self.dv16() + self.sq
    }
    /// i32 scratch: `128 ·` each key's sum, one row of score sums, one row of output sums,
    /// the query rows' (zero) zero points.
    pub const fn ints_len(&self) -> usize {
        2 * self.skv16() + self.dv16() + self.sq
    }
}

/// `acc[c] = Σ_t a[t] · b[t][c]` for `c < acc.len()` (a multiple of [`BLOCK`]), the bytes of
/// `a` read as u8 (`a.len()` a multiple of 4, the depth) and `b`'s as i8, packed as `acc.len() / 16` blocks
/// of `a.len() / 4` groups of 16 columns × 4 depth bytes; by the variant compiled in.
#[inline]
pub fn dot_u8i8(a: &[i8], b: &[i8], acc: &mut [i32]) {
    check_dot(a, b, acc);
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx512f",
        target_feature = "avx512bw",
        target_feature = "avx512vnni"
    ))]
    // SAFETY: this code is compiled with AVX-512F/BW/VNNI enabled, so the CPU has them.
    unsafe {
        x86_avx512::dot_u8i8(a, b, acc)
    }
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        not(all(
            target_feature = "avx512f",
            target_feature = "avx512bw",
            target_feature = "avx512vnni"
        ))
    ))]
    // SAFETY: this code is compiled with AVX2 enabled, so the CPU has it.
    unsafe {
        x86_avx2::dot_u8i8(a, b, acc)
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    aarch64_neon::dot_u8i8(a, b, acc);
    #[cfg(not(any(
        all(target_arch = "x86_64", target_feature = "avx2"),
        all(target_arch = "aarch64", target_feature = "neon")
    )))]
    reference::dot_u8i8(a, b, acc)
}

fn check_dot(a: &[i8], b: &[i8], acc: &[i32]) {
    assert!(a.len().is_multiple_of(4) && acc.len().is_multiple_of(BLOCK));
    assert!(b.len() >= a.len() * acc.len());
}

/// `x` rounded half to even, as the low byte of the sum's bits, for `|x| <= 128` (then
/// `x + 1.5·2²³` is exact in its mantissa's low bits): no saturating cast, so it vectorises.
#[inline(always)]
fn round_to_byte(x: f32) -> u8 {
    const MAGIC: f32 = 12_582_912.0;
    (x + MAGIC).to_bits() as u8
}

/// Quantize the columns `0..cols` of the row-major `rows × cols` matrix `x` symmetric per
/// column (`scale = max |x[.][c]| / 127`, 0 for an all-zero column) into `packed` (16-column
/// blocks of `depth/4` groups × 16 × 4 bytes, depth `rows` padded with zeros to `depth`);
/// writes each column's scale times `factor` to `scales[..cols16]` (the rest, as long again,
/// is scratch) and its `128 · Σ q` to `sums`.
#[allow(clippy::too_many_arguments)]
fn quantize_columns(
    x: &[f32],
    rows: usize,
    cols: usize,
    depth: usize,
    packed: &mut [i8],
    scales: &mut [f32],
    mut sums: Option<&mut [i32]>,
    factor: f32,
) {
    let cols16 = cols.div_ceil(BLOCK) * BLOCK;
    let (scales, inv) = scales[..2 * cols16].split_at_mut(cols16);
    // The largest magnitude by the bits (orders non-NaN floats like their values).
    let mut bits = [0u32; BLOCK];
    for (cb, (sc, iv)) in scales
        .chunks_exact_mut(BLOCK)
        .zip(inv.chunks_exact_mut(BLOCK))
        .enumerate()
    {
        let (c0, w) = (cb * BLOCK, BLOCK.min(cols - cb * BLOCK));
        bits.fill(0);
        for r in 0..rows {
            let row = &x[r * cols + c0..r * cols + c0 + w];
            for (m, &v) in bits.iter_mut().zip(row) {
                *m = (*m).max(v.to_bits() & 0x7fff_ffff);
            }
        }
        for ((s, i), &m) in sc.iter_mut().zip(iv.iter_mut()).zip(&bits) {
            let m = f32::from_bits(m);
            *i = if m > 0.0 { 127.0 / m } else { 0.0 };
            *s = m / 127.0 * factor;
        }
    }
    let groups = depth / 4;
    for (cb, (blk, iv)) in packed[..depth * cols16]
        .chunks_exact_mut(groups * 4 * BLOCK)
        .zip(inv.chunks_exact(BLOCK))
        .enumerate()
    {
        let (c0, w) = (cb * BLOCK, BLOCK.min(cols - cb * BLOCK));
        let mut colsum = [0i32; BLOCK];
        for (g, out) in blk.chunks_exact_mut(4 * BLOCK).enumerate() {
            let mut q = [[0u8; BLOCK]; 4];
            for (t, qt) in q.iter_mut().enumerate() {
                let r = 4 * g + t;
                if r >= rows {
                    continue;
                }
                let mut v = [0.0f32; BLOCK];
                v[..w].copy_from_slice(&x[r * cols + c0..r * cols + c0 + w]);
                for ((o, &v), &i) in qt.iter_mut().zip(&v).zip(iv) {
                    *o = round_to_byte((v * i).clamp(-127.0, 127.0));
                }
                for (s, &o) in colsum.iter_mut().zip(qt.iter()) {
                    *s += i32::from(o as i8);
                }
            }
            for (c, o) in out.chunks_exact_mut(4).enumerate() {
                for (t, o) in o.iter_mut().enumerate() {
                    *o = q[t][c] as i8;
                }
            }
        }
        if let Some(s) = sums.as_deref_mut() {
            for (s, &c) in s[c0..c0 + BLOCK].iter_mut().zip(&colsum) {
                *s = 128 * c;
            }
        }
    }
}

/// Integer attention (see the module doc). `bytes`, `floats` and `ints` are scratch of at
/// least [`QAttentionSpec::bytes_len`], [`QAttentionSpec::floats_len`] and
/// [`QAttentionSpec::ints_len`] elements.
#[allow(clippy::too_many_arguments)]
pub fn qattention(
    q: &[f32],
    kt: &[f32],
    mask: Option<&[f32]>,
    v: &[f32],
    out: &mut [f32],
    bytes: &mut [i8],
    floats: &mut [f32],
    ints: &mut [i32],
    s: &QAttentionSpec,
) {
    let (sq, skv, d, dv) = (s.sq, s.skv, s.d, s.dv);
    let (d4, skv4, skv16, dv16) = (s.d4(), s.skv4(), s.skv16(), s.dv16());
    assert!(q.len() >= s.heads * sq * d && kt.len() >= s.heads * d * skv);
    assert!(v.len() >= s.heads * skv * dv && out.len() >= s.heads * sq * dv);
    assert!(bytes.len() >= s.bytes_len() && floats.len() >= s.floats_len());
    assert!(ints.len() >= s.ints_len());
    if let Some(m) = mask
        && s.heads > 0
        && sq > 0
    {
        let last = (s.heads - 1) * s.mask_head_stride + (sq - 1) * s.mask_row_stride + skv;
        assert!(m.len() >= last, "mask too short");
    }
    if skv == 0 || dv == 0 {
        out[..s.heads * sq * dv].fill(0.0);
        return;
    }
    let (kpack, rest) = bytes.split_at_mut(d4 * skv16);
    let (vpack, rest) = rest.split_at_mut(skv4 * dv16);
    let (qrows, prow) = rest.split_at_mut(sq * d4);
    let prow = &mut prow[..skv4];
    let (kscale, rest) = floats.split_at_mut(2 * skv16);
    let (vscale, rest) = rest.split_at_mut(2 * dv16);
    let (qscale, row) = rest.split_at_mut(sq);
    let row = &mut row[..skv];
    let (ksum, rest) = ints.split_at_mut(skv16);
    let (sacc, rest) = rest.split_at_mut(skv16);
    let (oacc, qzero) = rest.split_at_mut(dv16);
    let qzero = &mut qzero[..sq];
    for h in 0..s.heads {
        let kt_h = &kt[h * d * skv..(h + 1) * d * skv];
        quantize_columns(kt_h, d, skv, d4, kpack, kscale, Some(ksum), s.scale);
        let v_h = &v[h * skv * dv..(h + 1) * skv * dv];
        quantize_columns(v_h, skv, dv, skv4, vpack, vscale, None, 1.0);
        let q_h = &q[h * sq * d..(h + 1) * sq * d];
        qgemm::quantize_rows_symmetric(q_h, sq, d, d, qrows, qscale, qzero);
        for x in qrows.iter_mut() {
            *x ^= i8::MIN;
        }
        for i in 0..sq {
            dot_u8i8(&qrows[i * d4..(i + 1) * d4], kpack, sacc);
            let f = qscale[i];
            let scores = sacc.iter().zip(ksum.iter()).zip(kscale.iter());
            match mask {
                Some(m) => {
                    let at = h * s.mask_head_stride + i * s.mask_row_stride;
                    let it = row.iter_mut().zip(scores).zip(&m[at..at + skv]);
                    for ((x, ((&acc, &sum), &ks)), &b) in it {
                        *x = (acc - sum) as f32 * (f * ks) + b;
                    }
                }
                None => {
                    for (x, ((&acc, &sum), &ks)) in row.iter_mut().zip(scores) {
                        *x = (acc - sum) as f32 * (f * ks);
                    }
                }
            }
            let o = &mut out[(h * sq + i) * dv..(h * sq + i + 1) * dv];
            let max = row_max(row);
            if max.is_nan() || max == f32::NEG_INFINITY {
                o.fill(if s.nan_to_zero { 0.0 } else { f32::NAN });
                continue;
            }
            exp_sub_sum_in_place(row, max);
            let mut total = 0u32;
            for (p, &e) in prow.iter_mut().zip(row.iter()) {
                // `max` maps a NaN to 0.
                let u = round_to_byte((e * 255.0).max(0.0));
                total += u32::from(u);
                *p = u as i8;
            }
            prow[skv..].fill(0);
            dot_u8i8(prow, vpack, oacc);
            let inv = 1.0 / total.max(1) as f32;
            for ((o, &acc), &sc) in o.iter_mut().zip(oacc.iter()).zip(vscale.iter()) {
                *o = acc as f32 * (sc * inv);
            }
        }
    }
}

/// The portable product: the oracle of the variants' battery.
pub mod reference {
    /// See [`super::dot_u8i8`].
    pub fn dot_u8i8(a: &[i8], b: &[i8], acc: &mut [i32]) {
        super::check_dot(a, b, acc);
        let group = 4 * super::BLOCK;
        let block = a.len() / 4 * group;
        for (nb, out) in acc.chunks_exact_mut(super::BLOCK).enumerate() {
            out.fill(0);
            let b = &b[nb * block..(nb + 1) * block];
            for (ag, bg) in a.chunks_exact(4).zip(b.chunks_exact(group)) {
                for (x, bc) in out.iter_mut().zip(bg.chunks_exact(4)) {
                    for (&p, &w) in ag.iter().zip(bc) {
                        *x += i32::from(p as u8) * i32::from(w);
                    }
                }
            }
        }
    }
}

/// AVX-512 VNNI: one `vpdpbusd` per 16 columns × 4 depth bytes, the `a` group broadcast;
/// up to 8 blocks at a time, fewer blocks split the depth over independent accumulators.
#[cfg(target_arch = "x86_64")]
pub mod x86_avx512 {
    use core::arch::x86_64::*;

    /// See [`super::dot_u8i8`].
    ///
    /// # Safety
    /// The CPU must support AVX-512F/BW/VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    // SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
    pub unsafe fn dot_u8i8(a: &[i8], b: &[i8], acc: &mut [i32]) {
        super::check_dot(a, b, acc);
        let blocks = acc.len() / super::BLOCK;
        let mut nb = 0;
        // SAFETY: the sizes were checked above; each call reads blocks `nb..nb + NB`.
        unsafe {
            while blocks - nb >= 8 {
                chunk::<8, 1>(a, b, nb, acc);
                nb += 8;
            }
            if blocks - nb >= 4 {
                chunk::<4, 2>(a, b, nb, acc);
                nb += 4;
            }
            if blocks - nb >= 2 {
                chunk::<2, 4>(a, b, nb, acc);
                nb += 2;
            }
            if blocks - nb >= 1 {
                chunk::<1, 4>(a, b, nb, acc);
            }
        }
    }

    /// Blocks `nb0..nb0 + NB` of the product, the depth groups dealt round-robin to `S`
    /// accumulator sets. The CPU must support AVX-512F/BW/VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    // SAFETY: an unsafe fn for its target features only; the accesses are checked inside.
    unsafe fn chunk<const NB: usize, const S: usize>(
        a: &[i8],
        b: &[i8],
        nb0: usize,
        acc: &mut [i32],
    ) {
        let groups = a.len() / 4;
        assert!(b.len() >= (nb0 + NB) * groups * 64 && acc.len() >= (nb0 + NB) * 16);
        // SAFETY: AVX-512F/BW/VNNI are enabled; group `g < groups` of block `n < NB` is at
        // `bp + (n·groups + g)·64` inside `b` and `a`'s group at `ap + 4g` (checked above);
        // the stores write `acc[(nb0 + n)·16 ..][..16]`.
        unsafe {
            let mut c = [[_mm512_setzero_si512(); NB]; S];
            let ap = a.as_ptr();
            let bp = b.as_ptr().add(nb0 * groups * 64);
            let load_a = |g: usize| _mm512_set1_epi32(ap.add(4 * g).cast::<i32>().read_unaligned());
            let mut g = 0;
            while g + S <= groups {
                for (s, cs) in c.iter_mut().enumerate() {
                    let av = load_a(g + s);
                    for (n, cn) in cs.iter_mut().enumerate() {
                        let w = _mm512_loadu_si512(bp.add((n * groups + g + s) * 64).cast());
                        *cn = _mm512_dpbusd_epi32(*cn, av, w);
                    }
                }
                g += S;
            }
            while g < groups {
                let av = load_a(g);
                for (n, cn) in c[0].iter_mut().enumerate() {
                    let w = _mm512_loadu_si512(bp.add((n * groups + g) * 64).cast());
                    *cn = _mm512_dpbusd_epi32(*cn, av, w);
                }
                g += 1;
            }
            for n in 0..NB {
                let mut t = c[0][n];
                for cs in &c[1..] {
                    t = _mm512_add_epi32(t, cs[n]);
                }
                _mm512_storeu_si512(acc.as_mut_ptr().add((nb0 + n) * 16).cast(), t);
            }
        }
    }
}

/// AVX2: `vpmaddwd` on bytes widened to i16 (4 columns × 4 depth bytes a register), two
/// blocks (8 accumulators) at a time; pairs summed by `vphaddd` at the end.
#[cfg(target_arch = "x86_64")]
pub mod x86_avx2 {
    use core::arch::x86_64::*;

    /// See [`super::dot_u8i8`].
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    // SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
    pub unsafe fn dot_u8i8(a: &[i8], b: &[i8], acc: &mut [i32]) {
        super::check_dot(a, b, acc);
        let blocks = acc.len() / super::BLOCK;
        let mut nb = 0;
        // SAFETY: the sizes were checked above; each call reads blocks `nb..nb + NB`.
        unsafe {
            while blocks - nb >= 2 {
                chunk::<2>(a, b, nb, acc);
                nb += 2;
            }
            if blocks - nb >= 1 {
                chunk::<1>(a, b, nb, acc);
            }
        }
    }

    /// Blocks `nb0..nb0 + NB` of the product. The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    // SAFETY: an unsafe fn for its target features only; the accesses are checked inside.
    unsafe fn chunk<const NB: usize>(a: &[i8], b: &[i8], nb0: usize, acc: &mut [i32]) {
        let groups = a.len() / 4;
        assert!(b.len() >= (nb0 + NB) * groups * 64 && acc.len() >= (nb0 + NB) * 16);
        // SAFETY: AVX2 is enabled; block `n < NB`, group `g < groups` is the 64 bytes at
        // `bp + (n·groups + g)·64` inside `b` (checked above), read 16 at a time; the stores
        // write `acc[(nb0 + n)·16 ..][..16]`.
        unsafe {
            let mut c = [[_mm256_setzero_si256(); 4]; NB];
            let bp = b.as_ptr().add(nb0 * groups * 64);
            for (g, ag) in a.chunks_exact(4).enumerate() {
                let w = |i: usize| i64::from(ag[i] as u8) << (16 * i);
                let av = _mm256_set1_epi64x(w(0) | w(1) | w(2) | w(3));
                for (n, cn) in c.iter_mut().enumerate() {
                    let p = bp.add((n * groups + g) * 64);
                    for (q, x) in cn.iter_mut().enumerate() {
                        let wq = _mm256_cvtepi8_epi16(_mm_loadu_si128(p.add(16 * q).cast()));
                        *x = _mm256_add_epi32(*x, _mm256_madd_epi16(av, wq));
                    }
                }
            }
            for (n, cn) in c.iter().enumerate() {
                let out = acc.as_mut_ptr().add((nb0 + n) * 16);
                for h in 0..2 {
                    let s = _mm256_hadd_epi32(cn[2 * h], cn[2 * h + 1]);
                    let s = _mm256_permute4x64_epi64(s, 0b11_01_10_00);
                    _mm256_storeu_si256(out.add(8 * h).cast(), s);
                }
            }
        }
    }
}

/// NEON (Armv8.0, so the Cortex-A72 build runs it): bytes widened to i16, whose products
/// (at most 255 · 128) fit i16, summed pairwise into i32 by `sadalp`; one block (16 columns,
/// 8 accumulators of 2 columns × 2 partial sums) at a time, pairs added at the end.
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
pub mod aarch64_neon {
    use core::arch::aarch64::*;

    /// See [`super::dot_u8i8`].
    pub fn dot_u8i8(a: &[i8], b: &[i8], acc: &mut [i32]) {
        super::check_dot(a, b, acc);
        let groups = a.len() / 4;
        for (nb, out) in acc.chunks_exact_mut(super::BLOCK).enumerate() {
            let blk = &b[nb * groups * 64..(nb + 1) * groups * 64];
            // SAFETY: NEON is enabled at compile time; group `g < groups` of the block is the
            // 64 bytes at `bp + 64g` inside `blk`, `a`'s group the 4 bytes at `4g` (both
            // checked above); the stores write `out[0..16]`.
            unsafe {
                let mut c = [vdupq_n_s32(0); 8];
                let bp = blk.as_ptr();
                for (g, ag) in a.chunks_exact(4).enumerate() {
                    let w = |i: usize| u64::from(ag[i] as u8) << (16 * i);
                    let av = vreinterpretq_s16_u64(vdupq_n_u64(w(0) | w(1) | w(2) | w(3)));
                    for q in 0..4 {
                        let x = vld1q_s8(bp.add(64 * g + 16 * q));
                        let lo = vmulq_s16(av, vmovl_s8(vget_low_s8(x)));
                        let hi = vmulq_s16(av, vmovl_high_s8(x));
                        c[2 * q] = vpadalq_s16(c[2 * q], lo);
                        c[2 * q + 1] = vpadalq_s16(c[2 * q + 1], hi);
                    }
                }
                for q in 0..4 {
                    let s = vpaddq_s32(c[2 * q], c[2 * q + 1]);
                    vst1q_s32(out.as_mut_ptr().add(4 * q), s);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::attention::{self, AttentionSpec, Keys};
    use crate::kernels::gemm::Tiles;
    use std::vec;
    use std::vec::Vec;

    type Dot = fn(&[i8], &[i8], &mut [i32]);

    /// The product variants runnable here, the reference first.
    fn variants() -> Vec<(&'static str, Dot)> {
        let mut v: Vec<(&'static str, Dot)> = vec![("reference", reference::dot_u8i8)];
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 was detected above.
                v.push(("x86_avx2", |a, b, c| unsafe { x86_avx2::dot_u8i8(a, b, c) }));
            }
            if std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vnni")
            {
                // SAFETY: AVX-512F/BW/VNNI were detected above.
                v.push(("x86_avx512", |a, b, c| unsafe {
                    x86_avx512::dot_u8i8(a, b, c)
                }));
            }
        }
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        v.push(("aarch64_neon", aarch64_neon::dot_u8i8));
        v.push(("compiled-in", dot_u8i8));
        v
    }

    /// Every variant equals the reference exactly, and the reference equals an i64 sum over
    /// the unpacked matrix, for depths 4…260 and 1…11 blocks (every chunk size and its
    /// tails), with the extreme bytes (255 × −128) included.
    #[test]
    fn every_product_variant_is_exact() {
        let variants = variants();
        assert!(variants.len() >= 2);
        for depth in [4, 8, 12, 32, 36, 64, 128, 260] {
            for blocks in 1..=11 {
                let n = blocks * BLOCK;
                let byte = |i: usize, seed: usize| (((i + seed) * 7919 + i / 3) % 256) as u8 as i8;
                let mut a: Vec<i8> = (0..depth).map(|i| byte(i, 1)).collect();
                let mut b: Vec<i8> = (0..depth * n).map(|i| byte(i, 5)).collect();
                a[0] = -1; // 255 as u8
                b[0] = i8::MIN;
                let mut want = vec![0i64; n];
                for (c, w) in want.iter_mut().enumerate() {
                    for (t, &x) in a.iter().enumerate() {
                        let at = c / BLOCK * depth / 4 * 64 + t / 4 * 64 + c % BLOCK * 4 + t % 4;
                        *w += i64::from(x as u8) * i64::from(b[at]);
                    }
                }
                for (name, f) in &variants {
                    let mut got = vec![7i32; n];
                    f(&a, &b, &mut got);
                    let got: Vec<i64> = got.iter().map(|&x| i64::from(x)).collect();
                    assert_eq!(got, want, "{name} depth {depth} blocks {blocks}");
                }
            }
        }
    }

    fn float_attention(
        q: &[f32],
        kt: &[f32],
        mask: Option<&[f32]>,
        v: &[f32],
        s: &QAttentionSpec,
    ) -> Vec<f32> {
        let spec = AttentionSpec {
            heads: s.heads,
            sq: s.sq,
            skv: s.skv,
            d: s.d,
            dv: s.dv,
            mask_head_stride: s.mask_head_stride,
            mask_row_stride: s.mask_row_stride,
            scale: s.scale,
            nan_to_zero: s.nan_to_zero,
            rows: 4,
            tiles: Tiles {
                mr: 4,
                kc: 16,
                mc: 16,
            },
            keys: Keys::Transposed,
        };
        let mut out = vec![0.0; s.heads * s.sq * s.dv];
        let mut scratch = vec![0.0; 4 * s.skv];
        attention::attention(q, kt, mask, v, &mut out, &mut scratch, &spec, s.skv);
        out
    }

    fn run(q: &[f32], kt: &[f32], mask: Option<&[f32]>, v: &[f32], s: &QAttentionSpec) -> Vec<f32> {
        let mut out = vec![9.0; s.heads * s.sq * s.dv];
        let mut bytes = vec![3i8; s.bytes_len()];
        let mut floats = vec![3.0; s.floats_len()];
        let mut ints = vec![3; s.ints_len()];
        qattention(
            q,
            kt,
            mask,
            v,
            &mut out,
            &mut bytes,
            &mut floats,
            &mut ints,
            s,
        );
        out
    }

    /// Against the float kernel on odd shapes, per-row and per-head masks, a row masked
    /// entirely with `-inf`: each output row within 3 % of the value range (the u8
    /// probabilities and i8 operands), and close by cosine over the whole output.
    #[test]
    fn integer_attention_tracks_the_float_kernel() {
        let val = |i: usize, seed: usize| (((i + seed) * 7919) % 193) as f32 / 96.5 - 1.0;
        for (heads, sq, skv, d, dv) in [
            (1, 1, 1, 1, 1),
            (2, 3, 5, 7, 9),
            (3, 17, 33, 32, 32),
            (2, 128, 128, 32, 32),
            (1, 9, 70, 64, 48),
        ] {
            let q: Vec<f32> = (0..heads * sq * d).map(|i| 2.0 * val(i, 1)).collect();
            let kt: Vec<f32> = (0..heads * d * skv).map(|i| 2.0 * val(i, 3)).collect();
            let v: Vec<f32> = (0..heads * skv * dv).map(|i| val(i, 5)).collect();
            // Per head and row; the last row of head 0 masked entirely.
            let mut mask: Vec<f32> = (0..heads * sq * skv)
                .map(|i| if i % 5 == 4 { -10000.0 } else { val(i, 7) })
                .collect();
            mask[(sq - 1) * skv..sq * skv].fill(f32::NEG_INFINITY);
            for masked in [false, true] {
                let s = QAttentionSpec {
                    heads,
                    sq,
                    skv,
                    d,
                    dv,
                    mask_head_stride: if masked { sq * skv } else { 0 },
                    mask_row_stride: if masked { skv } else { 0 },
                    scale: 1.0 / (d as f32).sqrt(),
                    nan_to_zero: true,
                };
                let m = masked.then_some(&mask[..]);
                let want = float_attention(&q, &kt, m, &v, &s);
                let got = run(&q, &kt, m, &v, &s);
                let (mut dot, mut nw, mut ng) = (0.0f64, 0.0f64, 0.0f64);
                for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() <= 0.03,
                        "{heads}x{sq}x{skv}x{d}x{dv} masked {masked} at {i}: {g} vs {w}"
                    );
                    dot += f64::from(g) * f64::from(w);
                    nw += f64::from(w) * f64::from(w);
                    ng += f64::from(g) * f64::from(g);
                }
                if nw > 0.0 {
                    let cos = dot / (nw.sqrt() * ng.sqrt());
                    assert!(cos > 0.999, "{heads}x{sq}x{skv}x{d}x{dv}: cosine {cos}");
                }
                if masked {
                    let row = &got[(sq - 1) * dv..sq * dv];
                    assert!(
                        row.iter().all(|&x| x == 0.0),
                        "a -inf row is zeroed: {row:?}"
                    );
                }
            }
        }
    }

    /// Without `nan_to_zero`, a row masked entirely is NaN, as the float softmax gives.
    #[test]
    fn a_fully_masked_row_is_nan_unless_zeroed() {
        let s = QAttentionSpec {
            heads: 1,
            sq: 2,
            skv: 3,
            d: 2,
            dv: 2,
            mask_head_stride: 0,
            mask_row_stride: 3,
            scale: 1.0,
            nan_to_zero: false,
        };
        let mask = [
            0.0,
            0.0,
            0.0,
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
        ];
        let got = run(
            &[1.0; 4],
            &[0.5; 6],
            Some(&mask),
            &[1.0, -1.0, 2.0, 0.0, 3.0, 1.0],
            &s,
        );
        assert!(
            (got[0] - 2.0).abs() < 0.02 && got[1].abs() < 0.02,
            "{got:?}"
        );
        assert!(got[2].is_nan() && got[3].is_nan(), "{got:?}");
    }
}
