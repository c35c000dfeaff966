//! Unsupported forms of ONNX Runtime's `com.microsoft` fusions (shared past/present buffers,
//! rotary inside Attention and QAttention, packed QKV, batch-axis transposes, a 4-D Megatron
//! mask): each is a variant of a committed `contrib_*` fixture, built with the real `slm-aot`
//! binary, and must fail with exit 1, no panic, and an error naming the node,
//! `com.microsoft.<op>`, the contrib opset and the attribute or input refused.
mod common;

use onnx_protobuf::{AttributeProto, ModelProto, NodeProto};
use std::path::PathBuf;

fn load(fixture: &str) -> ModelProto {
    common::fixture_model(fixture)
}

fn write(name: &str, m: &ModelProto) -> PathBuf {
    common::write_model("contrib-errors", name, m)
}

/// The first node, renamed so the error can be checked to name it.
fn first_node<'a>(m: &'a mut ModelProto, name: &str) -> &'a mut NodeProto {
    let node = m
        .graph
        .as_mut()
        .and_then(|g| g.node.first_mut())
        .expect("a node");
    node.name = name.into();
    node
}

fn int_attr(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i: value,
        type_: onnx_protobuf::attribute_proto::AttributeType::INT.into(),
        ..Default::default()
    }
}

#[test]
fn unsupported_attention_attributes_are_typed_errors() {
    for (fixture, attr) in [
        ("contrib_attention_causal_past", "past_present_share_buffer"),
        ("contrib_attention", "do_rotary"),
        ("contrib_fused_matmul", "transBatchB"),
    ] {
        let mut m = load(fixture);
        first_node(&mut m, "fused0")
            .attribute
            .push(int_attr(attr, 1));
        let p = write(&format!("{fixture}_{attr}.onnx"), &m);
        common::expect_build_error(
            &p,
            &[],
            &[
                "unsupported: node `fused0`",
                "(com.microsoft.",
                "opset 1)",
                &format!("`{attr}`=1"),
            ],
        );
    }
}

#[test]
fn packed_qkv_multi_head_attention_is_a_typed_error() {
    let mut m = load("contrib_multi_head_attention");
    let node = first_node(&mut m, "mha0");
    for slot in 1..3 {
        node.input[slot] = String::new();
    }
    let p = write("mha_packed.onnx", &m);
    common::expect_build_error(
        &p,
        &[],
        &[
            "node `mha0` (com.microsoft.MultiHeadAttention, opset 1)",
            "packed QKV",
        ],
    );
}

#[test]
fn a_four_d_attention_mask_is_a_typed_error() {
    // Megatron-style [batch, 1, max, max] masks: replace the lengths mask by such an input.
    let mut m = load("contrib_attention");
    let graph = m.graph.as_mut().expect("graph");
    let mask = graph
        .input
        .iter_mut()
        .find(|i| i.name == "mask_index")
        .expect("mask_index input");
    let shape = mask
        .type_
        .as_mut()
        .and_then(|t| t.mut_tensor_type().shape.as_mut())
        .expect("shape");
    let dim = shape.dim.first().cloned().expect("batch dim");
    let mut square = dim.clone();
    square.set_dim_value(5);
    let mut one = dim.clone();
    one.set_dim_value(1);
    shape.dim = vec![dim, one, square.clone(), square];
    first_node(&mut m, "attn4d");
    let p = write("attention_mask4d.onnx", &m);
    common::expect_build_error(
        &p,
        &[],
        &[
            "node `attn4d` (com.microsoft.Attention, opset 1)",
            "mask i32[2,1,5,5]",
        ],
    );
}

#[test]
fn unsupported_qattention_attributes_are_typed_errors() {
    // The integer path (QAttention after DynamicQuantizeLinear → QLinear) refuses what the
    // float one does, naming the QAttention node, not the absorbed DynamicQuantizeLinear.
    for attr in ["do_rotary", "past_present_share_buffer"] {
        let mut m = load("contrib_qattention");
        let node = m
            .graph
            .as_mut()
            .and_then(|g| g.node.iter_mut().find(|n| n.op_type == "QAttention"))
            .expect("a QAttention node");
        node.name = "qattn0".into();
        node.attribute.push(int_attr(attr, 1));
        let p = write(&format!("qattention_{attr}.onnx"), &m);
        common::expect_build_error(
            &p,
            &[],
            &[
                "unsupported: node `qattn0` (com.microsoft.QAttention, opset 1)",
                &format!("`{attr}`=1"),
            ],
        );
    }
}

/// The node of type `op_type` in a fixture, renamed so the error can be checked to name it.
fn node_of<'a>(m: &'a mut ModelProto, op_type: &str, name: &str) -> &'a mut NodeProto {
    let node = m
        .graph
        .as_mut()
        .and_then(|g| g.node.iter_mut().find(|n| n.op_type == op_type))
        .unwrap_or_else(|| panic!("a {op_type} node"));
    node.name = name.into();
    node
}

#[test]
fn unsupported_qoperator_pool_and_where_forms_are_typed_errors() {
    let mut m = load("contrib_qoperator_pool_where");
    node_of(&mut m, "QLinearAveragePool", "pool0")
        .attribute
        .push(int_attr("channels_last", 1));
    let p = write("qlinear_average_pool_nhwc.onnx", &m);
    common::expect_build_error(
        &p,
        &[],
        &[
            "unsupported: node `pool0` (com.microsoft.QLinearAveragePool, opset 1)",
            "`channels_last`=1",
        ],
    );

    // A per-channel output scale: ORT's QLinearWhere takes one scale per tensor.
    let mut m = load("contrib_qoperator_pool_where");
    let scales = onnx_protobuf::TensorProto {
        name: "z_scale_per_channel".into(),
        dims: vec![8, 1, 1],
        data_type: onnx_protobuf::tensor_proto::DataType::FLOAT as i32,
        float_data: vec![0.05; 8],
        ..Default::default()
    };
    m.graph.as_mut().expect("graph").initializer.push(scales);
    node_of(&mut m, "QLinearWhere", "where0").input[7] = "z_scale_per_channel".into();
    let p = write("qlinear_where_per_channel.onnx", &m);
    common::expect_build_error(
        &p,
        &[],
        &[
            "unsupported: node `where0` (com.microsoft.QLinearWhere, opset 1)",
            "8 values of output scale (only per-tensor quantization)",
        ],
    );
}
