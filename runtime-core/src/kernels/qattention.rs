//! Integer multi-row attention: `out = softmax(scale · Q · Kᵀ + mask) · V` per head with
//! both products on int8 dot products (exact i32 sums), for the query-row-many (prefill,
//! encoder) shapes of int8 builds.
//!
//! Per head, once: every key (a column of the transposed keys) is quantized symmetric to i8
//! with its own scale, every value column (head dimension) likewise, both packed into
//! 16-column blocks of 4-deep byte groups (the layout of a `vpdpbusd`/`sdot` operand). Per
//! query row: the row is quantized symmetric (its own scale) and shifted to u8 (`q ^ 0x80`,
//! the `128 · Σ k` it adds is taken out with each key's sum), the i32 scores are scaled back
//! to f32 and masked, the softmax's exponentials `e = exp(s − max)` ∈ (0, 1] are computed
//! straight as u8 `round(255 · e)` (a cubic for `2ᶠ`, within 0.53 of a step; the per-row
//! scale is `1 / Σ p`, exact in integers), and the weighted sum of the values is one more
//! u8 × i8 product. The scale factors of K and V are per key and per column, so they factor
//! out of the sums.
//!
//! Every operand is read, and the output written, in place through a [`Layout`] (row stride,
//! head offsets), so the heads of a projection's `[seq, heads·d]` output — or three column
//! ranges of one fused Q/K/V buffer — need no transposed copy; keys may be one per column
//! (transposed) or one per row, quantized to the same bytes.
//!
//! Only the two products [`dot_u8i8`] have ISA variants (`x86_avx512` VNNI, `x86_avx2`
//! `vpmaddwd`, `aarch64_neon` i16 multiplies with pairwise widening adds); everything else is
//! shared code, so every variant gives bit-identical results, and the battery checks the
//! products exactly against [`reference`].
use super::qgemm;
use super::softmax::row_max;

/// Where one operand's element `(head h, row r, column c)` sits: at
/// `(h / group)·outer + (h % group)·inner + r·row + c` (`group` from [`QAttentionSpec`]), so
/// `[heads, rows, cols]` tensors and the heads of a projection's `[.., seq, heads·cols]`
/// output (a column range per head) are both read and written in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub outer: usize,
    pub inner: usize,
    pub row: usize,
}

impl Layout {
    /// Contiguous `[heads, rows, cols]` (with `group` = all heads).
    pub const fn packed(rows: usize, cols: usize) -> Self {
        Layout {
            outer: 0,
            inner: rows * cols,
            row: cols,
        }
    }

    /// Offset of head `h`'s element `(0, 0)`.
    #[inline]
    const fn head(&self, h: usize, group: usize) -> usize {
        h / group * self.outer + h % group * self.inner
    }

    /// Elements an operand of `heads` heads of `rows × cols` spans (`heads` a multiple of
    /// `group`, so head `heads − 1` is the furthest).
    const fn extent(&self, heads: usize, group: usize, rows: usize, cols: usize) -> usize {
        if heads == 0 || rows == 0 || cols == 0 {
            0
        } else {
            self.head(heads - 1, group) + (rows - 1) * self.row + cols
        }
    }
}

/// Geometry of one call: per head, `q` is `sq × d`, the keys `d × skv` (transposed: one key
/// per column) or, with `key_rows`, `skv × d` (one key per row), `v` `skv × dv`, `out`
/// `sq × dv`, each placed by its [`Layout`]; the mask's element `(h, i, j)` is at
/// `h·mask_head_stride + i·mask_row_stride + j`.
#[derive(Clone, Copy, Debug)]
pub struct QAttentionSpec {
    pub heads: usize,
    /// Heads per outer index of the layouts (divides `heads`).
    pub group: usize,
    pub sq: usize,
    pub skv: usize,
    pub d: usize,
    pub dv: usize,
    pub q: Layout,
    pub k: Layout,
    pub key_rows: bool,
    pub v: Layout,
    pub out: Layout,
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
    (x + ROUND_MAGIC).to_bits() as u8
}

