#!/usr/bin/env python3
"""One-thread latency of albert-engine against ONNX Runtime int8 on the same model.

The model is the albert-base-v2-shaped `outlier_base` checkpoint (768 hidden, 12 heads,
3072 FFN, embedding 128, 12 iterations; vocabulary 1000), written by the
`write_outlier_checkpoint` example. This script

  1. writes the checkpoint and packs it with `quantize` (default int8 scheme; minutes),
  2. exports its encoder (transformers' AlbertModel, eager attention) to ONNX (TorchScript
     exporter, opset 17, dynamic batch and sequence axes; output last_hidden_state),
  3. runs ORT's pre-processing (quant_pre_process, skip_symbolic_shape=True: the symbolic
     shape inference fails on this graph) and quantize_dynamic (QInt8 weights, per-channel;
     `--ort-reduce-range`: 7-bit weights, which ORT recommends on x86 without VNNI, where
     its u8 x s8 kernels' int16 pair sums saturate),
     and prints how many MatMulInteger nodes the int8 graph has (without pre-processing the
     shared weights of iterations 2..12 would stay fp32),
  4. for each sequence length, times ORT (intra_op_num_threads=1, sequential) and then
     `albert bench --threads 1 --json` on the blob, batch 1, and prints both side by side;
  5. prints the accuracy both sides pay for that speed: the cosine (mean and minimum over
     tokens) of each one's last_hidden_state against the fp32 ONNX graph run by ORT, on the
     same ids at each length.

`--quantize-arg` passes options to `quantize` (repeat it for each word), e.g.
`--quantize-arg=--act16 --quantize-arg=ffn_output` for int16 activations on the FFN output
(more accuracy for less speed; the default takes int8 activations on every linear).

Not part of CI (it needs torch, transformers and onnxruntime, and takes minutes).
Run from the repository root:

    /work/venv/bin/python bench/compare_ort.py [--seqs 8,32,128] [--iters 30] [--workdir DIR]
        [--max-position 512] [--quantize-arg ARG ...]

`--prebuilt` runs on a machine without a Rust toolchain or torch (one with onnxruntime and
numpy): it takes `albert` from `--target-dir`/release and the blob, the int8 graph and the fp32
reference states (`fp32_hidden_SEQ.npy`, written by every full run) from `--workdir` as they
are, and packs, exports and quantizes nothing.

Both sides see the same token ids ([CLS], ids 5 + (7919·i mod 995), [SEP]), as `albert
bench` builds them. Latencies are wall-clock per forward pass: on a loaded machine, run
it more than once and compare runs made at the same load (the script prints `uptime`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def sh(cmd: list[str], **kw) -> str:
    return subprocess.run(cmd, check=True, text=True, capture_output=True, cwd=REPO, **kw).stdout


def cargo_bin(target_dir: Path, kind: str, name: str) -> Path:
    return target_dir / "release" / ("examples" if kind == "example" else "") / name


def build(target_dir: Path) -> None:
    env = dict(os.environ, CARGO_TARGET_DIR=str(target_dir))
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "albert-tools", "--bin", "albert", "-p", "albert-quantize",
                    "--bin", "quantize"], check=True, cwd=REPO, env=env)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "albert-tests", "--example",
                    "write_outlier_checkpoint"], check=True, cwd=REPO, env=env)


def export_onnx(ckpt: Path, path: Path) -> None:
    import torch
    from transformers import AlbertForMaskedLM

    model = AlbertForMaskedLM.from_pretrained(ckpt, attn_implementation="eager", dtype=torch.float32).eval()
    encoder = model.albert.eval()

    class Encoder(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                          return_dict=True).last_hidden_state

    ids = torch.tensor([[2, 5, 6, 7, 8, 9, 10, 3], [2, 7, 8, 3, 0, 0, 0, 0]])
    mask = (ids != 0).long()
    dyn = {n: {0: "batch", 1: "seq"} for n in ("input_ids", "attention_mask", "token_type_ids", "last_hidden_state")}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(Encoder(encoder).eval(), (ids, mask, torch.zeros_like(ids)), str(path), dynamo=False,
                          opset_version=17, input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["last_hidden_state"], dynamic_axes=dyn, do_constant_folding=True)


def quantize_onnx(fp32: Path, pre: Path, int8: Path, reduce_range: bool) -> int:
    import onnx
    from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic

    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    quantize_dynamic(str(pre), str(int8), weight_type=QuantType.QInt8, per_channel=True, reduce_range=reduce_range)
    return sum(1 for n in onnx.load(str(int8)).graph.node if n.op_type == "MatMulInteger")


def ids_for(seq: int, vocab: int = 1000, bos: int = 2, eos: int = 3) -> np.ndarray:
    ids = [bos if i == 0 else eos if i + 1 == seq else 5 + (i * 7919) % (vocab - 5) for i in range(seq)]
    return np.asarray([ids], dtype=np.int64)


def time_ort(path: Path, seq: int, iters: int, warmup: int) -> list[float]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    ids = ids_for(seq)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    for _ in range(warmup):
        sess.run(None, feeds)
    ms = []
    for _ in range(iters):
        t = time.perf_counter()
        sess.run(None, feeds)
        ms.append((time.perf_counter() - t) * 1e3)
    return ms


def hidden_ort(path: Path, seq: int) -> np.ndarray:
    """last_hidden_state of the graph at `path` for `ids_for(seq)`: [seq, hidden]."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    ids = ids_for(seq)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    return np.asarray(sess.run(None, feeds)[0][0], dtype=np.float64)


