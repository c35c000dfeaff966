"""Train the small tokenizer.json fixtures with Hugging Face `tokenizers` (no hub needed):

- `gpt2-bytelevel-bpe.json`: GPT-2 style byte-level BPE (ByteLevel pre-tokenizer with the
  GPT-2 split regex, byte-to-unicode alphabet, merges by rank, `<|endoftext|>`).
- `llama-sp-bpe.json`: Llama/Mistral style SentencePiece BPE (normalizer Prepend("▁") +
  Replace(" ", "▁"), no pre-tokenizer, `byte_fallback` with `<0x00>`..`<0xFF>`, `<unk>`,
  `<s>`, `</s>`, Llama's `<s> $A` template, the Llama decoder).
- `sp-unigram.json`: SentencePiece style Unigram (Metaspace pre-tokenizer splitting words,
  scores, `<unk>`, byte fallback with `<0x00>`..`<0xFF>` appended at score 0 as
  SentencePiece scores byte pieces, the Llama decoder).
- `*-unk.json`: the two SentencePiece-style ones without byte fallback (unknown characters
  become one fused `<unk>`).

Training text: the paragraphs below (not the corpus). BPE training is deterministic; Unigram
training is not bit-for-bit (its scores are summed on several threads), so the committed
`sp-unigram.json` is the fixture. Then run `make_reference.py` for the reference ids.

Usage: /opt/exportenv/bin/python tests/tokenizers/make_fixtures.py
"""
import json
import os

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

HERE = os.path.dirname(os.path.abspath(__file__))

TEXT = """Once upon a time, there was a little girl named Lily. She loved to play outside in the
sunshine. One day, she saw a big, red ball in the park. She ran to the ball and kicked it
as hard as she could. The ball flew over the trees and landed in a pond. Lily was sad, but
her friend Tom came to help. "Don't worry," said Tom, "we can get it back together!"
They found a long stick and pulled the ball out of the water. Lily smiled and said,
"Thank you, Tom. You are a good friend." From that day on, they played together every day.
The quick brown fox jumps over the lazy dog. Numbers like 1, 2, 3, 10, 100 and 2024 appear
in text; so do prices ($9.99), percentages (50%) and dates (2024-01-31).
Tokenizers split text into pieces: words, sub-words, bytes. Byte-level models never see an
unknown character; SentencePiece models fall back to bytes when a character is missing.
Café, naïve, résumé — Ünïcödé text appears too: Привет мир, Γειά σου, 日本語, 中文, 한국어.
""".split("\n")


def training_text():
    # Not the corpus: its emoji, CJK and symbols must reach byte fallback and `<unk>`.
    return [line for line in TEXT if line] * 3


def gpt2_bytelevel():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1000,
        min_frequency=2,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(training_text(), trainer=trainer)
    tok.save(os.path.join(HERE, "gpt2-bytelevel-bpe.json"))


def llama_sp_bpe():
    # Train the merges on Metaspace words (so pieces start with ▁, as SentencePiece's do),
    # then lay the vocabulary out as Llama's tokenizer.json does: <unk>, <s>, </s>, the 256
    # byte tokens, the learned pieces; and Llama's normalizer instead of the pre-tokenizer.
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.BpeTrainer(vocab_size=700, min_frequency=2, show_progress=False)
    tok.train_from_iterator(training_text(), trainer=trainer)
    learned = json.loads(tok.to_str())["model"]
    specials = ["<unk>", "<s>", "</s>"]
    pieces = specials + [f"<0x{b:02X}>" for b in range(256)]
    ordered = sorted(learned["vocab"].items(), key=lambda kv: kv[1])
    pieces += [p for p, _ in ordered if p not in pieces]
    vocab = {p: i for i, p in enumerate(pieces)}
    spec = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
            for i, s in enumerate(specials)
        ],
        "normalizer": {
            "type": "Sequence",
            "normalizers": [
                {"type": "Prepend", "prepend": "▁"},
                {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
            ],
        },
        "pre_tokenizer": None,
        # Llama's template: BOS before the text.
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [
                {"SpecialToken": {"id": "<s>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
            ],
            "pair": [
                {"SpecialToken": {"id": "<s>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "<s>", "type_id": 1}},
                {"Sequence": {"id": "B", "type_id": 1}},
            ],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
        },
        "decoder": LLAMA_DECODER,
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": "<unk>",
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": True,
            "byte_fallback": True,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": learned["merges"],
        },
    }
    save("llama-sp-bpe.json", spec)
    spec["model"]["byte_fallback"] = False
    save("llama-sp-bpe-unk.json", spec)


def save(name, spec):
    text = json.dumps(spec, ensure_ascii=False)
    Tokenizer.from_str(text)  # the library accepts it
    with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
        f.write(text)
        f.write("\n")


LLAMA_DECODER = {
    "type": "Sequence",
    "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
        {"type": "ByteFallback"},
        {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0},
    ],
}


def sp_unigram():
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=500, special_tokens=["<unk>"], unk_token="<unk>", show_progress=False
    )
    tok.train_from_iterator(training_text(), trainer=trainer)
    spec = json.loads(tok.to_str())
    spec["model"]["byte_fallback"] = True
    spec["model"]["vocab"] += [[f"<0x{b:02X}>", 0.0] for b in range(256)]
    spec["decoder"] = LLAMA_DECODER
    save("sp-unigram.json", spec)
    spec["model"]["byte_fallback"] = False
    spec["model"]["vocab"] = spec["model"]["vocab"][:-256]
    save("sp-unigram-unk.json", spec)


if __name__ == "__main__":
    gpt2_bytelevel()
    llama_sp_bpe()
    sp_unigram()
