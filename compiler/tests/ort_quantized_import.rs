//! ONNX Runtime's quantized transformer graphs stay integer on import: the ORT-optimized tiny
//! BERT through `quantize_dynamic` (`contrib_ort_qbert_*`, `make_contrib.py`) becomes
//! `QLinear` projections + fused `Attention` (not i32 `MatMul`s), with or without
//! `QEmbedLayerNormalization` and as ORT saves it after its own graph optimizations
//! (`DynamicQuantizeMatMul`), and the build report says so; the per-op `QAttention` fixtures
//! too; and a CNN through `quantize_static` (QOperator) keeps its convolutions and classifier
//! integer around the com.microsoft `QLinear*` ops. (Their outputs against ONNX Runtime are
//! checked with every fixture by `models.rs`.)
mod common;

use slm_aot::ops::Op;
use slm_aot::pipeline;
use slm_aot::report;

fn fixture(name: &str) -> common::Fixture {
    common::fixtures()
        .into_iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("fixture {name}"))
}

/// `(QLinear layers counting merged parts, Attention ops, names of float matmul-like ops)`.
fn census(g: &slm_aot::ir::Graph) -> (usize, usize, Vec<String>) {
    let (mut q, mut attention, mut float) = (0, 0, Vec::new());
    for id in g.node_ids() {
        let node = g.node(id);
        match &node.op {
            Op::QLinear(l) => q += l.part_widths().len(),
            Op::Attention(_) => attention += 1,
            Op::Linear(_) | Op::MatMul(_) | Op::PermutedMatMul(_) => {
                float.push(format!("{} {}", node.op.name(), node.name))
            }
            _ => {}
        }
    }
    (q, attention, float)
}

#[test]
fn quantize_dynamic_bert_imports_as_qlinear_and_attention() {
    for name in [
        "contrib_ort_qbert_dynamic",
        "contrib_ort_qbert_dynamic_float_embed",
        "contrib_ort_qbert_dynamic_ort_extended",
    ] {
        let fx = fixture(name);
        let built = pipeline::compile(&fx.build_options()).expect("build");
        let (q, attention, float) = census(&built.graph);
        // Two layers of Q, K, V, attention output, FFN in and out.
        assert_eq!((q, attention), (12, 2), "{name}: float {float:?}");
        assert!(float.is_empty(), "{name}: float matmuls {float:?}");
        assert!(
            built.source.float_notes.is_empty(),
            "{name}: {:?}",
            built.source.float_notes
        );
        let opts = fx.build_options();
        let text = report::build_report(
            &pipeline::Imported::of(&built.source),
            &built.graph,
            &built.plan,
            opts.target.memory.weights_embed,
        );
        println!("{name}:\n{text}");
        let nodes = text.lines().next().unwrap_or("");
        assert!(
            nodes.contains("QLinear 8") && nodes.contains("Attention 2"),
            "{name}: {nodes}"
        );
        // The merged Q/K/V projection keeps the QAttention node's name.
        let qkv = built.graph.node_ids().into_iter().any(|id| {
            let n = built.graph.node(id);
            matches!(&n.op, Op::QLinear(l) if l.part_widths().len() == 3)
                && n.name.contains("Attention")
        });
        assert!(qkv, "{name}: no 3-part QLinear named after its QAttention");
    }
}

#[test]
fn qattention_fixtures_import_as_qlinear() {
    for name in ["contrib_qattention", "contrib_qattention_per_column"] {
        let fx = fixture(name);
        let built = pipeline::compile(&fx.build_options()).expect("build");
        let (q, attention, float) = census(&built.graph);
        assert_eq!((q, attention), (3, 1), "{name}: float {float:?}");
        assert!(float.is_empty(), "{name}: {float:?}");
        // DynamicQuantizeLinear was absorbed: its reductions are not in the imported graph.
        let reductions = built
            .source
            .node_ids()
            .into_iter()
            .filter(|&id| matches!(built.source.node(id).op, Op::Reduce(_)))
            .count();
        assert_eq!(reductions, 0, "{name}: DynamicQuantizeLinear was imported");
    }
}

#[test]
fn qoperator_cnn_keeps_convolutions_and_gemm_integer() {
    use slm_aot::ops::qconv::QConvOutput;
    let fx = fixture("contrib_qoperator_cnn");
    let built = pipeline::compile(&fx.build_options()).expect("build");
    let g = &built.graph;
    let (mut groups, mut qlinear, mut float) = (Vec::new(), 0, Vec::new());
    for id in g.node_ids() {
        let node = g.node(id);
        match &node.op {
            Op::QConv(q) => {
                assert!(
                    matches!(q.output, QConvOutput::Quantized { .. }),
                    "{}",
                    node.name
                );
                groups.push(q.group);
            }
            Op::QLinear(_) => qlinear += 1,
            Op::Conv(_) | Op::Linear(_) | Op::MatMul(_) => float.push(node.name.clone()),
            _ => {}
        }
    }
    // 3x3 conv, depthwise 3x3 (8 groups), the squeeze-excite 1x1; QGemm → QLinear.
    assert_eq!(groups, [1, 8, 1]);
    assert_eq!(qlinear, 1, "QGemm");
    assert!(float.is_empty(), "float layers {float:?}");
    let notes = &built.source.float_notes;
    assert!(
        !notes.iter().any(|(n, why)| n.contains("QLinear")
            || n.contains("QGemm")
            || why.contains("not fused")),
        "{notes:?}"
    );
}

