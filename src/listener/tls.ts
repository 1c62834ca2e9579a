// Downstream TLS from Gateway servers: SIMPLE (certificate and key files, or a credentialName read
// from --secrets-dir at load: src/config/credentials.ts) and MUTUAL (plus a CA that client
// certificates must chain to), several certificates on one port chosen by SNI against
// each server's hosts, as Envoy's filter-chain match does. ALPN offers h2 and http/1.1.
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import tls from 'node:tls';
import { serverCredential } from '../config/credentials.ts';
import type { GatewayServer, TLSProtocolVersion } from '../config/types.ts';

export interface ListenerTls {
  /** Options for http2.createSecureServer (cert, key, ca, SNICallback, ALPN, versions). */
  options: tls.TlsOptions;
  mutual: boolean;
}

export class TlsConfigError extends Error {}

const VERSIONS: Record<TLSProtocolVersion, tls.SecureVersion | undefined> = {
  TLS_AUTO: undefined,
  TLSV1_0: 'TLSv1',
  TLSV1_1: 'TLSv1.1',
  TLSV1_2: 'TLSv1.2',
  TLSV1_3: 'TLSv1.3',
};

function read(dir: string, port: number, field: string, path: string | undefined): Buffer {
  if (!path) throw new TlsConfigError(`Gateway server on port ${port}: tls.${field} is required for this TLS mode`);
  const file = isAbsolute(path) ? path : resolve(dir, path);
  try {
    return readFileSync(file);
  } catch (err) {
    throw new TlsConfigError(
      `Gateway server on port ${port}: tls.${field}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
}

function hostMatches(pattern: string, servername: string): boolean {
  const host = pattern.includes('/') ? pattern.slice(pattern.indexOf('/') + 1) : pattern;
  if (host === '*') return true;
  if (host.startsWith('*.')) return servername.endsWith(host.slice(1));
  return servername === host.toLowerCase();
}

/**
 * TLS settings for the servers on one port, or undefined when none terminates TLS. Throws
 * TlsConfigError (naming port and field) for unreadable files or unsupported modes.
 */
export function listenerTls(
  port: number,
  servers: readonly { server: GatewayServer; dir: string }[],
): ListenerTls | undefined {
  const terminating = servers.filter(({ server }) => {
    const mode = server.tls?.mode;
    return mode !== undefined && mode !== 'PASSTHROUGH' && mode !== 'AUTO_PASSTHROUGH';
  });
  if (terminating.length === 0) return undefined;
  const contexts: { hosts: string[]; context: tls.SecureContext; options: tls.SecureContextOptions }[] = [];
  let mutual = false;
  for (const { server, dir } of terminating) {
    const t = server.tls!;
    if (t.mode === 'ISTIO_MUTUAL')
      throw new TlsConfigError(
        `Gateway server on port ${port}: tls.mode ISTIO_MUTUAL needs Istio's mesh certificates; use SIMPLE or MUTUAL with files`,
      );
    // A credentialName (credentialNames) wins over file paths, as in Istio: read at load from --secrets-dir.
    const named = Boolean(t.credentialName) || (t.credentialNames?.length ?? 0) > 0;
    const secret = named ? serverCredential(t) : undefined;
    if (named && !secret)
      throw new TlsConfigError(
        `Gateway server on port ${port}: tls.credentialName: the secret was not read (the configuration was loaded without --secrets-dir)`,
      );
    const options: tls.SecureContextOptions = {
      // Two pairs (credentialNames: RSA and ECDSA): OpenSSL serves the one the client's signature
      // algorithms accept.
      cert: secret ? secret.cert : read(dir, port, 'serverCertificate', t.serverCertificate),
      key: secret ? secret.key : read(dir, port, 'privateKey', t.privateKey),
      minVersion: VERSIONS[t.minProtocolVersion ?? 'TLS_AUTO'] ?? 'TLSv1.2',
      maxVersion: VERSIONS[t.maxProtocolVersion ?? 'TLS_AUTO'],
    };
    if (t.cipherSuites && t.cipherSuites.length > 0) options.ciphers = t.cipherSuites.join(':');
    if (t.mode === 'MUTUAL' || t.mode === 'OPTIONAL_MUTUAL') {
      options.ca = secret ? secret.ca : read(dir, port, 'caCertificates', t.caCertificates);
      if (secret?.crl) options.crl = secret.crl;
      mutual ||= t.mode === 'MUTUAL';
    }
    try {
      contexts.push({ hosts: server.hosts, context: tls.createSecureContext(options), options });
    } catch (err) {
      throw new TlsConfigError(`Gateway server on port ${port}: tls: ${(err as Error).message}`);
    }
  }
  const first = contexts[0]!;
  return {
    mutual,
    options: {
      ...first.options,
      requestCert: terminating.some(
        ({ server }) => server.tls?.mode === 'MUTUAL' || server.tls?.mode === 'OPTIONAL_MUTUAL',
      ),
      rejectUnauthorized: mutual,
      ALPNProtocols: ['h2', 'http/1.1'],
      SNICallback:
        contexts.length > 1
          ? (servername, cb) => {
              const name = servername.toLowerCase();
              const hit = contexts.find((c) => c.hosts.some((h) => hostMatches(h, name)));
              cb(null, (hit ?? first).context);
            }
          : undefined,
    },
  };
}

/** Whether any plain-HTTP server on the port asks for a redirect to HTTPS (tls.httpsRedirect). */
export function httpsRedirect(servers: readonly { server: GatewayServer }[]): boolean {
  return servers.some(({ server }) => server.tls?.httpsRedirect === true && !server.tls.mode);
}
