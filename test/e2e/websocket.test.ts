// WebSocket upgrades through the proxy, with the `ws` package on both ends: the upgrade runs
// through route matching and the filter chain (an AuthorizationPolicy can refuse it), goes to the
// chosen cluster as an upgrade, and on the 101 the sockets are piped both ways. Text and binary
// frames, a 1 MiB message, close codes in both directions, abrupt ends, a non-101 upstream answer,
// and the access log line written when the tunnel closes.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { makePki } from '../helpers/certs.ts';
import { ROOT, type RunningProxy, startProxy, tempConfig, wasmPluginYaml } from '../helpers/proxy.ts';
import { GATEWAY } from './routing-helpers.ts';

interface WsUpstream {
  id: string;
  port: number;
  /** Upgrade requests that reached this server (path and headers). */
  upgrades: { url: string; headers: http.IncomingHttpHeaders }[];
  /** Close codes and reasons this server saw from its clients. */
  closes: { code: number; reason: string }[];
  close(): Promise<void>;
}

/**
 * An echo server that greets each client with its id; `close:<code>` makes it close with that
 * code, `kill` destroys its socket without a close frame. /reject is refused with 401.
 */
async function wsUpstream(id: string): Promise<WsUpstream> {
  const state: WsUpstream = { id, port: 0, upgrades: [], closes: [], close: async () => {} };
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    verifyClient: (info, done) => {
      state.upgrades.push({ url: info.req.url ?? '', headers: info.req.headers });
      if (info.req.url?.startsWith('/reject')) done(false, 401, 'Unauthorized');
      else done(true);
    },
  });
  wss.on('connection', (ws, req) => {
    ws.send(`hello from ${id} ${req.url}`);
    ws.on('message', (data, isBinary) => {
      const text = isBinary ? '' : data.toString();
      if (text.startsWith('close:')) ws.close(Number(text.slice(6)), `server says ${text.slice(6)}`);
      else if (text === 'kill') (ws as unknown as { _socket: net.Socket })._socket.destroy();
      else ws.send(data, { binary: isBinary });
    });
    ws.on('close', (code, reason) => state.closes.push({ code, reason: reason.toString() }));
  });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  state.port = (wss.address() as AddressInfo).port;
  state.close = () =>
    new Promise((r) => {
      for (const c of wss.clients) c.terminate();
      wss.close(() => r());
    });
  return state;
}

function serviceEntry(name: string, port: number): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${name}, namespace: istio-system}
spec:
  hosts: [${name}.ws.test]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints:
  - {address: 127.0.0.1, ports: {http: ${port}}}
`;
}

/** Opens a client and waits for the greeting; rejects on a non-101 answer with its status. */
function connect(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ ws: WebSocket; greeting: string; next: () => Promise<{ data: Buffer; isBinary: boolean }> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: { host: 'chat.ws.test', ...headers }, maxPayload: 64 * 1024 * 1024 });
    const queue: { data: Buffer; isBinary: boolean }[] = [];
    const waiters: ((m: { data: Buffer; isBinary: boolean }) => void)[] = [];
    ws.on('message', (data, isBinary) => {
      const m = { data: Buffer.concat(([] as Buffer[]).concat(data as Buffer)), isBinary };
      const w = waiters.shift();
      if (w) w(m);
      else queue.push(m);
    });
    const next = () =>
      new Promise<{ data: Buffer; isBinary: boolean }>((r) => {
        const m = queue.shift();
        if (m) r(m);
        else waiters.push(r);
      });
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        reject(
          Object.assign(new Error(`status ${res.statusCode}`), {
            status: res.statusCode,
            res,
            body: Buffer.concat(chunks).toString(),
          }),
        ),
      );
    });
    ws.once('error', reject);
    ws.once('open', () => {
      next().then((g) => resolve({ ws, greeting: g.data.toString(), next }), reject);
    });
  });
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((r) => ws.once('close', (code, reason) => r({ code, reason: reason.toString() })));
}

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('WebSocket upgrades', () => {
  let proxy: RunningProxy;
  let a: WsUpstream;
  let b: WsUpstream;
  let logs = 0;
  /** The access log entries written after `from`, waiting for `count` more. */
  const newLogs = async (count: number) => {
    const all = await proxy.accessLogs(logs + count, 15_000);
    const out = all.slice(logs, logs + count);
    logs += count;
    return out;
  };

  before(async () => {
    a = await wsUpstream('a');
    b = await wsUpstream('b');
    const vs = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: chat, namespace: istio-system}
spec:
  hosts: ["chat.ws.test"]
  gateways: [gw]
  http:
  - match: [{uri: {prefix: /b/}}]
    route: [{destination: {host: b.ws.test, port: {number: 80}}}]
  - match: [{uri: {prefix: /upgrade-only}, headers: {upgrade: {exact: websocket}}}]
    route: [{destination: {host: b.ws.test, port: {number: 80}}}]
  - route: [{destination: {host: a.ws.test, port: {number: 80}}}]
`;
    const deny = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-ws, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/denied*"]}}]
