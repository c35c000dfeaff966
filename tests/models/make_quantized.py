"""Pre-quantized fixtures made by ONNX Runtime's own quantization tools from the committed
float fixtures (`tiny_bert_ts`, `tiny_llama_ts`), with ONNX Runtime's outputs as references.

    python3 -m venv /tmp/venv-q && /tmp/venv-q/bin/pip install onnx onnxruntime numpy
    /tmp/venv-q/bin/python tests/models/make_quantized.py

Writes, in the usual fixture layout (model.onnx, inputs/, reference/, case.toml):

  ort_dynamic_int8_bert     quantize_dynamic (QOperator: DynamicQuantizeLinear, MatMulInteger,
                            int8 weights per tensor)
  ort_dynamic_uint8_bert    quantize_dynamic with uint8 weights (asymmetric: not mapped to the
                            integer kernels, kept on the exact float/i32 lowering)
  ort_qdq_static_bert       quantize_static, QDQ, per-channel int8 weights, uint8 activations
  ort_qdq_static_s8_bert    quantize_static, QDQ, per-tensor int8 weights, int8 activations
  ort_qop_static_bert       quantize_static, QOperator (QLinearMatMul), uint8 activations
  ort_nbits_llama           MatMulNBitsQuantizer, 4 bits, block 16, asymmetric (zero points)
  ort_nbits_sym_llama       MatMulNBitsQuantizer, 4 bits, block 32, symmetric
  ort_conv_dynamic          a small conv net (below) through quantize_dynamic (ConvInteger)
  ort_conv_qdq_u8           quantize_static QDQ, per-channel int8 weights, uint8 activations
  ort_conv_qdq_s8           quantize_static QDQ, per-channel int8 weights, int8 activations
  ort_conv_qop              quantize_static QOperator (QLinearConv), per-channel, uint8

The conv net (`conv_net`, onnx.helper, seeded weights): Conv 3→8 3x3 stride 2 pad 1 + bias,
ReLU, depthwise Conv 8→8 3x3 pad 1 + bias, ReLU, pointwise Conv 8→12 + bias, Reshape to
1-D, Conv1d 12→6 kernel 3 dilation 2 stride 2 pads (2, 1) group 2 without bias.

and `tiny_bert_ts/calibration/`: the static quantizers' 8 calibration sets, which slm-aot's own
`[quantized.int8-static]` case of that fixture calibrates on (its `inputs/` stay held out).

`--bench-out DIR` also writes `DIR/model_int8.onnx`: quantize_dynamic of
`--bench-model` (default: the real paraphrase-MiniLM-L3-v2 under ../shared/models), the
ONNX Runtime int8 model `slm-aot bench --ort-model` compares against.

References run ONNX Runtime with graph optimisations off and one thread (as the other
fixtures), so its quantized ops run as the ONNX operators define them. Calibration for the
static models uses 8 random input sets drawn like the fixture's own inputs, seeded.
"""
import argparse
import os
import shutil
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

HERE = os.path.dirname(os.path.abspath(__file__))


def load_inputs(folder):
    d = os.path.join(folder, "inputs")
    return {f[:-4]: np.load(os.path.join(d, f)) for f in sorted(os.listdir(d))}


class RandomReader(CalibrationDataReader):
    """Input sets shaped like `like`: token ids drawn below the vocab, masks/types copied."""

    def __init__(self, like, vocab, count, seed):
        rng = np.random.default_rng(seed)
        self.sets = []
        for _ in range(count):
            s = dict(like)
            s["input_ids"] = rng.integers(0, vocab, size=like["input_ids"].shape).astype(np.int64)
            self.sets.append(s)
        self.it = iter(self.sets)

    def get_next(self):
        return next(self.it, None)


def write_calibration(folder, sets):
    """`folder/calibration/set_<i>/<input>.npy`: the sets the static quantizers calibrate on,
    for slm-aot's own `--quantize int8-static --calibration` (held out from `inputs/`)."""
    root = os.path.join(folder, "calibration")
    shutil.rmtree(root, ignore_errors=True)
    for i, s in enumerate(sets):
        os.makedirs(os.path.join(root, f"set_{i}"))
        for name, value in s.items():
            np.save(os.path.join(root, f"set_{i}", name + ".npy"), value)


