#!/usr/bin/env python3
"""Train a small ALBERT (MLM + sentence-order prediction) on the Python documentation.

The whole pipeline, end to end (run from the repository root):

    apt-get install -y python3.11-doc         # Debian package, PSF licence
    nice -n 10 /work/venv/bin/python tests/reference/train_small_albert.py all \
        --work /work/corpus --minutes 50

Stages (each can be run alone; ``all`` runs them in order):

    corpus   HTML -> plain prose paragraphs/sentences (stdlib html.parser), ~2% of the
             documents (by sha1 of their path) held out for evaluation.
    spm      SentencePiece unigram vocabulary (8000 pieces, ALBERT layout) -> spiece.model
    train    AlbertForPreTraining from scratch with depth growth (2 -> 6 -> 12 applications
             of the shared layer), time budgeted, checkpoints every ~10 minutes.
    export   Round the weights to float16, save config.json + model.safetensors (F16) +
             spiece.model into tests/fixtures/trained_pydoc/, and compute goldens.json /
             goldens.safetensors / heldout.json with the fp32 model that holds exactly the
             fp16 values.

Everything large (corpus text, checkpoints) goes under --work (outside the repository).
Seeds are fixed; with 2 threads the run is deterministic up to the time budget (the number
of steps done depends on the machine's speed, so pass --steps to pin it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import re
import sys
import time
import unicodedata
from html.parser import HTMLParser
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURE_DIR = REPO_ROOT / "tests" / "fixtures" / "trained_pydoc"
HTML_ROOT = Path("/usr/share/doc/python3.11/html")

PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = 0, 1, 2, 3, 4
VOCAB_SIZE = 8000
MAX_POS = 128
SEED = 20261126


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


# --------------------------------------------------------------------------------------
# Corpus extraction
# --------------------------------------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
BLOCK = {"p", "li", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6", "div", "td", "th", "blockquote",
         "tr", "table", "section", "caption", "figcaption", "ul", "ol", "dl", "figure", "aside"}
SKIP_TAGS = {"script", "style", "pre", "nav", "footer", "head", "button", "form", "textarea"}
SKIP_CLASSES = {"highlight", "headerlink", "sphinxsidebar", "related", "footer", "doctest",
                "linenos", "versionmodified-hidden"}


class ProseExtractor(HTMLParser):
    """Collects prose paragraphs from the Sphinx main body (div role=main)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool, bool]] = []  # (tag, skip, is_main)
        self.paras: list[str] = []
        self.buf: list[str] = []

    def _in_main(self):
        return any(m for _, _, m in self.stack)

    def _skipping(self):
        return any(s for _, s, _ in self.stack)

    def _flush(self):
        text = " ".join("".join(self.buf).split())
        self.buf = []
        if text:
            self.paras.append(text)

    def handle_starttag(self, tag, attrs):
        if tag in VOID:
            if tag == "br" and self._in_main() and not self._skipping():
                self.buf.append(" ")
            return
        a = dict(attrs)
        classes = set((a.get("class") or "").split())
        skip = tag in SKIP_TAGS or any(c.startswith("highlight") for c in classes) or bool(classes & SKIP_CLASSES)
        is_main = tag == "div" and a.get("role") == "main"
        if tag in BLOCK:
            self._flush()
        self.stack.append((tag, skip, is_main))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not any(t == tag for t, _, _ in self.stack):
            return
        while self.stack:
            t, _, _ = self.stack.pop()
            if t == tag:
                break
        if tag in BLOCK:
            self._flush()

    def handle_data(self, data):
        if self._in_main() and not self._skipping():
            self.buf.append(data)

    def close(self):
        super().close()
        self._flush()


SENT_SPLIT = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[A-Z0-9\"'(\[])")


def split_sentences(para: str) -> list[str]:
    out = []
    for s in SENT_SPLIT.split(para):
        s = s.strip()
        if s:
            out.append(s)
    return out


def good_sentence(s: str) -> bool:
    words = s.split()
    if len(words) < 3:
        return False
    letters = sum(c.isalpha() for c in s)
    return letters >= 0.6 * len(s.replace(" ", ""))


def is_heldout(rel: str) -> bool:
    return int(hashlib.sha1(rel.encode()).hexdigest(), 16) % 50 == 0  # ~2%


