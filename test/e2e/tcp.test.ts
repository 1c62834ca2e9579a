// L4: Gateway TCP servers routed by VirtualService tcp[] routes, through the real CLI, in front of
// a node:net echo server and Debian's redis-server driven by redis-cli. Bytes pass unchanged,
// half-close and resets propagate both ways, connect failures and idle timeouts close the client,
// and Istio's TCP metrics and access log count exactly the bytes that passed.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { makePki, type TestPki } from '../helpers/certs.ts';
import { type RunningProxy, startProxy, tempConfig } from '../helpers/proxy.ts';
import {
  accessLogWhere,
  adminText,
  type EchoServer,
  echoServer,
  exchange,
  freePort,
  metricValue,
  startTcpProxy,
  tcpGatewayYaml,
  waitFor,
} from './tcp-helpers.ts';

const run = promisify(execFile);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('TCP listener with no plugin', () => {
  let echo: EchoServer;
  let proxy: RunningProxy;
  let port: number;
  let deadPort: number;
  let deadListenerPort: number;
  let idlePort: number;

  before(async () => {
    echo = await echoServer();
    port = await freePort();
    deadPort = await freePort(); // nothing listens there
    deadListenerPort = await freePort();
    idlePort = await freePort();
    idlePort = idlePort === port ? await freePort() : idlePort;
    proxy = await startTcpProxy({
      'echo.yaml': tcpGatewayYaml({ port, upstreamPort: echo.port }),
      'dead.yaml': tcpGatewayYaml({ port: deadListenerPort, upstreamPort: deadPort, host: 'dead.tcp.local' })
        .replaceAll('tcp-gateway', 'dead-gateway')
        .replaceAll('tcp-echo', 'tcp-dead'),
      'idle.yaml': tcpGatewayYaml({
        port: idlePort,
        upstreamPort: echo.port,
        host: 'idle.tcp.local',
        idleTimeout: '300ms',
      })
        .replaceAll('tcp-gateway', 'idle-gateway')
        .replaceAll('tcp-echo', 'tcp-idle'),
    });
  });
  after(async () => {
    await proxy?.stop();
    await echo?.close();
  });

  test('the run log names the TCP listener and its chain', async () => {
    await proxy.waitForLog(`listening on 127.0.0.1:${port}: tcp_proxy`);
  });

  test('1 MiB of random bytes passes unchanged both ways, and the counts are exact', async () => {
    const payload = randomBytes(1024 * 1024);
    const before = echo.conns.length;
    // In uneven chunks, so the proxy sees many reads.
    const chunks: Buffer[] = [];
    for (let i = 0; i < payload.length; i += 65_521) chunks.push(payload.subarray(i, i + 65_521));
    const r = await exchange(port, chunks);
    assert.equal(r.error, undefined);
    assert.equal(r.ended, true, 'the echo server FIN reached the client');
    assert.equal(r.data.length, payload.length);
    assert.equal(sha(r.data), sha(payload));
    const conn = echo.conns[before]!;
    assert.equal(sha(Buffer.concat(conn.received)), sha(payload), 'the upstream got the exact bytes');
    assert.equal(conn.ended, true, 'the client FIN reached the upstream');

    const line = await accessLogWhere(proxy, (l) => l.bytes_received === payload.length);
    assert.equal(line.bytes_sent, payload.length);
    assert.equal(line.upstream_cluster, `outbound|${echo.port}||echo.tcp.local`);
    assert.equal(line.upstream_host, `127.0.0.1:${echo.port}`);
    assert.equal(line.route_name, 'tcp-echo.tcp.0');
    assert.equal(line.downstream_local_address, `127.0.0.1:${port}`);
    assert.equal(line.response_flags, '-');
    assert.equal(line.method, '-');
  });

  test("Istio's TCP metrics match the bytes that passed", async () => {
    const labels = { destination_service: 'echo.tcp.local', request_protocol: 'tcp', reporter: 'source' };
    const m0 = await adminText(proxy, '/stats/prometheus');
    const opened0 = metricValue(m0, 'istio_tcp_connections_opened_total', labels) ?? 0;
    const closed0 = metricValue(m0, 'istio_tcp_connections_closed_total', labels) ?? 0;
    const sent0 = metricValue(m0, 'istio_tcp_sent_bytes_total', labels) ?? 0;
    const received0 = metricValue(m0, 'istio_tcp_received_bytes_total', labels) ?? 0;
    const r = await exchange(port, ['abc', 'defg', Buffer.alloc(10_000, 7)]);
    assert.equal(r.data.length, 10_007);
    await waitFor(() => echo.conns.at(-1)!.socket.destroyed, 5000, 'the upstream connection to end');
    let m = '';
    for (let i = 0; i < 50; i++) {
      m = await adminText(proxy, '/stats/prometheus');
      if ((metricValue(m, 'istio_tcp_connections_closed_total', labels) ?? 0) === closed0 + 1) break;
      await new Promise((res) => setTimeout(res, 50));
    }
    assert.equal(metricValue(m, 'istio_tcp_connections_opened_total', labels), opened0 + 1);
    assert.equal(metricValue(m, 'istio_tcp_connections_closed_total', labels), closed0 + 1);
    assert.equal(metricValue(m, 'istio_tcp_received_bytes_total', labels), received0 + 10_007);
    assert.equal(metricValue(m, 'istio_tcp_sent_bytes_total', labels), sent0 + 10_007);
    assert.match(m, /istio_tcp_sent_bytes_total\{[^}]*destination_service_namespace="istio-system"[^}]*\} \d+/);
    assert.match(m, /istio_tcp_sent_bytes_total\{[^}]*response_flags="-"[^}]*\}/);
  });

  test('half-close: the upstream keeps sending after the client FIN, and the client after the upstream FIN', async () => {
    // The upstream answers only after the client's FIN, in two writes, then closes its side.
    echo.behave = (socket) => {
      socket.on('end', () => {
        socket.write('after your FIN, ');
        setTimeout(() => socket.end('still here'), 50);
      });
      return true;
    };
    try {
      const r = await exchange(port, ['request']);
      assert.equal(r.data.toString(), 'after your FIN, still here');
      assert.equal(r.ended, true);
      assert.equal(Buffer.concat(echo.conns.at(-1)!.received).toString(), 'request');
    } finally {
      echo.behave = () => false;
    }
    // The upstream closes its side first; the client goes on writing, and its bytes arrive.
    echo.behave = (socket) => {
      socket.end('bye first');
      return true;
    };
    try {
      const got = await new Promise<{ data: string; upstream: string }>((resolve, reject) => {
        const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
        let data = '';
        s.on('data', (d) => {
          data += d;
        });
        s.on('error', reject);
        s.on('end', () => {
          // Half-closed by the upstream: writing still works.
          s.end('written after the upstream FIN');
        });
        s.on('close', async () => {
          const c = echo.conns.at(-1)!;
          await waitFor(() => c.ended, 2000, 'the client FIN upstream').catch(() => {});
          resolve({ data, upstream: Buffer.concat(c.received).toString() });
        });
      });
      assert.equal(got.data, 'bye first');
      assert.equal(got.upstream, 'written after the upstream FIN');
    } finally {
      echo.behave = () => false;
    }
  });

  test('a client reset resets the upstream connection', async () => {
    const s = net.connect({ port, host: '127.0.0.1' });
    await new Promise((r) => s.once('connect', r));
    s.write('hello');
    await waitFor(() => Buffer.concat(echo.conns.at(-1)?.received ?? []).toString() === 'hello', 3000, 'hello');
    const c = echo.conns.at(-1)!;
    s.resetAndDestroy();
    await waitFor(() => c.reset, 3000, 'ECONNRESET on the upstream');
  });

  test('an upstream reset resets the client connection', async () => {
    echo.behave = (socket) => {
      socket.once('data', () => socket.resetAndDestroy());
      return true;
    };
    try {
      const r = await exchange(port, ['boom'], 200);
      assert.equal(r.error, 'ECONNRESET');
      assert.equal(r.ended, false);
    } finally {
      echo.behave = () => false;
    }
  });

  test('a refused upstream connection closes the client with flag UF', async () => {
    const r = await exchange(deadListenerPort, ['nobody there']);
    assert.equal(r.data.length, 0);
    const line = await accessLogWhere(proxy, (l) => l.upstream_cluster === `outbound|${deadPort}||dead.tcp.local`);
    assert.equal(line.response_flags, 'UF');
    assert.match(String(line.connection_termination_details), /ECONNREFUSED/);
  });

  test('an idle connection closes after the DestinationRule idleTimeout', async () => {
    const started = Date.now();
    const closed = await new Promise<{ data: string; ended: boolean }>((resolve) => {
      const s = net.connect({ port: idlePort, host: '127.0.0.1', allowHalfOpen: true });
      let data = '';
      let ended = false;
      s.on('data', (d) => {
        data += d;
      });
      s.on('end', () => {
        ended = true;
        s.end();
      });
      s.on('error', () => {});
      s.on('close', () => resolve({ data, ended }));
      s.write('ping');
    });
    const elapsed = Date.now() - started;
    assert.equal(closed.data, 'ping');
    assert.equal(closed.ended, true, 'closed with a FIN');
    assert.ok(elapsed >= 250 && elapsed < 5000, `closed after ${elapsed} ms`);
  });
});

