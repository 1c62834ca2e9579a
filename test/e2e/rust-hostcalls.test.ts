// The conformance suite for the Rust SDK: hostcalls-rust (proxy-wasm 0.2.2) drives one group of
// host calls per value of `x-test`, over real sockets, through the real CLI.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { ROOT, type RunningProxy, runCli, startProxy, tempConfig, wasmPluginYaml } from '../helpers/proxy.ts';
import { startEmbeddedHttpbin } from '../helpers/upstreams.ts';

const URL_ = pathToFileURL(join(ROOT, 'plugins/hostcalls-rust/plugin.wasm')).href;
type Echo = { headers: Record<string, string[]>; data: string };

describe('hostcalls-rust', () => {
  let upstream: Awaited<ReturnType<typeof startEmbeddedHttpbin>>;
  let proxy: RunningProxy;
  const get = (path: string, headers: Record<string, string>, init: RequestInit = {}) =>
    fetch(`${proxy.url}${path}`, { ...init, headers });
  before(async () => {
    upstream = await startEmbeddedHttpbin();
    const dir = tempConfig({
      'p.yaml': wasmPluginYaml({
        name: 'hostcalls-rust',
        url: URL_,
        extra: `  pluginName: hostcalls-root\n  pluginConfig:\n    cluster: "outbound|${upstream.port}||127.0.0.1"\n    tick_ms: 20\n`,
      }),
    });
    proxy = await startProxy(['-c', dir, '--upstream', upstream.url]);
  });
  after(async () => {
    await proxy?.stop();
    await upstream?.close();
  });

  test('root context: on_vm_start, on_configure', async () => {
    await proxy.waitForLog('wasm log istio-system.hostcalls-rust: vm_start config_size=0');
  });

  test('local reply runs through the response callbacks', async () => {
    const res = await get('/get', { 'x-test': 'local' });
    assert.equal(res.status, 451);
    assert.equal(res.headers.get('x-local'), 'yes');
    assert.match(res.headers.get('x-hostcalls') ?? '', /^\d+$/);
    assert.equal(await res.text(), 'local reply');
  });

  test('add, replace and remove request and response headers', async () => {
    const res = await get('/response-headers?x-remove-me=1&x-kept=2', {
      'x-test': 'headers',
      'x-replace': 'orig',
      'x-remove': 'gone',
    });
    assert.equal(res.headers.get('x-resp-added'), '1');
    assert.equal(res.headers.get('x-remove-me'), null);
    assert.equal(res.headers.get('x-kept'), '2');
    await res.text();
    const echo = (await (
      await get('/headers', { 'x-test': 'headers', 'x-replace': 'orig', 'x-remove': 'gone' })
    ).json()) as Echo;
    assert.deepEqual(echo.headers['X-Added'], ['1']);
    assert.deepEqual(echo.headers['X-Replace'], ['replaced']);
    assert.equal(echo.headers['X-Remove'], undefined);
  });

  test('header pairs include the pseudo-headers', async () => {
    const echo = (await (await get('/headers', { 'x-test': 'pairs' })).json()) as Echo;
    const count = Number(echo.headers['X-Pairs-Count']?.[0]);
    const upstreamSaw = Object.values(echo.headers).flat().length;
    // The plugin saw the 4 pseudo-headers (:authority standing for Host); not its own x-pairs-count,
    // nor the connection header the upstream hop adds.
    assert.equal(count, upstreamSaw - 3 + 4, JSON.stringify(echo.headers));
  });

  test('properties: request.*, plugin_name, plugin_root_id', async () => {
    const res = await get('/some/path?q=1', { 'x-test': 'property' });
    assert.equal(
      await res.text(),
      'path=/some/path?q=1 method=GET plugin_name=istio-system.hostcalls-rust root_id=hostcalls-root',
    );
  });

  test('set_property then get_property', async () => {
    const echo = (await (await get('/headers', { 'x-test': 'setprop' })).json()) as Echo;
    assert.deepEqual(echo.headers['X-Prop'], ['v1']);
  });

  test('shared data with CAS, read back by a later request', async () => {
    const echo = (await (await get('/headers', { 'x-test': 'shared', 'x-key': 'a', 'x-val': 'one' })).json()) as Echo;
    assert.deepEqual(echo.headers['X-Shared'], ['one']);
    assert.match(echo.headers['X-Cas']![0]!, /^[1-9]\d*$/);
    const back = await get('/get', { 'x-test': 'shared-get', 'x-key': 'a' });
    assert.equal(await back.text(), 'one');
    const missing = await get('/get', { 'x-test': 'shared-get', 'x-key': 'nope' });
    assert.equal(missing.status, 404);
    await missing.text();
  });

  test('timers: on_tick advances a shared counter', async () => {
    const a = Number(await (await get('/get', { 'x-test': 'ticks' })).text());
    await new Promise((r) => setTimeout(r, 200));
    const b = Number(await (await get('/get', { 'x-test': 'ticks' })).text());
    assert.ok(b - a >= 3, `ticks ${a} -> ${b}`);
  });

  test('shared queue: enqueue, on_queue_ready on the root context', async () => {
    const res = await get('/get', { 'x-test': 'enqueue', 'x-val': 'rust-item' });
    assert.equal(await res.text(), 'enqueued');
    await proxy.waitForLog('wasm log istio-system.hostcalls-rust: queue item: rust-item');
  });

  test('HTTP callout to an Istio-named cluster, then resume', async () => {
    const echo = (await (await get('/headers', { 'x-test': 'httpcall', 'x-path': '/bytes/321' })).json()) as Echo;
    assert.deepEqual(echo.headers['X-Callout-Status'], ['200']);
    assert.deepEqual(echo.headers['X-Callout-Bytes'], ['321']);
    const paused = await get('/get', { 'x-test': 'pause-resume' });
    assert.equal(paused.status, 200);
    await paused.text();
  });

  test('request body buffered and rewritten', async () => {
    const echo = (await (
      await get('/anything', { 'x-test': 'body-buffer' }, { method: 'POST', body: 'hello body' })
    ).json()) as Echo;
    assert.equal(echo.data, 'HELLO BODY');
  });

  test('response body replaced and appended', async () => {
    const replaced = await get('/bytes/1000', { 'x-test': 'resp-body' });
    assert.equal(await replaced.text(), 'rewritten:1000');
    const appended = await get('/robots.txt', { 'x-test': 'append-body' });
    assert.match(await appended.text(), /Disallow: \/deny\n\n-- appended$/);
  });

  test('proxy_get_log_level reports the plugin level', async () => {
    const echo = (await (await get('/headers', { 'x-test': 'log-level' })).json()) as Echo;
    assert.deepEqual(echo.headers['X-Log-Level'], ['2']);
  });

  test('proxy_close_stream resets the request', async () => {
    await assert.rejects(get('/get', { 'x-test': 'close' }));
    const ok = await get('/get', {});
    assert.equal(ok.status, 200);
    await ok.text();
  });

  test('on_log runs for every stream; metrics on /stats/prometheus', async () => {
    await proxy.waitForLog('wasm log istio-system.hostcalls-rust: on_log');
    const text = await (await fetch(`http://127.0.0.1:${proxy.adminPort}/stats/prometheus`)).text();
    const m = /hostcalls_requests_total (\d+)/.exec(text);
    assert.ok(m && Number(m[1]) >= 15, text);
    assert.match(text, /# TYPE hostcalls_inflight gauge/);
    assert.match(text, /hostcalls_body_bytes_count 1/);
  });

  test('a Rust panic traps: FAIL_CLOSE answers 503 and the proxy keeps serving other plugins', async () => {
    const res = await get('/get', { 'x-test': 'trap' });
    assert.equal(res.status, 503);
    await res.text();
    await proxy.waitForLog('trap requested');
  });
});

test('on_configure returning false fails the plugin at start with one line', async () => {
  const dir = tempConfig({
    'p.yaml': wasmPluginYaml({ name: 'cfg-fail', url: URL_, extra: '  pluginConfig:\n    fail: true\n' }),
  });
  const r = await runCli(['validate', '-c', dir]);
  assert.equal(r.code, 0);
  const upstream = await startEmbeddedHttpbin();
  const proxy = await startProxy(['-c', dir, '--upstream', upstream.url]);
  try {
    const res = await fetch(`${proxy.url}/get`);
    assert.equal(res.status, 503);
    await res.text();
    assert.match(
      proxy.stderr(),
      /wasm plugin istio-system\.cfg-fail failed to load: proxy_on_configure returned false/,
    );
  } finally {
    await proxy.stop();
    await upstream.close();
  }
});