def stage_corpus(work: Path):
    files = sorted(p for p in HTML_ROOT.rglob("*.html"))
    skip_names = re.compile(r"^(genindex.*|py-modindex|search|contents|modindex)\.html$")
    docs = {"train": [], "heldout": []}
    for p in files:
        rel = str(p.relative_to(HTML_ROOT))
        if rel.startswith("_") or skip_names.match(p.name):
            continue
        ex = ProseExtractor()
        ex.feed(p.read_text(encoding="utf-8", errors="replace"))
        ex.close()
        paras = []
        for para in ex.paras:
            para = para.replace("\u00b6", "").strip()
            sents = [s for s in split_sentences(para) if good_sentence(s)]
            if sents:
                paras.append(sents)
        if not paras:
            continue
        docs["heldout" if is_heldout(rel) else "train"].append({"doc": rel, "paras": paras})
    work.mkdir(parents=True, exist_ok=True)
    for split, ds in docs.items():
        with open(work / f"{split}.jsonl", "w") as f:
            for d in ds:
                f.write(json.dumps(d) + "\n")
        n_s = sum(len(p) for d in ds for p in d["paras"])
        n_w = sum(len(s.split()) for d in ds for p in d["paras"] for s in p)
        log(f"corpus {split}: {len(ds)} documents, {n_s} sentences, {n_w} words")
    with open(work / "spm_input.txt", "w") as f:
        for d in docs["train"]:
            for p in d["paras"]:
                for s in p:
                    f.write(preprocess(s) + "\n")


def load_docs(work: Path, split: str) -> list[dict]:
    with open(work / f"{split}.jsonl") as f:
        return [json.loads(line) for line in f]


# --------------------------------------------------------------------------------------
# Tokenisation (ALBERT slow tokenizer preprocessing, do_lower_case=True, keep_accents=False)
# --------------------------------------------------------------------------------------

def preprocess(text: str) -> str:
    out = " ".join(text.strip().split())
    out = out.replace("``", '"').replace("''", '"')
    out = unicodedata.normalize("NFKD", out)
    out = "".join(c for c in out if not unicodedata.combining(c))
    return out.lower()


def stage_spm(work: Path):
    import sentencepiece as spm
    spm.SentencePieceTrainer.train(
        input=str(work / "spm_input.txt"),
        model_prefix=str(work / "spiece"),
        model_type="unigram",
        vocab_size=VOCAB_SIZE,
        pad_id=PAD_ID, unk_id=UNK_ID, bos_id=-1, eos_id=-1,
        pad_piece="<pad>", unk_piece="<unk>",
        control_symbols=["[CLS]", "[SEP]", "[MASK]"],
        normalization_rule_name="nmt_nfkc",
        character_coverage=0.9999,
        input_sentence_size=2_000_000,
        shuffle_input_sentence=True,
        seed_sentencepiece_size=1_000_000,
        num_threads=2,
        minloglevel=1,
    )
    sp = load_spm(work)
    assert [sp.id_to_piece(i) for i in range(5)] == ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
    log(f"spm: vocab {sp.get_piece_size()}")


def load_spm(work: Path):
    import sentencepiece as spm
    return spm.SentencePieceProcessor(model_file=str(work / "spiece.model"))


def encode_docs(sp, docs: list[dict]) -> list[list[list[int]]]:
    """Each document -> list of sentences -> token ids."""
    out = []
    for d in docs:
        sents = [s for p in d["paras"] for s in p]
        ids = sp.encode([preprocess(s) for s in sents])
        out.append([x for x in ids if x])
    return out


# --------------------------------------------------------------------------------------
# Pre-training examples: [CLS] A [SEP] B [SEP], sentence order prediction
# --------------------------------------------------------------------------------------

