//! Speed of the quantized kernels against the f32 GEMM, as compiled for this build's target
//! features: int8 `qgemm` on BERT-sized shapes (m = 128) and int4 `gemm_q4` on decode
//! shapes (m = 1) and prefill shapes. Prints the median of repeated runs.
//!
//! `RUSTFLAGS="-C target-cpu=native" cargo run --release -p runtime-core --example qgemm_speed`
mod support;
use runtime_core::Aligned64;
use runtime_core::arena::from_blocks;
use runtime_core::kernels::gemm::{self, Activation, BMatrix, Gemm, Tiles};
use runtime_core::kernels::qgemm::*;
use std::time::Instant;
use support::values;

/// Median and minimum seconds of `f` over `reps` runs after one warm-up run.
fn median(reps: usize, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (t[reps / 2], t[0])
}

fn blob(len: usize) -> Vec<Aligned64<[u8; 64]>> {
    vec![Aligned64([0u8; 64]); len.div_ceil(64)]
}

fn f32_gemm_time(a: &[f32], w: &[f32], m: usize, k: usize, n: usize, reps: usize) -> (f64, f64) {
    let nr = gemm::native_nr();
    let mut packed = vec![0.0; gemm::packed_len(k, n, nr)];
    gemm::pack_b(w, k, n, nr, &mut packed);
    let mut c = vec![0.0; m * n];
    let (mr, kc) = match nr {
        32 => (14, 128),
        16 => (6, 256),
        _ => (8, 256),
    };
    let g = Gemm {
        m,
        k,
        n,
        lda: k,
        ldc: n,
        bias: None,
        activation: Activation::None,
        tiles: Tiles { mr, kc, mc: 1024 },
    };
    median(reps, || {
        gemm::gemm(a, BMatrix::packed(&packed, k, nr), &mut c, &g)
    })
}

fn main() {
    let reps = 21;
    println!(
        "int8 nr {}, int4 nr {}, f32 nr {}; medians (and minimums) of {reps} runs",
        native_i8_nr(),
        native_q4_nr(),
        gemm::native_nr()
    );
    for (m, k, n) in [(128, 384, 1536), (128, 1536, 384), (128, 384, 384)] {
        let (a, w) = (values(m * k, 1), values(k * n, 2));
        let ops = 2.0 * (m * k * n) as f64;
        let tf = f32_gemm_time(&a, &w, m, k, n, reps);
        let nr = native_i8_nr();
        let mut qw = vec![0i8; k * n];
        let mut ws = vec![0.0; n];
        quantize_weights_i8(&w, k, n, &mut qw, &mut ws);
        let len = packed_i8_bytes(k, n, nr);
        let mut buf = blob(len);
        let bytes = &mut from_blocks(&mut buf)[..len];
        pack_i8(&qw, &ws, k, n, nr, bytes);
        let weights = QWeights::new(bytes, k, n, nr);
        let mut qa = vec![0i8; m * qa_stride(k)];
        let (mut sa, mut za) = (vec![0.0; m], vec![0; m]);
        let mut c = vec![0.0; m * n];
        let g = QGemm {
            m,
            k,
            n,
            ldc: n,
            a_scales: &sa.clone(),
            a_zero_points: &za.clone(),
            bias: None,
            activation: Activation::None,
            tiles: Tiles {
                mr: 12,
                kc: k,
                mc: 128,
            },
        };
        let tq = median(reps, || qgemm(&qa, weights, &mut c, &g));
        let bias = values(n, 5);
        let gelu = QGemm {
            bias: Some(&bias),
            activation: Activation::Gelu,
            ..g
        };
        let tg = median(reps, || qgemm(&qa, weights, &mut c, &gelu));
        let tqa = median(reps, || {
            quantize_rows_symmetric(&a, m, k, k, &mut qa, &mut sa, &mut za)
        });
        println!(
            "int8 m={m} k={k} n={n}: f32 gemm {:.0} us (min {:.0}) {:.1} GFLOP/s | qgemm {:.0} us \
             (min {:.0}) {:.1} GOP/s, with bias + GELU {:.0} us | row quantization {:.0} us | (qgemm + quantization) / f32 \
             {:.2} (min {:.2})",
            tf.0 * 1e6,
            tf.1 * 1e6,
            ops / tf.0 * 1e-9,
            tq.0 * 1e6,
            tq.1 * 1e6,
            ops / tq.0 * 1e-9,
            tg.0 * 1e6,
            tqa.0 * 1e6,
            (tq.0 + tqa.0) / tf.0,
            (tq.1 + tqa.1) / tf.1
        );
    }
    for (m, k, n) in [
        (1, 2048, 2048),
        (1, 2048, 5632),
        (1, 5632, 2048),
        (1, 288, 768),
        (16, 2048, 2048),
        (128, 2048, 2048),
    ] {
        let (a, w) = (values(m * k, 3), values(k * n, 4));
        let ops = 2.0 * (m * k * n) as f64;
        let tf = f32_gemm_time(&a, &w, m, k, n, reps);
        let (nr, group) = (native_q4_nr(), 32);
        let mut q = vec![0u8; k * n];
        let mut s = vec![0.0; k.div_ceil(group) * n];
        quantize_weights_q4(&w, k, n, group, &mut q, &mut s);
        let len = packed_q4_bytes(k, n, group, nr, true, false);
        let mut buf = blob(len);
        let bytes = &mut from_blocks(&mut buf)[..len];
        pack_q4(&q, &s, None, k, n, group, nr, true, bytes);
        let weights = Q4Weights::new(bytes, k, n, group, nr, true, false);
        let mut c = vec![0.0; m * n];
        let g = Gemm {
            m,
            k,
            n,
            lda: k,
            ldc: n,
            bias: None,
            activation: Activation::None,
            tiles: Tiles {
                mr: 1,
                kc: k,
                mc: 1,
            },
        };
        let tq = median(reps, || gemm_q4(&a, weights, &mut c, &g));
        println!(
            "int4 m={m} k={k} n={n} group {group} f16 scales: f32 gemm {:.0} us (min {:.0}) \
             {:.1} GFLOP/s | gemm_q4 {:.0} us (min {:.0}) {:.1} GFLOP/s{} | gemm_q4 / f32 {:.2} \
             (min {:.2})",
            tf.0 * 1e6,
            tf.1 * 1e6,
            ops / tf.0 * 1e-9,
            tq.0 * 1e6,
            tq.1 * 1e6,
            ops / tq.0 * 1e-9,
            if m == 1 {
                format!(", weights streamed at {:.1} GB/s", len as f64 / tq.0 * 1e-9)
            } else {
                String::new()
            },
            tq.0 / tf.0,
            tq.1 / tf.1
        );
    }
}
