// Gateway servers with `protocol: HTTPS` and `tls.mode: PASSTHROUGH`, through the real CLI. Istio
// routes them exactly as `protocol: TLS` PASSTHROUGH: a TCP listener on the server's own port
// (not merged into `--port`), VirtualService `tls[]` routes chosen by the ClientHello's SNI, the
// TLS bytes passed to an upstream that does the handshake itself, NETWORK plugins on the port. A
// plain-HTTP request to that port gets no HTTP answer from wasmgate (there is no HTTP listener
// there: no SNI, no route, the connection closes, NR). A port with both an HTTPS server that
// terminates (HTTP listener) and an HTTPS PASSTHROUGH one (TCP listener) is refused by
// `validate` and `run`: wasmgate opens one listener per port.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makePki, type TestPki } from '../helpers/certs.ts';
import { gatewayServersYaml, ROOT, type RunningProxy, runCli, startProxy, tempConfig } from '../helpers/proxy.ts';
import { accessLogWhere, freePort, networkPlugin, type TlsUpstream, tlsExchange, tlsUpstream } from './tcp-helpers.ts';

const RUST_PLUGIN = join(ROOT, 'plugins/network-rust/plugin.wasm');

/** The Gateway (an HTTP server and an HTTPS PASSTHROUGH server), its tls[] route and the upstream. */
function config(passPort: number, httpPort: number, upstreamPort: number): string {
  const gateway = gatewayServersYaml(
    'gw',
    `  - port: {number: ${httpPort}, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: ${passPort}, name: https-pass, protocol: HTTPS}
    hosts: ["pass.example.com"]
    tls: {mode: PASSTHROUGH}
`,
  );
  return `${gateway}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: pass, namespace: istio-system}
spec:
  hosts: ["pass.example.com"]
  gateways: [gw]
  tls:
  - match: [{port: ${passPort}, sniHosts: [pass.example.com]}]
    route:
    - destination: {host: pass.upstream.local, port: {number: ${upstreamPort}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: pass-upstream, namespace: istio-system}
spec:
  hosts: [pass.upstream.local]
  ports: [{number: ${upstreamPort}, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
${networkPlugin('count', RUST_PLUGIN, passPort)}`;
}

/**
 * tlsExchange options for a ClientHello naming `servername`. The upstream's certificate names
 * localhost: the name check is off, the chain is still verified.
 */
const sni = (servername: string) => ({ servername, checkServerIdentity: () => undefined });

/** Writes a plain-HTTP request and collects every byte until the proxy closes the connection. */
function plainHttp(port: number): Promise<{ data: string; localPort: number }> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    let data = '';
    let localPort = 0;
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`the connection stayed open; got ${JSON.stringify(data)}`));
    }, 5000);
    s.on('connect', () => {
      localPort = s.localPort ?? 0;
      s.write('GET /get HTTP/1.1\r\nHost: pass.example.com\r\n\r\n');
    });
    s.on('data', (d) => {
      data += d;
    });
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ data, localPort });
    });
  });
}

