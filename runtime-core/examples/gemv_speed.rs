//! Throughput of the f32 one-row product (`kernels::gemv`, the variant compiled in) over the
//! weights of stories260K's decode step: one layer's products (L2-resident), two layers, and
//! all five layers plus the classifier (≈ 1.09 MB, past this machine's 1 MiB L2), in GB/s of
//! weights read, thread CPU time, best of 5. Run with
//! `RUSTFLAGS="-C target-cpu=native" cargo run --release -p runtime-core --example gemv_speed`.
mod support;
use runtime_core::kernels::gemm::{Activation, BMatrix, packed_len};
use runtime_core::kernels::gemv::gemv;

fn main() {
    // (k, n) of one layer: merged Q/K/V, output, gate, up (172 padded to 192), down.
    let layer = [(64, 128), (64, 64), (64, 192), (64, 192), (172, 64)];
    let nr = 32;
    for layers in [1usize, 2, 5] {
        let mut shapes: Vec<(usize, usize)> = layer.repeat(layers);
        if layers == 5 {
            shapes.push((64, 512));
        }
        let mats: Vec<(usize, usize, Vec<f32>)> = shapes
            .iter()
            .enumerate()
            .map(|(i, &(k, n))| (k, n, support::values(packed_len(k, n, nr), i as u32)))
            .collect();
        let bytes: usize = mats.iter().map(|m| m.2.len() * 4).sum();
        let x = support::values(256, 3);
        let mut y = vec![0.0f32; 512];
        let passes = 4000 / layers;
        let mut best = u64::MAX;
        for _ in 0..5 {
            let t = support::cpu_ns();
            for _ in 0..passes {
                for (k, n, w) in &mats {
                    let b = BMatrix::packed(w, *k, nr);
                    gemv(&x[..*k], b, &mut y[..*n], *k, *n, None, Activation::None);
                }
            }
            best = best.min(support::cpu_ns() - t);
        }
        let ns = best as f64 / passes as f64;
        println!(
            "{layers} layer(s): {bytes} bytes of weights, {:.2} µs per pass, {:.1} GB/s",
            ns / 1e3,
            bytes as f64 / ns
        );
    }
}
