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


def layer_norm_opset16(prefix, x, gamma, beta, style):
    """LayerNorm as exported decomposed: torch <= opset 16 (`Pow`, `Div`, `Mul(gamma)`,
    `Add(beta)`) or a hand-written variant (`Mul(d, d)`, `Reciprocal`, no affine)."""
    p = lambda n: f"{prefix}/{n}"  # noqa: E731
    nodes = [
        helper.make_node("ReduceMean", [x], [p("mean")], name=p("ReduceMean"), axes=[-1], keepdims=1),
        helper.make_node("Sub", [x, p("mean")], [p("centred")], name=p("Sub")),
    ]
    if style == "torch":
        nodes += [
            helper.make_node("Pow", [p("centred"), "two"], [p("square")], name=p("Pow")),
            helper.make_node("ReduceMean", [p("square")], [p("var")], name=p("ReduceMean_1"), axes=[-1], keepdims=1),
            helper.make_node("Add", [p("var"), "eps"], [p("var_eps")], name=p("Add")),
            helper.make_node("Sqrt", [p("var_eps")], [p("std")], name=p("Sqrt")),
            helper.make_node("Div", [p("centred"), p("std")], [p("normed")], name=p("Div")),
            helper.make_node("Mul", [p("normed"), gamma], [p("scaled")], name=p("Mul")),
            helper.make_node("Add", [p("scaled"), beta], [p("out")], name=p("Add_1")),
        ]
    else:
        nodes += [
            helper.make_node("Mul", [p("centred"), p("centred")], [p("square")], name=p("Mul")),
            helper.make_node("ReduceMean", [p("square")], [p("var")], name=p("ReduceMean_1"), axes=[-1], keepdims=1),
            helper.make_node("Add", ["eps", p("var")], [p("var_eps")], name=p("Add")),
            helper.make_node("Sqrt", [p("var_eps")], [p("std")], name=p("Sqrt")),
            helper.make_node("Reciprocal", [p("std")], [p("inv")], name=p("Reciprocal")),
            helper.make_node("Mul", [p("inv"), p("centred")], [p("out")], name=p("Mul_1")),
        ]
    return nodes, p("out")


def layer_norm_decomposed():
    """A pre-norm MLP block at opset 16: decomposed LayerNorm, MatMul+bias, GPT-2's tanh
    GELU spelled out, MatMul+bias, residual add and scale, a second decomposed LayerNorm."""
    rng = np.random.default_rng(16)
    d, h = 32, 64
    consts = {
        "two": np.array(2.0, np.float32),
        "three": np.array(3.0, np.float32),
        "eps": np.array(1e-5, np.float32),
        "half": np.array(0.5, np.float32),
        "one": np.array(1.0, np.float32),
        "k": np.array(0.044715, np.float32),
        "s": np.array(np.sqrt(2.0 / np.pi), np.float32),
        "res_scale": np.array(0.75, np.float32),
        "gamma": (1.0 + 0.1 * rng.standard_normal(d)).astype(np.float32),
        "beta": (0.1 * rng.standard_normal(d)).astype(np.float32),
        "w1": (rng.standard_normal((d, h)) / np.sqrt(d)).astype(np.float32),
        "b1": (0.1 * rng.standard_normal(h)).astype(np.float32),
        "w2": (rng.standard_normal((h, d)) / np.sqrt(h)).astype(np.float32),
        "b2": (0.1 * rng.standard_normal(d)).astype(np.float32),
    }
    ln1, a = layer_norm_opset16("/ln_1", "x", "gamma", "beta", "torch")
    ln2, y = layer_norm_opset16("/ln_2", "res", None, None, "plain")
    nodes = ln1 + [
        helper.make_node("MatMul", [a, "w1"], ["fc"], name="/mlp/c_fc/MatMul"),
        helper.make_node("Add", ["fc", "b1"], ["fc_b"], name="/mlp/c_fc/Add"),
        helper.make_node("Mul", ["fc_b", "half"], ["g0"], name="/mlp/act/Mul"),
        helper.make_node("Pow", ["fc_b", "three"], ["g1"], name="/mlp/act/Pow"),
        helper.make_node("Mul", ["g1", "k"], ["g2"], name="/mlp/act/Mul_1"),
        helper.make_node("Add", ["fc_b", "g2"], ["g3"], name="/mlp/act/Add"),
        helper.make_node("Mul", ["g3", "s"], ["g4"], name="/mlp/act/Mul_2"),
        helper.make_node("Tanh", ["g4"], ["g5"], name="/mlp/act/Tanh"),
        helper.make_node("Add", ["g5", "one"], ["g6"], name="/mlp/act/Add_1"),
        helper.make_node("Mul", ["g0", "g6"], ["g7"], name="/mlp/act/Mul_3"),
        helper.make_node("MatMul", ["g7", "w2"], ["proj"], name="/mlp/c_proj/MatMul"),
        helper.make_node("Add", ["proj", "b2"], ["proj_b"], name="/mlp/c_proj/Add"),
        helper.make_node("Mul", ["proj_b", "res_scale"], ["proj_s"], name="/Mul"),
        helper.make_node("Add", ["x", "proj_s"], ["res"], name="/Add"),
    ] + ln2
    nodes.append(helper.make_node("Identity", [y], ["y"], name="/output"))
    graph = helper.make_graph(
        nodes,
        "layer_norm_decomposed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "sequence", d])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "sequence", d])],
        [numpy_helper.from_array(v, n) for n, v in consts.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)], producer_name="make_handmade.py")
    model.ir_version = 8
    x = rng.standard_normal((1, 12, d)).astype(np.float32)
    save_case(
        "layer_norm_decomposed_opset16",
        model,
        {"x": x},
        {"batch": 1, "sequence": 12},
        "opset 16 MLP block: LayerNorm decomposed as torch <= 16 exports it and as a plain "
        "Reciprocal variant, GPT-2 tanh GELU spelled out, scaled residual add",
    )


if __name__ == "__main__":
    tiny_mlp()
    layer_norm_decomposed()
