// Gateway `credentialName` / `credentialNames` and DestinationRule `credentialName`, standalone:
// the Kubernetes Secret is read from --secrets-dir DIR as DIR/<namespace>/<name>, else DIR/<name>,
// either a folder with one file per key (a mounted Secret volume) or a Secret manifest (YAML or
// JSON, data base64 or stringData). Real proxies, real TLS handshakes: the certificate served is
// checked by fingerprint; MUTUAL with the CA in the secret, in <name>-cacert or in
// caCertCredentialName; an RSA and an ECDSA certificate (credentialNames) picked by the client's
// signature algorithms; mTLS origination to an upstream that requires a client certificate (HTTP
// and TCP routes); a TLS server on a TCP listener terminating MUTUAL; `validate` and `run` report
// the same errors at file:line:col; a rotated certificate (Kubernetes' ..data symlink swap, or a
// Secret file rewritten) is served after the watcher's reload.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { leafCert, makePki, type TestPki } from '../helpers/certs.ts';
import { gatewayServersYaml, gatewayYaml, runCli, startProxy, tempConfig } from '../helpers/proxy.ts';
import { startEmbeddedHttpbin, type Upstream } from '../helpers/upstreams.ts';
import { idServer, send, serviceEntry } from './routing-helpers.ts';
import {
  destinationRule,
  echoServer,
  exchange,
  freePort,
  startTcpProxy,
  tcpRoute,
  tlsExchange,
  tlsUpstream,
} from './tcp-helpers.ts';

interface Pair {
  certPem: Buffer;
  keyPem: Buffer;
}

let upstream: Upstream;
let pki: TestPki;
/** The PKI's own server certificate (ECDSA, localhost and 127.0.0.1). */
let ecdsa: Pair;
let rsa: Pair;
let other: Pair;
let rotated: Pair;
before(async () => {
  upstream = await startEmbeddedHttpbin();
  pki = makePki();
  ecdsa = { certPem: readFileSync(pki.serverCert), keyPem: readFileSync(pki.serverKey) };
  rsa = leafCert(pki, 'rsa', ['localhost', 'a.test', 'b.test'], { rsa: true });
  other = leafCert(pki, 'other', ['localhost', 'a.test', 'b.test'], { cn: 'other' });
  rotated = leafCert(pki, 'rotated', ['localhost', 'a.test', 'b.test'], { cn: 'rotated' });
});
after(async () => {
  await upstream?.close();
});

const fingerprint = (pem: Buffer) => new X509Certificate(pem).fingerprint256;

function secretsDir(): string {
  return mkdtempSync(join(tmpdir(), 'wasmgate-secrets-'));
}

/** A Secret volume: `dir`/`rel`/<key> for each key. */
function secretFolder(dir: string, rel: string, keys: Record<string, Buffer>): void {
  mkdirSync(join(dir, rel), { recursive: true });
  for (const [k, v] of Object.entries(keys)) writeFileSync(join(dir, rel, k), v);
}

/** A Secret manifest at `dir`/`rel`: YAML with base64 `data`, or JSON with plain `stringData`. */
function secretFile(dir: string, rel: string, keys: Record<string, Buffer>, form: 'data' | 'stringData'): void {
  mkdirSync(dirname(join(dir, rel)), { recursive: true });
  const name = rel.split('/').at(-1);
  const text =
    form === 'data'
      ? `apiVersion: v1\nkind: Secret\nmetadata: {name: ${name}}\ntype: kubernetes.io/tls\ndata:\n${Object.entries(keys)
          .map(([k, v]) => `  ${k}: ${v.toString('base64')}\n`)
          .join('')}`
      : JSON.stringify({
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: { name },
          type: 'Opaque',
          stringData: Object.fromEntries(Object.entries(keys).map(([k, v]) => [k, v.toString('utf8')])),
        });
  writeFileSync(join(dir, rel), text);
}

/** An HTTPS server (Gateway YAML list item) for `hosts` with these `tls` fields. */
const httpsServer = (tlsFields: string, hosts = '["*"]', port = 8443) =>
  `  - port: {number: ${port}, name: https-${port}, protocol: HTTPS}
    hosts: ${hosts}
    tls: {${tlsFields}}`;

