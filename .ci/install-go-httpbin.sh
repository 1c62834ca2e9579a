#!/usr/bin/env bash
# Installs the real go-httpbin from the Go module proxy (idempotent).
set -euo pipefail
VERSION=v2.26.0
BIN="$(go env GOPATH)/bin/go-httpbin"
if [ -x "$BIN" ] && "$BIN" -h 2>&1 | grep -q -- '-port'; then
  echo "go-httpbin present: $BIN"
  exit 0
fi
go install "github.com/mccutchen/go-httpbin/v2/cmd/go-httpbin@${VERSION}"
echo "installed $BIN"