describe('TCP listener in front of redis-server', () => {
  let redis: ReturnType<typeof spawn> | undefined;
  let proxy: RunningProxy;
  let port: number;

  before(async () => {
    const which = await run('sh', ['-c', 'command -v redis-server && command -v redis-cli']).catch(() => undefined);
    if (!which)
      throw new Error('redis-server and redis-cli are required: run `bash .ci/install-redis.sh` (Debian packages)');
    const redisPort = await freePort();
    redis = spawn(
      'redis-server',
      [
        '--port',
        String(redisPort),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--protected-mode',
        'no',
      ],
      { stdio: 'ignore' },
    );
    for (let i = 0; ; i++) {
      const ok = await run('redis-cli', ['-p', String(redisPort), 'PING']).then(
        (r) => r.stdout.trim() === 'PONG',
        () => false,
      );
      if (ok) break;
      if (i > 100) throw new Error('redis-server did not start');
      await new Promise((r) => setTimeout(r, 50));
    }
    port = await freePort();
    proxy = await startTcpProxy({
      'redis.yaml': tcpGatewayYaml({ port, upstreamPort: redisPort, host: 'redis.tcp.local' }),
    });
  });
  after(async () => {
    await proxy?.stop();
    redis?.kill('SIGTERM');
  });

  test('redis-cli through the proxy: SET, GET, a 200 KB value, a pipeline', async () => {
    const cli = (...args: string[]) => run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args]);
    const cliStdin = (args: string[], input: string) =>
      new Promise<string>((resolve, reject) => {
        const child = spawn('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args]);
        let out = '';
        child.stdout.on('data', (d) => {
          out += d;
        });
        child.on('error', reject);
        child.on('exit', () => resolve(out));
        child.stdin.end(input);
      });
    assert.equal((await cli('PING')).stdout.trim(), 'PONG');
    assert.equal((await cli('SET', 'greeting', 'hello through wasmgate')).stdout.trim(), 'OK');
    assert.equal((await cli('GET', 'greeting')).stdout.trim(), 'hello through wasmgate');
    // The value through stdin (-x): too long for a command-line argument.
    const big = randomBytes(100_000).toString('hex');
    assert.equal((await cliStdin(['-x', 'SET', 'big'], big)).trim(), 'OK');
    assert.equal((await cli('STRLEN', 'big')).stdout.trim(), '200000');
    assert.equal((await cli('GET', 'big')).stdout.trim(), big);
    // Many commands on one connection, read from stdin.
    const piped = await cliStdin([], `${'INCR counter\n'.repeat(500)}GET counter\n`);
    const lines = piped.trim().split('\n');
    assert.equal(lines.length, 501);
    assert.equal(lines.at(-1), '500');
    // One access log line per redis-cli connection, the big GET's bytes counted.
    const logs = await proxy.accessLogs(7);
    assert.ok(logs.every((l) => String(l.upstream_cluster).endsWith('||redis.tcp.local')));
    assert.ok(logs.some((l) => Number(l.bytes_sent) > 200_000 && Number(l.bytes_received) < 1000));
  });
});

