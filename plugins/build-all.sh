#!/usr/bin/env bash
# Rebuilds every plugin: runs each plugins/*/build.sh in turn (works from any directory).
set -euo pipefail
cd "$(dirname "$0")"
shopt -s nullglob
for script in */build.sh; do
  echo "==> ${script%/build.sh}"
  bash "$script"
done
