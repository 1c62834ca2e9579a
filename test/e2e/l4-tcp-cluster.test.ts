// The DestinationRule's cluster policies on TCP routes, through the real CLI: the circuit breaker
// (connectionPool.tcp.maxConnections) refuses the connection over the limit (flag UO, Envoy's
// upstream_cx_overflow counter) and admits again once a connection ends; outlier detection ejects
// an endpoint after consecutive connect failures (counted as gateway errors and as 5xx, as Envoy
// counts them for tcp_proxy), refuses connections while it is out (flag UH), returns it after
// baseEjectionTime, and a successful connect resets the count.
import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { RunningProxy } from '../helpers/proxy.ts';
import {
  adminText,
  destinationRule,
  type EchoServer,
  echoServer,
  exchange,
  freePort,
  startTcpProxy,
  tcpRoute,
  waitFor,
} from './tcp-helpers.ts';

/** Every TCP access log line of `cluster` so far. */
function accessLines(proxy: RunningProxy, cluster: string): Record<string, unknown>[] {
  return proxy
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.upstream_cluster === cluster);
}

async function stat(proxy: RunningProxy, name: string): Promise<number | undefined> {
  const text = await adminText(proxy, '/stats');
  const line = text.split('\n').find((l) => l.startsWith(`${name}: `));
  return line === undefined ? undefined : Number(line.slice(name.length + 2));
}

