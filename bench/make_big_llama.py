"""A random-weight 1.1B-parameter Llama checkpoint (TinyLlama-1.1B shapes), for measuring the
compiler's time and peak memory on the largest models it claims.

hidden 2048, 22 layers, 32 heads / 4 KV heads, FFN 5632, vocab 32000, untied classifier:
1,100,048,384 parameters as bf16 in one `model.safetensors` (2.2 GB) plus `config.json`.
Weights are seeded normals scaled by 1/sqrt(fan-in), written tensor by tensor (numpy only;
the whole model is never in memory). Pass `--layers N` for a smaller model of the same widths.

    python3 bench/make_big_llama.py /tmp/bigbuild-llama
    /usr/bin/time -v target/release/slm-aot build /tmp/bigbuild-llama -o /tmp/bigbuild-gen --quantize int4
"""
import argparse
import json
import struct
from pathlib import Path

import numpy as np

HIDDEN, FFN, HEADS, KV_HEADS, VOCAB = 2048, 5632, 32, 4, 32000


def shapes(layers: int) -> list[tuple[str, tuple[int, ...]]]:
    head_dim = HIDDEN // HEADS
    out = [("model.embed_tokens.weight", (VOCAB, HIDDEN))]
    for i in range(layers):
        p = f"model.layers.{i}"
        out += [
            (f"{p}.input_layernorm.weight", (HIDDEN,)),
            (f"{p}.self_attn.q_proj.weight", (HIDDEN, HIDDEN)),
            (f"{p}.self_attn.k_proj.weight", (KV_HEADS * head_dim, HIDDEN)),
            (f"{p}.self_attn.v_proj.weight", (KV_HEADS * head_dim, HIDDEN)),
            (f"{p}.self_attn.o_proj.weight", (HIDDEN, HIDDEN)),
            (f"{p}.post_attention_layernorm.weight", (HIDDEN,)),
            (f"{p}.mlp.gate_proj.weight", (FFN, HIDDEN)),
            (f"{p}.mlp.up_proj.weight", (FFN, HIDDEN)),
            (f"{p}.mlp.down_proj.weight", (HIDDEN, FFN)),
        ]
    out += [("model.norm.weight", (HIDDEN,)), ("lm_head.weight", (VOCAB, HIDDEN))]
    return out


def bf16(x: np.ndarray) -> bytes:
    """Round-to-nearest-even f32 → bf16 bit patterns, little-endian."""
    bits = x.astype(np.float32).view(np.uint32)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype("<u2").tobytes()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--layers", type=int, default=22)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": FFN,
        "num_hidden_layers": args.layers,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "vocab_size": VOCAB,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    }
    (args.out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    tensors = shapes(args.layers)
    header, offset = {}, 0
    for name, shape in tensors:
        size = 2 * int(np.prod(shape))
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    rng = np.random.default_rng(0)
    params = 0
    with open(args.out / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name, shape in tensors:
            if name.endswith("norm.weight"):
                data = 1.0 + 0.1 * rng.standard_normal(shape, dtype=np.float32)
            else:
                data = rng.standard_normal(shape, dtype=np.float32) / np.sqrt(shape[-1])
            f.write(bf16(data))
            params += data.size
    print(f"{args.out}: {params:,} parameters, {offset / 1e9:.2f} GB of bf16")


if __name__ == "__main__":
    main()
