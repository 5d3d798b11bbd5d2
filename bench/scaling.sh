#!/bin/bash
# Two-thread scaling at one sequence length: alternating pairs of `albert bench` runs with
# 1 and 2 threads, so both see the same minutes of a shared machine. Prints, per binary,
# the best and median p50 of each and the median of the pairs' throughput ratios, plus the
# host's steal ticks over the run (non-zero: another tenant took CPU time; distrust it).
#
#   bench/scaling.sh MODEL.albq [ROUNDS [SEQ [ALBERT_BINARY...]]]
# Default: 8 rounds, seq 128, target/release/albert (build it first with
# `cargo build --release -p albert-tools --bin albert`).
set -euo pipefail
model=${1:?usage: bench/scaling.sh MODEL.albq [ROUNDS [SEQ [ALBERT_BINARY...]]]}
rounds=${2:-8}
seq=${3:-128}
shift $(( $# < 3 ? $# : 3 ))
bins=("$@")
[ ${#bins[@]} -eq 0 ] && bins=(target/release/albert)
steal() { awk '/^cpu /{print $9}' /proc/stat; }
s0=$(steal)
p50() { "$1" bench --model "$model" --seq "$seq" --threads "$2" --iters 20 --json |
        python3 -c "import json,sys; print(json.load(sys.stdin)['p50_ms'])"; }
for _ in $(seq "$rounds"); do
  for b in "${bins[@]}"; do echo "$b $(p50 "$b" 1) $(p50 "$b" 2)"; done
done | python3 -c "
import sys, statistics as st, collections
runs = collections.defaultdict(list)
for line in sys.stdin:
    b, t1, t2 = line.split()
    runs[b].append((float(t1), float(t2)))
for b, v in runs.items():
    t1 = [a for a, _ in v]; t2 = [c for _, c in v]
    print(f'{b}: 1 thread best {min(t1):.1f} ms, median {st.median(t1):.1f}; 2 threads best {min(t2):.1f}, median {st.median(t2):.1f}; '
          f'throughput ratio: median of pairs {st.median([a / c for a, c in v]):.3f}, medians {st.median(t1) / st.median(t2):.3f}, best {min(t1) / min(t2):.3f}')
"
echo "host steal ticks during the run: $(( $(steal) - s0 ))"
