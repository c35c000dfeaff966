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


def reference(path, feeds):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return [(o.name, v) for o, v in zip(sess.get_outputs(), sess.run(None, feeds))]


def op_types(path):
    m = onnx.load(path)
    return sorted({(n.domain + "." if n.domain else "") + n.op_type for n in m.graph.node})


def save(name, model_path, source, description, atol, why):
    folder = os.path.join(HERE, name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(os.path.join(folder, "inputs"))
    os.makedirs(os.path.join(folder, "reference"))
    m = onnx.load(model_path)
    # Deterministic bytes: the quantizers stamp nothing time-dependent, but make sure.
    m.producer_name = "make_quantized.py (onnxruntime.quantization)"
    m.producer_version = ort.__version__
    onnx.save(m, os.path.join(folder, "model.onnx"))
    feeds = load_inputs(os.path.join(HERE, source))
    for k, v in feeds.items():
        np.save(os.path.join(folder, "inputs", k + ".npy"), v)
    for out, v in reference(os.path.join(folder, "model.onnx"), feeds):
        np.save(os.path.join(folder, "reference", out.replace("/", "_") + ".npy"), v)
    with open(os.path.join(HERE, source, "case.toml")) as f:
        dims = f.read().split("[dims]", 1)[1]
    with open(os.path.join(folder, "case.toml"), "w") as f:
        f.write(f'description = "{description}"\n')
        f.write(f'exporter = "onnxruntime {ort.__version__} quantization tools on {source}"\n')
        f.write(f"# {why}\n")
        f.write(f"atol = {atol}\n\n[dims]{dims}")
    print(f"{name}: {' '.join(op_types(os.path.join(folder, 'model.onnx')))}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench-out", help="also write DIR/model_int8.onnx (quantize_dynamic)")
    ap.add_argument(
        "--bench-model",
        default=os.path.join(HERE, "../../../shared/models/paraphrase-MiniLM-L3-v2/paraphrase-MiniLM-L3-v2.onnx"),
    )
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    bert = os.path.join(HERE, "tiny_bert_ts", "model.onnx")
    llama = os.path.join(HERE, "tiny_llama_ts", "model.onnx")
    bert_inputs = load_inputs(os.path.join(HERE, "tiny_bert_ts"))

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

    if args.bench_out:
        os.makedirs(args.bench_out, exist_ok=True)
        out = os.path.join(args.bench_out, "model_int8.onnx")
        quantize_dynamic(args.bench_model, out, weight_type=QuantType.QInt8)
        print(f"wrote {out}: {' '.join(op_types(out))}")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
