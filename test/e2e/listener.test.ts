// Downstream protocols from Gateway servers: HTTP/1.1 and h2c (prior knowledge) on one cleartext
// port, TLS (SIMPLE) with ALPN h2 and http/1.1, mutual TLS, and httpsRedirect — with certificates
// made for the test and real clients (node:http2, node:https).
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import { after, before, describe, test } from 'node:test';
import { makePki, type TestPki } from '../helpers/certs.ts';
import { gatewayYaml, runCli, startProxy, tempConfig } from '../helpers/proxy.ts';
import { startEmbeddedHttpbin, type Upstream } from '../helpers/upstreams.ts';

let upstream: Upstream;
let pki: TestPki;
before(async () => {
  upstream = await startEmbeddedHttpbin();
  pki = makePki();
});
after(async () => {
  await upstream?.close();
});

function gateway(server: string): Record<string, string> {
  return { 'gw.yaml': gatewayYaml(upstream.port, '', { servers: server }) };
}

/** One HTTP/2 request; resolves with status, headers and body. */
function h2request(
  authority: string,
  path: string,
  options: http2.SecureClientSessionOptions = {},
  body?: string,
): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(authority, options);
    session.on('error', reject);
    const req = session.request({ ':path': path, ':method': body === undefined ? 'GET' : 'POST' });
    let headers: http2.IncomingHttpHeaders = {};
    let data = '';
    req.on('response', (h) => {
      headers = h;
    });
    req.setEncoding('utf8');
    req.on('data', (d) => {
      data += d;
    });
    req.on('end', () => {
      session.close();
      resolve({ status: Number(headers[':status']), headers, body: data });
    });
    req.on('error', reject);
    req.end(body);
  });
}

function httpsGet(
  port: number,
  options: https.RequestOptions = {},
): Promise<{ status: number; alpn: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      {
        host: '127.0.0.1',
        port,
        path: '/get',
        ca: pki.ca,
        servername: 'localhost',
        agent: false,
        ALPNProtocols: ['http/1.1'],
        ...options,
      } as https.RequestOptions,
      (res) => {
        const alpn = String((res.socket as { alpnProtocol?: string }).alpnProtocol);
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          body += d;
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            alpn,
            body,
          }),
        );
      },
    );
    req.on('error', reject);
  });
}

describe('cleartext port: HTTP/1.1 and h2c', () => {
  test('both codecs on one port; HTTP/2 bodies both ways; the access log says HTTP/2', async () => {
    const dir = tempConfig(gateway('  - port: {number: 8080, name: http, protocol: HTTP}\n    hosts: ["*"]'));
    const proxy = await startProxy(['-c', dir]);
    try {
      const h1 = await fetch(`${proxy.url}/get`);
      assert.equal(h1.status, 200);
      await h1.text();
      const res = await h2request(proxy.url, '/anything/h2', {}, 'over h2c');
      assert.equal(res.status, 200);
      const echo = JSON.parse(res.body) as { data: string; method: string };
      assert.equal(echo.method, 'POST');
      assert.equal(echo.data, 'over h2c');
      const logs = await proxy.accessLogs(2);
      assert.deepEqual(
        logs.map((l) => l.protocol),
        ['HTTP/1.1', 'HTTP/2'],
      );
    } finally {
      await proxy.stop();
    }
  });
});

describe('TLS', () => {
  test('SIMPLE: ALPN picks h2 or http/1.1; x-forwarded-proto is https', async () => {
    const dir = tempConfig(
      gateway(`  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, serverCertificate: ${pki.serverCert}, privateKey: ${pki.serverKey}}`),
    );
    const proxy = await startProxy(['-c', dir]);
    try {
      const h1 = await httpsGet(proxy.port);
      assert.equal(h1.status, 200);
      assert.equal(h1.alpn, 'http/1.1');
      const res = await h2request(`https://localhost:${proxy.port}`, '/headers', { ca: pki.ca });
      assert.equal(res.status, 200);
      const { headers } = JSON.parse(res.body) as { headers: Record<string, string[]> };
      assert.deepEqual(headers['X-Forwarded-Proto'], ['https']);
    } finally {
      await proxy.stop();
    }
  });

  test('MUTUAL: a client without a certificate is refused; one signed by the CA gets through', async () => {
    const dir = tempConfig(
      gateway(`  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: MUTUAL, serverCertificate: ${pki.serverCert}, privateKey: ${pki.serverKey}, caCertificates: ${pki.caCert}}`),
    );
    const proxy = await startProxy(['-c', dir]);
    try {
      await assert.rejects(httpsGet(proxy.port));
      const ok = await httpsGet(proxy.port, { cert: pki.clientCertPem, key: pki.clientKeyPem });
      assert.equal(ok.status, 200);
    } finally {
      await proxy.stop();
    }
  });

  test('an unreadable certificate stops start-up with the port and field named', async () => {
    const dir = tempConfig(
      gateway(`  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, serverCertificate: /nonexistent/cert.pem, privateKey: ${pki.serverKey}}`),
    );
    const r = await runCli(['run', '-c', dir, '--port', '0', '--admin-port=-1']);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /Gateway server on port 0: tls\.serverCertificate: cannot read \/nonexistent\/cert\.pem: ENOENT/,
    );
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });

  test('httpsRedirect answers 301 to the https:// URL', async () => {
    const dir = tempConfig(
      gateway('  - port: {number: 8080, name: http, protocol: HTTP}\n    hosts: ["*"]\n    tls: {httpsRedirect: true}'),
    );
    const proxy = await startProxy(['-c', dir]);
    try {
      const res = await new Promise<http.IncomingMessage>((resolve, reject) =>
        http
          .get(
            { port: proxy.port, host: '127.0.0.1', path: '/path?q=1', headers: { host: 'example.com:8080' } },
            resolve,
          )
          .on('error', reject),
      );
      res.resume();
      assert.equal(res.statusCode, 301);
      assert.equal(res.headers.location, 'https://example.com/path?q=1');
    } finally {
      await proxy.stop();
    }
  });
});