/// `round(255 · exp(x))` for `x <= 0` (0 for `-inf` and NaN), within 0.53 of `255 · exp(x)`:
/// `exp(x) = 2ⁿ · 2ᶠ` with `n` the nearest integer to `x · log₂e` (at least −10, where the
/// result rounds to 0 anyway) and `2ᶠ`, `|f| <= 1/2`, a cubic (relative error ≤ 1.0e-4, so
/// ≤ 0.026 of a step). Plain f32 and i32 arithmetic: it vectorises, and every build gives the
/// same bits.
#[inline(always)]
fn exp_u8(x: f32) -> u32 {
    // 255 times the interpolant of `2^f` at the Chebyshev nodes of [-1/2, 1/2].
    const C: [f32; 4] = [
        255.0 * 0.999_924_56,
        255.0 * 0.693_136_7,
        255.0 * 0.242_639_48,
        255.0 * 0.055_838_283,
    ];
    // Not `clamp`, which keeps a NaN: `max` makes it −10.
    #[allow(clippy::manual_clamp)]
    let t = (x * core::f32::consts::LOG2_E).max(-10.0).min(0.0);
    let r = t + ROUND_MAGIC;
    let n = r.to_bits() as i32 - ROUND_MAGIC.to_bits() as i32;
    let f = t - (r - ROUND_MAGIC);
    let p = ((C[3] * f + C[2]) * f + C[1]) * f + C[0];
    let two_n = f32::from_bits(((n + 127) << 23) as u32);
    u32::from(round_to_byte(p * two_n))
}

