// All four SDK families in one chain: AssemblyScript (@solo-io/proxy-runtime), Rust (proxy-wasm),
// Go (proxy-wasm-go-sdk) and C against the raw ABI, ordered by phase and priority.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { ROOT, type RunningProxy, startProxy, tempConfig, wasmPluginYaml } from '../helpers/proxy.ts';
import { startEmbeddedHttpbin } from '../helpers/upstreams.ts';

const plugin = (name: string) => pathToFileURL(join(ROOT, `plugins/${name}/plugin.wasm`)).href;

describe('AssemblyScript alone, from its own WasmPlugin YAML', () => {
  let upstream: Awaited<ReturnType<typeof startEmbeddedHttpbin>>;
  let proxy: RunningProxy;
  before(async () => {
    upstream = await startEmbeddedHttpbin();
    proxy = await startProxy(['-c', join(ROOT, 'plugins/add-header-as/wasmplugin.yaml'), '--upstream', upstream.url]);
  });
  after(async () => {
    await proxy?.stop();
    await upstream?.close();
  });

  test('pluginName picks the root context; pluginConfig configures it', async () => {
    await proxy.waitForLog('wasm log istio-system.add-header-as: add_header configured: x-as=hello');
    const res = await fetch(`${proxy.url}/get`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-as'), 'hello');
    await res.text();
  });

  test('local reply from AssemblyScript', async () => {
    const res = await fetch(`${proxy.url}/get`, { headers: { 'x-as-deny': '1' } });
    assert.equal(res.status, 403);
    assert.equal(await res.text(), 'denied by assemblyscript');
  });

  test('memory stays flat over many requests (no per-request leak in the host)', async () => {
    for (let i = 0; i < 300; i++) await (await fetch(`${proxy.url}/get`)).arrayBuffer();
    const res = await fetch(`${proxy.url}/get`);
    assert.equal(res.headers.get('x-as'), 'hello');
    await res.text();
  });
});

describe('four SDK families in one chain', () => {
  let upstream: Awaited<ReturnType<typeof startEmbeddedHttpbin>>;
  let proxy: RunningProxy;
  before(async () => {
    upstream = await startEmbeddedHttpbin();
    const dir = tempConfig({
      'chain.yaml': [
        wasmPluginYaml({
          name: 'as',
          url: plugin('add-header-as'),
          phase: 'STATS',
          extra: '  pluginName: add_header\n  pluginConfig:\n    header: x-as\n    value: chained\n',
        }),
        wasmPluginYaml({ name: 'auth', url: plugin('header-authorization-rust'), phase: 'AUTHN' }),
        wasmPluginYaml({ name: 'go', url: plugin('hostcalls-go'), phase: 'AUTHZ', priority: 5 }),
        wasmPluginYaml({ name: 'c', url: plugin('upper-body-c') }),
      ].join('---\n'),
    });
    proxy = await startProxy(['-c', dir, '--upstream', upstream.url]);
  });
  after(async () => {
    await proxy?.stop();
    await upstream?.close();
  });

  test('the chain is ordered AUTHN -> AUTHZ -> STATS -> unspecified', async () => {
    assert.match(
      proxy.stderr(),
      /istio-system\.auth -> istio-system\.go -> istio-system\.as -> istio\.stats -> istio-system\.c -> router/,
    );
  });

  test('the AUTHN plugin denies first; its local reply still passes the response callbacks before it', async () => {
    const res = await fetch(`${proxy.url}/get`);
    assert.equal(res.status, 403);
    assert.equal(res.headers.get('x-as'), null, 'plugins after the one that answered do not see the reply');
    assert.equal(await res.text(), 'Forbidden by ASM Wasm Plugin, rust version\n');
  });

  test('an allowed request goes through all four, each doing its part', async () => {
    const res = await fetch(`${proxy.url}/anything`, {
      method: 'POST',
      headers: { allow: 'true', 'x-go': 'body', 'x-c': 'upper' },
      body: 'four sdks',
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-as'), 'chained');
    assert.equal(res.headers.get('x-c-plugin'), 'c');
    assert.match(res.headers.get('x-go-plugin') ?? '', /^\d+$/);
    assert.match(await res.text(), /"DATA": "GO:FOUR SDKS"/);
  });
});
