//! int8 attention on the real encoder: paraphrase-MiniLM-L3-v2 (from `../shared/models`)
//! built with `--quantize int8` runs its attention as `QAttention`, and its sentence
//! embeddings of the model's 7 reference sentences stay within cosine 0.99 of ONNX Runtime's
//! float ones (issue 6's target) — and `--keep-float` on the attention keeps it float.
mod common;

use slm_aot::frontend::ImportOptions;
use slm_aot::ir::{DType, Data, Graph, Tensor, TensorType};
use slm_aot::ops::Op;
use slm_aot::pipeline::{self, BuildOptions};
use slm_aot::quantize::{QuantMode, QuantOptions};
use slm_aot::target::TargetProfile;
use std::path::PathBuf;

fn model_dir() -> PathBuf {
    let dir = common::repo().join("../shared/models/paraphrase-MiniLM-L3-v2");
    assert!(
        dir.is_dir(),
        "{} is missing (the shared models folder sits beside the repository)",
        dir.display()
    );
    dir
}

fn compile(q: QuantOptions) -> Graph {
    let dir = model_dir();
    let options = BuildOptions {
        model: dir.join("paraphrase-MiniLM-L3-v2.onnx"),
        target: TargetProfile::load("x86-avx512").expect("x86-avx512 profile"),
        import: ImportOptions {
            limits: Default::default(),
            quant_tiling: None,
            dims: [
                ("batch_size".to_string(), 1),
                ("sequence_length".into(), 15),
            ]
            .into(),
            max_context: None,
        },
        crate_name: None,
        runtime_path: None,
        verify_each_pass: false,
        tokenizer: None,
        golden: None,
        quantize: Some(q),
    };
    pipeline::compile(&options).expect("compile").graph
}

/// Per-sentence cosine of the graph's sentence embeddings (output `461`), one sentence per
/// run (batch 1: the fused attention is matched on one sequence), against ONNX Runtime's
/// float ones.
fn sentence_cosines(graph: &Graph) -> Vec<f64> {
    let refs = model_dir().join("ref");
    let inputs: Vec<Tensor> = graph
        .inputs
        .iter()
        .map(|&v| {
            let name = &graph.value(v).name;
            slm_aot::npy::read(&refs.join(format!("{name}.npy"))).expect("input .npy")
        })
        .collect();
    let want = slm_aot::npy::read(&refs.join("sentence_embedding_461.npy"))
        .expect("reference")
        .to_f64_vec();
    let at = graph
        .outputs
        .iter()
        .position(|&v| graph.value(v).name == "461")
        .expect("output 461");
    let n = want.len() / 7;
    (0..7)
        .map(|s| {
            let one: Vec<Tensor> = inputs
                .iter()
                .map(|t| {
                    let Data::I64(d) = &t.data else {
                        panic!("i64 inputs expected, not {}", t.ty)
                    };
                    let w = t.ty.shape[1];
                    let ty = TensorType::new(DType::I64, vec![1, w]);
                    Tensor::new(ty, Data::I64(d[s * w..(s + 1) * w].to_vec())).expect("tensor")
                })
                .collect();
            let outputs = slm_aot::eval::evaluate(graph, &one).expect("evaluate");
            let a = outputs[at].to_f64_vec();
            let b = &want[s * n..(s + 1) * n];
            assert_eq!(a.len(), n);
            let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
            let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
            dot / (na * nb)
        })
        .collect()
}

fn count(graph: &Graph, op: &str) -> usize {
    graph
        .node_ids()
        .into_iter()
        .filter(|&id| graph.node(id).op.name() == op)
        .count()
}

#[test]
fn int8_attention_keeps_the_real_encoder_within_cosine_0_99() {
    let int8 = compile(QuantOptions::new(QuantMode::Int8));
    assert_eq!(count(&int8, "QAttention"), 3, "one per layer");
    assert_eq!(count(&int8, "Attention"), 0);
    let got = sentence_cosines(&int8);
    let min = got.iter().cloned().fold(f64::INFINITY, f64::min);
    println!("int8 attention: sentence cosines {got:.5?}, min {min:.5}");
    assert!(min >= 0.99, "min cosine {min} < 0.99: {got:?}");

    let mut q = QuantOptions::new(QuantMode::Int8);
    q.keep_float = vec!["MatMul_1.attention".into()];
    let float_attention = compile(q.clone());
    assert_eq!(count(&float_attention, "QAttention"), 0);
    assert!(
        float_attention
            .node_ids()
            .into_iter()
            .any(|id| matches!(float_attention.node(id).op, Op::Attention(_))),
        "--keep-float keeps the attention"
    );
    let kept = slm_aot::quantize::float_layers(&float_attention, &q);
    assert!(
        kept.iter()
            .filter(|f| f.op == "Attention")
            .all(|f| f.reason == "--keep-float MatMul_1.attention"),
        "{kept:?}"
    );
    let float = sentence_cosines(&float_attention);
    let min_float = float.iter().cloned().fold(f64::INFINITY, f64::min);
    println!("float attention: sentence cosines {float:.5?}, min {min_float:.5}");
}
