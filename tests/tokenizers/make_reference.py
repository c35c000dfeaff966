"""Reference ids for the tokenizer corpus, from the reference implementations: Hugging Face
`tokenizers` for `bert-base-uncased.json` (WordPiece, with [CLS]/[SEP]) and SentencePiece
for llama2.c's 32K vocabulary (`tokenizer.model`, no BOS), written to `reference.json`.

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
    bert = tokenizers.Tokenizer.from_file(os.path.join(HERE, "bert-base-uncased.json"))
    bert.no_padding()
    bert.no_truncation()
    sp = sentencepiece.SentencePieceProcessor(model_file=sys.argv[1])
    out = {
        "tokenizers_version": tokenizers.__version__,
        "sentencepiece_version": sentencepiece.__version__,
        "bert-base-uncased.json": [bert.encode(t).ids for t in corpus],
        "llama2c-32k.bin": [sp.encode(t) for t in corpus],
    }
    with open(os.path.join(HERE, "reference.json"), "w", encoding="utf-8") as f:
        json.dump(out, f)
        f.write("\n")


if __name__ == "__main__":
    main()
