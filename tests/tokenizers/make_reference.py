"""Reference ids for the tokenizer corpus, from the reference implementations: Hugging Face
`tokenizers` for every `*.json` tokenizer here (`bert-base-uncased.json`: WordPiece with
[CLS]/[SEP]; `gpt2-bytelevel-bpe.json`, `llama-sp-bpe.json`: made by `make_fixtures.py`) and
SentencePiece for llama2.c's 32K vocabulary (`tokenizer.model`, no BOS), written to
`reference.json`, with each library's decoding of those ids (`decoded:NAME`, special
tokens skipped).

Usage: /opt/exportenv/bin/python tests/tokenizers/make_reference.py PATH/TO/tokenizer.model
(llama2.c's `tokenizer.model`, from ../shared/models/llama2c-tokenizer). Needs tokenizers,
sentencepiece.
"""
import json
import os
import sys

import sentencepiece
import tokenizers

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    corpus = json.load(open(os.path.join(HERE, "corpus.json"), encoding="utf-8"))
    sp = sentencepiece.SentencePieceProcessor(model_file=sys.argv[1])
    out = {
        "tokenizers_version": tokenizers.__version__,
        "sentencepiece_version": sentencepiece.__version__,
        "llama2c-32k.bin": [sp.encode(t) for t in corpus],
        "decoded:llama2c-32k.bin": [sp.decode(sp.encode(t)) for t in corpus],
    }
    for name in sorted(os.listdir(HERE)):
        if not name.endswith(".json") or name in ("corpus.json", "reference.json"):
            continue
        tok = tokenizers.Tokenizer.from_file(os.path.join(HERE, name))
        tok.no_padding()
        tok.no_truncation()
        out[name] = [tok.encode(t).ids for t in corpus]
        out["decoded:" + name] = [tok.decode(tok.encode(t).ids) for t in corpus]
    with open(os.path.join(HERE, "reference.json"), "w", encoding="utf-8") as f:
        json.dump(out, f)
        f.write("\n")


if __name__ == "__main__":
    main()