`;
    proxy = await startProxy([
      '-c',
      tempConfig({
        'gw.yaml': GATEWAY,
        'vs.yaml': vs,
        'se.yaml': `${serviceEntry('a', a.port)}---\n${serviceEntry('b', b.port)}`,
        'authz.yaml': deny,
      }),
    ]);
  });
  after(async () => {
    await proxy?.stop();
    await a?.close();
    await b?.close();
  });

  const wsUrl = (path: string) => `ws://127.0.0.1:${proxy.port}${path}`;

  test('text and binary frames echo; a 1 MiB message crosses both ways intact', async () => {
    const c = await connect(wsUrl('/a/echo'));
    assert.equal(c.greeting, 'hello from a /a/echo');
    c.ws.send('hi there');
    const text = await c.next();
    assert.equal(text.isBinary, false);
    assert.equal(text.data.toString(), 'hi there');
    const bin = Buffer.from([0, 1, 2, 253, 254, 255]);
    c.ws.send(bin);
    const echoed = await c.next();
    assert.equal(echoed.isBinary, true);
    assert.deepEqual(echoed.data, bin);
    const big = randomBytes(1024 * 1024);
    c.ws.send(big);
    const bigBack = await c.next();
    assert.equal(bigBack.data.length, big.length);
    assert.equal(
      createHash('sha256').update(bigBack.data).digest('hex'),
      createHash('sha256').update(big).digest('hex'),
    );
    const done = closed(c.ws);
    c.ws.close(1000, 'bye');
    assert.deepEqual(await done, { code: 1000, reason: 'bye' });
    // The access log line is written once the tunnel closes, with the bytes carried each way.
    const [entry] = await newLogs(1);
    assert.equal(entry!.response_code, 101);
    assert.equal(entry!.method, 'GET');
    assert.equal(entry!.path, '/a/echo');
    assert.match(String(entry!.upstream_cluster), /outbound\|80\|\|a\.ws\.test/);
    assert.ok(Number(entry!.bytes_received) > 1024 * 1024, `bytes_received ${entry!.bytes_received}`);
    assert.ok(Number(entry!.bytes_sent) > 1024 * 1024, `bytes_sent ${entry!.bytes_sent}`);
    // Upgrade and Connection: upgrade reached the upstream, with the proxy's headers.
    const seen = a.upgrades.at(-1)!;
    assert.equal(seen.headers.upgrade, 'websocket');
    assert.match(String(seen.headers.connection), /upgrade/i);
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
    assert.ok(seen.headers['x-request-id']);
  });

  test('close codes propagate: client to server and server to client', async () => {
    const c1 = await connect(wsUrl('/a/close-from-client'));
    c1.ws.close(4000, 'client done');
    await closed(c1.ws);
    await until(() => a.closes.some((x) => x.code === 4000));
    assert.deepEqual(
      a.closes.find((x) => x.code === 4000),
      { code: 4000, reason: 'client done' },
    );

    const c2 = await connect(wsUrl('/a/close-from-server'));
    const done = closed(c2.ws);
    c2.ws.send('close:4001');
    assert.deepEqual(await done, { code: 4001, reason: 'server says 4001' });
    const entries = await newLogs(2);
    assert.deepEqual(
      entries.map((e) => e.response_code),
      [101, 101],
    );
  });

  test('an upstream that drops its socket ends the client (1006), and the reverse', async () => {
    const c = await connect(wsUrl('/a/kill'));
    const done = closed(c.ws);
    c.ws.send('kill');
    assert.equal((await done).code, 1006);

    const before = a.closes.length;
    const c2 = await connect(wsUrl('/a/terminate'));
    c2.ws.terminate();
    await until(() => a.closes.length > before);
    assert.equal(a.closes.at(-1)!.code, 1006);
    await newLogs(2);
  });

  test('routes pick the cluster by path (and by the Upgrade header)', async () => {
    const cb = await connect(wsUrl('/b/room'));
    assert.equal(cb.greeting, 'hello from b /b/room');
    cb.ws.send('to b');
    assert.equal((await cb.next()).data.toString(), 'to b');
    const ca = await connect(wsUrl('/room'));
    assert.equal(ca.greeting, 'hello from a /room');
    // A route that matches on `upgrade: websocket` sees the header.
    const cu = await connect(wsUrl('/upgrade-only'));
    assert.equal(cu.greeting, 'hello from b /upgrade-only');
    for (const c of [cb, ca, cu]) {
      const done = closed(c.ws);
      c.ws.close();
      await done;
    }
    const entries = await newLogs(3);
    const clusters = entries.map((e) => String(e.upstream_cluster)).sort();
    assert.deepEqual(clusters, ['outbound|80||a.ws.test', 'outbound|80||b.ws.test', 'outbound|80||b.ws.test']);
  });

  test('an AuthorizationPolicy denies the upgrade with 403 and no tunnel', async () => {
    const upgradesBefore = a.upgrades.length + b.upgrades.length;
    const err = (await connect(wsUrl('/denied/room')).then(
      () => assert.fail('upgrade went through'),
      (e) => e,
    )) as { status: number; body: string };
    assert.equal(err.status, 403);
    assert.equal(err.body, 'RBAC: access denied');
    assert.equal(a.upgrades.length + b.upgrades.length, upgradesBefore);
    const [entry] = await newLogs(1);
    assert.equal(entry!.response_code, 403);
    assert.equal(
      entry!.response_code_details,
      'rbac_access_denied_matched_policy[ns[istio-system]-policy[deny-ws]-rule[0]]',
    );
  });

  test("the upstream's non-101 answer is returned as a plain response", async () => {
    const err = (await connect(wsUrl('/reject')).then(
      () => assert.fail('upgrade went through'),
      (e) => e,
    )) as { status: number };
    assert.equal(err.status, 401);
    const [entry] = await newLogs(1);
    assert.equal(entry!.response_code, 401);
  });

  test('no route: 404 to the upgrade; another protocol: 403; h2c stays a plain request', async () => {
    const err = (await connect(wsUrl('/x'), { host: 'nowhere.test' }).then(
      () => assert.fail('upgrade went through'),
      (e) => e,
    )) as { status: number };
    assert.equal(err.status, 404);
    // Raw: `Upgrade: foo` is refused as Envoy does (upgrade_failed); `Upgrade: h2c` is ignored.
    const raw = (head: string) =>
      new Promise<string>((resolve, reject) => {
        const s = net.connect(proxy.port, '127.0.0.1', () => s.write(head));
        let out = '';
        s.on('data', (d) => {
          out += d;
        });
        s.on('end', () => resolve(out));
        s.on('error', reject);
        s.setTimeout(10_000, () => s.destroy(new Error(`timeout; got ${out}`)));
      });
    const foo = await raw('GET /a HTTP/1.1\r\nhost: chat.ws.test\r\nconnection: upgrade\r\nupgrade: foo\r\n\r\n');
    assert.match(foo, /^HTTP\/1\.1 403 /);
    const h2c = await raw(
      'GET /a HTTP/1.1\r\nhost: chat.ws.test\r\nconnection: upgrade, http2-settings, close\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n',
    );
    // Served over HTTP/1.1 by the websocket server's plain HTTP side (426 Upgrade Required).
    assert.match(h2c, /^HTTP\/1\.1 426 /);
    const entries = await newLogs(3);
    assert.deepEqual(
      entries.map((e) => [e.response_code, e.response_code_details]),
      [
        [404, 'route_not_found'],
        [403, 'upgrade_failed'],
        [426, 'via_upstream'],
      ],
    );
  });
});