describe('Gateway HTTPS server with tls.mode PASSTHROUGH', () => {
  let pki: TestPki;
  let upstream: TlsUpstream;
  let proxy: RunningProxy;
  let passPort: number;
  let httpPort: number;

  before(async () => {
    assert.ok(existsSync(RUST_PLUGIN), 'plugins/network-rust/plugin.wasm is built');
    pki = makePki();
    upstream = await tlsUpstream(pki);
    passPort = await freePort();
    do httpPort = await freePort();
    while (httpPort === passPort);
    // `--port 0` (startProxy's default): the HTTP server moves there; the passthrough server,
    // a TCP listener, keeps its own port.
    proxy = await startProxy([
      '-c',
      tempConfig({ 'gateway.yaml': config(passPort, httpPort, upstream.port) }),
      '--component-log-level',
      'wasm:info',
    ]);
    await proxy.waitForLog(`listening on 127.0.0.1:${passPort}: istio-system.count -> tcp_proxy`);
  });
  after(async () => {
    await proxy?.stop();
    await upstream?.close();
  });

  test('validate lists the port as an HTTPS passthrough TCP listener, not an HTTP one', async () => {
    const dir = tempConfig({ 'gateway.yaml': config(passPort, httpPort, upstream.port) });
    const r = await runCli(['validate', '-c', dir]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n');
    assert.ok(
      lines.includes(
        `listener :${passPort} (HTTPS passthrough): istio-system.count (NETWORK, priority 0) -> tcp_proxy`,
      ),
      r.stdout,
    );
    assert.ok(lines.includes(`listener :${httpPort}: istio.stats -> router`), r.stdout);
    assert.equal(lines.filter((l) => l.startsWith(`listener :${passPort}`)).length, 1, r.stdout);
  });

  test('a ClientHello for a sniHosts name is passed through: the upstream does the TLS', async () => {
    const before = upstream.conns.length;
    const r = await tlsExchange(pki, passPort, 'hello through', sni('pass.example.com'));
    assert.equal(r.error, undefined);
    assert.equal(r.data, 'hello through', 'the upstream echoed the bytes back');
    assert.equal(upstream.conns.length, before + 1);
    assert.equal(upstream.conns[before]?.servername, 'pass.example.com', 'the SNI reached the upstream');
    assert.equal(upstream.conns[before]?.text, 'hello through');
    // wasmgate has no certificate on this port: the one the client verified is the upstream's.
    assert.equal(r.peer, new X509Certificate(readFileSync(pki.serverCert)).fingerprint256);
    const line = await accessLogWhere(proxy, (l) => l.requested_server_name === 'pass.example.com');
    assert.equal(line.route_name, 'pass.tls.0');
    assert.equal(line.upstream_cluster, `outbound|${upstream.port}||pass.upstream.local`);
    assert.equal(line.response_flags, '-');
    assert.equal(line.method, '-', 'a TCP access log line, not an HTTP one');
    // The port's NETWORK plugin saw exactly the TLS bytes passed through, both ways.
    await proxy.waitForLog(
      `network-rust: connection done: downstream ${line.bytes_received} bytes, upstream ${line.bytes_sent} bytes`,
    );
    assert.ok((line.bytes_received as number) > 'hello through'.length, 'the TLS records, not the plaintext');
  });

  test('a ClientHello for another name has no route: closed, nothing reaches the upstream', async () => {
    const before = upstream.conns.length;
    const r = await tlsExchange(pki, passPort, 'not routed', sni('other.example.com'));
    assert.ok(r.error, 'the handshake does not complete');
    assert.equal(r.data, '');
    assert.equal(upstream.conns.length, before);
    const line = await accessLogWhere(proxy, (l) => l.requested_server_name === 'other.example.com');
    assert.equal(line.response_flags, 'NR');
  });

  test('a plain-HTTP request to the port gets no HTTP answer from wasmgate', async () => {
    const before = upstream.conns.length;
    const r = await plainHttp(passPort);
    assert.equal(r.data, '', 'no bytes at all, in particular no "HTTP/1.1 404"');
    assert.equal(upstream.conns.length, before);
    const line = await accessLogWhere(
      proxy,
      (l) => l.downstream_remote_address === `127.0.0.1:${r.localPort}` && l.response_flags === 'NR',
    );
    assert.equal(line.requested_server_name, '-');
    // The HTTP server (moved to --port 0) still answers HTTP.
    const res = await fetch(`${proxy.url}/`, { signal: AbortSignal.timeout(5000) });
    await res.text();
    assert.equal(res.status, 404, 'an HTTP listener, without routes');
  });
});

describe('HTTPS terminated and HTTPS PASSTHROUGH on one port', () => {
  test('validate and run refuse it, naming the port and both servers', async () => {
    const pki = makePki();
    const port = await freePort();
    const dir = tempConfig({
      'gateway.yaml': gatewayServersYaml(
        'mixed',
        `  - port: {number: ${port}, name: https-term, protocol: HTTPS}
    hosts: ["term.example.com"]
    tls: {mode: SIMPLE, serverCertificate: ${pki.serverCert}, privateKey: ${pki.serverKey}}
  - port: {number: ${port}, name: https-pass, protocol: HTTPS}
    hosts: ["pass.example.com"]
    tls: {mode: PASSTHROUGH}
`,
      ),
    });
    const expected = new RegExp(
      `port ${port}: Gateway servers for HTTP \\(HTTPS SIMPLE\\) and for TCP \\(HTTPS PASSTHROUGH\\) on one port`,
    );
    const v = await runCli(['validate', '-c', dir]);
    assert.equal(v.code, 1, v.stdout);
    assert.match(v.stderr, expected);
    const r = await runCli(['run', '-c', dir, '--admin-port=-1', '--health-port=-1', '--concurrency', '2']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, expected);
    assert.doesNotMatch(r.stderr, /listening on/);
  });
});