def make_examples(docs_ids: list[list[list[int]]], max_len: int, rng: random.Random,
                  short_prob: float = 0.1) -> list[tuple[list[int], list[int], int]]:
    """ALBERT-style: accumulate consecutive sentences up to the target length, split at a
    sentence boundary into A and B; swap them with probability 1/2 (SOP label 1)."""
    budget = max_len - 3
    examples = []
    for sents in docs_ids:
        target = budget if rng.random() >= short_prob else rng.randint(8, budget)
        chunk: list[list[int]] = []
        n = 0
        i = 0
        while i < len(sents):
            chunk.append(sents[i])
            n += len(sents[i])
            if i == len(sents) - 1 or n >= target:
                if n >= 4:
                    flat_chunks = chunk
                    if len(chunk) >= 2:
                        k = rng.randint(1, len(chunk) - 1)
                        a = [t for s in chunk[:k] for t in s]
                        b = [t for s in chunk[k:] for t in s]
                    else:
                        toks = flat_chunks[0]
                        k = rng.randint(1, len(toks) - 1)
                        a, b = toks[:k], toks[k:]
                    # truncate the longer side (front or back at random) until it fits
                    while len(a) + len(b) > budget:
                        longer = a if len(a) > len(b) else b
                        if rng.random() < 0.5:
                            del longer[0]
                        else:
                            longer.pop()
                    if a and b:
                        label = 0
                        if rng.random() < 0.5:
                            a, b, label = b, a, 1
                        ids = [CLS_ID] + a + [SEP_ID] + b + [SEP_ID]
                        tts = [0] * (len(a) + 2) + [1] * (len(b) + 1)
                        examples.append((ids, tts, label))
                chunk, n = [], 0
                target = budget if rng.random() >= short_prob else rng.randint(8, budget)
            i += 1
    return examples


def collate(batch, gen, mask_prob=0.15):
    """Pad, then mask 15% of the non-special tokens (80% [MASK], 10% random, 10% kept)."""
    import torch
    width = max(len(e[0]) for e in batch)
    ids = torch.zeros(len(batch), width, dtype=torch.long)
    tts = torch.zeros_like(ids)
    att = torch.zeros_like(ids)
    for r, (i, t, _) in enumerate(batch):
        ids[r, :len(i)] = torch.tensor(i)
        tts[r, :len(t)] = torch.tensor(t)
        att[r, :len(i)] = 1
    sop = torch.tensor([e[2] for e in batch])
    special = (ids == CLS_ID) | (ids == SEP_ID) | (ids == PAD_ID)
    prob = torch.rand(ids.shape, generator=gen)
    masked = (prob < mask_prob) & ~special
    labels = torch.where(masked, ids, torch.full_like(ids, -100))
    r2 = torch.rand(ids.shape, generator=gen)
    inp = ids.clone()
    inp[masked & (r2 < 0.8)] = MASK_ID
    rand_pos = masked & (r2 >= 0.8) & (r2 < 0.9)
    inp[rand_pos] = torch.randint(5, VOCAB_SIZE, (int(rand_pos.sum()),), generator=gen)
    return inp, tts, att, labels, sop


# --------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------

def make_config(num_layers: int):
    from transformers import AlbertConfig
    return AlbertConfig(
        vocab_size=VOCAB_SIZE, embedding_size=128, hidden_size=256, num_attention_heads=4,
        intermediate_size=1024, num_hidden_layers=num_layers, num_hidden_groups=1, inner_group_num=1,
        hidden_act="gelu_new", max_position_embeddings=MAX_POS, type_vocab_size=2,
        pad_token_id=PAD_ID, bos_token_id=CLS_ID, eos_token_id=SEP_ID,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout_prob=0.0,
        architectures=["AlbertForPreTraining"],
    )


def losses(model, inp, tts, att, labels, sop):
    """Same parameters as AlbertForPreTraining.forward, but the MLM head only runs on the
    masked positions (the 8000-way decoder on every position would dominate the step)."""
    import torch.nn.functional as F
    out = model.albert(input_ids=inp, attention_mask=att, token_type_ids=tts, return_dict=True)
    seq, pooled = out.last_hidden_state, out.pooler_output
    sel = labels != -100
    logits = model.predictions(seq[sel])
    mlm = F.cross_entropy(logits, labels[sel])
    sop_logits = model.sop_classifier(pooled)
    sop_loss = F.cross_entropy(sop_logits, sop)
    acc = (logits.argmax(-1) == labels[sel]).float().mean()
    sop_acc = (sop_logits.argmax(-1) == sop).float().mean()
    return mlm, sop_loss, acc, sop_acc


def set_depth(model, depth: int):
    model.config.num_hidden_layers = depth
    model.albert.config.num_hidden_layers = depth
    model.albert.encoder.config.num_hidden_layers = depth


