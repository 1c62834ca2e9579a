// Several worker threads on one port (SO_REUSEPORT), each with its own VMs, sharing data and
// queues through the supervisor's shared memory; the admin merges what the workers report.
import assert from 'node:assert/strict';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { ROOT, type RunningProxy, startProxy, tempConfig, wasmPluginYaml } from '../helpers/proxy.ts';
import { startEmbeddedHttpbin, type Upstream } from '../helpers/upstreams.ts';

/** One request on a fresh connection (no keep-alive), so the kernel picks a worker each time. */
function get(port: number, path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          body += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

describe('two workers', () => {
  let upstream: Upstream;
  let proxy: RunningProxy;
  before(async () => {
    upstream = await startEmbeddedHttpbin();
    const url = pathToFileURL(join(ROOT, 'plugins/hostcalls-rust/plugin.wasm')).href;
    proxy = await startProxy([
      '-c',
      tempConfig({ 'p.yaml': wasmPluginYaml({ name: 'hostcalls-rust', url }) }),
      '--upstream',
      upstream.url,
      '--concurrency',
      '2',
    ]);
  });
  after(async () => {
    await proxy?.stop();
    await upstream?.close();
  });

  test('both workers start and the admin reports both', async () => {
    await proxy.waitForLog('2 worker(s) started');
    const dump = (await (await fetch(`http://127.0.0.1:${proxy.adminPort}/config_dump`)).json()) as {
      workers: number;
      wasm_plugins: { name: string; workers: { worker: number; state: string }[] }[];
    };
    assert.equal(dump.workers, 2);
    assert.deepEqual(
      dump.wasm_plugins[0]!.workers.map((w) => w.state),
      ['ACTIVE', 'ACTIVE'],
    );
  });

  test('CAS increments from both workers end at exactly N', async () => {
    const n = 200;
    // The key exists first: as in Envoy, a set on a missing key succeeds whatever the CAS, so two
    // first increments racing on different workers could both write 1 (the ABI has no atomic create).
    const first = await get(proxy.port, '/get', { 'x-test': 'incr', 'x-key': 'workers' });
    assert.equal(first.body, '1');
    const results = await Promise.all(
      Array.from({ length: n }, () => get(proxy.port, '/get', { 'x-test': 'incr', 'x-key': 'workers' })),
    );
    assert.ok(results.every((r) => r.status === 200));
    // Every increment saw a distinct value: no lost update.
    assert.equal(new Set(results.map((r) => r.body)).size, n);
    const final = await get(proxy.port, '/get', { 'x-test': 'shared-get', 'x-key': 'workers' });
    assert.equal(final.body, String(n + 1));
    // Plugin metrics are summed over the workers' VMs.
    const text = await (await fetch(`http://127.0.0.1:${proxy.adminPort}/stats/prometheus`)).text();
    const total = Number(/^hostcalls_requests_total (\d+)$/m.exec(text)?.[1]);
    assert.equal(total, n + 2);
    const served = /^istio_requests_total\{.*response_code="200".*\} (\d+)$/m.exec(text);
    assert.equal(Number(served?.[1]), n + 2);
  });

  test('a queue registered by each worker is fed from either; on_queue_ready runs on the owner', async () => {
    for (let i = 0; i < 10; i++) {
      const r = await get(proxy.port, '/get', { 'x-test': 'enqueue', 'x-val': `item-${i}` });
      assert.equal(r.status, 200);
    }
    for (let i = 0; i < 10; i++) await proxy.waitForLog(`queue item: item-${i}`);
  });
});
