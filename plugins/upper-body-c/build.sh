#!/usr/bin/env bash
# Builds plugin.wasm with Debian's clang-14 + lld + wasi-libc as a WASI reactor (installs them if missing).
set -euo pipefail
cd "$(dirname "$0")"
PKGS="clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32"
if ! command -v clang-14 >/dev/null || [ ! -f /usr/lib/wasm32-wasi/libc.a ] ||
  [ ! -f /usr/lib/llvm-14/lib/clang/14.0.6/lib/wasi/libclang_rt.builtins-wasm32.a ]; then
  apt-get install -y $PKGS || { apt-get update && apt-get install -y $PKGS; }
fi
clang-14 --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Werror -fuse-ld=lld -o plugin.wasm plugin.c
echo "built $(pwd)/plugin.wasm ($(wc -c < plugin.wasm) bytes)"
