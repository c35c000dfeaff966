"""A random-weight ONNX model of about 100 MB, for measuring the compiler's peak memory.

An embedding table (Gather) then 23 blocks of MatMul + Add + Relu on 1024-wide rows:
104.9 MB of f32 weights, all in the .onnx file. The weights are seeded, so the file is the
same on every run.

    target/pyenv/bin/python bench/make_rss_model.py /tmp/rss/model.onnx
    /usr/bin/time -v target/release/slm-aot build /tmp/rss/model.onnx -o /tmp/rss/gen
"""
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

WIDTH, BLOCKS, VOCAB, SEQ = 1024, 23, 2048, 8


def main(out: Path) -> None:
    rng = np.random.default_rng(0)
    weights, nodes = [], []

    def weight(name: str, shape: tuple[int, ...]) -> str:
        data = (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32)
        weights.append(numpy_helper.from_array(data, name))
        return name

    nodes.append(helper.make_node("Gather", [weight("embed", (VOCAB, WIDTH)), "ids"], ["x0"], name="embed"))
    x = "x0"
    for i in range(BLOCKS):
        w, b = weight(f"w{i}", (WIDTH, WIDTH)), weight(f"b{i}", (WIDTH,))
        nodes += [
            helper.make_node("MatMul", [x, w], [f"mm{i}"], name=f"block{i}/matmul"),
            helper.make_node("Add", [f"mm{i}", b], [f"add{i}"], name=f"block{i}/add"),
            helper.make_node("Relu", [f"add{i}"], [f"x{i + 1}"], name=f"block{i}/relu"),
        ]
        x = f"x{i + 1}"
    nodes.append(helper.make_node("Identity", [x], ["y"], name="out"))
    graph = helper.make_graph(
        nodes,
        "rss_model",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, SEQ])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, SEQ, WIDTH])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, out)
    print(f"{out}: {out.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