def reference(path, feeds):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return [(o.name, v) for o, v in zip(sess.get_outputs(), sess.run(None, feeds))]


def op_types(path):
    m = onnx.load(path)
    return sorted({(n.domain + "." if n.domain else "") + n.op_type for n in m.graph.node})


def conv_net(path):
    """The float conv net of the ort_conv_* fixtures; returns its input feeds."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(11)

    def init(name, shape, scale):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    inits = [
        init("c1.w", (8, 3, 3, 3), 0.3), init("c1.b", (8,), 0.1),
        init("dw.w", (8, 1, 3, 3), 0.4), init("dw.b", (8,), 0.1),
        init("pw.w", (12, 8, 1, 1), 0.4), init("pw.b", (12,), 0.1),
        init("c4.w", (6, 6, 3), 0.3),
        numpy_helper.from_array(np.array([1, 12, -1], dtype=np.int64), "flat"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "c1.w", "c1.b"], ["c1"], kernel_shape=[3, 3],
                         strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "dw.w", "dw.b"], ["dw"], kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], group=8),
        helper.make_node("Relu", ["dw"], ["r2"]),
        helper.make_node("Conv", ["r2", "pw.w", "pw.b"], ["pw"], kernel_shape=[1, 1]),
        helper.make_node("Reshape", ["pw", "flat"], ["seq"]),
        helper.make_node("Conv", ["seq", "c4.w"], ["y"], kernel_shape=[3], dilations=[2],
                         strides=[2], pads=[2, 1], group=2),
    ]
    graph = helper.make_graph(
        nodes, "conv_net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 12, 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, 18])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return {"x": rng.standard_normal((1, 3, 12, 12)).astype(np.float32)}


class ConvReader(CalibrationDataReader):
    """8 seeded standard-normal inputs for the conv net."""

    def __init__(self, seed):
        rng = np.random.default_rng(seed)
        self.it = iter([{"x": rng.standard_normal((1, 3, 12, 12)).astype(np.float32)}
                        for _ in range(8)])

    def get_next(self):
        return next(self.it, None)


def save(name, model_path, source, description, atol, why, feeds=None):
    folder = os.path.join(HERE, name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(os.path.join(folder, "inputs"))
    os.makedirs(os.path.join(folder, "reference"))
    m = onnx.load(model_path)
    # Deterministic bytes: the quantizers stamp nothing time-dependent, but make sure.
    m.producer_name = "make_quantized.py (onnxruntime.quantization)"
    m.producer_version = ort.__version__
    onnx.save(m, os.path.join(folder, "model.onnx"))
    if feeds is None:
        feeds = load_inputs(os.path.join(HERE, source))
        with open(os.path.join(HERE, source, "case.toml")) as f:
            dims = f.read().split("[dims]", 1)[1]
    else:
        dims = "\n"
    for k, v in feeds.items():
        np.save(os.path.join(folder, "inputs", k + ".npy"), v)
    for out, v in reference(os.path.join(folder, "model.onnx"), feeds):
        np.save(os.path.join(folder, "reference", out.replace("/", "_") + ".npy"), v)
    with open(os.path.join(folder, "case.toml"), "w") as f:
        f.write(f'description = "{description}"\n')
        f.write(f'exporter = "onnxruntime {ort.__version__} quantization tools on {source}"\n')
        f.write(f"# {why}\n")
        f.write(f"atol = {atol}\n\n[dims]{dims}")
    print(f"{name}: {' '.join(op_types(os.path.join(folder, 'model.onnx')))}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conv-only", action="store_true", help="only the ort_conv_* fixtures")
    ap.add_argument("--float-conv-only", action="store_true", help="only conv_float")
    ap.add_argument("--bench-out", help="also write DIR/model_int8.onnx (quantize_dynamic)")
    ap.add_argument(
        "--bench-model",
        default=os.path.join(HERE, "../../../shared/models/paraphrase-MiniLM-L3-v2/paraphrase-MiniLM-L3-v2.onnx"),
    )
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    if args.float_conv_only:
        make_float_conv_fixture(tmp)
        shutil.rmtree(tmp)
        return
    bert = os.path.join(HERE, "tiny_bert_ts", "model.onnx")
    llama = os.path.join(HERE, "tiny_llama_ts", "model.onnx")
    bert_inputs = load_inputs(os.path.join(HERE, "tiny_bert_ts"))
    write_calibration(os.path.join(HERE, "tiny_bert_ts"), RandomReader(bert_inputs, 128, 8, seed=5).sets)

    if not args.conv_only:
        make_transformer_fixtures(tmp, bert, llama, bert_inputs)
    make_conv_fixtures(tmp)
    if args.bench_out:
        os.makedirs(args.bench_out, exist_ok=True)
        out = os.path.join(args.bench_out, "model_int8.onnx")
        quantize_dynamic(args.bench_model, out, weight_type=QuantType.QInt8)
        print(f"wrote {out}: {' '.join(op_types(out))}")
    shutil.rmtree(tmp)


def make_transformer_fixtures(tmp, bert, llama, bert_inputs):
    out = os.path.join(tmp, "dyn.onnx")
    quantize_dynamic(bert, out, weight_type=QuantType.QInt8)
    save("ort_dynamic_int8_bert", out, "tiny_bert_ts",
         "tiny_bert_ts through onnxruntime quantize_dynamic (int8 weights per tensor, uint8 dynamic activations)",
         2e-4,
         "the same integer products as ORT; the float parts (LayerNorm, softmax, GELU) round "
         "differently, which can move an activation across a uint8 rounding boundary: one step "
         "is scale_x * |w| (about 1e-3 here) on one term, seen as < 1e-4 at the outputs")

    out = os.path.join(tmp, "dyn_u8.onnx")
    quantize_dynamic(bert, out, weight_type=QuantType.QUInt8)
    save("ort_dynamic_uint8_bert", out, "tiny_bert_ts",
         "tiny_bert_ts through onnxruntime quantize_dynamic with uint8 (asymmetric) weights",
         1e-4,
         "imported as the exact float/i32 lowering of the ONNX ops (uint8 weights with zero "
         "points have no integer kernel here), so only float summation order differs")

    static_cases = [
        ("ort_qdq_static_bert", QuantFormat.QDQ, True, QuantType.QUInt8,
         "quantize_static QDQ, per-channel int8 weights, uint8 activations (MatMul/Gemm)"),
        ("ort_qdq_static_s8_bert", QuantFormat.QDQ, False, QuantType.QInt8,
         "quantize_static QDQ, per-tensor int8 weights, int8 activations (MatMul/Gemm)"),
        ("ort_qop_static_bert", QuantFormat.QOperator, False, QuantType.QUInt8,
         "quantize_static QOperator (QLinearMatMul), per-tensor int8 weights, uint8 activations"),
    ]
    for name, fmt, per_channel, act, desc in static_cases:
        out = os.path.join(tmp, name + ".onnx")
        quantize_static(
            bert, out, RandomReader(bert_inputs, 128, 8, seed=5), quant_format=fmt,
            op_types_to_quantize=["MatMul", "Gemm"], per_channel=per_channel,
            activation_type=act, weight_type=QuantType.QInt8,
        )
        save(name, out, "tiny_bert_ts", "tiny_bert_ts through onnxruntime " + desc, 2e-3,
             "static activation scales: a float difference of one ulp before a QuantizeLinear "
             "can flip one rounding, which moves that activation by one step (scale_x, up to "
             "about 0.02 here) and an output by scale_x * |w| before LayerNorm rescales it; "
             "seen as < 1e-3")

    for name, block, sym in [("ort_nbits_llama", 16, False), ("ort_nbits_sym_llama", 32, True)]:
        q = MatMulNBitsQuantizer(onnx.load(llama), block_size=block, is_symmetric=sym)
        q.process()
        out = os.path.join(tmp, name + ".onnx")
        q.model.save_model_to_file(out)
        save(name, out, "tiny_llama_ts",
             f"tiny_llama_ts through onnxruntime MatMulNBitsQuantizer (4 bits, block {block}, "
             f"{'symmetric' if sym else 'asymmetric: zero points'})",
             1e-4,
             "weight-only: the dequantized weights are exact in f32, so only the float "
             "summation order differs from ORT")



def make_float_conv_fixture(tmp):
    """conv_float: the float conv net with ORT's float reference, for our own --quantize int8
    (the quantize_conv pass) checked against it by `cargo test --test quantized`."""
    net = os.path.join(tmp, "conv_net.onnx")
    feeds = conv_net(net)
    folder = os.path.join(HERE, "conv_float")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(os.path.join(folder, "inputs"))
    os.makedirs(os.path.join(folder, "reference"))
    shutil.copy(net, os.path.join(folder, "model.onnx"))
    for k, v in feeds.items():
        np.save(os.path.join(folder, "inputs", k + ".npy"), v)
    for out, v in reference(net, feeds):
        np.save(os.path.join(folder, "reference", out + ".npy"), v)
    with open(os.path.join(folder, "case.toml"), "w") as f:
        f.write('description = "float conv net (2-D strided, depthwise, pointwise, 1-D dilated '
                'grouped Conv; the ort_conv_* fixtures\' source) with ONNX Runtime float references"\n')
        f.write(f'exporter = "onnx.helper (make_quantized.py), onnxruntime {ort.__version__}"\n')
        f.write("atol = 1e-5\n\n[dims]\n\n")
        f.write("# our --quantize int8: every Conv a QConv (int8 weights per output channel, "
                "uint8 activations per tensor at run time)\n")
        f.write("[quantized.int8]\nmin_cosine = 0.999\nmax_abs = 0.1\n")
    print(f"conv_float: {' '.join(op_types(os.path.join(folder, 'model.onnx')))}")


def make_conv_fixtures(tmp):
    make_float_conv_fixture(tmp)
    net = os.path.join(tmp, "conv_net.onnx")
    feeds = conv_net(net)
    out = os.path.join(tmp, "conv_dyn.onnx")
    quantize_dynamic(net, out, weight_type=QuantType.QInt8)
    save("ort_conv_dynamic", out, "conv_net", "conv net through onnxruntime quantize_dynamic "
         "(ConvInteger, int8 weights per tensor, uint8 dynamic activations)", 1e-5,
         "the quantizer reproduces DynamicQuantizeLinear exactly and the kernel computes "
         "float(exact int32 sum) * (x_scale * w_scale) + bias in ORT's order (Cast, Mul, Add), "
         "so outputs match bit for bit (seen: 0); the bound only allows float noise", feeds)
    conv_cases = [
        ("ort_conv_qdq_u8", QuantFormat.QDQ, QuantType.QUInt8, "QDQ, uint8 activations"),
        ("ort_conv_qdq_s8", QuantFormat.QDQ, QuantType.QInt8, "QDQ, int8 activations"),
        ("ort_conv_qop", QuantFormat.QOperator, QuantType.QUInt8,
         "QOperator (QLinearConv), uint8 activations"),
    ]
    for name, fmt, act, desc in conv_cases:
        out = os.path.join(tmp, name + ".onnx")
        quantize_static(net, out, ConvReader(3), quant_format=fmt, per_channel=True,
                        activation_type=act, weight_type=QuantType.QInt8)
        y_scale = next(float(numpy_helper.to_array(t)) for t in onnx.load(out).graph.initializer
                       if t.name == "y_scale")
        if fmt == QuantFormat.QOperator:
            atol, why = 1e-6, ("QLinearConv requantizes the exact int32 sum with ORT's own "
                               "multiplier and rounding (half to even), so every uint8 matches "
                               "and only the final DequantizeLinear is float")
        else:
            atol, why = round(1.01 * y_scale, 6), (
                "ORT runs the QDQ graph as float Conv of dequantized operands, then "
                "QuantizeLinear; the kernel requantizes the exact integer sum with one "
                "multiplier x_scale*w_scale/y_scale, which can round a value within an ulp of "
                "a tie the other way; the output is DequantizeLinear(QuantizeLinear(y)), so "
                "that reaches it as one step of y_scale = "
                f"{y_scale:.3g} (seen: 0)")
        save(name, out, "conv_net", f"conv net through onnxruntime quantize_static {desc}, "
             "per-channel int8 weights", atol, why, feeds)


if __name__ == "__main__":
    main()
