// A plugin in C against the raw ABI, alone and chained after a Go SDK plugin.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { ROOT, type RunningProxy, startProxy, tempConfig, wasmPluginYaml } from '../helpers/proxy.ts';
import { startEmbeddedHttpbin } from '../helpers/upstreams.ts';

const plugin = (name: string) => pathToFileURL(join(ROOT, `plugins/${name}/plugin.wasm`)).href;

describe('upper-body-c (raw ABI, clang + wasi-libc)', () => {
  let upstream: Awaited<ReturnType<typeof startEmbeddedHttpbin>>;
  let proxy: RunningProxy;
  before(async () => {
    upstream = await startEmbeddedHttpbin();
    const dir = tempConfig({
      'p.yaml': [
        wasmPluginYaml({ name: 'upper-body-c', url: plugin('upper-body-c'), phase: 'STATS' }),
        wasmPluginYaml({ name: 'hostcalls-go', url: plugin('hostcalls-go'), phase: 'AUTHN' }),
      ].join('---\n'),
    });
    proxy = await startProxy(['-c', dir, '--upstream', upstream.url]);
  });
  after(async () => {
    await proxy?.stop();
    await upstream?.close();
  });

  test('response body buffered and rewritten in place; content-length dropped', async () => {
    const res = await fetch(`${proxy.url}/anything/lower?q=abc`, { headers: { 'x-c': 'upper' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-c-plugin'), 'c');
    assert.equal(res.headers.get('content-length'), null);
    const text = await res.text();
    assert.match(text, /"URL": "HTTP:\/\/127\.0\.0\.1:\d+\/ANYTHING\/LOWER\?Q=ABC"/);
    assert.match(text, /"X-C-SEEN": \[/);
    assert.equal(text, text.toUpperCase());
  });

  test('two SDKs in one chain: the Go plugin rewrites the request, the C plugin the response', async () => {
    const res = await fetch(`${proxy.url}/anything`, {
      method: 'POST',
      headers: { 'x-c': 'upper', 'x-go': 'body' },
      body: 'mixed case',
    });
    const text = await res.text();
    assert.match(text, /"DATA": "GO:MIXED CASE"/);
    assert.match(res.headers.get('x-go-plugin') ?? '', /^\d+$/);
  });

  test('without the header the body passes untouched and streams', async () => {
    const res = await fetch(`${proxy.url}/stream/3`);
    assert.equal((await res.text()).trim().split('\n').length, 3);
    assert.equal(res.headers.get('x-c-plugin'), 'c');
  });

  test('plugin metrics appear on /stats/prometheus under their own names', async () => {
    const res = await fetch(`http://127.0.0.1:${proxy.adminPort}/stats/prometheus`);
    const text = await res.text();
    assert.match(text, /# TYPE c_plugin_bodies_total counter\nc_plugin_bodies_total 2\n/);
  });
});
