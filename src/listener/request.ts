// What the listener makes of a request head, for plain requests and upgrades alike: Envoy's
// request headers (pseudo-headers, hop-by-hop removed, x-forwarded-for/-proto, x-request-id,
// x-envoy-external-address) and the stream's addresses, the trusted client address taken
// `xffNumTrustedHops` from the right of X-Forwarded-For as Envoy's `xff_num_trusted_hops` does
// (Istio gateways run with use_remote_address: true).
import { randomUUID } from 'node:crypto';
import type http from 'node:http';
import type http2 from 'node:http2';
import { isIP } from 'node:net';
import { HeaderMap } from '../pipeline/headers.ts';
import { normalizePath } from '../pipeline/normalize-path.ts';
import { HttpStream, newStreamInfo } from '../pipeline/stream.ts';
import { hopByHopNames, upgradeHopByHopNames } from '../router/hop-by-hop.ts';
import { validAuthority } from './limits.ts';

export interface RequestHeadOptions {
  scheme: 'http' | 'https';
  authority: string;
  h2: boolean;
  connectionId: number;
  /** Envoy's xff_num_trusted_hops (default 0: the peer is the client). */
  xffNumTrustedHops?: number;
  /** A WebSocket upgrade: Upgrade and `Connection: upgrade` are kept. */
  upgrade?: boolean;
  /** Leave out request headers whose names have an underscore (--headers-with-underscores drop). */
  dropUnderscores?: boolean;
}

/**
 * An absolute-form request target (`http://host[:port]/path?q`, RFC 9112 section 3.2.2): its
 * authority, which replaces the Host header for routing, authz and the upstream, and its
 * origin-form path. Undefined for any other form.
 */
export function absoluteForm(target: string): { authority: string; path: string } | undefined {
  const m = /^https?:\/\/([^/?#]*)(.*)$/i.exec(target);
  if (!m) return undefined;
  const rest = m[2]!;
  return { authority: m[1]!, path: rest.startsWith('/') ? rest : `/${rest}` };
}

/** "::ffff:1.2.3.4" -> "1.2.3.4"; other addresses unchanged. */
function unmapped(ip: string): string {
  const m = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
  return m ? m[1]! : ip;
}

/**
 * Envoy's getLastAddressFromXFF: skip `skip` addresses from the right of X-Forwarded-For and
 * take the next one; undefined when there are not enough addresses or it is not an IP address.
 */
export function addressFromXff(xff: string, skip: number): string | undefined {
  const parts = xff.split(',');
  if (parts.length <= skip) return undefined;
  const candidate = parts[parts.length - 1 - skip]!.trim();
  return isIP(candidate) ? candidate : undefined;
}

/** Envoy's isInternalAddress: RFC 1918, IPv4 loopback, IPv6 unique-local and loopback. */
export function isInternalAddress(address: string): boolean {
  // Asked twice per request, for the same few peers: the last answer is kept.
  if (address === lastAddress) return lastInternal;
  const internal = internalAddress(address);
  lastAddress = address;
  lastInternal = internal;
  return internal;
}
let lastAddress = '';
let lastInternal = false;

function internalAddress(address: string): boolean {
  const ip = unmapped(address);
  if (isIP(ip) === 4) {
    const [a, b] = ip.split('.').map(Number) as [number, number];
    return a === 10 || (a === 192 && b === 168) || (a === 172 && b >= 16 && b <= 31) || ip === '127.0.0.1';
  }
  if (isIP(ip) === 6) return ip === '::1' || /^fd/i.test(ip);
  return false;
}

/** The request's HttpStream, and the result of path normalization (a rejection means 400). */
export function requestStream(
  req: http.IncomingMessage | http2.Http2ServerRequest,
  opts: RequestHeadOptions,
): { stream: HttpStream; normalized: ReturnType<typeof normalizePath> } {
  const socket = req.socket;
  const remote = socket.remoteAddress ?? '';
  const raw = req.rawHeaders;
  const connection: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === 'connection') connection.push(raw[i + 1]!);
  const drop = opts.upgrade ? upgradeHopByHopNames(connection) : hopByHopNames(connection);
  // An absolute-form target's authority wins over Host (RFC 9112 section 3.2.2), as in Envoy.
  let target = req.url ?? '/';
  let authority = opts.authority;
  const absolute = opts.h2 ? undefined : absoluteForm(target);
  if (absolute) {
    target = absolute.path;
    authority = absolute.authority;
  }
  // Normalized before any filter sees it, so that authz and plugins match what the upstream gets.
  let normalized = normalizePath(target);
  if (absolute && !validAuthority(authority)) normalized = { reject: 'invalid authority in the absolute-form target' };
  const pairs: [string, string][] = [
    [':authority', authority],
    [':path', 'path' in normalized ? normalized.path : target],
    [':method', req.method ?? 'GET'],
    [':scheme', opts.scheme],
  ];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name[0] === ':' || name === 'host' || drop.has(name)) continue;
    // h2c upgrade settings never cross (RFC 9113 dropped the h2c upgrade; Upgrade itself is hop-by-hop).
    if (name === 'http2-settings') continue;
    if (opts.dropUnderscores && name.includes('_')) continue;
    // The listener answers `Expect: 100-continue` itself (Envoy's default); the upstream never sees it.
    if (name === 'expect' && raw[i + 1]!.trim().toLowerCase() === '100-continue') continue;
    pairs.push([name, raw[i + 1]!]);
  }
  const headers = new HeaderMap(pairs);
  // Envoy sanitizes an upgrade's Connection to the one token.
  if (opts.upgrade) headers.replace('connection', 'upgrade');
  // As Envoy at the edge (use_remote_address): the trusted client address is the peer, or taken
  // N hops from the right of the incoming X-Forwarded-For; the peer is appended either way.
  const incoming = headers.getAll('x-forwarded-for').join(',');
  const hops = opts.xffNumTrustedHops ?? 0;
  const remoteAddress = (hops > 0 && incoming ? addressFromXff(incoming, hops - 1) : undefined) ?? remote;
  // Envoy's header sanitizing: an external client's x-envoy-* headers are dropped, and no client
  // may supply x-envoy-original-path (the router sets it on rewrites; CVE-2023-27487).
  headers.remove('x-envoy-original-path');
  if (!isInternalAddress(remoteAddress)) headers.setPairs(headers.pairs.filter(([k]) => !k.startsWith('x-envoy-')));
  headers.replace('x-forwarded-for', incoming ? `${incoming}, ${remote}` : remote);
  headers.replace('x-forwarded-proto', opts.scheme);
  // An external client (not one internal address alone): its address for the upstream.
  if (incoming || !isInternalAddress(remoteAddress))
    headers.replace('x-envoy-external-address', unmapped(remoteAddress));
  let requestId = headers.get('x-request-id');
  if (!requestId) {
    requestId = randomUUID();
    headers.add('x-request-id', requestId);
  }
  const stream = new HttpStream(
    headers,
    newStreamInfo({
      requestId,
      protocol: opts.h2 ? 'HTTP/2' : `HTTP/${req.httpVersion}`,
      downstreamRemoteAddress: remote,
      downstreamRemotePort: socket.remotePort ?? 0,
      remoteAddress,
      downstreamLocalAddress: socket.localAddress ?? '',
      downstreamLocalPort: socket.localPort ?? 0,
      connectionId: opts.connectionId,
    }),
  );
  return { stream, normalized };
}
