//! Throughput of `sha256::Sha256` as a generated crate's `build.rs` runs it: unoptimised
//! (cargo builds build scripts at opt-level 0), 1 MiB reads of a 256 MiB buffer, best of 3.
//! Run without `--release`: `cargo run -p runtime-core --example sha256_speed`.
use runtime_core::sha256::Sha256;
use std::time::Instant;

fn main() {
    let data: Vec<u8> = (0..256u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let start = Instant::now();
        let mut h = Sha256::new();
        for chunk in data.chunks(1 << 20) {
            h.update(chunk);
        }
        let digest = h.finish();
        best = best.min(start.elapsed().as_secs_f64());
        std::hint::black_box(digest);
    }
    println!(
        "SHA-256 of 256 MiB: {:.3} s, {:.0} MB/s",
        best,
        data.len() as f64 / best / 1e6
    );
}