interface Handshake {
  fingerprint: string;
  keyType: string | undefined;
  authorized: boolean;
}

/** A TLS handshake with the proxy; resolves with the certificate served, rejects if refused. */
function handshake(port: number, options: tls.ConnectionOptions = {}): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      ca: pki.ca,
      ALPNProtocols: ['http/1.1'],
      ...options,
    });
    socket.once('secureConnect', () => {
      const cert = socket.getPeerX509Certificate()!;
      resolve({
        fingerprint: cert.fingerprint256,
        keyType: cert.publicKey.asymmetricKeyType,
        authorized: socket.authorized,
      });
      socket.end();
    });
    socket.once('error', reject);
  });
}

/** GET /get over HTTPS/1.1; rejects when the handshake or the request fails. */
function httpsGet(port: number, options: https.RequestOptions = {}): Promise<number> {
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
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
  });
}

describe('Gateway credentialName: the secret forms', () => {
  test('a Secret volume folder DIR/<namespace>/<name> (tls.crt, tls.key): served, and requests go through', async () => {
    const dir = secretsDir();
    secretFolder(dir, 'istio-system/web', { 'tls.crt': ecdsa.certPem, 'tls.key': ecdsa.keyPem });
    const config = tempConfig({
      'gw.yaml': gatewayYaml(upstream.port, '', { servers: httpsServer('mode: SIMPLE, credentialName: web') }),
    });
    const proxy = await startProxy(['-c', config, '--secrets-dir', dir]);
    try {
      const h = await handshake(proxy.port);
      assert.equal(h.fingerprint, fingerprint(ecdsa.certPem));
      assert.ok(h.authorized);
      assert.equal(await httpsGet(proxy.port), 200);
    } finally {
      await proxy.stop();
    }
  });

  test('Secret manifests: YAML with base64 data, JSON with stringData and the generic keys (cert, key)', async () => {
    const dir = secretsDir();
    secretFile(dir, 'web-a', { 'tls.crt': rsa.certPem, 'tls.key': rsa.keyPem }, 'data');
    secretFile(dir, 'web-b', { cert: other.certPem, key: other.keyPem }, 'stringData');
    // Two servers on one port (--port 0 merges them): the certificate is picked by SNI.
    const servers = [
      httpsServer('mode: SIMPLE, credentialName: web-a', '["a.test"]'),
      httpsServer('mode: SIMPLE, credentialName: web-b', '["b.test"]', 8444),
    ].join('\n');
    const config = tempConfig({ 'gw.yaml': gatewayYaml(upstream.port, '', { servers }) });
    const proxy = await startProxy(['-c', config, '--secrets-dir', dir]);
    try {
      const a = await handshake(proxy.port, { servername: 'a.test' });
      assert.equal(a.fingerprint, fingerprint(rsa.certPem));
      assert.ok(a.authorized);
      const b = await handshake(proxy.port, { servername: 'b.test' });
      assert.equal(b.fingerprint, fingerprint(other.certPem));
      assert.ok(b.authorized);
      assert.equal(await httpsGet(proxy.port, { servername: 'b.test', headers: { host: 'b.test' } }), 200);
    } finally {
      await proxy.stop();
    }
  });

  test('DIR/<namespace>/<name> is preferred over DIR/<name>; a Gateway in another namespace gets DIR/<name>', async () => {
    const dir = secretsDir();
    secretFolder(dir, 'istio-system/web', { 'tls.crt': rsa.certPem, 'tls.key': rsa.keyPem });
    secretFolder(dir, 'web', { 'tls.crt': other.certPem, 'tls.key': other.keyPem });
    const apps = `---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: apps-gw, namespace: apps}
spec:
  selector: {istio: ingressgateway}
  servers:
${httpsServer('mode: SIMPLE, credentialName: web', '["b.test"]', 8444)}
`;
    const config = tempConfig({
      'gw.yaml': gatewayYaml(upstream.port, apps, {
        servers: httpsServer('mode: SIMPLE, credentialName: web', '["a.test"]'),
      }),
    });
    const v = await runCli(['validate', '-c', config, '--secrets-dir', dir]);
    assert.equal(v.code, 0, v.stderr);
    const proxy = await startProxy(['-c', config, '--secrets-dir', dir]);
    try {
      assert.equal((await handshake(proxy.port, { servername: 'a.test' })).fingerprint, fingerprint(rsa.certPem));
      assert.equal((await handshake(proxy.port, { servername: 'b.test' })).fingerprint, fingerprint(other.certPem));
    } finally {
      await proxy.stop();
    }
  });
});

