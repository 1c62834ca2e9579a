// Always on: hot reload from file changes, SIGHUP and POST /reload (invalid configs keep the old
// one serving; in-flight requests finish on the chain they started with; unchanged plugins keep
// their VMs), and graceful drain on SIGTERM.
import assert from 'node:assert/strict';
import { copyFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { ROOT, startProxy, tempConfig, wasmPluginYaml } from '../helpers/proxy.ts';
import { startEmbeddedHttpbin, type Upstream } from '../helpers/upstreams.ts';

const MARKER = join(ROOT, 'plugins/chain-marker-go/plugin.wasm');
const AUTHZ_GO = join(ROOT, 'plugins/header-authorization-go/plugin.wasm');

let upstream: Upstream;
before(async () => {
  upstream = await startEmbeddedHttpbin();
});
after(async () => {
  await upstream?.close();
});

async function chainSeen(url: string): Promise<string> {
  const res = await fetch(`${url}/headers`);
  const body = (await res.json()) as { headers: Record<string, string[]> };
  return body.headers['X-Chain']?.[0] ?? '';
}

const marker = (name: string, extra = '') =>
  wasmPluginYaml({ name, url: pathToFileURL(MARKER).href, phase: 'AUTHN', extra });

describe('hot reload', () => {
  test('a config file change adds a plugin; the unchanged one keeps its VM; an invalid file changes nothing', async () => {
    const dir = tempConfig({ 'a.yaml': marker('first') });
    const proxy = await startProxy(['-c', dir, '--upstream', upstream.url]);
    try {
      assert.equal(await chainSeen(proxy.url), 'istio-system.first');
      writeFileSync(join(dir, 'b.yaml'), wasmPluginYaml({ name: 'second', url: pathToFileURL(MARKER).href }));
      await proxy.waitForLog('plugins kept 1, replaced 0, added 1, removed 0');
      assert.equal(await chainSeen(proxy.url), 'istio-system.first,istio-system.second');

      writeFileSync(
        join(dir, 'b.yaml'),
        'apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {name: second}\nspec: {phse: AUTHN}\n',
      );
      await proxy.waitForLog('reload rejected');
      assert.match(proxy.stderr(), /reload: .*b\.yaml:4:\d+ {2}WasmPlugin default\/second {2}spec/);
      assert.equal(await chainSeen(proxy.url), 'istio-system.first,istio-system.second', 'the old config still serves');

      writeFileSync(join(dir, 'b.yaml'), '');
      await proxy.waitForLog('plugins kept 1, replaced 0, added 0, removed 1');
      assert.equal(await chainSeen(proxy.url), 'istio-system.first');
    } finally {
      await proxy.stop();
    }
  });

  test('a rebuilt file:// module is picked up: the plugin gets a new VM with the new code', async () => {
    const dir = tempConfig({});
    const wasm = join(dir, 'plugin.wasm');
    copyFileSync(MARKER, wasm);
    writeFileSync(join(dir, 'p.yaml'), wasmPluginYaml({ name: 'dev', url: pathToFileURL(wasm).href }));
    const proxy = await startProxy(['-c', dir, '--upstream', upstream.url]);
    try {
      assert.equal(await chainSeen(proxy.url), 'istio-system.dev');
      // "Rebuild": another plugin's bytes at the same path (the tutorial's header authorization).
      copyFileSync(AUTHZ_GO, wasm);
      await proxy.waitForLog('plugins kept 0, replaced 1, added 0, removed 0');
      const denied = await fetch(`${proxy.url}/get`);
      assert.equal(denied.status, 403);
      assert.equal(await denied.text(), 'Forbidden by ASM Wasm Plugin');
    } finally {
      await proxy.stop();
    }
  });

  test('POST /reload and SIGHUP; a request in flight finishes on the chain it started with', async () => {
    const dir = tempConfig({ 'a.yaml': marker('old') });
    const proxy = await startProxy(['-c', dir, '--upstream', upstream.url, '--no-watch']);
    try {
      // A slow request starts on the old chain.
      const slow = fetch(`${proxy.url}/delay/1`).then(async (r) => ({
        status: r.status,
        body: (await r.json()) as { headers: Record<string, string[]> },
      }));
      await new Promise((r) => setTimeout(r, 200));
      writeFileSync(join(dir, 'a.yaml'), marker('new'));
      const admin = `http://127.0.0.1:${proxy.adminPort}`;
      const get = await fetch(`${admin}/reload`);
      assert.equal(get.status, 405, 'mutations are POST-only');
      await get.text();
      const r = await fetch(`${admin}/reload`, { method: 'POST' });
      assert.equal(r.status, 200);
      assert.match(await r.text(), /^reloaded \(admin \/reload\): plugins kept 0, replaced 0, added 1, removed 1/);
      assert.equal(await chainSeen(proxy.url), 'istio-system.new');
      const done = await slow;
      assert.equal(done.status, 200);
      assert.deepEqual(done.body.headers['X-Chain'], ['istio-system.old']);

      writeFileSync(join(dir, 'a.yaml'), marker('hup'));
      proxy.child.kill('SIGHUP');
      await proxy.waitForLog('reloaded (SIGHUP)');
      assert.equal(await chainSeen(proxy.url), 'istio-system.hup');
    } finally {
      await proxy.stop();
    }
  });
});

describe('graceful drain', () => {
  test('SIGTERM: not ready at once, the request in flight completes with Connection: close, then exit 0', async () => {
    const dir = tempConfig({ 'a.yaml': marker('m') });
    const proxy = await startProxy(['-c', dir, '--upstream', upstream.url, '--drain-time', '10s']);
    const agent = new http.Agent({ keepAlive: true });
    const slow = new Promise<http.IncomingMessage>((resolve, reject) =>
      http.get({ host: '127.0.0.1', port: proxy.port, path: '/delay/1', agent }, resolve).on('error', reject),
    );
    await new Promise((r) => setTimeout(r, 300));
    const exited = new Promise<number | null>((r) => proxy.child.once('exit', (code) => r(code)));
    const t0 = Date.now();
    proxy.child.kill('SIGTERM');
    await proxy.waitForLog('SIGTERM: draining');
    const ready = await fetch(`http://127.0.0.1:${proxy.adminPort}/ready`);
    assert.equal(ready.status, 503);
    assert.equal(await ready.text(), 'DRAINING\n');
    const healthz = await fetch(`http://127.0.0.1:${proxy.healthPort}/healthz/ready`);
    assert.equal(healthz.status, 503);
    await healthz.text();
    const res = await slow;
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers.connection, 'close');
    res.resume();
    assert.equal(await exited, 0);
    assert.ok(Date.now() - t0 < 8000, 'exits once no connection is left, before the drain time');
    agent.destroy();
  });
});

