#!/usr/bin/env python3
"""Goldens for the `albert` CLI's pipelines, from transformers' own pipelines.

Run from the repository root:

    /work/venv/bin/python tests/reference/make_pipeline_fixtures.py

It rewrites ``tests/fixtures/pipelines/``: five small random-init checkpoints whose
vocabulary is the tokenizer fixture's (``tests/fixtures/tokenizer``, 4000 pieces), and
``goldens.json`` with what transformers' pipelines return on them:

* fill-mask, feature-extraction, text-classification (top_k, pairs), token-classification
  (aggregation none/simple/first/average/max): transformers 5.23 (requirements.txt);
* question-answering: transformers 5 removed that pipeline, so the script runs itself a
  second time (``--qa``) under ``QA_PYTHON`` (default ``/work/venv-qa/bin/python``), an
  environment with transformers 4.57 (requirements-qa.txt), whose QuestionAnsweringPipeline
  splits long contexts with ``doc_stride``;
* multiple-choice and sentence-order have no pipeline: the goldens are the model's logits
  (AlbertForMultipleChoice, AlbertForPreTraining's ``sop_logits``) and their softmax.

Tokenizer: every pipeline gets the fixture's ``tokenizer.json`` as it is (the file the
engine packs and reproduces exactly). transformers 5's ``AlbertTokenizer`` rebuilds its
pipeline from ``spiece.model`` instead (a WhitespaceSplit first: offsets skip the space
before a word, trailing spaces vanish), so in 5.23 the file is wrapped in
``PreTrainedTokenizerFast``; 4.57's ``AutoTokenizer`` loads it natively.

Decisive outputs: random heads give near-uniform scores, where a label or a span could
flip on rounding noise. The heads' weights are scaled up (``HEAD_GAIN``) so that the
winning label/span has a clear margin; the test compares labels and spans exactly and
scores within 1e-3.

Weights are stored in float16 to keep the committed bytes small; transformers loads them
into float32 models (exact), and ``quantize --dtype f32`` packs the same values.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
OUT = REPO_ROOT / "tests" / "fixtures" / "pipelines"
TOKENIZER = REPO_ROOT / "tests" / "fixtures" / "tokenizer"

CONFIG = dict(
    vocab_size=4000,
    embedding_size=8,
    hidden_size=32,
    num_attention_heads=4,
    intermediate_size=64,
    num_hidden_layers=3,
    num_hidden_groups=1,
    inner_group_num=1,
    hidden_act="gelu_new",
    max_position_embeddings=64,
    type_vocab_size=2,
    initializer_range=0.1,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
    classifier_dropout_prob=0.1,
    pad_token_id=0,
    bos_token_id=2,
    eos_token_id=3,
)

# Multipliers on each head's output weights, by parameter name (see "Decisive outputs" above).
HEAD_GAIN = {
    "predictions.LayerNorm.weight": 10.0,
    "sop_classifier.classifier.weight": 10.0,
    "classifier.weight": 8.0,
    "qa_outputs.weight": 6.0,
}

FIXTURES = {
    # name: (class name, seed, extra config)
    "pretraining": ("AlbertForPreTraining", 11, {}),
    "seq_cls": (
        "AlbertForSequenceClassification",
        12,
        {"id2label": {0: "negative", 1: "neutral", 2: "positive"}},
    ),
    "token_cls": (
        "AlbertForTokenClassification",
        13,
        {"id2label": {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}},
    ),
    "qa": ("AlbertForQuestionAnswering", 14, {}),
    "multiple_choice": ("AlbertForMultipleChoice", 15, {}),
}

QA_CONTEXT_LONG = (
    "The engine reads a packed blob from flash memory. Each tensor starts on a 64-byte boundary, "
    "so the kernels can load it without copying. Weights are stored as int8 with one scale per row. "
    "Activations are quantized per token while the model runs. The tokenizer lives in the same file, "
    "next to the configuration and the labels. A checksum at the end protects the whole blob against "
    "corruption during an update."
)


def set_determinism() -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


def load_model(name: str, cls_name: str | None = None):
    import transformers

    cls = getattr(transformers, cls_name or FIXTURES[name][0])
    kw = {"dtype": torch.float32} if int(transformers.__version__.split(".")[0]) >= 5 else {"torch_dtype": torch.float32}
    m = cls.from_pretrained(OUT / name, attn_implementation="eager", **kw)
    return m.eval()


def to_jsonable(x):
    if isinstance(x, dict):
        return {k: to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.ndarray):
        return to_jsonable(x.tolist())
    return x


# --------------------------------------------------------------------------------------
# Checkpoints (transformers 5)
# --------------------------------------------------------------------------------------


def make_checkpoint(name: str) -> None:
    import transformers
    from transformers import AlbertConfig

    cls_name, seed, extra = FIXTURES[name]
    cfg = AlbertConfig(**CONFIG, **extra)
    cfg.architectures = [cls_name]
    torch.manual_seed(seed)
    model = getattr(transformers, cls_name)(cfg).eval()
    g = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        seen = set()
        for pname, p in model.named_parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            short = pname.removeprefix("albert.")
            if "LayerNorm" in pname or "layer_norm" in pname:
                if pname.endswith("weight"):
                    p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
                else:
                    p.add_(0.05 * torch.randn(p.shape, generator=g))
            elif pname.endswith("bias"):
                p.add_(0.05 * torch.randn(p.shape, generator=g))
            p.mul_(HEAD_GAIN.get(short, 1.0))
            # float16-representable values: the committed file is float16.
            p.copy_(p.half().float())
    d = OUT / name
    d.mkdir(parents=True)
    model.half().save_pretrained(d)
    for f in d.iterdir():
        if f.name not in ("config.json", "model.safetensors"):
            f.unlink()


def fast_tokenizer():
    """The fixture's tokenizer.json as is, in transformers 5 (see the module docstring)."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_file=str(TOKENIZER / "tokenizer.json"),
        unk_token="<unk>",
        pad_token="<pad>",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        bos_token="[CLS]",
        eos_token="[SEP]",
        clean_up_tokenization_spaces=True,
        model_max_length=CONFIG["max_position_embeddings"],
        # The generic class returns no token_type_ids unless told; ALBERT's tokenizer does.
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


