//! SHA-256 (FIPS 180-4), streaming, no allocation. Generated crates' build scripts use it
//! to check their weight blob against the digest recorded at generation time.
//!
//! Build scripts run unoptimised (cargo builds them at opt-level 0), where the portable
//! rounds are slow on a large blob; on x86-64 CPUs with the SHA
//! extensions (detected at run time with `cpuid`, so it needs no `std` and no build flag)
//! each block takes the `sha256rnds2` path instead, with the same digest.

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// An incremental SHA-256 computation.
#[derive(Clone)]
pub struct Sha256 {
    state: [u32; 8],
    block: [u8; 64],
    filled: usize,
    length: u64,
}

impl Default for Sha256 {
    fn default() -> Self {
        Self::new()
    }
}

impl Sha256 {
    pub const fn new() -> Self {
        Sha256 {
            state: [
                0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
                0x5be0cd19,
            ],
            block: [0; 64],
            filled: 0,
            length: 0,
        }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.length = self.length.wrapping_add(data.len() as u64);
        if self.filled > 0 {
            let take = (64 - self.filled).min(data.len());
            self.block[self.filled..self.filled + take].copy_from_slice(&data[..take]);
            self.filled += take;
            data = &data[take..];
            if self.filled < 64 {
                return;
            }
            let block = self.block;
            compress_blocks(&mut self.state, &block);
            self.filled = 0;
        }
        // Whole blocks straight from the input, the rest into the block buffer.
        let whole = data.len() / 64 * 64;
        compress_blocks(&mut self.state, &data[..whole]);
        let rest = &data[whole..];
        self.block[..rest.len()].copy_from_slice(rest);
        self.filled = rest.len();
    }

    pub fn finish(mut self) -> [u8; 32] {
        let bits = self.length.wrapping_mul(8);
        self.update(&[0x80]);
        while self.filled != 56 {
            self.update(&[0]);
        }
        self.update(&bits.to_be_bytes());
        let mut out = [0u8; 32];
        for (chunk, word) in out.chunks_exact_mut(4).zip(self.state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }
}

/// Compresses each whole 64-byte block of `blocks` into `state`, in order.
fn compress_blocks(state: &mut [u32; 8], blocks: &[u8]) {
    if blocks.len() < 64 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if x86_sha::available() {
        // SAFETY: `available` saw SHA, SSSE3 and SSE4.1 in `cpuid`, the features
        // `compress_blocks` is compiled for.
        unsafe { x86_sha::compress_blocks(state, blocks) };
        return;
    }
    for block in blocks.chunks_exact(64) {
        compress_portable(state, block);
    }
}

/// The FIPS 180-4 compression of one 64-byte block, in portable integer code.
fn compress_portable(state: &mut [u32; 8], block: &[u8]) {
    let mut w = [0u32; 64];
    for (i, chunk) in block.chunks_exact(4).enumerate() {
        w[i] = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    for i in 16..64 {
        let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
        let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16]
            .wrapping_add(s0)
            .wrapping_add(w[i - 7])
            .wrapping_add(s1);
    }
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    for i in 0..64 {
        let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
        let ch = (e & f) ^ (!e & g);
        let t1 = h
            .wrapping_add(s1)
            .wrapping_add(ch)
            .wrapping_add(K[i])
            .wrapping_add(w[i]);
        let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
        let maj = (a & b) ^ (a & c) ^ (b & c);
        let t2 = s0.wrapping_add(maj);
        h = g;
        g = f;
        f = e;
        e = d.wrapping_add(t1);
        d = c;
        c = b;
        b = a;
        a = t1.wrapping_add(t2);
    }
    for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        *s = s.wrapping_add(v);
    }
}

/// The compression on the x86 SHA extensions (`sha256rnds2`, `sha256msg1/2`).
#[cfg(target_arch = "x86_64")]
mod x86_sha {
    use core::arch::x86_64::*;

    /// Whether this CPU has SHA, SSSE3 and SSE4.1.
    pub fn available() -> bool {
        // `cpuid` exists on every x86-64 CPU; leaf 7 is read only when the CPU reports it.
        let leaf1 = __cpuid(1);
        let ssse3_sse41 = leaf1.ecx & (1 << 9) != 0 && leaf1.ecx & (1 << 19) != 0;
        ssse3_sse41 && __get_cpuid_max(0).0 >= 7 && __cpuid_count(7, 0).ebx & (1 << 29) != 0
    }

