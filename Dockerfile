# syntax=docker/dockerfile:1
# wasmgate ingress-gateway image: build stage compiles TypeScript; the runtime stage has
# production dependencies only, runs as uid 1337 (as istio-proxy) and works with a read-only
# root filesystem (cache and temp on volumes).

FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# The `node` dev dependency ships its own Node 24 for npm scripts; the base image already has it.
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx tsc -p tsconfig.build.json

FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /opt/wasmgate
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist ./dist
COPY bin ./bin
COPY config ./config
COPY plugins/header-authorization-rust/plugin.wasm ./plugins/header-authorization-rust/plugin.wasm
COPY plugins/header-authorization-go/plugin.wasm ./plugins/header-authorization-go/plugin.wasm
RUN mkdir -p /var/cache/wasmgate /tmp/wasmgate && chown -R 1337:1337 /var/cache/wasmgate /tmp/wasmgate
USER 1337:1337
ENV TMPDIR=/tmp/wasmgate
VOLUME ["/var/cache/wasmgate", "/tmp/wasmgate"]
# 8080: data (the Gateway's port), 15000: admin (bound to 127.0.0.1), 15021: health (coming with the admin issue)
EXPOSE 8080 15000 15021
# SIGTERM stops accepting, lets in-flight requests finish, then exits.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:15000/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "/opt/wasmgate/bin/wasmgate.js"]
# The demo: the bundled config/ in front of the embedded httpbin. Mount your own folder and run
# `run -c /etc/wasmgate` for a real gateway.
CMD ["run", "-c", "/opt/wasmgate/config", "--httpbin", "127.0.0.1:8000"]