#[test]
fn qoperator_pool_where_and_transposed_qgemm_stay_integer() {
    let fx = fixture("contrib_qoperator_pool_where");
    let built = pipeline::compile(&fx.build_options()).expect("build");
    let g = &built.graph;
    let (mut qconv, mut qlinear, mut other) = (0, 0, Vec::new());
    for id in g.node_ids() {
        let node = g.node(id);
        match &node.op {
            Op::QConv(_) => qconv += 1,
            Op::QLinear(_) => qlinear += 1,
            Op::Conv(_) | Op::Linear(_) | Op::MatMul(_) | Op::PermutedMatMul(_) => {
                other.push(node.name.clone())
            }
            _ => {}
        }
    }
    // The 3x3 and 1x1 convolutions; the QGemm with transA=1, alpha=0.5 → QLinear.
    assert_eq!((qconv, qlinear), (2, 1), "float layers {other:?}");
    assert!(other.is_empty(), "float layers {other:?}");
    // Only the graph's own QuantizeLinear/DequantizeLinear around the float Reshape remain.
    let notes = &built.source.float_notes;
    assert!(
        notes
            .iter()
            .all(|(n, _)| n.ends_with("QuantizeLinear/DequantizeLinear nodes")),
        "{notes:?}"
    );
}

/// `QEmbedLayerNormalization`'s embedding tables stay one byte per value: the built graph's
/// word-table `Gather` reads the uint8 table ORT's tool wrote (dequantized per gathered row),
/// and no f32 copy of it is left.
#[test]
fn q_embed_layer_norm_tables_stay_uint8() {
    let fx = fixture("contrib_ort_qbert_dynamic");
    let model = common::fixture_model("contrib_ort_qbert_dynamic");
    let graph = model.graph.as_ref().expect("graph");
    let node = graph
        .node
        .iter()
        .find(|n| n.op_type == "QEmbedLayerNormalization")
        .expect("a QEmbedLayerNormalization");
    let word = graph
        .initializer
        .iter()
        .find(|t| t.name == node.input[2])
        .expect("word table initializer");
    let shape: Vec<usize> = word.dims.iter().map(|&d| d as usize).collect();
    assert_eq!(
        tables_shaped(&fx, &shape),
        [("Gather", slm_aot::ir::DType::U8)],
        "constants shaped like the word table {shape:?}"
    );
}

/// `(reading op, dtype)` of every constant of `shape` in the fixture's built graph.
fn tables_shaped(fx: &common::Fixture, shape: &[usize]) -> Vec<(&'static str, slm_aot::ir::DType)> {
    let built = pipeline::compile(&fx.build_options()).expect("build");
    let g = &built.graph;
    let mut tables = Vec::new();
    for id in g.node_ids() {
        for &v in &g.node(id).inputs {
            if let Some(t) = g.constant(v)
                && t.ty.shape == shape
            {
                tables.push((g.node(id).op.name(), t.ty.dtype));
            }
        }
    }
    tables
}

/// QDQ embedding tables (`Gather(DequantizeLinear(uint8 table))`) stay uint8 too.
#[test]
fn qdq_embedding_tables_stay_uint8() {
    let fx = fixture("contrib_qdq_embedding");
    let u8 = slm_aot::ir::DType::U8;
    assert_eq!(tables_shaped(&fx, &[50, 16]), [("Gather", u8)]);
    // The position table, gathered at constant positions, folds to its six rows.
    assert!(tables_shaped(&fx, &[8, 16]).is_empty());
    let built = pipeline::compile(&fx.build_options()).expect("build");
    let (q, _, float) = census(&built.graph);
    assert_eq!(q, 1, "float {float:?}");
    let notes = &built.source.float_notes;
    assert!(
        !notes
            .iter()
            .any(|(_, why)| why.contains("dequantized to f32")),
        "{notes:?}"
    );
}

/// QOperator matmuls reading other quantized ops' outputs (QLinearAdd, QLinearMul) and a
/// float `Gemm(DQ(xq), DQ(W))` ORT leaves behind all become `QLinear`s.
#[test]
fn qoperator_matmuls_after_quantized_ops_stay_integer() {
    let fx = fixture("contrib_qoperator_chain");
    let built = pipeline::compile(&fx.build_options()).expect("build");
    let (q, _, float) = census(&built.graph);
    assert_eq!(q, 4, "float {float:?}");
    assert!(float.is_empty(), "float matmuls {float:?}");
    let notes = &built.source.float_notes;
    assert!(
        !notes.iter().any(|(_, why)| why.contains("not fused")),
        "{notes:?}"
    );
}
