#!/bin/bash
# Issue 5's measurements in one call on a machine without a Rust toolchain (the lent device
# machine): its CPU, the test suites and the forward pass's bits on every kernel it has,
# the peak probes and GEMM rates, ONNX Runtime against this engine, thread scaling. Needs
# the `.dev` folder `bench/device/bundle.sh` makes (carry it), python3 with numpy and
# onnxruntime. About 4.5 minutes on a 16-core Xeon; logs also go to $OUT (or /tmp/out).
#
#   bash bench/device/run.sh
set -u
R=$PWD
O=${OUT:-/tmp/out}
mkdir -p "$O"
T=.dev/tgt/release
X=.dev/x
mkdir -p $X && tar xJf .dev/bins.tar.xz -C $X || { echo "untar failed"; exit 1; }
cp $X/albert $T/albert
# Test binaries find fixtures by CARGO_MANIFEST_DIR (/work/main/...).
[ -e /work/main ] || { mkdir -p /work && ln -s "$R" /work/main; }
M=.dev/cmp/outlier.albq
export RUST_BACKTRACE=0
# One line per `albert bench --json`: p50/p90/p99 ms, tokens/s, peak RSS MB, kernel.
short() { python3 -c 'import json,sys; j=json.load(sys.stdin); print("p50 %.2f p90 %.2f p99 %.2f ms  %.0f tok/s  rss %.1f MB  %s" % (j["p50_ms"], j["p90_ms"], j["p99_ms"], j["tokens_per_s"], j["peak_rss_bytes"]/1e6, j["kernel"]))'; }
step() { echo; echo "== $* ($(date +%T), load $(cut -d' ' -f1 /proc/loadavg))"; }
steal() { awk '/^cpu /{print $9}' /proc/stat; }
# Whether kernel $1 runs on this CPU.
has() { $T/albert inspect --kernels --json | python3 -c "import json,sys; sys.exit(sys.argv[1] not in json.load(sys.stdin)['available'])" "$1"; }

{
step cpu
lscpu | grep -E 'Model name|Socket|Core|Thread|MHz|L1d|L2|L3|NUMA node\(s\)|Hypervisor'
grep -o -w 'avx512vnni\|avx_vnni\|amx_int8\|amx_tile\|avx512_bf16\|avx512bw\|avx2' /proc/cpuinfo | sort | uniq -c
nproc; uptime; echo "steal ticks $(steal)"
grep -m1 '^flags' /proc/cpuinfo > "$O/flags.txt"
$T/albert inspect --kernels
} 2>&1 | tee "$O/cpu.txt"

{
step tests: engine kernels, lib, limits, corruption and the golden suites on this CPU
for t in $X/tests/*; do
  echo "-- $(basename "$t")"
  timeout 150 "$t" --test-threads 16 2>&1 | grep -E '^test result|FAILED|panicked|failed' | head -20
done
step forward md5 per kernel against the AVX2 host build
while read -r n t want; do
  ids=$(python3 -c "import sys; sys.path.insert(0, 'bench'); from compare_ort import ids_for; print(','.join(map(str, ids_for($n)[0])))")
  line="n=$n t=$t"
  for k in amx vnni avxvnni avx2 wide scalar; do
    [ $k = scalar ] && [ "$n" = 128 ] && continue
    has $k || { line="$line $k=absent"; continue; }
    got=$(ALBERT_KERNEL=$k $T/albert forward --model $M --ids "$ids" --threads "$t" --json | md5sum | cut -c1-32)
    [ "$got" = "$want" ] && line="$line $k=same" || line="$line $k=DIFF"
  done
  echo "$line"
done < .dev/expect.md5
} 2>&1 | tee "$O/tests.txt"

{
step peak probes
timeout 60 $X/peak --bench --warm-up-time 1 --measurement-time 2 --noplot 2>&1 | grep -E 'peak/|thrpt|skip'
step gemm_best per kernel, best of 60
for k in amx vnni avxvnni avx2 wide; do timeout 60 $X/gemm_best $k 60; done
echo "-- wide built with +avx2,+fma"; timeout 60 $X/gemm_best_avx2 wide 60
step int16 x int8 GEMM, gemm_one
for s in "128 768 3072" "8 768 3072" "128 3072 768"; do
  for k in vnni avx2; do echo "$k $s: $(timeout 30 $X/gemm_one $k $s 100 i16 | tail -1)"; done
done
step weights not in cache, gemm_cold
for s in "8 3072 768" "8 768 3072" "128 3072 768"; do timeout 30 $X/gemm_cold vnni $s; done
for s in "32 3072 768" "128 3072 768" "128 768 3072"; do timeout 30 $X/gemm_cold amx $s; done
} 2>&1 | tee "$O/kernels.txt"

{
step ORT against albert, one thread, three rounds
timeout 200 python3 bench/compare_ort.py --prebuilt --workdir .dev/cmp --target-dir .dev/tgt --seqs 8,32,128 \
  --rounds 3 --iters 30 2>&1 | grep -v '^{'
step ORT against albert with ALBERT_KERNEL=vnni, the default before amx
ALBERT_KERNEL=vnni timeout 200 python3 bench/compare_ort.py --prebuilt --workdir .dev/cmp --target-dir .dev/tgt \
  --seqs 8,32,128 --rounds 3 --iters 30 2>&1 | grep -v '^{'
step thread pool: the cost of one parallel loop, pool_overhead
timeout 60 $X/pool_overhead 1 2 4 8 16
step end to end, 1 and all threads
for th in 1 2 4 8 16; do for s in 8 32 128; do
  echo "threads $th seq $s: $($T/albert bench --model $M --seq $s --threads $th --iters 40 --warmup 3 --json | short)"
done; done
for s in 8 32 128; do
  echo "vnni forced, threads 1 seq $s: $(ALBERT_KERNEL=vnni $T/albert bench --model $M --seq $s --threads 1 --iters 30 --warmup 3 --json | short)"
  echo "avxvnni forced, threads 1 seq $s: $(ALBERT_KERNEL=avxvnni $T/albert bench --model $M --seq $s --threads 1 --iters 30 --warmup 3 --json | short)"
  echo "avx2 forced, threads 1 seq $s: $(ALBERT_KERNEL=avx2 $T/albert bench --model $M --seq $s --threads 1 --iters 30 --warmup 3 --json | short)"
done
step two-thread scaling, alternating
s0=$(steal); timeout 120 bench/scaling.sh $M 6 128 $T/albert; echo "steal ticks during: $(( $(steal) - s0 ))"
} 2>&1 | tee "$O/e2e.txt"

step done