    /// [`super::compress_blocks`] on the SHA extensions.
    ///
    /// # Safety
    /// The CPU must support SHA, SSSE3 and SSE4.1.
    #[target_feature(enable = "sha,ssse3,sse4.1")]
    // SAFETY: an unsafe fn: its callers uphold the `# Safety` contract above.
    pub unsafe fn compress_blocks(state: &mut [u32; 8], blocks: &[u8]) {
        assert!(blocks.len() >= 64);
        let k = &super::K;
        let load = |at: &[u32]| {
            assert!(at.len() >= 4);
            // SAFETY: four `u32`s at `at` exist (checked above); unaligned loads are allowed.
            unsafe { _mm_loadu_si128(at.as_ptr().cast()) }
        };
        // The state as the two halves the round instruction takes: ABEF and CDGH.
        let (abcd, efgh) = (load(&state[..4]), load(&state[4..]));
        let cdab = _mm_shuffle_epi32::<0xB1>(abcd);
        let hgfe = _mm_shuffle_epi32::<0x1B>(efgh);
        let mut abef = _mm_alignr_epi8::<8>(cdab, hgfe);
        let mut cdgh = _mm_blend_epi16::<0xF0>(hgfe, cdab);
        let big_endian = _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203);
        let n = blocks.len() / 64;
        // One `asm!` block, not intrinsics: build scripts compile at opt-level 0, where each
        // intrinsic is a call. Per block: the four message vectors byte-swapped (rounds
        // 0–15), then three passes of four groups deriving the next message vectors
        // (`sha256msg1/2`), each group adding its four round constants and running four rounds
        // (two `sha256rnds2`); the state halves ABEF (xmm1) and CDGH (xmm2) are summed with
        // their values before the block.
        // SAFETY: the CPU has SHA/SSSE3/SSE4.1 (this fn's contract); `data` points at `n >= 1`
        // whole 64-byte blocks (`blocks.len() >= 64`, asserted above) and `k` at the
        // 64 round constants; only the named registers are written.
        unsafe {
            core::arch::asm!(
                "2:",
                "movdqa xmm9, xmm1",
                "movdqa xmm10, xmm2",
                "lea {kp}, [{k} + 64]",
                "movdqu xmm3, xmmword ptr [{data} + 0]",
                "pshufb xmm3, xmm8",
                "movdqu xmm0, xmmword ptr [{k} + 0]",
                "paddd xmm0, xmm3",
                "sha256rnds2 xmm2, xmm1, xmm0",
                "pshufd xmm0, xmm0, 0x0E",
                "sha256rnds2 xmm1, xmm2, xmm0",
                "movdqu xmm4, xmmword ptr [{data} + 16]",
                "pshufb xmm4, xmm8",
                "movdqu xmm0, xmmword ptr [{k} + 16]",
                "paddd xmm0, xmm4",
                "sha256rnds2 xmm2, xmm1, xmm0",
                "pshufd xmm0, xmm0, 0x0E",
                "sha256rnds2 xmm1, xmm2, xmm0",
                "movdqu xmm5, xmmword ptr [{data} + 32]",
                "pshufb xmm5, xmm8",
                "movdqu xmm0, xmmword ptr [{k} + 32]",
                "paddd xmm0, xmm5",
                "sha256rnds2 xmm2, xmm1, xmm0",
                "pshufd xmm0, xmm0, 0x0E",
                "sha256rnds2 xmm1, xmm2, xmm0",
                "movdqu xmm6, xmmword ptr [{data} + 48]",
                "pshufb xmm6, xmm8",
                "movdqu xmm0, xmmword ptr [{k} + 48]",
                "paddd xmm0, xmm6",
                "sha256rnds2 xmm2, xmm1, xmm0",
                "pshufd xmm0, xmm0, 0x0E",
                "sha256rnds2 xmm1, xmm2, xmm0",
                "mov {q:e}, 3",
                "3:",
                "sha256msg1 xmm3, xmm4",
                "movdqa xmm7, xmm6",
                "palignr xmm7, xmm5, 4",
                "paddd xmm3, xmm7",
                "sha256msg2 xmm3, xmm6",
                "movdqu xmm0, xmmword ptr [{kp} + 0]",
                "paddd xmm0, xmm3",
                "sha256rnds2 xmm2, xmm1, xmm0",
                "pshufd xmm0, xmm0, 0x0E",
                "sha256rnds2 xmm1, xmm2, xmm0",
                "sha256msg1 xmm4, xmm5",
                "movdqa xmm7, xmm3",
                "palignr xmm7, xmm6, 4",
                "paddd xmm4, xmm7",
                "sha256msg2 xmm4, xmm3",
                "movdqu xmm0, xmmword ptr [{kp} + 16]",
                "paddd xmm0, xmm4",
                "sha256rnds2 xmm2, xmm1, xmm0",
                "pshufd xmm0, xmm0, 0x0E",
                "sha256rnds2 xmm1, xmm2, xmm0",
                "sha256msg1 xmm5, xmm6",
                "movdqa xmm7, xmm4",
                "palignr xmm7, xmm3, 4",
                "paddd xmm5, xmm7",
                "sha256msg2 xmm5, xmm4",
                "movdqu xmm0, xmmword ptr [{kp} + 32]",
                "paddd xmm0, xmm5",
                "sha256rnds2 xmm2, xmm1, xmm0",
                "pshufd xmm0, xmm0, 0x0E",
                "sha256rnds2 xmm1, xmm2, xmm0",
                "sha256msg1 xmm6, xmm3",
                "movdqa xmm7, xmm5",
                "palignr xmm7, xmm4, 4",
                "paddd xmm6, xmm7",
                "sha256msg2 xmm6, xmm5",
                "movdqu xmm0, xmmword ptr [{kp} + 48]",
                "paddd xmm0, xmm6",
                "sha256rnds2 xmm2, xmm1, xmm0",
                "pshufd xmm0, xmm0, 0x0E",
                "sha256rnds2 xmm1, xmm2, xmm0",
                "add {kp}, 64",
                "dec {q:e}",
                "jnz 3b",
                "paddd xmm1, xmm9",
                "paddd xmm2, xmm10",
                "add {data}, 64",
                "dec {n}",
                "jnz 2b",
                data = inout(reg) blocks.as_ptr() => _,
                n = inout(reg) n => _,
                k = in(reg) k.as_ptr(),
                kp = out(reg) _,
                q = out(reg) _,
                inout("xmm1") abef,
                inout("xmm2") cdgh,
                out("xmm0") _, out("xmm3") _, out("xmm4") _, out("xmm5") _, out("xmm6") _,
                out("xmm7") _,
                in("xmm8") big_endian,
                out("xmm9") _, out("xmm10") _,
                options(nostack, readonly, pure),
            );
        }
        let feba = _mm_shuffle_epi32::<0x1B>(abef);
        let dchg = _mm_shuffle_epi32::<0xB1>(cdgh);
        let abcd = _mm_blend_epi16::<0xF0>(feba, dchg);
        let efgh = _mm_alignr_epi8::<8>(dchg, feba);
        // SAFETY: `state` is 8 `u32`s: four at 0 and four at 4.
        unsafe {
            _mm_storeu_si128(state.as_mut_ptr().cast(), abcd);
            _mm_storeu_si128(state.as_mut_ptr().add(4).cast(), efgh);
        }
    }
}