def evaluate(model, eval_examples, batch_size=64):
    import torch
    model.eval()
    gen = torch.Generator().manual_seed(SEED + 7)  # same masks every evaluation
    tot = {"mlm": 0.0, "sop": 0.0, "acc": 0.0, "sop_acc": 0.0}
    nb = 0
    with torch.no_grad():
        for i in range(0, len(eval_examples), batch_size):
            b = collate(eval_examples[i:i + batch_size], gen)
            mlm, sop, acc, sop_acc = losses(model, *b)
            for k, v in zip(tot, (mlm, sop, acc, sop_acc)):
                tot[k] += float(v)
            nb += 1
    model.train()
    return {k: v / nb for k, v in tot.items()}


def stage_train(work: Path, minutes: float, batch_size: int, lr: float, seq_len: int,
                schedule: str, max_steps: int | None, resume: str | None,
                seq_final: int = MAX_POS, seq_final_at: float = 0.8):
    import torch
    from transformers import AlbertForPreTraining
    torch.set_num_threads(2)
    torch.manual_seed(SEED)
    sp = load_spm(work)
    rng = random.Random(SEED)
    train_ids = encode_docs(sp, load_docs(work, "train"))
    held_ids = encode_docs(sp, load_docs(work, "heldout"))
    n_tok = sum(len(s) for d in train_ids for s in d)
    log(f"train tokens {n_tok}, heldout tokens {sum(len(s) for d in held_ids for s in d)}")
    eval_examples = make_examples(held_ids, seq_final, random.Random(SEED + 1))[:128]
    log(f"eval examples {len(eval_examples)}")

    # depth schedule "2:0.35:5.6,6:0.6:4.8,12:1.0": depth 2 until 35% of the time budget is
    # spent or the train MLM loss (EMA) falls below 5.6, then depth 6 until 60% or 4.8, then 12.
    # (A purely time-based schedule grew the depth before the model had left the unigram
    # plateau when the machine was busy.)
    phases = []
    for x in schedule.split(","):
        f = x.split(":")
        phases.append((int(f[0]), float(f[1]), float(f[2]) if len(f) > 2 else -1.0))
    phase = 0

    model = AlbertForPreTraining(make_config(phases[0][0]))
    if resume:
        model = AlbertForPreTraining.from_pretrained(resume)
        log(f"resumed from {resume}")
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)
    budget_s = minutes * 60
    warmup = 30 if resume else 100
    gen = torch.Generator().manual_seed(SEED + 3)
    ckpt_dir = work / "ckpt"
    ckpt_dir.mkdir(parents=True, exist_ok=True)

    def lr_at(step, frac):
        w = min(1.0, (step + 1) / warmup)
        # flat for the first half of the budget, then linear decay to 5%
        return lr * w * (1.0 - 0.95 * max(0.0, frac - 0.5) / 0.5)

    t0 = time.time()
    last_ckpt = t0
    last_eval = t0
    step = 0
    epoch = 0
    examples: list = []
    ex_seq = None
    pos = 0
    depth = None
    hist = []
    ema = None
    phase_steps = 0
    while True:
        el = time.time() - t0
        frac = el / budget_s
        if frac >= 1.0 or (max_steps is not None and step >= max_steps):
            break
        while phase + 1 < len(phases) and (frac >= phases[phase][1] or (
                ema is not None and ema < phases[phase][2] and phase_steps >= 50)):
            phase += 1
        want = phases[phase][0]
        if want != depth:
            phase_steps = 0
            set_depth(model, want)
            log(f"step {step}: depth -> {want}")
            depth = want
        cur_seq = seq_final if frac >= seq_final_at else seq_len
        if pos + batch_size > len(examples) or cur_seq != ex_seq:
            if cur_seq != ex_seq:
                log(f"step {step}: sequence length -> {cur_seq}")
            ex_seq = cur_seq
            examples = make_examples(train_ids, cur_seq, random.Random(SEED + 100 + epoch))
            random.Random(SEED + 200 + epoch).shuffle(examples)
            log(f"epoch {epoch}: {len(examples)} examples")
            epoch += 1
            pos = 0
        batch = examples[pos:pos + batch_size]
        pos += batch_size
        cur_lr = lr_at(step, frac)
        for g in opt.param_groups:
            g["lr"] = cur_lr
        mlm, sop, acc, sop_acc = losses(model, *collate(batch, gen))
        loss = mlm + sop
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        phase_steps += 1
        v = float(mlm.detach())
        ema = v if ema is None else 0.95 * ema + 0.05 * v
        if step % 10 == 0:
            log(f"step {step} depth {depth} lr {cur_lr:.2e} mlm {v:.3f} (ema {ema:.3f}) acc {float(acc):.3f} "
                f"sop {float(sop):.3f} sop_acc {float(sop_acc):.2f} t {time.time() - t0:.0f}s")
        if time.time() - last_eval > 480 or step == 1:
            ev = evaluate(model, eval_examples)
            hist.append(dict(step=step, t=round(time.time() - t0), depth=depth, train_mlm_ema=ema, **ev))
            log(f"EVAL step {step}: heldout mlm {ev['mlm']:.3f} acc {ev['acc']:.3f} sop {ev['sop']:.3f} "
                f"sop_acc {ev['sop_acc']:.3f}")
            last_eval = time.time()
        if time.time() - last_ckpt > 600:
            model.save_pretrained(ckpt_dir / "latest")
            log(f"checkpoint at step {step}")
            last_ckpt = time.time()
    set_depth(model, 12)
    ev = evaluate(model, eval_examples)
    hist.append(dict(step=step, t=round(time.time() - t0), depth=12, train_mlm_ema=ema, **ev))
    log(f"FINAL step {step}: heldout mlm {ev['mlm']:.3f} acc {ev['acc']:.3f} sop {ev['sop']:.3f} "
        f"sop_acc {ev['sop_acc']:.3f} ({time.time() - t0:.0f}s)")
    model.save_pretrained(ckpt_dir / "final")
    (work / "train_history.json").write_text(json.dumps(dict(
        steps=step, seconds=round(time.time() - t0), batch_size=batch_size, lr=lr, seq_len=seq_len,
        seq_final=seq_final, seq_final_at=seq_final_at,
        schedule=schedule, history=hist), indent=1))


