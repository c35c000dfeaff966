"""Golden fixtures for ONNX Runtime's com.microsoft contrib ops (which ONNX's own node tests
do not cover): one small model per op, built with onnx.helper, run by ONNX Runtime (graph
optimisations off) to produce the references.

Run with the export venv (see README.md):  python tests/models/make_contrib.py
Each fixture folder contrib_<op> gets model.onnx, inputs/*.npy, reference/*.npy, case.toml.
"""
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
MS = "com.microsoft"


def save(name, nodes, inputs, outputs, initializers, feeds, description, atol=1e-5):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)],
        producer_name="make_contrib.py",
    )
    model.ir_version = 8
    folder = os.path.join(HERE, name)
    os.makedirs(os.path.join(folder, "inputs"), exist_ok=True)
    os.makedirs(os.path.join(folder, "reference"), exist_ok=True)
    path = os.path.join(folder, "model.onnx")
    onnx.save(model, path)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    outs = sess.run(None, feeds)
    for k, v in feeds.items():
        np.save(os.path.join(folder, "inputs", k + ".npy"), v)
    for o, v in zip(sess.get_outputs(), outs):
        np.save(os.path.join(folder, "reference", o.name + ".npy"), v)
    with open(os.path.join(folder, "case.toml"), "w") as f:
        f.write(f'description = "{description}"\nexporter = "onnx.helper (ONNX Runtime contrib op)"\natol = {atol}\n\n[dims]\n')


def vi(name, dtype, shape):
    return helper.make_tensor_value_info(name, dtype, shape)


