// NETWORK plugins on HTTP listeners, through the real CLI: as Envoy runs network filters before
// the HTTP connection manager, the plugin sees the raw bytes beneath HTTP. The Go SDK's network
// example (plugins/network-go) counts exactly the request bytes the client wrote and the response
// bytes it read, over several keep-alive requests on one connection (plain and over TLS, where it
// sees the decrypted bytes); the Rust plugin (plugins/network-rust) upper-cases the request bytes
// (the upstream sees an upper-case path, header values and body), holds body bytes until a
// newline (pause), and closes the connection on a request that contains QUIT.
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { makePki, type TestPki } from '../helpers/certs.ts';
import { gatewayYaml, ROOT, type RunningProxy, startProxy, tempConfig } from '../helpers/proxy.ts';
import { freePort, networkPlugin, waitFor } from './tcp-helpers.ts';

const GO_PLUGIN = join(ROOT, 'plugins/network-go/plugin.wasm');
const RUST_PLUGIN = join(ROOT, 'plugins/network-rust/plugin.wasm');

interface Seen {
  method: string;
  url: string;
  note: string | undefined;
  body: string;
  /** The body as it arrived so far (for the pause test). */
  partial: string;
}

/** An HTTP/1.1 upstream that records each request and answers with a JSON echo of it. */
async function recordingUpstream(): Promise<{ port: number; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    const s: Seen = {
      method: req.method ?? '',
      url: req.url ?? '',
      note: req.headers['x-note'] as string | undefined,
      body: '',
      partial: '',
    };
    seen.push(s);
    req.on('data', (d: Buffer) => {
      s.partial += d.toString('latin1');
    });
    req.on('end', () => {
      s.body = s.partial;
      const body = JSON.stringify({ method: s.method, url: s.url, note: s.note, body: s.body });
      const answer = () => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      };
      // /slow answers after 500 ms (a request in flight across a drain).
      if (s.url.startsWith('/slow')) setTimeout(answer, 500);
      else answer();
    });
  });
  // WebSocket: a 101, then every tunnel byte echoed.
  server.on('upgrade', (req, socket) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', note: undefined, body: '', partial: '' });
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    socket.on('data', (d) => socket.write(d));
    socket.on('end', () => socket.end());
    socket.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * One client connection that writes raw HTTP/1.1 requests and reads the responses (content-length
 * or chunked), counting every byte written and read. `closed` resolves when the proxy closes it.
 */
class RawClient {
  readonly socket: net.Socket;
  bytesWritten = 0;
  bytesRead = 0;
  #buf = Buffer.alloc(0);
  #waiter: (() => void) | undefined;
  readonly closed: Promise<void>;
  #isClosed = false;

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.bytesRead += d.length;
      this.#buf = Buffer.concat([this.#buf, d]);
      this.#waiter?.();
    });
    socket.on('error', () => {});
    this.closed = new Promise((r) =>
      socket.once('close', () => {
        this.#isClosed = true;
        this.#waiter?.();
        r();
      }),
    );
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host: '127.0.0.1' });
      s.once('connect', () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  static connectTls(port: number, ca: Buffer): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = tls.connect({ port, host: '127.0.0.1', ca, servername: 'localhost', ALPNProtocols: ['http/1.1'] });
      s.once('secureConnect', () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  write(text: string | Buffer): void {
    const b = Buffer.from(text);
    this.bytesWritten += b.length;
    this.socket.write(b);
  }

  /** The next complete response; rejects if the connection closes first. */
  async response(): Promise<RawResponse> {
    for (;;) {
      const r = this.#parse();
      if (r) return r;
      if (this.#isClosed) throw new Error(`connection closed; unparsed: ${JSON.stringify(this.#buf.toString())}`);
      await new Promise<void>((resolve) => {
        this.#waiter = resolve;
      });
      this.#waiter = undefined;
    }
  }

  async request(text: string): Promise<RawResponse> {
    this.write(text);
    return this.response();
  }

  #parse(): RawResponse | undefined {
    const b = this.#buf;
    const end = b.indexOf('\r\n\r\n');
    if (end < 0) return undefined;
    const lines = b.subarray(0, end).toString('latin1').split('\r\n');
    const status = Number(lines[0]!.split(' ')[1]);
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
    }
    let rest = b.subarray(end + 4);
    let body: Buffer;
    if (headers['transfer-encoding'] === 'chunked') {
      const parts: Buffer[] = [];
      for (;;) {
        const eol = rest.indexOf('\r\n');
        if (eol < 0) return undefined;
        const size = Number.parseInt(rest.subarray(0, eol).toString(), 16);
        if (rest.length < eol + 2 + size + 2) return undefined;
        parts.push(rest.subarray(eol + 2, eol + 2 + size));
        rest = rest.subarray(eol + 2 + size + 2);
        if (size === 0) break;
      }
      body = Buffer.concat(parts);
    } else {
      const n = Number(headers['content-length'] ?? 0);
      if (rest.length < n) return undefined;
      body = rest.subarray(0, n);
      rest = rest.subarray(n);
    }
    this.#buf = rest;
    return { status, headers, body: body.toString('latin1') };
  }

  end(): Promise<void> {
    this.socket.end();
    return this.closed;
  }
}

