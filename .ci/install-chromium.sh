#!/usr/bin/env bash
# Installs what the admin page test needs: Debian's chromium (/usr/bin/chromium), driven headless by
# playwright-core (a dev dependency that downloads no browser of its own). Idempotent and quiet.
set -euo pipefail
if command -v chromium >/dev/null; then
  echo "chromium already installed: $(chromium --version 2>/dev/null | awk '{print $2}')"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
command -v apt-get >/dev/null || { echo "install-chromium: apt-get not found; install chromium by hand" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# fonts-dejavu-core: readable text in the screenshot on a machine with no fonts at all.
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
echo "installed: chromium ($(chromium --version 2>/dev/null | awk '{print $2}'))"