describe('TLS passthrough routed by SNI', () => {
  const servers: tls.Server[] = [];
  let proxy: RunningProxy;
  let port: number;

  /** A TLS server (its own certificate, never terminated by the proxy) that answers its name. */
  async function tlsServer(name: string, pki: TestPki): Promise<number> {
    const server = tls.createServer(
      { key: readFileSync(pki.serverKey), cert: readFileSync(pki.serverCert) },
      (socket) => {
        socket.on('error', () => {});
        socket.end(`${name} (sni ${(socket as tls.TLSSocket & { servername?: string }).servername})`);
      },
    );
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return (server.address() as net.AddressInfo).port;
  }

  function hello(servername: string): Promise<{ text: string; error?: string }> {
    return new Promise((resolve) => {
      let text = '';
      const s = tls.connect({ port, host: '127.0.0.1', servername, rejectUnauthorized: false });
      s.on('data', (d) => {
        text += d;
      });
      s.on('error', (err: NodeJS.ErrnoException) => resolve({ text, error: err.code ?? err.message }));
      s.on('close', () => resolve({ text }));
    });
  }

  before(async () => {
    const pki = makePki();
    const a = await tlsServer('server-a', pki);
    const b = await tlsServer('server-b', pki);
    port = await freePort();
    const yaml = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: tls-gateway
  namespace: istio-system
spec:
  selector:
    istio: ingressgateway
  servers:
  - port: {number: ${port}, name: tls, protocol: TLS}
    hosts: ["*.example.com"]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: by-sni
  namespace: istio-system
spec:
  hosts: ["*.example.com"]
  gateways: [tls-gateway]
  tls:
  - match: [{port: ${port}, sniHosts: [a.example.com]}]
    route:
    - destination: {host: a.tls.local, port: {number: ${a}}}
  - match: [{port: ${port}, sniHosts: ["*.example.com"]}]
    route:
    - destination: {host: b.tls.local, port: {number: ${b}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: tls-backends
  namespace: istio-system
spec:
  hosts: [a.tls.local, b.tls.local]
  ports: [{number: ${a}, name: tls-a, protocol: TLS}, {number: ${b}, name: tls-b, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
`;
    proxy = await startTcpProxy({ 'tls.yaml': yaml });
  });
  after(async () => {
    await proxy?.stop();
    for (const s of servers) s.close();
  });

  test('the ClientHello SNI picks the route; the upstream terminates TLS', async () => {
    assert.deepEqual(await hello('a.example.com'), { text: 'server-a (sni a.example.com)' });
    assert.deepEqual(await hello('other.example.com'), { text: 'server-b (sni other.example.com)' });
    const line = await accessLogWhere(proxy, (l) => l.requested_server_name === 'a.example.com');
    assert.equal(line.route_name, 'by-sni.tls.0');
  });

  test('an SNI no route takes is closed with flag NR', async () => {
    const r = await hello('nobody.example.org');
    assert.equal(r.text, '');
    assert.ok(r.error, 'the handshake fails');
    const line = await accessLogWhere(proxy, (l) => l.requested_server_name === 'nobody.example.org');
    assert.equal(line.response_flags, 'NR');
  });
});

describe('TCP listeners across a reload', () => {
  let a: EchoServer;
  let b: EchoServer;
  let proxy: RunningProxy;
  let dir: string;
  let port: number;
  let extraPort: number;

  before(async () => {
    a = await echoServer();
    b = await echoServer();
    port = await freePort();
    extraPort = await freePort();
    dir = tempConfig({ 'tcp.yaml': tcpGatewayYaml({ port, upstreamPort: a.port }) });
    proxy = await startProxy(['-c', dir, '--no-watch'], 30_000, { gatewayPorts: true });
  });
  after(async () => {
    await proxy?.stop();
    await a?.close();
    await b?.close();
  });

  test('new connections take the new route, an open one stays on its upstream; ports open and close', async () => {
    // A connection open across the reload.
    const open = net.connect({ port, host: '127.0.0.1' });
    let got = '';
    open.on('data', (d) => {
      got += d;
    });
    await new Promise((r) => open.once('connect', r));
    open.write('before ');
    await waitFor(() => got === 'before ', 3000, 'first echo');
    writeFileSync(
      join(dir, 'tcp.yaml'),
      tcpGatewayYaml({ port, upstreamPort: b.port }) +
        tcpGatewayYaml({ port: extraPort, upstreamPort: b.port, host: 'extra.tcp.local' })
          .replaceAll('tcp-gateway', 'extra-gateway')
          .replaceAll('tcp-echo', 'tcp-extra')
          .replace(/^/, '---\n'),
    );
    const res = await fetch(`http://127.0.0.1:${proxy.adminPort}/reload`, { method: 'POST' });
    assert.equal(res.status, 200, await res.text());
    const fresh = await exchange(port, ['to b']);
    assert.equal(fresh.data.toString(), 'to b');
    assert.equal(Buffer.concat(b.conns.at(-1)!.received).toString(), 'to b');
    assert.equal((await exchange(extraPort, ['extra'])).data.toString(), 'extra', 'the new port opened');
    open.write('after');
    await waitFor(() => got === 'before after', 3000, 'the open connection still echoes');
    assert.equal(Buffer.concat(a.conns[0]!.received).toString(), 'before after', 'still on upstream a');
    open.end();
    // The extra port goes away with the next reload.
    writeFileSync(join(dir, 'tcp.yaml'), tcpGatewayYaml({ port, upstreamPort: b.port }));
    assert.equal((await fetch(`http://127.0.0.1:${proxy.adminPort}/reload`, { method: 'POST' })).status, 200);
    const gone = await exchange(extraPort, ['x']);
    assert.equal(gone.error, 'ECONNREFUSED');
  });
});