const get = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: example.com\r\n${extra}\r\n`;

/** The totals network-go (WasmPlugin `plugin`) logs for the connection from `clientPort`, once it is done. */
async function goTotals(
  proxy: RunningProxy,
  plugin: string,
  clientPort: number,
): Promise<{ down: number; up: number; lines: string[] }> {
  // Context ids are per VM: the plugin's name scopes them.
  const prefix = `wasm log istio-system.${plugin}: connection`;
  let id: string | undefined;
  await waitFor(
    () => {
      id ??= new RegExp(`${prefix} (\\d+): new connection from 127\\.0\\.0\\.1:${clientPort} `).exec(
        proxy.stderr(),
      )?.[1];
      return id !== undefined && proxy.stderr().includes(`${prefix} ${id} done: `);
    },
    5000,
    `network-go's done line for the connection from port ${clientPort}`,
  );
  const m = new RegExp(`${prefix} ${id} done: downstream (\\d+) bytes in \\d+ chunks, upstream (\\d+) bytes`).exec(
    proxy.stderr(),
  )!;
  const lines = proxy
    .stderr()
    .split('\n')
    .filter((l) => l.includes(`${prefix} ${id}:`) || l.includes(`${prefix} ${id} `));
  return { down: Number(m[1]), up: Number(m[2]), lines };
}

/**
 * GETs `paths` at once on one HTTP/2 connection to `url`, then closes it: the statuses, and the
 * client's port (which names the connection in network-go's log).
 */
async function h2Gets(
  url: string,
  paths: string[],
  opts: http2.SecureClientSessionOptions = {},
): Promise<{ statuses: number[]; clientPort: number }> {
  const session = http2.connect(url, opts);
  try {
    const statuses = await Promise.all(
      paths.map(
        (path) =>
          new Promise<number>((resolve, reject) => {
            const s = session.request({ ':path': path });
            s.on('response', (h) => resolve(Number(h[':status'])));
            s.on('error', reject);
            s.resume();
          }),
      ),
    );
    const clientPort = (session.socket as net.Socket).localPort!;
    session.close();
    return { statuses, clientPort };
  } catch (err) {
    session.destroy();
    throw err;
  }
}

