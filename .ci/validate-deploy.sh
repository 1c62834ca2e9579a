#!/usr/bin/env bash
# Validates the Kubernetes manifests: `kustomize build deploy/` (or the folder given), then
# kubeconform -strict against the built-in Kubernetes schemas of each release in K8S_VERSIONS
# (installed by .ci/install-kubeconform.sh). Exit 0 only if every resource is valid.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-deploy}"
K8S_VERSIONS="${K8S_VERSIONS:-1.29.0 1.37.0}"
SCHEMA_DIR="${WASMGATE_K8S_SCHEMAS:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmgate-ci/kubernetes-json-schema}"
BIN_DIR="$(go env GOBIN)"
[ -n "$BIN_DIR" ] || BIN_DIR="$(go env GOPATH | cut -d: -f1)/bin"
rendered="$("$BIN_DIR/kustomize" build "$DIR")"
status=0
for v in $K8S_VERSIONS; do
  out="$("$BIN_DIR/kubeconform" -strict -summary -output text -kubernetes-version "$v" \
    -schema-location "$SCHEMA_DIR/{{.NormalizedKubernetesVersion}}-standalone{{.StrictSuffix}}/{{.ResourceKind}}{{.KindSuffix}}.json" \
    - <<<"$rendered")" || status=1
  echo "kubernetes $v: $out"
  # Nothing skipped and nothing missing: every resource has a schema and is valid.
  grep -Eq 'Valid: [1-9][0-9]*, Invalid: 0, Errors: 0, Skipped: 0' <<<"$out" || status=1
done
exit "$status"
