// NETWORK-type WasmPlugins on a TCP listener, through the real CLI in front of a node:net echo
// server: the Go SDK's network example (plugins/network-go) counts the bytes each way exactly, and
// the Rust plugin (plugins/network-rust) rewrites client bytes, holds them until a newline (pause,
// the buffer growing, continue), prepends to upstream bytes and closes connections; the access
// log and Istio's TCP metrics count the bytes on the client socket.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ROOT, type RunningProxy, wasmPluginYaml } from '../helpers/proxy.ts';
import {
  accessLogWhere,
  adminText,
  type EchoServer,
  echoServer,
  exchange,
  freePort,
  metricValue,
  networkPlugin,
  startTcpProxy,
  tcpGatewayYaml,
  waitFor,
} from './tcp-helpers.ts';

const GO_PLUGIN = join(ROOT, 'plugins/network-go/plugin.wasm');
const RUST_PLUGIN = join(ROOT, 'plugins/network-rust/plugin.wasm');

describe('NETWORK plugin from the Go SDK (plugins/network-go)', () => {
  let echo: EchoServer;
  let proxy: RunningProxy;
  let port: number;

  before(async () => {
    assert.ok(existsSync(GO_PLUGIN), 'plugins/network-go/plugin.wasm is built (plugins/network-go/build.sh)');
    echo = await echoServer();
    port = await freePort();
    proxy = await startTcpProxy(
      {
        'tcp.yaml':
          tcpGatewayYaml({ port, upstreamPort: echo.port }) + networkPlugin('network-go', GO_PLUGIN, port, '{}'),
      },
      ['--component-log-level', 'wasm:info'],
    );
  });
  after(async () => {
    await proxy?.stop();
    await echo?.close();
  });

  test('the chain runs the plugin before the TCP proxy', async () => {
    await proxy.waitForLog(`listening on 127.0.0.1:${port}: istio-system.network-go -> tcp_proxy`);
  });

  test('every callback runs, and the plugin counts exactly the bytes that passed each way', async () => {
    const payload = randomBytes(300_000);
    const r = await exchange(port, [payload.subarray(0, 1000), payload.subarray(1000)], 20);
    assert.equal(r.error, undefined);
    assert.equal(Buffer.compare(r.data, payload), 0, 'bytes pass unchanged');
    await proxy.waitForLog(`done: downstream ${payload.length} bytes in`);
    await proxy.waitForLog(`upstream ${payload.length} bytes in`);
    const err = proxy.stderr();
    assert.match(err, /new connection from 127\.0\.0\.1:\d+ to 127\.0\.0\.1:\d+/);
    assert.match(err, /downstream connection close \(peer [12]\)/);
    assert.match(err, /upstream connection close \(peer 0\)/);
    const line = await accessLogWhere(proxy, (l) => l.bytes_received === payload.length);
    assert.equal(line.bytes_sent, payload.length);
  });
});