describe('NETWORK plugins on HTTP listeners', () => {
  let upstream: Awaited<ReturnType<typeof recordingUpstream>>;
  let proxy: RunningProxy;
  let pki: TestPki;
  /** network-go (counting) on plain HTTP, and on HTTPS. */
  let countPort: number;
  let tlsPort: number;
  /** network-rust: upper-case and line-buffered; close on QUIT. */
  let upperPort: number;
  let closePort: number;
  /** No NETWORK plugin (plain and TLS). */
  let plainPort: number;
  let plainTlsPort: number;

  before(async () => {
    assert.ok(existsSync(GO_PLUGIN), 'plugins/network-go/plugin.wasm is built');
    assert.ok(existsSync(RUST_PLUGIN), 'plugins/network-rust/plugin.wasm is built');
    pki = makePki();
    upstream = await recordingUpstream();
    const ports = new Set<number>();
    while (ports.size < 6) ports.add(await freePort());
    [countPort, tlsPort, upperPort, closePort, plainPort, plainTlsPort] = [...ports] as [
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    const servers = [
      `  - port: {number: ${countPort}, name: http-count, protocol: HTTP}\n    hosts: ["*"]`,
      `  - port: {number: ${tlsPort}, name: https-count, protocol: HTTPS}\n    hosts: ["*"]\n    tls: {mode: SIMPLE, serverCertificate: ${pki.serverCert}, privateKey: ${pki.serverKey}}`,
      `  - port: {number: ${upperPort}, name: http-upper, protocol: HTTP}\n    hosts: ["*"]`,
      `  - port: {number: ${closePort}, name: http-close, protocol: HTTP}\n    hosts: ["*"]`,
      `  - port: {number: ${plainPort}, name: http-plain, protocol: HTTP}\n    hosts: ["*"]`,
      `  - port: {number: ${plainTlsPort}, name: https-plain, protocol: HTTPS}\n    hosts: ["*"]\n    tls: {mode: SIMPLE, serverCertificate: ${pki.serverCert}, privateKey: ${pki.serverKey}}`,
    ].join('\n');
    const yaml =
      gatewayYaml(upstream.port, '', { servers }) +
      networkPlugin('count', GO_PLUGIN, countPort, '{}') +
      networkPlugin('count-tls', GO_PLUGIN, tlsPort, '{}') +
      networkPlugin('upper', RUST_PLUGIN, upperPort, '{"uppercase": true, "line_buffered": true}') +
      networkPlugin('quit', RUST_PLUGIN, closePort, '{"close_on": "QUIT"}');
    proxy = await startProxy(
      ['-c', tempConfig({ 'gateway.yaml': yaml }), '--component-log-level', 'wasm:info'],
      30_000,
      { gatewayPorts: true },
    );
    for (const p of [countPort, tlsPort, upperPort, closePort, plainPort, plainTlsPort])
      await proxy.waitForLog(`listening on 127.0.0.1:${p}:`);
  });
  after(async () => {
    await proxy?.stop();
    await upstream?.close();
  });

  test('keep-alive requests on one connection all succeed; network-go counts exactly the bytes on the wire', async () => {
    const c = await RawClient.connect(countPort);
    const before = upstream.seen.length;
    const statuses: number[] = [];
    statuses.push((await c.request(get('/one'))).status);
    statuses.push((await c.request(get('/two', 'X-Note: second\r\n'))).status);
    const body = 'x'.repeat(70_000); // more than one read
    const post = `POST /three HTTP/1.1\r\nHost: example.com\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    const third = await c.request(post);
    statuses.push(third.status);
    assert.equal(JSON.parse(third.body).body.length, body.length);
    statuses.push((await c.request(get('/four'))).status);
    assert.deepEqual(statuses, [200, 200, 200, 200]);
    assert.deepEqual(
      upstream.seen.slice(before).map((s) => s.url),
      ['/one', '/two', '/three', '/four'],
    );
    const clientPort = c.socket.localPort!;
    await c.end();
    const totals = await goTotals(proxy, 'count', clientPort);
    assert.equal(totals.down, c.bytesWritten, 'on_downstream_data saw every request byte, once');
    assert.equal(totals.up, c.bytesRead, 'on_upstream_data saw every response byte, once');
    // One connection: one new-connection callback, both close callbacks, then done.
    const events = totals.lines.map((l) => /connection \d+:? ([a-z ]+)/.exec(l)?.[1]?.trim());
    assert.deepEqual(events, [
      'new connection from',
      'upstream connection close',
      'downstream connection close',
      'done',
    ]);
    assert.match(totals.lines[2]!, /\(peer 2\)/, 'the client closed first: REMOTE');
    assert.match(totals.lines[1]!, /\(peer 0\)/, 'upstream close: UNKNOWN, as Envoy reports it');
  });

  test('a WebSocket upgrade goes through the plugin; it counts the tunnel bytes too', async () => {
    const c = await RawClient.connect(countPort);
    let tunnel = '';
    c.socket.on('data', (d: Buffer) => {
      tunnel += d.toString('latin1');
    });
    c.write(
      'GET /ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    await waitFor(() => tunnel.includes('\r\n\r\n'), 5000, 'the 101');
    assert.match(tunnel, /^HTTP\/1\.1 101 /);
    c.write('tunnel bytes, both ways');
    await waitFor(() => tunnel.endsWith('tunnel bytes, both ways'), 5000, 'the echo through the tunnel');
    const clientPort = c.socket.localPort!;
    await c.end();
    const totals = await goTotals(proxy, 'count', clientPort);
    assert.equal(totals.down, c.bytesWritten);
    assert.equal(totals.up, c.bytesRead);
  });

  test('over TLS the plugin sees the decrypted bytes; keep-alive works', async () => {
    const c = await RawClient.connectTls(tlsPort, pki.ca);
    for (const p of ['/a', '/b', '/c']) assert.equal((await c.request(get(p))).status, 200);
    const clientPort = c.socket.localPort!;
    await c.end();
    const totals = await goTotals(proxy, 'count-tls', clientPort);
    assert.equal(totals.down, c.bytesWritten);
    assert.equal(totals.up, c.bytesRead);
  });

  test('HTTP/2 over TLS (ALPN h2) runs through the plugin too', async () => {
    const h2 = await h2Gets(`https://127.0.0.1:${tlsPort}`, ['/h2-a', '/h2-b'], {
      ca: pki.ca,
      servername: 'localhost',
    });
    assert.deepEqual(h2.statuses, [200, 200]);
    const totals = await goTotals(proxy, 'count-tls', h2.clientPort);
    assert.ok(totals.down > 0 && totals.up > 0, 'the h2 frames went through the plugin');
  });
  test('h2c (HTTP/2 prior knowledge) is sniffed after the plugin and served, several streams on one connection', async () => {
    const h2 = await h2Gets(`http://127.0.0.1:${countPort}`, ['/h2c-a', '/h2c-b', '/h2c-c']);
    assert.deepEqual(h2.statuses, [200, 200, 200]);
    const totals = await goTotals(proxy, 'count', h2.clientPort);
    assert.ok(totals.down > 0 && totals.up > 0, 'the h2 frames went through the plugin');
  });

  test('network-rust upper-cases the request bytes: the upstream sees an upper-case path, header value and body', async () => {
    const c = await RawClient.connect(upperPort);
    const body = 'make me loud\n';
    const r = await c.request(
      `POST /echo/path?q=abc HTTP/1.1\r\nHost: example.com\r\nX-Note: quiet please\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    );
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), {
      method: 'POST',
      url: '/ECHO/PATH?Q=ABC',
      note: 'QUIET PLEASE',
      body: 'MAKE ME LOUD\n',
    });
    // The response is not changed (the plugin only rewrites client bytes), and keep-alive holds.
    const again = await c.request(get('/second'));
    assert.equal(JSON.parse(again.body).url, '/SECOND');
    await c.end();
  });

  test('network-rust line buffering holds body bytes without a newline (Pause) until one arrives', async () => {
    const c = await RawClient.connect(upperPort);
    const before = upstream.seen.length;
    const body = 'hello world\n';
    c.write(`POST /held HTTP/1.1\r\nHost: example.com\r\nContent-Length: ${body.length}\r\n\r\nhello`);
    await waitFor(() => upstream.seen[before]?.partial === 'HELLO', 5000, 'the first body bytes upstream');
    c.write(' world'); // no newline: held by the plugin
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(upstream.seen[before]!.partial, 'HELLO', 'the bytes without a newline are held');
    c.write('\n');
    const r = await c.response();
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).body, 'HELLO WORLD\n');
    await c.end();
  });

  test('network-rust closes the connection on QUIT; earlier requests on it succeeded', async () => {
    const c = await RawClient.connect(closePort);
    const before = upstream.seen.length;
    assert.equal((await c.request(get('/first'))).status, 200);
    c.write(get('/QUIT'));
    await assert.rejects(c.response(), /connection closed/);
    await c.closed;
    assert.deepEqual(
      upstream.seen.slice(before).map((s) => s.url),
      ['/first'],
      'the request with QUIT never reached the upstream',
    );
    await proxy.waitForLog('QUIT seen, closing');
  });

  test('a listener no NETWORK plugin selects: no plugin sees its connections', async () => {
    const c = await RawClient.connect(plainPort);
    assert.equal((await c.request(get('/plain'))).status, 200);
    const clientPort = c.socket.localPort!;
    await c.end();
    await new Promise((r) => setTimeout(r, 200));
    assert.doesNotMatch(proxy.stderr(), new RegExp(`from 127\\.0\\.0\\.1:${clientPort}\\b`));
  });

  test('an HTTPS listener no NETWORK plugin selects serves HTTP/1.1 and HTTP/2 as before', async () => {
    const c = await RawClient.connectTls(plainTlsPort, pki.ca);
    for (const p of ['/tls-1', '/tls-2']) assert.equal((await c.request(get(p))).status, 200);
    const clientPort = c.socket.localPort!;
    await c.end();
    const h2 = await h2Gets(`https://127.0.0.1:${plainTlsPort}`, ['/tls-h2'], { ca: pki.ca, servername: 'localhost' });
    assert.equal(h2.statuses[0], 200);
    await new Promise((r) => setTimeout(r, 200));
    assert.doesNotMatch(proxy.stderr(), new RegExp(`from 127\\.0\\.0\\.1:${clientPort}\\b`));
  });
});

