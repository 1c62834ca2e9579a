// The watchdog: a plugin callback that runs past --wasm-deadline is stopped (a loop, or a
// recursion with no loop), a VM that tries to grow past --wasm-memory-limit is failed; the request
// gets failStrategy's answer, the VM is recreated, and the proxy keeps serving everyone else.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type RunningProxy, startProxy, tempConfig, wasmPluginYaml } from '../helpers/proxy.ts';
import { startEmbeddedHttpbin } from '../helpers/upstreams.ts';
import { RUNAWAY_WAT, tempModule, wat } from '../helpers/wat.ts';

const DEADLINE_MS = 300;

async function timed(url: string, headers: Record<string, string> = {}): Promise<{ status: number; ms: number }> {
  const t0 = performance.now();
  const res = await fetch(url, { headers });
  await res.arrayBuffer();
  return { status: res.status, ms: performance.now() - t0 };
}

describe('the watchdog', () => {
  let upstream: Awaited<ReturnType<typeof startEmbeddedHttpbin>>;
  let proxy: RunningProxy;
  before(async () => {
    upstream = await startEmbeddedHttpbin();
    const url = tempModule(wat(RUNAWAY_WAT)).url;
    proxy = await startProxy([
      '-c',
      tempConfig({ 'p.yaml': wasmPluginYaml({ name: 'runaway', url, failStrategy: 'FAIL_CLOSE' }) }),
      '--upstream',
      upstream.url,
      '--concurrency',
      '2',
      '--wasm-deadline',
      `${DEADLINE_MS}ms`,
      '--wasm-memory-limit',
      '64Mi',
    ]);
  });
  after(async () => {
    await proxy?.stop();
    await upstream?.close();
  });

  test('an infinite loop is stopped at the deadline with 503; everyone else is served; the VM is recreated', async (t) => {
    const spin = timed(`${proxy.url}/get`, { 'x-spin': '1' });
    // Meanwhile: requests that do not loop (on the other worker at once, on this one after recovery).
    await new Promise((r) => setTimeout(r, 20));
    const others = await Promise.all(Array.from({ length: 20 }, () => timed(`${proxy.url}/get`)));
    const stopped = await spin;
    t.diagnostic(
      `stopped after ${stopped.ms.toFixed(0)} ms; bystanders ${Math.min(...others.map((o) => o.ms)).toFixed(0)}..${Math.max(...others.map((o) => o.ms)).toFixed(0)} ms`,
    );
    assert.equal(stopped.status, 503);
    assert.ok(stopped.ms >= DEADLINE_MS - 5, `stopped after ${stopped.ms} ms`);
    assert.ok(stopped.ms < DEADLINE_MS + 1000, `stopped after ${stopped.ms} ms`);
    assert.deepEqual(
      others.map((o) => o.status),
      others.map(() => 200),
    );
    for (const o of others) assert.ok(o.ms < DEADLINE_MS + 1000, `a bystander waited ${o.ms} ms`);
    await proxy.waitForLog(`deadline exceeded (${DEADLINE_MS} ms) in proxy_on_request_headers`);
    // FAIL_CLOSE, yet the next request works: a VM the watchdog stopped is always recreated.
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${proxy.url}/get`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('x-runaway'), 'ok');
      await res.arrayBuffer();
    }
  });

  test('an exponential recursion with no loop is stopped too (checks at function entry)', async () => {
    const stopped = await timed(`${proxy.url}/get`, { 'x-recurse': '1' });
    assert.equal(stopped.status, 503);
    assert.ok(stopped.ms < DEADLINE_MS + 1000, `stopped after ${stopped.ms} ms`);
    await new Promise((r) => setTimeout(r, 250)); // past the reload backoff
    const next = await timed(`${proxy.url}/get`);
    assert.equal(next.status, 200);
  });

  test('a memory bomb is failed at the memory limit with 503; the next request works', async () => {
    const bomb = timed(`${proxy.url}/get`, { 'x-bomb': '1' });
    const others = await Promise.all(Array.from({ length: 10 }, () => timed(`${proxy.url}/get`)));
    const stopped = await bomb;
    assert.equal(stopped.status, 503);
    assert.ok(stopped.ms < DEADLINE_MS + 1000, `stopped after ${stopped.ms} ms`);
    assert.deepEqual(
      others.map((o) => o.status),
      others.map(() => 200),
    );
    await proxy.waitForLog('memory limit exceeded in proxy_on_request_headers');
    await proxy.waitForLog('over the 67108864-byte limit');
    await new Promise((r) => setTimeout(r, 600)); // past the reload backoff
    const next = await timed(`${proxy.url}/get`);
    assert.equal(next.status, 200);
  });
});

describe('the watchdog under FAIL_OPEN', () => {
  test('the stopped request skips the plugin; the next one runs it again', async () => {
    const upstream = await startEmbeddedHttpbin();
    const url = tempModule(wat(RUNAWAY_WAT)).url;
    const proxy = await startProxy([
      '-c',
      tempConfig({ 'p.yaml': wasmPluginYaml({ name: 'runaway', url, failStrategy: 'FAIL_OPEN' }) }),
      '--upstream',
      upstream.url,
      '--wasm-deadline',
      '200ms',
    ]);
    try {
      const res = await fetch(`${proxy.url}/get`, { headers: { 'x-spin': '1' } });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('x-runaway'), null);
      await res.arrayBuffer();
      await proxy.waitForLog('deadline exceeded (200 ms) in proxy_on_request_headers');
      const next = await fetch(`${proxy.url}/get`);
      assert.equal(next.status, 200);
      assert.equal(next.headers.get('x-runaway'), 'ok');
      await next.arrayBuffer();
    } finally {
      await proxy.stop();
      await upstream.close();
    }
  });

  test('bad --wasm-deadline and --wasm-memory-limit values are usage errors', async () => {
    const { runCli } = await import('../helpers/proxy.ts');
    const r = await runCli(['run', '-c', tempConfig({}), '--wasm-deadline', 'soon']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--wasm-deadline: expected a duration/);
    const m = await runCli(['run', '-c', tempConfig({}), '--wasm-memory-limit', 'lots']);
    assert.equal(m.code, 2, m.stderr);
    assert.match(m.stderr, /--wasm-memory-limit: expected a size/);
  });
});
