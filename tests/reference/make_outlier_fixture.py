#!/usr/bin/env python3
"""The "outlier" fixture: an albert-base-shaped model (hidden 768, 12 heads, FFN 3072,
embedding 128, 12 iterations) whose LayerNorm gains/biases and a few FFN-output rows are
scaled so that a few hidden channels are 20-60x larger than the rest, as in trained BERTs.
Random-init weights have no outliers and flatter any int8 scheme; this one does not.

Its fp32 checkpoint would be ~30 MB, too large to commit.  So the weights come from a
counter-based generator (splitmix64, below) that `tests/src/synth.rs` reproduces bit for
bit in Rust; `goldens.json` records the SHA-256 of the weights so the Rust side proves it
rebuilt the very same model.  Only config.json and the goldens are committed.

Run from the repository root:  /work/venv/bin/python tests/reference/make_outlier_fixture.py
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file
from transformers import AlbertConfig, AlbertForMaskedLM

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures as mf  # noqa: E402

OUT = mf.FIXTURES / "outlier_base"
MASK64 = (1 << 64) - 1
GOLDEN = np.uint64(0x9E3779B97F4A7C15)

CONFIG = dict(
    vocab_size=1000, embedding_size=128, hidden_size=768, num_attention_heads=12, intermediate_size=3072,
    num_hidden_layers=12, num_hidden_groups=1, inner_group_num=1, hidden_act="gelu_new",
    max_position_embeddings=128, type_vocab_size=2, layer_norm_eps=1e-12, pad_token_id=0, bos_token_id=2,
    eos_token_id=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout_prob=0.0,
)
# Hidden channels that carry outliers, with their LayerNorm gain and bias.
OUTLIERS = [(17, 6.0, 3.0), (300, -8.0, -2.0), (555, 5.0, 4.0), (701, 7.0, -3.0)]
# The final LayerNorm of the layer gets a milder gain: it feeds the residual stream of the
# next iteration, and a large gain there compounds over the 12 iterations.
FULL_LN_GAIN = 0.1
# Embedding channels with a large LayerNorm gain (the embedding output feeds one GEMM).
EMB_OUTLIERS = [(5, 30.0, 2.0), (77, -20.0, 4.0)]


def uniform(stream: int, n: int) -> np.ndarray:
    """n values in [-1, 1): splitmix64 of counter `stream * 2^32 + i`, top 24 bits.

    Every step is exact (integer ops mod 2^64, then a 24-bit integer times 2^-23 minus 1),
    so Rust reproduces the float32 values bit for bit."""
    with np.errstate(over="ignore"):
        i = np.arange(n, dtype=np.uint64) + np.uint64(stream << 32)
        z = (i + np.uint64(1)) * GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    top = (z >> np.uint64(40)).astype(np.float32)  # < 2^24: exact
    return top * np.float32(2.0**-23) - np.float32(1.0)


def tensor_specs(cfg: dict) -> list[tuple[str, tuple[int, ...], str, float]]:
    """(name, shape, kind, amplitude) in generation order; the stream number is the index."""
    v, e, h, i, p = (cfg[k] for k in ("vocab_size", "embedding_size", "hidden_size", "intermediate_size",
                                      "max_position_embeddings"))
    w, b = 0.0346, 0.02  # uniform amplitude: std 0.02 for weights; biases small
    L = "albert.encoder.albert_layer_groups.0.albert_layers.0."
    s = [
        ("albert.embeddings.word_embeddings.weight", (v, e), "w", w),
        ("albert.embeddings.position_embeddings.weight", (p, e), "w", w),
        ("albert.embeddings.token_type_embeddings.weight", (2, e), "w", w),
        ("albert.embeddings.LayerNorm.weight", (e,), "g", 0.1),
        ("albert.embeddings.LayerNorm.bias", (e,), "w", b),
        ("albert.encoder.embedding_hidden_mapping_in.weight", (h, e), "w", w),
        ("albert.encoder.embedding_hidden_mapping_in.bias", (h,), "w", b),
    ]
    for n in ("query", "key", "value", "dense"):
        s += [(L + f"attention.{n}.weight", (h, h), "w", w), (L + f"attention.{n}.bias", (h,), "w", b)]
    s += [
        (L + "attention.LayerNorm.weight", (h,), "g", 0.1),
        (L + "attention.LayerNorm.bias", (h,), "w", b),
        (L + "ffn.weight", (i, h), "w", w),
        (L + "ffn.bias", (i,), "w", b),
        (L + "ffn_output.weight", (h, i), "w", w),
        (L + "ffn_output.bias", (h,), "w", b),
        (L + "full_layer_layer_norm.weight", (h,), "g", 0.1),
        (L + "full_layer_layer_norm.bias", (h,), "w", b),
        ("predictions.bias", (v,), "w", b),
        ("predictions.dense.weight", (e, h), "w", w),
        ("predictions.dense.bias", (e,), "w", b),
        ("predictions.LayerNorm.weight", (e,), "g", 0.1),
        ("predictions.LayerNorm.bias", (e,), "w", b),
    ]
    return s


def make_weights(cfg: dict) -> dict[str, np.ndarray]:
    out = {}
    for stream, (name, shape, kind, amp) in enumerate(tensor_specs(cfg)):
        u = uniform(stream, int(np.prod(shape))).reshape(shape)
        x = u * np.float32(amp)
        if kind == "g":
            x = x + np.float32(1.0)
        out[name] = x.astype(np.float32)
    L = "albert.encoder.albert_layer_groups.0.albert_layers.0."
    for c, g, b in OUTLIERS:
        out[L + "attention.LayerNorm.weight"][c] = np.float32(g)
        out[L + "attention.LayerNorm.bias"][c] = np.float32(b)
        out[L + "full_layer_layer_norm.weight"][c] = np.float32(g * FULL_LN_GAIN)
        out[L + "full_layer_layer_norm.bias"][c] = np.float32(b * FULL_LN_GAIN)
    for c, g, b in EMB_OUTLIERS:
        out["albert.embeddings.LayerNorm.weight"][c] = np.float32(g)
        out["albert.embeddings.LayerNorm.bias"][c] = np.float32(b)
    return out


def weights_sha256(cfg: dict, weights: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name, _, _, _ in tensor_specs(cfg):
        h.update(np.ascontiguousarray(weights[name], dtype="<f4").tobytes())
    return h.hexdigest()


def main() -> int:
    torch.manual_seed(0)
    cfg = AlbertConfig(**CONFIG, architectures=["AlbertForMaskedLM"])
    model = AlbertForMaskedLM._from_config(cfg, attn_implementation="eager").eval()
    weights = make_weights(CONFIG)
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=False)
    # The decoder is tied to the word embeddings and its bias to predictions.bias.
    assert not unexpected, unexpected
    assert all(m.startswith("predictions.decoder") for m in missing), missing
    model.tie_weights()
    assert torch.equal(model.predictions.decoder.weight, model.albert.embeddings.word_embeddings.weight)

    rng = random.Random(1234)
    v = CONFIG["vocab_size"]
    cases = [
        mf.make_case("single_len16", [mf.single(rng, v, 16)]),
        mf.make_case("single_len64", [mf.single(rng, v, 64)]),
        mf.make_case("batch2_pair_padded", [mf.pair(rng, v, 17, 20), mf.pair(rng, v, 9, 6)]),
    ]
    goldens = {}
    ratios = []
    for case in cases:
        outs = mf.run_case(model, AlbertForMaskedLM, case)
        case["outputs"] = ["last_hidden_state", "logits"]
        for k in case["outputs"]:
            goldens[f"{case['name']}/{k}"] = outs[k]
        # Evidence of outliers: per token, max |x| over outlier channels / median |x|.
        hs = outs["last_hidden_state"].reshape(-1, CONFIG["hidden_size"])
        med = np.median(np.abs(hs), axis=1)
        big = np.abs(hs[:, [c for c, _, _ in OUTLIERS]]).max(axis=1)
        ratios.extend((big / med).tolist())

    OUT.mkdir(parents=True, exist_ok=True)
    for f in OUT.iterdir():
        f.unlink()
    cfg.to_json_file(OUT / "config.json")
    mf.write_goldens_json(OUT / "goldens.json", "AlbertForMaskedLM", cases)
    meta = json.loads((OUT / "goldens.json").read_text())
    meta["synthetic_weights"] = {
        "generator": "tests/reference/make_outlier_fixture.py (splitmix64, mirrored by tests/src/synth.rs)",
        "sha256_f32_le": weights_sha256(CONFIG, weights),
        "outlier_channels": [c for c, _, _ in OUTLIERS],
        "outlier_to_median_ratio": {"min": float(np.min(ratios)), "median": float(np.median(ratios)),
                                    "max": float(np.max(ratios))},
    }
    (OUT / "goldens.json").write_text(json.dumps(meta, indent=1) + "\n")
    save_file(goldens, str(OUT / "goldens.safetensors"))
    size = sum(f.stat().st_size for f in OUT.iterdir())
    print(f"outlier_base: {size} bytes; weights sha256 {meta['synthetic_weights']['sha256_f32_le']}")
    print("outlier/median ratio per token:", meta["synthetic_weights"]["outlier_to_median_ratio"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