describe('Gateway credentialName: MUTUAL', () => {
  const variants = {
    'ca.crt in the same secret': (dir: string) =>
      secretFolder(dir, 'istio-system/web', { 'tls.crt': ecdsa.certPem, 'tls.key': ecdsa.keyPem, 'ca.crt': pki.ca }),
    'cacert in the secret <name>-cacert': (dir: string) => {
      secretFile(dir, 'web', { cert: ecdsa.certPem, key: ecdsa.keyPem }, 'stringData');
      secretFolder(dir, 'web-cacert', { cacert: pki.ca });
    },
    'the secret named by caCertCredentialName, over the CA in the secret': (dir: string) => {
      // The secret's own CA is another one: caCertCredentialName takes precedence, as in Istio.
      secretFolder(dir, 'web', { 'tls.crt': ecdsa.certPem, 'tls.key': ecdsa.keyPem, 'ca.crt': makePki().ca });
      secretFolder(dir, 'client-ca', { 'ca.crt': pki.ca });
    },
  };
  for (const [where, write] of Object.entries(variants))
    test(`${where}: a client without a certificate is refused, one with a certificate is served`, async () => {
      const dir = secretsDir();
      write(dir);
      const extra = where.includes('caCertCredentialName') ? ', caCertCredentialName: client-ca' : '';
      const config = tempConfig({
        'gw.yaml': gatewayYaml(upstream.port, '', {
          servers: httpsServer(`mode: MUTUAL, credentialName: web${extra}`),
        }),
      });
      const proxy = await startProxy(['-c', config, '--secrets-dir', dir]);
      try {
        await assert.rejects(httpsGet(proxy.port));
        assert.equal(await httpsGet(proxy.port, { cert: pki.clientCertPem, key: pki.clientKeyPem }), 200);
        // A certificate from another CA is refused too.
        const stranger = makePki();
        await assert.rejects(httpsGet(proxy.port, { cert: stranger.clientCertPem, key: stranger.clientKeyPem }));
      } finally {
        await proxy.stop();
      }
    });
});

describe('Gateway credentialNames: an RSA and an ECDSA certificate', () => {
  test('both load; a client that only takes ECDSA gets the ECDSA one, an RSA-only client the RSA one', async () => {
    const dir = secretsDir();
    secretFolder(dir, 'web-rsa', { 'tls.crt': rsa.certPem, 'tls.key': rsa.keyPem });
    secretFile(dir, 'istio-system/web-ecdsa', { 'tls.crt': ecdsa.certPem, 'tls.key': ecdsa.keyPem }, 'data');
    const config = tempConfig({
      'gw.yaml': gatewayYaml(upstream.port, '', {
        servers: httpsServer('mode: SIMPLE, credentialNames: [web-rsa, web-ecdsa]'),
      }),
    });
    const proxy = await startProxy(['-c', config, '--secrets-dir', dir]);
    try {
      for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
        const ec = await handshake(proxy.port, { sigalgs: 'ecdsa_secp256r1_sha256', maxVersion });
        assert.equal(ec.keyType, 'ec', maxVersion);
        assert.equal(ec.fingerprint, fingerprint(ecdsa.certPem));
        const r = await handshake(proxy.port, { sigalgs: 'rsa_pss_rsae_sha256:rsa_pkcs1_sha256', maxVersion });
        assert.equal(r.keyType, 'rsa', maxVersion);
        assert.equal(r.fingerprint, fingerprint(rsa.certPem));
      }
      assert.equal(await httpsGet(proxy.port), 200);
    } finally {
      await proxy.stop();
    }
  });
});

