// http(s):// modules as Istio fetches them: retries with backoff on 5xx, no retry on 4xx, sha256
// of the module bytes, gzip/tar unboxing, the cache under IfNotPresent, refusal of cloud
// metadata addresses, failStrategy on fetch failure, and Istio's https documentation example.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { ROOT, type RunningProxy, startProxy, tempConfig, wasmPluginYaml } from '../helpers/proxy.ts';
import { tarOf } from '../helpers/registry.ts';
import { startEmbeddedHttpbin, type Upstream } from '../helpers/upstreams.ts';

const WASM = readFileSync(join(ROOT, 'plugins/header-authorization-rust/plugin.wasm'));
const WASM_SHA = createHash('sha256').update(WASM).digest('hex');
const DENIED = 'Forbidden by ASM Wasm Plugin, rust version\n';

let upstream: Upstream;
before(async () => {
  upstream = await startEmbeddedHttpbin();
});
after(async () => {
  await upstream?.close();
});

const tempDir = (prefix: string) => mkdtempSync(join(tmpdir(), prefix));

/** A module server on port 0: each request takes the next answer (the last one repeats). */
async function moduleServer(answers: { status: number; body?: Buffer }[], tls?: { key: string; cert: string }) {
  const seen: string[] = [];
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    seen.push(req.url ?? '');
    const a = answers[Math.min(seen.length - 1, answers.length - 1)]!;
    res.writeHead(a.status, { 'content-type': 'application/octet-stream' });
    res.end(a.body ?? '');
  };
  const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

async function withProxy(
  plugin: { url: string; failStrategy?: string; extra?: string },
  args: string[],
  body: (proxy: RunningProxy) => Promise<void>,
): Promise<RunningProxy> {
  const dir = tempConfig({
    'plugin.yaml': wasmPluginYaml({
      name: 'header-authorization',
      url: plugin.url,
      phase: 'AUTHN',
      ...(plugin.failStrategy ? { failStrategy: plugin.failStrategy } : {}),
      ...(plugin.extra ? { extra: plugin.extra } : {}),
    }),
  });
  const proxy = await startProxy(['-c', dir, '--upstream', upstream.url, ...args], 60_000);
  try {
    await body(proxy);
  } finally {
    await proxy.stop();
  }
  return proxy;
}

async function assertPluginRuns(proxy: RunningProxy): Promise<void> {
  const denied = await fetch(`${proxy.url}/get`);
  assert.equal(denied.status, 403, proxy.stderr());
  assert.equal(await denied.text(), DENIED);
  const allowed = await fetch(`${proxy.url}/get`, { headers: { allow: 'true' } });
  assert.equal(allowed.status, 200);
  await allowed.text();
}

async function status(proxy: RunningProxy): Promise<number> {
  const res = await fetch(`${proxy.url}/get`, { headers: { allow: 'true' } });
  await res.text();
  return res.status;
}

