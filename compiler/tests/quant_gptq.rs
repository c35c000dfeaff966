//! `--int4-method gptq`: GPTQ on stories260K's real weights against the per-group search,
//! measured on the calibration activations of `models/stories260K/calibration.txt`, and the
//! determinism of its blobs.
mod common;

use runtime_core::kernels::gemm::{Activation, Gemm};
use runtime_core::kernels::qgemm::{self, Q4Weights};
use slm_aot::calibrate::LayerInputs;
use slm_aot::frontend::ImportOptions;
use slm_aot::ir::{Data, Graph};
use slm_aot::ops::Op;
use slm_aot::ops::q4linear::{self, Q4Grid};
use slm_aot::quantize::{Int4Method, QuantMode, QuantOptions};
use slm_aot::target::TargetProfile;

const MODEL: &str = "models/stories260K/stories260K_step_kv256.onnx";

fn stateful_graph() -> Graph {
    let options = ImportOptions {
        max_context: Some(256),
        ..ImportOptions::default()
    };
    slm_aot::pipeline::import(&common::repo().join(MODEL), &options).expect("import")
}

fn calibration_prompts() -> Vec<slm_aot::quantize::Prompt> {
    let repo = common::repo();
    slm_aot::quantize::load_prompts(
        &repo.join("models/stories260K/calibration.txt"),
        Some(&repo.join("models/stories260K/tok512.bin")),
    )
    .expect("calibration prompts")
}

/// `‖X·W − X·Ŵ‖² / ‖X·W‖²` over the calibration rows `x`, `Ŵ` the int4 blob run by the
/// target's `gemm_q4`.
fn output_error(w: &[f32], blob: &[u8], x: &LayerInputs, n: usize, nr: usize) -> f64 {
    let (k, m) = (x.k, x.count());
    let mut got = vec![0.0f32; m * n];
    let tiles = TargetProfile::load("x86").unwrap().quant_tiling().tiles;
    let g = Gemm {
        m,
        k,
        n,
        lda: k,
        ldc: n,
        bias: None,
        activation: Activation::None,
        tiles,
    };
    let weights = Q4Weights::new(blob, k, n, 32, nr, true, true);
    qgemm::gemm_q4(&x.rows, weights, &mut got, &g);
    let (mut err, mut norm) = (0.0f64, 0.0f64);
    for (row, q) in x.rows.chunks_exact(k).zip(got.chunks_exact(n)) {
        for (j, &qj) in q.iter().enumerate() {
            let want: f64 = (0..k)
                .map(|p| f64::from(row[p]) * f64::from(w[p * n + j]))
                .sum();
            err += (want - f64::from(qj)).powi(2);
            norm += want * want;
        }
    }
    err / norm
}

/// On every `Linear` of stories260K (real weights, the float graph's activations on the
/// calibration prompts), GPTQ's relative output error `‖(W − Ŵ)ᵀX‖²/‖WᵀX‖²` is below the
/// activation-weighted per-group search's, which is below the plain search's on the sum.
/// Prints the per-layer figures of the README (`-- --nocapture`).
#[test]
fn gptq_lowers_every_layers_output_error_on_the_calibration_activations() {
    let target = TargetProfile::load("x86").unwrap();
    let nr = target.quant_tiling().q4_nr;
    let fused = slm_aot::pipeline::quantization_input(stateful_graph(), &target).unwrap();
    let q = QuantOptions::new(QuantMode::Int4);
    let inputs = slm_aot::calibrate::layer_inputs(&fused, &q, &calibration_prompts(), 32).unwrap();
    let (mut layers, mut sums) = (0, [0.0f64; 3]);
    eprintln!(
        "{} calibration rows per layer",
        inputs.values().next().map_or(0, LayerInputs::count)
    );
    for id in fused.node_ids() {
        let node = fused.node(id);
        let Op::Linear(l) = &node.op else { continue };
        let Some(Data::F32(w)) = fused.constant(node.inputs[1]).map(|t| &t.data) else {
            continue;
        };
        let x = &inputs[&node.name];
        assert!(x.count() > 1000, "{}: {} rows", node.name, x.count());
        let (k, n) = (l.k, l.n);
        let grid = Q4Grid::Asymmetric;
        let plain = q4linear::pack_weight(w, k, n, 32, nr, true, grid, None);
        let moments = x.moments();
        let search = q4linear::pack_weight(w, k, n, 32, nr, true, grid, Some(&moments));
        let gptq =
            q4linear::pack_weight_gptq(w, k, n, 32, nr, true, grid, &x.hessian()).expect("factor");
        let e = [plain, search, gptq].map(|b| output_error(w, &b, x, n, nr));
        eprintln!(
            "{:<32} k {k:>3} n {n:>3}: plain {:.5}  search {:.5}  gptq {:.5}",
            node.name, e[0], e[1], e[2]
        );
        assert!(
            e[2] < e[1],
            "{}: gptq {} vs search {}",
            node.name,
            e[2],
            e[1]
        );
        for (s, v) in sums.iter_mut().zip(e) {
            *s += v;
        }
        layers += 1;
    }
    eprintln!(
        "sum over {layers} layers: plain {:.5}  search {:.5}  gptq {:.5}",
        sums[0], sums[1], sums[2]
    );
    assert_eq!(layers, 36);
    assert!(sums[1] < sums[0], "{sums:?}");
}

