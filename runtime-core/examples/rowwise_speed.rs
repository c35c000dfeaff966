//! Speed of the row kernels on BERT-sized rows, portable reference against the ISA variant
//! this build compiles in (`rowwise`'s dispatching functions): softmax of 12·128 attention
//! rows of 128, LayerNorm / RMSNorm of 128 rows of 384, GELU (erf and tanh) / SiLU over
//! 128×1536, rotary over 12·128 rows of 64. Prints the median thread CPU time per call
//! (`CLOCK_THREAD_CPUTIME_ID` around batches of calls; Linux) and the ratio.
//!
//! `RUSTFLAGS="-C target-cpu=native" cargo run --release -p runtime-core --example rowwise_speed`
mod support;
use runtime_core::kernels::rowwise::{self, Unary, reference};
use support::{cpu_ns, values as unit_values};

/// Median CPU microseconds per call of `f` over `batches` batches of `per` calls.
fn median_us(batches: usize, per: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..per {
        f();
    }
    let mut t: Vec<f64> = (0..batches)
        .map(|_| {
            let start = cpu_ns();
            for _ in 0..per {
                f();
            }
            (cpu_ns() - start) as f64 / per as f64 / 1e3
        })
        .collect();
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    t[batches / 2]
}

fn row(name: &str, portable: f64, isa: f64) {
    println!(
        "{name:<34} {portable:>10.2} {isa:>10.2} {:>8.2}x",
        portable / isa
    );
}

fn main() {
    let (batches, per) = (41, 20);
    let variant = if cfg!(all(target_arch = "x86_64", target_feature = "avx512f")) {
        "x86_avx512"
    } else if cfg!(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    )) {
        "x86_avx2"
    } else if cfg!(all(target_arch = "aarch64", target_feature = "neon")) {
        "aarch64_neon"
    } else {
        "reference (no ISA variant compiled in)"
    };
    println!("variant: {variant}; CPU µs per call, median of {batches} batches of {per}");
    println!(
        "{:<34} {:>10} {:>10} {:>9}",
        "kernel", "portable", "isa", "speed-up"
    );

    // Softmax over 12 heads × 128 query rows × 128 keys.
    let scores = values(12 * 128 * 128, 1);
    let mut out = vec![0.0f32; scores.len()];
    let p = median_us(batches, per, || {
        for (r, o) in scores.chunks_exact(128).zip(out.chunks_exact_mut(128)) {
            let sum = reference::exp_sub_sum(r, reference::row_max(r), o);
            reference::scale(o, 1.0 / sum);
        }
    });
    let v = median_us(batches, per, || {
        for (r, o) in scores.chunks_exact(128).zip(out.chunks_exact_mut(128)) {
            let sum = rowwise::exp_sub_sum(r, rowwise::row_max(r), o);
            rowwise::scale(o, 1.0 / sum);
        }
    });
    row("softmax 1536 rows x 128", p, v);
    let p = median_us(batches, per, || {
        for r in out.chunks_exact_mut(384) {
            let m = reference::row_max(r);
            reference::exp_sub_sum_in_place(r, m);
        }
    });
    let v = median_us(batches, per, || {
        for r in out.chunks_exact_mut(384) {
            let m = rowwise::row_max(r);
            rowwise::exp_sub_sum_in_place(r, m);
        }
    });
    row("max + exp-sum in place, rows of 384", p, v);

    // LayerNorm / RMSNorm over 128 tokens × 384.
    let x = values(128 * 384, 2);
    let (scale, bias) = (values(384, 3), values(384, 4));
    let mut out = vec![0.0f32; x.len()];
    let p = median_us(batches, per, || {
        for (r, o) in x.chunks_exact(384).zip(out.chunks_exact_mut(384)) {
            reference::layer_norm(r, &scale, Some(&bias), o, 1e-12);
        }
    });
    let v = median_us(batches, per, || {
        for (r, o) in x.chunks_exact(384).zip(out.chunks_exact_mut(384)) {
            rowwise::layer_norm(r, &scale, Some(&bias), o, 1e-12);
        }
    });
    row("LayerNorm 128 x 384", p, v);
    let p = median_us(batches, per, || {
        for (r, o) in x.chunks_exact(384).zip(out.chunks_exact_mut(384)) {
            reference::rms_norm(r, Some(&scale), o, 1e-6, true);
        }
    });
    let v = median_us(batches, per, || {
        for (r, o) in x.chunks_exact(384).zip(out.chunks_exact_mut(384)) {
            rowwise::rms_norm(r, Some(&scale), o, 1e-6, true);
        }
    });
    row("RMSNorm 128 x 384", p, v);

    // Activations over the FFN's 128 × 1536, in place as the GEMM epilogue runs them.
    let h = values(128 * 1536, 5);
    let mut buf = h.clone();
    for (name, f) in [
        ("GELU (erf) 128 x 1536", Unary::Gelu),
        ("GELU (tanh) 128 x 1536", Unary::GeluTanh),
        ("SiLU 128 x 1536", Unary::Silu),
    ] {
        let p = median_us(batches, per / 4, || {
            buf.copy_from_slice(&h);
            reference::map_in_place(&mut buf, f);
        });
        let v = median_us(batches, per / 4, || {
            buf.copy_from_slice(&h);
            rowwise::map_in_place(&mut buf, f);
        });
        row(name, p, v);
    }

    // Rotary over 12 heads × 128 tokens, head dim 64.
    let x = values(12 * 128 * 64, 6);
    let (c, s) = (values(64, 7), values(64, 8));
    let mut out = vec![0.0f32; x.len()];
    let p = median_us(batches, per, || {
        for (r, o) in x.chunks_exact(64).zip(out.chunks_exact_mut(64)) {
            reference::rotary_half(r, &c, &s, o);
        }
    });
    let v = median_us(batches, per, || {
        for (r, o) in x.chunks_exact(64).zip(out.chunks_exact_mut(64)) {
            rowwise::rotary_half(r, &c, &s, o);
        }
    });
    row("rotary 1536 rows x 64", p, v);
}

/// Deterministic values in [-4, 4): past the clamp bounds of the exp/tanh maps.
fn values(n: usize, seed: u32) -> Vec<f32> {
    unit_values(n, seed).into_iter().map(|v| v * 4.0).collect()
}
