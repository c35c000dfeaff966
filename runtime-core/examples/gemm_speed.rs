//! Speed of the f32 GEMM on the BERT-base-MiniLM shapes (m = 128 rows; the Linear layers'
//! packed weights and attention's per-head row-major products), as compiled for this build's
//! target features. Prints GFLOP/s from the thread's CPU time (median and best of repeated
//! runs), so a loaded machine skews it less than wall-clock time.
//!
//! `RUSTFLAGS="-C target-cpu=native" cargo run --release -p runtime-core --example gemm_speed [cold] [mr kc mc]`
//!
//! `cold` streams the packed weights from memory instead of cache.
mod support;
use runtime_core::kernels::gemm::{self, Activation, BMatrix, Gemm, Tiles};
use std::hint::black_box;
use support::{cpu_ns, values};

/// Median and best seconds per call of `f`, over `rounds` rounds of `inner` calls each.
fn time(rounds: usize, inner: usize, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let mut t: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = cpu_ns();
            for _ in 0..inner {
                f();
            }
            (cpu_ns() - start) as f64 * 1e-9 / inner as f64
        })
        .collect();
    t.sort_by(f64::total_cmp);
    (t[rounds / 2], t[0])
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let cold = std::env::args().any(|a| a == "cold");
    let nr = gemm::native_nr();
    let (mr0, kc0) = match nr {
        32 => (14, 192),
        16 => (6, 384),
        _ => (12, 256),
    };
    let tiles = Tiles {
        mr: args.first().copied().unwrap_or(mr0),
        kc: args.get(1).copied().unwrap_or(kc0),
        mc: args.get(2).copied().unwrap_or(4096),
    };
    println!("nr {nr}, {tiles:?}, cold weights: {cold}; GFLOP/s from CPU time: median (best)");
    // (name, m, k, n, packed weight, bias and activation)
    let shapes = [
        ("linear 384x384", 128, 384, 384, true, Activation::None),
        (
            "linear 384x1152 (qkv)",
            128,
            384,
            1152,
            true,
            Activation::None,
        ),
        ("linear 384x1536", 128, 384, 1536, true, Activation::None),
        (
            "linear 384x1536+gelu",
            128,
            384,
            1536,
            true,
            Activation::Gelu,
        ),
        ("linear 1536x384", 128, 1536, 384, true, Activation::None),
        ("attn q.kT 32x128", 128, 32, 128, false, Activation::None),
        ("attn p.v 128x32", 128, 128, 32, false, Activation::None),
    ];
    let mut total = 0.0;
    for (name, m, k, n, packed, activation) in shapes {
        let bias = values(n, 3);
        let (a, w) = (values(m * k, 1), values(k * n, 2));
        let mut pw = vec![0.0; gemm::packed_len(k, n, nr)];
        gemm::pack_b(&w, k, n, nr, &mut pw);
        // `cold`: rotate through copies of the weight filling 64 MiB, as a model whose
        // weights exceed the caches streams them from memory.
        let copies = if cold && packed {
            (16 << 20) / pw.len() + 1
        } else {
            1
        };
        let pws: Vec<Vec<f32>> = vec![pw; copies];
        let mut next = 0;
        let mut c = vec![0.0; m * n];
        let g = Gemm {
            m,
            k,
            n,
            lda: k,
            ldc: n,
            bias: (activation != Activation::None).then_some(&bias[..]),
            activation,
            tiles,
        };
        let flops = 2.0 * (m * k * n) as f64;
        let inner = (2e8 / flops).ceil() as usize;
        let (med, best) = time(31, inner, || {
            next = (next + 1) % copies;
            let b = if packed {
                BMatrix::packed(&pws[next], k, nr)
            } else {
                BMatrix::row_major(&w, n, nr)
            };
            gemm::gemm(black_box(&a), b, black_box(&mut c), &g);
        });
        // Calls per BERT-MiniLM run (6 layers; 12 heads per attention product).
        let calls = match name {
            "linear 384x384" | "linear 384x1152 (qkv)" => 6.0,
            "linear 384x1536+gelu" | "linear 1536x384" => 6.0,
            "linear 384x1536" => 0.0,
            _ => 72.0,
        };
        total += calls * med;
        println!(
            "{name:24} {:6.1} ({:6.1}) GFLOP/s  {:7.1} us",
            flops / med * 1e-9,
            flops / best * 1e-9,
            med * 1e6
        );
    }
    println!(
        "BERT-MiniLM GEMM time per run (out 384x384, qkv, ffn with gelu, attention): {:.2} ms",
        total * 1e3
    );
}
