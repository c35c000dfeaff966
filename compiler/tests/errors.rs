//! Bad input gets a clear error, a non-zero exit and never a panic: each case runs the
//! real `slm-aot` binary on a malformed or hostile model and checks the message.
mod common;

use onnx_protobuf::tensor_proto::DataLocation;
use onnx_protobuf::tensor_shape_proto::{Dimension, dimension};
use onnx_protobuf::type_proto::{Tensor as TensorTypeProto, Value};
use onnx_protobuf::{
    Message, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use std::path::{Path, PathBuf};
use std::process::Command;

fn value_info(name: &str, dims: &[Result<i64, &str>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| {
            let mut x = Dimension::new();
            x.value = Some(match d {
                Ok(v) => dimension::Value::DimValue(*v),
                Err(p) => dimension::Value::DimParam(p.to_string()),
            });
            x
        })
        .collect();
    let mut shape = TensorShapeProto::new();
    shape.dim = dim;
    let mut t = TensorTypeProto::new();
    t.elem_type = 1;
    t.shape = Some(shape).into();
    let mut ty = TypeProto::new();
    ty.value = Some(Value::TensorType(t));
    let mut v = ValueInfoProto::new();
    v.name = name.into();
    v.type_ = Some(ty).into();
    v
}

fn node(name: &str, op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    let mut n = NodeProto::new();
    n.name = name.into();
    n.op_type = op.into();
    n.input = inputs.iter().map(|s| s.to_string()).collect();
    n.output = outputs.iter().map(|s| s.to_string()).collect();
    n
}

fn tensor(name: &str, dims: &[i64], raw: Vec<u8>) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.dims = dims.to_vec();
    t.data_type = 1;
    t.raw_data = raw;
    t
}

fn model(
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: &[&str],
) -> ModelProto {
    let mut m = ModelProto::new();
    m.ir_version = 8;
    let mut opset = OperatorSetIdProto::new();
    opset.version = 17;
    m.opset_import = vec![opset];
    let g = m.graph.mut_or_insert_default();
    g.name = "g".into();
    g.node = nodes;
    g.initializer = inits;
    g.input = inputs;
    g.output = outputs.iter().map(|o| value_info(o, &[])).collect();
    m
}

fn write(dir: &Path, name: &str, m: &ModelProto) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, m.write_to_bytes().expect("encode")).expect("write");
    p
}

fn expect_error(model: &Path, extra: &[&str], expected: &[&str]) {
    common::expect_build_error(model, extra, expected);
}

fn dir() -> PathBuf {
    common::scratch("errors")
}

fn matmul_model(w_dims: &[i64], w_bytes: usize) -> ModelProto {
    model(
        vec![node("fc", "MatMul", &["x", "w"], &["y"])],
        vec![tensor("w", w_dims, vec![0u8; w_bytes])],
        vec![value_info("x", &[Ok(2), Ok(3)])],
        &["y"],
    )
}

#[test]
fn garbage_and_truncated_protobuf() {
    let d = dir();
    let garbage = d.join("garbage.onnx");
    std::fs::write(&garbage, b"\x0a\xff\xff\xff\xff\x0fnot a model at all").unwrap();
    expect_error(&garbage, &[], &["is not a valid ONNX protobuf"]);
    let real = std::fs::read(common::repo().join("tests/models/tiny_mlp/model.onnx")).unwrap();
    let truncated = d.join("truncated.onnx");
    std::fs::write(&truncated, &real[..real.len() / 2]).unwrap();
    expect_error(&truncated, &["--dim", "batch=2"], &["invalid model"]);
    expect_error(
        &d.join("does-not-exist.onnx"),
        &[],
        &["I/O error", "does-not-exist.onnx"],
    );
}

#[test]
fn unbound_symbolic_dim_names_itself() {
    let m = model(
        vec![node("r", "Relu", &["x"], &["y"])],
        vec![],
        vec![value_info("x", &[Err("sequence"), Ok(4)])],
        &["y"],
    );
    let p = write(&dir(), "unbound.onnx", &m);
    expect_error(&p, &[], &["`sequence`", "--dim sequence=N"]);
}

