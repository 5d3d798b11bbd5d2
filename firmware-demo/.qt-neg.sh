#!/usr/bin/env bash
# The firmware demo under QEMU, checked against the host CLI.
#
# Builds the demo for the host, for aarch64 and armv7 Linux and as bare-metal images (QEMU
# virt and Raspberry Pi 3), runs every one on the demo sentences and checks that the predictions
# (token ids, scores to 4 decimals, token strings) equal `albert fill-mask --json` on the
# host for the same blob. Also feeds the virt image a corrupted blob and checks that it
# reports the error and halts. Exits non-zero on any difference.
#
#   firmware-demo/qemu-test.sh                          # the bundled model
#   FIRMWARE_DEMO_BLOB=other.albq firmware-demo/qemu-test.sh
#
# Installs what it needs (Debian: qemu-user, qemu-system-arm, gcc-aarch64-linux-gnu,
# gcc-arm-linux-gnueabihf, jq; rustup targets). Artefacts go to target/firmware-demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
start=$SECONDS

step() { printf '\n== %s\n' "$*"; }
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  exit 1
}

# The blob built into the images (build.rs reads FIRMWARE_DEMO_BLOB; left unset for the
# default so that builds share cargo's cache with plain `cargo build`).
if [[ -n ${FIRMWARE_DEMO_BLOB:-} ]]; then
  blob=$(realpath "$FIRMWARE_DEMO_BLOB")
  export FIRMWARE_DEMO_BLOB=$blob
else
  blob=$root/models/albert-pydoc.albq
fi
sentences=$root/firmware-demo/sentences.txt
out=$root/target/firmware-demo
mkdir -p "$out"
qemu_timeout=${QEMU_TIMEOUT:-300}

