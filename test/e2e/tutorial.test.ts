// The seed tutorial end to end: the header-authorization plugin, built by the real Rust and Go
// SDKs, in front of the real go-httpbin, over real sockets, through the real CLI.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { ROOT, type RunningProxy, startProxy, tempConfig, wasmPluginYaml } from '../helpers/proxy.ts';
import { startEmbeddedHttpbin, startGoHttpbin } from '../helpers/upstreams.ts';

const PLUGINS = [
  {
    lang: 'rust',
    file: join(ROOT, 'plugins/header-authorization-rust/plugin.wasm'),
    body: 'Forbidden by ASM Wasm Plugin, rust version\n',
    logs: [
      'wasm log istio-system.header-authorization: #2 wasm-rust: on_http_request_headers',
      'wasm log istio-system.header-authorization: #2 wasm-rust: allow header not found or is not true, deny by default',
    ],
  },
  {
    lang: 'go',
    file: join(ROOT, 'plugins/header-authorization-go/plugin.wasm'),
    body: 'Forbidden by ASM Wasm Plugin',
    logs: ["wasm log istio-system.header-authorization: request header: 'allow' is , only true can passthrough"],
  },
];

for (const plugin of PLUGINS) {
  describe(`header-authorization (${plugin.lang}) in front of go-httpbin`, () => {
    let upstream: Awaited<ReturnType<typeof startGoHttpbin>>;
    let proxy: RunningProxy;
    before(async () => {
      upstream = await startGoHttpbin();
      const dir = tempConfig({
        'plugin.yaml': wasmPluginYaml({
          name: 'header-authorization',
          url: pathToFileURL(plugin.file).href,
          phase: 'AUTHN',
        }),
      });
      proxy = await startProxy(['-c', dir, '--upstream', upstream.url, '--component-log-level', 'wasm:debug']);
    });
    after(async () => {
      await proxy?.stop();
      await upstream?.close();
    });

    test('no allow header: 403 with the exact body and content-type', async () => {
      const res = await fetch(`${proxy.url}/status/418`);
      assert.equal(res.status, 403);
      assert.equal(res.headers.get('content-type'), 'text/plain');
      assert.equal(await res.text(), plugin.body);
    });

    test('allow: true reaches httpbin and returns its teapot', async () => {
      const res = await fetch(`${proxy.url}/status/418`, { headers: { allow: 'true' } });
      assert.equal(res.status, 418);
      assert.match(await res.text(), /teapot/i);
    });

    test('allow: false is denied', async () => {
      const res = await fetch(`${proxy.url}/status/418`, { headers: { allow: 'false' } });
      assert.equal(res.status, 403);
      assert.equal(await res.text(), plugin.body);
    });

    test("the plugin's own log lines appear as `wasm log <namespace>.<name>: …`", async () => {
      for (const line of plugin.logs) await proxy.waitForLog(line);
    });

    test('the access log records the denial with Istio field names', async () => {
      const lines = await proxy.accessLogs(3);
      const denied = lines.find((l) => l.response_code === 403);
      assert.ok(denied, proxy.stdout());
      assert.equal(denied.path, '/status/418');
      assert.equal(denied.method, 'GET');
      assert.equal(denied.bytes_sent, Buffer.byteLength(plugin.body));
      assert.equal(denied.upstream_host, '-');
    });
  });
}

describe('npm start configuration (config/)', () => {
  let upstream: Awaited<ReturnType<typeof startEmbeddedHttpbin>>;
  let proxy: RunningProxy;
  before(async () => {
    upstream = await startEmbeddedHttpbin();
    proxy = await startProxy(['-c', join(ROOT, 'config'), '--upstream', upstream.url]);
  });
  after(async () => {
    await proxy?.stop();
    await upstream?.close();
  });

  test('serves the tutorial pair: 403 rust version, then the ASCII teapot', async () => {
    const denied = await fetch(`${proxy.url}/status/418`);
    assert.equal(denied.status, 403);
    assert.equal(await denied.text(), 'Forbidden by ASM Wasm Plugin, rust version\n');
    const allowed = await fetch(`${proxy.url}/status/418`, { headers: { allow: 'true' } });
    assert.equal(allowed.status, 418);
    assert.match(await allowed.text(), /-=\[ teapot \]=-/);
  });

  test('the admin API takes the tutorial step `POST /logging?wasm=debug`', async () => {
    const get = await fetch(`http://127.0.0.1:${proxy.adminPort}/logging?wasm=debug`);
    assert.equal(get.status, 405);
    const post = await fetch(`http://127.0.0.1:${proxy.adminPort}/logging?wasm=debug`, { method: 'POST' });
    assert.equal(post.status, 200);
    assert.match(await post.text(), /wasm: debug/);
  });
});
