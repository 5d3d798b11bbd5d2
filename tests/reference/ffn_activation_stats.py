"""How many bits the FFN output GEMM's activations need, and whether they have outlier channels.

Runs transformers on the trained fixture's held-out cases, collects the input of
`ffn_output` (the GELU outputs) at every application of the shared layer, and prints:
the largest channels, how much a token's maximum falls when the top channels are left
out (a cheaper split would need it to fall), the FFN output's error when those
activations are quantized per token to 8, 10, 12 and 16 bits (asymmetric, as the engine),
and its per-token SQNR with the engine's grids: activation scheme 1 (centred on the
midpoint) and scheme 2 (0 on the grid), at L = 127 and 32767 (`engine/FORMAT.md`).

    /work/venv/bin/python tests/reference/ffn_activation_stats.py

(The venv of `tests/reference/requirements.txt`; nothing in CI runs it.)
"""
import json, torch, numpy as np
from transformers import AlbertForMaskedLM
import pathlib
d = str(pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "trained_pydoc")
m = AlbertForMaskedLM.from_pretrained(d, dtype=torch.float32).eval()
cases = json.load(open(d + "/heldout.json"))["cases"][:150]
layer = m.albert.encoder.albert_layer_groups[0].albert_layers[0]
acts = []
def hook(mod, inp, out):
    acts.append(inp[0].detach().reshape(-1, inp[0].shape[-1]))
h = layer.ffn_output.register_forward_hook(hook)
with torch.no_grad():
    for c in cases:
        ids = torch.tensor([c["input_ids"]])
        m(input_ids=ids)
h.remove()
X = torch.cat(acts).numpy()  # tokens*layers x 1024
print("rows", X.shape)
tokmax = np.abs(X).max(1)
chmax = np.abs(X).max(0)
order = np.argsort(-chmax)
print("channel max top 20:", np.round(chmax[order[:20]], 2))
print("channel max median:", np.median(chmax), "p90", np.percentile(chmax, 90))
for k in [0, 4, 8, 16, 32, 64]:
    rest = np.delete(np.abs(X), order[:k], axis=1).max(1)
    print(k, "median ratio tokmax/restmax", np.median(tokmax / rest), "p10", np.percentile(tokmax / rest, 10))
# int8 per-token quant error vs int16
def qerr(X, bits):
    lo = X.min(1, keepdims=True); hi = X.max(1, keepdims=True)
    s = (hi - lo) / (2**bits - 1)
    q = np.round((X - lo) / s) * s + lo
    return q
W = layer.ffn_output.weight.detach().numpy()
ref = X @ W.T
for bits in [8, 10, 12, 16]:
    q = qerr(X, bits)
    out = q @ W.T
    err = np.abs(out - ref).max(1) / np.abs(ref).max(1)
    cos = (out * ref).sum(1) / np.linalg.norm(out, axis=1) / np.linalg.norm(ref, axis=1)
    print("bits", bits, "rel err max", err.max(), "median", np.median(err), "min cos", cos.min())

# The engine's grids (FORMAT.md, "Activations"): scheme 1 centres each token on its range's
# midpoint; scheme 2 moves the centre onto the grid so that 0 is a code. Most GELU outputs
# sit a hair below 0, where the midpoint grid rounds them all the same way.
Xd, Wd = X.astype(np.float64), W.astype(np.float64)
refd = Xd @ Wd.T
lo, hi = Xd.min(1, keepdims=True), Xd.max(1, keepdims=True)
for L in [127, 32767]:
    for name, on_grid in [("scheme 1 (midpoint)", False), ("scheme 2 (0 on the grid)", True)]:
        if on_grid:
            t = (hi - lo) / (2 * L - 1)
            c = t * np.round((hi + lo) / 2 / t)
        else:
            t = (hi - lo) / (2 * L)
            c = (hi + lo) / 2
        q = np.clip(np.round((Xd - c) / t), -L, L) * t + c
        e = q @ Wd.T - refd
        sq = 10 * np.log10((refd ** 2).sum(1) / (e ** 2).sum(1))
        print(f"L={L:5d} {name:26s} per-token SQNR median {np.median(sq):5.1f} dB, worst {sq.min():5.1f} dB")
