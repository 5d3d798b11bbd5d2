#!/usr/bin/env bash
# Alternates two `gemm_one` binaries (e.g. before and after a kernel change) on one shape,
# so both see the same minutes of a shared machine, and prints per binary the medians of
# the best and of the mean Gelem/s over the rounds, and every round's mean.
#
#   bench/gemm_alt.sh ROUNDS "M N K" OLD_GEMM_ONE NEW_GEMM_ONE KERNEL [REPS]
set -euo pipefail
rounds=${1:?usage: bench/gemm_alt.sh ROUNDS "M N K" OLD NEW KERNEL [REPS]}
shape=$2; a=$3; b=$4; kernel=$5; reps=${6:-200}
for _ in $(seq "$rounds"); do
  for bin in "$a" "$b"; do
    # shellcheck disable=SC2086 # the shape is three words on purpose
    echo "$bin $("$bin" "$kernel" $shape "$reps")"
  done
done | python3 -c "
import sys, statistics as st, collections
runs = collections.defaultdict(lambda: ([], []))
for line in sys.stdin:
    w = line.split()
    runs[w[0]][0].append(float(w[w.index('best') + 1]))
    runs[w[0]][1].append(float(w[w.index('mean') + 1]))
for b, (best, mean) in runs.items():
    print(f'{b}: best median {st.median(best):.1f}, mean median {st.median(mean):.1f}, means {sorted(mean)}')
"
