#!/usr/bin/env bash
# Installs the real go-httpbin (mccutchen/go-httpbin) from the Go module proxy; idempotent.
# The tests find it via $GO_HTTPBIN, $(go env GOBIN), $(go env GOPATH)/bin, or PATH.
# Pinned to the latest v2 release at the time of writing:
#   go list -m -versions github.com/mccutchen/go-httpbin/v2
set -euo pipefail
VERSION=v2.26.0
MODULE=github.com/mccutchen/go-httpbin/v2

command -v go >/dev/null || { echo "install-go-httpbin: the Go toolchain is required (https://go.dev/dl/)" >&2; exit 1; }
BIN_DIR="$(go env GOBIN)"
[ -n "$BIN_DIR" ] || BIN_DIR="$(go env GOPATH | cut -d: -f1)/bin"
BIN="$BIN_DIR/go-httpbin"

if [ -x "$BIN" ] && go version -m "$BIN" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+$MODULE[[:space:]]+$VERSION([[:space:]]|$)"; then
  echo "go-httpbin $VERSION already installed: $BIN"
  exit 0
fi
go install "$MODULE/cmd/go-httpbin@$VERSION"
"$BIN" -version >/dev/null 2>&1 || "$BIN" -h 2>&1 | grep -q -- '-max-body-size'
echo "installed go-httpbin $VERSION: $BIN"