/// `1.5·2²³`: added to `|x| <= 128`, the sum's low mantissa bits are `x` rounded.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// Quantize the columns `0..cols` of the `rows × cols` matrix `x` (row stride `ld`) symmetric per
/// column (`scale = max |x[.][c]| / 127`, 0 for an all-zero column) into `packed` (16-column
/// blocks of `depth/4` groups × 16 × 4 bytes, depth `rows` padded with zeros to `depth`);
/// writes each column's scale times `factor` to `scales[..cols16]` (the rest, as long again,
/// is scratch) and its `128 · Σ q` to `sums`.
#[allow(clippy::too_many_arguments)]
fn quantize_columns(
    x: &[f32],
    rows: usize,
    cols: usize,
    ld: usize,
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
            let row = &x[r * ld + c0..r * ld + c0 + w];
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
                v[..w].copy_from_slice(&x[r * ld + c0..r * ld + c0 + w]);
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

/// [`quantize_columns`] of the transposed `x`: the packed columns are the rows
/// `x[c·ld ..][..depth_used]` for `c < cols` (one key per row), with the same scales, bytes and
/// sums bit for bit.
#[allow(clippy::too_many_arguments)]
fn quantize_key_rows(
    x: &[f32],
    cols: usize,
    depth_used: usize,
    ld: usize,
    depth: usize,
    packed: &mut [i8],
    scales: &mut [f32],
    sums: &mut [i32],
    factor: f32,
) {
    let cols16 = cols.div_ceil(BLOCK) * BLOCK;
    let groups = depth / 4;
    let packed = &mut packed[..depth * cols16];
    if depth_used < depth || cols < cols16 {
        packed.fill(0);
    }
    // A key's rounded values (as the bits of `round_to_byte`'s sum), a chunk of depth at a
    // time, before they are dealt to their groups: i32 lanes, so the loops vectorise.
    const CHUNK: usize = 64;
    let (mut vals, mut bits) = ([0.0f32; CHUNK], [0i32; CHUNK]);
    for (c, (sc, sum)) in scales[..cols16]
        .iter_mut()
        .zip(&mut sums[..cols16])
        .enumerate()
    {
        if c >= cols {
            *sc = 0.0 / 127.0 * factor;
            *sum = 0;
            continue;
        }
        let row = &x[c * ld..c * ld + depth_used];
        let m = row.iter().fold(0, |m, v| m.max(v.to_bits() & 0x7fff_ffff));
        let m = f32::from_bits(m);
        let inv = if m > 0.0 { 127.0 / m } else { 0.0 };
        *sc = m / 127.0 * factor;
        let blk = &mut packed[c / BLOCK * groups * 4 * BLOCK..][..groups * 4 * BLOCK];
        let mut total = 0i32;
        for (k, chunk) in row.chunks(CHUNK).enumerate() {
            let n = chunk.len();
            vals[..n].copy_from_slice(chunk);
            vals[n..].fill(0.0);
            for (b, &v) in bits.iter_mut().zip(&vals) {
                *b = ((v * inv).clamp(-127.0, 127.0) + ROUND_MAGIC).to_bits() as i32;
            }
            // The low byte, sign-extended: the rounded value.
            total += bits.iter().map(|&b| (b << 24) >> 24).sum::<i32>();
            let first = k * CHUNK / 4;
            for (g, four) in bits[..n.div_ceil(4) * 4].chunks_exact(4).enumerate() {
                let at = (first + g) * 4 * BLOCK + c % BLOCK * 4;
                let q = [four[0] as i8, four[1] as i8, four[2] as i8, four[3] as i8];
                blk[at..at + 4].copy_from_slice(&q);
            }
        }
        *sum = 128 * total;
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
    let (sq, skv, d, dv, group) = (s.sq, s.skv, s.d, s.dv, s.group);
    let (d4, skv4, skv16, dv16) = (s.d4(), s.skv4(), s.skv16(), s.dv16());
    if s.heads == 0 || sq == 0 {
        return;
    }
    assert!(
        group > 0 && s.heads.is_multiple_of(group),
        "heads not in whole groups"
    );
    let (k_rows, k_cols) = if s.key_rows { (skv, d) } else { (d, skv) };
    assert!(q.len() >= s.q.extent(s.heads, group, sq, d), "q too short");
    assert!(
        kt.len() >= s.k.extent(s.heads, group, k_rows, k_cols),
        "keys too short"
    );
    assert!(
        v.len() >= s.v.extent(s.heads, group, skv, dv),
        "v too short"
    );
    assert!(
        out.len() >= s.out.extent(s.heads, group, sq, dv),
        "out too short"
    );
    assert!(bytes.len() >= s.bytes_len() && floats.len() >= s.floats_len());
    assert!(ints.len() >= s.ints_len());
    if let Some(m) = mask {
        let last = (s.heads - 1) * s.mask_head_stride + (sq - 1) * s.mask_row_stride + skv;
        assert!(m.len() >= last, "mask too short");
    }
    if skv == 0 || dv == 0 {
        for h in 0..s.heads {
            let at = s.out.head(h, group);
            for i in 0..sq {
                out[at + i * s.out.row..][..dv].fill(0.0);
            }
        }
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
        let kt_h = &kt[s.k.head(h, group)..];
        if s.key_rows {
            quantize_key_rows(kt_h, skv, d, s.k.row, d4, kpack, kscale, ksum, s.scale);
        } else {
            quantize_columns(
                kt_h,
                d,
                skv,
                s.k.row,
                d4,
                kpack,
                kscale,
                Some(ksum),
                s.scale,
            );
        }
        let v_h = &v[s.v.head(h, group)..];
        quantize_columns(v_h, skv, dv, s.v.row, skv4, vpack, vscale, None, 1.0);
        let q_h = &q[s.q.head(h, group)..];
        qgemm::quantize_rows_symmetric(q_h, sq, d, s.q.row, qrows, qscale, qzero);
        for x in qrows.iter_mut() {
            *x ^= i8::MIN;
        }
        let out_h = s.out.head(h, group);
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
            let o = &mut out[out_h + i * s.out.row..][..dv];
            let max = row_max(row);
            if max.is_nan() || max == f32::NEG_INFINITY {
                o.fill(if s.nan_to_zero { 0.0 } else { f32::NAN });
                continue;
            }
            let mut total = 0u32;
            for (p, &x) in prow.iter_mut().zip(row.iter()) {
                let u = exp_u8(x - max);
                total += u;
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

    /// Contiguous `[heads, rows, cols]` operands, transposed keys, no mask, `1 / √d`.
    fn packed(heads: usize, sq: usize, skv: usize, d: usize, dv: usize) -> QAttentionSpec {
        QAttentionSpec {
            heads,
            group: heads.max(1),
            sq,
            skv,
            d,
            dv,
            q: Layout::packed(sq, d),
            k: Layout::packed(d, skv),
            key_rows: false,
            v: Layout::packed(skv, dv),
            out: Layout::packed(sq, dv),
            mask_head_stride: 0,
            mask_row_stride: 0,
            scale: 1.0 / (d as f32).sqrt(),
            nan_to_zero: false,
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
                let mut s = packed(heads, sq, skv, d, dv);
                s.mask_head_stride = if masked { sq * skv } else { 0 };
                s.mask_row_stride = if masked { skv } else { 0 };
                s.nan_to_zero = true;
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

    /// Operands read in place from projection layouts — `[batch, seq, heads·d]` per operand
    /// (keys one per row or transposed `[batch, d, heads·seq]`), or Q, K and V as three
    /// column ranges of one `[batch, seq, 3·heads·d]` buffer — and the output written as
    /// `[batch, seq, heads·dv]`: bit for bit the result of the contiguous call.
    #[test]
    fn strided_layouts_match_the_contiguous_call_exactly() {
        let val = |i: usize, seed: usize| (((i + seed) * 7919) % 193) as f32 / 48.0 - 2.0;
        let cases = [
            (1, 12, 20, 20, 32, 32),
            (2, 3, 5, 7, 9, 6),
            (2, 3, 6, 6, 8, 8),
        ];
        for (batch, heads, sq, skv, d, dv) in cases {
            let bh = batch * heads;
            let q: Vec<f32> = (0..bh * sq * d).map(|i| val(i, 1)).collect();
            let kt: Vec<f32> = (0..bh * d * skv).map(|i| val(i, 3)).collect();
            let v: Vec<f32> = (0..bh * skv * dv).map(|i| val(i, 5)).collect();
            let mask: Vec<f32> = (0..bh * sq * skv).map(|i| val(i, 7)).collect();
            let mut base = packed(bh, sq, skv, d, dv);
            base.mask_head_stride = sq * skv;
            base.mask_row_stride = skv;
            let want = run(&q, &kt, Some(&mask), &v, &base);
            // Keys one per row: `k[h][t][j] = kt[h][j][t]`.
            let mut k = vec![0.0; bh * skv * d];
            for h in 0..bh {
                for j in 0..d {
                    for t in 0..skv {
                        k[(h * skv + t) * d + j] = kt[(h * d + j) * skv + t];
                    }
                }
            }
            // Head `h`'s `rows × cols` into `buf` as `[batch, rows, width]`, columns from `off`.
            let spread =
                |x: &[f32], (rows, cols): (usize, usize), buf: &mut Vec<f32>, off, width| {
                    buf.resize(buf.len().max(batch * rows * width), f32::NAN);
                    for h in 0..bh {
                        for r in 0..rows {
                            let to = ((h / heads) * rows + r) * width + off + (h % heads) * cols;
                            let from = (h * rows + r) * cols;
                            buf[to..to + cols].copy_from_slice(&x[from..from + cols]);
                        }
                    }
                    Layout {
                        outer: rows * width,
                        inner: cols,
                        row: width,
                    }
                };
            let fused_ok = sq == skv;
            for (fused, key_rows) in [(false, false), (false, true), (fused_ok, true)] {
                let (kx, kshape) = if key_rows {
                    (&k, (skv, d))
                } else {
                    (&kt, (d, skv))
                };
                let mut s = base;
                s.group = heads;
                s.key_rows = key_rows;
                s.out = Layout {
                    outer: sq * heads * dv,
                    inner: dv,
                    row: heads * dv,
                };
                let (mut qb, mut kb, mut vb) = (Vec::new(), Vec::new(), Vec::new());
                let (k0, v0) = if fused {
                    let width = heads * (2 * d + dv);
                    s.q = spread(&q, (sq, d), &mut qb, 0, width);
                    s.k = spread(kx, kshape, &mut qb, heads * d, width);
                    s.v = spread(&v, (skv, dv), &mut qb, 2 * heads * d, width);
                    (heads * d, 2 * heads * d)
                } else {
                    s.q = spread(&q, (sq, d), &mut qb, 0, heads * d);
                    s.k = spread(kx, kshape, &mut kb, 0, heads * kshape.1);
                    s.v = spread(&v, (skv, dv), &mut vb, 0, heads * dv);
                    (0, 0)
                };
                let (kb, vb) = if fused { (&qb, &qb) } else { (&kb, &vb) };
                let mut out = vec![9.0; bh * sq * dv];
                let mut bytes = vec![3i8; s.bytes_len()];
                let mut floats = vec![3.0; s.floats_len()];
                let mut ints = vec![3; s.ints_len()];
                qattention(
                    &qb,
                    &kb[k0..],
                    Some(&mask),
                    &vb[v0..],
                    &mut out,
                    &mut bytes,
                    &mut floats,
                    &mut ints,
                    &s,
                );
                let mut back = vec![0.0; bh * sq * dv];
                for h in 0..bh {
                    for i in 0..sq {
                        let at = ((h / heads) * sq + i) * heads * dv + (h % heads) * dv;
                        back[(h * sq + i) * dv..][..dv].copy_from_slice(&out[at..at + dv]);
                    }
                }
                let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                let case = (batch, heads, sq, skv, d, dv, fused, key_rows);
                assert_eq!(bits(&back), bits(&want), "{case:?}");
            }
        }
    }

    /// The u8 exponential against `255 · exp(x)` in f64 over [−30, 0] (every 1/4096), its
    /// ends and the values a masked score gives: within half a step plus the cubic's 0.026.
    #[test]
    fn the_u8_exponential_is_within_its_bound() {
        let mut worst = 0.0f64;
        for i in 0..=30 * 4096 {
            let x = -(i as f32) / 4096.0;
            let want = 255.0 * f64::from(x).exp();
            let got = f64::from(exp_u8(x));
            assert!(
                (got - want).abs() <= 0.53,
                "exp_u8({x}) = {got}, want {want}"
            );
            worst = worst.max((got - want).abs());
        }
        assert!(worst > 0.4, "the grid reaches rounding ties: {worst}");
        assert_eq!(exp_u8(0.0), 255);
        assert_eq!(exp_u8(-1.0e-7), 255);
        for x in [
            -7.0,
            -10000.0,
            -1.0e30,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MIN,
        ] {
            assert_eq!(exp_u8(x), 0, "{x}");
        }
    }

    /// Without `nan_to_zero`, a row masked entirely is NaN, as the float softmax gives.
    #[test]
    fn a_fully_masked_row_is_nan_unless_zeroed() {
        let mut s = packed(1, 2, 3, 2, 2);
        s.mask_row_stride = 3;
        s.scale = 1.0;
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