#[test]
fn all_unsupported_ops_are_listed_together() {
    let m = model(
        vec![
            node("a", "FancyOp", &["x"], &["t"]),
            node("b", "Loop", &["t"], &["y"]),
        ],
        vec![],
        vec![value_info("x", &[Ok(4)])],
        &["y"],
    );
    let p = write(&dir(), "unsupported.onnx", &m);
    expect_error(
        &p,
        &[],
        &[
            "2 op(s)",
            "node `a` (FancyOp, opset 17)",
            "node `b` (Loop, opset 17)",
        ],
    );
}

#[test]
fn missing_initializer_names_node_and_input() {
    let m = model(
        vec![node("fc", "MatMul", &["x", "w"], &["y"])],
        vec![],
        vec![value_info("x", &[Ok(2), Ok(3)])],
        &["y"],
    );
    let p = write(&dir(), "dangling.onnx", &m);
    expect_error(&p, &[], &["node `fc`", "input `w`"]);
}

#[test]
fn shape_mismatch_names_node_and_op() {
    let p = write(&dir(), "mismatch.onnx", &matmul_model(&[4, 5], 80));
    expect_error(
        &p,
        &[],
        &["node `fc` (MatMul, opset 17)", "inner dimensions differ"],
    );
}

#[test]
fn hostile_sizes_are_refused_before_allocation() {
    let d = dir();
    let p = write(&d, "overflow.onnx", &matmul_model(&[1 << 40, 1 << 40], 0));
    expect_error(&p, &[], &["initializer `w`", "overflows"]);
    let p = write(&d, "huge.onnx", &matmul_model(&[3, 1 << 33], 0));
    expect_error(
        &p,
        &[],
        &[
            "declare 103079215104 bytes of weights",
            "--max-weight-bytes",
        ],
    );
    let p = write(&d, "elements.onnx", &matmul_model(&[3, 1 << 33], 0));
    expect_error(
        &p,
        &["--max-weight-bytes", "1000000000000"],
        &["initializer `w`", "above the limit"],
    );
    let p = write(&d, "negative.onnx", &matmul_model(&[3, -5], 0));
    expect_error(&p, &[], &["initializer `w`", "negative dimension"]);
    let p = write(&d, "short_raw.onnx", &matmul_model(&[3, 4], 7));
    expect_error(
        &p,
        &[],
        &["initializer `w`", "raw data holds 7 bytes", "needs 48"],
    );
}

#[test]
fn cycles_and_duplicate_definitions() {
    let d = dir();
    let m = model(
        vec![
            node("a", "Relu", &["t2"], &["t1"]),
            node("b", "Relu", &["t1"], &["t2"]),
        ],
        vec![],
        vec![value_info("x", &[Ok(4)])],
        &["t2"],
    );
    expect_error(&write(&d, "cycle.onnx", &m), &[], &["cycle"]);
    let m = model(
        vec![
            node("a", "Relu", &["x"], &["y"]),
            node("b", "Relu", &["x"], &["y"]),
        ],
        vec![],
        vec![value_info("x", &[Ok(4)])],
        &["y"],
    );
    expect_error(
        &write(&d, "duplicate.onnx", &m),
        &[],
        &["`y` is defined more than once"],
    );
}