def main():
    rng = np.random.default_rng(11)
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    F = TensorProto.FLOAT

    x, bias = f32(2, 3, 8), f32(8)
    save("contrib_fast_gelu", [helper.make_node("FastGelu", ["x", "bias"], ["y"], domain=MS)],
         [vi("x", F, [2, 3, 8])], [vi("y", F, [2, 3, 8])], [numpy_helper.from_array(bias, "bias")],
         {"x": x}, "FastGelu with bias")
    save("contrib_bias_gelu", [helper.make_node("BiasGelu", ["x", "bias"], ["y"], domain=MS)],
         [vi("x", F, [2, 3, 8])], [vi("y", F, [2, 3, 8])], [numpy_helper.from_array(bias, "bias")],
         {"x": x}, "BiasGelu")
    save("contrib_quick_gelu", [helper.make_node("QuickGelu", ["x"], ["y"], domain=MS, alpha=1.702)],
         [vi("x", F, [2, 3, 8])], [vi("y", F, [2, 3, 8])], [], {"x": x}, "QuickGelu")

    skip, gamma, beta, sbias = f32(2, 3, 8), f32(8), f32(8), f32(8)
    init = [numpy_helper.from_array(a, n) for a, n in [(gamma, "gamma"), (beta, "beta"), (sbias, "sbias")]]
    save("contrib_skip_layer_norm",
         [helper.make_node("SkipLayerNormalization", ["x", "skip", "gamma", "beta", "sbias"], ["y", "", "", "sum"], domain=MS, epsilon=1e-5)],
         [vi("x", F, [2, 3, 8]), vi("skip", F, [2, 3, 8])], [vi("y", F, [2, 3, 8]), vi("sum", F, [2, 3, 8])], init,
         {"x": x, "skip": skip}, "SkipLayerNormalization with beta, bias and the sum output")
    save("contrib_skip_simplified_layer_norm",
         [helper.make_node("SkipSimplifiedLayerNormalization", ["x", "skip", "gamma", "sbias"], ["y", "", "", "sum"], domain=MS, epsilon=1e-5)],
         [vi("x", F, [2, 3, 8]), vi("skip", F, [2, 3, 8])], [vi("y", F, [2, 3, 8]), vi("sum", F, [2, 3, 8])],
         [numpy_helper.from_array(gamma, "gamma"), numpy_helper.from_array(sbias, "sbias")],
         {"x": x, "skip": skip}, "SkipSimplifiedLayerNormalization with bias and the sum output")
    save("contrib_simplified_layer_norm",
         [helper.make_node("SimplifiedLayerNormalization", ["x", "gamma"], ["y"], domain="", axis=-1, epsilon=1e-5)],
         [vi("x", F, [2, 3, 8])], [vi("y", F, [2, 3, 8])], [numpy_helper.from_array(gamma, "gamma")],
         {"x": x}, "SimplifiedLayerNormalization (RMSNorm; ORT registers it in the default domain)")

    # MatMulNBits: 4-bit weights [N=6, K=32], block 16, with packed zero points.
    k, n, block = 32, 6, 16
    blocks = k // block
    q = rng.integers(0, 16, size=(n, k)).astype(np.uint8)
    packed = (q[:, 0::2] | (q[:, 1::2] << 4)).reshape(n, blocks, block // 2)
    scales = (rng.random(n * blocks) * 0.1 + 0.01).astype(np.float32)
    zps = rng.integers(0, 16, size=(n, blocks)).astype(np.uint8)
    zp_packed = (zps[:, 0::2] | (zps[:, 1::2] << 4)).reshape(-1)
    a, nb_bias = f32(3, k), f32(n)
    save("contrib_matmul_nbits",
         [helper.make_node("MatMulNBits", ["a", "b", "scales", "zp", "", "bias"], ["y"], domain=MS, K=k, N=n, bits=4, block_size=block)],
         [vi("a", F, [3, k])], [vi("y", F, [3, n])],
         [numpy_helper.from_array(packed, "b"), numpy_helper.from_array(scales, "scales"),
          numpy_helper.from_array(zp_packed, "zp"), numpy_helper.from_array(nb_bias, "bias")],
         {"a": a}, "MatMulNBits, 4 bits, block 16, packed zero points, bias", atol=1e-4)

    b8 = rng.integers(-100, 100, size=(k, n)).astype(np.int8)
    b_scale = (rng.random(n) * 0.05 + 0.01).astype(np.float32)
    save("contrib_dynamic_quantize_matmul",
         [helper.make_node("DynamicQuantizeMatMul", ["a", "b", "b_scale", "", "bias"], ["y"], domain=MS)],
         [vi("a", F, [3, k])], [vi("y", F, [3, n])],
         [numpy_helper.from_array(b8, "b"), numpy_helper.from_array(b_scale, "b_scale"), numpy_helper.from_array(nb_bias, "bias")],
         {"a": a}, "DynamicQuantizeMatMul, int8 weights, per-column scale, bias", atol=1e-4)

    a8 = rng.integers(0, 255, size=(3, k)).astype(np.uint8)
    save("contrib_matmul_integer_to_float",
         [helper.make_node("MatMulIntegerToFloat", ["a", "b", "a_scale", "b_scale", "a_zp", "", "bias"], ["y"], domain=MS)],
         [vi("a", TensorProto.UINT8, [3, k])], [vi("y", F, [3, n])],
         [numpy_helper.from_array(b8, "b"), numpy_helper.from_array(np.array(0.02, np.float32), "a_scale"),
          numpy_helper.from_array(b_scale, "b_scale"), numpy_helper.from_array(np.array(128, np.uint8), "a_zp"),
          numpy_helper.from_array(nb_bias, "bias")],
         {"a": a8}, "MatMulIntegerToFloat, uint8 x int8 with zero point and bias", atol=1e-4)

    # RotaryEmbedding: [batch 2, seq 4, 2 heads x 8], position ids [2, 4], caches [16, 4].
    pos = np.array([[0, 1, 2, 3], [5, 6, 7, 8]], np.int64)
    theta = np.arange(16)[:, None] / (10000 ** (np.arange(4)[None, :] / 4))
    cos, sin = np.cos(theta).astype(np.float32), np.sin(theta).astype(np.float32)
    xr = f32(2, 4, 16)
    for inter in (0, 1):
        save(f"contrib_rotary_embedding{'_interleaved' if inter else ''}",
             [helper.make_node("RotaryEmbedding", ["x", "pos", "cos", "sin"], ["y"], domain=MS, interleaved=inter, num_heads=2)],
             [vi("x", F, [2, 4, 16]), vi("pos", TensorProto.INT64, [2, 4])], [vi("y", F, [2, 4, 16])],
             [numpy_helper.from_array(cos, "cos"), numpy_helper.from_array(sin, "sin")],
             {"x": xr, "pos": pos}, f"com.microsoft RotaryEmbedding, interleaved={inter}")

    # GroupQueryAttention: batch 1, 3 new tokens after 2 past ones, 4 query heads over 2 KV
    # heads of size 16; with and without rotary embedding.
    b, s_new, past, nh, kvh, hd = 1, 3, 2, 4, 2, 16
    total = past + s_new
    gq, gk, gv = f32(b, s_new, nh * hd), f32(b, s_new, kvh * hd), f32(b, s_new, kvh * hd)
    pk, pv = f32(b, kvh, past, hd), f32(b, kvh, past, hd)
    theta = np.arange(16)[:, None] / (10000 ** (np.arange(hd // 2)[None, :] / (hd // 2)))
    gcos, gsin = np.cos(theta).astype(np.float32), np.sin(theta).astype(np.float32)
    for rotary in (0, 1):
        inputs = ["q", "k", "v", "past_key", "past_value", "seqlens_k", "total_len"]
        init = [numpy_helper.from_array(np.array([total - 1], np.int32), "seqlens_k"),
                numpy_helper.from_array(np.array(total, np.int32), "total_len")]
        if rotary:
            inputs += ["cos", "sin"]
            init += [numpy_helper.from_array(gcos, "cos"), numpy_helper.from_array(gsin, "sin")]
        save(f"contrib_group_query_attention{'_rotary' if rotary else ''}",
             [helper.make_node("GroupQueryAttention", inputs, ["y", "present_key", "present_value"], domain=MS,
                               num_heads=nh, kv_num_heads=kvh, do_rotary=rotary)],
             [vi("q", F, [b, s_new, nh * hd]), vi("k", F, [b, s_new, kvh * hd]), vi("v", F, [b, s_new, kvh * hd]),
              vi("past_key", F, [b, kvh, past, hd]), vi("past_value", F, [b, kvh, past, hd])],
             [vi("y", F, [b, s_new, nh * hd]), vi("present_key", F, [b, kvh, total, hd]), vi("present_value", F, [b, kvh, total, hd])],
             init, {"q": gq, "k": gk, "v": gv, "past_key": pk, "past_value": pv},
             f"GroupQueryAttention, 4 heads over 2 KV heads, 2 past + 3 new tokens, do_rotary={rotary}", atol=1e-4)


if __name__ == "__main__":
    main()