describe('WebSocket upgrades through a Wasm plugin (chain-marker-go)', () => {
  let proxy: RunningProxy;
  let up: WsUpstream;
  before(async () => {
    up = await wsUpstream('w');
    const plugin = wasmPluginYaml({
      name: 'gate',
      phase: 'AUTHZ',
      url: `file://${join(ROOT, 'plugins/chain-marker-go/plugin.wasm')}`,
      extra: '  pluginConfig: {requireHeader: x-token}\n',
    });
    proxy = await startProxy(['-c', tempConfig({ 'p.yaml': plugin }), '--upstream', `http://127.0.0.1:${up.port}`]);
  });
  after(async () => {
    await proxy?.stop();
    await up?.close();
  });

  test("the plugin's local reply answers the upgrade; otherwise it sees both the request and the 101", async () => {
    const url = `ws://127.0.0.1:${proxy.port}/room`;
    const before = up.upgrades.length;
    const err = (await connect(url).then(
      () => assert.fail('upgrade went through'),
      (e) => e,
    )) as { status: number; body: string };
    assert.equal(err.status, 412);
    assert.equal(err.body, 'istio-system.gate: missing x-token');
    assert.equal(up.upgrades.length, before);

    const ws = new WebSocket(url, { headers: { 'x-token': '1' } });
    const upgrade = new Promise<http.IncomingMessage>((r) => ws.once('upgrade', r));
    const greeting = new Promise<string>((r) => ws.once('message', (d) => r(String(d))));
    const res = await upgrade;
    assert.equal(res.statusCode, 101);
    assert.equal(res.headers['x-chain-response'], 'istio-system.gate');
    assert.equal(await greeting, 'hello from w /room');
    assert.equal(up.upgrades.at(-1)!.headers['x-chain'], 'istio-system.gate');
    const done = closed(ws);
    ws.close(1000);
    await done;
    const entries = await proxy.accessLogs(2, 15_000);
    assert.deepEqual(
      entries.map((e) => e.response_code),
      [412, 101],
    );
  });
});

