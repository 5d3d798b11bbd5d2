"""Writes the tiny tokenizer the fuzz seeds are built from (fuzz/README.md).

A 120-piece unigram SentencePiece model with ALBERT's special pieces and a five-rule
custom normalization (so its precompiled_charsmap is a few hundred bytes, not nmt_nfkc's
240 KB), and the tokenizer.json transformers 4.40.2's classic converter makes of it.
Run with /work/venv-tok/bin/python (tests/reference/requirements-tokenizer.txt):

    python fuzz/seeds/make_tiny_tokenizer.py fuzz/seeds/tiny_tokenizer
"""

import os
import sys
import tempfile

import sentencepiece as spm
from transformers import AlbertTokenizerFast

TEXT = """The quick brown fox jumps over the lazy dog.
Return the value of the function, or None if it is missing.
A list of 3 items: 1, 2 and 3. Pack my box with five dozen liquor jugs!
Ｆｕｌｌ ｗｉｄｔｈ text and ’quotes’ and "double" quotes; naïve café résumé.
"""

# Source code points (hex) -> replacement code points: full-width A..C, a right quote,
# the ideographic space, a ligature.
RULES = """FF21\t41
FF22\t42
FF23\t43
2019\t27
3000\t20
FB01\t66 69
"""


def main(out):
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        text = os.path.join(tmp, "text.txt")
        with open(text, "w") as f:
            f.write(TEXT * 20)
        rules = os.path.join(tmp, "rules.tsv")
        with open(rules, "w") as f:
            f.write(RULES)
        spm.SentencePieceTrainer.train(
            input=text,
            model_prefix=os.path.join(out, "spiece"),
            vocab_size=120,
            model_type="unigram",
            normalization_rule_tsv=rules,
            pad_id=0,
            unk_id=1,
            bos_id=-1,
            eos_id=-1,
            control_symbols=["[CLS]", "[SEP]", "[MASK]"],
            user_defined_symbols=["(", ")", "."],
            hard_vocab_limit=False,
        )
    os.remove(os.path.join(out, "spiece.vocab"))
    tok = AlbertTokenizerFast(vocab_file=os.path.join(out, "spiece.model"))
    tok.save_pretrained(tmp_out := os.path.join(out, "hf"))
    os.replace(os.path.join(tmp_out, "tokenizer.json"), os.path.join(out, "tokenizer.json"))
    for f in os.listdir(tmp_out):
        os.remove(os.path.join(tmp_out, f))
    os.rmdir(tmp_out)


if __name__ == "__main__":
    main(sys.argv[1])
