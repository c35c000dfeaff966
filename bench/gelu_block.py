#!/usr/bin/env python3
"""Write two timing models for the elementwise-chain fusion (not fixtures; no references):

    OUT/gelu.onnx  GPT-2's tanh GELU spelled out (Mul, Pow, Mul, Add, Mul, Tanh, Add, Mul)
                   on a [1, 128, 3072] input
    OUT/mlp.onnx   a GPT-2-small MLP block: MatMul 768x3072 + bias, that GELU,
                   MatMul 3072x768 + bias, residual add, on [1, 128, 768]

Usage: python bench/gelu_block.py OUT   (needs onnx and numpy), then
       slm-aot bench OUT/mlp.onnx --target x86-avx512 --vs ort
"""
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

S, D, H = 128, 768, 3072


def gelu(x, out):
    return [
        helper.make_node("Mul", [x, "half"], ["g0"]),
        helper.make_node("Pow", [x, "three"], ["g1"]),
        helper.make_node("Mul", ["g1", "k"], ["g2"]),
        helper.make_node("Add", [x, "g2"], ["g3"]),
        helper.make_node("Mul", ["g3", "s"], ["g4"]),
        helper.make_node("Tanh", ["g4"], ["g5"]),
        helper.make_node("Add", ["g5", "one"], ["g6"]),
        helper.make_node("Mul", ["g0", "g6"], [out]),
    ]


def save(nodes, inits, name, in_shape, path):
    f = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", f, in_shape)],
        [helper.make_tensor_value_info("y", f, in_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    consts = {"half": 0.5, "three": 3.0, "k": 0.044715, "s": np.sqrt(2 / np.pi), "one": 1.0}
    inits = [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in consts.items()]
    save(gelu("x", "y"), inits, "gelu", [1, S, H], out / "gelu.onnx")
    w1 = (rng.standard_normal((D, H)) / np.sqrt(D)).astype(np.float32)
    w2 = (rng.standard_normal((H, D)) / np.sqrt(H)).astype(np.float32)
    b1, b2 = np.zeros(H, np.float32), np.zeros(D, np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["fc"]),
             helper.make_node("Add", ["fc", "b1"], ["fcb"])] + gelu("fcb", "act") + [
        helper.make_node("MatMul", ["act", "w2"], ["p"]),
        helper.make_node("Add", ["p", "b2"], ["pb"]),
        helper.make_node("Add", ["x", "pb"], ["y"])]
    weights = [numpy_helper.from_array(a, n) for a, n in [(w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2")]]
    save(nodes, inits + weights, "mlp", [1, S, D], out / "mlp.onnx")


if __name__ == "__main__":
    main()