/// Two GPTQ builds of stories260K give the same weights, and they differ from the search's
/// (same layout: the int4 blobs have the same sizes).
#[test]
fn gptq_builds_are_deterministic() {
    let float = stateful_graph();
    let target = TargetProfile::load("x86").unwrap();
    let mut q = QuantOptions::new(QuantMode::Int4);
    q.calibration_ids = calibration_prompts()[..4].to_vec();
    let mut gptq = q.clone();
    gptq.int4_method = Int4Method::Gptq;
    let build = |q: &QuantOptions| {
        let g =
            slm_aot::pipeline::optimise_quantized(float.clone(), &target, Some(q), false).unwrap();
        (0..g.value_count() as u32)
            .filter_map(|v| g.constant(slm_aot::ir::ValueId(v)))
            .map(|t| t.data.clone())
            .collect::<Vec<_>>()
    };
    let (a, b, s) = (build(&gptq), build(&gptq), build(&q));
    assert!(a == b, "two GPTQ builds differ");
    assert_eq!(a.len(), s.len());
    let sizes = |v: &[Data]| v.iter().map(Data::len).collect::<Vec<_>>();
    assert_eq!(sizes(&a), sizes(&s));
    assert!(a != s, "GPTQ changed no weight");
}

/// Calibrated on `calibration.txt`, on the five validation prompts of `prompts.txt` (held
/// out; each followed by the float model's 32 greedy tokens, teacher-forced) GPTQ's logits
/// are closer to the float model's than the weighted search's and the plain search's, summed
/// over the prompts. Prints the per-prompt figures of the README (`-- --nocapture`).
#[test]
fn gptq_lowers_the_held_out_logit_error() {
    let repo = common::repo();
    let float = stateful_graph();
    let target = TargetProfile::load("x86").unwrap();
    let plain = QuantOptions::new(QuantMode::Int4);
    let mut search = plain.clone();
    search.calibration_ids = calibration_prompts();
    let mut gptq = search.clone();
    gptq.int4_method = Int4Method::Gptq;
    let build = |q: &QuantOptions| {
        slm_aot::pipeline::optimise_quantized(float.clone(), &target, Some(q), false).unwrap()
    };
    let graphs = [build(&plain), build(&search), build(&gptq)];
    let prompts = slm_aot::quantize::load_prompts(
        &repo.join("models/stories260K/prompts.txt"),
        Some(&repo.join("models/stories260K/tok512.bin")),
    )
    .unwrap();
    let mut sums = [0.0f64; 3];
    for p in &prompts {
        let mut ids = p.ids.clone();
        ids.extend(slm_aot::quantize::greedy_decode(&float, &p.ids, 32).unwrap());
        ids.pop();
        let f = common::teacher_forced_logits(&float, &ids, 512);
        let e = [0, 1, 2].map(|i| {
            common::relative_error(&f, &common::teacher_forced_logits(&graphs[i], &ids, 512))
        });
        eprintln!(
            "{:<32} relative logit error: plain {:.5}  search {:.5}  gptq {:.5}",
            format!("{:?}", p.label),
            e[0],
            e[1],
            e[2]
        );
        for (s, v) in sums.iter_mut().zip(e) {
            *s += v;
        }
    }
    eprintln!(
        "sum: plain {:.5}  search {:.5}  gptq {:.5}",
        sums[0], sums[1], sums[2]
    );
    assert!(sums[2] < sums[1] && sums[2] < sums[0], "{sums:?}");
}
