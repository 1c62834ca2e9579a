// Hostile guests never hurt the host: bad pointers and arguments get the ABI's status codes,
// proc_exit and runaway memory fail the VM (failStrategy applies), and the proxy keeps serving.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type RunningProxy, startProxy, tempConfig, wasmPluginYaml } from '../helpers/proxy.ts';
import { startEmbeddedHttpbin } from '../helpers/upstreams.ts';
import { HOSTILE_WAT, tempModule, WRONG_PHASE_WAT, wat } from '../helpers/wat.ts';

describe('a hostile module', () => {
  let upstream: Awaited<ReturnType<typeof startEmbeddedHttpbin>>;
  let proxy: RunningProxy;
  before(async () => {
    upstream = await startEmbeddedHttpbin();
    const url = tempModule(wat(HOSTILE_WAT)).url;
    proxy = await startProxy([
      '-c',
      tempConfig({ 'p.yaml': wasmPluginYaml({ name: 'hostile', url, failStrategy: 'FAIL_RELOAD' }) }),
      '--upstream',
      upstream.url,
    ]);
  });
  after(async () => {
    await proxy?.stop();
    await upstream?.close();
  });

  test('bad host calls get the ABI status codes, one letter each', async () => {
    const res = await fetch(`${proxy.url}/get`);
    assert.equal(res.status, 200);
    // log OOB=6, huge key=6, bad map=2, body in headers phase=1, pairs OOB=6, bad stream type=2,
    // unknown property=1, bad log level=2, missing shared key=1, unknown queue=1,
    // callout without pseudo-headers=2, unknown foreign function=1, unknown buffer type=2
    assert.equal(await res.text(), 'GGCBGCBCBBCBC');
  });

  test('two local replies in one callback: only the first counts', async () => {
    const res = await fetch(`${proxy.url}/get`, { headers: { 'x-loop-reply': '1' } });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'first');
  });

  test('proc_exit(3) inside a callback fails that request with 503; the reloaded VM serves the next', async () => {
    const res = await fetch(`${proxy.url}/get`, { headers: { 'x-exit': '1' } });
    assert.equal(res.status, 503);
    await res.text();
    await proxy.waitForLog('proc_exit(3) called');
    await new Promise((r) => setTimeout(r, 150));
    const next = await fetch(`${proxy.url}/get`);
    assert.equal(next.status, 200);
    assert.equal(await next.text(), 'GGCBGCBCBBCBC');
  });

  test('runaway memory growth fails the VM at the 1 GiB cap; the proxy keeps serving', async () => {
    const res = await fetch(`${proxy.url}/get`, { headers: { 'x-grow': '1' } });
    assert.equal(res.status, 503);
    await res.text();
    await proxy.waitForLog('over the 1073741824-byte limit');
    await new Promise((r) => setTimeout(r, 250));
    const next = await fetch(`${proxy.url}/get`);
    assert.equal(next.status, 200);
    await next.text();
  });
});

describe('calls in the wrong context or phase, and re-entrant ones', () => {
  test("each gets Envoy's status; the stream and the proxy carry on", async () => {
    const upstream = await startEmbeddedHttpbin();
    const url = tempModule(wat(WRONG_PHASE_WAT)).url;
    const proxy = await startProxy([
      '-c',
      tempConfig({ 'p.yaml': wasmPluginYaml({ name: 'wrong-phase', url }) }),
      '--upstream',
      upstream.url,
    ]);
    try {
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`${proxy.url}/get`);
        assert.equal(res.status, 200);
        // Root context (on_configure): request headers = BadArgument (C), local reply = NotFound (B),
        // continue_stream = NotFound (B), tick period 0 = OK (A).
        // Stream (on_request_headers): response headers before a response = BadArgument (C),
        // unknown effective context = BadArgument (C), callout body without a callout = NotFound (B),
        // continue_stream inside the callback = OK, deferred until it returns (A), proxy_done from a
        // stream = NotFound (B).
        assert.equal(await res.text(), 'CBBA/CCBAB');
      }
      // A local reply from on_log, after the response went out, changes nothing.
      await proxy.waitForLog('wrong-phase on_log reply: ');
      assert.doesNotMatch(proxy.stderr(), /"level":50|\n\s+at /);
    } finally {
      await proxy.stop();
      await upstream.close();
    }
  });
});
