// Clusters over real sockets: each LB policy's distribution, consistent hashing (header, cookie),
// outlier ejection and return, DNS resolution, upstream TLS and mTLS with certificates made here,
// and Istio's httpbin-gateway example against the real go-httpbin.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type RunningProxy, startProxy, tempConfig } from '../helpers/proxy.ts';
import { startGoHttpbin, type Upstream } from '../helpers/upstreams.ts';
import { GATEWAY, hammer, type IdServer, idServer, send, serviceEntry, tally } from './routing-helpers.ts';

const vs = (host: string, dest: string) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${host.split('.')[0]}, namespace: istio-system}
spec:
  hosts: ["${host}"]
  gateways: [gw]
  http:
  - retries: {attempts: 0}
    route: [{destination: {host: ${dest}}}]
`;
const dr = (host: string, policy: string) => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ${host.split('.')[0]}, namespace: istio-system}
spec:
  host: ${host}
  trafficPolicy:
${policy}
`;

describe('load balancing and outlier detection', () => {
  let servers: IdServer[];
  let proxy: RunningProxy;
  before(async () => {
    servers = await Promise.all(['s1', 's2', 's3'].map((id) => idServer(id)));
    const files: Record<string, string> = { 'gw.yaml': GATEWAY };
    const policies: Record<string, string> = {
      rr: '    loadBalancer: {simple: ROUND_ROBIN}',
      random: '    loadBalancer: {simple: RANDOM}',
      lr: '    loadBalancer: {simple: LEAST_REQUEST}',
      hash: '    loadBalancer: {consistentHash: {httpHeaderName: x-user}}',
      maglev: '    loadBalancer: {consistentHash: {httpHeaderName: x-user, maglev: {tableSize: 65537}}}',
      cookie: '    loadBalancer: {consistentHash: {httpCookie: {name: sticky, path: /, ttl: 60s}}}',
      outlier:
        '    loadBalancer: {simple: ROUND_ROBIN}\n    outlierDetection: {consecutive5xxErrors: 2, interval: 100ms, baseEjectionTime: 1s, maxEjectionPercent: 100}',
    };
    for (const [name, policy] of Object.entries(policies)) {
      const host = `${name}.lb.test`;
      const set = name === 'lr' || name === 'outlier' ? servers.slice(0, 2) : servers;
      files[`${name}.yaml`] = [serviceEntry(host, set, name), vs(host, host), dr(host, policy)].join('---\n');
    }
    proxy = await startProxy(['-c', tempConfig(files)]);
  });
  after(async () => {
    await proxy?.stop();
    await Promise.all(servers.map((s) => s.close()));
  });
  const at = (name: string, headers: Record<string, string> = {}) => ({
    headers: { host: `${name}.lb.test`, ...headers },
  });

  test('ROUND_ROBIN: exactly even', async () => {
    const t = tally(await hammer(proxy.url, 90, 1, at('rr')));
    assert.deepEqual(t, { s1: 30, s2: 30, s3: 30 });
  });

  test('RANDOM: every endpoint gets a fair share', async () => {
    const t = tally(await hammer(proxy.url, 600, 8, at('random')));
    for (const id of ['s1', 's2', 's3']) assert.ok((t[id] ?? 0) > 120, JSON.stringify(t));
  });

  test('LEAST_REQUEST (the default): the idle endpoint gets more than a slow one', async () => {
    servers[0]!.behave = () => ({ delayMs: 150 });
    try {
      const t = tally(await hammer(proxy.url, 200, 8, at('lr')));
      assert.ok((t.s2 ?? 0) > 2 * (t.s1 ?? 0), JSON.stringify(t));
    } finally {
      servers[0]!.behave = () => undefined;
    }
  });

  for (const name of ['hash', 'maglev'])
    test(`consistentHash by header (${name === 'hash' ? 'ring' : 'maglev'}): stable per key, keys spread`, async () => {
      const owners = new Set<string>();
      for (let user = 0; user < 12; user++) {
        const t = tally(await hammer(proxy.url, 10, 2, at(name, { 'x-user': `user-${user}` })));
        assert.equal(Object.keys(t).length, 1, `user-${user}: ${JSON.stringify(t)}`);
        owners.add(Object.keys(t)[0]!);
      }
      assert.ok(owners.size >= 2, `all keys on ${[...owners]}`);
    });

  test('consistentHash by cookie: generated when absent (Set-Cookie with Max-Age), then sticky', async () => {
    const first = await send(proxy.url, at('cookie'));
    const setCookie = first.headers.get('set-cookie') ?? '';
    assert.match(setCookie, /^sticky="[0-9a-f]{16}"; Max-Age=60; Path=\/; HttpOnly$/);
    const cookie = setCookie.split(';')[0]!;
    const owner = first.headers.get('x-server');
    const t = tally(await hammer(proxy.url, 20, 4, at('cookie', { cookie })));
    assert.deepEqual(t, { [owner!]: 20 });
    const again = await send(proxy.url, at('cookie', { cookie }));
    assert.equal(again.headers.get('set-cookie'), null, 'no new cookie when the request has one');
  });

  test('outlier detection: consecutive 5xx eject an endpoint; it returns after baseEjectionTime', async () => {
    const bad = servers[0]!;
    bad.behave = () => ({ status: 500 });
    try {
      const first = await hammer(proxy.url, 6, 1, at('outlier'));
      assert.ok(first.filter((x) => x.startsWith('500')).length <= 2, first.join(' '));
      const during = tally(await hammer(proxy.url, 20, 1, at('outlier')));
      assert.deepEqual(during, { s2: 20 }, 'the failing endpoint is ejected');
      bad.behave = () => undefined;
      await new Promise((r) => setTimeout(r, 1400));
      const back = tally(await hammer(proxy.url, 20, 1, at('outlier')));
      assert.ok((back.s1 ?? 0) >= 5, `returned: ${JSON.stringify(back)}`);
    } finally {
      bad.behave = () => undefined;
    }
  });
});

