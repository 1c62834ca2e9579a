// Where a JWTRule looks for tokens, as Envoy's jwt_authn extractor: its headers (with the value
// prefix found anywhere in the value, the token starting at the next base64url character), its
// query parameters (first value, percent-decoded) and its cookies; with none configured, the
// `Authorization: Bearer` header and the `access_token` parameter.
import type { JWTRule } from '../../config/types.ts';
import type { HeaderMap } from '../../pipeline/headers.ts';

export type TokenLocation =
  | { kind: 'header'; name: string }
  | { kind: 'param'; name: string }
  | { kind: 'cookie'; name: string };

export interface ExtractedToken {
  token: string;
  location: TokenLocation;
}

interface HeaderSpec {
  name: string;
  prefix: string;
}

const BEARER = 'Bearer ';
const ACCESS_TOKEN = 'access_token';
const B64URL_OR_DOT = /[A-Za-z0-9_.-]/;

/** The token locations of one rule, in Envoy's extraction order. */
export class TokenExtractor {
  readonly #headers: HeaderSpec[];
  readonly #params: string[];
  readonly #cookies: string[];

  constructor(rule: Pick<JWTRule, 'fromHeaders' | 'fromParams' | 'fromCookies'>) {
    const headers = new Map<string, HeaderSpec>();
    for (const h of rule.fromHeaders) {
      const name = h.name.toLowerCase();
      const prefix = h.prefix ?? '';
      headers.set(name + prefix, { name, prefix });
    }
    const params = new Set(rule.fromParams);
    const cookies = new Set(rule.fromCookies);
    if (rule.fromHeaders.length === 0 && rule.fromParams.length === 0 && rule.fromCookies.length === 0) {
      headers.set(`authorization${BEARER}`, { name: 'authorization', prefix: BEARER });
      params.add(ACCESS_TOKEN);
    }
    // Envoy keeps locations in ordered maps keyed by name (+ prefix for headers).
    this.#headers = [...headers.entries()].sort(([a], [b]) => cmp(a, b)).map(([, v]) => v);
    this.#params = [...params].sort(cmp);
    this.#cookies = [...cookies].sort(cmp);
  }

  /** Header names this rule reads (for tests and diagnostics). */
  get headerNames(): string[] {
    return this.#headers.map((h) => h.name);
  }

  /** Every token present, headers first, then parameters, then cookies. */
  extract(headers: HeaderMap): ExtractedToken[] {
    const out: ExtractedToken[] = [];
    for (const spec of this.#headers) {
      for (const value of headers.getAll(spec.name)) {
        let token = value;
        if (spec.prefix !== '') {
          const pos = value.indexOf(spec.prefix);
          if (pos < 0) continue;
          token = tokenAfter(value, pos + spec.prefix.length);
        }
        out.push({ token, location: { kind: 'header', name: spec.name } });
      }
    }
    if (this.#params.length > 0) {
      const path = headers.get(':path');
      if (path !== undefined) {
        const query = parseQuery(path);
        for (const name of this.#params) {
          const value = query.get(name);
          if (value !== undefined) out.push({ token: value, location: { kind: 'param', name } });
        }
      }
    }
    if (this.#cookies.length > 0) {
      const cookies = parseCookies(headers, new Set(this.#cookies));
      for (const name of this.#cookies) {
        const value = cookies.get(name);
        if (value !== undefined) out.push({ token: value, location: { kind: 'cookie', name } });
      }
    }
    return out;
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** From the first base64url (or dot) character at or after `from` to the end; the value if none. */
function tokenAfter(value: string, from: number): string {
  for (let i = from; i < value.length; i++) if (B64URL_OR_DOT.test(value[i]!)) return value.slice(i);
  return value;
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** The first value of each query parameter, percent-decoded. */
export function parseQuery(path: string): Map<string, string> {
  const out = new Map<string, string>();
  const q = path.indexOf('?');
  if (q < 0) return out;
  let query = path.slice(q + 1);
  const hash = query.indexOf('#');
  if (hash >= 0) query = query.slice(0, hash);
  for (const part of query.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const key = decode(eq < 0 ? part : part.slice(0, eq));
    const value = eq < 0 ? '' : decode(part.slice(eq + 1));
    if (!out.has(key)) out.set(key, value);
  }
  return out;
}

/** `path` without every occurrence of parameter `name` (Envoy removes a forwarded-off token). */
export function removeQueryParam(path: string, name: string): string {
  const q = path.indexOf('?');
  if (q < 0) return path;
  let query = path.slice(q + 1);
  let fragment = '';
  const hash = query.indexOf('#');
  if (hash >= 0) {
    fragment = query.slice(hash);
    query = query.slice(0, hash);
  }
  const kept = query.split('&').filter((part) => {
    if (part === '') return false;
    const eq = part.indexOf('=');
    return decode(eq < 0 ? part : part.slice(0, eq)) !== name;
  });
  return `${path.slice(0, q)}${kept.length > 0 ? `?${kept.join('&')}` : ''}${fragment}`;
}

/** Envoy's Http::Utility::parseCookies: the first value of each wanted cookie, quotes removed. */
function parseCookies(headers: HeaderMap, wanted: Set<string>): Map<string, string> {
  const out = new Map<string, string>();
  for (const header of headers.getAll('cookie')) {
    for (const raw of header.split(';')) {
      const part = raw.trim();
      if (part === '') continue;
      const eq = part.indexOf('=');
      if (eq < 0) continue;
      const key = part.slice(0, eq);
      if (!wanted.has(key) || out.has(key)) continue;
      let value = part.slice(eq + 1);
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
      out.set(key, value);
    }
  }
  return out;
}
