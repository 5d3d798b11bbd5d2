#!/usr/bin/env python3
"""Generate golden fixtures for the ALBERT inference engine from Hugging Face transformers.

Run from the repository root:

    /work/venv/bin/python tests/reference/make_fixtures.py

It deletes and rewrites ``tests/fixtures/`` completely.  Every model is randomly
initialised locally (no model hub access), with fixed seeds, on CPU in float32,
in ``eval()`` mode under ``torch.no_grad()``.  See ``tests/reference/README.md``
for the exact output format.  CI never runs this script; it only reads the
committed fixtures.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import safetensors
import torch
import transformers
from safetensors.numpy import save_file
from torch import nn
from transformers import (
    AlbertConfig,
    AlbertForMaskedLM,
    AlbertForMultipleChoice,
    AlbertForPreTraining,
    AlbertForQuestionAnswering,
    AlbertForSequenceClassification,
    AlbertForTokenClassification,
    AlbertModel,
)
from transformers.models.albert.modeling_albert import AlbertMLMHead

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "fixtures"

CLS_ID = 2
SEP_ID = 3
PAD_ID = 0
FIRST_RANDOM_ID = 5  # ids 0..4 are pad, unk, cls, sep, mask in real ALBERT vocabularies

# Attention scores with the default initializer_range (0.02) are ~0 at these tiny
# sizes, which makes attention uniform and hides masking / scaling bugs.  A larger
# range gives peaked attention patterns.
INIT_RANGE = 0.1


# --------------------------------------------------------------------------------------
# Fixture definitions
# --------------------------------------------------------------------------------------

def base_config(**overrides) -> dict:
    cfg = dict(
        vocab_size=300,
        embedding_size=16,
        hidden_size=32,
        num_attention_heads=4,
        intermediate_size=64,
        num_hidden_layers=12,
        num_hidden_groups=1,
        inner_group_num=1,
        hidden_act="gelu_new",
        max_position_embeddings=32,
        type_vocab_size=2,
        initializer_range=INIT_RANGE,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        classifier_dropout_prob=0.1,
        pad_token_id=PAD_ID,
        bos_token_id=CLS_ID,
        eos_token_id=SEP_ID,
    )
    cfg.update(overrides)
    return cfg


FIXTURE_SPECS = [
    dict(
        name="albert_model",
        cls=AlbertModel,
        seed=1001,
        config=base_config(vocab_size=300, embedding_size=16, hidden_size=48, intermediate_size=96,
                           max_position_embeddings=40, hidden_act="gelu_new"),
    ),
    dict(
        name="pretraining",
        cls=AlbertForPreTraining,
        seed=1002,
        config=base_config(vocab_size=320, embedding_size=24, hidden_size=64, intermediate_size=128,
                           max_position_embeddings=32, hidden_act="gelu_new"),
    ),
    dict(
        name="masked_lm_gelu",
        cls=AlbertForMaskedLM,
        seed=1003,
        config=base_config(vocab_size=256, embedding_size=32, hidden_size=48, intermediate_size=96,
                           max_position_embeddings=36, hidden_act="gelu"),
    ),
    dict(
        name="groups",
        cls=AlbertModel,
        seed=1004,
        config=base_config(vocab_size=200, embedding_size=16, hidden_size=32, intermediate_size=64,
                           max_position_embeddings=32, num_hidden_layers=12, num_hidden_groups=2,
                           inner_group_num=2, hidden_act="gelu_new"),
    ),
    dict(
        name="groups_uneven",
        cls=AlbertForMaskedLM,
        seed=1005,
        config=base_config(vocab_size=200, embedding_size=16, hidden_size=32, intermediate_size=64,
                           max_position_embeddings=32, num_hidden_layers=5, num_hidden_groups=2,
                           inner_group_num=1, hidden_act="gelu_new"),
    ),
    # 7 layers over 3 groups: transformers' int(i / (7 / 3)) gives groups 0,0,0,1,1,2,2, which
    # differs from the plausible-looking i // ceil(7 / 3) = 0,0,0,1,1,1,2 (for 5 layers / 2
    # groups the two formulas agree, so groups_uneven alone cannot tell them apart).
    dict(
        name="groups_uneven_7x3",
        cls=AlbertModel,
        seed=1011,
        config=base_config(vocab_size=200, embedding_size=16, hidden_size=32, intermediate_size=64,
                           max_position_embeddings=32, num_hidden_layers=7, num_hidden_groups=3,
                           inner_group_num=2, hidden_act="gelu_new"),
    ),
    dict(
        name="seq_cls_relu",
        cls=AlbertForSequenceClassification,
        seed=1006,
        config=base_config(vocab_size=280, embedding_size=16, hidden_size=32, intermediate_size=64,
                           max_position_embeddings=32, hidden_act="relu",
                           id2label={0: "negative", 1: "neutral", 2: "positive"},
                           label2id={"negative": 0, "neutral": 1, "positive": 2}),
    ),
    dict(
        name="token_cls",
        cls=AlbertForTokenClassification,
        seed=1007,
        config=base_config(vocab_size=260, embedding_size=16, hidden_size=32, intermediate_size=64,
                           max_position_embeddings=32, hidden_act="gelu_new",
                           id2label={0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"},
                           label2id={"O": 0, "B-PER": 1, "I-PER": 2, "B-LOC": 3, "I-LOC": 4}),
    ),
    dict(
        name="qa",
        cls=AlbertForQuestionAnswering,
        seed=1008,
        config=base_config(vocab_size=240, embedding_size=16, hidden_size=32, intermediate_size=64,
                           max_position_embeddings=48, hidden_act="gelu_new"),
    ),
    dict(
        name="multiple_choice",
        cls=AlbertForMultipleChoice,
        seed=1009,
        config=base_config(vocab_size=220, embedding_size=16, hidden_size=32, intermediate_size=64,
                           max_position_embeddings=32, hidden_act="gelu_new"),
    ),
    dict(
        name="equal_dims",
        cls=AlbertForMaskedLM,
        seed=1010,
        config=base_config(vocab_size=230, embedding_size=32, hidden_size=32, intermediate_size=64,
                           max_position_embeddings=32, hidden_act="gelu_new"),
    ),
]

# Names of the head outputs stored per model class (attribute names of the output object).
HEAD_OUTPUTS = {
    AlbertModel: ["last_hidden_state", "pooler_output"],
    AlbertForPreTraining: ["prediction_logits", "sop_logits"],
    AlbertForMaskedLM: ["logits"],
    AlbertForSequenceClassification: ["logits"],
    AlbertForTokenClassification: ["logits"],
    AlbertForQuestionAnswering: ["start_logits", "end_logits"],
    AlbertForMultipleChoice: ["logits"],
}


# --------------------------------------------------------------------------------------
# Model construction
# --------------------------------------------------------------------------------------

def build_model(spec: dict) -> nn.Module:
    cls = spec["cls"]
    config = AlbertConfig(**spec["config"])
    torch.manual_seed(spec["seed"])
    try:
        model = cls._from_config(config, attn_implementation="eager")
    except (TypeError, ValueError):
        model = cls(config)
    model.eval()
    perturb(model, spec["seed"])
    model.eval()
    return model


def perturb(model: nn.Module, seed: int) -> None:
    """Move LayerNorm and bias parameters away from their trivial init values (1 / 0).

    Shared parameters (e.g. predictions.decoder.bias is predictions.bias) are only
    modified once.
    """
    torch.manual_seed(seed + 500_000)
    seen: set[int] = set()

    def once(p: torch.Tensor | None) -> bool:
        if p is None or id(p) in seen:
            return False
        seen.add(id(p))
        return True

    with torch.no_grad():
        for _name, module in model.named_modules():
            if isinstance(module, nn.LayerNorm):
                if once(module.weight):
                    module.weight.copy_(1.0 + 0.1 * torch.randn_like(module.weight))
                if once(module.bias):
                    module.bias.add_(0.05 * torch.randn_like(module.bias))
            elif isinstance(module, AlbertMLMHead):
                if once(module.bias):
                    module.bias.add_(0.05 * torch.randn_like(module.bias))
                # the decoder is handled below through the nn.Linear branch (its bias is
                # the same Parameter as module.bias, so it is skipped there)
            if isinstance(module, nn.Linear) and module.bias is not None:
                if once(module.bias):
                    module.bias.add_(0.05 * torch.randn_like(module.bias))

    # Check that the MLM tying survived (and re-tie if not).
    heads = [m for m in model.modules() if isinstance(m, AlbertMLMHead)]
    for head in heads:
        if head.decoder.bias is not head.bias or head.decoder.weight is not model.get_input_embeddings().weight:
            model.tie_weights()
        assert head.decoder.bias is head.bias, "decoder.bias / predictions.bias tie broken"
        assert head.decoder.weight is model.get_input_embeddings().weight, "decoder / embedding tie broken"
        assert torch.equal(head.decoder.bias, head.bias)
        assert float(head.bias.detach().abs().sum()) > 0.0


# --------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------

def rand_tokens(rng: random.Random, vocab: int, n: int) -> list[int]:
    return [rng.randrange(FIRST_RANDOM_ID, vocab) for _ in range(n)]


def single(rng: random.Random, vocab: int, length: int) -> tuple[list[int], list[int]]:
    """[CLS] x... [SEP] of exactly `length` tokens (length 1 is just [CLS])."""
    if length == 1:
        ids = [CLS_ID]
    else:
        ids = [CLS_ID] + rand_tokens(rng, vocab, length - 2) + [SEP_ID]
    return ids, [0] * len(ids)


def pair(rng: random.Random, vocab: int, len_a: int, len_b: int) -> tuple[list[int], list[int]]:
    """[CLS] A [SEP] B [SEP]; token types 0 for [CLS] A [SEP], 1 for B [SEP]."""
    a = rand_tokens(rng, vocab, len_a)
    b = rand_tokens(rng, vocab, len_b)
    ids = [CLS_ID] + a + [SEP_ID] + b + [SEP_ID]
    tt = [0] * (len_a + 2) + [1] * (len_b + 1)
    return ids, tt


def pad_batch(rows: list[tuple[list[int], list[int]]], to_len: int | None = None):
    width = max(len(r[0]) for r in rows) if to_len is None else to_len
    ids, mask, tts = [], [], []
    for r_ids, r_tt in rows:
        n = len(r_ids)
        assert n <= width
        ids.append(r_ids + [PAD_ID] * (width - n))
        mask.append([1] * n + [0] * (width - n))
        tts.append(r_tt + [0] * (width - n))
    return ids, mask, tts


def make_case(name, rows, to_len=None) -> dict:
    ids, mask, tts = pad_batch(rows, to_len)
    return dict(name=name, input_ids=ids, attention_mask=mask, token_type_ids=tts)


def standard_cases(seed: int, vocab: int, max_pos: int) -> list[dict]:
    rng = random.Random(seed)
    mid = max_pos // 2 - 3  # a "middle" length, deliberately odd-ish
    cases = [
        make_case("single_len1", [single(rng, vocab, 1)]),
        make_case(f"single_len{mid}", [single(rng, vocab, mid)]),
        make_case(f"single_len{max_pos}", [single(rng, vocab, max_pos)]),
    ]
    lens = [max_pos // 2 + 2, 4, 11]
    cases.append(make_case("batch3_padded", [single(rng, vocab, n) for n in lens]))
    cases.append(make_case("pair_len15", [pair(rng, vocab, 5, 7)]))
    # A batch of pairs with padding: token types and padding mask together.
    cases.append(make_case("batch2_pair_padded", [pair(rng, vocab, 3, 9), pair(rng, vocab, 6, 2)]))
    return cases


def multiple_choice_cases(seed: int, vocab: int, max_pos: int) -> list[dict]:
    rng = random.Random(seed)
    cases = []
    # batch 2 x 3 choices: [CLS] context [SEP] choice [SEP], padded to the longest choice,
    # so that some choices have padding and some do not.
    batch = []
    for ctx_len, choice_lens in ((6, (2, 5, 9)), (4, (7, 3, 11))):
        ctx = rand_tokens(rng, vocab, ctx_len)
        choices = []
        for cl in choice_lens:
            ch = rand_tokens(rng, vocab, cl)
            ids = [CLS_ID] + ctx + [SEP_ID] + ch + [SEP_ID]
            tt = [0] * (ctx_len + 2) + [1] * (cl + 1)
            choices.append((ids, tt))
        batch.append(choices)
    width = max(len(ids) for choices in batch for ids, _ in choices)
    ids_b, mask_b, tt_b = [], [], []
    for choices in batch:
        i, m, t = pad_batch(choices, width)
        ids_b.append(i)
        mask_b.append(m)
        tt_b.append(t)
    cases.append(dict(name="batch2_choices3_padded", input_ids=ids_b, attention_mask=mask_b, token_type_ids=tt_b))

    # batch 1 x 3 choices, each exactly max_position_embeddings long, no padding.
    ctx_len = 10
    ctx = rand_tokens(rng, vocab, ctx_len)
    choices = []
    for _ in range(3):
        cl = max_pos - ctx_len - 3
        ch = rand_tokens(rng, vocab, cl)
        ids = [CLS_ID] + ctx + [SEP_ID] + ch + [SEP_ID]
        tt = [0] * (ctx_len + 2) + [1] * (cl + 1)
        assert len(ids) == max_pos
        choices.append((ids, tt))
    i, m, t = pad_batch(choices, max_pos)
    cases.append(dict(name=f"batch1_choices3_len{max_pos}", input_ids=[i], attention_mask=[m], token_type_ids=[t]))
    return cases


# --------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------

def run_case(model: nn.Module, cls, case: dict) -> dict[str, np.ndarray]:
    ids = torch.tensor(case["input_ids"], dtype=torch.long)
    mask = torch.tensor(case["attention_mask"], dtype=torch.long)
    tts = torch.tensor(case["token_type_ids"], dtype=torch.long)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, token_type_ids=tts, output_hidden_states=True,
                    return_dict=True)
    tensors: dict[str, torch.Tensor] = {}
    if cls is AlbertModel:
        tensors["last_hidden_state"] = out.last_hidden_state
        tensors["pooler_output"] = out.pooler_output
        assert torch.equal(out.hidden_states[-1], out.last_hidden_state)
    else:
        for name in HEAD_OUTPUTS[cls]:
            tensors[name] = getattr(out, name)
        tensors["last_hidden_state"] = out.hidden_states[-1]
        # Sanity check: hidden_states[-1] is the base model's encoder output.
        flat = lambda t: t.view(-1, t.size(-1))  # noqa: E731 (multiple choice flattens choices)
        with torch.no_grad():
            base = model.albert(input_ids=flat(ids), attention_mask=flat(mask), token_type_ids=flat(tts),
                                return_dict=True)
        assert torch.equal(base.last_hidden_state, out.hidden_states[-1]), "hidden_states[-1] != encoder output"
    result = {}
    for name, t in tensors.items():
        assert t.dtype == torch.float32
        assert torch.isfinite(t).all(), f"non-finite {name}"
        result[name] = np.ascontiguousarray(t.detach().cpu().numpy().astype(np.float32))
    return result


def expected_shape(cls, name: str, case: dict, cfg: dict) -> tuple:
    ids = np.array(case["input_ids"])
    if cls is AlbertForMultipleChoice:
        b, c, s = ids.shape
        return {"logits": (b, c), "last_hidden_state": (b * c, s, cfg["hidden_size"])}[name]
    b, s = ids.shape
    num_labels = len(cfg.get("id2label", {0: 0, 1: 1}))
    return {
        "last_hidden_state": (b, s, cfg["hidden_size"]),
        "pooler_output": (b, cfg["hidden_size"]),
        "prediction_logits": (b, s, cfg["vocab_size"]),
        "sop_logits": (b, 2),
        "logits": {
            AlbertForMaskedLM: (b, s, cfg["vocab_size"]),
            AlbertForSequenceClassification: (b, num_labels),
            AlbertForTokenClassification: (b, s, num_labels),
        }.get(cls),
        "start_logits": (b, s),
        "end_logits": (b, s),
    }[name]


def int_list_json(x) -> str:
    return json.dumps(x, separators=(", ", ": "))


def write_goldens_json(path: Path, model_class: str, cases: list[dict]) -> None:
    """Readable JSON: one line per case field, integer arrays kept compact."""
    lines = ["{"]
    lines.append(f'  "model_class": {json.dumps(model_class)},')
    lines.append(f'  "transformers_version": {json.dumps(transformers.__version__)},')
    lines.append(f'  "torch_version": {json.dumps(torch.__version__.split("+")[0])},')
    lines.append('  "cases": [')
    for ci, case in enumerate(cases):
        lines.append("    {")
        lines.append(f'      "name": {json.dumps(case["name"])},')
        for key in ("input_ids", "attention_mask", "token_type_ids"):
            lines.append(f'      "{key}": {int_list_json(case[key])},')
        lines.append(f'      "outputs": {json.dumps(case["outputs"])}')
        lines.append("    }" + ("," if ci + 1 < len(cases) else ""))
    lines.append("  ]")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    json.loads(text)  # must be valid JSON
    path.write_text(text)


def save_model(model: nn.Module, out_dir: Path) -> None:
    params = inspect.signature(model.save_pretrained).parameters
    if "safe_serialization" in params:
        model.save_pretrained(out_dir, safe_serialization=True)
    else:  # transformers >= 5 always writes safetensors and dropped the argument
        model.save_pretrained(out_dir)
    for f in out_dir.iterdir():
        if f.name not in ("config.json", "model.safetensors", "generation_config.json"):
            if f.stat().st_size > 64 * 1024:
                f.unlink()
    assert (out_dir / "model.safetensors").is_file(), "save_pretrained did not write model.safetensors"


def check_padding_invariance(model: nn.Module, cls, case: dict, outs: dict[str, np.ndarray]) -> None:
    """A padded row must give (nearly) the same encoder output as the same row run alone, unpadded."""
    ids = np.array(case["input_ids"])
    mask = np.array(case["attention_mask"])
    tts = np.array(case["token_type_ids"])
    if mask.all():
        return
    seq = ids.shape[-1]
    ids, mask, tts = ids.reshape(-1, seq), mask.reshape(-1, seq), tts.reshape(-1, seq)
    hidden = outs["last_hidden_state"].reshape(-1, seq, outs["last_hidden_state"].shape[-1])
    for r in range(ids.shape[0]):
        n = int(mask[r].sum())
        assert mask[r, :n].all() and not mask[r, n:].any()
        with torch.no_grad():
            alone = model.albert if cls is not AlbertModel else model
            o = alone(input_ids=torch.tensor(ids[r:r + 1, :n]), attention_mask=torch.ones(1, n, dtype=torch.long),
                      token_type_ids=torch.tensor(tts[r:r + 1, :n]), return_dict=True)
        np.testing.assert_allclose(o.last_hidden_state[0].numpy(), hidden[r, :n], rtol=0, atol=1e-4)


def generate_fixture(spec: dict) -> dict:
    name, cls, cfg = spec["name"], spec["cls"], spec["config"]
    out_dir = FIXTURES / name
    out_dir.mkdir(parents=True)
    model = build_model(spec)
    attn_impl = model.config._attn_implementation
    save_model(model, out_dir)

    if cls is AlbertForMultipleChoice:
        cases = multiple_choice_cases(spec["seed"], cfg["vocab_size"], cfg["max_position_embeddings"])
    else:
        cases = standard_cases(spec["seed"], cfg["vocab_size"], cfg["max_position_embeddings"])

    tensors: dict[str, np.ndarray] = {}
    for case in cases:
        outs = run_case(model, cls, case)
        names = list(HEAD_OUTPUTS[cls])
        if cls is not AlbertModel:
            names.insert(0, "last_hidden_state")
        check_padding_invariance(model, cls, case, outs)
        case["outputs"] = names
        for out_name in names:
            arr = outs[out_name]
            want = expected_shape(cls, out_name, case, cfg)
            assert arr.shape == tuple(want), f"{name}/{case['name']}/{out_name}: {arr.shape} != {want}"
            tensors[f"{case['name']}/{out_name}"] = arr

    write_goldens_json(out_dir / "goldens.json", cls.__name__, cases)
    save_file(tensors, str(out_dir / "goldens.safetensors"), metadata={"format": "np"})

    # Reload the saved model and check it reproduces the goldens exactly.
    reloaded = cls.from_pretrained(out_dir, attn_implementation="eager").eval()
    for case in cases[:2]:
        outs = run_case(reloaded, cls, case)
        for out_name in case["outputs"]:
            np.testing.assert_array_equal(outs[out_name], tensors[f"{case['name']}/{out_name}"])

    np_err = numpy_reference_check(out_dir)
    return dict(name=name, cls=cls.__name__, cases=len(cases), attn=attn_impl, dir=out_dir, np_err=np_err)


# --------------------------------------------------------------------------------------
# Independent float64 NumPy re-implementation, reading only the files written to disk
# (config.json + model.safetensors + goldens.json).  It proves the fixture on disk is
# self-sufficient (tied / dropped weights, group mapping, activations, masking) and
# documents the maths the Rust engine has to reproduce.
# --------------------------------------------------------------------------------------

_erf = np.vectorize(math.erf, otypes=[np.float64])

NP_ACT = {
    "gelu": lambda x: 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0))),
    "gelu_new": lambda x: 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3))),
    "relu": lambda x: np.maximum(x, 0.0),
}


def np_layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def np_softmax(x):
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


def np_forward(fixture_dir: Path, case: dict) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    cfg = json.loads((fixture_dir / "config.json").read_text())
    arch = cfg["architectures"][0]
    w = {k: v.astype(np.float64) for k, v in load_file(str(fixture_dir / "model.safetensors")).items()}
    pre = "" if arch == "AlbertModel" else "albert."
    eps = cfg["layer_norm_eps"]
    act = NP_ACT[cfg["hidden_act"]]

    def lin(x, name):
        return x @ w[name + ".weight"].T + w[name + ".bias"]

    ids = np.array(case["input_ids"])
    mask = np.array(case["attention_mask"])
    tts = np.array(case["token_type_ids"])
    seq = ids.shape[-1]
    ids, mask, tts = ids.reshape(-1, seq), mask.reshape(-1, seq), tts.reshape(-1, seq)

    e = pre + "embeddings."
    x = (w[e + "word_embeddings.weight"][ids] + w[e + "token_type_embeddings.weight"][tts]
         + w[e + "position_embeddings.weight"][np.arange(seq)][None])
    x = np_layer_norm(x, w[e + "LayerNorm.weight"], w[e + "LayerNorm.bias"], eps)
    h = lin(x, pre + "encoder.embedding_hidden_mapping_in")

    n_heads = cfg["num_attention_heads"]
    dh = cfg["hidden_size"] // n_heads
    bias = np.where(mask[:, None, None, :] == 1, 0.0, -1e30)
    n_layers, n_groups = cfg["num_hidden_layers"], cfg["num_hidden_groups"]
    for i in range(n_layers):
        g = int(i / (n_layers / n_groups))
        for j in range(cfg["inner_group_num"]):
            p = f"{pre}encoder.albert_layer_groups.{g}.albert_layers.{j}."
            b_, s_ = h.shape[:2]

            def split(t):
                return t.reshape(b_, s_, n_heads, dh).transpose(0, 2, 1, 3)

            q, k, v = (split(lin(h, p + "attention." + n)) for n in ("query", "key", "value"))
            probs = np_softmax(q @ k.transpose(0, 1, 3, 2) / math.sqrt(dh) + bias)
            ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(b_, s_, -1)
            a = np_layer_norm(h + lin(ctx, p + "attention.dense"), w[p + "attention.LayerNorm.weight"],
                              w[p + "attention.LayerNorm.bias"], eps)
            f = lin(act(lin(a, p + "ffn")), p + "ffn_output")
            h = np_layer_norm(f + a, w[p + "full_layer_layer_norm.weight"], w[p + "full_layer_layer_norm.bias"], eps)

    out = {"last_hidden_state": h}
    pooled = np.tanh(lin(h[:, 0], pre + "pooler")) if pre + "pooler.weight" in w else None
    if arch == "AlbertModel":
        out["pooler_output"] = pooled
    if "predictions.bias" in w:
        # decoder.weight is tied to the word embeddings and decoder.bias to predictions.bias:
        # both are dropped by save_pretrained.
        assert "predictions.decoder.weight" not in w and "predictions.decoder.bias" not in w
        m = np_layer_norm(act(lin(h, "predictions.dense")), w["predictions.LayerNorm.weight"],
                          w["predictions.LayerNorm.bias"], eps)
        mlm = m @ w[pre + "embeddings.word_embeddings.weight"].T + w["predictions.bias"]
        out["prediction_logits" if arch == "AlbertForPreTraining" else "logits"] = mlm
    if arch == "AlbertForPreTraining":
        out["sop_logits"] = lin(pooled, "sop_classifier.classifier")
    elif arch == "AlbertForSequenceClassification":
        out["logits"] = lin(pooled, "classifier")
    elif arch == "AlbertForTokenClassification":
        out["logits"] = lin(h, "classifier")
    elif arch == "AlbertForQuestionAnswering":
        qa = lin(h, "qa_outputs")
        out["start_logits"], out["end_logits"] = qa[..., 0], qa[..., 1]
    elif arch == "AlbertForMultipleChoice":
        out["logits"] = lin(pooled, "classifier").reshape(len(case["input_ids"]), -1)
    return out


def numpy_reference_check(fixture_dir: Path) -> float:
    """Returns the largest |numpy - golden| over all outputs of all cases."""
    from safetensors.numpy import load_file

    goldens = json.loads((fixture_dir / "goldens.json").read_text())
    tensors = load_file(str(fixture_dir / "goldens.safetensors"))
    assert len(tensors) == sum(len(c["outputs"]) for c in goldens["cases"])
    worst = 0.0
    for case in goldens["cases"]:
        ref = np_forward(fixture_dir, case)
        for name in case["outputs"]:
            gold = tensors[f"{case['name']}/{name}"]
            assert ref[name].shape == gold.shape, (fixture_dir.name, case["name"], name, ref[name].shape, gold.shape)
            err = float(np.abs(ref[name] - gold).max())
            assert err < 1e-3, f"{fixture_dir.name}/{case['name']}/{name}: numpy vs torch max abs diff {err}"
            worst = max(worst, err)
    return worst


def dir_size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def main() -> int:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()

    # Rewrite only this script's fixtures: other scripts own tokenizer/, outlier_base/,
    # trained_pydoc/ and ort_baseline.json.
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for spec in FIXTURE_SPECS:
        if (FIXTURES / spec["name"]).exists():
            shutil.rmtree(FIXTURES / spec["name"])

    summaries = [generate_fixture(spec) for spec in FIXTURE_SPECS]
    (FIXTURES / "index.json").write_text(
        json.dumps({"fixtures": [s["name"] for s in summaries]}, indent=2) + "\n")

    print(f"transformers {transformers.__version__}, torch {torch.__version__}, numpy {np.__version__}, "
          f"safetensors {safetensors.__version__}")
    print(f"{'fixture':<18} {'model class':<34} {'attn':<6} {'cases':>5} "
          f"{'model.safetensors':>18} {'goldens.safetensors':>20} {'goldens.json':>13} {'total':>9} {'numpy max|err|':>15}")
    for s in summaries:
        d = s["dir"]
        print(f"{s['name']:<18} {s['cls']:<34} {s['attn']:<6} {s['cases']:>5} "
              f"{(d / 'model.safetensors').stat().st_size:>18} {(d / 'goldens.safetensors').stat().st_size:>20} "
              f"{(d / 'goldens.json').stat().st_size:>13} {dir_size(d):>9} {s['np_err']:>15.2e}")
    total = dir_size(FIXTURES)
    print(f"total size of {FIXTURES.relative_to(REPO_ROOT)}: {total} bytes ({total / 1024 / 1024:.2f} MiB)")

    digest = hashlib.sha256()
    for f in sorted(FIXTURES.rglob("*")):
        if f.is_file():
            digest.update(str(f.relative_to(FIXTURES)).encode() + b"\0" + f.read_bytes())
    print(f"sha256 over all fixture files: {digest.hexdigest()}")
    return 0


if __name__ == "__main__":
    os.chdir(REPO_ROOT)
    sys.exit(main())