describe('DNS resolution', () => {
  test('a DNS ServiceEntry endpoint named by host resolves through node:dns', async () => {
    const s = await idServer('dns');
    const se = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dns, namespace: istio-system}
spec:
  hosts: [dns.test]
  resolution: DNS
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: localhost, ports: {http: ${s.port}}}]
`;
    const proxy = await startProxy([
      '-c',
      tempConfig({ 'gw.yaml': GATEWAY, 'se.yaml': se, 'vs.yaml': vs('dns.test', 'dns.test') }),
    ]);
    try {
      const r = await send(proxy.url, { headers: { host: 'dns.test' } });
      assert.equal(r.text, 'dns');
      const [log] = await proxy.accessLogs(1);
      assert.match(String(log!.upstream_host), /^(127\.0\.0\.1|::1):\d+$/);
    } finally {
      await proxy.stop();
      await s.close();
    }
  });
});

describe('upstream TLS (DestinationRule tls SIMPLE and MUTUAL)', () => {
  let dir: string;
  let simple: IdServer;
  let mutual: IdServer;
  let proxy: RunningProxy;
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wasmgate-tls-'));
    openssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-days',
      '1',
      '-subj',
      '/CN=test-ca',
    );
    const sign = (name: string, subj: string, ext: string) => {
      openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj);
      require_ext(name, ext);
      openssl(
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-CA',
        'ca.pem',
        '-CAkey',
        'ca.key',
        '-CAcreateserial',
        '-out',
        `${name}.pem`,
        '-days',
        '1',
        '-extfile',
        `${name}.ext`,
      );
    };
    const require_ext = (name: string, ext: string) =>
      execFileSync('sh', ['-c', `printf '%s\\n' '${ext}' > ${name}.ext`], { cwd: dir });
    sign('server', '/CN=tls.test', 'subjectAltName=DNS:tls.test,DNS:mtls.test');
    sign('client', '/CN=client', 'extendedKeyUsage=clientAuth');
    const key = readFileSync(join(dir, 'server.key'), 'utf8');
    const cert = readFileSync(join(dir, 'server.pem'), 'utf8');
    simple = await idServer('tls', { key, cert });
    mutual = await idServer('mtls', {
      key,
      cert,
      ...({ ca: readFileSync(join(dir, 'ca.pem'), 'utf8'), requestCert: true, rejectUnauthorized: true } as object),
    });
    const tlsPolicy = (mode: string, extra = '') =>
      `    tls: {mode: ${mode}, caCertificates: ${join(dir, 'ca.pem')}${extra}}`;
    const files: Record<string, string> = {
      'gw.yaml': GATEWAY,
      'simple.yaml': [
        serviceEntry('tls.test', [simple], 'tls'),
        vs('tls.test', 'tls.test'),
        dr('tls.test', tlsPolicy('SIMPLE')),
      ].join('---\n'),
      'mutual.yaml': [
        serviceEntry('mtls.test', [mutual], 'mtls'),
        vs('mtls.test', 'mtls.test'),
        dr(
          'mtls.test',
          tlsPolicy(
            'MUTUAL',
            `, clientCertificate: ${join(dir, 'client.pem')}, privateKey: ${join(dir, 'client.key')}, sni: mtls.test`,
          ),
        ),
      ].join('---\n'),
      'nocert.yaml': [
        serviceEntry('nocert.test', [mutual], 'nocert'),
        vs('nocert.test', 'nocert.test'),
        dr('nocert.test', '    tls: {mode: SIMPLE, sni: tls.test, insecureSkipVerify: true}'),
      ].join('---\n'),
      'wrongsan.yaml': [
        serviceEntry('wrongsan.test', [simple], 'wrongsan'),
        vs('wrongsan.test', 'wrongsan.test'),
        dr('wrongsan.test', tlsPolicy('SIMPLE', ', sni: tls.test, subjectAltNames: [other.test]')),
      ].join('---\n'),
    };
    proxy = await startProxy(['-c', tempConfig(files)]);
  });
  after(async () => {
    await proxy?.stop();
    await simple?.close();
    await mutual?.close();
  });

  test('SIMPLE: verified against caCertificates with the Host as SNI', async () => {
    const r = await send(proxy.url, { headers: { host: 'tls.test' } });
    assert.equal(r.status, 200);
    assert.equal(r.text, 'tls');
  });

  test('MUTUAL: the client certificate is presented', async () => {
    const r = await send(proxy.url, { headers: { host: 'mtls.test' } });
    assert.equal(r.status, 200);
    assert.equal(r.text, 'mtls');
  });

  test('without the client certificate the mTLS server refuses, and a SAN mismatch fails: 503 UF', async () => {
    for (const host of ['nocert.test', 'wrongsan.test']) {
      const r = await send(proxy.url, { headers: { host } });
      assert.equal(r.status, 503, host);
      assert.match(r.text, /^upstream connect error or disconnect\/reset before headers/);
    }
    const logs = await proxy.accessLogs(4);
    const flags = (host: string) => logs.find((l) => l.authority === host)?.response_flags;
    // TLS 1.3: the server checks the client certificate after the handshake and closes (UC)
    assert.match(String(flags('nocert.test')), /^(UF|UC|UR)$/);
    assert.equal(flags('wrongsan.test'), 'UF');
  });
});

describe("Istio's httpbin gateway example, unchanged, against go-httpbin", () => {
  let httpbin: Upstream;
  let proxy: RunningProxy;
  before(async () => {
    httpbin = await startGoHttpbin();
    // From istio.io "Ingress Gateways" (networking.istio.io/v1), applied in namespace default.
    const example = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: httpbin-gateway
spec:
  # The selector matches the ingress gateway pod labels.
  # If you installed Istio using Helm following the standard documentation, this would be "istio=ingress"
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts:
    - "httpbin.example.com"
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: httpbin
spec:
  hosts:
  - "httpbin.example.com"
  gateways:
  - httpbin-gateway
  http:
  - match:
    - uri:
        prefix: /status
    - uri:
        prefix: /delay
    route:
    - destination:
        port:
          number: 8000
        host: httpbin
`;
    // What Kubernetes would provide: the httpbin Service in namespace default.
    const service = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8000, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: ${httpbin.port}}}]
`;
    proxy = await startProxy(['-c', tempConfig({ 'httpbin-gateway.yaml': example, 'service.yaml': service })]);
  });
  after(async () => {
    await proxy?.stop();
    await httpbin?.close();
  });

  test('curl -H "Host: httpbin.example.com" /status/200, /delay/1; other paths and hosts 404', async () => {
    const host = { host: 'httpbin.example.com' };
    const ok = await send(`${proxy.url}/status/200`, { headers: host });
    assert.equal(ok.status, 200);
    const teapot = await send(`${proxy.url}/status/418`, { headers: host });
    assert.equal(teapot.status, 418);
    const delay = await send(`${proxy.url}/delay/1`, { headers: host });
    assert.equal(delay.status, 200);
    assert.match(delay.text, /"url"/);
    const headers = await send(`${proxy.url}/headers`, { headers: host });
    assert.equal(headers.status, 404);
    const other = await send(`${proxy.url}/status/200`, { headers: { host: 'other.example.com' } });
    assert.equal(other.status, 404);
    const logs = await proxy.accessLogs(5);
    assert.equal(logs[0]!.upstream_cluster, 'outbound|8000||httpbin.default.svc.cluster.local');
    assert.equal(logs[3]!.response_flags, 'NR');
  });
});