describe('http:// modules', () => {
  test('a 503 then the module: retried with backoff, and the plugin runs', async () => {
    const server = await moduleServer([{ status: 503 }, { status: 200, body: WASM }]);
    try {
      const proxy = await withProxy(
        { url: `${server.url}/plugin.wasm` },
        ['--cache-dir', tempDir('wg-cache-')],
        assertPluginRuns,
      );
      assert.equal(server.seen.length, 2);
      assert.match(proxy.stderr(), /fetching http:\/\/127\.0\.0\.1:\d+\/plugin\.wasm: HTTP 503; retry 1/);
    } finally {
      await server.close();
    }
  });

  test('a 404 is not retried; FAIL_CLOSE answers 503 naming plugin, URL and cause', async () => {
    const server = await moduleServer([{ status: 404 }]);
    try {
      await withProxy({ url: `${server.url}/missing.wasm` }, ['--cache-dir', tempDir('wg-cache-')], async (p) => {
        assert.equal(await status(p), 503);
        assert.match(
          p.stderr(),
          /wasm plugin istio-system\.header-authorization failed to load: cannot fetch http:\/\/127\.0\.0\.1:\d+\/missing\.wasm: HTTP 404/,
        );
      });
      assert.equal(server.seen.length, 1);
    } finally {
      await server.close();
    }
  });

  test('FAIL_OPEN skips a plugin whose module cannot be fetched', async () => {
    const server = await moduleServer([{ status: 404 }]);
    try {
      await withProxy(
        { url: `${server.url}/missing.wasm`, failStrategy: 'FAIL_OPEN' },
        ['--cache-dir', tempDir('wg-cache-')],
        async (p) => {
          const res = await fetch(`${p.url}/get`);
          assert.equal(res.status, 200, 'no 403: the plugin is skipped');
          await res.text();
        },
      );
    } finally {
      await server.close();
    }
  });

  test('sha256 of the module bytes: right runs, wrong is a fetch failure naming expected and actual', async () => {
    const server = await moduleServer([{ status: 200, body: WASM }]);
    try {
      await withProxy(
        { url: `${server.url}/plugin.wasm`, extra: `  sha256: ${WASM_SHA}\n` },
        ['--cache-dir', tempDir('wg-cache-')],
        assertPluginRuns,
      );
      const wrong = 'b'.repeat(64);
      await withProxy(
        { url: `${server.url}/plugin.wasm`, extra: `  sha256: ${wrong}\n` },
        ['--cache-dir', tempDir('wg-cache-')],
        async (p) => {
          assert.equal(await status(p), 503);
          assert.match(
            p.stderr(),
            new RegExp(`sha256 mismatch: expected ${wrong}, got ${WASM_SHA} \\(module bytes\\)`),
          );
        },
      );
    } finally {
      await server.close();
    }
  });

  test('a gzip of a tar of the module is unboxed, as Istio does', async () => {
    const server = await moduleServer([{ status: 200, body: gzipSync(tarOf({ 'filter.wasm': WASM })) }]);
    try {
      await withProxy(
        { url: `${server.url}/plugin.tar.gz`, extra: `  sha256: ${WASM_SHA}\n` },
        ['--cache-dir', tempDir('wg-cache-')],
        assertPluginRuns,
      );
    } finally {
      await server.close();
    }
  });

  test('IfNotPresent: a cached module loads when the server is gone', async () => {
    const cache = tempDir('wg-cache-');
    const server = await moduleServer([{ status: 200, body: WASM }]);
    const url = `${server.url}/plugin.wasm`;
    await withProxy({ url }, ['--cache-dir', cache], assertPluginRuns);
    await server.close();
    const proxy = await withProxy({ url }, ['--cache-dir', cache], assertPluginRuns);
    assert.match(proxy.stderr(), /cached sha256:/);
  });

  for (const url of [
    'http://169.254.169.254/latest/plugin.wasm',
    'http://[fd00:ec2::254]/plugin.wasm',
    'http://100.100.100.200/plugin.wasm',
    'http://metadata.google.internal/plugin.wasm',
  ]) {
    test(`a cloud metadata address is refused without retries: ${url}`, async () => {
      const started = Date.now();
      await withProxy({ url }, ['--cache-dir', tempDir('wg-cache-')], async (p) => {
        assert.equal(await status(p), 503);
        assert.match(p.stderr(), /failed to load: cannot fetch \S+: connection blocked: /);
      });
      assert.ok(Date.now() - started < 20_000);
    });
  }

  test('credentials in a URL are never printed', async () => {
    const secret = 'hunter2-in-url';
    await withProxy(
      { url: `http://user:${secret}@169.254.169.254/plugin.wasm` },
      ['--cache-dir', tempDir('wg-cache-')],
      async (p) => {
        assert.equal(await status(p), 503);
        assert.match(p.stderr(), /cannot fetch http:\/\/\*\*\*@169\.254\.169\.254\/plugin\.wasm/);
        assert.ok(!p.stderr().includes(secret));
      },
    );
  });
});

describe("Istio's https documentation example, with only the host changed", () => {
  test('url: https://private-bucket/filters/openid.wasm, imagePullPolicy: Always', async () => {
    const dir = tempDir('wg-tls-');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
        '-days',
        '2',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    const tls = { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') };
    const server = await moduleServer([{ status: 200, body: WASM }], tls);
    // The proxy (a child process) trusts the test certificate as it would a bucket's.
    const saved = process.env.NODE_EXTRA_CA_CERTS;
    process.env.NODE_EXTRA_CA_CERTS = join(dir, 'cert.pem');
    try {
      const yaml = `apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: openid-connect
  namespace: istio-ingress
spec:
  selector:
    matchLabels:
      istio: ingressgateway
  url: https://private-bucket/filters/openid.wasm
  imagePullPolicy: Always
  phase: AUTHN
  pluginConfig:
    openid_server: authn
    openid_realm: ingress
  vmConfig:
    env:
    - name: POD_NAME
      valueFrom: HOST
    - name: TRUST_DOMAIN
      value: "cluster.local"
`.replace('private-bucket', server.host);
      const config = tempConfig({ 'plugin.yaml': yaml });
      const proxy = await startProxy(
        ['-c', config, '--upstream', upstream.url, '--namespace', 'istio-ingress', '--cache-dir', tempDir('wg-cache-')],
        60_000,
      );
      try {
        await assertPluginRuns(proxy);
      } finally {
        await proxy.stop();
      }
      assert.deepEqual(server.seen, ['/filters/openid.wasm']);
    } finally {
      if (saved === undefined) delete process.env.NODE_EXTRA_CA_CERTS;
      else process.env.NODE_EXTRA_CA_CERTS = saved;
      await server.close();
    }
  });
});