describe('DestinationRule credentialName: mTLS origination', () => {
  test('MUTUAL: the client certificate and CA come from the secret; the upstream requires the certificate', async () => {
    const server = await idServer('mtls', {
      key: ecdsa.keyPem.toString(),
      cert: ecdsa.certPem.toString(),
      ...({ ca: pki.ca, requestCert: true, rejectUnauthorized: true } as object),
    });
    const dir = secretsDir();
    secretFolder(dir, 'istio-system/client', {
      'tls.crt': pki.clientCertPem,
      'tls.key': pki.clientKeyPem,
      'ca.crt': pki.ca,
    });
    // `nocert` verifies the upstream with the secret's CA but presents no certificate (SIMPLE): refused.
    const dr = (name: string, mode: string) => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ${name}, namespace: istio-system}
spec:
  host: ${name}.test
  trafficPolicy:
    tls: {mode: ${mode}, credentialName: client, sni: localhost}
`;
    const vs = (name: string) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${name}, namespace: istio-system}
spec:
  hosts: ["${name}.test"]
  gateways: [gw]
  http:
  - retries: {attempts: 0}
    route: [{destination: {host: ${name}.test}}]
`;
    const files: Record<string, string> = {
      'gw.yaml': gatewayServersYaml('gw', '  - port: {number: 8080, name: http, protocol: HTTP}\n    hosts: ["*"]\n'),
    };
    for (const [name, mode] of [
      ['mtls', 'MUTUAL'],
      ['nocert', 'SIMPLE'],
    ])
      files[`${name}.yaml`] = [serviceEntry(`${name}.test`, [server], name), vs(name), dr(name, mode!)].join('---\n');
    const proxy = await startProxy(['-c', tempConfig(files), '--secrets-dir', dir]);
    try {
      const ok = await send(proxy.url, { headers: { host: 'mtls.test' } });
      assert.equal(ok.status, 200);
      assert.equal(ok.text, 'mtls');
      const refused = await send(proxy.url, { headers: { host: 'nocert.test' } });
      assert.equal(refused.status, 503);
      assert.equal(server.seen.length, 1);
    } finally {
      await proxy.stop();
      await server.close();
    }
  });
});

describe('TCP listeners: a Gateway TLS server terminating MUTUAL, and TLS origination on a tcp route', () => {
  test('both take their certificates from secrets', async () => {
    const echo = await echoServer();
    const mutualUpstream = await tlsUpstream(pki, true);
    const dir = secretsDir();
    secretFolder(dir, 'istio-system/tls-term', {
      'tls.crt': ecdsa.certPem,
      'tls.key': ecdsa.keyPem,
      'ca.crt': pki.ca,
    });
    secretFile(dir, 'client', { 'tls.crt': pki.clientCertPem, 'tls.key': pki.clientKeyPem, 'ca.crt': pki.ca }, 'data');
    const termPort = await freePort();
    let origPort = await freePort();
    while (origPort === termPort) origPort = await freePort();
    const term = tcpRoute('term', termPort, echo.port, 'echo.tcp.local').replace(
      `protocol: TCP}\n    hosts: ["*"]`,
      `protocol: TLS}\n    hosts: ["*"]\n    tls: {mode: MUTUAL, credentialName: tls-term}`,
    );
    assert.match(term, /credentialName: tls-term/);
    const orig = tcpRoute(
      'orig',
      origPort,
      mutualUpstream.port,
      'orig.tls.local',
      destinationRule('orig', 'orig.tls.local', '    tls: {mode: MUTUAL, credentialName: client, sni: localhost}\n'),
    );
    const proxy = await startTcpProxy({ 'term.yaml': term, 'orig.yaml': orig }, ['--secrets-dir', dir]);
    try {
      const refused = await tlsExchange(pki, termPort, 'no cert');
      assert.equal(refused.data, '');
      const ok = await tlsExchange(pki, termPort, 'with cert', { cert: pki.clientCertPem, key: pki.clientKeyPem });
      assert.equal(ok.error, undefined);
      assert.equal(ok.peer, fingerprint(ecdsa.certPem));
      assert.equal(ok.data, 'with cert');
      const r = await exchange(origPort, ['over mTLS']);
      assert.equal(r.data.toString(), 'over mTLS');
      assert.equal(mutualUpstream.conns.at(-1)?.clientCn, 'client');
    } finally {
      await proxy.stop();
      await echo.close();
      await mutualUpstream.close();
    }
  });
});

