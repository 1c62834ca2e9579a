// Routes: first match wins, in file order, as Istio. A route sends to a cluster or answers directly.
import type { HeaderMap } from '../pipeline/headers.ts';
import type { Cluster } from './cluster.ts';

export type StringMatch = { exact: string } | { prefix: string } | { regex: RegExp };

export interface RouteMatch {
  uri?: StringMatch;
  method?: StringMatch;
  authority?: StringMatch;
  headers?: [string, StringMatch][];
  port?: number;
}

export interface Route {
  name: string;
  /** Any one of these matches (empty: matches everything). */
  matches: RouteMatch[];
  cluster?: Cluster;
  directResponse?: { status: number; body: string };
  /** Request hosts this route serves (VirtualService hosts); empty or '*' means any. */
  hosts: string[];
}

export function matchString(m: StringMatch, value: string | undefined): boolean {
  if (value === undefined) return false;
  if ('exact' in m) return value === m.exact;
  if ('prefix' in m) return value.startsWith(m.prefix);
  return m.regex.test(value);
}

function hostMatches(patterns: string[], authority: string): boolean {
  if (patterns.length === 0) return true;
  const host = authority.replace(/:\d+$/, '').toLowerCase();
  for (const p of patterns) {
    if (p === '*') return true;
    if (p.startsWith('*.') ? host.endsWith(p.slice(1)) : host === p.toLowerCase()) return true;
  }
  return false;
}

export class RouteTable {
  readonly routes: readonly Route[];

  constructor(routes: Route[]) {
    this.routes = routes;
  }

  find(headers: HeaderMap, port: number): Route | undefined {
    const path = headers.get(':path') ?? '/';
    const uri = path.split('?')[0];
    const authority = headers.get(':authority') ?? '';
    for (const route of this.routes) {
      if (!hostMatches(route.hosts, authority)) continue;
      if (route.matches.length === 0) return route;
      for (const m of route.matches) {
        if (m.uri && !matchString(m.uri, uri)) continue;
        if (m.method && !matchString(m.method, headers.get(':method'))) continue;
        if (m.authority && !matchString(m.authority, authority)) continue;
        if (m.port !== undefined && m.port !== port) continue;
        if (m.headers && !m.headers.every(([k, sm]) => matchString(sm, headers.get(k)))) continue;
        return route;
      }
    }
    return undefined;
  }
}
