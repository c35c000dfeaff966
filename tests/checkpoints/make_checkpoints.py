"""Random-weight tiny Hugging Face checkpoints (safetensors + config.json) and their
transformers reference outputs, for the safetensors frontend's tests.

Each folder gets `config.json`, `model.safetensors`, `case.toml`, `inputs/input_ids.npy`
(and `attention_mask.npy` for encoders) and `reference/*.npy` computed by transformers
itself (eager attention, float32). Decoders also get `reference/greedy_ids.npy`: greedy
decoding with the KV cache from `prompt_ids.npy` by `model.generate`.

Usage: /opt/exportenv/bin/python tests/checkpoints/make_checkpoints.py [OUT_DIR]
(default: the folder of this script). Needs torch, transformers, safetensors, numpy.
"""
import json
import os
import sys

import numpy as np
import torch
import transformers

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
SEQ = 16
GREEDY_TOKENS = 24


def save(name, model, case, inputs, outputs, extra=None):
    d = os.path.join(OUT, name)
    os.makedirs(os.path.join(d, "inputs"), exist_ok=True)
    os.makedirs(os.path.join(d, "reference"), exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    for f in ["generation_config.json"]:
        p = os.path.join(d, f)
        if os.path.exists(p):
            os.remove(p)
    for k, v in inputs.items():
        np.save(os.path.join(d, "inputs", f"{k}.npy"), v)
    for k, v in outputs.items():
        np.save(os.path.join(d, "reference", f"{k}.npy"), v)
    for rel, content in (extra or {}).items():
        p = os.path.join(d, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(content)
    with open(os.path.join(d, "case.toml"), "w") as f:
        f.write(case)


def decoder(name, model, vocab, description):
    model.eval()
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, vocab, (1, SEQ), generator=g)
    with torch.no_grad():
        logits = model(input_ids=ids).logits
        prompt = ids[:, :4]
        out = model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=GREEDY_TOKENS,
            do_sample=False,
            pad_token_id=0,
            eos_token_id=None,
        )
    case = (
        f'description = "{description}"\n'
        'exporter = "transformers (safetensors checkpoint)"\n'
        "atol = 1e-4\n\n[dims]\nsequence = 16\n"
    )
    save(
        name,
        model,
        case,
        {"input_ids": ids.numpy().astype(np.int64)},
        {"logits": logits.numpy().astype(np.float32)},
    )
    d = os.path.join(OUT, name)
    np.save(os.path.join(d, "reference", "prompt_ids.npy"), prompt.numpy().astype(np.int64))
    np.save(
        os.path.join(d, "reference", "greedy_ids.npy"),
        out[0, prompt.shape[1]:].numpy().astype(np.int64),
    )
    export_with_past(name, model)
    # The same checkpoint as a stateful decoder: one step at position 0 from an empty cache
    # gives the whole-sequence logits of the first token (attention is causal).
    step = os.path.join(OUT, name + "_step")
    os.makedirs(os.path.join(step, "inputs"), exist_ok=True)
    os.makedirs(os.path.join(step, "reference"), exist_ok=True)
    np.save(os.path.join(step, "inputs", "input_ids.npy"), ids[:, :1].numpy().astype(np.int64))
    np.save(os.path.join(step, "inputs", "position_ids.npy"), np.zeros((1, 1), np.int64))
    np.save(os.path.join(step, "reference", "logits.npy"), logits[:, :1].numpy().astype(np.float32))
    with open(os.path.join(step, "case.toml"), "w") as f:
        f.write(
            f'description = "{name} as a stateful decoder (16-slot KV cache), first step"\n'
            'exporter = "transformers (safetensors checkpoint)"\n'
            f'model = "../{name}"\n'
            "atol = 1e-4\nmax_context = 16\n"
        )
        if name == "tiny_llama_gqa":
            f.write('tokenizer = "../../../models/stories260K/tok512.bin"  # baked to link-check the tokenizer API on the no_std target\n')


