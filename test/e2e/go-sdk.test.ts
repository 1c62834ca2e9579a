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

  test("Envoy's attributes with Envoy's encodings, read in the response phase", async () => {
    const paths = [
      'request.path',
      'request.url_path',
      'request.query',
      'request.method',
      'request.size',
      'request.headers.x-go',
      'response.code',
      'response.code_details',
      'response.flags',
      'response.grpc_status',
      'response.backend_latency',
      'response.headers.content-type',
      'source.port',
      'destination.port',
      'upstream.address',
      'connection.mtls',
      'connection.tls_version',
      'xds.cluster_name',
      'cluster_name',
      'xds.route_name',
      'xds.listener_direction',
      'xds.cluster_metadata',
      'xds.node',
      'node.metadata.NAMESPACE',
      'plugin_name',
      'no.such.attribute',
    ];
    const res = await fetch(`${proxy.url}/status/201?x=1`, {
      headers: { 'x-go': 'props', 'x-props': paths.join(',') },
    });
    assert.equal(res.status, 201);
    await res.arrayBuffer();
    const raw = (p: string) => {
      const v = res.headers.get(`x-prop-${p}`);
      assert.ok(v !== null, `x-prop-${p} missing`);
      return v === '-' ? undefined : Buffer.from(v, 'hex');
    };
    const text = (p: string) => raw(p)?.toString('utf8');
    const int = (p: string) => {
      const b = raw(p);
      assert.equal(b?.length, 8, `${p} is an 8-byte integer`);
      return Number(b!.readBigInt64LE(0));
    };
    assert.equal(text('request.path'), '/status/201?x=1');
    assert.equal(text('request.url_path'), '/status/201');
    assert.equal(text('request.query'), 'x=1');
    assert.equal(text('request.method'), 'GET');
    assert.equal(int('request.size'), 0);
    assert.equal(text('request.headers.x-go'), 'props');
    assert.equal(int('response.code'), 201);
    assert.equal(int('response.flags'), 0);
    assert.equal(raw('response.grpc_status'), undefined, 'not a gRPC response');
    assert.ok(int('response.backend_latency') > 0);
    assert.equal(int('destination.port'), proxy.port);
    assert.ok(int('source.port') > 0);
    assert.equal(text('upstream.address'), `127.0.0.1:${upstream.port}`);
    assert.deepEqual(raw('connection.mtls'), Buffer.of(0));
    assert.equal(raw('connection.tls_version'), undefined, 'plain HTTP has no TLS version');
    const cluster = `outbound|${upstream.port}||127.0.0.1`;
    assert.equal(text('xds.cluster_name'), cluster);
    assert.equal(text('cluster_name'), cluster);
    assert.equal(text('xds.route_name'), 'upstream');
    assert.equal(int('xds.listener_direction'), 2);
    // Protobuf Metadata {filter_metadata: {istio: {services: [{host, ...}]}}} and Node {id, cluster, metadata}.
    const meta = raw('xds.cluster_metadata')!;
    assert.equal(meta[0], 0x0a);
    assert.ok(meta.includes(Buffer.from('istio')) && meta.includes(Buffer.from('services')));
    const node = raw('xds.node')!;
    assert.equal(node[0], 0x0a);
    assert.ok(node.includes(Buffer.from('router~')) && node.includes(Buffer.from('NAMESPACE')));
    assert.equal(text('node.metadata.NAMESPACE'), 'istio-system');
    assert.equal(text('plugin_name'), 'istio-system.hostcalls-go');
    assert.equal(raw('no.such.attribute'), undefined);
  });
});
