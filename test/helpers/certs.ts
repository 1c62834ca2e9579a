// A throwaway PKI for TLS tests, made with the openssl CLI: a CA, a server certificate for
// localhost / 127.0.0.1, and a client certificate, all signed by the CA.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestPki {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** File contents, for clients. */
  ca: Buffer;
  clientCertPem: Buffer;
  clientKeyPem: Buffer;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

function leaf(dir: string, name: string, subject: string, ext: string, rsa = false): void {
  openssl(dir, [
    'req',
    '-newkey',
    ...(rsa ? ['rsa:2048'] : ['ec', '-pkeyopt', 'ec_paramgen_curve:P-256']),
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
    '-subj',
    subject,
  ]);
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(dir, [
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '2',
    '-out',
    `${name}.crt`,
    '-extfile',
    `${name}.ext`,
  ]);
}

export function makePki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'wasmgate-pki-'));
  openssl(dir, [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '2',
    '-subj',
    '/CN=wasmgate test CA',
  ]);
  leaf(dir, 'server', '/CN=localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  leaf(dir, 'client', '/CN=client', 'extendedKeyUsage=clientAuth\n');
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    clientCert: join(dir, 'client.crt'),
    clientKey: join(dir, 'client.key'),
    ca: readFileSync(join(dir, 'ca.crt')),
    clientCertPem: readFileSync(join(dir, 'client.crt')),
    clientKeyPem: readFileSync(join(dir, 'client.key')),
  };
}

/**
 * One more server certificate signed by the PKI's CA: `name`.crt and `name`.key in its folder,
 * for `hosts` (DNS names; 127.0.0.1 is always added), an ECDSA P-256 key unless `rsa`.
 */
export function leafCert(
  pki: TestPki,
  name: string,
  hosts: string[],
  opts: { rsa?: boolean; cn?: string } = {},
): { cert: string; key: string; certPem: Buffer; keyPem: Buffer } {
  const san = [...hosts.map((h) => `DNS:${h}`), 'IP:127.0.0.1'].join(',');
  leaf(
    pki.dir,
    name,
    `/CN=${opts.cn ?? hosts[0] ?? name}`,
    `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`,
    opts.rsa,
  );
  const cert = join(pki.dir, `${name}.crt`);
  const key = join(pki.dir, `${name}.key`);
  return { cert, key, certPem: readFileSync(cert), keyPem: readFileSync(key) };
}
