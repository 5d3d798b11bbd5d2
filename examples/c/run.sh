#!/usr/bin/env bash
# The C API's checks (called by .ci/run):
#   1. include/albert.h equals what cbindgen generates from capi/src/lib.rs;
#   2. albert-capi builds without std (no allocator) for bare-metal targets;
#   3. examples/c/fill_mask.c, linked against libalbert.a, prints for a few sentences
#      exactly what `albert fill-mask --json` prints (opening the blob from bytes and by
#      memory map), and examples/c/errors.c gets the right error codes for bad handles
#      and bad inputs;
#   4. the same, cross-compiled for aarch64 and run under qemu-user: output equal byte for
#      byte to the aarch64 CLI's (under qemu too), predictions equal to the host CLI's
#      (scores compared and reported: byte-equal today).
# Installs what it needs (cbindgen, cross gcc, qemu-user, Rust targets) when missing.
# Usage: examples/c/run.sh [MODEL.albq]   (default: the bundled model)
set -euo pipefail
cd "$(dirname "$0")/../.."

MODEL=${1:-models/albert-pydoc.albq}
OUT=target/c-examples
mkdir -p "$OUT"

step() { printf '\n---- c api: %s\n' "$*"; }

SENTENCES=(
  "The function returns a [MASK] of integers."
  "Use the [MASK] statement to open a file and read its contents."
  "A [MASK] is a function defined inside a class, and [MASK] refers to the instance."
  "Raise a \"ValueError\" when the argument is [MASK]."
  "Exceptions raised in the [MASK] block are caught by the except clause."
  "Le café « spécial » est [MASK] !"
)

# ---- tools -----------------------------------------------------------------------------
apt_install() {
  if command -v apt-get >/dev/null; then
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq "$@"
  else
    echo "need $* (not found and no apt-get)" >&2
    exit 1
  fi
}
command -v gcc >/dev/null || apt_install gcc
command -v g++ >/dev/null || apt_install g++
command -v aarch64-linux-gnu-gcc >/dev/null || apt_install gcc-aarch64-linux-gnu
command -v qemu-aarch64 >/dev/null || apt_install qemu-user
for t in aarch64-unknown-linux-gnu aarch64-unknown-none thumbv7em-none-eabihf; do
  rustup target list --installed | grep -qx "$t" || rustup target add "$t"
done

# The link line rustc wants for a std staticlib on Linux (from --print native-static-libs).
LIBS=(-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc)
CFLAGS=(-std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -O2 -Iinclude)

step "header is up to date"
capi/gen-header.sh --check
printf '#include "albert.h"\nint main(void) { return sizeof(AlbertModel) == 8 * ALBERT_MODEL_WORDS ? 0 : 1; }\n' >"$OUT/header.c"
gcc -std=c99 -pedantic -Wall -Wextra -Werror -Iinclude -fsyntax-only "$OUT/header.c"
g++ -std=c++11 -Wall -Wextra -Werror -Iinclude -fsyntax-only -x c++ "$OUT/header.c"
echo "albert.h compiles as C99 and C++11"

step "no_std builds (no allocator)"
cargo build -q -p albert-capi --no-default-features --target aarch64-unknown-none
cargo build -q -p albert-capi --no-default-features --target thumbv7em-none-eabihf

step "expected output: albert fill-mask --json"
cargo build -q --release -p albert-tools --bin albert
: >"$OUT/expected.txt"
for s in "${SENTENCES[@]}"; do
  cargo run -q --release -p albert-tools --bin albert -- fill-mask --model "$MODEL" --json "$s" >>"$OUT/expected.txt"
done
cargo run -q --release -p albert-tools --bin albert -- fill-mask --model "$MODEL" --top-k 2 --json "${SENTENCES[0]}" \
  >"$OUT/expected-top2.txt"

