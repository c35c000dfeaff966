//! Hostile variants of the `ort_conv_*` fixtures (quantized convolutions): a group that does
//! not divide the channels, zero points of the wrong shape or dtype, uint8 weights. Each
//! builds with the real `slm-aot` binary and either fails with a typed error naming the node
//! and the reason (exit 1, no panic) or, where the model is still valid ONNX, builds on the
//! exact float/i32 lowering with a report note saying why the convolution is not integer.
mod common;

use onnx_protobuf::{ModelProto, TensorProto};
use std::path::PathBuf;

fn load(fixture: &str) -> ModelProto {
    common::fixture_model(fixture)
}

fn write(name: &str, m: &ModelProto) -> PathBuf {
    common::write_model("qconv-errors", name, m)
}

fn graph(m: &mut ModelProto) -> &mut onnx_protobuf::GraphProto {
    m.graph.as_mut().expect("graph")
}

fn initializer<'a>(m: &'a mut ModelProto, name: &str) -> &'a mut TensorProto {
    graph(m)
        .initializer
        .iter_mut()
        .find(|t| t.name == name)
        .expect("initializer")
}

/// Set attribute `group` of the first node of type `op` that has one (the depthwise one).
fn set_group(m: &mut ModelProto, op: &str, group: i64) {
    let attr = graph(m)
        .node
        .iter_mut()
        .filter(|n| n.op_type == op)
        .flat_map(|n| n.attribute.iter_mut())
        .find(|a| a.name == "group" && a.i > 1)
        .expect("group attribute");
    attr.i = group;
}

#[test]
fn group_not_dividing_the_channels_is_a_typed_error() {
    for (fixture, op) in [
        ("ort_conv_qop", "QLinearConv"),
        ("ort_conv_dynamic", "ConvInteger"),
        ("ort_conv_qdq_u8", "Conv"),
    ] {
        let mut m = load(fixture);
        // The depthwise convolution has 8 channels: 3 groups do not divide them.
        set_group(&mut m, op, 3);
        let p = write(&format!("{fixture}_group3.onnx"), &m);
        common::expect_build_error(&p, &[], &[op, "group 3 does not fit"]);
    }
}

#[test]
fn input_zero_point_of_the_wrong_dtype_is_a_typed_error() {
    // x is uint8 (QuantizeLinear with a uint8 zero point); QLinearConv's x_zero_point
    // becomes int8.
    let mut m = load("ort_conv_qop");
    let name = graph(&mut m)
        .node
        .iter()
        .find(|n| n.op_type == "QLinearConv")
        .and_then(|n| n.input.get(2).cloned())
        .expect("x_zero_point input");
    let mut zp = initializer(&mut m, &name).clone();
    zp.name = "x_zero_point_i8".into();
    zp.data_type = 3;
    graph(&mut m).initializer.push(zp);
    let node = graph(&mut m)
        .node
        .iter_mut()
        .find(|n| n.op_type == "QLinearConv")
        .expect("node");
    node.input[2] = "x_zero_point_i8".into();
    let p = write("qop_zero_point_i8.onnx", &m);
    common::expect_build_error(&p, &[], &["QLinearConv", "zero point says i8"]);
}

#[test]
fn weight_zero_point_of_the_wrong_shape_is_a_typed_error() {
    // Per-channel weight zero point [8] cut to [3]: not fused, and the float lowering
    // refuses the shape.
    let mut m = load("ort_conv_qdq_u8");
    let zp = initializer(&mut m, "c1.w_zero_point");
    zp.dims = vec![3];
    zp.raw_data.truncate(3);
    zp.int32_data.truncate(3);
    let p = write("qdq_weight_zp3.onnx", &m);
    common::expect_build_error(&p, &[], &["DequantizeLinear", "does not fit"]);
}

#[test]
fn uint8_weights_fall_back_with_a_note() {
    // uint8 weights (valid ONNX): the integer kernels take int8 only, so the convolution
    // keeps the exact float/i32 lowering and the build report says why.
    let mut m = load("ort_conv_qop");
    for name in ["c1.w_quantized", "c1.w_zero_point"] {
        let t = initializer(&mut m, name);
        t.data_type = 2;
        for b in t.raw_data.iter_mut() {
            *b ^= 0x80;
        }
    }
    let p = write("qop_u8_weights.onnx", &m);
    let fixture = common::fixtures()
        .into_iter()
        .find(|f| f.name == "ort_conv_qop")
        .expect("fixture");
    let mut opts = fixture.build_options();
    opts.model = p;
    let built = slm_aot::pipeline::compile(&opts).expect("build");
    let notes = &built.source.float_notes;
    assert!(
        notes
            .iter()
            .any(|(n, why)| n.starts_with("QLinearConv") && why.contains("only int8 weights")),
        "{notes:?}"
    );
}