/** An echo server on a given port, to bring a dead endpoint to life (and kill it again). */
async function echoOn(port: number): Promise<{ close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    s.pipe(s);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  assert.equal((server.address() as AddressInfo).port, port);
  return {
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A client connection that stays open, after its first echo came back. */
async function openEcho(port: number, text: string): Promise<net.Socket> {
  const s = net.connect({ port, host: '127.0.0.1' });
  s.on('error', () => {});
  let got = '';
  s.on('data', (d) => {
    got += d;
  });
  await new Promise((r) => s.once('connect', r));
  s.write(text);
  await waitFor(() => got === text, 5000, `the echo of ${text}`);
  return s;
}

describe('TCP circuit breaker: connectionPool.tcp.maxConnections', () => {
  let echo: EchoServer;
  let proxy: RunningProxy;
  let port: number;
  const host = 'capped.tcp.local';
  let cluster: string;

  before(async () => {
    echo = await echoServer();
    port = await freePort();
    cluster = `outbound|${echo.port}||${host}`;
    proxy = await startTcpProxy({
      'capped.yaml': tcpRoute(
        'capped',
        port,
        echo.port,
        host,
        destinationRule('capped', host, '    connectionPool:\n      tcp:\n        maxConnections: 2\n'),
      ),
    });
  });
  after(async () => {
    await proxy?.stop();
    await echo?.close();
  });

  test('the connection over the limit is closed with flag UO and counted; a freed slot admits again', async () => {
    const a = await openEcho(port, 'first');
    const b = await openEcho(port, 'second');
    const upstreams = echo.conns.length;
    const refused = await exchange(port, ['third']);
    assert.equal(refused.data.length, 0, 'nothing reached the upstream and back');
    assert.equal(echo.conns.length, upstreams, 'no upstream connection was made');
    await waitFor(() => accessLines(proxy, cluster).some((l) => l.response_flags === 'UO'), 5000, 'the UO line');
    const uo = accessLines(proxy, cluster).find((l) => l.response_flags === 'UO')!;
    assert.equal(uo.connection_termination_details, 'upstream_cx_overflow');
    assert.equal(uo.upstream_host, '-');
    assert.equal(await stat(proxy, `cluster.${cluster}.upstream_cx_overflow`), 1);
    // One of the two ends: its slot is free once its upstream connection closed.
    const aPort = a.localPort;
    a.end();
    await waitFor(
      () => accessLines(proxy, cluster).some((l) => l.downstream_remote_address === `127.0.0.1:${aPort}`),
      5000,
      'the first connection ended',
    );
    const again = await exchange(port, ['fourth']);
    assert.equal(again.data.toString(), 'fourth');
    // Still two open (b and none other): one more is refused again.
    const c = await openEcho(port, 'fifth');
    const refusedAgain = await exchange(port, ['sixth']);
    assert.equal(refusedAgain.data.length, 0);
    assert.equal(await stat(proxy, `cluster.${cluster}.upstream_cx_overflow`), 2);
    b.destroy();
    c.destroy();
  });
});

describe('TCP outlier detection', () => {
  let proxy: RunningProxy;
  let gwPort: number;
  let gwDead: number;
  let fivePort: number;
  let fiveDead: number;
  const gwHost = 'gateway-errors.tcp.local';
  const fiveHost = 'five-xx.tcp.local';
  let gwCluster: string;
  let fiveCluster: string;

  before(async () => {
    const ports = new Set<number>();
    while (ports.size < 4) ports.add(await freePort());
    [gwPort, gwDead, fivePort, fiveDead] = [...ports] as [number, number, number, number];
    gwCluster = `outbound|${gwDead}||${gwHost}`;
    fiveCluster = `outbound|${fiveDead}||${fiveHost}`;
    const outlier = (fields: string) =>
      `    outlierDetection:\n${fields}        interval: 100ms\n        baseEjectionTime: 1s\n        maxEjectionPercent: 100\n`.replaceAll(
        '        ',
        '      ',
      );
    proxy = await startTcpProxy({
      'gw.yaml': tcpRoute(
        'gw',
        gwPort,
        gwDead,
        gwHost,
        destinationRule(
          'gw',
          gwHost,
          outlier('        consecutiveGatewayErrors: 2\n        consecutive5xxErrors: 0\n'),
        ),
      ),
      'five.yaml': tcpRoute(
        'five',
        fivePort,
        fiveDead,
        fiveHost,
        destinationRule('five', fiveHost, outlier('        consecutive5xxErrors: 3\n')),
      ),
    });
  });
  after(async () => {
    await proxy?.stop();
  });

  const flags = (cluster: string) => accessLines(proxy, cluster).map((l) => l.response_flags);

  test('consecutiveGatewayErrors: two refused connects eject the endpoint (UH); it returns after baseEjectionTime', async () => {
    for (let i = 0; i < 2; i++) assert.equal((await exchange(gwPort, ['x'])).data.length, 0);
    await waitFor(() => flags(gwCluster).length === 2, 5000, 'two access log lines');
    assert.deepEqual(flags(gwCluster), ['UF', 'UF']);
    assert.equal(await stat(proxy, `cluster.${gwCluster}.outlier_detection.ejections_total`), 1);
    assert.match(
      await adminText(proxy, '/clusters'),
      new RegExp(`${gwCluster.replaceAll('|', '\\|')}::127\\.0\\.0\\.1:${gwDead}::health_flags::/failed_outlier_check`),
    );
    // Ejected: the next connection is refused without a connect attempt, even though the endpoint is back.
    const alive = await echoOn(gwDead);
    try {
      assert.equal((await exchange(gwPort, ['y'])).data.length, 0);
      await waitFor(() => flags(gwCluster).length === 3, 5000, 'the third line');
      assert.equal(flags(gwCluster)[2], 'UH');
      // After baseEjectionTime (1 s, checked every 100 ms) the endpoint is back.
      const deadline = Date.now() + 5000;
      let echoed = '';
      while (Date.now() < deadline) {
        echoed = (await exchange(gwPort, ['back'])).data.toString();
        if (echoed === 'back') break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(echoed, 'back', 'the endpoint returned');
      const healthy = await adminText(proxy, '/clusters');
      assert.match(
        healthy,
        new RegExp(`${gwCluster.replaceAll('|', '\\|')}::127\\.0\\.0\\.1:${gwDead}::health_flags::healthy`),
      );
      // It was UH (ejected) until it returned, never UF again: no connect was tried meanwhile.
      const later = flags(gwCluster).slice(2);
      assert.ok(
        later.every((f) => f === 'UH' || f === '-'),
        `flags after ejection: ${later.join(' ')}`,
      );
      assert.ok(
        Number(await stat(proxy, `cluster.${gwCluster}.outlier_detection.ejections_total`)) === 1,
        'ejected once',
      );
    } finally {
      await alive.close();
    }
  });

  test('consecutive5xxErrors counts connect failures too; a successful connect resets the count', async () => {
    // Two failures, then a success: the count starts again.
    for (let i = 0; i < 2; i++) assert.equal((await exchange(fivePort, ['x'])).data.length, 0);
    const alive = await echoOn(fiveDead);
    assert.equal((await exchange(fivePort, ['ok'])).data.toString(), 'ok');
    await alive.close();
    // Two more failures: not ejected yet (3 in a row needed) ...
    for (let i = 0; i < 2; i++) assert.equal((await exchange(fivePort, ['x'])).data.length, 0);
    await waitFor(() => flags(fiveCluster).length === 5, 5000, 'five lines');
    assert.deepEqual(flags(fiveCluster), ['UF', 'UF', '-', 'UF', 'UF']);
    assert.equal(await stat(proxy, `cluster.${fiveCluster}.outlier_detection.ejections_total`), 0);
    // ... the third is: then UH.
    await exchange(fivePort, ['x']);
    await exchange(fivePort, ['x']);
    await waitFor(() => flags(fiveCluster).length === 7, 5000, 'seven lines');
    assert.deepEqual(flags(fiveCluster).slice(5), ['UF', 'UH']);
    assert.equal(await stat(proxy, `cluster.${fiveCluster}.outlier_detection.ejections_total`), 1);
  });
});
