#!/usr/bin/env bash
# Regenerates include/albert.h from capi/src/lib.rs with cbindgen (installed if missing,
# pinned). With --check: fails when the committed header differs from a fresh one.
set -euo pipefail
cd "$(dirname "$0")/.."
CBINDGEN_VERSION=0.29.4
if ! cbindgen --version 2>/dev/null | grep -qx "cbindgen $CBINDGEN_VERSION"; then
  cargo install cbindgen --locked --version "=$CBINDGEN_VERSION"
fi
fresh=$(mktemp)
trap 'rm -f "$fresh"' EXIT
cbindgen --quiet --config capi/cbindgen.toml --crate albert-capi --output "$fresh" capi
if [[ "${1:-}" == "--check" ]]; then
  if ! diff -u include/albert.h "$fresh"; then
    echo "include/albert.h is stale: run capi/gen-header.sh and commit the result" >&2
    exit 1
  fi
  echo "include/albert.h is up to date"
else
  cp "$fresh" include/albert.h
  echo "wrote include/albert.h"
fi