# --------------------------------------------------------------------------------------
# Export: fp16 weights, goldens, held-out fill-mask set
# --------------------------------------------------------------------------------------

def heldout_token_windows(sp, work: Path):
    """Held-out documents as (token stream, sentence start offsets)."""
    streams = []
    for sents in encode_docs(sp, load_docs(work, "heldout")):
        flat, starts = [], []
        for s in sents:
            starts.append(len(flat))
            flat.extend(s)
        streams.append((flat, starts))
    return streams


def golden_cases(sp, work: Path) -> list[dict]:
    """The six standard cases of make_fixtures.py, but made of real held-out text: every
    segment is a window of a held-out document that starts at a sentence start."""
    import make_fixtures as mf
    rng = random.Random(SEED + 11)
    streams = heldout_token_windows(sp, work)

    def window(n):
        while True:
            flat, starts = streams[rng.randrange(len(streams))]
            ok = [s for s in starts if s + n <= len(flat)]
            if ok:
                st = rng.choice(ok)
                return flat[st:st + n]

    def single(length):
        if length == 1:
            ids = [CLS_ID]
        else:
            ids = [CLS_ID] + window(length - 2) + [SEP_ID]
        return ids, [0] * len(ids)

    def pair(la, lb):
        w = window(la + lb)
        a, b = w[:la], w[la:]
        return [CLS_ID] + a + [SEP_ID] + b + [SEP_ID], [0] * (la + 2) + [1] * (lb + 1)

    mid = MAX_POS // 2 - 3
    cases = [
        mf.make_case("single_len1", [single(1)]),
        mf.make_case(f"single_len{mid}", [single(mid)]),
        mf.make_case(f"single_len{MAX_POS}", [single(MAX_POS)]),
        mf.make_case("batch3_padded", [single(n) for n in (MAX_POS // 2 + 2, 4, 11)]),
        mf.make_case("pair_len15", [pair(5, 7)]),
        mf.make_case("batch2_pair_padded", [pair(3, 9), pair(6, 2)]),
    ]
    return cases


def is_word_piece(sp, pid: int) -> bool:
    p = sp.id_to_piece(pid)
    return (p.startswith("\u2581") and len(p) > 1 and any(c.isalnum() for c in p)
            and not sp.is_control(pid) and not sp.is_unknown(pid))


def starts_new_word(sp, pid: int) -> bool:
    p = sp.id_to_piece(pid)
    return p.startswith("\u2581") or not any(c.isalnum() for c in p)


def heldout_cases(sp, work: Path, n_cases: int = 300):
    rng = random.Random(SEED + 13)
    cands = []
    seen = set()
    for d in load_docs(work, "heldout"):
        for para in d["paras"]:
            for s in para:
                ids = sp.encode(preprocess(s))
                if not (8 <= len(ids) <= 60) or s in seen:
                    continue
                seen.add(s)
                # whole-word pieces: a word piece followed by the start of a new word (or the end)
                pos = [i for i, t in enumerate(ids) if is_word_piece(sp, t)
                       and (i + 1 == len(ids) or starts_new_word(sp, ids[i + 1]))]
                if pos:
                    cands.append((s, ids, pos))
    chosen = sorted(rng.sample(range(len(cands)), n_cases))
    cases = []
    for k in chosen:
        s, ids, pos = cands[k]
        i = rng.choice(pos)
        inp = [CLS_ID] + ids + [SEP_ID]
        orig = inp[i + 1]
        inp[i + 1] = MASK_ID
        cases.append(dict(text=s, input_ids=inp, mask_position=i + 1, original_id=orig))
    return cases, len(cands)


def stage_export(work: Path, ckpt: str):
    import shutil
    import torch
    import transformers
    from safetensors import safe_open
    from safetensors.numpy import save_file
    from transformers import AlbertForPreTraining
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import make_fixtures as mf

    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    sp = load_spm(work)

    # 1. fp16 weights in a 12-layer config (training checkpoints may hold a smaller depth)
    trained = AlbertForPreTraining.from_pretrained(ckpt)
    model = AlbertForPreTraining(make_config(12))
    missing, unexpected = model.load_state_dict(trained.state_dict(), strict=False)
    assert not unexpected and all("decoder" in m for m in missing), (missing, unexpected)
    model.tie_weights()
    if FIXTURE_DIR.exists():
        shutil.rmtree(FIXTURE_DIR)
    FIXTURE_DIR.mkdir(parents=True)
    model.to(torch.float16).save_pretrained(FIXTURE_DIR)
    for f in FIXTURE_DIR.iterdir():
        if f.name not in ("config.json", "model.safetensors"):
            f.unlink()
    shutil.copy(work / "spiece.model", FIXTURE_DIR / "spiece.model")
    with safe_open(str(FIXTURE_DIR / "model.safetensors"), "np") as f:
        keys = list(f.keys())
        assert all(f.get_tensor(k).dtype == np.float16 for k in keys)
    assert "predictions.decoder.weight" not in keys and "predictions.bias" in keys

    # 2. the fp32 model holding exactly the stored fp16 values
    model = AlbertForPreTraining.from_pretrained(FIXTURE_DIR, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    assert model.config.num_hidden_layers == 12
    assert all(p.dtype == torch.float32 for p in model.parameters())
    sd16 = {k: v for k, v in trained.state_dict().items()}
    for k, v in model.state_dict().items():
        if k in sd16:
            assert torch.equal(v, sd16[k].half().float()), k
    assert model.predictions.decoder.weight.data_ptr() == model.albert.embeddings.word_embeddings.weight.data_ptr()

    # 3. goldens, exactly like make_fixtures.py
    cases = golden_cases(sp, work)
    tensors = {}
    for case in cases:
        outs = mf.run_case(model, AlbertForPreTraining, case)
        mf.check_padding_invariance(model, AlbertForPreTraining, case, outs)
        # MLM logits are 8000 wide: store them only for the short cases, to keep the
        # committed fixture small (last_hidden_state still covers every case).
        n_tok = sum(len(r) for r in case["input_ids"])
        mlm = ["prediction_logits"] if n_tok <= 40 else []
        case["outputs"] = ["last_hidden_state", *mlm, "sop_logits"]
        for name in case["outputs"]:
            want = mf.expected_shape(AlbertForPreTraining, name, case, model.config.to_dict())
            assert outs[name].shape == tuple(want), (case["name"], name, outs[name].shape, want)
            tensors[f"{case['name']}/{name}"] = outs[name]
        log(f"golden {case['name']}: " + " | ".join(sp.decode([t for t in row if t > 4])[:60]
                                                      for row in case["input_ids"]))
    mf.write_goldens_json(FIXTURE_DIR / "goldens.json", "AlbertForPreTraining", cases)
    save_file(tensors, str(FIXTURE_DIR / "goldens.safetensors"), metadata={"format": "np"})
    np_err = mf.numpy_reference_check(FIXTURE_DIR)
    log(f"numpy float64 reference vs goldens: max abs diff {np_err:.2e}")

    # 4. held-out fill-mask set
    hcases, n_cands = heldout_cases(sp, work)
    top1 = top5 = 0
    by_len: dict[int, list[dict]] = {}
    for c in hcases:  # batch sentences of equal length together: no padding anywhere
        by_len.setdefault(len(c["input_ids"]), []).append(c)
    with torch.no_grad():
        for group in by_len.values():
            ids = torch.tensor([c["input_ids"] for c in group])
            out = model(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=torch.zeros_like(ids))
            for r, c in enumerate(group):
                probs = torch.softmax(out.prediction_logits[r, c["mask_position"]], -1)
                p, i = probs.topk(5)
                c["top5_ids"] = [int(x) for x in i]
                c["top5_probs"] = [float(x) for x in p]
                top1 += c["top5_ids"][0] == c["original_id"]
                top5 += c["original_id"] in c["top5_ids"]
        for c in hcases[:5]:  # batching equal lengths changes nothing that matters
            ids = torch.tensor([c["input_ids"]])
            out = model(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=torch.zeros_like(ids))
            probs = torch.softmax(out.prediction_logits[0, c["mask_position"]], -1)
            assert torch.allclose(probs[c["top5_ids"]], torch.tensor(c["top5_probs"]), atol=1e-5)
    n = len(hcases)
    lines = ['{', '  "model": "trained_pydoc",', f'  "top1_accuracy": {top1 / n},', f'  "top5_accuracy": {top5 / n},',
             '  "cases": [']
    for k, c in enumerate(hcases):
        lines.append("    " + json.dumps(c, ensure_ascii=False) + ("," if k + 1 < n else ""))
    lines += ["  ]", "}"]
    text = "\n".join(lines) + "\n"
    json.loads(text)
    (FIXTURE_DIR / "heldout.json").write_text(text)
    log(f"heldout fill-mask: {n} cases (of {n_cands} candidates), top1 {top1 / n:.3f} top5 {top5 / n:.3f}")
    for c in hcases[:: max(1, n // 10)][:10]:
        pieces = [sp.id_to_piece(t) for t in c["top5_ids"]]
        masked = sp.decode(c["input_ids"][1:c["mask_position"]]) + " [MASK] " + \
            sp.decode(c["input_ids"][c["mask_position"] + 1:-1])
        log(f"  {masked!r}  original {sp.id_to_piece(c['original_id'])!r}  top5 "
            + ", ".join(f"{pc} {pr:.2f}" for pc, pr in zip(pieces, c["top5_probs"])))
    sizes = {f.name: f.stat().st_size for f in sorted(FIXTURE_DIR.iterdir())}
    log(f"fixture files: {sizes}, total {sum(sizes.values())} bytes")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=["all", "corpus", "spm", "train", "export"])
    ap.add_argument("--work", default="/work/corpus", type=Path)
    ap.add_argument("--minutes", default=50.0, type=float, help="training time budget")
    ap.add_argument("--steps", default=None, type=int, help="stop after this many steps")
    ap.add_argument("--batch", default=64, type=int)
    ap.add_argument("--lr", default=1.5e-3, type=float)
    ap.add_argument("--seq", default=64, type=int, help="sequence length for most of the training")
    ap.add_argument("--seq-final", default=MAX_POS, type=int, help="sequence length at the end")
    ap.add_argument("--seq-final-at", default=0.88, type=float, help="fraction of the budget where it starts")
    ap.add_argument("--schedule", default="2:0.35:5.6,6:0.6:4.8,12:1.0",
                    help="depth:until_fraction_of_budget[:or_until_train_mlm_below], comma separated")
    ap.add_argument("--resume", default=None)
    ap.add_argument("--ckpt", default=None, help="checkpoint to export (default WORK/ckpt/final)")
    args = ap.parse_args()
    random.seed(SEED)
    np.random.seed(SEED)
    if args.stage in ("all", "corpus"):
        stage_corpus(args.work)
    if args.stage in ("all", "spm"):
        stage_spm(args.work)
    if args.stage in ("all", "train"):
        stage_train(args.work, args.minutes, args.batch, args.lr, args.seq, args.schedule, args.steps, args.resume,
                    args.seq_final, args.seq_final_at)
    if args.stage in ("all", "export"):
        stage_export(args.work, args.ckpt or str(args.work / "ckpt" / "final"))


if __name__ == "__main__":
    main()
