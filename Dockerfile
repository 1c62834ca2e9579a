# syntax=docker/dockerfile:1
# wasmgate, the ingress-gateway image.
#
#   docker build -t wasmgate .
#   docker run --rm -p 8080:8080 wasmgate                       # the tutorial, in front of the embedded httpbin
#   docker run --rm -p 8080:8080 --read-only --tmpfs /tmp --tmpfs /var/cache/wasmgate \
#     -v "$PWD/my-config:/etc/wasmgate:ro" wasmgate run           # your own configuration
#
# Layout: the program in /opt/wasmgate, configuration read from /etc/wasmgate (WASMGATE_CONFIG;
# mount a folder or a Kubernetes ConfigMap there), Wasm module cache in /var/cache/wasmgate and
# temporary files in /tmp: the only two places written, so the root filesystem can be read-only.
# It runs as uid/gid 1337, as Istio's istio-proxy. test/e2e/container.test.ts reproduces these
# conditions without a Docker engine; .ci/lint-dockerfile.sh lints this file.

# ---- build: compile TypeScript to dist/ ----
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: the `node` dev dependency (Node 24 for npm scripts on a laptop) is not needed
# here, the base image has Node 24; `prepare` (tsc) runs below once the sources are in.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json

# ---- runtime: production dependencies only ----
FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /opt/wasmgate
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
  && npm cache clean --force \
  && groupadd --gid 1337 istio-proxy \
  && useradd --uid 1337 --gid 1337 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin istio-proxy \
  && mkdir -p /var/cache/wasmgate \
  && chown 1337:1337 /var/cache/wasmgate
COPY --from=build /src/dist ./dist
COPY bin ./bin
COPY src/dev/templates ./src/dev/templates
COPY config ./config
COPY plugins/header-authorization-rust/plugin.wasm ./plugins/header-authorization-rust/plugin.wasm
COPY plugins/header-authorization-go/plugin.wasm ./plugins/header-authorization-go/plugin.wasm
# The tutorial's configuration, with the module path inside this image (deploy/config is also
# what the Kubernetes ConfigMap is generated from). Mount your own folder over it.
COPY deploy/config /etc/wasmgate

USER 1337:1337
# Every flag can be set as WASMGATE_<FLAG>; the command line wins.
ENV WASMGATE_CONFIG=/etc/wasmgate \
  WASMGATE_CACHE_DIR=/var/cache/wasmgate \
  TMPDIR=/tmp
# Writable places: mount them as volumes (tmpfs / emptyDir) when the root filesystem is read-only.
VOLUME ["/var/cache/wasmgate", "/tmp"]
# 8080: data (the Gateway's server port); 15000: admin API (bound to 127.0.0.1 inside the
# container: reach it with `docker exec`/`kubectl port-forward`); 15021: health, GET /healthz/ready.
EXPOSE 8080 15000 15021
# SIGTERM drains: readiness (15021) fails at once, listeners keep serving with `Connection: close`
# (GOAWAY on HTTP/2) until the last connection closes or --drain-time (WASMGATE_DRAIN_TIME,
# default 5s) is over, then the process exits 0. Keep `docker stop -t` (default 10s) and
# Kubernetes' terminationGracePeriodSeconds above the drain time.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["node", "bin/wasmgate.js", "health"]
ENTRYPOINT ["node", "/opt/wasmgate/bin/wasmgate.js"]
# The demo: /etc/wasmgate (the tutorial) in front of the embedded httpbin. With your own
# configuration run `run` alone (or any `run` flags).
CMD ["run", "--httpbin", "127.0.0.1:8000"]