# Runs the C programs built in $1 with runner $3... and compares their output with the
# CLI's, whose outputs are in files prefixed $2.
check() {
  local dir=$1 want=$2
  shift 2
  "$@" "$dir/fill_mask" "$MODEL" "${SENTENCES[@]}" >"$dir/fill_mask.txt"
  diff -u "$want.txt" "$dir/fill_mask.txt"
  "$@" "$dir/fill_mask" --mmap "$MODEL" "${SENTENCES[@]}" >"$dir/fill_mask-mmap.txt"
  diff -u "$want.txt" "$dir/fill_mask-mmap.txt"
  "$@" "$dir/fill_mask" --top-k 2 "$MODEL" "${SENTENCES[0]}" >"$dir/fill_mask-top2.txt"
  diff -u "$want-top2.txt" "$dir/fill_mask-top2.txt"
  echo "fill_mask output equals the CLI's, byte for byte ($(wc -l <"$want.txt") sentences + top-k 2; bytes and mmap)"
  "$@" "$dir/errors" "$MODEL"
}

step "x86_64 (host): build, run, compare"
cargo build -q --release -p albert-capi
HOST="$OUT/host"
mkdir -p "$HOST"
for p in fill_mask errors; do
  gcc "${CFLAGS[@]}" "examples/c/$p.c" target/release/libalbert.a "${LIBS[@]}" -o "$HOST/$p"
done
check "$HOST" "$OUT/expected"
# The shared library too.
gcc "${CFLAGS[@]}" examples/c/fill_mask.c -Ltarget/release -lalbert -Wl,-rpath,"$PWD/target/release" -lm \
  -o "$HOST/fill_mask-shared"
"$HOST/fill_mask-shared" "$MODEL" "${SENTENCES[@]}" | diff -u "$OUT/expected.txt" -
echo "fill_mask linked against libalbert.so: same output"

step "aarch64 (cross-compiled, under qemu-aarch64): build, run, compare with the host CLI"
cargo build -q --release -p albert-capi --target aarch64-unknown-linux-gnu
ARM="$OUT/aarch64"
mkdir -p "$ARM"
for p in fill_mask errors; do
  aarch64-linux-gnu-gcc "${CFLAGS[@]}" "examples/c/$p.c" target/aarch64-unknown-linux-gnu/release/libalbert.a \
    "${LIBS[@]}" -o "$ARM/$p"
done
QEMU=(qemu-aarch64 -L /usr/aarch64-linux-gnu)
# The aarch64 CLI under qemu: the C program must print exactly what it prints...
cargo build -q --release -p albert-tools --bin albert --target aarch64-unknown-linux-gnu
: >"$ARM/expected.txt"
for s in "${SENTENCES[@]}"; do
  "${QEMU[@]}" target/aarch64-unknown-linux-gnu/release/albert fill-mask --model "$MODEL" --json "$s" >>"$ARM/expected.txt"
done
"${QEMU[@]}" target/aarch64-unknown-linux-gnu/release/albert fill-mask --model "$MODEL" --top-k 2 --json \
  "${SENTENCES[0]}" >"$ARM/expected-top2.txt"
check "$ARM" "$ARM/expected" "${QEMU[@]}"
# ...and the same predictions (token, token_str, sequence, in order) as the host CLI. The
# scores are compared bit for bit with the host's too, but only reported: the engine may
# round differently on another architecture (SIMD kernels), which is not the C API's doing.
strip_scores() { sed -E 's/"score":[^,]*,//g' "$1"; }
diff -u <(strip_scores "$OUT/expected.txt") <(strip_scores "$ARM/fill_mask.txt")
echo "aarch64 predictions equal the host CLI's"
if cmp -s "$OUT/expected.txt" "$ARM/fill_mask.txt"; then
  echo "aarch64 output equals the host CLI's byte for byte, scores included"
else
  echo "note: aarch64 scores differ from the host CLI's in the last digits (engine arithmetic per architecture):"
  diff "$OUT/expected.txt" "$ARM/fill_mask.txt" | head -4 | cut -c1-200 || true
fi

step "ok"
