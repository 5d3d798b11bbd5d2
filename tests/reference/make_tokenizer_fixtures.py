#!/usr/bin/env python3
"""Tokenizer fixtures for issue #4: a SentencePiece model, its classic `tokenizer.json`, and
golden encodings of a corpus of hard strings.

Run from the repository root, in the pinned environment of
``tests/reference/requirements-tokenizer.txt`` (transformers 4.40.2 gives the *classic*
``AlbertConverter`` conversion: user-defined pieces are ordinary vocabulary entries, pieces
ending in a digit and a comma lose 100 from their score, Metaspace with
``prepend_scheme="always"``, a final ``Replace(" {2,}", " ")``):

    python3 -m venv /work/venv-tok
    /work/venv-tok/bin/pip install -r tests/reference/requirements-tokenizer.txt
    /work/venv-tok/bin/python tests/reference/make_tokenizer_fixtures.py

It rewrites ``tests/fixtures/tokenizer/`` completely:

- ``spiece.model``: a unigram SentencePiece model trained here (seeded, one thread) on
  openly licensed text found on any Debian/Python install: CPython's ``pydoc_data/topics.py``
  (PSF licence), the licence texts in ``/usr/share/common-licenses``, and the native names of
  months and days from glibc's locale sources (``/usr/share/i18n/locales``, public domain
  facts), for non-Latin scripts. ALBERT's pieces: ``<pad>`` 0, ``<unk>`` 1, ``[CLS]`` 2,
  ``[SEP]`` 3, ``[MASK]`` 4 (control), then ALBERT's user-defined symbols, nmt_nfkc.
- ``tokenizer.json`` etc.: ``AlbertTokenizerFast(vocab_file=spiece.model).save_pretrained``.
- ``config.json`` + ``model.safetensors``: a tiny random ALBERT whose vocabulary matches,
  so ``quantize`` can pack the directory (tokenizer included) for the CLI tests.
- ``goldens.json``: for every case (text, optional pair, optional truncation and padding)
  the fast tokenizer's ``input_ids``, ``token_type_ids``, ``attention_mask``, ``tokens`` and
  character ``offsets``; the slow ``AlbertTokenizer``'s ``input_ids``. Raw ``tokenizers``
  on the saved ``tokenizer.json`` is checked to agree with ``AlbertTokenizerFast``.

CI never runs this script; Rust tests read the committed files.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import sys
import unicodedata
from pathlib import Path

import numpy as np
import sentencepiece as spm
import tokenizers
import transformers
from safetensors.numpy import load_file, save_file
from transformers import AlbertTokenizer, AlbertTokenizerFast

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "tokenizer"
VOCAB_SIZE = 4000
# ALBERT's own spiece.model has these user-defined symbols after the control symbols.
USER_DEFINED = ["(", ")", '"', "-", ".", "–", "£", "€"]


def training_text() -> list[str]:
    lines: list[str] = []
    import pydoc_data.topics as topics

    for v in topics.topics.values():
        lines.extend(l.strip() for l in v.splitlines() if l.strip())
    lic = Path("/usr/share/common-licenses")
    if lic.is_dir():
        for p in sorted(lic.iterdir()):
            if p.is_file():
                lines.extend(l.strip() for l in p.read_text(errors="ignore").splitlines() if l.strip())
    loc = Path("/usr/share/i18n/locales")
    words = set()
    if loc.is_dir():
        pat = re.compile(r'"((?:<U[0-9A-Fa-f]{4,6}>)+)"')
        for p in sorted(loc.iterdir()):
            if not p.is_file():
                continue
            for m in pat.finditer(p.read_text(errors="ignore")):
                s = "".join(chr(int(u, 16)) for u in re.findall(r"<U([0-9A-Fa-f]+)>", m.group(1)))
                if any(ord(c) > 0x2FF for c in s) and len(s) > 1:
                    words.add(s)
    words = sorted(words)
    rng = random.Random(4)
    for _ in range(len(words) // 4):
        lines.append(" ".join(rng.sample(words, 6)))
    return lines


def train(dir: Path) -> None:
    text = dir / "train.txt"
    text.write_text("\n".join(training_text()) + "\n")
    spm.SentencePieceTrainer.train(
        input=str(text),
        model_prefix=str(dir / "spiece"),
        model_type="unigram",
        vocab_size=VOCAB_SIZE,
        character_coverage=0.995,
        pad_id=0,
        unk_id=1,
        bos_id=-1,
        eos_id=-1,
        control_symbols=["[CLS]", "[SEP]", "[MASK]"],
        user_defined_symbols=USER_DEFINED,
        normalization_rule_name="nmt_nfkc",
        num_threads=1,
        seed_sentencepiece_size=200000,
        shuffle_input_sentence=False,
        input_sentence_size=0,
        minloglevel=2,
    )
    text.unlink()
    (dir / "spiece.vocab").unlink()


def tiny_model(dir: Path, vocab: int) -> None:
    """A random AlbertModel with the tokenizer's vocabulary size (names from albert_model)."""
    src = ROOT / "tests" / "fixtures" / "albert_model"
    cfg = json.loads((src / "config.json").read_text())
    old_vocab = cfg["vocab_size"]
    cfg["vocab_size"] = vocab
    cfg["max_position_embeddings"] = 64
    rng = np.random.default_rng(4)
    tensors = {}
    for k, v in load_file(str(src / "model.safetensors")).items():
        shape = list(v.shape)
        if shape[0] == old_vocab:
            shape[0] = vocab
        if k == "embeddings.position_embeddings.weight":
            shape[0] = 64
        tensors[k] = (rng.standard_normal(shape) * 0.1).astype(np.float32)
    save_file(tensors, str(dir / "model.safetensors"))
    (dir / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def corpus() -> list[str]:
    c = [
        "",
        " ",
        "   ",
        "\t",
        "\n",
        " \t\n ",
        "Hello world",
        "Hello I'm a [MASK] model.",
        "hello [MASK] world",
        "hello[MASK]world",
        "[CLS] at the start and [SEP] in the middle [SEP]",
        "two  spaces",
        "three   spaces and    four",
        " leading space",
        "trailing space ",
        "trailing spaces   ",
        "  both  ",
        "tab\tseparated\tvalues",
        "new\nlines\n\nand\r\nCRLF",
        "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG",
        "MiXeD CaSe WoRdS",
        "café naïve résumé façade",
        "Crème brûlée à la carte",
        "``quoted'' text and ``more``",
        "he said ``hello'' and '' then ``",
        "```triple''' quotes",
        '"double" and \'single\' quotes',
        "“curly” ‘quotes’ „low“ «guillemets»",
        "日本語のテキスト",
        "中文文本测试",
        "한국어 텍스트",
        "한국어",
        "\u1112\u1161\u11ab\u1100\u1173\u11af",
        "العربية نص",
        "हिन्दी पाठ",
        "नमस्ते दुनिया",
        "ภาษาไทย",
        "Ελληνικά κείμενο ΣΟΦΟΣ",
        "Русский текст",
        "emoji 😀 😀😀 🎉",
        "family 👨‍👩‍👧‍👦 and 👩🏽‍💻",
        "flags 🇫🇷🇩🇪",
        "Ｆｕｌｌ－ｗｉｄｔｈ　ｆｏｒｍｓ１２３",
        "ﬁne ﬂour ﬀ ﬃ",
        "① ② ③ ⑩ ⑳",
        "Ⅰ Ⅱ Ⅲ Ⅳ ⅻ",
        "e\u0301 a\u0300 o\u0308 n\u0303",
        "cafe\u0301",
        "Z\u0351\u036b\u0343a\u0310\u0362l\u0357g\u0344o",
        "ı İ i I Istanbul İstanbul",
        "ß Straße STRASSE",
        "ẞ capital sharp s",
        "zero\u200bwidth\u200cjoiner\u200dnon",
        "soft\u00adhyphen",
        "no\u00a0break\u00a0space",
        "narrow\u202fno-break",
        "ideographic\u3000space",
        "control\x01\x02\x03chars",
        "\x01leading control",
        "\x1e",
        "\x1etrailing",
        "bell\x07 and del\x7f",
        "nul\x00byte",
        "1,000,000 dollars",
        "1,2,3,4",
        "in 1999, the year 2000, and 3, 4,",
        "pi is 3.14159, e is 2.71828,",
        "See https://example.com/path?q=1&r=2#frag",
        "email me at someone@example.org",
        "fn main() { println!(\"{}\", x + 1); }",
        "def f(x): return x ** 2  # comment",
        "if (a && b) || c != d: pass",
        "<html><body>tags</body></html>",
        "$100 €50 £30 ¥20 ₹10",
        "–dash— and - hyphen ‐",
        "(parens) [brackets] {braces}",
        "a.b.c...d",
        "…ellipsis…",
        "™ ® © ℃ ℉ № ℡",
        "x² y³ H₂O",
        "½ ¼ ¾ ⅓",
        "µ Ω Å K",
        "ﾊﾝｶｸ ｶﾀｶﾅ",
        "㍿ ㌔ ㎞ ㎏",
        "𝐁𝐨𝐥𝐝 𝑖𝑡𝑎𝑙𝑖𝑐",
        "\U0001f600\U0001f3fb",
        "a\u0300\u0316",
        "A\u030a Å \u212b",
        "Ǆ ǅ ǆ",
        "ϓ ϔ",
        "\ufeffBOM at start",
        "right\u200fto\u200eleft marks",
        "line\u2028separator\u2029para",
        "vertical\x0btab\x0cfeed",
        "next\x85line",
        "unit\x1fseparator",
        "[MASK]",
        "[MASK][MASK]",
        "  [MASK]  ",
        "<unk> <pad> [CLS] [SEP]",
        "<unk>",
        "word" * 60,
        "a" * 300,
        "The end.",
        "(hello) -world- \"quoted\" £5 €6 – done.",
        "Mr. Smith's well-known co-operative (est. 1990).",
        "ＡＢＣ ａｂｃ",
        "ﷺ ﷻ",
        "ǰ ΐ ΰ",
        "ŉ ǅ",
        "İstanbul'da",
        "ΣΑΣ σας",
        "Ꭰ ꭰ",
        "🏳️‍🌈",
        "\u0301leading combining",
        "x\u0301\u0301\u0301y",
        "\u00a0\u00a0",
        "\u3000",
        "\u200b",
        "\u200b\u200b hello",
        "a\u200b b",
        "\ufe0f",
        "8\ufe0f\u20e3",
        "a,b,c 1,a 2, 3,b",
        "Numbers: 12, 345, 6789, 0,",
        "version 1.2.3, build 45,",
        "10,000 people, 20,000 cars",
    ]
    # Words of many scripts, one per line of the training locale names.
    rng = random.Random(7)
    base = "The quick brown fox jumps over the lazy dog while Python evaluates expressions".split()
    for i in range(120):
        n = rng.randint(1, 14)
        words = []
        for _ in range(n):
            w = rng.choice(base + ["café", "ÉCOLE", "日本", "ß", "🙂", "1,", "23,", "(x)", "--", "``", "''", "  ", "\t", "İ", "ﬁ", "①", "Ⅻ", "ｗｉｄｅ", "\u200d", "\xa0", "naïve"])
            if rng.random() < 0.2:
                w = w.upper()
            words.append(w)
        sep = rng.choice([" ", " ", " ", "  ", "\t", ", "])
        c.append(sep.join(words))
    # Long texts (over 512 tokens).
    import pydoc_data.topics as topics

    long = topics.topics["assignment"]
    c.append(long[:4000])
    c.append(" ".join(["Voilà l'été à Noël, ``naïve'' Ärger über Öl 1,2,3."] * 60))
    return c


def encode_fast(tok, text, pair=None, **kw):
    e = tok(text, pair, return_offsets_mapping=True, **kw)
    return {
        "input_ids": e["input_ids"],
        "token_type_ids": e["token_type_ids"],
        "attention_mask": e["attention_mask"],
        "tokens": e.tokens(),
        "offsets": [list(o) for o in e["offset_mapping"]],
    }


def extra_goldens() -> None:
    """Goldens for other fixtures' ``spiece.model`` (no ``tokenizer.json``): what the 4.40.2
    conversion of that file gives, for the corpus's single texts and pairs, untruncated."""
    src = ROOT / "tests" / "fixtures" / "trained_pydoc" / "spiece.model"
    if not src.is_file():
        print(f"{src} absent: no extra goldens")
        return
    fast = AlbertTokenizerFast(vocab_file=str(src))
    slow = AlbertTokenizer(vocab_file=str(src))
    texts = corpus()
    rng = random.Random(13)
    nonempty = [t for t in texts if t]
    cases = [{"text": t} for t in texts] + [{"text": rng.choice(texts), "pair": rng.choice(nonempty)} for _ in range(60)]
    for c in cases:
        c["fast"] = encode_fast(fast, c["text"], c.get("pair"))
        c["slow_input_ids"] = slow(c["text"], c.get("pair"))["input_ids"]
    meta = {
        "spiece_model": "tests/fixtures/trained_pydoc/spiece.model",
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "cases": len(cases),
        "slow_differs_from_fast": sum(c["slow_input_ids"] != c["fast"]["input_ids"] for c in cases),
    }
    (OUT / "goldens_trained_pydoc.json").write_text(
        json.dumps({"meta": meta, "cases": cases}, ensure_ascii=False, separators=(",", ":")) + "\n"
    )
    print(json.dumps(meta, indent=2))


def main() -> None:
    transformers.logging.set_verbosity_error()
    if transformers.__version__ != "4.40.2":
        sys.exit(f"transformers {transformers.__version__}: run with 4.40.2 (requirements-tokenizer.txt)")
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    train(OUT)
    fast = AlbertTokenizerFast(vocab_file=str(OUT / "spiece.model"))
    fast.save_pretrained(str(OUT))
    slow = AlbertTokenizer(vocab_file=str(OUT / "spiece.model"))
    raw = tokenizers.Tokenizer.from_file(str(OUT / "tokenizer.json"))
    for f in ["tokenizer_config.json", "special_tokens_map.json"]:
        p = OUT / f
        if p.exists():
            d = json.loads(p.read_text())
            p.write_text(json.dumps(d, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    tiny_model(OUT, len(fast))

    texts = corpus()
    rng = random.Random(11)
    cases = []
    # An empty second text is no pair at all to transformers (`if text_pair`), unlike raw
    # `tokenizers`; pairs here have a non-empty second text.
    nonempty = [i for i, t in enumerate(texts) if t]
    pair_idx = [(i, rng.choice(nonempty)) for i in rng.sample(range(len(texts)), 80)]
    # Single texts, whole.
    for t in texts:
        cases.append({"text": t})
    for a, b in pair_idx:
        cases.append({"text": texts[a], "pair": texts[b]})
    # Truncation and padding.
    for i, (a, b) in enumerate(pair_idx[:60]):
        ml = [8, 16, 24, 40, 64][i % 5]
        strat = ["longest_first", "only_first", "only_second"][i % 3]
        cases.append({"text": texts[a], "pair": texts[b], "max_length": ml, "truncation": strat, "padding": i % 2 == 0})
    for i, t in enumerate(texts[:: 3]):
        ml = [5, 8, 13, 32][i % 4]
        cases.append({"text": t, "max_length": ml, "truncation": "longest_first", "padding": i % 2 == 1})
    cases.append({"text": texts[-2], "max_length": 512, "truncation": "longest_first", "padding": True})
    cases.append({"text": texts[-1], "pair": texts[-2], "max_length": 512, "truncation": "longest_first"})

    mismatch_raw = 0
    slow_differs = 0
    out_cases = []
    for c in cases:
        kw = {}
        if "max_length" in c:
            kw = {"max_length": c["max_length"], "truncation": c["truncation"]}
            if c.get("padding"):
                kw["padding"] = "max_length"
        try:
            f = encode_fast(fast, c["text"], c.get("pair"), **kw)
        except Exception as e:  # e.g. a pair too long for only_first
            f = {"error": str(e).splitlines()[0]}
        try:
            s = slow(c["text"], c.get("pair"), **kw)["input_ids"]
        except Exception as e:
            s = {"error": str(e).splitlines()[0]}
        if "max_length" not in c:
            r = raw.encode(c["text"], c.get("pair"))
            if r.ids != f["input_ids"] or [list(o) for o in r.offsets] != f["offsets"]:
                mismatch_raw += 1
        if "error" not in f and s != f["input_ids"]:
            slow_differs += 1
        o = dict(c)
        o["fast"] = f
        o["slow_input_ids"] = s
        out_cases.append(o)
    if mismatch_raw:
        sys.exit(f"raw tokenizers disagrees with AlbertTokenizerFast on {mismatch_raw} cases")
    meta = {
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "sentencepiece": spm.__version__,
        "python": sys.version.split()[0],
        "unicodedata": unicodedata.unidata_version,
        "offsets": "characters (Unicode scalar values) of the original text, as transformers gives",
        "cases": len(out_cases),
        "slow_differs_from_fast": slow_differs,
    }
    (OUT / "goldens.json").write_text(
        json.dumps({"meta": meta, "cases": out_cases}, ensure_ascii=False, separators=(",", ":")) + "\n"
    )
    print(json.dumps(meta, indent=2))
    extra_goldens()


if __name__ == "__main__":
    transformers.logging.set_verbosity_error()
    if sys.argv[1:] == ["extra"]:
        extra_goldens()
    else:
        main()
