#!/usr/bin/env python3
"""Export random-weight Hugging Face models to ONNX test fixtures for slm-aot.

Every fixture is a folder:

    <name>/model.onnx              weights embedded (no external data)
    <name>/inputs/<input>.npy      one input set, named after the graph inputs
    <name>/reference/<output>.npy  ONNX Runtime outputs (CPU EP, ORT_DISABLE_ALL, 1 thread)
    <name>/case.toml               description, exporter, [dims], atol

Each model is exported twice: with the TorchScript exporter
(torch.onnx.export(..., dynamo=False), opset 17) and with the torch.export based
exporter (torch.onnx.export(..., dynamo=True), default opset).

Models are built from transformers *config objects* with random weights, with
fixed seeds, so the script needs no network and its reference outputs are
deterministic.

Usage (from the repository root):

    python tests/models/export_fixtures.py                        # small committed fixtures
    python tests/models/export_fixtures.py --minilm-out /tmp/slm-fixtures   # + MiniLM-sized ones
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort
import torch
import transformers
from transformers import (
    BertConfig,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
)

HERE = Path(__file__).resolve().parent
TORCHSCRIPT_OPSET = 17
ATOL = 1e-4

warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)


# --------------------------------------------------------------------------
# Wrappers: plain tensors in, tuple of tensors out.
# --------------------------------------------------------------------------


class BertWrapper(torch.nn.Module):
    def __init__(self, model: BertModel):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            return_dict=False,
        )
        return out[0], out[1]


class CausalLMWrapper(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        # attention_mask is passed (all ones) because without it transformers'
        # mask code runs its packed-sequence detection (torch.diff on
        # position_ids), which the TorchScript exporter cannot export.
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            use_cache=False,
            return_dict=False,
        )
        return (out[0],)


# --------------------------------------------------------------------------
# Model / input builders
# --------------------------------------------------------------------------


def bert_config(vocab, hidden, layers, heads, inter, max_pos) -> BertConfig:
    return BertConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=inter,
        max_position_embeddings=max_pos,
        type_vocab_size=2,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


def build_bert(cfg: BertConfig) -> torch.nn.Module:
    return BertWrapper(BertModel(cfg, add_pooling_layer=True))


def build_llama() -> torch.nn.Module:
    cfg = LlamaConfig(
        vocab_size=128,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        use_cache=False,
        attention_dropout=0.0,
    )
    return CausalLMWrapper(LlamaForCausalLM(cfg))


def build_gpt2() -> torch.nn.Module:
    cfg = GPT2Config(
        vocab_size=128,
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_positions=64,
        use_cache=False,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    return CausalLMWrapper(GPT2LMHeadModel(cfg))


def bert_inputs(rng: np.random.Generator, vocab: int, batch: int, seq: int, pad: int):
    input_ids = rng.integers(0, vocab, size=(batch, seq), dtype=np.int64)
    attention_mask = np.ones((batch, seq), dtype=np.int64)
    attention_mask[:, seq - pad :] = 0  # trailing padding
    token_type_ids = np.zeros((batch, seq), dtype=np.int64)
    token_type_ids[:, seq // 2 :] = 1  # two "segments"
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_type_ids": token_type_ids,
    }


def lm_inputs(rng: np.random.Generator, vocab: int, batch: int, seq: int):
    return {
        "input_ids": rng.integers(0, vocab, size=(batch, seq), dtype=np.int64),
        "attention_mask": np.ones((batch, seq), dtype=np.int64),
    }


# --------------------------------------------------------------------------
# Fixture specs
# --------------------------------------------------------------------------


@dataclass
class Spec:
    name: str  # base name; folder = f"{name}_{ts|dynamo}"
    description: str
    build: Callable[[], torch.nn.Module]
    make_inputs: Callable[[np.random.Generator, int, int], dict]  # (rng, batch, seq)
    output_names: list[str]
    batch: int
    seq: int
    seed: int
    # Symbolic dims per input: {input_name: {axis: dim_name}}
    dyn: dict = field(default_factory=dict)
    # Symbolic dims per output (TorchScript exporter only; the dynamo exporter infers them)
    out_dyn: dict = field(default_factory=dict)


BATCH_SEQ = {0: "batch", 1: "sequence"}


def small_specs() -> list[Spec]:
    bert_cfg = lambda: bert_config(128, 32, 2, 4, 64, 64)  # noqa: E731
    return [
        Spec(
            name="tiny_bert",
            description="transformers BertModel, random weights: vocab 128, hidden 32, 2 layers, "
            "4 heads, intermediate 64, max_position 64; attention_mask has 4 trailing zeros",
            build=lambda: build_bert(bert_cfg()),
            make_inputs=lambda rng, b, s: bert_inputs(rng, 128, b, s, pad=4),
            output_names=["last_hidden_state", "pooler_output"],
            batch=1,
            seq=16,
            seed=1001,
            dyn={k: BATCH_SEQ for k in ("input_ids", "attention_mask", "token_type_ids")},
            out_dyn={"last_hidden_state": BATCH_SEQ, "pooler_output": {0: "batch"}},
        ),
        Spec(
            name="tiny_llama",
            description="transformers LlamaForCausalLM, random weights: vocab 128, hidden 32, "
            "intermediate 64, 2 layers, 4 heads, 2 kv heads (GQA), rope_theta 10000, untied "
            "embeddings, use_cache False; attention_mask all ones",
            build=build_llama,
            make_inputs=lambda rng, b, s: lm_inputs(rng, 128, b, s),
            output_names=["logits"],
            batch=1,
            seq=16,
            seed=2002,
            dyn={"input_ids": BATCH_SEQ, "attention_mask": BATCH_SEQ},
            out_dyn={"logits": BATCH_SEQ},
        ),
        Spec(
            name="tiny_gpt2",
            description="transformers GPT2LMHeadModel, random weights: vocab 128, n_embd 32, "
            "n_layer 2, n_head 4, n_positions 64, use_cache False; attention_mask all ones",
            build=build_gpt2,
            make_inputs=lambda rng, b, s: lm_inputs(rng, 128, b, s),
            output_names=["logits"],
            batch=1,
            seq=16,
            seed=3003,
            dyn={"input_ids": BATCH_SEQ, "attention_mask": BATCH_SEQ},
            out_dyn={"logits": BATCH_SEQ},
        ),
    ]


def minilm_specs() -> list[Spec]:
    return [
        Spec(
            name="bert_minilm",
            description="transformers BertModel, random weights, all-MiniLM-L6 sized: vocab 30522, "
            "hidden 384, 6 layers, 12 heads, intermediate 1536, max_position 512; "
            "attention_mask has 16 trailing zeros",
            build=lambda: build_bert(bert_config(30522, 384, 6, 12, 1536, 512)),
            make_inputs=lambda rng, b, s: bert_inputs(rng, 30522, b, s, pad=16),
            output_names=["last_hidden_state", "pooler_output"],
            batch=1,
            seq=128,
            seed=4004,
            dyn={k: BATCH_SEQ for k in ("input_ids", "attention_mask", "token_type_ids")},
            out_dyn={"last_hidden_state": BATCH_SEQ, "pooler_output": {0: "batch"}},
        ),
    ]


# --------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------


def export_torchscript(model, inputs: dict, spec: Spec, path: Path) -> None:
    names = list(inputs)
    args = tuple(torch.from_numpy(inputs[n]) for n in names)
    dynamic_axes = {n: dict(spec.dyn[n]) for n in names if n in spec.dyn}
    # Name the output axes too (as optimum does); otherwise the TorchScript
    # exporter invents names like "MatMullogits_dim_0".
    dynamic_axes.update(spec.out_dyn)
    torch.onnx.export(
        model,
        args,
        str(path),
        dynamo=False,
        opset_version=TORCHSCRIPT_OPSET,
        input_names=names,
        output_names=spec.output_names,
        dynamic_axes=dynamic_axes,
        do_constant_folding=True,
    )


def export_dynamo(model, inputs: dict, spec: Spec, path: Path) -> None:
    names = list(inputs)
    # torch.export specialises dims whose example size is 0 or 1, so the example
    # inputs used for tracing have batch 2 (the fixture itself uses spec.batch).
    rng = np.random.default_rng(spec.seed + 7)
    example = spec.make_inputs(rng, max(2, spec.batch), spec.seq)
    args = tuple(torch.from_numpy(example[n]) for n in names)
    dynamic_shapes = {n: dict(spec.dyn.get(n, {})) for n in names}
    program = torch.onnx.export(
        model,
        args,
        dynamo=True,
        input_names=names,
        output_names=spec.output_names,
        dynamic_shapes=dynamic_shapes,
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp) / "model.onnx"
        program.save(str(tmp_path), external_data=False)
        # Load (pulling in any external data) and re-save fully embedded.
        proto = onnx.load(str(tmp_path), load_external_data=True)
    onnx.save(proto, str(path), save_as_external_data=False)


# --------------------------------------------------------------------------
# Reference + metadata
# --------------------------------------------------------------------------


def file_name(tensor_name: str) -> str:
    return tensor_name.replace("/", "_")


def ort_session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def graph_dims(model: onnx.ModelProto, feeds: dict) -> dict:
    """Bind every dim_param of the graph inputs to the size used in `feeds`."""
    dims: dict[str, int] = {}
    for vi in model.graph.input:
        shape = vi.type.tensor_type.shape
        for axis, d in enumerate(shape.dim):
            if d.HasField("dim_param") and d.dim_param:
                size = int(feeds[vi.name].shape[axis])
                if dims.setdefault(d.dim_param, size) != size:
                    raise ValueError(f"dim {d.dim_param!r} bound to two sizes")
    return dims


def op_types(model: onnx.ModelProto) -> list[str]:
    """Sorted op types of the model (incl. subgraphs and local functions); non-default domain as domain::Op."""
    ops: set[str] = set()

    def visit(graph: onnx.GraphProto) -> None:
        for node in graph.node:
            dom = node.domain
            ops.add(node.op_type if dom in ("", "ai.onnx") else f"{dom}::{node.op_type}")
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    visit(attr.g)
                for g in attr.graphs:
                    visit(g)

    visit(model.graph)
    for fn in model.functions:
        for node in fn.node:
            dom = node.domain
            ops.add(node.op_type if dom in ("", "ai.onnx") else f"{dom}::{node.op_type}")
    return sorted(ops)


def toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_case_toml(folder: Path, description: str, exporter: str, dims: dict) -> None:
    lines = [
        f"description = {toml_str(description)}",
        f"exporter = {toml_str(exporter)}",
        f"atol = {ATOL:.0e}".replace("e-0", "e-"),
        "",
        "[dims]",
    ]
    for k, v in dims.items():
        key = k if k.replace("_", "").replace("-", "").isalnum() else toml_str(k)
        lines.append(f"{key} = {v}")
    (folder / "case.toml").write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------


@dataclass
class Result:
    folder: str
    exporter: str
    ok: bool
    opset: int | None = None
    dims: dict | None = None
    ops: list[str] | None = None
    max_abs: float | None = None
    other_dims_max_abs: float | None = None
    error: str | None = None


def check_other_dims(spec: Spec, model, sess, in_names, out_names) -> float:
    batch, seq = spec.batch + 1, max(2, spec.seq // 2 + 1)
    other = spec.make_inputs(np.random.default_rng(spec.seed + 13), batch, seq)
    with torch.no_grad():
        t = model(*(torch.from_numpy(v) for v in other.values()))
    o = sess.run(out_names, {n: other[n] for n in in_names})
    d = max(float(np.max(np.abs(a.astype(np.float64) - b.detach().numpy().astype(np.float64))))
            for a, b in zip(o, t))
    print(f"  shape-polymorphism check at batch {batch}, sequence {seq}: max|ORT-torch| = {d:.3e}")
    if d > ATOL:
        raise RuntimeError(f"{spec.name}: graph is not correct at batch {batch}, sequence {seq} ({d})")
    return d


def make_fixture(spec: Spec, exporter: str, out_root: Path) -> Result:
    suffix = "ts" if exporter == "torchscript" else "dynamo"
    folder = out_root / f"{spec.name}_{suffix}"
    res = Result(folder=folder.name, exporter=exporter, ok=False)
    print(f"=== {folder.name} ({exporter})", flush=True)

    torch.manual_seed(spec.seed)
    model = spec.build().eval()
    inputs = spec.make_inputs(np.random.default_rng(spec.seed), spec.batch, spec.seq)

    with torch.no_grad():
        torch_out = model(*(torch.from_numpy(v) for v in inputs.values()))
    torch_out = [t.detach().numpy() for t in torch_out]

    if folder.exists():
        shutil.rmtree(folder)
    (folder / "inputs").mkdir(parents=True)
    (folder / "reference").mkdir()
    model_path = folder / "model.onnx"
    try:
        with torch.no_grad():
            if exporter == "torchscript":
                export_torchscript(model, inputs, spec, model_path)
            else:
                export_dynamo(model, inputs, spec, model_path)
    except Exception as e:  # record and skip
        traceback.print_exc()
        shutil.rmtree(folder)
        res.error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        return res

    proto = onnx.load(str(model_path))
    onnx.checker.check_model(proto, full_check=True)
    res.opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    res.ops = op_types(proto)
    in_names = [vi.name for vi in proto.graph.input]
    out_names = [vi.name for vi in proto.graph.output]
    missing = set(in_names) - set(inputs)
    if missing:
        raise RuntimeError(f"graph inputs without data: {missing}")
    feeds = {n: inputs[n] for n in in_names}
    if set(inputs) - set(in_names):
        print(f"  note: inputs dropped by exporter: {sorted(set(inputs) - set(in_names))}")
    res.dims = graph_dims(proto, feeds)

    sess = ort_session(model_path)
    ort_out = sess.run(out_names, feeds)

    for n, v in feeds.items():
        np.save(folder / "inputs" / f"{file_name(n)}.npy", v)
    for n, v in zip(out_names, ort_out):
        np.save(folder / "reference" / f"{file_name(n)}.npy", v)

    if len(ort_out) != len(torch_out):
        raise RuntimeError(f"{len(ort_out)} ONNX outputs vs {len(torch_out)} torch outputs")
    max_abs = 0.0
    for n, o, t in zip(out_names, ort_out, torch_out):
        if o.shape != t.shape:
            raise RuntimeError(f"output {n}: ORT shape {o.shape} vs torch {t.shape}")
        d = float(np.max(np.abs(o.astype(np.float64) - t.astype(np.float64))))
        print(f"  {n}: shape {list(o.shape)} max|ORT-torch| = {d:.3e}")
        max_abs = max(max_abs, d)
    res.max_abs = max_abs
    if max_abs > ATOL:
        raise RuntimeError(f"{folder.name}: ORT vs torch max abs diff {max_abs} > {ATOL}")

    # The graph must really be shape-polymorphic: run other dims through ORT
    # and compare with torch (not stored; printed only).
    res.other_dims_max_abs = check_other_dims(spec, model, sess, in_names, out_names)

    write_case_toml(folder, spec.description, exporter, res.dims)
    res.ok = True
    size = model_path.stat().st_size
    print(f"  opset {res.opset}, dims {res.dims}, model.onnx {size} bytes, "
          f"sha256 {hashlib.sha256(model_path.read_bytes()).hexdigest()[:16]}")
    print(f"  ops: {' '.join(res.ops)}")
    return res


def fixture_table(roots: list[Path]) -> str:
    """Markdown table (fixture, exporter, opset, dims, op types) read back from saved fixtures."""
    import tomllib

    rows = [
        "| fixture | exporter | opset | symbolic dims (value) | op types |",
        "| --- | --- | --- | --- | --- |",
    ]
    union: set[str] = set()
    for root in roots:
        for case in sorted(root.glob("*/case.toml")):
            folder = case.parent
            meta = tomllib.loads(case.read_text())
            proto = onnx.load(str(folder / "model.onnx"), load_external_data=False)
            opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
            ops = op_types(proto)
            union.update(ops)
            dims = ", ".join(f"`{k}`={v}" for k, v in meta["dims"].items())
            rows.append(f"| `{folder.name}` | {meta['exporter']} | {opset} | {dims} | {' '.join(ops)} |")
    rows.append("")
    rows.append(f"Union ({len(union)} op types): {' '.join(sorted(union))}")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE, help="root for the small fixtures (default: this folder)")
    ap.add_argument("--minilm-out", type=Path, default=None,
                    help="also write the MiniLM-sized bert_minilm_{ts,dynamo} fixtures under this folder")
    ap.add_argument("--only", nargs="*", default=None, help="only these fixture folder names")
    ap.add_argument("--table", action="store_true",
                    help="only print the README table from the already saved fixtures")
    args = ap.parse_args()

    if args.table:
        print(fixture_table([args.out] + ([args.minilm_out] if args.minilm_out else [])))
        return 0

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, onnx {onnx.__version__}, "
          f"onnxruntime {ort.__version__}, numpy {np.__version__}")

    jobs = [(s, args.out) for s in small_specs()]
    if args.minilm_out is not None:
        jobs += [(s, args.minilm_out) for s in minilm_specs()]

    results: list[Result] = []
    for spec, root in jobs:
        root.mkdir(parents=True, exist_ok=True)
        for exporter in ("torchscript", "dynamo"):
            folder = f"{spec.name}_{'ts' if exporter == 'torchscript' else 'dynamo'}"
            if args.only and folder not in args.only:
                continue
            results.append(make_fixture(spec, exporter, root))

    print("\n=== summary")
    union: set[str] = set()
    for r in results:
        if r.ok:
            union.update(r.ops)
            print(f"{r.folder:20s} {r.exporter:11s} opset {r.opset} dims {r.dims} max_abs {r.max_abs:.2e}")
        else:
            print(f"{r.folder:20s} {r.exporter:11s} FAILED: {r.error}")
    print(f"union of op types: {' '.join(sorted(union))}")
    print()
    print(fixture_table([args.out]))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
