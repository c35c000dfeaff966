//! Fixed support code of a `slm-aot verify` firmware runner: raw little-endian element
//! conversion and hex output through semihosting.
use cortex_m_semihosting::hio;

/// Element types read from raw little-endian bytes and printed as such.
pub trait Raw: Copy {
    const SIZE: usize;
    fn read(bytes: &[u8]) -> Self;
    fn bytes(self, out: &mut [u8]);
}

macro_rules! raw {
    ($($t:ty),*) => {$(
        impl Raw for $t {
            const SIZE: usize = core::mem::size_of::<$t>();
            fn read(bytes: &[u8]) -> Self {
                let mut a = [0u8; core::mem::size_of::<$t>()];
                a.copy_from_slice(bytes);
                <$t>::from_le_bytes(a)
            }
            fn bytes(self, out: &mut [u8]) { out.copy_from_slice(&self.to_le_bytes()); }
        }
    )*};
}
raw!(f32, f64, i64, i32, i16, i8, u8, u16, u32, u64);

impl Raw for bool {
    const SIZE: usize = 1;
    fn read(bytes: &[u8]) -> Self { bytes[0] != 0 }
    fn bytes(self, out: &mut [u8]) { out[0] = self as u8; }
}

/// Fill `dst` from raw little-endian `bytes` (as long as `dst`, checked by the caller).
pub fn fill<T: Raw>(dst: &mut [T], bytes: &[u8]) {
    for (d, chunk) in dst.iter_mut().zip(bytes.chunks_exact(T::SIZE)) {
        *d = T::read(chunk);
    }
}

/// Print output `k` as lines `out K HEX` (raw little-endian bytes, 64 per line).
pub fn emit<T: Raw>(k: usize, values: &[T]) -> Result<(), ()> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut stdout = hio::hstdout()?;
    let mut line = [0u8; 16 + 2 * 64 + 1];
    let mut len = 0;
    let mut head = [0u8; 16];
    let head_len = header(k, &mut head);
    let mut element = [0u8; 8];
    let mut in_line = 0;
    for &v in values {
        v.bytes(&mut element[..T::SIZE]);
        for &b in &element[..T::SIZE] {
            if in_line == 0 {
                line[..head_len].copy_from_slice(&head[..head_len]);
                len = head_len;
            }
            line[len] = HEX[(b >> 4) as usize];
            line[len + 1] = HEX[(b & 15) as usize];
            len += 2;
            in_line += 1;
            if in_line == 64 {
                line[len] = b'\n';
                stdout.write_all(&line[..len + 1])?;
                in_line = 0;
            }
        }
    }
    if in_line > 0 {
        line[len] = b'\n';
        stdout.write_all(&line[..len + 1])?;
    }
    Ok(())
}

/// `out K ` in ASCII; returns its length.
fn header(k: usize, out: &mut [u8; 16]) -> usize {
    out[..4].copy_from_slice(b"out ");
    let mut digits = [0u8; 10];
    let (mut n, mut d) = (k, 0);
    loop {
        digits[d] = b'0' + (n % 10) as u8;
        d += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..d {
        out[4 + i] = digits[d - 1 - i];
    }
    out[4 + d] = b' ';
    5 + d
}