describe('under load', () => {
  test('a config reload, a plugin swap and a SIGHUP with two workers: zero failed requests', async () => {
    const { default: autocannon } = await import('autocannon');
    const dir = tempConfig({});
    const wasm = join(dir, 'plugin.wasm');
    copyFileSync(MARKER, wasm);
    writeFileSync(join(dir, 'a.yaml'), wasmPluginYaml({ name: 'a', url: pathToFileURL(wasm).href }));
    const proxy = await startProxy(['-c', dir, '--upstream', upstream.url, '--concurrency', '2']);
    try {
      const run = autocannon({ url: `${proxy.url}/get`, connections: 8, duration: 6 });
      await new Promise((r) => setTimeout(r, 1000));
      writeFileSync(join(dir, 'b.yaml'), wasmPluginYaml({ name: 'b', url: pathToFileURL(MARKER).href }));
      await proxy.waitForLog('added 1, removed 0');
      await new Promise((r) => setTimeout(r, 800));
      // A different module at the same path: the reload replaces plugin a.
      copyFileSync(join(ROOT, 'plugins/hostcalls-go/plugin.wasm'), wasm);
      await proxy.waitForLog('replaced 1');
      await new Promise((r) => setTimeout(r, 800));
      proxy.child.kill('SIGHUP');
      await proxy.waitForLog('reloaded (SIGHUP)');
      const result = await run;
      assert.ok(result.requests.total > 100, `only ${result.requests.total} requests`);
      assert.equal(result.errors, 0);
      assert.equal(result.timeouts, 0);
      assert.equal(result.non2xx, 0);
    } finally {
      await proxy.stop();
    }
  });
});
