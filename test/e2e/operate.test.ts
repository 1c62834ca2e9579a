// What operators rely on: the health port and `wasmgate health`, every flag as WASMGATE_* from
// the environment, and the admin endpoints /stats (text and JSON), /listeners, /clusters.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runCli, startProxy, tempConfig } from '../helpers/proxy.ts';
import { startEmbeddedHttpbin, type Upstream } from '../helpers/upstreams.ts';

let upstream: Upstream;
before(async () => {
  upstream = await startEmbeddedHttpbin();
});
after(async () => {
  await upstream?.close();
});

describe('health', () => {
  test('/healthz/ready and `wasmgate health` follow readiness (POST /healthcheck/fail, /ok)', async () => {
    const proxy = await startProxy(['-c', tempConfig({}), '--upstream', upstream.url]);
    try {
      const ready = await fetch(`http://127.0.0.1:${proxy.healthPort}/healthz/ready`);
      assert.equal(ready.status, 200);
      assert.equal(await ready.text(), 'LIVE\n');
      const ok = await runCli(['health', '--health-port', String(proxy.healthPort)]);
      assert.equal(ok.code, 0, ok.stdout);
      const admin = `http://127.0.0.1:${proxy.adminPort}`;
      await (await fetch(`${admin}/healthcheck/fail`, { method: 'POST' })).text();
      assert.equal((await fetch(`http://127.0.0.1:${proxy.healthPort}/healthz/ready`)).status, 503);
      const failed = await runCli(['health', '--health-port', String(proxy.healthPort)]);
      assert.equal(failed.code, 1);
      assert.match(failed.stdout, /^503 DRAINING/);
      await (await fetch(`${admin}/healthcheck/ok`, { method: 'POST' })).text();
      assert.equal((await fetch(`http://127.0.0.1:${proxy.healthPort}/healthz/ready`)).status, 200);
    } finally {
      await proxy.stop();
    }
    const down = await runCli(['health', '--health-port', String(proxy.healthPort)]);
    assert.equal(down.code, 1, 'nothing listening');
  });
});

describe('environment', () => {
  test('WASMGATE_* sets flags; the command line wins; a bad boolean is a usage error', async () => {
    const dir = tempConfig({});
    const env = { ...process.env, WASMGATE_CONFIG: dir, WASMGATE_NAMESPACE: 'from-env' };
    const r = await runCli(['validate'], 30_000, env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^listener :8080: istio\.stats -> router$/m);
    const bad = await runCli(['validate'], 30_000, { ...env, WASMGATE_NO_WATCH: 'maybe' });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /WASMGATE_NO_WATCH: expected true or false, got "maybe"/);
    const missing = await runCli(['validate'], 30_000, { ...process.env, WASMGATE_CONFIG: '' });
    assert.equal(missing.code, 2);
  });
});

describe('admin endpoints', () => {
  test('/stats text and JSON, /listeners, /clusters after traffic', async () => {
    const proxy = await startProxy(['-c', tempConfig({}), '--upstream', upstream.url]);
    try {
      for (const path of ['/status/200', '/status/200', '/status/404'])
        await (await fetch(`${proxy.url}${path}`)).text();
      const admin = `http://127.0.0.1:${proxy.adminPort}`;
      const text = await (await fetch(`${admin}/stats`)).text();
      assert.match(text, /^http\.downstream_rq_2xx: 2$/m);
      assert.match(text, /^http\.downstream_rq_4xx: 1$/m);
      assert.match(
        text,
        new RegExp(`^cluster\\.outbound\\|${upstream.port}\\|\\|127\\.0\\.0\\.1\\.upstream_rq_total: 3$`, 'm'),
      );
      assert.match(text, /^server\.live: 1$/m);
      const json = (await (await fetch(`${admin}/stats?format=json`)).json()) as {
        stats: { name: string; value: number }[];
      };
      assert.equal(json.stats.find((s) => s.name === 'http.downstream_rq_total')?.value, 3);
      const listeners = await (await fetch(`${admin}/listeners`)).text();
      assert.equal(listeners, `0.0.0.0_0::0.0.0.0:${proxy.port}\n`);
      const clusters = await (await fetch(`${admin}/clusters`)).text();
      assert.match(clusters, new RegExp(`::127\\.0\\.0\\.1:${upstream.port}::rq_total::3$`, 'm'));
      assert.match(clusters, /::health_flags::healthy$/m);
    } finally {
      await proxy.stop();
    }
  });
});

describe('admin mutations', () => {
  test('/server_info, POST /drain_listeners (not ready, Connection: close), GET refused, POST /quitquitquit exits 0', async () => {
    const proxy = await startProxy(['-c', tempConfig({}), '--upstream', upstream.url]);
    const admin = `http://127.0.0.1:${proxy.adminPort}`;
    const info = (await (await fetch(`${admin}/server_info`)).json()) as { version: string; state: string };
    assert.match(info.version, /^\d+\.\d+\.\d+$/);
    assert.equal(info.state, 'LIVE');
    const get = await fetch(`${admin}/drain_listeners`);
    assert.equal(get.status, 405);
    assert.match(await get.text(), /use POST, e\.g\. curl -XPOST "localhost:15000\/drain_listeners"/);
    assert.equal((await fetch(`${admin}/drain_listeners?graceful`, { method: 'POST' })).status, 200);
    assert.equal((await fetch(`${admin}/ready`)).status, 503);
    assert.equal(((await (await fetch(`${admin}/server_info`)).json()) as { state: string }).state, 'DRAINING');
    const res = await new Promise<import('node:http').IncomingMessage>((resolve, reject) =>
      import('node:http').then((http) =>
        http.get({ host: '127.0.0.1', port: proxy.port, path: '/get', agent: false }, resolve).on('error', reject),
      ),
    );
    res.resume();
    assert.equal(res.statusCode, 200, 'a draining listener still serves');
    assert.equal(res.headers.connection, 'close');
    const exited = new Promise<number | null>((r) => proxy.child.once('exit', (code) => r(code)));
    assert.equal((await fetch(`${admin}/quitquitquit`)).status, 405);
    assert.equal((await fetch(`${admin}/quitquitquit`, { method: 'POST' })).status, 200);
    assert.equal(await exited, 0);
  });
});
