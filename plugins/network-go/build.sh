#!/usr/bin/env bash
# Builds plugin.wasm with the machine's Go (>= 1.24) and the proxy-wasm-go-sdk (Go 1.24+ SDK).
set -euo pipefail
cd "$(dirname "$0")"
go mod download
GOOS=wasip1 GOARCH=wasm go build -trimpath -buildmode=c-shared -o plugin.wasm .
echo "built $(pwd)/plugin.wasm ($(wc -c < plugin.wasm) bytes)"
