"""Hand-built ONNX fixtures that need no torch: small graphs written with onnx.helper.

Run with the export venv (see README.md):  python tests/models/make_handmade.py
Each fixture folder gets model.onnx, inputs/*.npy, reference/*.npy (ONNX Runtime, all
graph optimisations off) and case.toml.
"""
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))


def save_case(name, model, inputs, dims, description):
    folder = os.path.join(HERE, name)
    os.makedirs(os.path.join(folder, "inputs"), exist_ok=True)
    os.makedirs(os.path.join(folder, "reference"), exist_ok=True)
    onnx.checker.check_model(model)
    path = os.path.join(folder, "model.onnx")
    onnx.save(model, path)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    outs = sess.run(None, inputs)
    for k, v in inputs.items():
        np.save(os.path.join(folder, "inputs", k.replace("/", "_") + ".npy"), v)
    for o, v in zip(sess.get_outputs(), outs):
        np.save(os.path.join(folder, "reference", o.name.replace("/", "_") + ".npy"), v)
    with open(os.path.join(folder, "case.toml"), "w") as f:
        f.write(f'description = "{description}"\nexporter = "onnx.helper"\natol = 1e-5\n\n[dims]\n')
        for k, v in dims.items():
            f.write(f"{k} = {v}\n")


def tiny_mlp():
    rng = np.random.default_rng(7)
    w1 = rng.standard_normal((8, 4)).astype(np.float32)
    b1 = rng.standard_normal((8,)).astype(np.float32)
    w2 = rng.standard_normal((8, 3)).astype(np.float32)
    b2 = rng.standard_normal((3,)).astype(np.float32)
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1),
        helper.make_node("Relu", ["h"], ["h_relu"], name="relu"),
        helper.make_node("MatMul", ["h_relu", "w2"], ["z"], name="fc2"),
        helper.make_node("Add", ["z", "b2"], ["logits"], name="fc2.bias"),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1),
        helper.make_node("Shape", ["probs"], ["probs_shape"], name="shape"),
        helper.make_node("Reshape", ["probs", "probs_shape"], ["y"], name="reshape"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(a, n) for a, n in [(w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2")]],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="make_handmade.py")
    model.ir_version = 8
    x = rng.standard_normal((2, 4)).astype(np.float32)
    save_case("tiny_mlp", model, {"x": x}, {"batch": 2}, "Gemm-ReLU-MatMul-Softmax MLP, for code snapshots")


if __name__ == "__main__":
    tiny_mlp()
