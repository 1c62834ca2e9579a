#!/usr/bin/env bash
# Installs Debian's redis-server and redis-tools (redis-cli) for the L4 tests (test/e2e/tcp*.test.ts).
# Idempotent and quiet; the tests start their own redis-server on loopback with no persistence
# (the package's own service is not used).
set -euo pipefail
if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
  echo "redis already installed: $(redis-server --version | awk '{print $3}')"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
command -v apt-get >/dev/null || { echo "install-redis: apt-get not found; install redis-server and redis-tools by hand" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends redis-server redis-tools >/dev/null
# The package may start its own server on :6379 where an init system runs; the tests do not need it.
if command -v systemctl >/dev/null && systemctl is-active --quiet redis-server 2>/dev/null; then
  $SUDO systemctl disable --now redis-server >/dev/null 2>&1 || true
fi
echo "installed: redis-server redis-tools ($(redis-server --version | awk '{print $3}'))"