step "tools"
need=()
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
command -v qemu-system-aarch64 >/dev/null || need+=(qemu-system-arm)
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
command -v arm-linux-gnueabihf-gcc >/dev/null || need+=(gcc-arm-linux-gnueabihf)
command -v jq >/dev/null || need+=(jq)
if ((${#need[@]})); then
  sudo=""
  [[ $(id -u) == 0 ]] || sudo=sudo
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y "${need[@]}"
fi
for t in aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf aarch64-unknown-none; do
  rustup target list --installed | grep -qx "$t" || rustup target add "$t"
done
qemu-system-aarch64 --version | head -1

step "build: host CLI and demo, aarch64 and armv7 Linux demo"
cargo build --release -p albert-tools -p firmware-demo --bin albert --bin firmware-demo
cargo build --release -p firmware-demo --target aarch64-unknown-linux-gnu
cargo build --release -p firmware-demo --target armv7-unknown-linux-gnueabihf

step "build: bare metal (virt; raspi3b for QEMU with semihosting; raspi3b kernel8.img for an SD card)"
elf=target/aarch64-unknown-none/release/firmware-demo
cargo build --release -p firmware-demo --target aarch64-unknown-none
cp "$elf" "$out/virt.elf"
cargo build --release -p firmware-demo --target aarch64-unknown-none --features raspi3b,semihosting
cp "$elf" "$out/raspi3b-semihosting.elf"
aarch64-linux-gnu-objcopy -O binary "$out/raspi3b-semihosting.elf" "$out/raspi3b-semihosting.img"
cargo build --release -p firmware-demo --target aarch64-unknown-none --features raspi3b
cp "$elf" "$out/raspi3b.elf"
aarch64-linux-gnu-objcopy -O binary "$out/raspi3b.elf" "$out/kernel8.img"

step "image size and static memory (bare metal, virt)"
aarch64-linux-gnu-size -A "$out/virt.elf" | awk '$1 ~ /^\.(text|rodata|data|bss|stack|eh_frame|eh_frame_hdr)$/ { print; s[$1] = $2 }
  END {
    image = s[".text"] + s[".rodata"] + s[".eh_frame"] + s[".eh_frame_hdr"] + s[".data"]
    printf "image (loaded bytes): %d, .bss: %d, stack: %d, static RAM in all: %d (%.2f MiB); no heap\n",
      image, s[".bss"], s[".stack"], image + s[".bss"] + s[".stack"], (image + s[".bss"] + s[".stack"]) / 1048576
  }'
printf 'blob: %d bytes; kernel8.img: %d bytes\n' "$(stat -c %s "$blob")" "$(stat -c %s "$out/kernel8.img")"

# Lines that must match: everything but `#` lines (timings, sizes), without UART CRs.
predictions() { tr -d '\r' <"$1" | grep -v '^#' || true; }

step "reference: albert fill-mask --json on the host"
ref=$out/reference.txt
: >"$ref"
while IFS= read -r s; do
  [[ -n ${s// /} ]] || continue
  printf '> %s\n' "$s" >>"$ref"
  target/release/albert fill-mask --model "$blob" --json "$s" |
    jq -r '(if (.[0] | type) == "array" then . else [.] end) | to_entries[] | .key as $m | .value
           | to_entries[] | "\($m + 1)\u001f\(.key + 1)\u001f\(.value.token)\u001f\(.value.score)\u001f\(.value.token_str)"' |
    awk -F '\037' '{ printf "mask %d top %d id %d score %.4f token '\''%s'\''\n", $1, $2, $3, $4, $5 }' >>"$ref"
done <"$sentences"
sed -i "2s/score 0\.[0-9]*/score 9.9999/" "$ref"; cat "$ref"

status=0
check() { # name file
  if diff -u "$ref" <(predictions "$2") >"$out/$1.diff"; then
    printf 'OK    %-28s same predictions as the host CLI\n' "$1"
  else
    printf 'DIFF  %-28s (%s)\n' "$1" "$out/$1.diff"
    cat "$out/$1.diff"
    status=1
  fi
}
timings() { tr -d '\r' <"$1" | grep -E '^# ([0-9]+ tokens|memory|cpu|validated|stack|int8 GEMM kernel)' | sed 's/^/      /'; }

step "host: firmware-demo (bundled blob)"
target/release/firmware-demo <"$sentences" >"$out/host.txt" || true
check host "$out/host.txt"
timings "$out/host.txt"

# One run per int8 kernel the engine picks at run time: NEON (Pi 3/4), dot product (Pi 5), i8mm.
for cpu in cortex-a72 cortex-a76 max; do
  step "qemu-user aarch64 -cpu $cpu: cargo run --target aarch64-unknown-linux-gnu (blob memory-mapped from its path)"
  QEMU_CPU=$cpu timeout "$qemu_timeout" cargo run -q --release -p firmware-demo --target aarch64-unknown-linux-gnu \
    -- "$blob" <"$sentences" >"$out/qemu-user-aarch64-$cpu.txt" || true
  check "qemu-user-aarch64-$cpu" "$out/qemu-user-aarch64-$cpu.txt"
  timings "$out/qemu-user-aarch64-$cpu.txt"
done

step "qemu-user armv7: cargo run --target armv7-unknown-linux-gnueabihf (built-in blob)"
timeout "$qemu_timeout" cargo run -q --release -p firmware-demo --target armv7-unknown-linux-gnueabihf \
  <"$sentences" >"$out/qemu-user-armv7.txt" || true
check qemu-user-armv7 "$out/qemu-user-armv7.txt"
timings "$out/qemu-user-armv7.txt"

run_system() { # name machine args...
  local name=$1
  shift
  local t0=$SECONDS
  set +e
  timeout "$qemu_timeout" qemu-system-aarch64 -nographic -no-reboot "$@" </dev/null >"$out/$name.txt" 2>&1
  local rc=$?
  set -e
  printf '      (%s: exit status %d after %d s)\n' "$name" "$rc" $((SECONDS - t0))
  if ((rc == 124)); then
    printf 'FAIL  %s did not finish within %d s\n' "$name" "$qemu_timeout"
    cat "$out/$name.txt"
    status=1
  fi
  return 0
}

step "qemu-system-aarch64 -M virt -cpu cortex-a72 (boots at EL1, PSCI SYSTEM_OFF over hvc)"
run_system virt -M virt -cpu cortex-a72 -kernel "$out/virt.elf"
check virt "$out/virt.txt"
timings "$out/virt.txt"

step "qemu-system-aarch64 -M virt,virtualization=on -cpu cortex-a53 (boots at EL2, drops to EL1, PSCI over smc)"
run_system virt-el2 -M virt,virtualization=on -cpu cortex-a53 -kernel "$out/virt.elf"
check virt-el2 "$out/virt-el2.txt"
timings "$out/virt-el2.txt"

step "qemu-system-aarch64 -M raspi3b (kernel8.img at 0x80000, PL011 at 0x3F20_1000, semihosting exit)"
run_system raspi3b -M raspi3b -semihosting -kernel "$out/raspi3b-semihosting.img"
check raspi3b "$out/raspi3b.txt"
timings "$out/raspi3b.txt"

step "virt with a corrupted blob loaded at 0x4400_0000: the error over the UART, then a clean halt"
cp "$blob" "$out/corrupted.albq"
chmod u+w "$out/corrupted.albq"
size=$(stat -c %s "$blob")
printf '\xff' | dd of="$out/corrupted.albq" bs=1 seek=$((size / 2)) conv=notrunc status=none
run_system virt-corrupted -M virt -cpu cortex-a72 -kernel "$out/virt.elf" \
  -device loader,file="$out/corrupted.albq",addr=0x44000000,force-raw=on
tr -d '\r' <"$out/virt-corrupted.txt" | grep -v '^# \(cpu\|memory\)'
if tr -d '\r' <"$out/virt-corrupted.txt" | grep -q '^! blob rejected: ' &&
  tr -d '\r' <"$out/virt-corrupted.txt" | grep -q '^# halted' &&
  ! tr -d '\r' <"$out/virt-corrupted.txt" | grep -q '^mask '; then
  printf 'OK    %-28s error reported, halted\n' virt-corrupted
else
  printf 'FAIL  %-28s expected "! blob rejected: ..." and "# halted"\n' virt-corrupted
  status=1
fi

step "done in $((SECONDS - start)) s"
((status == 0)) || fail "predictions differ from the host CLI (see above)"
echo "all runs print the host CLI's predictions"
