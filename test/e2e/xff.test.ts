// X-Forwarded-For with trusted hops (--xff-num-trusted-hops N, Envoy's xff_num_trusted_hops with
// use_remote_address): the client address is taken N hops from the right of the incoming
// X-Forwarded-For, and drives authz remote.ip / remoteIpBlocks (source.ip / ipBlocks stay the
// peer), the access log's downstream_remote_address and x-envoy-external-address; the peer is
// appended either way. Trace context headers (W3C and B3) pass through unchanged.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { type RunningProxy, runCli, startProxy, tempConfig } from '../helpers/proxy.ts';
import { send } from './routing-helpers.ts';

interface Recorder {
  url: string;
  seen: http.IncomingHttpHeaders[];
  close(): Promise<void>;
}

async function recorder(): Promise<Recorder> {
  const seen: http.IncomingHttpHeaders[] = [];
  const server = http.createServer((req, res) => {
    seen.push(req.headers);
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain' }).end('ok'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const POLICIES = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: remote-deny, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules:
  - from: [{source: {remoteIpBlocks: ["198.51.100.0/24"]}}]
    to: [{operation: {paths: ["/remote*"]}}]
  - from: [{source: {ipBlocks: ["127.0.0.1/32"]}}]
    to: [{operation: {paths: ["/peer*"]}}]
  - to: [{operation: {paths: ["/when*"]}}]
    when: [{key: remote.ip, values: ["203.0.113.99"]}]
`;

describe('--xff-num-trusted-hops 1', () => {
  let up: Recorder;
  let proxy: RunningProxy;
  let logs = 0;
  const nextLog = async () => {
    const all = await proxy.accessLogs(logs + 1, 10_000);
    return all[logs++]!;
  };
  before(async () => {
    up = await recorder();
    proxy = await startProxy([
      '-c',
      tempConfig({ 'authz.yaml': POLICIES }),
      '--upstream',
      up.url,
      '--xff-num-trusted-hops',
      '1',
    ]);
  });
  after(async () => {
    await proxy?.stop();
    await up?.close();
  });

  const get = (path: string, headers: Record<string, string> = {}) => send(`${proxy.url}${path}`, { headers });

  test("Envoy's example: the last X-Forwarded-For address is the client; the peer is appended", async () => {
    const res = await get('/x', { 'x-forwarded-for': '203.0.113.128, 203.0.113.10, 192.0.2.1' });
    assert.equal(res.status, 200);
    const h = up.seen.at(-1)!;
    assert.equal(h['x-forwarded-for'], '203.0.113.128, 203.0.113.10, 192.0.2.1, 127.0.0.1');
    assert.equal(h['x-envoy-external-address'], '192.0.2.1');
    const log = await nextLog();
    assert.equal(log.downstream_remote_address, '192.0.2.1:0');
    assert.equal(log.x_forwarded_for, '203.0.113.128, 203.0.113.10, 192.0.2.1, 127.0.0.1');
  });

  test('without X-Forwarded-For the client is the peer (internal: no x-envoy-external-address)', async () => {
    await get('/x');
    const h = up.seen.at(-1)!;
    assert.equal(h['x-forwarded-for'], '127.0.0.1');
    assert.equal(h['x-envoy-external-address'], undefined);
    const log = await nextLog();
    assert.match(String(log.downstream_remote_address), /^127\.0\.0\.1:\d+$/);
    assert.notEqual(log.downstream_remote_address, '127.0.0.1:0');
  });

  test('a client-supplied x-envoy-external-address is replaced for an external client', async () => {
    await get('/x', { 'x-forwarded-for': '192.0.2.7', 'x-envoy-external-address': '10.9.9.9' });
    assert.equal(up.seen.at(-1)!['x-envoy-external-address'], '192.0.2.7');
    await nextLog();
  });

  test('remoteIpBlocks and remote.ip use the trusted client; a spoofed leftmost entry does not count', async () => {
    const denied = await get('/remote', { 'x-forwarded-for': '1.1.1.1, 198.51.100.7' });
    assert.equal(denied.status, 403);
    assert.equal(denied.text, 'RBAC: access denied');
    const spoofed = await get('/remote', { 'x-forwarded-for': '198.51.100.7, 1.1.1.1' });
    assert.equal(spoofed.status, 200);
    const plain = await get('/remote');
    assert.equal(plain.status, 200);
    assert.equal((await get('/when', { 'x-forwarded-for': '203.0.113.99' })).status, 403);
    assert.equal((await get('/when', { 'x-forwarded-for': '203.0.113.98' })).status, 200);
    const logs5 = [await nextLog(), await nextLog(), await nextLog(), await nextLog(), await nextLog()];
    assert.deepEqual(
      logs5.map((l) => [l.response_code, l.downstream_remote_address]),
      [
        [403, '198.51.100.7:0'],
        [200, '1.1.1.1:0'],
        [200, logs5[2]!.downstream_remote_address],
        [403, '203.0.113.99:0'],
        [200, '203.0.113.98:0'],
      ],
    );
  });

  test('ipBlocks (source.ip) stay the peer whatever X-Forwarded-For says', async () => {
    assert.equal((await get('/peer', { 'x-forwarded-for': '198.51.100.7' })).status, 403);
    assert.equal((await get('/peer')).status, 403);
    await nextLog();
    await nextLog();
  });

  test('trace context headers (W3C, B3 multi and single) pass through unchanged', async () => {
    const trace = {
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      tracestate: 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE',
      'x-b3-traceid': '80f198ee56343ba864fe8b2a57d3eff7',
      'x-b3-spanid': 'e457b5a2e4d86bd1',
      'x-b3-parentspanid': '05e3ac9a4f6e3b90',
      'x-b3-sampled': '1',
      'x-b3-flags': '1',
      b3: '80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90',
    };
    const res = await get('/trace', trace);
    assert.equal(res.status, 200);
    const h = up.seen.at(-1)!;
    for (const [k, v] of Object.entries(trace)) assert.equal(h[k], v, k);
    await nextLog();
  });
});

describe('--xff-num-trusted-hops 2 and the default 0', () => {
  test('N=2 takes the second from the right; too few addresses fall back to the peer', async () => {
    const up = await recorder();
    const proxy = await startProxy([
      '-c',
      tempConfig({ 'authz.yaml': POLICIES }),
      '--upstream',
      up.url,
      '--xff-num-trusted-hops',
      '2',
    ]);
    try {
      assert.equal(
        (await send(`${proxy.url}/remote`, { headers: { 'x-forwarded-for': '198.51.100.7, 10.0.0.1' } })).status,
        403,
      );
      assert.equal((await send(`${proxy.url}/remote`, { headers: { 'x-forwarded-for': '198.51.100.7' } })).status, 200);
      const logs = await proxy.accessLogs(2);
      assert.equal(logs[0]!.downstream_remote_address, '198.51.100.7:0');
      assert.match(String(logs[1]!.downstream_remote_address), /^127\.0\.0\.1:[1-9]\d*$/);
      // Not an IP address: the peer, as Envoy.
      await send(`${proxy.url}/x`, { headers: { 'x-forwarded-for': 'unknown, 10.0.0.1' } });
      const [, , third] = await proxy.accessLogs(3);
      assert.match(String(third!.downstream_remote_address), /^127\.0\.0\.1:[1-9]\d*$/);
    } finally {
      await proxy.stop();
      await up.close();
    }
  });

  test('N=0: X-Forwarded-For is not trusted; the peer is the client and the header is appended to', async () => {
    const up = await recorder();
    const proxy = await startProxy(['-c', tempConfig({ 'authz.yaml': POLICIES }), '--upstream', up.url]);
    try {
      const res = await send(`${proxy.url}/remote`, { headers: { 'x-forwarded-for': '198.51.100.7' } });
      assert.equal(res.status, 200);
      const h = up.seen.at(-1)!;
      assert.equal(h['x-forwarded-for'], '198.51.100.7, 127.0.0.1');
      // More than one address: an external request at the edge, whose client is the peer.
      assert.equal(h['x-envoy-external-address'], '127.0.0.1');
      const [log] = await proxy.accessLogs(1);
      assert.match(String(log!.downstream_remote_address), /^127\.0\.0\.1:[1-9]\d*$/);
    } finally {
      await proxy.stop();
      await up.close();
    }
  });

  test('a bad value is a usage error', async () => {
    for (const bad of ['-1', 'two', '1.5']) {
      const r = await runCli(['run', '-c', tempConfig({}), `--xff-num-trusted-hops=${bad}`]);
      assert.equal(r.code, 2, bad);
      assert.match(r.stderr, /--xff-num-trusted-hops: expected a number of hops/);
    }
  });
});
