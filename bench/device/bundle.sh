#!/bin/bash
# Packs what `bench/device/run.sh` needs into .dev/ (git-ignored), for a machine that has
# no Rust toolchain and no network (the lent device machine: python3 with numpy and
# onnxruntime, nothing else assumed). Run from the repository root on an x86_64 host:
#
#   bench/device/bundle.sh [WORKDIR]     (WORKDIR: a `compare_ort.py --workdir` that holds
#                                         outlier.albq and encoder.onnx; default /work/cmp)
#
# then, on the device, `bash bench/device/run.sh` with `.dev` carried. The binaries are
# built here (glibc 2.36) and stripped; the ONNX int8 graph is re-made from the fp32 one,
# and the fp32 graph's outputs are saved instead of the 30 MB graph itself.
set -euo pipefail
work=${1:-/work/cmp}
py=${PYTHON:-/work/venv/bin/python}
out=.dev
x=$(mktemp -d)
trap 'rm -rf "$x"' EXIT
rm -rf "$out" && mkdir -p "$out/cmp" "$out/tgt/release" "$x/tests"
cargo build --release -q -p albert-tools --bin albert -p albert-engine --examples
cargo bench -q -p albert-engine --bench peak --no-run 2>/dev/null
CARGO_TARGET_DIR=target/avx2 RUSTFLAGS='-C target-feature=+avx2,+fma' \
  cargo build --release -q -p albert-engine --example gemm_best
# Test binaries, by the names cargo prints.
cargo test --release -p albert-engine -p albert-tests --no-run --message-format=json 2>/dev/null |
  "$py" -c '
import json, sys
for line in sys.stdin:
    j = json.loads(line)
    if j.get("reason") == "compiler-artifact" and j.get("executable") and j["profile"]["test"]:
        print(j["package_id"].split("#")[0].rsplit("/", 1)[-1], j["target"]["name"], j["executable"])
' | while read -r pkg name exe; do cp "$exe" "$x/tests/${pkg}_$name"; done
cp target/release/albert "$x/albert"
for e in gemm_best gemm_cold gemm_one pool_overhead; do cp "target/release/examples/$e" "$x/"; done
cp "$(ls -t target/release/deps/peak-* | grep -v '\.d$' | head -1)" "$x/peak"
cp target/avx2/release/examples/gemm_best "$x/gemm_best_avx2"
strip "$x"/albert "$x"/gemm_* "$x"/pool_overhead "$x"/peak "$x"/tests/*
tar cJf "$out/bins.tar.xz" --owner=0 --group=0 -C "$x" .
cp "$work/outlier.albq" "$out/cmp/"
"$py" - "$work" "$out/cmp" <<'PY'
import sys
from pathlib import Path
sys.path.insert(0, "bench")
import compare_ort as c
work, out = Path(sys.argv[1]), Path(sys.argv[2])
print("MatMulInteger nodes:", c.quantize_onnx(work / "encoder.onnx", out / "encoder.pre.onnx", out / "encoder.int8.onnx", False))
(out / "encoder.pre.onnx").unlink()
for s in (8, 32, 128):
    c.fp32_hidden(work / "encoder.onnx", out, s)
PY
# The forward pass's md5 per case on this host: every kernel on the device must match it.
for n in 5 8 13 40 128; do
  ids=$("$py" -c "import sys; sys.path.insert(0, 'bench'); from compare_ort import ids_for; print(','.join(map(str, ids_for($n)[0])))")
  for t in 1 2; do
    echo "$n $t $(target/release/albert forward --model "$out/cmp/outlier.albq" --ids "$ids" --threads $t --json | md5sum | cut -c1-32)"
  done
done > "$out/expect.md5"
du -sh "$out"
