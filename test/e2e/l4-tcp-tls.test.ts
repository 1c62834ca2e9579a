// TLS on L4 listeners, through the real CLI. Origination: a DestinationRule `tls` (SIMPLE with a
// CA and sni, MUTUAL with a client certificate, insecureSkipVerify) makes the TCP proxy's upstream
// connection TLS, to node:tls servers that only speak TLS; a CA the upstream's certificate does
// not chain to fails the connect (UF). Termination: a Gateway server `protocol: TLS` with mode
// SIMPLE or MUTUAL terminates TLS and routes the decrypted stream by VirtualService `tcp[]`
// (the upstream gets plaintext; a NETWORK plugin counts the decrypted bytes); MUTUAL refuses a
// client without a certificate; a PASSTHROUGH server on the same port keeps its SNI passed through.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makePki, type TestPki } from '../helpers/certs.ts';
import { ROOT, type RunningProxy } from '../helpers/proxy.ts';
import {
  accessLogWhere,
  destinationRule,
  type EchoServer,
  echoServer,
  exchange,
  freePort,
  networkPlugin,
  startTcpProxy,
  type TlsUpstream,
  tcpRoute,
  tlsExchange,
  tlsUpstream,
} from './tcp-helpers.ts';

const GO_PLUGIN = join(ROOT, 'plugins/network-go/plugin.wasm');

/** A DestinationRule whose trafficPolicy is `tls` with `tlsFields` (YAML lines). */
function tlsRule(name: string, host: string, tlsFields: string): string {
  const fields = tlsFields
    .trim()
    .split('\n')
    .map((l) => `      ${l}\n`)
    .join('');
  return destinationRule(name, host, `    tls:\n${fields}`);
}

