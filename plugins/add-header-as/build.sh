#!/usr/bin/env bash
# Builds plugin.wasm with AssemblyScript 0.14.9 + @solo-io/proxy-runtime 0.1.8, both installed
# from package-lock.json by `npm ci` in this folder, then checks the module in plain node.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
# Options come from asconfig.json (target "release"): --runtime half, --use abort=abort_proc_exit,
# -O3 and --noAssert (see README.md for why --noAssert is needed with this SDK).
./node_modules/.bin/asc assembly/index.ts --target release
node check.mjs --quiet
echo "built $(pwd)/plugin.wasm ($(wc -c < plugin.wasm) bytes)"
