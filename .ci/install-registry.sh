#!/usr/bin/env bash
# Installs what the OCI fetch tests need: the CNCF distribution registry (Debian's docker-registry,
# /usr/bin/docker-registry), htpasswd (apache2-utils) for bcrypt htpasswd files, and openssl for
# the token server's certificate. Idempotent and quiet; the tests start their own registries on
# loopback with temporary storage (the package's own service is not used).
set -euo pipefail
need=()
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -eq 0 ]; then
  echo "registry tools already installed: $(docker-registry --version 2>/dev/null | awk '{print $NF}')"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
command -v apt-get >/dev/null || { echo "install-registry: apt-get not found; install ${need[*]} by hand" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The package may start its own registry on :5000 where an init system runs; the tests do not need it.
if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then
  $SUDO systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
echo "installed: ${need[*]} ($(docker-registry --version | awk '{print $NF}'))"
