// What a route does to a request before it goes upstream: the weighted destination, header
// operations, Envoy's prefix_rewrite / regex_rewrite / host_rewrite, redirects, and the
// consistent-hash key of the destination's DestinationRule.
import { createHash } from 'node:crypto';
import type { HeaderMap } from '../pipeline/headers.ts';
import type { HttpStream } from '../pipeline/stream.ts';
import { hash32 } from './load-balancer.ts';
import type { HeaderOps, Redirect, Route, RouteDestination, RouteMatch } from './route-table.ts';

/** Weighted random choice among the route's destinations (Envoy's weighted_clusters). */
export function pickDestination(destinations: readonly RouteDestination[]): RouteDestination | undefined {
  if (destinations.length <= 1) return destinations[0];
  let total = 0;
  for (const d of destinations) total += d.weight;
  if (total <= 0) return destinations[0];
  let r = Math.random() * total;
  for (const d of destinations) {
    r -= d.weight;
    if (r < 0) return d;
  }
  return destinations[destinations.length - 1];
}

/** Istio's set (overwrite or add), add (append) and remove, on a header map. */
export function applyHeaderOps(headers: HeaderMap, ops: HeaderOps | undefined): void {
  if (!ops) return;
  for (const name of ops.remove) headers.remove(name);
  for (const [k, v] of ops.set) headers.replace(k, v);
  for (const [k, v] of ops.add) headers.add(k, v);
}

/** Request-side: per-destination operations first, then the route's, which win (Envoy's default order). */
export function requestHeaderOps(headers: HeaderMap, route: Route, dest: RouteDestination | undefined): void {
  for (const ops of [dest?.request, route.request]) {
    if (!ops) continue;
    // `:authority`/`host` in set rewrites the authority, as Istio translates it.
    const fixed: HeaderOps = {
      ...ops,
      set: ops.set.map(([k, v]) => [k === 'host' ? ':authority' : k, v] as [string, string]),
    };
    applyHeaderOps(headers, fixed);
  }
}

export function responseHeaderOps(headers: HeaderMap, route: Route, dest: RouteDestination | undefined): void {
  applyHeaderOps(headers, dest?.response);
  applyHeaderOps(headers, route.response);
}

/**
 * Rewrites :path and :authority as Envoy does for Istio's HTTPRewrite: `uri` replaces the matched
 * prefix (the whole path for exact and regex matches, "/" for a route without uri match),
 * `uriRegexRewrite` replaces every regex match in the path (query kept), `authority` replaces the
 * host. The original path goes in x-envoy-original-path.
 */
export function applyRewrite(headers: HeaderMap, route: Route, match: RouteMatch | undefined): void {
  const rw = route.rewrite;
  if (!rw) return;
  const path = headers.get(':path') ?? '/';
  let next = path;
  if (rw.uri !== undefined) {
    const uri = match?.uri;
    let prefixLength: number;
    if (uri && 'prefix' in uri) prefixLength = uri.prefix.length;
    else if (uri && ('exact' in uri || 'regex' in uri)) {
      const q = path.search(/[?#]/);
      prefixLength = q < 0 ? path.length : q;
    } else prefixLength = 1; // Istio matches "no uri" with prefix "/"
    next = rw.uri + path.slice(prefixLength);
  } else if (rw.regex) {
    const q = path.search(/[?#]/);
    const bare = q < 0 ? path : path.slice(0, q);
    next = bare.replace(rw.regex.match, rw.regex.replacement) + (q < 0 ? '' : path.slice(q));
  }
  if (next !== path) {
    if (!headers.has('x-envoy-original-path')) headers.add('x-envoy-original-path', path);
    headers.replace(':path', next);
  }
  if (rw.authority !== undefined) headers.replace(':authority', rw.authority);
}

/** RE2 substitution (\1 … \9) to a JS replacement string ($1 … $9). */
export function re2Replacement(rewrite: string): string {
  return rewrite.replace(/\$/g, '$$$$').replace(/\\(\d)/g, '$$$1');
}

/** The Location of Envoy's redirect action for a request. */
export function redirectLocation(headers: HeaderMap, r: Redirect, listenerPort: number): string {
  const scheme = headers.get(':scheme') ?? 'http';
  const authority = headers.get(':authority') ?? '';
  const path = headers.get(':path') ?? '/';
  const finalScheme = r.scheme ?? scheme;
  const portMatch = /^(.*?)(?::(\d+))?$/.exec(r.authority ?? authority)!;
  let host = portMatch[1]!;
  let port: string | undefined = portMatch[2];
  if (r.authority !== undefined && /:\d+$/.test(r.authority) === false) port = undefined;
  if (r.port !== undefined) port = String(r.port);
  else if (r.derivePort === 'FROM_REQUEST_PORT') port = String(listenerPort);
  else if (r.derivePort === 'FROM_PROTOCOL_DEFAULT' || r.scheme !== undefined) port = undefined;
  if ((finalScheme === 'http' && port === '80') || (finalScheme === 'https' && port === '443')) port = undefined;
  if (host.startsWith('[') === false && host.includes(':')) host = `[${host}]`;
  let finalPath = path;
  if (r.uri !== undefined) {
    const q = path.indexOf('?');
    finalPath = r.uri.includes('?') || q < 0 ? r.uri : r.uri + path.slice(q);
  }
  return `${finalScheme}://${host}${port ? `:${port}` : ''}${finalPath}`;
}

export interface HashPolicy {
  header?: string;
  cookie?: { name: string; path?: string; ttlSeconds?: number };
  sourceIp?: boolean;
  queryParameter?: string;
}

function cookieValue(headers: HeaderMap, name: string): string | undefined {
  for (const line of headers.getAll('cookie'))
    for (const part of line.split(';')) {
      const eq = part.indexOf('=');
      if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
      const v = part.slice(eq + 1).trim();
      return v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v;
    }
  return undefined;
}

/**
 * The consistent-hash key of a request, and the Set-Cookie to add when the cookie was generated
 * (Envoy generates it when absent and a ttl is configured).
 */
export function requestHash(
  policy: HashPolicy | undefined,
  headers: HeaderMap,
  stream: HttpStream,
): { hash?: number; setCookie?: string } {
  if (!policy) return {};
  if (policy.header) {
    const v = headers.getAll(policy.header.toLowerCase());
    return v.length > 0 ? { hash: hash32(v.join(',')) } : {};
  }
  // Envoy hashes the downstream remote address: the trusted client (X-Forwarded-For hops) if any.
  if (policy.sourceIp) return { hash: hash32(stream.info.remoteAddress) };
  if (policy.queryParameter) {
    const path = headers.get(':path') ?? '/';
    const q = path.indexOf('?');
    if (q < 0) return {};
    const v = new URLSearchParams(path.slice(q + 1)).get(policy.queryParameter);
    return v === null ? {} : { hash: hash32(v) };
  }
  if (policy.cookie) {
    const c = policy.cookie;
    const existing = cookieValue(headers, c.name);
    if (existing !== undefined) return { hash: hash32(existing) };
    if (c.ttlSeconds === undefined) return {};
    const value = createHash('sha256')
      .update(`${stream.info.downstreamRemoteAddress}:${stream.info.downstreamRemotePort}:${stream.info.requestId}`)
      .digest('hex')
      .slice(0, 16);
    let setCookie = `${c.name}="${value}"`;
    if (c.ttlSeconds > 0) setCookie += `; Max-Age=${c.ttlSeconds}`;
    if (c.path) setCookie += `; Path=${c.path}`;
    setCookie += '; HttpOnly';
    return { hash: hash32(value), setCookie };
  }
  return {};
}
