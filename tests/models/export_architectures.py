#!/usr/bin/env python3
"""Export tiny random-weight models of many Hugging Face architectures as ONNX fixtures.

One fixture per architecture, `tests/models/arch_<model_type>[_dynamo]/`, in the format
of `export_fixtures.py` (model.onnx, inputs/, reference/ from ONNX Runtime, case.toml), so
`compiler/tests/models.rs` and `nostd.rs` pick them up. The point is breadth: every
decoder and encoder family a user is likely to bring (rotary variants, partial rotary,
ALiBi, GQA/MQA, parallel attention, q/k norms, soft-capping, GeGLU, disentangled
attention, ...) as the exporter writes it, at a size that keeps the test suite fast.

All are exported with the TorchScript exporter (opset 17, `batch`/`sequence` dynamic
axes); a few with the torch.export exporter too (static shapes), whose graphs decompose
differently. Models are built from config objects with fixed seeds (no network).
Decoders get an all-ones attention mask, encoders two padded positions.

Usage (from the repository root, in a venv with torch, transformers, onnx, onnxruntime):

    python tests/models/export_architectures.py            # all
    python tests/models/export_architectures.py qwen2 phi  # some
"""

from __future__ import annotations

import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import transformers
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

HERE = Path(__file__).resolve().parent
SEQUENCE = 8
warnings.filterwarnings("ignore")

COMMON = dict(
    vocab_size=128,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=64,
)

# model_type -> (config overrides, what the family exercises)
DECODERS = {
    "qwen2": (dict(num_key_value_heads=2), "GQA, q/k/v biases"),
    "qwen3": (dict(num_key_value_heads=2, head_dim=8), "GQA, RMSNorm on q and k"),
    "mistral": (dict(num_key_value_heads=2, sliding_window=None), "GQA"),
    "phi": (dict(partial_rotary_factor=0.5), "partial rotary, parallel attention/MLP, gelu_new"),
    "phi3": (dict(num_key_value_heads=2, pad_token_id=0), "fused qkv and gate_up projections"),
    "gemma": (dict(num_key_value_heads=1, head_dim=8), "MQA, (1 + w) RMSNorm, embedding scale, GeGLU tanh"),
    "gemma2": (dict(num_key_value_heads=2, head_dim=8), "logit soft-capping, pre/post norms"),
    "gpt_neox": (dict(rotary_pct=0.25), "partial rotary, parallel residual"),
    "gptj": (dict(n_embd=32, n_layer=2, n_head=4, rotary_dim=4, n_positions=64), "interleaved rotary"),
    "opt": (dict(ffn_dim=64, word_embed_proj_dim=32), "ReLU MLP, learned positions with offset"),
    "falcon": ({}, "multi-query attention, parallel attention"),
    "bloom": (dict(n_head=4, n_layer=2), "ALiBi position bias"),
    "stablelm": (dict(num_key_value_heads=2), "LayerNorm, partial rotary"),
    "olmo": (dict(num_key_value_heads=2), "non-parametric LayerNorm"),
    "granite": (dict(num_key_value_heads=2), "embedding/residual/attention/logit multipliers"),
}
ENCODERS = {
    "distilbert": (dict(dim=32, n_layers=2, n_heads=4, hidden_dim=64), "no token types"),
    "roberta": (dict(pad_token_id=1), "position ids offset by the padding index"),
    "albert": (dict(embedding_size=16), "factorised embedding, shared layers"),
    "electra": (dict(embedding_size=16), "embedding projection"),
    "mpnet": ({}, "relative position bias"),
    "deberta-v2": (
        dict(relative_attention=True, position_biased_input=False, pos_att_type=["p2c", "c2p"]),
        "disentangled attention",
    ),
    "modernbert": (dict(global_attn_every_n_layers=1, pad_token_id=0), "rotary, GeGLU, no biases"),
}
DYNAMO_TOO = ["qwen2", "phi3", "gemma2", "modernbert"]


class Wrapper(torch.nn.Module):
    def __init__(self, model, causal: bool):
        super().__init__()
        self.model = model
        self.causal = causal

    def forward(self, input_ids, attention_mask):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
        return out.logits if self.causal else out.last_hidden_state


def build(model_type: str, overrides: dict, causal: bool) -> Wrapper:
    torch.manual_seed(0)
    cfg = AutoConfig.for_model(model_type, **{**COMMON, **overrides})
    if hasattr(cfg, "use_cache"):
        cfg.use_cache = False
    cfg._attn_implementation = "eager"
    auto = AutoModelForCausalLM if causal else AutoModel
    return Wrapper(auto.from_config(cfg), causal).eval()


def export(name: str, model_type: str, overrides: dict, what: str, causal: bool, dynamo: bool):
    model = build(model_type, overrides, causal)
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 120, (1, SEQUENCE), generator=generator)
    mask = torch.ones(1, SEQUENCE, dtype=torch.int64)
    if not causal:
        mask[0, -2:] = 0
    out = HERE / name
    shutil.rmtree(out, ignore_errors=True)
    (out / "inputs").mkdir(parents=True)
    (out / "reference").mkdir()
    kwargs = dict(
        input_names=["input_ids", "attention_mask"],
        output_names=["logits" if causal else "last_hidden_state"],
        external_data=False,
    )
    if dynamo:
        torch.onnx.export(model, (ids, mask), str(out / "model.onnx"), dynamo=True, **kwargs)
    else:
        axes = {0: "batch", 1: "sequence"}
        torch.onnx.export(
            model,
            (ids, mask),
            str(out / "model.onnx"),
            dynamo=False,
            opset_version=17,
            dynamic_axes={"input_ids": axes, "attention_mask": axes, kwargs["output_names"][0]: axes},
            **kwargs,
        )
    model.eval()
    np.save(out / "inputs" / "input_ids.npy", ids.numpy())
    np.save(out / "inputs" / "attention_mask.npy", mask.numpy())
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(out / "model.onnx"), options, providers=["CPUExecutionProvider"])
    (reference,) = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
    with torch.no_grad():
        expected = model(ids, mask).numpy()
    error = float(np.abs(expected - reference).max())
    if error > 1e-4:
        raise SystemExit(f"{name}: ONNX Runtime differs from torch by {error:.2e}")
    np.save(out / "reference" / f"{kwargs['output_names'][0]}.npy", reference)
    exporter = "dynamo" if dynamo else "torchscript"
    dims = "" if dynamo else f"\n[dims]\nbatch = 1\nsequence = {SEQUENCE}\n"
    (out / "case.toml").write_text(
        f'description = "transformers {model_type} ({what}), random weights: vocab 128, hidden 32, '
        f'2 layers, 4 heads; transformers {transformers.__version__}, torch {torch.__version__}"\n'
        f'exporter = "{exporter}"\natol = 1e-4\n{dims}'
    )
    print(f"{name}: torch vs ONNX Runtime {error:.1e}")


def main():
    only = set(sys.argv[1:])
    for family, causal in ((DECODERS, True), (ENCODERS, False)):
        for model_type, (overrides, what) in family.items():
            if only and model_type not in only:
                continue
            stem = "arch_" + model_type.replace("-", "_")
            export(stem, model_type, overrides, what, causal, dynamo=False)
            if model_type in DYNAMO_TOO:
                export(stem + "_dynamo", model_type, overrides, what, causal, dynamo=True)


if __name__ == "__main__":
    main()