# --------------------------------------------------------------------------------------
# Goldens (transformers 5)
# --------------------------------------------------------------------------------------


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def goldens_v5() -> dict:
    from transformers import pipeline

    tok = fast_tokenizer()
    out: dict = {}

    # The fill-mask pipeline wants `logits`: the MLM part of the pretraining checkpoint, as
    # transformers loads it for that task.
    fm = pipeline("fill-mask", model=load_model("pretraining", "AlbertForMaskedLM"), tokenizer=tok)
    out["fill_mask"] = [
        {"fixture": "pretraining", "text": t, "top_k": k, "output": to_jsonable(fm(t, top_k=k))}
        for t, k in [
            ("The [MASK] of the function is returned.", 5),
            ("Each tensor starts on a [MASK] boundary.", 3),
            ("A [MASK] is stored next to the [MASK].", 4),
        ]
    ]

    body = load_model("pretraining", "AlbertModel")
    fe = pipeline("feature-extraction", model=body, tokenizer=tok)
    out["feature_extraction"] = []
    for t in ["Hello world, said Alice in Paris.", "The tokenizer lives in the same file."]:
        feats = np.array(fe(t)[0], dtype=np.float64)  # [seq][hidden]
        mean = feats.mean(axis=0)
        out["feature_extraction"].append(
            {
                "fixture": "pretraining",
                "text": t,
                "output": to_jsonable(fe(t)),
                # Pooled views of the pipeline's output (sentence-transformers' definitions).
                "cls": to_jsonable(feats[0]),
                "mean": to_jsonable(mean),
                "mean_normalized": to_jsonable(mean / np.linalg.norm(mean)),
            }
        )

    tc = pipeline("text-classification", model=load_model("seq_cls"), tokenizer=tok)
    cases = []
    for inputs, kwargs in [
        ("This movie was great fun.", {}),
        ("The weather is cold and grey today.", {"top_k": 2}),
        ("Nothing happened at all.", {"top_k": None}),
        ({"text": "Is the blob valid?", "text_pair": "The checksum matches."}, {}),
        ({"text": "Is the blob valid?", "text_pair": "The checksum does not match."}, {"top_k": 3}),
    ]:
        case = {"fixture": "seq_cls", "output": to_jsonable(tc(inputs, **kwargs))}
        case.update(inputs if isinstance(inputs, dict) else {"text": inputs})
        if "top_k" in kwargs:
            case["top_k"] = kwargs["top_k"]
        cases.append(case)
    out["text_classification"] = cases

    tk = pipeline("token-classification", model=load_model("token_cls"), tokenizer=tok)
    cases = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Tokenizer does not support real words" (expected)
        for t in [
            "Anna Schmidt lives in Berlin and works at Zeiss.",
            "Hello world, said Alice in Paris.",
            "Mr. Ødegaard met Ruth near Lake Geneva.",
        ]:
            for agg in ["none", "simple", "first", "average", "max"]:
                cases.append(
                    {"fixture": "token_cls", "text": t, "aggregation": agg,
                     "output": to_jsonable(tk(t, aggregation_strategy=agg))}
                )
    out["token_classification"] = cases

    mc = load_model("multiple_choice")
    cases = []
    for prompt, choices in [
        ("Where is the tokenizer stored?", ["In the blob.", "On a web server.", "Nowhere at all.", "In the kernel."]),
        ("The checksum protects", ["the whole blob", "only the header"]),
    ]:
        enc = tok([prompt] * len(choices), choices, padding=True, return_tensors="pt")
        with torch.no_grad():
            logits = mc(**{k: v.unsqueeze(0) for k, v in enc.items()}).logits[0].numpy()
        cases.append(
            {"fixture": "multiple_choice", "prompt": prompt, "choices": choices,
             "logits": to_jsonable(logits), "scores": to_jsonable(softmax(logits.astype(np.float64)))}
        )
    out["multiple_choice"] = cases

    pt = load_model("pretraining")
    cases = []
    for a, b in [
        ("The engine reads a packed blob.", "Then it runs the shared layer."),
        ("Then it runs the shared layer.", "The engine reads a packed blob."),
    ]:
        enc = tok(a, b, return_tensors="pt")
        with torch.no_grad():
            logits = pt(**enc).sop_logits[0].numpy()
        cases.append(
            {"fixture": "pretraining", "text": a, "text_pair": b,
             "logits": to_jsonable(logits), "scores": to_jsonable(softmax(logits.astype(np.float64)))}
        )
    out["sop"] = cases
    return out


