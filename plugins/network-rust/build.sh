#!/usr/bin/env bash
# Builds plugin.wasm: see ../rust-build.sh (Debian's rustc 1.63, wasm32-wasi, vendored crates).
set -euo pipefail
exec bash "$(dirname "$0")/../rust-build.sh" "$(cd "$(dirname "$0")" && pwd)"
