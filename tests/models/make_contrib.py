"""Golden fixtures for ONNX Runtime's com.microsoft contrib ops (which ONNX's own node tests
do not cover): one small model per op, built with onnx.helper, run by ONNX Runtime (graph
optimisations off) to produce the references.

Run with the export venv (see README.md):  python tests/models/make_contrib.py
Each fixture folder contrib_<op> gets model.onnx, inputs/*.npy, reference/*.npy, case.toml.
contrib_ort_optimized_bert is a whole tiny BERT (random weights, eager attention) exported by
torch and fused by ONNX Runtime's transformer optimizer (EmbedLayerNormalization, Attention,
SkipLayerNormalization, BiasGelu), as users bring such models.
"""
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
MS = "com.microsoft"


def save(name, nodes, inputs, outputs, initializers, feeds, description, atol=1e-5, numpy_ref=None):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)],
        producer_name="make_contrib.py",
    )
    model.ir_version = 8
    write_fixture(name, model, feeds, description, "onnx.helper (ONNX Runtime contrib op)", atol,
                  numpy_ref=numpy_ref)


def write_fixture(name, model, feeds, description, exporter, atol, dims=None, numpy_ref=None):
    """numpy_ref: for ops ONNX Runtime implements only on GPU, a numpy function of the feeds
    giving the outputs in order (the op's documented formula)."""
    folder = os.path.join(HERE, name)
    os.makedirs(os.path.join(folder, "inputs"), exist_ok=True)
    os.makedirs(os.path.join(folder, "reference"), exist_ok=True)
    path = os.path.join(folder, "model.onnx")
    onnx.save(model, path)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    if numpy_ref is None:
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        outs, names = sess.run(None, feeds), [o.name for o in sess.get_outputs()]
    else:
        outs, names = numpy_ref(feeds), [o.name for o in model.graph.output]
    for k, v in feeds.items():
        np.save(os.path.join(folder, "inputs", k + ".npy"), v)
    for o, v in zip(names, outs):
        np.save(os.path.join(folder, "reference", o + ".npy"), v)
    with open(os.path.join(folder, "case.toml"), "w") as f:
        f.write(f'description = "{description}"\nexporter = "{exporter}"\natol = {atol}\n\n[dims]\n')
        for k, v in (dims or {}).items():
            f.write(f"{k} = {v}\n")


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

    bert_fusions(rng)
    ort_optimized_bert()
    ort_quantized_bert()
    qoperator_cnn()
    qoperator_pool_where()
    qgemm_forms()
    qoperator_chain()
    qdq_embedding()


