#!/usr/bin/env python3
"""ONNX Runtime dynamic-int8 baseline for the ALBERT fixtures.

For every fixture in tests/fixtures/index.json (plus outlier_base, rebuilt from
make_outlier_fixture.py, and trained_pydoc when it exists) this script

  1. loads the fp32 transformers model (eager attention),
  2. exports it to ONNX (TorchScript exporter, opset 17, dynamic batch/choices/seq axes);
     outputs: the encoder's last hidden state (`hidden_states[-1]`) followed by the head
     outputs the fixture stores (same names as in goldens.json),
  3. checks that fp32 ONNX under onnxruntime reproduces every golden
     (max |onnx - golden| / max |golden| <= 1e-4, per output),
  4. runs ORT's recommended pre-processing (quant_pre_process: shape inference + basic graph
     optimisation; its symbolic shape inference fails on this graph and is skipped), checks
     the pre-processed fp32 model against the goldens too, then
     onnxruntime.quantization.quantize_dynamic (QInt8 weights, ORT defaults otherwise) with
     per_channel False and True (and, as side notes, reduce_range=True, and no pre-processing,
     where the shared ALBERT weights of iterations 2..N stay fp32 behind Identity nodes),
  5. compares the int8 outputs with the fp32 goldens:
       tok_cos_mean / tok_cos_min  cosine of last_hidden_state per real token
                                   (attention_mask == 1), all cases pooled;
       mlm_cos_mean / mlm_cos_min  cosine per MLM logit row (one row per real token),
                                   fixtures with `prediction_logits` or MaskedLM `logits`;
       top1_agree / top5_overlap   trained_pydoc only, on heldout.json.

and writes tests/fixtures/ort_baseline.json.  ONNX files go to a temporary directory
(default /tmp/ort_baseline) and are never committed.

Run from the repository root:   nice /work/venv/bin/python tests/reference/ort_baseline.py
Optional: --only NAME[,NAME..] to restrict fixtures (then the JSON is merged, not replaced),
          --onnx-dir DIR for the ONNX files.
Deterministic: CPU, single-threaded torch and onnxruntime, no randomness.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic
from safetensors.numpy import load_file
import transformers
from transformers import (AlbertForMaskedLM, AlbertForMultipleChoice, AlbertForPreTraining,
                          AlbertForQuestionAnswering, AlbertForSequenceClassification,
                          AlbertForTokenClassification, AlbertModel)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FIXTURES = REPO / "tests" / "fixtures"
OUT_JSON = FIXTURES / "ort_baseline.json"
sys.path.insert(0, str(HERE))

CLASSES = {c.__name__: c for c in (AlbertModel, AlbertForPreTraining, AlbertForMaskedLM,
                                   AlbertForSequenceClassification, AlbertForTokenClassification,
                                   AlbertForQuestionAnswering, AlbertForMultipleChoice)}
OPSET = 17
FP32_TOL = 1e-4
MODES = {  # name -> (run quant_pre_process first?, quantize_dynamic keyword arguments)
    "per_tensor": (True, dict(per_channel=False, reduce_range=False)),
    "per_channel": (True, dict(per_channel=True, reduce_range=False)),
    "per_tensor_reduce_range": (True, dict(per_channel=False, reduce_range=True)),
    "per_channel_reduce_range": (True, dict(per_channel=True, reduce_range=True)),
    # Without ORT's pre-processing the TorchScript export reaches the shared ALBERT weights of
    # iterations 2..N through Identity nodes, which quantize_dynamic does not treat as
    # constants: only the first iteration's GEMMs become int8.  Kept for reference only.
    "per_tensor_no_preprocess": (False, dict(per_channel=False, reduce_range=False)),
    "per_channel_no_preprocess": (False, dict(per_channel=True, reduce_range=False)),
}


# --------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------

def load_model(name: str, model_class: str) -> torch.nn.Module:
    cls = CLASSES[model_class]
    d = FIXTURES / name
    if name == "outlier_base":
        import make_outlier_fixture as mo  # builds the model exactly as its main() does
        torch.manual_seed(0)
        cfg = transformers.AlbertConfig(**mo.CONFIG, architectures=["AlbertForMaskedLM"])
        model = AlbertForMaskedLM._from_config(cfg, attn_implementation="eager").eval()
        weights = mo.make_weights(mo.CONFIG)
        missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()},
                                                    strict=False)
        assert not unexpected, unexpected
        assert all(m.startswith("predictions.decoder") for m in missing), missing
        model.tie_weights()
        assert torch.equal(model.predictions.decoder.weight, model.albert.embeddings.word_embeddings.weight)
        return model
    # dtype float32: trained_pydoc stores F16 weights; the goldens come from fp32 compute.
    return cls.from_pretrained(d, attn_implementation="eager", dtype=torch.float32).eval()


class Wrapper(torch.nn.Module):
    """(input_ids, attention_mask, token_type_ids) -> (last_hidden_state, *head outputs)."""

    def __init__(self, model: torch.nn.Module, outputs: list[str]):
        super().__init__()
        self.model = model
        self.outputs = outputs
        self.is_base = isinstance(model, AlbertModel)

    def forward(self, input_ids, attention_mask, token_type_ids):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                         output_hidden_states=True, return_dict=True)
        res = []
        for n in self.outputs:
            if n == "last_hidden_state" and not self.is_base:
                res.append(out.hidden_states[-1])
            else:
                res.append(getattr(out, n))
        return tuple(res)


def export(model, outputs: list[str], mc: bool, path: Path) -> None:
    wrapper = Wrapper(model, outputs).eval()
    # Example input: batch 2, padded second row (so the mask path is traced with padding).
    seq = 9
    ids = torch.tensor([[2] + [5 + i for i in range(seq - 2)] + [3], [2, 7, 8, 9, 3] + [0] * (seq - 5)])
    mask = (ids != 0).long()
    mask[0] = 1
    tts = torch.zeros_like(ids)
    if mc:  # [batch][choices][seq]
        ids, mask, tts = (torch.stack([t, t, t], dim=1) for t in (ids, mask, tts))
    axes = {0: "batch", 1: "choices", 2: "seq"} if mc else {0: "batch", 1: "seq"}
    dyn = {n: axes for n in ("input_ids", "attention_mask", "token_type_ids")}
    for n in outputs:
        if n == "last_hidden_state":
            dyn[n] = {0: "batch_x_choices", 1: "seq"} if mc else {0: "batch", 1: "seq"}
        elif n in ("prediction_logits", "start_logits", "end_logits") or (n == "logits" and not mc and
                                                                              model.config.architectures[0] in (
                                                                                  "AlbertForMaskedLM",
                                                                                  "AlbertForTokenClassification")):
            dyn[n] = {0: "batch", 1: "seq"}
        else:
            dyn[n] = {0: "batch"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, (ids, mask, tts), str(path), dynamo=False, opset_version=OPSET,
                          input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=outputs,
                          dynamic_axes=dyn, do_constant_folding=True)
    onnx.checker.check_model(str(path))


def session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def run(sess, ids, mask, tts) -> dict[str, np.ndarray]:
    feeds = {"input_ids": np.asarray(ids, dtype=np.int64), "attention_mask": np.asarray(mask, dtype=np.int64),
             "token_type_ids": np.asarray(tts, dtype=np.int64)}
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def op_summary(path: Path) -> dict:
    """What quantize_dynamic did to the graph: integer GEMMs, float GEMMs left, embeddings."""
    m = onnx.load(str(path))
    inits = {i.name: i for i in m.graph.initializer}
    counts: dict[str, int] = {}
    for n in m.graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    mmi_const_b = mmi_act_b = 0
    scale_sizes = set()
    for n in m.graph.node:
        if n.op_type == "MatMulInteger":
            if n.input[1] in inits:
                mmi_const_b += 1
                scale = inits.get(n.input[1][: -len("_quantized")] + "_scale") if n.input[1].endswith(
                    "_quantized") else None
                if scale is not None:
                    scale_sizes.add(int(np.prod(scale.dims)) if scale.dims else 1)
            else:
                mmi_act_b += 1
    # The raw TorchScript export reaches shared weights through Identity nodes.
    alias = {n.output[0]: n.input[0] for n in m.graph.node if n.op_type == "Identity"}

    def is_weight(name: str) -> bool:
        while name in alias:
            name = alias[name]
        return name in inits

    float_mm_const = sum(1 for n in m.graph.node if n.op_type in ("MatMul", "Gemm") and
                         any(is_weight(i) for i in n.input[:2]))
    gathers = sorted(onnx.TensorProto.DataType.Name(inits[n.input[0]].data_type) + " " + n.input[0]
                     for n in m.graph.node if n.op_type == "Gather" and n.input[0] in inits and
                     len(inits[n.input[0]].dims) == 2)
    return {"MatMulInteger_weight_B": mmi_const_b, "MatMulInteger_activation_B": mmi_act_b,
            "float_MatMul_or_Gemm_with_weight": float_mm_const,
            "float_MatMul_activation_x_activation": counts.get("MatMul", 0) + counts.get("Gemm", 0) - float_mm_const,
            "DynamicQuantizeLinear": counts.get("DynamicQuantizeLinear", 0),
            "weight_scale_sizes": sorted(scale_sizes),
            "embedding_Gather_tables": gathers}


# --------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------

def row_cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-300)


def is_mlm_output(model_class: str, out: str) -> bool:
    return out == "prediction_logits" or (model_class == "AlbertForMaskedLM" and out == "logits")


def case_real_mask(case: dict) -> np.ndarray:
    m = np.asarray(case["attention_mask"])
    return m.reshape(-1, m.shape[-1]).astype(bool)  # [batch(*choices)][seq]


def summarize(cos_list: list[np.ndarray], prefix: str) -> dict:
    c = np.concatenate(cos_list)
    return {f"{prefix}_mean": float(c.mean()), f"{prefix}_min": float(c.min()), f"{prefix}_n": int(c.size)}


def heldout_items(path: Path) -> list[dict]:
    h = json.loads(path.read_text())
    if isinstance(h, dict):
        for k in ("sentences", "items", "cases", "examples", "heldout"):
            if k in h and isinstance(h[k], list):
                return h[k]
        lists = [v for v in h.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
        assert len(lists) == 1, f"unrecognised heldout.json layout: {list(h)}"
        return lists[0]
    return h


def heldout_metrics(sess, items: list[dict], mlm_name: str) -> dict:
    top1 = []
    overlap = []
    for it in items:
        ids = np.asarray(it["input_ids"], dtype=np.int64).reshape(1, -1)
        mask = np.asarray(it.get("attention_mask", np.ones_like(ids)), dtype=np.int64).reshape(1, -1)
        tts = np.asarray(it.get("token_type_ids", np.zeros_like(ids)), dtype=np.int64).reshape(1, -1)
        out = run(sess, ids, mask, tts)[mlm_name]
        row = out[0, int(it["mask_position"])]
        order = np.argsort(-row, kind="stable")
        ref5 = [int(x) for x in it["top5_ids"]]
        top1.append(int(order[0]) == ref5[0])
        overlap.append(len(set(int(x) for x in order[:5]) & set(ref5)) / 5.0)
    return {"top1_agree": float(np.mean(top1)), "top5_overlap": float(np.mean(overlap)), "heldout_n": len(items)}


# --------------------------------------------------------------------------------------
# Per fixture
# --------------------------------------------------------------------------------------

def fixture_baseline(name: str, onnx_dir: Path) -> dict:
    d = FIXTURES / name
    meta = json.loads((d / "goldens.json").read_text())
    model_class = meta["model_class"]
    cases = meta["cases"]
    goldens = load_file(str(d / "goldens.safetensors"))
    # Cases may store a subset of the outputs (the trained model keeps MLM logits only
    # for its short cases): export the union, compare what each case has.
    outputs = ["last_hidden_state"]
    for c in cases:
        outputs += [o for o in c["outputs"] if o not in outputs]
    mc = model_class == "AlbertForMultipleChoice"
    mlm_name = next((o for o in outputs if is_mlm_output(model_class, o)), None)

    model = load_model(name, model_class)
    if not model.config.architectures:
        model.config.architectures = [model_class]
    fp32_path = onnx_dir / f"{name}.fp32.onnx"
    export(model, outputs, mc, fp32_path)
    del model

    # fp32 ONNX fidelity
    sess = session(fp32_path)
    fid: dict[str, float] = {}
    for c in cases:
        got = run(sess, c["input_ids"], c["attention_mask"], c["token_type_ids"])
        for o in (o for o in outputs if o in c["outputs"]):
            g = goldens[f"{c['name']}/{o}"]
            assert got[o].shape == g.shape, (name, c["name"], o, got[o].shape, g.shape)
            err = float(np.abs(got[o].astype(np.float64) - g).max() / max(np.abs(g).max(), 1e-30))
            fid[o] = max(fid.get(o, 0.0), err)
    worst = max(fid.values())
    print(f"  fp32 ONNX vs goldens: max rel err {worst:.2e} ({', '.join(f'{k} {v:.1e}' for k, v in fid.items())})",
          flush=True)
    assert worst <= FP32_TOL, f"{name}: fp32 ONNX does not reproduce the goldens ({fid})"
    result: dict = {"model_class": model_class, "fp32_onnx_max_rel_err": worst}

    heldout = d / "heldout.json"
    items = heldout_items(heldout) if heldout.exists() else None
    if items is not None:
        assert mlm_name is not None
        result["fp32_onnx_heldout"] = heldout_metrics(sess, items, mlm_name)
    del sess

    # ORT's recommended pre-processing (ONNX shape inference + ORT basic graph optimisation,
    # which among others removes the Identity nodes in front of the shared weights).  ORT's
    # symbolic shape inference fails on this graph ("Incomplete symbolic shape inference"),
    # so it is skipped.  The optimised fp32 model must still reproduce the goldens.
    pp_path = onnx_dir / f"{name}.fp32.preprocessed.onnx"
    quant_pre_process(str(fp32_path), str(pp_path), skip_symbolic_shape=True)
    sess = session(pp_path)
    pp_err = 0.0
    for c in cases:
        got = run(sess, c["input_ids"], c["attention_mask"], c["token_type_ids"])
        for o in (o for o in outputs if o in c["outputs"]):
            g = goldens[f"{c['name']}/{o}"]
            pp_err = max(pp_err, float(np.abs(got[o].astype(np.float64) - g).max() / max(np.abs(g).max(), 1e-30)))
    del sess
    print(f"  fp32 preprocessed ONNX vs goldens: max rel err {pp_err:.2e}", flush=True)
    assert pp_err <= FP32_TOL, f"{name}: pre-processed fp32 ONNX does not reproduce the goldens ({pp_err})"
    result["fp32_preprocessed_onnx_max_rel_err"] = pp_err

    for mode, (pre, kw) in MODES.items():
        q_path = onnx_dir / f"{name}.{mode}.int8.onnx"
        quantize_dynamic(str(pp_path if pre else fp32_path), str(q_path), weight_type=QuantType.QInt8, **kw)
        sess = session(q_path)
        tok, mlm = [], []
        head_err: dict[str, float] = {}
        for c in cases:
            got = run(sess, c["input_ids"], c["attention_mask"], c["token_type_ids"])
            real = case_real_mask(c)
            g = goldens[f"{c['name']}/last_hidden_state"]
            tok.append(row_cos(got["last_hidden_state"], g)[real])
            if mlm_name and mlm_name in c["outputs"]:
                g = goldens[f"{c['name']}/{mlm_name}"]
                mlm.append(row_cos(got[mlm_name], g)[real])
            for o in (o for o in outputs[1:] if o in c["outputs"]):
                g = goldens[f"{c['name']}/{o}"]
                e = float(np.abs(got[o].astype(np.float64) - g).max() / max(np.abs(g).max(), 1e-30))
                head_err[o] = max(head_err.get(o, 0.0), e)
        r = summarize(tok, "tok_cos")
        if mlm_name:
            r.update(summarize(mlm, "mlm_cos"))
        if head_err:
            r["head_max_rel_err"] = head_err
        if items is not None:
            r.update(heldout_metrics(sess, items, mlm_name))
        r["quantize_dynamic"] = {"weight_type": "QInt8", **kw, "quant_pre_process": pre}
        r["graph"] = op_summary(q_path)
        result[mode] = r
        del sess
        print(f"  {mode:25s} tok_cos mean {r['tok_cos_mean']:.6f} min {r['tok_cos_min']:.6f}"
              + (f" | mlm_cos mean {r['mlm_cos_mean']:.6f} min {r['mlm_cos_min']:.6f}" if mlm_name else "")
              + (f" | top1 {r['top1_agree']:.3f} top5 {r['top5_overlap']:.3f}" if items is not None else ""),
              flush=True)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=None, help="comma-separated fixture names (merges into the JSON)")
    ap.add_argument("--onnx-dir", default="/tmp/ort_baseline", type=Path)
    args = ap.parse_args()
    logging.getLogger().setLevel(logging.ERROR)  # ORT's "consider pre-processing" warning
    torch.set_num_threads(1)
    torch.manual_seed(0)
    args.onnx_dir.mkdir(parents=True, exist_ok=True)

    names = list(json.loads((FIXTURES / "index.json").read_text())["fixtures"])
    for extra in ("outlier_base", "trained_pydoc"):
        if extra not in names and (FIXTURES / extra / "goldens.json").exists():
            names.append(extra)
    if args.only:
        wanted = args.only.split(",")
        names = [n for n in names if n in wanted]
        assert names, f"no fixture among {wanted}"

    doc = {"onnxruntime_version": ort.__version__, "onnx_version": onnx.__version__,
           "torch_version": torch.__version__.split("+")[0], "transformers_version": transformers.__version__,
           "export": {"exporter": "torch.onnx.export(dynamo=False) (TorchScript)", "opset": OPSET,
                      "attn_implementation": "eager",
                      "outputs": "last_hidden_state (= hidden_states[-1]) then the head outputs in goldens.json"},
           "quantization": "quant_pre_process(skip_symbolic_shape=True) then "
                           "onnxruntime.quantization.quantize_dynamic(weight_type=QuantType.QInt8), ORT defaults "
                           "otherwise (activations: dynamic per-tensor asymmetric uint8; MatMulConstBOnly=True); "
                           "per_tensor/per_channel use reduce_range=False, *_reduce_range use True, "
                           "*_no_preprocess quantize the raw export (only the first ALBERT iteration gets int8)",
           "metrics": "vs fp32 transformers goldens; cosines over real tokens (attention_mask == 1), cases pooled",
           "fixtures": {}}
    if args.only and OUT_JSON.exists():
        old = json.loads(OUT_JSON.read_text())
        doc["fixtures"] = old.get("fixtures", {})
    for n in names:
        print(f"{n}:", flush=True)
        doc["fixtures"][n] = fixture_baseline(n, args.onnx_dir)
    OUT_JSON.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    print(f"wrote {OUT_JSON}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