describe('TLS origination on TCP routes (DestinationRule tls)', () => {
  let pki: TestPki;
  let otherPki: TestPki;
  let simple: TlsUpstream;
  let mutual: TlsUpstream;
  let proxy: RunningProxy;
  const ports: Record<'simple' | 'mutual' | 'skip' | 'badCa' | 'noCert', number> = {
    simple: 0,
    mutual: 0,
    skip: 0,
    badCa: 0,
    noCert: 0,
  };

  before(async () => {
    pki = makePki();
    otherPki = makePki();
    simple = await tlsUpstream(pki);
    mutual = await tlsUpstream(pki, true);
    const used = new Set<number>();
    while (used.size < 5) used.add(await freePort());
    [ports.simple, ports.mutual, ports.skip, ports.badCa, ports.noCert] = [...used] as number[] as [
      number,
      number,
      number,
      number,
      number,
    ];
    proxy = await startTcpProxy({
      'simple.yaml': tcpRoute(
        'simple',
        ports.simple,
        simple.port,
        'simple.tls.local',
        tlsRule('simple', 'simple.tls.local', `mode: SIMPLE\ncaCertificates: ${pki.caCert}\nsni: localhost`),
      ),
      'mutual.yaml': tcpRoute(
        'mutual',
        ports.mutual,
        mutual.port,
        'mutual.tls.local',
        tlsRule(
          'mutual',
          'mutual.tls.local',
          `mode: MUTUAL\ncaCertificates: ${pki.caCert}\nclientCertificate: ${pki.clientCert}\nprivateKey: ${pki.clientKey}\nsni: localhost`,
        ),
      ),
      'skip.yaml': tcpRoute(
        'skip',
        ports.skip,
        simple.port,
        'skip.tls.local',
        tlsRule('skip', 'skip.tls.local', 'mode: SIMPLE\ninsecureSkipVerify: true'),
      ),
      'bad-ca.yaml': tcpRoute(
        'bad-ca',
        ports.badCa,
        simple.port,
        'bad-ca.tls.local',
        tlsRule('bad-ca', 'bad-ca.tls.local', `mode: SIMPLE\ncaCertificates: ${otherPki.caCert}\nsni: localhost`),
      ),
      'no-cert.yaml': tcpRoute(
        'no-cert',
        ports.noCert,
        mutual.port,
        'no-cert.tls.local',
        tlsRule('no-cert', 'no-cert.tls.local', `mode: SIMPLE\ncaCertificates: ${pki.caCert}\nsni: localhost`),
      ),
    });
  });
  after(async () => {
    await proxy?.stop();
    await simple?.close();
    await mutual?.close();
  });

  test('SIMPLE: the client speaks plain TCP, the upstream TLS (verified against caCertificates, with sni)', async () => {
    const before = simple.conns.length;
    const r = await exchange(ports.simple, ['ping ', 'over tls']);
    assert.equal(r.error, undefined);
    assert.equal(r.data.toString(), 'ping over tls');
    assert.equal(simple.conns[before]?.text, 'ping over tls', 'the TLS-only upstream got the plaintext');
    assert.equal(simple.conns[before]?.servername, 'localhost', 'SNI from tls.sni');
  });

  test('MUTUAL: the proxy presents clientCertificate', async () => {
    const before = mutual.conns.length;
    const r = await exchange(ports.mutual, ['mutual ping']);
    assert.equal(r.data.toString(), 'mutual ping');
    assert.equal(mutual.conns[before]?.clientCn, 'client');
  });

  test('insecureSkipVerify: no CA, the connection still goes through', async () => {
    const r = await exchange(ports.skip, ['skip']);
    assert.equal(r.data.toString(), 'skip');
  });

  test('a CA the upstream certificate does not chain to: connect failure, flag UF', async () => {
    const before = simple.conns.length;
    const r = await exchange(ports.badCa, ['never']);
    assert.equal(r.data.length, 0);
    assert.equal(simple.conns.length, before, 'no TLS session was established upstream');
    const line = await accessLogWhere(proxy, (l) => String(l.upstream_cluster).endsWith('||bad-ca.tls.local'));
    assert.equal(line.response_flags, 'UF');
    assert.match(String(line.connection_termination_details), /upstream_connect_error:.*(CERT|SIGNATURE|ISSUER)/);
  });

  test('SIMPLE (no client certificate) to an upstream that requires one: the upstream refuses it', async () => {
    const before = mutual.conns.length;
    const r = await exchange(ports.noCert, ['never']);
    assert.equal(r.data.length, 0);
    assert.equal(mutual.conns.length, before, 'the upstream never accepted the connection');
    // TLS 1.3: the client side of the handshake completes first; the server's alert ends it.
    const line = await accessLogWhere(proxy, (l) => String(l.upstream_cluster).endsWith('||no-cert.tls.local'));
    assert.match(String(line.connection_termination_details), /CERTIFICATE_REQUIRED/);
    assert.equal(line.bytes_sent, 0);
  });
});