describe('errors: validate reports them at file:line:col, run refuses to start with the same lines', () => {
  /** A Gateway whose first server is HTTPS with these tls fields from line 10 (mode) and 11. */
  const gateway = (tlsLines: string) =>
    gatewayServersYaml(
      'gw',
      `  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls:
${tlsLines}`,
    );
  const DR = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: up, namespace: istio-system}
spec:
  host: up.test
  trafficPolicy:
    tls:
      mode: MUTUAL
      credentialName: client
`;

  const cases: {
    name: string;
    yaml: string;
    secrets?: (dir: string) => void;
    noSecretsDir?: boolean;
    expected: (dir: string) => string;
  }[] = [
    {
      name: 'a missing secret names the paths tried',
      yaml: gateway('      mode: SIMPLE\n      credentialName: web\n'),
      expected: (dir) =>
        `:11:23  Gateway istio-system/gw  spec.servers[0].tls.credentialName: secret "web" not found: tried ${dir}/istio-system/web, ${dir}/web; each may be a folder holding tls.crt and tls.key (and ca.crt for MUTUAL), or a Kubernetes Secret file (YAML or JSON) with those keys under data (base64) or stringData`,
    },
    {
      name: 'a secret without its key names the key and what the secret has',
      yaml: gateway('      mode: SIMPLE\n      credentialName: web\n'),
      secrets: (dir) => secretFolder(dir, 'web', { 'tls.crt': ecdsa.certPem, 'ca.crt': pki.ca }),
      expected: (dir) =>
        `:11:23  Gateway istio-system/gw  spec.servers[0].tls.credentialName: secret "web" (${dir}/web, a folder) has no tls.key (or key); its keys: ca.crt, tls.crt`,
    },
    {
      name: 'a certificate with the key of another',
      yaml: gateway('      mode: SIMPLE\n      credentialName: web\n'),
      secrets: (dir) => secretFile(dir, 'web', { 'tls.crt': ecdsa.certPem, 'tls.key': other.keyPem }, 'data'),
      expected: (dir) =>
        `:11:23  Gateway istio-system/gw  spec.servers[0].tls.credentialName: secret "web" (${dir}/web, a Secret file): the certificate and key are not a usable pair: error:05800074:x509 certificate routines::key values mismatch`,
    },
    {
      name: 'plain PEM under data (not base64): the message quotes none of it',
      yaml: gateway('      mode: SIMPLE\n      credentialName: web\n'),
      secrets: (dir) =>
        writeFileSync(
          join(dir, 'web'),
          `kind: Secret\ndata:\n  tls.key: |\n${ecdsa.keyPem
            .toString()
            .split('\n')
            .map((l) => `    ${l}`)
            .join('\n')}\n`,
        ),
      expected: (dir) =>
        `:11:23  Gateway istio-system/gw  spec.servers[0].tls.credentialName: secret "web": ${dir}/web: data["tls.key"] is not base64 (a Secret's data is base64; plain PEM goes under stringData)`,
    },
    {
      name: 'MUTUAL without a CA anywhere',
      yaml: gateway('      mode: MUTUAL\n      credentialName: web\n'),
      secrets: (dir) => secretFolder(dir, 'istio-system/web', { 'tls.crt': ecdsa.certPem, 'tls.key': ecdsa.keyPem }),
      expected: (dir) =>
        `:11:23  Gateway istio-system/gw  spec.servers[0].tls.credentialName: MUTUAL TLS needs the CA that client certificates must chain to: secret "web" (${dir}/istio-system/web, a folder) has no ca.crt (or cacert), and there is no secret "web-cacert" (tried ${dir}/istio-system/web-cacert, ${dir}/web-cacert); or name one with caCertCredentialName`,
    },
    {
      name: 'credentialNames: the second one is missing',
      yaml: gateway('      mode: SIMPLE\n      credentialNames: [web, web-rsa]\n'),
      secrets: (dir) => secretFolder(dir, 'web', { 'tls.crt': ecdsa.certPem, 'tls.key': ecdsa.keyPem }),
      expected: (dir) =>
        `:11:30  Gateway istio-system/gw  spec.servers[0].tls.credentialNames[1]: secret "web-rsa" not found: tried ${dir}/istio-system/web-rsa, ${dir}/web-rsa; each may be a folder holding tls.crt and tls.key (and ca.crt for MUTUAL), or a Kubernetes Secret file (YAML or JSON) with those keys under data (base64) or stringData`,
    },
    {
      name: 'no --secrets-dir says how to give one',
      yaml: gateway('      mode: SIMPLE\n      credentialName: web\n'),
      noSecretsDir: true,
      expected: () =>
        `:11:23  Gateway istio-system/gw  spec.servers[0].tls.credentialName: secret "web" cannot be read: no --secrets-dir was given. Start with --secrets-dir DIR (or WASMGATE_SECRETS_DIR) where DIR/istio-system/web or DIR/web is a folder holding tls.crt and tls.key (and ca.crt for MUTUAL), or a Kubernetes Secret file (YAML or JSON) with those keys under data (base64) or stringData`,
    },
    {
      name: 'a DestinationRule whose MUTUAL secret has no client certificate',
      yaml: DR,
      secrets: (dir) => secretFolder(dir, 'client', { 'ca.crt': pki.ca }),
      expected: (dir) =>
        `:9:23  DestinationRule istio-system/up  spec.trafficPolicy.tls.credentialName: secret "client" (${dir}/client, a folder) has no tls.crt (or cert) and no tls.key (or key); its keys: ca.crt`,
    },
  ];

  for (const c of cases)
    test(c.name, async () => {
      const dir = secretsDir();
      c.secrets?.(dir);
      const file = join(tempConfig({ 'config.yaml': c.yaml }), 'config.yaml');
      const flags = c.noSecretsDir ? [] : ['--secrets-dir', dir];
      const expected = `${file}${c.expected(dir)}`;
      const v = await runCli(['validate', '-c', file, ...flags]);
      assert.equal(v.code, 1, `validate should fail; stdout:\n${v.stdout}`);
      assert.ok(v.stderr.split('\n').includes(expected), `expected:\n${expected}\ngot:\n${v.stderr}`);
      assert.doesNotMatch(v.stdout, /^valid:/m);
      const r = await runCli(['run', '-c', file, '--port', '0', '--admin-port=-1', '--health-port=-1', ...flags]);
      assert.equal(r.code, 1, r.stderr);
      assert.ok(r.stderr.split('\n').includes(expected), r.stderr);
      assert.match(r.stderr, /configuration is invalid; not starting/);
      assert.doesNotMatch(r.stderr, /listening on/);
      for (const out of [v.stderr, r.stderr]) assert.doesNotMatch(out, /BEGIN|PRIVATE KEY/);
    });
});