#[test]
fn external_data_cannot_escape_the_model_folder() {
    let d = dir().join("external");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(dir().join("secret.bin"), vec![0u8; 48]).unwrap();
    let with_location = |location: &str, offset: &str| {
        let mut w = tensor("w", &[3, 4], vec![]);
        w.data_location = DataLocation::EXTERNAL.into();
        for (k, v) in [("location", location), ("offset", offset), ("length", "48")] {
            let mut e = StringStringEntryProto::new();
            e.key = k.into();
            e.value = v.into();
            w.external_data.push(e);
        }
        model(
            vec![node("fc", "MatMul", &["x", "w"], &["y"])],
            vec![w],
            vec![value_info("x", &[Ok(2), Ok(3)])],
            &["y"],
        )
    };
    let p = write(&d, "escape.onnx", &with_location("../secret.bin", "0"));
    expect_error(
        &p,
        &[],
        &[
            "initializer `w`",
            "must be a relative path inside the model's folder",
        ],
    );
    let p = write(&d, "absolute.onnx", &with_location("/etc/passwd", "0"));
    expect_error(
        &p,
        &[],
        &["must be a relative path inside the model's folder"],
    );
    let link = d.join("link.bin");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(dir().join("secret.bin"), &link).unwrap();
    let p = write(&d, "symlink.onnx", &with_location("link.bin", "0"));
    expect_error(&p, &[], &["resolves outside the model's folder"]);
    std::fs::write(d.join("weights.bin"), vec![0u8; 48]).unwrap();
    let p = write(&d, "beyond.onnx", &with_location("weights.bin", "16"));
    expect_error(&p, &[], &["beyond the end"]);
    // The same model with an in-range offset builds: the checks do not reject honest files.
    let p = write(&d, "honest.onnx", &with_location("weights.bin", "0"));
    let ok = Command::new(env!("CARGO_BIN_EXE_slm-aot"))
        .arg("build")
        .arg(&p)
        .arg("-o")
        .arg(common::scratch("errors-honest"))
        .output()
        .expect("run");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

#[test]
fn deeply_nested_subgraphs_hit_the_decoder_depth_limit() {
    // If -> then_branch graph -> If -> ... 300 levels deep.
    let mut inner = model(
        vec![node("leaf", "Relu", &["x"], &["y"])],
        vec![],
        vec![value_info("x", &[Ok(1)])],
        &["y"],
    )
    .graph
    .take()
    .expect("graph");
    for level in 0..300 {
        let mut n = node(&format!("if{level}"), "If", &["c"], &["y"]);
        let mut attr = onnx_protobuf::AttributeProto::new();
        attr.name = "then_branch".into();
        attr.type_ = onnx_protobuf::attribute_proto::AttributeType::GRAPH.into();
        attr.g = Some(inner).into();
        n.attribute.push(attr);
        let mut g = onnx_protobuf::GraphProto::new();
        g.node.push(n);
        inner = g;
    }
    let mut m = model(vec![], vec![], vec![value_info("x", &[Ok(1)])], &["y"]);
    m.graph = Some(inner).into();
    let p = write(&dir(), "nested.onnx", &m);
    expect_error(&p, &[], &["is not a valid ONNX protobuf", "recursion"]);
}

#[test]
fn unsupported_and_mismatched_dtypes() {
    let d = dir();
    // `y = x + w` for an initializer `w` of two elements.
    let add_with = |w| {
        model(
            vec![node("add", "Add", &["x", "w"], &["y"])],
            vec![w],
            vec![value_info("x", &[Ok(2)])],
            &["y"],
        )
    };
    let mut w = tensor("w", &[2], vec![]);
    w.data_type = 8;
    w.string_data = vec![b"a".to_vec(), b"b".to_vec()];
    expect_error(
        &write(&d, "string.onnx", &add_with(w)),
        &[],
        &["initializer `w`", "string tensors are not supported"],
    );
    let mut w = tensor("w", &[2], vec![0; 8]);
    w.data_type = 99;
    expect_error(
        &write(&d, "dtype99.onnx", &add_with(w)),
        &[],
        &["initializer `w`", "unknown ONNX element type 99"],
    );
    let mut w = tensor("w", &[2], vec![0; 16]);
    w.data_type = 7;
    expect_error(
        &write(&d, "mixed.onnx", &add_with(w)),
        &[],
        &[
            "node `add` (Add, opset 17)",
            "operand types differ: f32 and i64",
        ],
    );
}

#[test]
fn zero_sized_dims_compile_or_fail_cleanly() {
    // A zero-length axis is legal ONNX: the model must build (and its arena is empty).
    let m = model(
        vec![node("relu", "Relu", &["x"], &["y"])],
        vec![],
        vec![value_info("x", &[Ok(0), Ok(4)])],
        &["y"],
    );
    let p = write(&dir(), "zero.onnx", &m);
    let out = common::scratch("errors-zero");
    let output = Command::new(env!("CARGO_BIN_EXE_slm-aot"))
        .arg("build")
        .arg(&p)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lib = std::fs::read_to_string(out.join("src/lib.rs")).unwrap();
    assert!(lib.contains("pub const X_LEN: usize = 0;"));
}
