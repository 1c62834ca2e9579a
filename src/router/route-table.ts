// Routes: first match wins, in file order, as Istio. A route sends to weighted clusters, redirects,
// or answers directly. Matching follows Envoy's route matcher as Istio configures it: uri on the
// path without query (ignoreUriCase for exact and prefix), regexes as full matches (RE2 translated),
// headers joined with "," when repeated, `{}` as presence, withoutHeaders inverted, query
// parameters URL-decoded (first value).
import type { HeaderMap } from '../pipeline/headers.ts';
import type { Cluster } from './cluster.ts';

export type StringMatch = { exact: string } | { prefix: string } | { regex: RegExp } | { present: true };

export interface RouteMatch {
  uri?: StringMatch;
  scheme?: StringMatch;
  method?: StringMatch;
  authority?: StringMatch;
  headers?: [string, StringMatch][];
  withoutHeaders?: [string, StringMatch][];
  queryParams?: [string, StringMatch][];
  port?: number;
  ignoreUriCase?: boolean;
}

/** Istio's HeaderOperations, names lower-cased. */
export interface HeaderOps {
  set: [string, string][];
  add: [string, string][];
  remove: string[];
}

export interface RouteDestination {
  cluster: Cluster;
  weight: number;
  request?: HeaderOps;
  response?: HeaderOps;
}

export interface RetryPolicy {
  /** Retries after the first attempt. */
  attempts: number;
  perTryTimeoutMs?: number;
  retryOn: Set<string>;
  /** retriable-status-codes. */
  statusCodes: Set<number>;
  /** Envoy's base interval (25 ms default); the cap is 10x. */
  backoffMs: number;
}

export interface FaultPolicy {
  delay?: { ms: number; percent: number };
  abort?: { status: number; percent: number };
}

export interface Redirect {
  uri?: string;
  authority?: string;
  port?: number;
  /** FROM_REQUEST_PORT: the listener port. */
  derivePort?: 'FROM_PROTOCOL_DEFAULT' | 'FROM_REQUEST_PORT';
  scheme?: string;
  code: number;
}

export interface Rewrite {
  uri?: string;
  authority?: string;
  regex?: { match: RegExp; replacement: string };
}

export interface Mirror {
  cluster: Cluster;
  /** 0 to 100. */
  percent: number;
}

export interface Route {
  name: string;
  /** Any one of these matches (empty: matches everything). */
  matches: RouteMatch[];
  /** Request hosts this route serves (VirtualService hosts); empty or '*' means any. */
  hosts: string[];
  destinations?: RouteDestination[];
  directResponse?: { status: number; body: string | Uint8Array };
  redirect?: Redirect;
  rewrite?: Rewrite;
  request?: HeaderOps;
  response?: HeaderOps;
  /** Whole-request upstream timeout (0 or absent: none, Istio's default). */
  timeoutMs?: number;
  retry?: RetryPolicy;
  fault?: FaultPolicy;
  mirrors?: Mirror[];
}

function stripQuery(path: string): string {
  const q = path.search(/[?#]/);
  return q < 0 ? path : path.slice(0, q);
}

export function matchString(m: StringMatch, value: string | undefined, ignoreCase = false): boolean {
  if (value === undefined) return false;
  if ('present' in m) return true;
  if ('exact' in m) return ignoreCase ? value.toLowerCase() === m.exact.toLowerCase() : value === m.exact;
  if ('prefix' in m)
    return ignoreCase ? value.toLowerCase().startsWith(m.prefix.toLowerCase()) : value.startsWith(m.prefix);
  return m.regex.test(value);
}

function headerValue(headers: HeaderMap, name: string): string | undefined {
  const all = headers.getAll(name);
  return all.length === 0 ? undefined : all.join(',');
}

function queryParams(path: string): Map<string, string> {
  const out = new Map<string, string>();
  const q = path.indexOf('?');
  if (q < 0) return out;
  const hash = path.indexOf('#', q);
  for (const part of path.slice(q + 1, hash < 0 ? undefined : hash).split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const decode = (s: string) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    };
    const key = decode(eq < 0 ? part : part.slice(0, eq));
    if (!out.has(key)) out.set(key, decode(eq < 0 ? '' : part.slice(eq + 1)));
  }
  return out;
}

/** True when the request matches `m` (a route's match entry). */
export function matches(m: RouteMatch, headers: HeaderMap, port: number): boolean {
  const path = headers.get(':path') ?? '/';
  if (m.uri && !matchString(m.uri, stripQuery(path), m.ignoreUriCase === true && !('regex' in m.uri))) return false;
  if (m.scheme && !matchString(m.scheme, headers.get(':scheme'))) return false;
  if (m.method && !matchString(m.method, headers.get(':method'))) return false;
  if (m.authority && !matchString(m.authority, headers.get(':authority'))) return false;
  if (m.port !== undefined && m.port !== port) return false;
  if (m.headers && !m.headers.every(([k, sm]) => matchString(sm, headerValue(headers, k)))) return false;
  if (m.withoutHeaders?.some(([k, sm]) => matchString(sm, headerValue(headers, k)))) return false;
  if (m.queryParams) {
    const params = queryParams(path);
    if (!m.queryParams.every(([k, sm]) => matchString(sm, params.get(k)))) return false;
  }
  return true;
}

function hostMatches(patterns: string[], authority: string): boolean {
  if (patterns.length === 0) return true;
  const host = authority.replace(/:\d+$/, '').toLowerCase();
  for (const p of patterns) {
    if (p === '*') return true;
    if (p.startsWith('*.') ? host.endsWith(p.slice(1).toLowerCase()) : host === p.toLowerCase()) return true;
  }
  return false;
}

/** The match entry of `route` the request satisfies (undefined for a route without matches). */
export function matchedEntry(route: Route, headers: HeaderMap, port: number): RouteMatch | undefined {
  return route.matches.find((m) => matches(m, headers, port));
}

export class RouteTable {
  readonly routes: readonly Route[];
  /** The Gateway servers' hosts on this listener ("ns/" prefixes dropped); empty: any host. */
  readonly #listenerHosts: string[];

  constructor(routes: Route[], listenerHosts: readonly string[] = []) {
    this.routes = routes;
    const hosts = listenerHosts.map((h) => (h.includes('/') ? h.slice(h.indexOf('/') + 1) : h));
    this.#listenerHosts = hosts.includes('*') ? [] : hosts;
  }

  find(headers: HeaderMap, port: number): Route | undefined {
    const authority = headers.get(':authority') ?? '';
    // A Host no Gateway server on this port serves has no virtual host: 404 NR, as in Istio.
    if (!hostMatches(this.#listenerHosts, authority)) return undefined;
    for (const route of this.routes) {
      if (!hostMatches(route.hosts, authority)) continue;
      if (route.matches.length === 0) return route;
      if (matchedEntry(route, headers, port)) return route;
    }
    return undefined;
  }
}