def bert_fusions(rng):
    """Attention, MultiHeadAttention, EmbedLayerNormalization and the small fusions ONNX
    Runtime's transformer optimizer (and its graph optimizer) emit."""
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    F, I32 = TensorProto.FLOAT, TensorProto.INT32
    init = lambda **kw: [numpy_helper.from_array(v, k) for k, v in kw.items()]  # noqa: E731

    # Attention: batch 2, 5 tokens, hidden 16, 2 heads; lengths mask (right padding) as
    # EmbedLayerNormalization's mask_index gives it.
    b, s, h, nh = 2, 5, 16, 2
    x = f32(b, s, h)
    w, bias = f32(h, 3 * h) * 0.3, f32(3 * h) * 0.1
    save("contrib_attention",
         [helper.make_node("Attention", ["x", "w", "bias", "mask_index"], ["y"], domain=MS, num_heads=nh)],
         [vi("x", F, [b, s, h]), vi("mask_index", I32, [b])], [vi("y", F, [b, s, h])],
         init(w=w, bias=bias), {"x": x, "mask_index": np.array([5, 3], np.int32)},
         "com.microsoft Attention, packed QKV + bias, 1-D lengths mask (5 and 3 of 5 keys)", atol=1e-4)
    # GPT-2 style: unidirectional, raw 2-D mask over past + new keys, past/present, and
    # Q/K/V of different sizes is not allowed with past, so equal ones.
    past_len = 3
    past = f32(2, b, nh, past_len, h // nh)
    raw = np.ones((b, past_len + s), np.int32)
    raw[1, :2] = 0  # left padding of the second sequence
    save("contrib_attention_causal_past",
         [helper.make_node("Attention", ["x", "w", "bias", "mask", "past"], ["y", "present"], domain=MS,
                           num_heads=nh, unidirectional=1)],
         [vi("x", F, [b, s, h]), vi("mask", I32, [b, past_len + s]), vi("past", F, [2, b, nh, past_len, h // nh])],
         [vi("y", F, [b, s, h]), vi("present", F, [2, b, nh, past_len + s, h // nh])],
         init(w=w, bias=bias), {"x": x, "mask": raw, "past": past},
         "com.microsoft Attention, unidirectional, raw 2-D mask with left padding, past/present", atol=1e-4)
    # Different V size (qkv_hidden_sizes), no mask, custom scale. (ORT 1.31.1's CPU kernel
    # crashes on this without a bias.)
    wv = f32(h, h + h + 8) * 0.3
    save("contrib_attention_qkv_sizes",
         [helper.make_node("Attention", ["x", "w", "bv"], ["y"], domain=MS, num_heads=nh,
                           qkv_hidden_sizes=[h, h, 8], scale=0.2)],
         [vi("x", F, [b, s, h])], [vi("y", F, [b, s, 8])], init(w=wv, bv=f32(h + h + 8) * 0.1), {"x": x},
         "com.microsoft Attention, qkv_hidden_sizes [16, 16, 8], scale 0.2, no mask", atol=1e-4)

    # QAttention as ORT's dynamic quantizer writes it: DynamicQuantizeLinear of the input,
    # int8 weights (per-column scales in the second fixture), the same lengths mask.
    qrng = np.random.default_rng(13)  # its own stream: the fixtures below keep their data
    wq = qrng.integers(-127, 128, size=(h, 3 * h)).astype(np.int8)
    for per_column in (0, 1):
        ws = (qrng.random(3 * h) * 0.01 + 0.005).astype(np.float32) if per_column else np.array(0.01, np.float32)
        save(f"contrib_qattention{'_per_column' if per_column else ''}",
             [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xzp"]),
              helper.make_node("QAttention", ["xq", "wq", "bias", "xs", "ws", "mask_index", "xzp", "wzp"], ["y"],
                               domain=MS, num_heads=nh)],
             [vi("x", F, [b, s, h]), vi("mask_index", I32, [b])], [vi("y", F, [b, s, h])],
             init(wq=wq, bias=bias, ws=ws, wzp=np.zeros(ws.shape, np.int8)),
             {"x": x, "mask_index": np.array([5, 3], np.int32)},
             f"com.microsoft QAttention after DynamicQuantizeLinear, int8 weights, "
             f"{'per-column' if per_column else 'per-tensor'} scale, 1-D lengths mask", atol=1e-4)

    # MultiHeadAttention: cross attention over 7 keys, projection bias, key padding mask.
    kv = 7
    q, k, v, mbias = f32(b, s, h), f32(b, kv, h), f32(b, kv, h), f32(3 * h) * 0.1
    kpm = np.ones((b, kv), np.int32)
    kpm[0, 5:] = 0
    save("contrib_multi_head_attention",
         [helper.make_node("MultiHeadAttention", ["q", "k", "v", "bias", "kpm"], ["y"], domain=MS, num_heads=nh)],
         [vi("q", F, [b, s, h]), vi("k", F, [b, kv, h]), vi("v", F, [b, kv, h]), vi("kpm", I32, [b, kv])],
         [vi("y", F, [b, s, h])], init(bias=mbias), {"q": q, "k": k, "v": v, "kpm": kpm},
         "com.microsoft MultiHeadAttention, cross attention, bias, 2-D key padding mask", atol=1e-4)
    # Causal self attention with past_key/past_value and present outputs.
    pk, pv = f32(b, nh, past_len, h // nh), f32(b, nh, past_len, h // nh)
    tot = past_len + s
    save("contrib_multi_head_attention_past",
         [helper.make_node("MultiHeadAttention", ["q", "k2", "v2", "", "", "", "pk", "pv"], ["y", "present_k", "present_v"],
                           domain=MS, num_heads=nh, unidirectional=1)],
         [vi("q", F, [b, s, h]), vi("k2", F, [b, s, h]), vi("v2", F, [b, s, h]),
          vi("pk", F, [b, nh, past_len, h // nh]), vi("pv", F, [b, nh, past_len, h // nh])],
         [vi("y", F, [b, s, h]), vi("present_k", F, [b, nh, tot, h // nh]), vi("present_v", F, [b, nh, tot, h // nh])],
         [], {"q": q, "k2": f32(b, s, h), "v2": f32(b, s, h), "pk": pk, "pv": pv},
         "com.microsoft MultiHeadAttention, unidirectional, past_key/past_value and presents", atol=1e-4)

    # EmbedLayerNormalization with segments and a mask (mask_index counts the ones).
    vocab, maxpos = 20, 8
    ids = rng.integers(0, vocab, size=(b, s)).astype(np.int32)
    seg = np.array([[0, 0, 1, 1, 1], [0, 1, 1, 1, 1]], np.int32)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], np.int32)
    save("contrib_embed_layer_norm",
         [helper.make_node("EmbedLayerNormalization", ["ids", "seg", "word", "pos", "segt", "gamma", "beta", "mask"],
                           ["y", "mask_index", "sum"], domain=MS, epsilon=1e-5)],
         [vi("ids", I32, [b, s]), vi("seg", I32, [b, s]), vi("mask", I32, [b, s])],
         [vi("y", F, [b, s, h]), vi("mask_index", I32, [b]), vi("sum", F, [b, s, h])],
         init(word=f32(vocab, h), pos=f32(maxpos, h), segt=f32(2, h), gamma=f32(h), beta=f32(h)),
         {"ids": ids, "seg": seg, "mask": mask},
         "com.microsoft EmbedLayerNormalization, segments, mask index and embedding sum outputs", atol=1e-4)

    # FusedMatMul as ORT's MatMulScaleFusion / MatmulTransposeFusion write it.
    a4, b4 = f32(2, 3, 4, 8), f32(2, 3, 6, 8)
    save("contrib_fused_matmul",
         [helper.make_node("FusedMatMul", ["a", "b"], ["y"], domain=MS, transB=1, alpha=0.125),
          helper.make_node("FusedMatMul", ["at", "b2"], ["y2"], domain=MS, transA=1, alpha=2.0)],
         [vi("a", F, [2, 3, 4, 8]), vi("b", F, [2, 3, 6, 8]), vi("at", F, [8, 4])],
         [vi("y", F, [2, 3, 4, 6]), vi("y2", F, [4, 5])], init(b2=f32(8, 5)),
         {"a": a4, "b": b4, "at": f32(8, 4)}, "com.microsoft FusedMatMul, transB with alpha, transA with alpha", atol=1e-4)

    xg = f32(2, 3, 8)
    save("contrib_gelu", [helper.make_node("Gelu", ["x"], ["y"], domain=MS)],
         [vi("x", F, [2, 3, 8])], [vi("y", F, [2, 3, 8])], [], {"x": xg}, "com.microsoft Gelu (exact)")
    bias8 = f32(8)
    save("contrib_bias_add", [helper.make_node("BiasAdd", ["x", "bias", "skip"], ["y"], domain=MS)],
         [vi("x", F, [2, 3, 8]), vi("skip", F, [2, 3, 8])], [vi("y", F, [2, 3, 8])], init(bias=bias8),
         {"x": xg, "skip": f32(2, 3, 8)}, "com.microsoft BiasAdd (ORT has no CPU kernel: numpy reference)",
         numpy_ref=lambda f: [f["x"] + bias8 + f["skip"]])
    # ORT's BiasSoftmaxFusion makes it from Add(scores, mask) + Softmax, so the bias
    # broadcasts as numpy does: inner (a 1 between batch and the softmax axis) or outer.
    scores, sm_inner, sm_outer = f32(2, 2, 4, 6), f32(2, 1, 4, 6), f32(4, 6)

    def softmax(z):
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    save("contrib_bias_softmax",
         [helper.make_node("BiasSoftmax", ["x", "inner"], ["y"], domain=MS, axis=3, is_inner_broadcast=1),
          helper.make_node("BiasSoftmax", ["x", "outer"], ["y2"], domain=MS, axis=3, is_inner_broadcast=0)],
         [vi("x", F, [2, 2, 4, 6])], [vi("y", F, [2, 2, 4, 6]), vi("y2", F, [2, 2, 4, 6])],
         init(inner=sm_inner, outer=sm_outer), {"x": scores},
         "com.microsoft BiasSoftmax, inner and outer broadcast of the bias (ORT has no CPU kernel: numpy reference)",
         numpy_ref=lambda f: [softmax(f["x"] + sm_inner), softmax(f["x"] + sm_outer)])


def ort_optimized_bert():
    model, feeds, dims, fused = optimized_bert()
    write_fixture("contrib_ort_optimized_bert", model, feeds,
                  f"tiny BERT (2 layers, hidden 32, 4 heads, eager attention) through ONNX Runtime's transformer "
                  f"optimizer, opt_level 1: {', '.join(fused)}; padded masks of 12 and 9 tokens",
                  "torchscript opset 14 + onnxruntime.transformers.optimizer", 1e-4, dims)


def ort_quantized_bert():
    """contrib_ort_optimized_bert through `onnxruntime.quantization.quantize_dynamic` (int8
    weights): Attention becomes QAttention, MatMuls DynamicQuantizeLinear → MatMulInteger;
    with EmbedLayerNormalization among the op types (the default) it becomes the uint8
    QEmbedLayerNormalization, without it stays float.

    Tolerance: both sides quantize the same activations with the same DynamicQuantizeLinear
    formula and multiply exactly in int32; what differs is float rounding in the scale
    products, the LayerNorm and softmax sums. A float difference that moves an activation
    across a rounding boundary of its uint8 grid changes that element by one step
    (range/255), so the outputs agree within a few steps of the activation grid times the
    weights, not 1e-6: atol 2e-3 on LayerNorm outputs of unit scale."""
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.registry import IntegerOpsRegistry

    model, feeds, dims, _ = optimized_bert()
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "bert.onnx")
        onnx.save(model, src)
        for name, op_types in [
            ("contrib_ort_qbert_dynamic", None),
            ("contrib_ort_qbert_dynamic_float_embed",
             [op for op in IntegerOpsRegistry if op != "EmbedLayerNormalization"]),
        ]:
            dst = os.path.join(tmp, name + ".onnx")
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8, op_types_to_quantize=op_types,
                             extra_options={"DefaultTensorType": TensorProto.FLOAT})
            q = onnx.load(dst)
            ms = sorted({n.op_type for n in q.graph.node if n.domain == MS})
            assert "QAttention" in ms, ms
            assert ("QEmbedLayerNormalization" in ms) == (op_types is None), ms
            write_fixture(name, q, feeds,
                          f"contrib_ort_optimized_bert through quantize_dynamic (QInt8 weights, "
                          f"op types {'default' if op_types is None else 'without EmbedLayerNormalization'}): "
                          f"{', '.join(ms)}",
                          "onnxruntime.transformers.optimizer + onnxruntime.quantization.quantize_dynamic",
                          2e-3, dims)
            if op_types is None:
                # What a user gets from an ORT session saving its optimized graph
                # (`optimized_model_filepath`, extended level): DynamicQuantizeMatMul fusions.
                saved = os.path.join(tmp, "ort_extended.onnx")
                opts = ort.SessionOptions()
                opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
                opts.optimized_model_filepath = saved
                ort.InferenceSession(dst, opts, providers=["CPUExecutionProvider"])
                q = onnx.load(saved)
                ms = sorted({n.op_type for n in q.graph.node if n.domain == MS})
                assert "DynamicQuantizeMatMul" in ms, ms
                write_fixture(name + "_ort_extended", q, feeds,
                              f"{name} as ONNX Runtime saves it after its extended graph optimizations: "
                              f"{', '.join(ms)}",
                              "onnxruntime.quantization.quantize_dynamic + InferenceSession "
                              "(ORT_ENABLE_EXTENDED, optimized_model_filepath)", 2e-3, dims)


def qoperator_cnn():
    """contrib_qoperator_cnn: a small CNN with the layers `quantize_static` (QOperator format,
    default op types) turns into com.microsoft ops: LeakyRelu, a squeeze-excite block
    (GlobalAveragePool, 1x1 Conv, Sigmoid, Mul), a residual Add, Concat, a classifier Gemm and
    Softmax, plus a depthwise QLinearConv.

    Tolerance: ONNX Runtime computes these ops with its own fixed-point or lookup-table
    kernels (QLinearAdd/Mul rescale each operand by s_in/s_out before one rounding, Sigmoid
    and Softmax go through 256-entry tables) where we dequantize, compute in float and
    quantize once; both round half to even, but a value within float noise of a tie can land
    one step apart. The output is a softmax probability quantized in steps of 1/256: atol
    8e-3 allows two such steps (seen: 0)."""
    import tempfile

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    rng = np.random.default_rng(21)
    F = TensorProto.FLOAT
    w = lambda name, shape, scale: numpy_helper.from_array(  # noqa: E731
        (rng.standard_normal(shape) * scale).astype(np.float32), name)
    inits = [w("c1.w", (8, 3, 3, 3), 0.3), w("c1.b", (8,), 0.1), w("dw.w", (8, 1, 3, 3), 0.4),
             w("dw.b", (8,), 0.1), w("se.w", (8, 8, 1, 1), 0.4), w("se.b", (8,), 0.1),
             w("fc.w", (5, 16), 0.5), w("fc.b", (5,), 0.1)]
    nodes = [
        helper.make_node("Conv", ["x", "c1.w", "c1.b"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("LeakyRelu", ["c1"], ["a1"], alpha=0.1),
        helper.make_node("Conv", ["a1", "dw.w", "dw.b"], ["dw"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                         group=8),
        helper.make_node("GlobalAveragePool", ["a1"], ["pool1"]),
        helper.make_node("Conv", ["pool1", "se.w", "se.b"], ["se"], kernel_shape=[1, 1]),
        helper.make_node("Sigmoid", ["se"], ["gate"]),
        helper.make_node("Mul", ["a1", "gate"], ["excited"]),
        helper.make_node("Add", ["excited", "dw"], ["res"]),
        helper.make_node("Concat", ["res", "a1"], ["cat"], axis=1),
        helper.make_node("GlobalAveragePool", ["cat"], ["pool2"]),
        helper.make_node("Flatten", ["pool2"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["y"], axis=-1),
    ]
    graph = helper.make_graph(nodes, "qoperator_cnn", [vi("x", F, [1, 3, 12, 12])], [vi("y", F, [1, 5])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="make_contrib.py")
    model.ir_version = 8

    class Reader(CalibrationDataReader):
        def __init__(self):
            r = np.random.default_rng(22)
            self.it = iter([{"x": r.standard_normal((1, 3, 12, 12)).astype(np.float32)} for _ in range(8)])

        def get_next(self):
            return next(self.it, None)

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "cnn.onnx"), os.path.join(tmp, "cnn_q.onnx")
        onnx.save(model, src)
        quantize_static(src, dst, Reader(), quant_format=QuantFormat.QOperator, per_channel=False,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        q = onnx.load(dst)
    ms = sorted({n.op_type for n in q.graph.node if n.domain == MS})
    x = np.random.default_rng(23).standard_normal((1, 3, 12, 12)).astype(np.float32)
    write_fixture("contrib_qoperator_cnn", q, {"x": x},
                  f"small CNN through quantize_static (QOperator, uint8 activations, int8 weights): "
                  f"QLinearConv, {', '.join(ms)}",
                  "onnx.helper + onnxruntime.quantization.quantize_static", 8e-3)


def optimized_bert():
    """A 2-layer BERT with eager attention (the pattern ORT's optimizer fuses), exported by
    torch (TorchScript, opset 14) and optimised with
    `onnxruntime.transformers.optimizer --model_type bert --opt_level 1`."""
    import tempfile

    import torch
    from onnxruntime.transformers import optimizer
    from transformers import BertConfig, BertModel

    torch.manual_seed(5)
    cfg = BertConfig(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=64, type_vocab_size=2,
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, attn_implementation="eager")
    bert = BertModel(cfg, add_pooling_layer=False).eval()
    with torch.no_grad():  # LayerNorm weights off their 1/0 init, so each one is tested
        for name, p in bert.named_parameters():
            if "LayerNorm" in name:
                p.add_(torch.randn_like(p) * 0.2)

    class Wrapper(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids, return_dict=False)[0]

    rng = np.random.default_rng(12)
    batch, seq = 2, 16
    ids = rng.integers(0, 128, size=(batch, seq)).astype(np.int64)
    mask = np.ones((batch, seq), np.int64)
    mask[0, 12:] = 0
    mask[1, 9:] = 0
    types = np.zeros((batch, seq), np.int64)
    types[:, seq // 2:] = 1
    names = ["input_ids", "attention_mask", "token_type_ids"]
    dyn = {n: {0: "batch", 1: "sequence"} for n in names}
    dyn["last_hidden_state"] = {0: "batch", 1: "sequence"}
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "bert.onnx")
        torch.onnx.export(Wrapper(bert), tuple(torch.from_numpy(a) for a in (ids, mask, types)), raw,
                          dynamo=False, opset_version=14, input_names=names, output_names=["last_hidden_state"],
                          dynamic_axes=dyn, do_constant_folding=True)
        opt = optimizer.optimize_model(raw, model_type="bert", num_heads=4, hidden_size=32, opt_level=1)
        model = opt.model
    fused = sorted({n.op_type for n in model.graph.node if n.domain == MS})
    assert {"Attention", "EmbedLayerNormalization"} <= set(fused), fused
    return model, dict(zip(names, (ids, mask, types))), {"batch": batch, "sequence": seq}, fused


def quantize_float_graph(nodes, name, inputs, outputs, inits, feed, seed, **options):
    """`quantize_static(**options)` of a float opset-17 graph, calibrated on eight
    `feed(rng)` sets drawn from `seed`; returns the quantized model."""
    import tempfile

    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="make_contrib.py")
    model.ir_version = 8

    class Reader(CalibrationDataReader):
        def __init__(self):
            r = np.random.default_rng(seed)
            self.it = iter([feed(r) for _ in range(8)])

        def get_next(self):
            return next(self.it, None)

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "float.onnx"), os.path.join(tmp, "quantized.onnx")
        onnx.save(model, src)
        quantize_static(src, dst, Reader(), **options)
        return onnx.load(dst)


def qoperator_pool_where():
    """contrib_qoperator_pool_where: `quantize_static` (QOperator, ForceQuantizeNoInputCheck so
    Where is quantized) on a net whose AveragePool (stride 2, padded, ceil_mode),
    Where (a bool input choosing between two quantized branches) and classifier Gemm with
    transA=1 and alpha=0.5 become QLinearAveragePool, QLinearWhere and QGemm.

    Tolerance: as contrib_qoperator_cnn (ORT's table/fixed-point kernels against our float
    dequantize → op → quantize; one output step of the final QGemm, scale ≈ range/255)."""
    from onnxruntime.quantization import QuantFormat, QuantType

    rng = np.random.default_rng(31)
    F = TensorProto.FLOAT
    w = lambda name, shape, scale: numpy_helper.from_array(  # noqa: E731
        (rng.standard_normal(shape) * scale).astype(np.float32), name)
    inits = [w("c1.w", (8, 3, 3, 3), 0.3), w("c1.b", (8,), 0.1), w("c2.w", (8, 8, 1, 1), 0.4),
             w("c2.b", (8,), 0.1), w("fc.w", (8, 4), 0.5), w("fc.b", (4,), 0.1),
             numpy_helper.from_array(np.array([8, 9], np.int64), "shape")]
    nodes = [
        helper.make_node("Conv", ["x", "c1.w", "c1.b"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("AveragePool", ["c1"], ["pool"], kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 0, 0], ceil_mode=1),
        helper.make_node("Conv", ["pool", "c2.w", "c2.b"], ["c2"], kernel_shape=[1, 1]),
        helper.make_node("Where", ["cond", "pool", "c2"], ["sel"]),
        helper.make_node("Reshape", ["sel", "shape"], ["rows"]),
        helper.make_node("Gemm", ["rows", "fc.w", "fc.b"], ["y"], transA=1, alpha=0.5),
    ]

    def feed(r):
        return {"x": r.standard_normal((1, 3, 6, 6)).astype(np.float32),
                "cond": r.random((1, 8, 3, 3)) < 0.5}

    # x [1, 3, 6, 6] → pool [1, 8, 3, 3] (ceil) → rows [8, 9] → y = 0.5 · rowsᵀ · fc.w + fc.b.
    q = quantize_float_graph(nodes, "qoperator_pool_where",
                             [vi("x", F, [1, 3, 6, 6]), vi("cond", TensorProto.BOOL, [1, 8, 3, 3])],
                             [vi("y", F, [9, 4])], inits, feed, 32,
                             quant_format=QuantFormat.QOperator, per_channel=False,
                             activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                             extra_options={"ForceQuantizeNoInputCheck": True})
    ms = sorted({n.op_type for n in q.graph.node if n.domain == MS})
    assert {"QLinearAveragePool", "QLinearWhere", "QGemm"} <= set(ms), ms
    gemm = next(n for n in q.graph.node if n.op_type == "QGemm")
    attrs = {a.name: helper.get_attribute_value(a) for a in gemm.attribute}
    assert attrs.get("transA") == 1 and attrs.get("alpha") == 0.5, attrs
    write_fixture("contrib_qoperator_pool_where", q, feed(np.random.default_rng(33)),
                  f"quantize_static (QOperator): QLinearConv, {', '.join(ms)} "
                  f"(AveragePool stride 2 ceil_mode, Where on a bool input, Gemm transA=1 alpha=0.5)",
                  "onnx.helper + onnxruntime.quantization.quantize_static", 0.02)


def qgemm_forms():
    """contrib_qgemm_trans_a_alpha: hand-written QGemm nodes with transA=1 and alpha ≠ 1: a
    uint8 activation A [K, M] against a constant int8 B with int32 bias, requantized to uint8;
    and a constant uint8 A [K, M] (folded at build time) against an int8 activation B
    [K, N] with float output."""
    rng = np.random.default_rng(41)
    k, m, n = 16, 5, 6
    a = rng.integers(0, 256, size=(k, m)).astype(np.uint8)
    b = rng.integers(-127, 128, size=(k, n)).astype(np.int8)
    bias = rng.integers(-2000, 2000, size=(n,)).astype(np.int32)
    a_const = rng.integers(0, 256, size=(k, m)).astype(np.uint8)
    b_act = rng.integers(-127, 128, size=(k, n)).astype(np.int8)
    U8, I8 = TensorProto.UINT8, TensorProto.INT8
    init = [numpy_helper.from_array(v, nm) for v, nm in [
        (np.array(0.02, np.float32), "a_scale"), (np.array(131, np.uint8), "a_zp"),
        (b, "b"), (np.array(0.01, np.float32), "b_scale"), (np.array(0, np.int8), "b_zp"),
        (bias, "bias"), (np.array(0.15, np.float32), "y_scale"), (np.array(120, np.uint8), "y_zp"),
        (a_const, "a_const"), (np.array(0.03, np.float32), "b2_scale"), (np.array(-3, np.int8), "b2_zp")]]
    nodes = [
        helper.make_node("QGemm", ["a", "a_scale", "a_zp", "b", "b_scale", "b_zp", "bias", "y_scale", "y_zp"],
                         ["y"], domain=MS, transA=1, alpha=0.75),
        helper.make_node("QGemm", ["a_const", "a_scale", "a_zp", "b_act", "b2_scale", "b2_zp"],
                         ["y_float"], domain=MS, transA=1, alpha=-1.5),
    ]
    save("contrib_qgemm_trans_a_alpha", nodes, [vi("a", U8, [k, m]), vi("b_act", I8, [k, n])],
         [vi("y", U8, [m, n]), vi("y_float", TensorProto.FLOAT, [m, n])], init,
         {"a": a, "b_act": b_act},
         "QGemm transA=1: alpha 0.75 with int32 bias requantized to uint8 (constant int8 B), "
         "alpha -1.5 float output (constant uint8 A, int8 activation B with zero point)", atol=1e-3)


def qoperator_chain():
    """contrib_qoperator_chain: `quantize_static` (QOperator) on an MLP whose second and third
    matmuls read the outputs of other quantized ops (QLinearAdd, QLinearMul), not a
    QuantizeLinear — as in every QOperator transformer block — plus a Gemm with a computed
    bias, which ORT leaves as `Gemm(DQ(QLinearAdd output), DQ(W))`.

    Tolerance: exact integer products on both sides; the float epilogues differ in rounding
    order only (one output step of the last layer at most; seen: 9.5e-7)."""
    from onnxruntime.quantization import QuantFormat, QuantType

    rng = np.random.default_rng(51)
    F = TensorProto.FLOAT
    w = lambda name, shape, scale: numpy_helper.from_array(  # noqa: E731
        (rng.standard_normal(shape) * scale).astype(np.float32), name)
    inits = [w("w1", (16, 24), 0.3), w("b1", (24,), 0.1), w("w2", (24, 16), 0.3), w("g", (16,), 1.0),
             w("w3", (16, 8), 0.4), w("w4", (6, 8), 0.4), w("b4", (6,), 0.1)]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h1"]),
        helper.make_node("Add", ["h1", "b1"], ["a1"]),
        helper.make_node("MatMul", ["a1", "w2"], ["h2"]),
        helper.make_node("Add", ["h2", "x"], ["r"]),
        helper.make_node("Mul", ["r", "g"], ["m"]),
        helper.make_node("MatMul", ["m", "w3"], ["h3"]),
        helper.make_node("Add", ["h3", "x8"], ["a3"]),
        # A computed bias (GPT-2's tied LayerNorm bias via Identity): ORT cannot quantize
        # it, so it dequantizes this Gemm's inputs and leaves it float.
        helper.make_node("Identity", ["b4"], ["b4i"]),
        helper.make_node("Gemm", ["a3", "w4", "b4i"], ["y"], transB=1),
    ]

    def feed(r):
        return {"x": r.standard_normal((4, 16)).astype(np.float32),
                "x8": r.standard_normal((4, 8)).astype(np.float32)}

    q = quantize_float_graph(nodes, "qoperator_chain", [vi("x", F, [4, 16]), vi("x8", F, [4, 8])],
                             [vi("y", F, [4, 6])], inits, feed, 52,
                             quant_format=QuantFormat.QOperator, per_channel=True,
                             activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    producers = {o: n.op_type for n in q.graph.node for o in n.output}
    reads = [producers.get(n.input[0]) for n in q.graph.node if n.op_type in ("QLinearMatMul", "QGemm")]
    print("qoperator_chain:", [(n.op_type, producers.get(n.input[0])) for n in q.graph.node])
    assert any(p not in (None, "QuantizeLinear") for p in reads), reads
    gemm = next(n for n in q.graph.node if n.op_type == "Gemm")
    assert producers.get(gemm.input[0]) == "DequantizeLinear", producers.get(gemm.input[0])
    ms = sorted({n.op_type for n in q.graph.node})
    write_fixture("contrib_qoperator_chain", q, feed(np.random.default_rng(53)),
                  f"quantize_static (QOperator, per channel) MLP whose matmuls read other quantized "
                  f"ops' outputs: {', '.join(ms)}",
                  "onnx.helper + onnxruntime.quantization.quantize_static", 0.05)


def qdq_embedding():
    """contrib_qdq_embedding: `quantize_static` (QDQ) of token + position embeddings and a
    projection: each embedding `Gather` reads `DequantizeLinear(uint8 table)`, which is kept
    integer (rows dequantized after the gather) instead of an f32 table.

    Tolerance: the gathered rows are ORT's bit for bit; the projection is the exact integer
    product with float epilogues in a different order (seen: 0)."""
    from onnxruntime.quantization import QuantFormat, QuantType

    rng = np.random.default_rng(61)
    F, I64 = TensorProto.FLOAT, TensorProto.INT64
    inits = [numpy_helper.from_array(rng.standard_normal((50, 16)).astype(np.float32), "wte"),
             numpy_helper.from_array((rng.standard_normal((8, 16)) * 0.3).astype(np.float32), "wpe"),
             numpy_helper.from_array(np.arange(6, dtype=np.int64), "pos"),
             numpy_helper.from_array((rng.standard_normal((16, 12)) * 0.3).astype(np.float32), "w")]
    nodes = [
        helper.make_node("Gather", ["wte", "ids"], ["tok"]),
        helper.make_node("Gather", ["wpe", "pos"], ["p"]),
        helper.make_node("Add", ["tok", "p"], ["e"]),
        helper.make_node("MatMul", ["e", "w"], ["y"]),
    ]

    def feed(r):
        return {"ids": r.integers(0, 50, (2, 6)).astype(np.int64)}

    q = quantize_float_graph(nodes, "qdq_embedding", [vi("ids", I64, [2, 6])], [vi("y", F, [2, 6, 12])], inits, feed, 62,
                             quant_format=QuantFormat.QDQ,
                             activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    producers = {o: n.op_type for n in q.graph.node for o in n.output}
    gathers = [producers.get(n.input[0]) for n in q.graph.node if n.op_type == "Gather"]
    assert gathers == ["DequantizeLinear"] * 2, gathers
    ms = sorted({n.op_type for n in q.graph.node})
    write_fixture("contrib_qdq_embedding", q, feed(np.random.default_rng(63)),
                  f"quantize_static (QDQ, int8 weights) token and position embeddings + projection: {', '.join(ms)}",
                  "onnx.helper + onnxruntime.quantization.quantize_static", 1e-4)


if __name__ == "__main__":
    import sys

    # `--only NAME…`: regenerate just these fixture functions (the torch-exported ones are
    # slow and not byte-stable across versions).
    if sys.argv[1:2] == ["--only"]:
        for fn in sys.argv[2:]:
            globals()[fn]()
    else:
        main()