describe('NETWORK plugin in Rust (plugins/network-rust)', () => {
  let echo: EchoServer;
  let proxy: RunningProxy;
  let port: number;
  let closePort: number;

  before(async () => {
    assert.ok(existsSync(RUST_PLUGIN), 'plugins/network-rust/plugin.wasm is built (plugins/network-rust/build.sh)');
    echo = await echoServer();
    port = await freePort();
    closePort = await freePort();
    proxy = await startTcpProxy(
      {
        'tcp.yaml':
          tcpGatewayYaml({ port, upstreamPort: echo.port }) +
          networkPlugin(
            'network-rust',
            RUST_PLUGIN,
            port,
            '{"uppercase": true, "line_buffered": true, "upstream_banner": "[wasm] "}',
          ),
        'close.yaml':
          tcpGatewayYaml({ port: closePort, upstreamPort: echo.port, host: 'close.tcp.local' })
            .replaceAll('tcp-gateway', 'close-gateway')
            .replaceAll('tcp-echo', 'tcp-close') +
          networkPlugin('network-rust-close', RUST_PLUGIN, closePort, '{"close_on": "QUIT"}'),
      },
      ['--component-log-level', 'wasm:info'],
    );
  });
  after(async () => {
    await proxy?.stop();
    await echo?.close();
  });

  test('client bytes are held until a newline, then upper-cased once; upstream bytes get the banner', async () => {
    const before = echo.conns.length;
    // Three writes 60 ms apart: the plugin pauses on the first two (no newline yet), and sees the
    // whole buffer again when more arrives, as Envoy presents it.
    const r = await exchange(port, ['hello ', 'wasm', ' world\nsecond line\n'], 60);
    assert.equal(r.error, undefined);
    const upstream = Buffer.concat(echo.conns[before]!.received).toString();
    assert.equal(upstream, 'HELLO WASM WORLD\nSECOND LINE\n', 'the upstream got each byte once, upper-cased');
    assert.equal(r.data.toString(), '[wasm] HELLO WASM WORLD\nSECOND LINE\n');
    const n = 'hello wasm world\nsecond line\n'.length;
    await proxy.waitForLog(`connection done: downstream ${n} bytes, upstream ${n + 7} bytes`);
    const line = await accessLogWhere(proxy, (l) => l.bytes_received === n && l.route_name === 'tcp-echo.tcp.0');
    assert.equal(line.bytes_sent, n + 7);
    // The TCP metrics count the bytes on the client socket.
    const m = await adminText(proxy, '/stats/prometheus');
    const labels = { destination_service: 'echo.tcp.local' };
    assert.equal(metricValue(m, 'istio_tcp_received_bytes_total', labels), n);
    assert.equal(metricValue(m, 'istio_tcp_sent_bytes_total', labels), n + 7);
  });

  test('the end of stream flushes what is held without a newline', async () => {
    const r = await exchange(port, ['no newline at the end']);
    assert.equal(r.data.toString(), '[wasm] NO NEWLINE AT THE END');
  });

  test('proxy_close_stream closes the connection; the held bytes never reach the upstream', async () => {
    const before = echo.conns.length;
    const r = await exchange(closePort, ['first\n', 'QUIT\n', 'never\n'], 50);
    assert.equal(r.data.toString(), 'first\n');
    await waitFor(() => echo.conns.length > before && echo.conns[before]!.socket.destroyed, 3000, 'upstream closed');
    assert.equal(Buffer.concat(echo.conns[before]!.received).toString(), 'first\n');
    await proxy.waitForLog('QUIT seen, closing');
    const line = await accessLogWhere(proxy, (l) => l.route_name === 'tcp-close.tcp.0');
    assert.equal(line.connection_termination_details, 'wasm_close_stream');
  });
});

describe('a NETWORK plugin that cannot load: failStrategy', () => {
  let echo: EchoServer;
  let proxy: RunningProxy;
  let closedPort: number;
  let openPort: number;

  before(async () => {
    echo = await echoServer();
    closedPort = await freePort();
    openPort = await freePort();
    const missing = join(ROOT, 'plugins/network-rust/missing.wasm');
    const plugin = (name: string, port: number, strategy: string) =>
      `---\n${wasmPluginYaml({
        name,
        url: `file://${missing}`,
        failStrategy: strategy,
        extra: `  type: NETWORK\n  match:\n  - ports: [{number: ${port}}]\n`,
      })}`;
    proxy = await startTcpProxy({
      'closed.yaml':
        tcpGatewayYaml({ port: closedPort, upstreamPort: echo.port }) +
        plugin('broken-close', closedPort, 'FAIL_CLOSE'),
      'open.yaml':
        tcpGatewayYaml({ port: openPort, upstreamPort: echo.port, host: 'open.tcp.local' })
          .replaceAll('tcp-gateway', 'open-gateway')
          .replaceAll('tcp-echo', 'tcp-open') + plugin('broken-open', openPort, 'FAIL_OPEN'),
    });
  });
  after(async () => {
    await proxy?.stop();
    await echo?.close();
  });

  test('FAIL_CLOSE closes the connection before any byte goes upstream', async () => {
    const before = echo.conns.length;
    const r = await exchange(closedPort, ['hello']);
    assert.equal(r.data.length, 0);
    assert.equal(echo.conns.length, before, 'no upstream connection');
    const line = await accessLogWhere(proxy, (l) => l.connection_termination_details === 'wasm_fail_stream');
    assert.equal(line.bytes_sent, 0);
  });

  test('FAIL_OPEN passes the bytes without the plugin', async () => {
    const r = await exchange(openPort, ['hello']);
    assert.equal(r.data.toString(), 'hello');
  });
});