describe('hot reload', () => {
  test("a certificate rotated by Kubernetes' ..data symlink swap is served without a restart", async () => {
    const dir = secretsDir();
    // A Secret volume as the kubelet writes it: the keys link into ..data, itself a link to a timestamped folder.
    const volume = join(dir, 'istio-system', 'web');
    secretFolder(volume, '..2024_01', { 'tls.crt': rsa.certPem, 'tls.key': rsa.keyPem });
    symlinkSync('..2024_01', join(volume, '..data'));
    for (const k of ['tls.crt', 'tls.key']) symlinkSync(join('..data', k), join(volume, k));
    secretFolder(dir, 'other', { 'tls.crt': other.certPem, 'tls.key': other.keyPem });
    // Two servers on the port: the rotated certificate is chosen by SNI, which a reload must swap too.
    const servers = [
      httpsServer('mode: SIMPLE, credentialName: web', '["a.test"]'),
      httpsServer('mode: SIMPLE, credentialName: other', '["b.test"]', 8444),
    ].join('\n');
    const config = tempConfig({ 'gw.yaml': gatewayYaml(upstream.port, '', { servers }) });
    const proxy = await startProxy(['-c', config, '--secrets-dir', dir]);
    try {
      assert.equal((await handshake(proxy.port, { servername: 'a.test' })).fingerprint, fingerprint(rsa.certPem));
      secretFolder(volume, '..2024_02', { 'tls.crt': rotated.certPem, 'tls.key': rotated.keyPem });
      symlinkSync('..2024_02', join(volume, '..data_tmp'));
      renameSync(join(volume, '..data_tmp'), join(volume, '..data'));
      await proxy.waitForLog('reloaded (changed:', 10_000);
      const deadline = Date.now() + 5000;
      let served = '';
      while (Date.now() < deadline) {
        served = (await handshake(proxy.port, { servername: 'a.test' })).fingerprint;
        if (served === fingerprint(rotated.certPem)) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(served, fingerprint(rotated.certPem));
      assert.equal((await handshake(proxy.port, { servername: 'b.test' })).fingerprint, fingerprint(other.certPem));
      assert.equal(await httpsGet(proxy.port, { servername: 'a.test', headers: { host: 'a.test' } }), 200);
    } finally {
      await proxy.stop();
    }
  });

  test('a Secret folder removed and made again is watched again: later rotations are seen', async () => {
    const dir = secretsDir();
    secretFolder(dir, 'web', { 'tls.crt': rsa.certPem, 'tls.key': rsa.keyPem });
    const config = tempConfig({
      'gw.yaml': gatewayYaml(upstream.port, '', { servers: httpsServer('mode: SIMPLE, credentialName: web') }),
    });
    const proxy = await startProxy(['-c', config, '--secrets-dir', dir]);
    /** Resolves when `text` has been logged `count` times. */
    const logged = async (text: string, count: number) => {
      const deadline = Date.now() + 10_000;
      while (proxy.stderr().split(text).length - 1 < count) {
        if (Date.now() > deadline) throw new Error(`"${text}" not logged ${count} times:\n${proxy.stderr()}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    };
    try {
      assert.equal((await handshake(proxy.port)).fingerprint, fingerprint(rsa.certPem));
      rmSync(join(dir, 'web'), { recursive: true });
      await logged('reload rejected (changed:', 1);
      assert.equal((await handshake(proxy.port)).fingerprint, fingerprint(rsa.certPem), 'the old one serves on');
      secretFolder(dir, 'web', { 'tls.crt': other.certPem, 'tls.key': other.keyPem });
      await logged('reloaded (changed:', 1);
      assert.equal((await handshake(proxy.port)).fingerprint, fingerprint(other.certPem));
      // The new folder is a new inode: its files are watched, not the removed one's.
      writeFileSync(join(dir, 'web', 'tls.key'), rotated.keyPem);
      writeFileSync(join(dir, 'web', 'tls.crt'), rotated.certPem);
      const deadline = Date.now() + 10_000;
      let served = '';
      while (Date.now() < deadline) {
        served = (await handshake(proxy.port)).fingerprint;
        if (served === fingerprint(rotated.certPem)) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(served, fingerprint(rotated.certPem));
    } finally {
      await proxy.stop();
    }
  });

  test('a Secret file rewritten in place is re-read; a broken rewrite keeps the running certificate', async () => {
    const dir = secretsDir();
    secretFile(dir, 'web', { 'tls.crt': ecdsa.certPem, 'tls.key': ecdsa.keyPem }, 'data');
    const config = tempConfig({
      'gw.yaml': gatewayYaml(upstream.port, '', { servers: httpsServer('mode: SIMPLE, credentialName: web') }),
    });
    const proxy = await startProxy(['-c', config, '--secrets-dir', dir]);
    try {
      assert.equal((await handshake(proxy.port)).fingerprint, fingerprint(ecdsa.certPem));
      // Only the certificate: the reload is rejected with the field's position, the old pair serves on.
      secretFile(dir, 'web', { 'tls.crt': rotated.certPem }, 'data');
      await proxy.waitForLog('reload rejected (changed:', 10_000);
      assert.match(
        proxy.stderr(),
        /gw\.yaml:\d+:\d+ {2}Gateway istio-system\/edge {2}spec\.servers\[0\]\.tls\.credentialName: secret \\"web\\" .* has no tls\.key/,
      );
      assert.equal((await handshake(proxy.port)).fingerprint, fingerprint(ecdsa.certPem));
      secretFile(dir, 'web', { 'tls.crt': rotated.certPem, 'tls.key': rotated.keyPem }, 'data');
      await proxy.waitForLog('reloaded (changed:', 10_000);
      assert.equal((await handshake(proxy.port)).fingerprint, fingerprint(rotated.certPem));
    } finally {
      await proxy.stop();
    }
  });
});
