//! Speed of the quantized depthwise convolution: the direct path `qconv` takes for one
//! input channel per group against the im2col + int8 GEMM path, on MobileNet-style 3×3
//! layers, as compiled for this build's target features. Prints per-layer medians of this
//! thread's CPU time.
//!
//! `RUSTFLAGS="-C target-cpu=native" cargo run --release -p runtime-core --example qconv_speed`
mod support;
use runtime_core::Aligned64;
use runtime_core::arena::from_blocks;
use runtime_core::kernels::conv::Window;
use runtime_core::kernels::gemm::Tiles;
use runtime_core::kernels::qconv::{self, Output, QConv, Scratch};
use runtime_core::kernels::qgemm;
use support::{cpu_ns, values};

/// Median CPU seconds of `f` over `reps` runs after one warm-up run.
fn median(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<u64> = (0..reps)
        .map(|_| {
            let start = cpu_ns();
            f();
            cpu_ns() - start
        })
        .collect();
    t.sort();
    t[reps / 2] as f64 * 1e-9
}

fn main() {
    let reps = 15;
    let nr = qgemm::native_i8_nr();
    println!("int8 nr {nr}; medians of {reps} runs (thread CPU time)");
    println!(
        "{:<28} {:>12} {:>12} {:>8}",
        "layer", "direct ms", "im2col ms", "ratio"
    );
    // (channels, height = width, stride)
    for (c, hw, stride) in [
        (32, 112, 1),
        (96, 112, 2),
        (144, 56, 1),
        (144, 56, 2),
        (384, 28, 1),
        (960, 7, 1),
    ] {
        let (input, kernel) = ([hw, hw], [3usize, 3]);
        let o = (hw + 2 - 3) / stride + 1;
        let output = [o, o];
        let (strides, dil, pads) = ([stride, stride], [1, 1], [1, 1]);
        let win = Window {
            input: &input,
            output: &output,
            kernel: &kernel,
            strides: &strides,
            dilations: &dil,
            pads_begin: &pads,
            pads_end: &pads,
        };
        let x: Vec<i8> = values(c * hw * hw, 1)
            .iter()
            .map(|v| (v * 127.0) as i8)
            .collect();
        let wq: Vec<i8> = values(c * 9, 2).iter().map(|v| (v * 127.0) as i8).collect();
        let gb = qgemm::packed_i8_bytes(9, 1, nr);
        let mut buf = vec![Aligned64([0u8; 64]); (c * gb).div_ceil(64)];
        let blob = &mut from_blocks(&mut buf)[..c * gb];
        for g in 0..c {
            qgemm::pack_i8(
                &wq[g * 9..],
                &[0.01],
                9,
                1,
                nr,
                &mut blob[g * gb..(g + 1) * gb],
            );
        }
        let blob = &*blob;
        let rows = qconv::block_rows(o * o, 9);
        let p = QConv {
            batch: 1,
            in_channels: c,
            out_channels: c,
            group: c,
            win: &win,
            nr,
            rows,
            tiles: Tiles {
                mr: 4,
                kc: 256,
                mc: 64,
            },
        };
        let bias = vec![0.5f32; c];
        let mut y = vec![0f32; c * o * o];
        let direct = median(reps, || {
            qconv::depthwise(&x, 0.02, 3, blob, Some(&bias), Output::F32(&mut y), &p)
        });
        let mut cols = vec![0i8; rows * qgemm::qa_stride(9)];
        let mut cbuf = vec![0f32; rows];
        let (mut sc, mut zp) = (vec![0f32; rows], vec![0i32; rows]);
        let im2col = median(reps, || {
            let s = Scratch {
                cols: &mut cols,
                c: &mut cbuf,
                scales: &mut sc,
                zero_points: &mut zp,
            };
            qconv::im2col_gemm(&x, 0.02, 3, blob, Some(&bias), Output::F32(&mut y), s, &p)
        });
        println!(
            "{:<28} {:>12.3} {:>12.3} {:>8.2}",
            format!("dw3x3 c{c} {hw}x{hw} s{stride}"),
            direct * 1e3,
            im2col * 1e3,
            im2col / direct
        );
    }
}