# --------------------------------------------------------------------------------------
# Question answering (transformers 4.57, run as a child process)
# --------------------------------------------------------------------------------------


def goldens_qa() -> list:
    import transformers
    from transformers import AutoTokenizer, pipeline

    assert transformers.__version__.startswith("4."), "the QA goldens need transformers 4.x (requirements-qa.txt)"
    tok = AutoTokenizer.from_pretrained(TOKENIZER)
    assert tok.is_fast
    qa = pipeline("question-answering", model=load_model("qa"), tokenizer=tok)
    cases = []
    for question, context, kw in [
        ("Who met Ruth?", "Anna Schmidt met Ruth near Lake Geneva in the spring.", {"max_seq_len": 64}),
        ("How are weights stored?", QA_CONTEXT_LONG, {"max_seq_len": 48, "doc_stride": 16}),
        ("What protects the blob?", QA_CONTEXT_LONG, {"max_seq_len": 40, "doc_stride": 12, "top_k": 3}),
        ("Where does the tokenizer live?", QA_CONTEXT_LONG, {"max_seq_len": 64, "doc_stride": 24, "max_answer_len": 5}),
    ]:
        kw = {"doc_stride": 16, "max_answer_len": 15, "top_k": 1, **kw}
        enc = tok(question, context, truncation="only_second", max_length=kw["max_seq_len"],
                  stride=kw["doc_stride"], return_overflowing_tokens=True)
        res = qa(question=question, context=context, **kw)
        cases.append(
            {"fixture": "qa", "question": question, "context": context, **kw,
             "chunks": len(enc["input_ids"]), "output": to_jsonable(res)}
        )
    return cases


def main() -> None:
    set_determinism()
    if sys.argv[1:] == ["--qa"]:
        json.dump(goldens_qa(), sys.stdout)
        return
    import transformers

    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    for name in FIXTURES:
        make_checkpoint(name)
    goldens = {
        "meta": {
            "generator": "tests/reference/make_pipeline_fixtures.py",
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "tokenizer": "tests/fixtures/tokenizer/tokenizer.json",
        }
    }
    goldens.update(goldens_v5())
    qa_python = os.environ.get("QA_PYTHON", "/work/venv-qa/bin/python")
    res = subprocess.run([qa_python, __file__, "--qa"], check=True, capture_output=True, text=True)
    goldens["question_answering"] = json.loads(res.stdout)
    ver = subprocess.run([qa_python, "-c", "import transformers; print(transformers.__version__)"],
                         check=True, capture_output=True, text=True).stdout.strip()
    goldens["meta"]["transformers_question_answering"] = ver
    (OUT / "goldens.json").write_text(json.dumps(goldens, indent=1, ensure_ascii=False) + "\n")
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    for k, v in goldens.items():
        if k != "meta":
            print(f"{k:>22}: {len(v)} cases")
    print(f"wrote {OUT.relative_to(REPO_ROOT)} ({total} bytes)")


if __name__ == "__main__":
    main()