describe('a graceful drain with NETWORK plugins on the HTTP listener', () => {
  let upstream: Awaited<ReturnType<typeof recordingUpstream>>;
  let proxy: RunningProxy;
  let port: number;

  before(async () => {
    upstream = await recordingUpstream();
    port = await freePort();
    const servers = `  - port: {number: ${port}, name: http, protocol: HTTP}\n    hosts: ["*"]`;
    proxy = await startProxy(
      [
        '-c',
        tempConfig({
          'gateway.yaml': gatewayYaml(upstream.port, '', { servers }) + networkPlugin('count', GO_PLUGIN, port, '{}'),
        }),
      ],
      30_000,
      { gatewayPorts: true },
    );
  });
  after(async () => {
    await proxy?.stop();
    await upstream?.close();
  });

  test('a request in flight finishes (Connection: close); an idle keep-alive connection is closed', async () => {
    const idle = await RawClient.connect(port);
    assert.equal((await idle.request(get('/idle'))).status, 200);
    const busy = await RawClient.connect(port);
    busy.write(get('/slow'));
    await waitFor(() => upstream.seen.some((s) => s.url === '/slow'), 5000, 'the slow request upstream');
    const drained = await fetch(`http://127.0.0.1:${proxy.adminPort}/drain_listeners`, { method: 'POST' });
    assert.equal(drained.status, 200);
    await idle.closed; // closed by the drain, not by the client
    const r = await busy.response();
    assert.equal(r.status, 200, 'the request in flight was answered');
    assert.equal(r.headers.connection, 'close');
    await busy.closed;
  });
});

