// The Go SDK (proxy-wasm-go-sdk, Go 1.24 wasip1) through bodies, callouts, queues, timers and
// shared data, in front of the embedded httpbin.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { ROOT, type RunningProxy, startProxy, tempConfig, wasmPluginYaml } from '../helpers/proxy.ts';
import { startEmbeddedHttpbin } from '../helpers/upstreams.ts';

describe('hostcalls-go', () => {
  let upstream: Awaited<ReturnType<typeof startEmbeddedHttpbin>>;
  let proxy: RunningProxy;
  before(async () => {
    upstream = await startEmbeddedHttpbin();
    const url = pathToFileURL(join(ROOT, 'plugins/hostcalls-go/plugin.wasm')).href;
    const cluster = `outbound|${upstream.port}||127.0.0.1`;
    const dir = tempConfig({
      'p.yaml': wasmPluginYaml({
        name: 'hostcalls-go',
        url,
        extra: `  pluginConfig:\n    cluster: "${cluster}"\n    tick_ms: 20\n`,
      }),
    });
    proxy = await startProxy(['-c', dir, '--upstream', upstream.url]);
  });
  after(async () => {
    await proxy?.stop();
    await upstream?.close();
  });

  test('pluginConfig reaches OnPluginStart as JSON', async () => {
    await proxy.waitForLog(`hostcalls-go configured: cluster=outbound|${upstream.port}||127.0.0.1`);
  });

  test('request body buffered with Pause and replaced at end of stream', async () => {
    const res = await fetch(`${proxy.url}/anything/body`, {
      method: 'POST',
      headers: { 'x-go': 'body' },
      body: 'x'.repeat(100_000),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('x-go-plugin') ?? '', /^\d+$/);
    const echo = (await res.json()) as { data: string };
    assert.equal(echo.data, `go:${'x'.repeat(100_000)}`);
  });

  test('DispatchHttpCall to a cluster pauses the request and resumes it from the callback', async () => {
    const res = await fetch(`${proxy.url}/headers`, { headers: { 'x-go': 'callout', 'x-path': '/bytes/321' } });
    assert.equal(res.status, 200);
    const { headers } = (await res.json()) as { headers: Record<string, string[]> };
    assert.deepEqual(headers['X-Go-Callout-Status'], ['200']);
    assert.deepEqual(headers['X-Go-Callout-Bytes'], ['321']);
  });

  test('shared queue: enqueue from a request, OnQueueReady on the plugin context', async () => {
    const res = await fetch(`${proxy.url}/get`, { headers: { 'x-go': 'enqueue', 'x-val': 'hello-queue' } });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'enqueued');
    await proxy.waitForLog('wasm log istio-system.hostcalls-go: go queue item: hello-queue');
  });

  test('OnTick keeps a shared-data counter with CAS', async () => {
    const first = Number(await (await fetch(`${proxy.url}/get`, { headers: { 'x-go': 'ticks' } })).text());
    await new Promise((r) => setTimeout(r, 200));
    const second = Number(await (await fetch(`${proxy.url}/get`, { headers: { 'x-go': 'ticks' } })).text());
    assert.ok(second > first, `ticks ${first} -> ${second}`);
    assert.ok(second - first >= 3, `ticks ${first} -> ${second}`);
  });
});
