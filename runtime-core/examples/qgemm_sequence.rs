//! CPU time of the int8 GEMMs of a BERT encoder run in model order with distinct weights per
//! layer (so each layer's panels come from L3 or memory, as in a generated crate, unlike
//! `qgemm_speed`'s hot weights): per layer Q, K, V, output (+ residual), FFN1 (bias + GELU),
//! FFN2 (+ residual), m = 128 rows. Prints the median CPU time of the sequence per shape.
//!
//! `RUSTFLAGS="-C target-cpu=native" cargo run --release -p runtime-core --example qgemm_sequence [layers] [hidden] [reps]`
mod support;
use runtime_core::Aligned64;
use runtime_core::arena::from_blocks;
use runtime_core::kernels::gemm::{Activation, Tiles};
use runtime_core::kernels::qgemm::*;
use runtime_core::kernels::qgemv::qgemv_residual;
use support::{cpu_ns, values};

/// One packed layer: weights, bias, `(k, n)`, activation, residual.
struct Layer {
    blob: &'static [u8],
    bias: Vec<f32>,
    k: usize,
    n: usize,
    act: Activation,
    residual: bool,
}

fn layer(k: usize, n: usize, act: Activation, residual: bool, seed: u32) -> Layer {
    let nr = native_i8_nr();
    let w = values(k * n, seed);
    let mut q = vec![0i8; k * n];
    let mut s = vec![0.0; n];
    quantize_weights_i8(&w, k, n, &mut q, &mut s);
    // Panels on a 64-byte boundary, as in a generated crate's weight blob.
    let len = packed_i8_bytes(k, n, nr);
    let blob = vec![Aligned64([0u8; 64]); len.div_ceil(64)];
    let blob = &mut from_blocks(Box::leak(blob.into_boxed_slice()))[..len];
    pack_i8(&q, &s, k, n, nr, blob);
    Layer {
        blob,
        bias: values(n, seed + 1),
        k,
        n,
        act,
        residual,
    }
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let (layers, h, reps) = (
        *args.first().unwrap_or(&3),
        *args.get(1).unwrap_or(&384),
        *args.get(2).unwrap_or(&41),
    );
    let m = 128;
    let mut net = Vec::new();
    for l in 0..layers as u32 {
        let s = 100 * l;
        for (i, (k, n, act, res)) in [
            (h, h, Activation::None, false),
            (h, h, Activation::None, false),
            (h, h, Activation::None, false),
            (h, h, Activation::None, true),
            (h, 4 * h, Activation::Gelu, false),
            (4 * h, h, Activation::None, true),
        ]
        .into_iter()
        .enumerate()
        {
            net.push(layer(k, n, act, res, s + 10 * i as u32));
        }
    }
    let x = values(m * 4 * h, 7);
    let r = values(m * h, 8);
    let mut qa = vec![0i8; m * qa_stride(4 * h)];
    let (mut sa, mut za) = (vec![0.0; m], vec![0; m]);
    let mut c = vec![0.0; m * 4 * h];
    let mut per = vec![Vec::new(); net.len()];
    let mut total = Vec::new();
    for _ in 0..reps {
        let t0 = cpu_ns();
        for (i, l) in net.iter().enumerate() {
            let t = cpu_ns();
            quantize_rows_symmetric(&x, m, l.k, 4 * h, &mut qa, &mut sa, &mut za);
            let g = QGemm {
                m,
                k: l.k,
                n: l.n,
                ldc: l.n,
                a_scales: &sa,
                a_zero_points: &za,
                bias: Some(&l.bias),
                activation: l.act,
                tiles: Tiles {
                    mr: 12,
                    kc: l.k,
                    mc: 256,
                },
            };
            let w = QWeights::new(l.blob, l.k, l.n, native_i8_nr());
            let out = &mut c[..m * l.n];
            if l.residual {
                qgemv_residual(&qa, w, out, &g, &r);
            } else {
                qgemm(&qa, w, out, &g);
            }
            per[i].push(cpu_ns() - t);
        }
        total.push(cpu_ns() - t0);
    }
    let med = |v: &mut Vec<u64>| {
        v.sort();
        v[v.len() / 2] as f64 / 1e3
    };
    let names = ["Q", "K", "V", "out+res", "FFN1+gelu", "FFN2+res"];
    let mut sums = [0.0; 6];
    for (i, v) in per.iter_mut().enumerate() {
        sums[i % 6] += med(v);
    }
    for (name, s) in names.iter().zip(sums) {
        println!("{name:<10} {s:8.0} us (sum over {layers} layers, medians)");
    }
    let macs = layers * m * (4 * h * h + 8 * h * h);
    let t = med(&mut total);
    println!(
        "sequence   {t:8.0} us median CPU ({reps} runs), {:.0} GMAC/s incl. row quantization",
        macs as f64 / t * 1e-3
    );
}