def hidden_albert(albert: Path, blob: Path, seq: int) -> np.ndarray:
    ids = ",".join(str(i) for i in ids_for(seq)[0])
    out = sh([str(albert), "forward", "--model", str(blob), "--ids", ids, "--mask-positions", "0", "--threads", "1",
              "--json"])
    return np.asarray(json.loads(out.splitlines()[0])["last_hidden_state"], dtype=np.float64)


def fp32_hidden(fp32: Path, work: Path, seq: int) -> np.ndarray:
    """The fp32 graph's last_hidden_state at `seq`, saved beside it for `--prebuilt` runs
    (which carry the states, not the 30 MB graph)."""
    saved = work / f"fp32_hidden_{seq}.npy"
    if fp32.exists():
        want = hidden_ort(fp32, seq)
        np.save(saved, want)
        return want
    return np.load(saved)


def cosines(got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    """Per-token cosine of `got` against `want` ([seq, hidden]): mean and minimum."""
    c = (got * want).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    return float(c.mean()), float(c.min())


def time_albert(albert: Path, blob: Path, seq: int, iters: int, warmup: int) -> dict:
    out = sh([str(albert), "bench", "--model", str(blob), "--seq", str(seq), "--batch", "1", "--threads", "1",
              "--iters", str(iters), "--warmup", str(warmup), "--json"])
    return json.loads(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seqs", default="8,32,128", help="comma-separated sequence lengths (max 128)")
    ap.add_argument("--iters", type=int, default=30, help="timed runs per side and length")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternating ORT/albert rounds per length: this machine's speed changes from minute "
                         "to minute, so each round times both sides back to back and the median round is reported")
    ap.add_argument("--workdir", type=Path,
                    help="for the checkpoint (ckpt/), blob (outlier.albq) and ONNX files (default: temporary); "
                         "a checkpoint or blob already there is reused (packing takes minutes)")
    ap.add_argument("--max-position", type=int, default=128,
                    help="positions of the written checkpoint (512 allows --seqs up to 512)")
    ap.add_argument("--target-dir", type=Path, default=Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")))
    ap.add_argument("--ort-reduce-range", action="store_true",
                    help="quantize_dynamic(reduce_range=True): 7-bit weights, ORT's remedy for the u8 x s8 "
                         "saturation of its kernels on x86 without VNNI")
    ap.add_argument("--prebuilt", action="store_true",
                    help="no cargo, quantize, torch or ORT quantization: time the workdir's outlier.albq and "
                         "encoder.int8.onnx with --target-dir's albert, and score accuracy against its "
                         "fp32_hidden_SEQ.npy")
    ap.add_argument("--quantize-arg", action="append", default=[],
                    help="one more word for quantize's command line (repeat: --quantize-arg=--act16 "
                         "--quantize-arg=none)")
    args = ap.parse_args()
    seqs = [int(s) for s in args.seqs.split(",")]

    tmp = None if args.workdir else tempfile.TemporaryDirectory(prefix="compare_ort_")
    work = args.workdir or Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    fp32, pre, int8 = work / "encoder.onnx", work / "encoder.pre.onnx", work / "encoder.int8.onnx"
    albert, blob = cargo_bin(args.target_dir, "bin", "albert"), work / "outlier.albq"
    if args.prebuilt:
        scheme, n_mmi = "as packed in the workdir", None
        missing = [p for p in (albert, blob, int8) if not p.exists()]
        if missing:
            ap.error(f"--prebuilt: missing {', '.join(map(str, missing))}")
    else:
        print("building albert, quantize and write_outlier_checkpoint (release) ...", flush=True)
        build(args.target_dir)
        ckpt = work / "ckpt"
        if not (ckpt / "model.safetensors").exists():
            sh([str(cargo_bin(args.target_dir, "example", "write_outlier_checkpoint")), str(ckpt), "--max-position",
                str(args.max_position)])
        # Packed on every run, never reused from the work directory: a blob left there by an
        # older quantize would be timed with an older scheme (it once was: a blob without the
        # default int16 FFN-output activations, which made the engine look 30 % faster).
        scheme = " ".join(args.quantize_arg) or "the default int8 scheme"
        print(f"packing with quantize ({scheme}) ...", flush=True)
        sh([str(cargo_bin(args.target_dir, "bin", "quantize")), str(ckpt), "-o", str(blob), *args.quantize_arg])
        positions = json.loads((ckpt / "config.json").read_text())["max_position_embeddings"]
        if max(seqs) > positions:
            ap.error(f"the checkpoint has {positions} positions (--max-position)")

        rr = ", reduce_range" if args.ort_reduce_range else ""
        print(f"exporting to ONNX and quantizing (quant_pre_process + quantize_dynamic per-channel{rr}) ...", flush=True)
        if not fp32.exists():
            export_onnx(ckpt, fp32)
        n_mmi = quantize_onnx(fp32, pre, int8, args.ort_reduce_range)
        print(f"MatMulInteger nodes in the int8 graph: {n_mmi} (12 iterations x 6 linears + mapping_in = 73 expected)")

    import onnxruntime

    print(f"onnxruntime {onnxruntime.__version__}; kernel: "
          f"{sh([str(albert), 'inspect', '--kernels', '--json']).strip()}")
    print(f"load before: {os.getloadavg()[0]:.2f} (1-min average, {os.cpu_count()} CPUs)")
    print(f"{'seq':>5} {'round':>5} {'ORT int8 p50':>13} {'p90':>8} {'albert p50':>11} {'p90':>8} {'ORT/albert':>11}")
    rows = []
    for seq in seqs:
        rounds = []
        for r in range(args.rounds):
            ort_ms = sorted(time_ort(int8, seq, args.iters, args.warmup))
            ours = time_albert(albert, blob, seq, args.iters, args.warmup)
            o50, o90 = ort_ms[len(ort_ms) // 2], ort_ms[int(0.9 * (len(ort_ms) - 1))]
            rounds.append(dict(seq=seq, round=r, ort_p50_ms=o50, ort_p90_ms=o90, albert_p50_ms=ours["p50_ms"],
                               albert_p90_ms=ours["p90_ms"], ratio=o50 / ours["p50_ms"], kernel=ours["kernel"],
                               threads=ours["threads"]))
            print(f"{seq:>5} {r:>5} {o50:>10.2f} ms {o90:>8.2f} {ours['p50_ms']:>8.2f} ms {ours['p90_ms']:>8.2f} "
                  f"{o50 / ours['p50_ms']:>10.2f}x", flush=True)
        med = sorted(rounds, key=lambda x: x["ratio"])[len(rounds) // 2]
        print(f"{seq:>5} {'med':>5} {'':>13} {'':>8} {'':>11} {'':>8} {med['ratio']:>10.2f}x", flush=True)
        rows.append(dict(med, rounds=rounds))
    print(f"load after: {os.getloadavg()[0]:.2f}")
    print(f"accuracy against the fp32 graph (ORT), last_hidden_state cosine per token, quantize: {scheme}")
    print(f"{'seq':>5} {'ORT int8 mean':>14} {'min':>8} {'albert mean':>12} {'min':>8}")
    accuracy = []
    for seq in seqs:
        want = fp32_hidden(fp32, work, seq)
        o_mean, o_min = cosines(hidden_ort(int8, seq), want)
        a_mean, a_min = cosines(hidden_albert(albert, blob, seq), want)
        accuracy.append(dict(seq=seq, ort_cos_mean=o_mean, ort_cos_min=o_min, albert_cos_mean=a_mean,
                             albert_cos_min=a_min))
        print(f"{seq:>5} {o_mean:>14.6f} {o_min:>8.4f} {a_mean:>12.6f} {a_min:>8.4f}", flush=True)
    print(json.dumps({"matmul_integer_nodes": n_mmi, "quantize_args": args.quantize_arg,
                      "ort_reduce_range": args.ort_reduce_range, "rows": rows,
                      "accuracy": accuracy}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