/// The digest of `data`.
pub fn digest(data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(data);
    h.finish()
}

/// Lower-case hex of a digest, into a caller's buffer.
pub fn hex(digest: &[u8; 32], out: &mut [u8; 64]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in digest.iter().enumerate() {
        out[2 * i] = DIGITS[(b >> 4) as usize];
        out[2 * i + 1] = DIGITS[(b & 15) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex_of(data: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        hex(&digest(data), &mut out);
        out
    }

    #[test]
    fn fips_test_vectors() {
        assert_eq!(
            &hex_of(b""),
            b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            &hex_of(b"abc"),
            b"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            &hex_of(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            b"248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    #[test]
    fn million_a() {
        let mut h = Sha256::new();
        for _ in 0..1000 {
            h.update(&[b'a'; 1000]);
        }
        let mut out = [0u8; 64];
        hex(&h.finish(), &mut out);
        assert_eq!(
            &out,
            b"cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
    }

    /// The dispatched compression (the SHA extensions where the CPU has them) against the
    /// portable rounds, over runs of 1..=40 blocks of pseudo-random bytes.
    #[test]
    fn accelerated_equals_portable() {
        let mut x = 0x2545_f491_u32;
        let data: [u8; 64 * 40] = core::array::from_fn(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        });
        for blocks in 1..=40 {
            let (mut fast, mut slow) = (Sha256::new().state, Sha256::new().state);
            compress_blocks(&mut fast, &data[..64 * blocks]);
            for block in data[..64 * blocks].chunks_exact(64) {
                compress_portable(&mut slow, block);
            }
            assert_eq!(fast, slow, "{blocks} blocks");
        }
        #[cfg(target_arch = "x86_64")]
        if x86_sha::available() {
            let mut sha = Sha256::new().state;
            // SAFETY: the CPU has the features (checked just above).
            unsafe { x86_sha::compress_blocks(&mut sha, &data) };
            let mut slow = Sha256::new().state;
            compress_blocks(&mut slow, &data);
            assert_eq!(sha, slow);
        }
    }

    #[test]
    fn streaming_equals_one_shot() {
        let data: [u8; 200] = core::array::from_fn(|i| (i * 7) as u8);
        let mut h = Sha256::new();
        for chunk in data.chunks(13) {
            h.update(chunk);
        }
        assert_eq!(h.finish(), digest(&data));
    }
}