describe('NETWORK plugins on an HTTP listener across a reload', () => {
  let upstream: Awaited<ReturnType<typeof recordingUpstream>>;
  let proxy: RunningProxy;
  let port: number;
  let dir: string;

  before(async () => {
    upstream = await recordingUpstream();
    port = await freePort();
    const servers = `  - port: {number: ${port}, name: http, protocol: HTTP}\n    hosts: ["*"]`;
    dir = tempConfig({ 'gateway.yaml': gatewayYaml(upstream.port, '', { servers }) });
    proxy = await startProxy(['-c', dir, '--no-watch', '--component-log-level', 'wasm:info'], 30_000, {
      gatewayPorts: true,
    });
  });
  after(async () => {
    await proxy?.stop();
    await upstream?.close();
  });

  test('a plugin added by a reload sees new connections; one open across the reload stays as it was', async () => {
    const open = await RawClient.connect(port);
    assert.equal((await open.request(get('/before'))).status, 200);
    const servers = `  - port: {number: ${port}, name: http, protocol: HTTP}\n    hosts: ["*"]`;
    writeFileSync(
      join(dir, 'gateway.yaml'),
      gatewayYaml(upstream.port, '', { servers }) + networkPlugin('added', GO_PLUGIN, port, '{}'),
    );
    const res = await fetch(`http://127.0.0.1:${proxy.adminPort}/reload`, { method: 'POST' });
    assert.equal(res.status, 200, await res.text());
    const fresh = await RawClient.connect(port);
    assert.equal((await fresh.request(get('/after'))).status, 200);
    const freshPort = fresh.socket.localPort!;
    await fresh.end();
    const totals = await goTotals(proxy, 'added', freshPort);
    assert.equal(totals.down, fresh.bytesWritten);
    assert.equal(totals.up, fresh.bytesRead);
    // The connection accepted before the reload keeps working, without the plugin.
    assert.equal((await open.request(get('/still-open'))).status, 200);
    const openPort = open.socket.localPort!;
    await open.end();
    await new Promise((r) => setTimeout(r, 200));
    assert.doesNotMatch(proxy.stderr(), new RegExp(`from 127\\.0\\.0\\.1:${openPort}\\b`));
  });
});