def export_with_past(name, model):
    """The same checkpoint as an ONNX decoder-with-past export (TorchScript exporter): one
    step, `past_key_values.N.{key,value}` with a dynamic `past_len` growing by one into
    `present.N.{key,value}`, as most decoder exports are."""
    from transformers import DynamicCache

    cfg = model.config
    layers = cfg.num_hidden_layers

    class Step(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, position_ids, *past):
            cache = DynamicCache()
            for layer in range(layers):
                cache.update(past[2 * layer], past[2 * layer + 1], layer)
            o = self.m(input_ids=input_ids, position_ids=position_ids, past_key_values=cache, use_cache=True)
            presents = []
            for layer in range(layers):
                presents += [o.past_key_values.layers[layer].keys, o.past_key_values.layers[layer].values]
            return (o.logits, *presents)

    kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    past, names_in, names_out, dynamic = [], ["input_ids", "position_ids"], ["logits"], {}
    for layer in range(layers):
        for k in ("key", "value"):
            past.append(torch.randn(1, kv_heads, 3, head_dim))
            names_in.append(f"past_key_values.{layer}.{k}")
            names_out.append(f"present.{layer}.{k}")
            dynamic[f"past_key_values.{layer}.{k}"] = {2: "past_len"}
    with torch.no_grad():
        torch.onnx.export(
            Step(model),
            (torch.tensor([[5]]), torch.tensor([[3]]), *past),
            os.path.join(OUT, name, "decoder_with_past.onnx"),
            input_names=names_in,
            output_names=names_out,
            dynamic_axes=dynamic,
            opset_version=17,
            dynamo=False,
        )


def main():
    torch.manual_seed(0)
    llama = transformers.LlamaConfig(
        vocab_size=128,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rms_norm_eps=1e-5,
        rope_theta=500000.0,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 16,
        },
        tie_word_embeddings=True,
        initializer_range=0.3,  # large enough that greedy decoding does not just repeat
        attn_implementation="eager",
    )
    decoder(
        "tiny_llama_gqa",
        transformers.LlamaForCausalLM(llama),
        128,
        "LlamaForCausalLM, random weights: vocab 128, hidden 32, 2 layers, 4 heads / 2 kv heads (GQA), llama3 rope scaling, tied embeddings",
    )

    torch.manual_seed(0)
    gpt2 = transformers.GPT2Config(
        vocab_size=128,
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=4,
        initializer_range=0.3,
        attn_implementation="eager",
    )
    decoder(
        "tiny_gpt2",
        transformers.GPT2LMHeadModel(gpt2),
        128,
        "GPT2LMHeadModel, random weights: vocab 128, n_embd 32, 2 layers, 4 heads, gelu_new, tied embeddings",
    )

    torch.manual_seed(0)
    bert = transformers.BertConfig(
        vocab_size=128,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        attn_implementation="eager",
    )
    model = transformers.BertModel(bert, add_pooling_layer=False).eval()
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(0, 128, (1, SEQ), generator=g)
    mask = torch.ones_like(ids)
    mask[0, 12:] = 0  # padding at the end, as a batch of sentences has
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
    m = mask.unsqueeze(-1).float()
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    normalized = torch.nn.functional.normalize(pooled, p=2, dim=1)
    pooling = json.dumps(
        {
            "word_embedding_dimension": 32,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
        },
        indent=2,
    )
    modules = json.dumps(
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
        indent=2,
    )
    case = (
        'description = "BertModel, random weights: vocab 128, hidden 32, 2 layers, 4 heads; sentence-transformers mean pooling + normalize"\n'
        'exporter = "transformers (safetensors checkpoint)"\n'
        "atol = 1e-4\n\n[dims]\nsequence = 16\n"
    )
    save(
        "tiny_bert_st",
        model,
        case,
        {
            "input_ids": ids.numpy().astype(np.int64),
            "attention_mask": mask.numpy().astype(np.int64),
        },
        {
            "last_hidden_state": hidden.numpy().astype(np.float32),
            "sentence_embedding": normalized.numpy().astype(np.float32),
        },
        {"modules.json": modules, "1_Pooling/config.json": pooling},
    )
    print("transformers", transformers.__version__, "torch", torch.__version__)


if __name__ == "__main__":
    main()