describe('TLS termination on a Gateway TLS server (SIMPLE / MUTUAL), routed by tcp[]', () => {
  let pki: TestPki;
  let echo: EchoServer;
  let passthroughUpstream: TlsUpstream;
  let proxy: RunningProxy;
  let simplePort: number;
  let mutualPort: number;
  let mixedPort: number;

  before(async () => {
    assert.ok(existsSync(GO_PLUGIN), 'plugins/network-go/plugin.wasm is built');
    pki = makePki();
    echo = await echoServer();
    passthroughUpstream = await tlsUpstream(pki);
    const used = new Set<number>();
    while (used.size < 3) used.add(await freePort());
    [simplePort, mutualPort, mixedPort] = [...used] as [number, number, number];
    const server = (port: number, name: string, tlsSettings: string, hosts = '["*"]') =>
      `  - port: {number: ${port}, name: ${name}, protocol: TLS}\n    hosts: ${hosts}\n    tls: ${tlsSettings}\n`;
    const certs = `serverCertificate: ${pki.serverCert}, privateKey: ${pki.serverKey}`;
    const yaml = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: tls-term
  namespace: istio-system
spec:
  selector:
    istio: ingressgateway
  servers:
${server(simplePort, 'tls-simple', `{mode: SIMPLE, ${certs}}`)}${server(mutualPort, 'tls-mutual', `{mode: MUTUAL, ${certs}, caCertificates: ${pki.caCert}}`)}${server(mixedPort, 'tls-pass', '{mode: PASSTHROUGH}', '["pass.example.com"]')}${server(mixedPort, 'tls-term', `{mode: SIMPLE, ${certs}}`, '["localhost"]')}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: terminated
  namespace: istio-system
spec:
  hosts: ["*"]
  gateways: [tls-term]
  tls:
  - match: [{port: ${mixedPort}, sniHosts: [pass.example.com]}]
    route:
    - destination: {host: pass.tls.local, port: {number: ${passthroughUpstream.port}}}
  tcp:
  - route:
    - destination: {host: echo.tcp.local, port: {number: ${echo.port}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: backends
  namespace: istio-system
spec:
  hosts: [echo.tcp.local, pass.tls.local]
  ports: [{number: ${echo.port}, name: tcp, protocol: TCP}, {number: ${passthroughUpstream.port}, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
${networkPlugin('count-decrypted', GO_PLUGIN, simplePort)}`;
    proxy = await startTcpProxy({ 'tls.yaml': yaml }, ['--component-log-level', 'wasm:info']);
  });
  after(async () => {
    await proxy?.stop();
    await echo?.close();
    await passthroughUpstream?.close();
  });

  test('SIMPLE: the client speaks TLS to the proxy; the upstream gets the plaintext', async () => {
    const before = echo.conns.length;
    const r = await tlsExchange(pki, simplePort, 'hello, terminated');
    assert.equal(r.error, undefined);
    assert.equal(r.authorized, true, "the proxy presented the Gateway's certificate");
    assert.equal(r.data, 'hello, terminated');
    assert.equal(Buffer.concat(echo.conns[before]!.received).toString(), 'hello, terminated');
    const line = await accessLogWhere(proxy, (l) => l.route_name === 'terminated.tcp.0' && l.bytes_received === 17);
    assert.equal(line.requested_server_name, 'localhost');
    assert.equal(line.bytes_sent, 17, 'the plaintext bytes, not the TLS records');
    // The NETWORK plugin on the port sees the decrypted bytes.
    await proxy.waitForLog('done: downstream 17 bytes in 1 chunks, upstream 17 bytes');
  });

  test('MUTUAL: a client without a certificate is refused; with one it goes through', async () => {
    const before = echo.conns.length;
    const refused = await tlsExchange(pki, mutualPort, 'no cert');
    assert.equal(refused.data, '');
    assert.ok(refused.error, 'the handshake fails');
    assert.equal(echo.conns.length, before, 'nothing reached the upstream');
    const other = makePki();
    const untrusted = await tlsExchange(pki, mutualPort, 'wrong CA', {
      cert: other.clientCertPem,
      key: other.clientKeyPem,
    });
    assert.equal(untrusted.data, '', 'a certificate from another CA is refused too');
    assert.equal(echo.conns.length, before);
    const ok = await tlsExchange(pki, mutualPort, 'with cert', { cert: pki.clientCertPem, key: pki.clientKeyPem });
    assert.equal(ok.error, undefined);
    assert.equal(ok.data, 'with cert');
  });

  test('one port, two servers: a PASSTHROUGH host is passed through by SNI, others are terminated', async () => {
    const before = passthroughUpstream.conns.length;
    // The upstream's certificate names localhost: the name check is off, the chain is still verified.
    const passed = await tlsExchange(pki, mixedPort, 'passed through', {
      servername: 'pass.example.com',
      checkServerIdentity: () => undefined,
    });
    assert.equal(passed.error, undefined);
    assert.equal(passed.data, 'passed through');
    assert.equal(passthroughUpstream.conns[before]?.servername, 'pass.example.com', 'the upstream did the TLS');
    const echoBefore = echo.conns.length;
    const terminated = await tlsExchange(pki, mixedPort, 'terminated here');
    assert.equal(terminated.data, 'terminated here');
    assert.equal(Buffer.concat(echo.conns[echoBefore]!.received).toString(), 'terminated here');
  });
});