describe('WebSocket over TLS (wss://, HTTP/1.1 by ALPN)', () => {
  test('a TLS listener upgrades and tunnels like a plain one', async () => {
    const pki = makePki();
    const up = await wsUpstream('t');
    const gw = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, serverCertificate: ${pki.serverCert}, privateKey: ${pki.serverKey}}
`;
    const vs = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: chat, namespace: istio-system}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - route: [{destination: {host: t.ws.test, port: {number: 80}}}]
`;
    const proxy = await startProxy([
      '-c',
      tempConfig({ 'gw.yaml': gw, 'vs.yaml': vs, 'se.yaml': serviceEntry('t', up.port) }),
    ]);
    try {
      const ws = new WebSocket(`wss://localhost:${proxy.port}/secure`, { ca: pki.ca });
      const greeting = new Promise<string>((r) => ws.once('message', (d) => r(String(d))));
      assert.equal(await greeting, 'hello from t /secure');
      const echo = new Promise<string>((r) => ws.once('message', (d) => r(String(d))));
      ws.send('over tls');
      assert.equal(await echo, 'over tls');
      assert.equal(up.upgrades.at(-1)!.headers['x-forwarded-proto'], 'https');
      const done = closed(ws);
      ws.close(1000);
      await done;
      const [entry] = await proxy.accessLogs(1, 15_000);
      assert.equal(entry!.response_code, 101);
    } finally {
      await proxy.stop();
      await up.close();
    }
  });
});

describe('tunnel half-close', () => {
  test("the client's FIN reaches the upstream, which can still answer before its own FIN", async () => {
    // A raw upgrade server: after the 101 it reads until the client's end, then replies and ends.
    const server = http.createServer((_req, res) => res.writeHead(400).end());
    server.on('upgrade', (_req, socket: net.Socket, head: Buffer) => {
      socket.allowHalfOpen = true;
      socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n');
      let n = head.length;
      socket.on('data', (d: Buffer) => {
        n += d.length;
      });
      socket.on('end', () => setTimeout(() => socket.end(`got ${n} bytes after the client's end`), 100));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const proxy = await startProxy(['-c', tempConfig({}), '--upstream', `http://127.0.0.1:${port}`]);
    try {
      const out = await new Promise<string>((resolve, reject) => {
        const s = net.connect({ port: proxy.port, host: '127.0.0.1', allowHalfOpen: true }, () =>
          s.write(
            'GET /raw HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
          ),
        );
        let got = '';
        s.on('data', (d) => {
          const first = got === '';
          got += d;
          if (first && got.startsWith('HTTP/1.1 101')) {
            s.write('0123456789');
            setTimeout(() => s.end(), 100); // half-close: we send nothing more but keep reading
          }
        });
        s.on('end', () => resolve(got));
        s.on('error', reject);
        s.setTimeout(10_000, () => s.destroy(new Error(`timeout; got ${got}`)));
      });
      assert.match(out, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
      assert.match(out, /\r\nupgrade: websocket\r\n/i);
      assert.match(out, /\r\nconnection: upgrade\r\n/i);
      assert.ok(out.endsWith("got 10 bytes after the client's end"), out);
      const [entry] = await proxy.accessLogs(1, 15_000);
      assert.equal(entry!.response_code, 101);
      assert.equal(entry!.bytes_received, 10);
      assert.equal(entry!.bytes_sent, "got 10 bytes after the client's end".length);
    } finally {
      await proxy.stop();
      server.closeAllConnections();
      server.close();
    }
  });
});
