//! Host runner that `slm-aot verify` and `slm-aot bench` build next to a generated crate:
//! reads raw little-endian inputs, runs the model, writes raw outputs.
//! Usage: runner IN_DIR OUT_DIR [ITERATIONS | serve]. `serve` (used by `slm-aot bench`)
//! prints `ready`, then for each stdin line `N` runs the model N times, printing `run_us X`
//! per run and `done`; the outputs are written when stdin closes.
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

mod glue;

/// Element types read from and written to raw little-endian files.
pub trait Raw: Copy + Default {
    const SIZE: usize;
    fn read(bytes: &[u8]) -> Self;
    fn write(self, out: &mut Vec<u8>);
}

macro_rules! raw {
    ($($t:ty),*) => {$(
        impl Raw for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn read(bytes: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(bytes);
                <$t>::from_le_bytes(a)
            }
            fn write(self, out: &mut Vec<u8>) { out.extend_from_slice(&self.to_le_bytes()); }
        }
    )*};
}
raw!(f32, f64, i64, i32, i16, i8, u8, u16, u32, u64);

impl Raw for bool {
    const SIZE: usize = 1;
    fn read(bytes: &[u8]) -> Self { bytes[0] != 0 }
    fn write(self, out: &mut Vec<u8>) { out.push(self as u8); }
}

/// Read input `k` as a boxed fixed-size array.
pub fn read<T: Raw, const N: usize>(dir: &Path, k: usize) -> Result<Box<[T; N]>, String> {
    let path = dir.join(format!("{k}.bin"));
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() != N * T::SIZE {
        return Err(format!("{}: {} bytes, expected {}", path.display(), bytes.len(), N * T::SIZE));
    }
    let v: Vec<T> = bytes.chunks_exact(T::SIZE).map(T::read).collect();
    v.into_boxed_slice().try_into().map_err(|_| "length mismatch".to_string())
}

/// A zeroed boxed array for an output.
pub fn zeroed<T: Raw, const N: usize>() -> Box<[T; N]> {
    let v = vec![T::default(); N];
    match v.into_boxed_slice().try_into() {
        Ok(b) => b,
        Err(_) => unreachable!("vec![_; N] has N elements"),
    }
}

/// Write output `k`.
pub fn write<T: Raw>(dir: &Path, k: usize, values: &[T]) -> Result<(), String> {
    let mut out = Vec::with_capacity(values.len() * T::SIZE);
    values.iter().for_each(|v| v.write(&mut out));
    let path = dir.join(format!("{k}.bin"));
    std::fs::write(&path, out).map_err(|e| format!("{}: {e}", path.display()))
}

/// A 64-byte aligned heap arena.
pub fn arena(bytes: usize) -> Vec<runtime_core::Aligned64<[u8; 64]>> {
    vec![runtime_core::Aligned64([0u8; 64]); bytes.div_ceil(64).max(1)]
}

/// Time `f` `iterations` times and print one line per run in microseconds; 0 iterations
/// means serve requests from stdin (see the file's doc).
pub fn timed(iterations: usize, mut f: impl FnMut() -> Result<(), String>) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    let mut batch = |n: usize, out: &mut std::io::StdoutLock<'_>| -> Result<(), String> {
        for _ in 0..n {
            let start = Instant::now();
            f()?;
            let us = start.elapsed().as_secs_f64() * 1e6;
            writeln!(out, "run_us {us}").map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    if iterations > 0 {
        return batch(iterations, &mut out);
    }
    writeln!(out, "ready").map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())?;
    for line in std::io::stdin().lock().lines() {
        let n = line.map_err(|e| e.to_string())?.trim().parse().unwrap_or(0);
        batch(n, &mut out)?;
        writeln!(out, "done").map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: {} IN_DIR OUT_DIR [ITERATIONS]", args[0]);
        return ExitCode::from(2);
    }
    let iterations = match args.get(3).map(String::as_str) {
        Some("serve") => 0,
        Some(n) => n.parse().unwrap_or(1),
        None => 1,
    };
    match glue::run(Path::new(&args[1]), Path::new(&args[2]), iterations) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
