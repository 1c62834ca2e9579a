// The router over real sockets: forwarded headers, hop-by-hop removal, bodies both ways,
// no route, unreachable upstream.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { type RunningProxy, startProxy, tempConfig } from '../helpers/proxy.ts';
import { startEmbeddedHttpbin } from '../helpers/upstreams.ts';

/** Sends raw bytes and returns the raw response (connection closed by us after `ms`). */
function raw(port: number, request: string, ms = 1500): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    socket.on('data', (d) => {
      data += d;
    });
    socket.on('error', reject);
    socket.write(request);
    setTimeout(() => {
      socket.destroy();
      resolve(data);
    }, ms);
  });
}

describe('router to an upstream URL', () => {
  let upstream: Awaited<ReturnType<typeof startEmbeddedHttpbin>>;
  let proxy: RunningProxy;
  before(async () => {
    upstream = await startEmbeddedHttpbin();
    proxy = await startProxy(['-c', tempConfig({}), '--upstream', upstream.url]);
  });
  after(async () => {
    await proxy?.stop();
    await upstream?.close();
  });

  test('sets x-forwarded-for, x-forwarded-proto and x-request-id; strips hop-by-hop headers', async () => {
    const response = await raw(
      proxy.port,
      'GET /headers HTTP/1.1\r\nHost: example.test\r\nConnection: keep-alive, x-secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: websocket\r\nProxy-Connection: keep-alive\r\nX-Kept: yes\r\n\r\n',
    );
    const body = JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4)) as { headers: Record<string, string[]> };
    const h = body.headers;
    assert.deepEqual(h['X-Forwarded-For'], ['127.0.0.1']);
    assert.deepEqual(h['X-Forwarded-Proto'], ['http']);
    assert.match(h['X-Request-Id']![0]!, /^[0-9a-f-]{36}$/);
    assert.deepEqual(h['X-Kept'], ['yes']);
    assert.deepEqual(h.Host, ['example.test']);
    for (const gone of ['X-Secret', 'Keep-Alive', 'Te', 'Upgrade', 'Proxy-Connection'])
      assert.equal(h[gone], undefined, gone);
  });

  test('keeps a client x-request-id and appends to x-forwarded-for', async () => {
    const res = await fetch(`${proxy.url}/headers`, {
      headers: { 'x-request-id': 'abc', 'x-forwarded-for': '10.0.0.1' },
    });
    const { headers } = (await res.json()) as { headers: Record<string, string[]> };
    assert.deepEqual(headers['X-Request-Id'], ['abc']);
    assert.deepEqual(headers['X-Forwarded-For'], ['10.0.0.1, 127.0.0.1']);
  });

  test('request bodies stream to the upstream intact (fixed length and chunked)', async () => {
    const payload = randomBytes(300_000).toString('base64');
    const res = await fetch(`${proxy.url}/anything/upload`, { method: 'POST', body: payload });
    const echo = (await res.json()) as { data: string; method: string };
    assert.equal(echo.method, 'POST');
    assert.equal(echo.data.length, payload.length);
    assert.equal(echo.data, payload);
    const chunked = await fetch(`${proxy.url}/anything/chunked`, {
      method: 'PUT',
      body: new ReadableStream({
        start(c) {
          c.enqueue(new TextEncoder().encode('part1-'));
          c.enqueue(new TextEncoder().encode('part2'));
          c.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    assert.equal(((await chunked.json()) as { data: string }).data, 'part1-part2');
  });

  test('response bodies stream back intact', async () => {
    const bytes = await fetch(`${proxy.url}/bytes/200000`);
    assert.equal(bytes.status, 200);
    assert.equal((await bytes.arrayBuffer()).byteLength, 200_000);
    const stream = await fetch(`${proxy.url}/stream/5`);
    assert.equal((await stream.text()).trim().split('\n').length, 5);
  });

  test('HEAD gets headers and no body', async () => {
    const res = await fetch(`${proxy.url}/get`, { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), '');
  });
});

describe('router failures', () => {
  test('an unreachable upstream answers 503 with flag UF in the access log', async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const proxy = await startProxy(['-c', tempConfig({}), '--upstream', `http://127.0.0.1:${port}`]);
    try {
      const res = await fetch(`${proxy.url}/get`);
      assert.equal(res.status, 503);
      await res.text();
      const [log] = await proxy.accessLogs(1);
      assert.equal(log!.response_flags, 'UF');
      assert.equal(log!.response_code, 503);
    } finally {
      await proxy.stop();
    }
  });

  test('no matching route answers 404 with flag NR', async () => {
    const dir = tempConfig({
      'vs.yaml': `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: only-get, namespace: istio-system}
spec:
  hosts: ["*"]
  gateways: [ingressgateway]
  http:
  - match: [{uri: {prefix: /only}}]
    directResponse: {status: 200, body: {string: "direct"}}
`,
      'gw.yaml': `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingressgateway, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
`,
    });
    const proxy = await startProxy(['-c', dir]);
    try {
      const direct = await fetch(`${proxy.url}/only/this`);
      assert.equal(direct.status, 200);
      assert.equal(await direct.text(), 'direct');
      const res = await fetch(`${proxy.url}/elsewhere`);
      assert.equal(res.status, 404);
      await res.text();
      const logs = await proxy.accessLogs(2);
      assert.equal(logs[1]!.response_flags, 'NR');
      assert.equal(logs[1]!.response_code, 404);
    } finally {
      await proxy.stop();
    }
  });
});
