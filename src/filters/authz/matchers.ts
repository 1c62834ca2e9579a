// AuthorizationPolicy rules compiled into predicates once, at filter construction, with the matching
// semantics Istio gives them when it translates a rule into Envoy RBAC (istio/istio
// pilot/pkg/security/authz/model and matcher): no regular expression or list is built per request.
//
// - string values: "*" is any non-empty value, "x*" a prefix, "*x" a suffix, anything else exact;
// - methods and request.headers[...] are header matches: "*" means the header is present;
// - hosts match :authority case-insensitively and whole (port included, as Istio);
// - paths match the path without its query; {*} and {**} are Envoy URI templates;
// - peer identities (principals, namespaces, serviceAccounts, trustDomains and their source.* keys)
//   come from mTLS: wasmgate has none, so positive forms never match and not-forms always match;
// - requestPrincipals match the JWT's iss and sub separately, as Istio does;
// - claims are strings or lists of strings (any element); "scope" and "permission" (and any
//   configured space-delimited claim) are split on spaces first, as Istio's JWT filter does.
import { BlockList, isIPv4 } from 'node:net';
import { CLAIM_KEY, claimPath, HEADER_KEY, hasPathTemplate, parseCidr } from '../../config/security.ts';
import type { AuthzCondition, AuthzOperation, AuthzRule, AuthzSource } from '../../config/types.ts';
import type { HeaderMap } from '../../pipeline/headers.ts';
import type { RequestAuth } from '../../pipeline/stream.ts';

/** What a rule is matched against, gathered once per request. */
export interface AuthzRequest {
  method: string | undefined;
  /** The path without its query string. */
  path: string;
  authority: string | undefined;
  headers: HeaderMap;
  /** The direct peer (source.ip, ipBlocks), IPv4-mapped IPv6 given as IPv4. */
  peerIp: string;
  /**
   * The original client (remote.ip, remoteIpBlocks): the peer, or the address --xff-num-trusted-hops
   * picks from X-Forwarded-For (StreamInfo.remoteAddress).
   */
  remoteIp: string;
  /** The local address and port the request arrived on (destination.ip, destination.port, ports). */
  localIp: string;
  localPort: number;
  auth: RequestAuth | undefined;
  /** The TLS server name; "" for plain HTTP. */
  sni: string;
}

export type Predicate = (req: AuthzRequest) => boolean;
type StringTest = (s: string) => boolean;

const always: Predicate = () => true;
const never: Predicate = () => false;

/** "::ffff:1.2.3.4" -> "1.2.3.4"; other addresses unchanged. */
export function unmapIp(ip: string): string {
  const m = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
  return m && isIPv4(m[1]!) ? m[1]! : ip;
}

/** Istio's StringMatcher(v): "*" any non-empty, "x*" prefix, "*x" suffix, else exact. */
export function stringTest(v: string, ignoreCase = false): StringTest {
  const norm = ignoreCase ? (s: string) => s.toLowerCase() : (s: string) => s;
  if (v === '*') return (s) => s.length > 0;
  if (v.startsWith('*')) {
    const suffix = norm(v.slice(1));
    return (s) => norm(s).endsWith(suffix);
  }
  if (v.endsWith('*')) {
    const prefix = norm(v.slice(0, -1));
    return (s) => norm(s).startsWith(prefix);
  }
  const exact = norm(v);
  return (s) => norm(s) === exact;
}

/** Istio's HeaderMatcher / HostMatcher: as stringTest, but "*" means present (even if empty). */
function headerTest(v: string, ignoreCase: boolean): (value: string | undefined) => boolean {
  if (v === '*') return (value) => value !== undefined;
  const test = stringTest(v, ignoreCase);
  return (value) => value !== undefined && test(value);
}

/** A header's value as Envoy matches it: all its values joined with ",". */
function headerValue(headers: HeaderMap, name: string): string | undefined {
  const all = headers.getAll(name);
  return all.length === 0 ? undefined : all.join(',');
}

const anyOf =
  (tests: StringTest[]): StringTest =>
  (s) =>
    tests.some((t) => t(s));

/** values OR'ed, notValues OR'ed and negated, the two AND'ed; undefined when neither is set. */
function field(
  values: readonly string[] | undefined,
  notValues: readonly string[] | undefined,
  compile: (vs: readonly string[]) => Predicate,
): Predicate | undefined {
  const pos = values && values.length > 0 ? compile(values) : undefined;
  const neg = notValues && notValues.length > 0 ? compile(notValues) : undefined;
  if (pos && neg) return (r) => pos(r) && !neg(r);
  if (pos) return pos;
  if (neg) return (r) => !neg(r);
  return undefined;
}

function allOf(preds: (Predicate | undefined)[]): Predicate {
  const ps = preds.filter((p): p is Predicate => p !== undefined);
  if (ps.length === 0) return always;
  if (ps.length === 1) return ps[0]!;
  return (r) => ps.every((p) => p(r));
}

function oneOf(preds: Predicate[]): Predicate {
  if (preds.length === 1) return preds[0]!;
  return (r) => preds.some((p) => p(r));
}

// ---------------------------------------------------------------- the attributes

/** IP addresses and CIDR blocks (validated by the loader) against one address of the request. */
function ipBlocks(get: (r: AuthzRequest) => string): (vs: readonly string[]) => Predicate {
  return (vs) => {
    const list = new BlockList();
    for (const v of vs) {
      const c = parseCidr(v);
      if (!c) continue;
      const mapped = c.family === 'ipv6' && c.prefix >= 96 ? unmapIp(c.address) : c.address;
      if (mapped !== c.address) list.addSubnet(mapped, c.prefix - 96, 'ipv4');
      else list.addSubnet(c.address, c.prefix, c.family);
    }
    return (r) => {
      const ip = get(r);
      if (isIPv4(ip)) return list.check(ip, 'ipv4');
      try {
        return list.check(ip, 'ipv6');
      } catch {
        return false;
      }
    };
  };
}

/** A peer (mTLS) identity: a gateway without mTLS has none, so nothing matches it. */
const peerIdentity = (): Predicate => never;

/** Istio's requestPrincipalGenerator: the value split at its last "/" into iss and sub matchers. */
function requestPrincipalTest(value: string): (iss: string, sub: string) => boolean {
  const any: StringTest = (s) => s.length > 0;
  const exact =
    (x: string): StringTest =>
    (s) =>
      s === x;
  const idx = value.lastIndexOf('/');
  const found = idx >= 0;
  const iss = found ? value.slice(0, idx) : value;
  const sub = found ? value.slice(idx + 1) : '';
  let mi: StringTest;
  let ms: StringTest;
  if (value === '*') {
    mi = any;
    ms = any;
  } else if (value.startsWith('*')) {
    if (found) {
      mi =
        iss === '*'
          ? any
          : (
              (suffix) => (s: string) =>
                s.endsWith(suffix)
            )(iss.slice(1));
      ms = exact(sub);
    } else {
      mi = any;
      ms = (
        (suffix) => (s: string) =>
          s.endsWith(suffix)
      )(value.slice(1));
    }
  } else if (value.endsWith('*')) {
    if (found) {
      mi = exact(iss);
      ms =
        sub === '*'
          ? any
          : (
              (prefix) => (s: string) =>
                s.startsWith(prefix)
            )(sub.slice(0, -1));
    } else {
      mi = (
        (prefix) => (s: string) =>
          s.startsWith(prefix)
      )(value.slice(0, -1));
      ms = any;
    }
  } else {
    mi = exact(iss);
    ms = exact(sub);
  }
  return (i, s) => mi(i) && ms(s);
}

function requestPrincipals(vs: readonly string[]): Predicate {
  const tests = vs.map(requestPrincipalTest);
  return (r) => {
    const a = r.auth;
    if (!a) return false;
    return tests.some((t) => t(a.issuer, a.subject));
  };
}

const SPACE_DELIMITED = ['scope', 'permission'];

/** A claim (by path) as Envoy's JWT metadata holds it: the strings it matches against. */
function claimStrings(auth: RequestAuth, path: readonly string[], split: ReadonlySet<string>): string[] | undefined {
  let v: unknown = auth.claims;
  for (const key of path) {
    if (typeof v !== 'object' || v === null || Array.isArray(v) || !Object.hasOwn(v, key)) return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  if (typeof v === 'string') return path.length === 1 && split.has(path[0]!) ? v.split(' ').filter(Boolean) : [v];
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
  return undefined;
}

function claim(path: readonly string[], split: ReadonlySet<string>, fallback?: (a: RequestAuth) => string[]) {
  return (vs: readonly string[]): Predicate => {
    const test = anyOf(vs.map((v) => stringTest(v)));
    return (r) => {
      if (!r.auth) return false;
      const values = claimStrings(r.auth, path, split) ?? fallback?.(r.auth);
      return values?.some(test) ?? false;
    };
  };
}

function strings(get: (r: AuthzRequest) => string, ignoreCase = false) {
  return (vs: readonly string[]): Predicate => {
    const test = anyOf(vs.map((v) => stringTest(v, ignoreCase)));
    return (r) => test(get(r));
  };
}

function headers(get: (r: AuthzRequest) => string | undefined, ignoreCase = false) {
  return (vs: readonly string[]): Predicate => {
    const tests = vs.map((v) => headerTest(v, ignoreCase));
    return (r) => {
      const value = get(r);
      return tests.some((t) => t(value));
    };
  };
}

function ports(get: (r: AuthzRequest) => number) {
  return (vs: readonly string[]): Predicate => {
    const set = new Set(vs.map(Number));
    return (r) => set.has(get(r));
  };
}

/** An Envoy URI template ({*} one segment, {**} any number) as an anchored regex, built once. */
export function pathTemplate(template: string): RegExp {
  const pchar = "[a-zA-Z0-9\\-._~%!$&'()+,;:@]";
  const segments = template
    .slice(1)
    .split('/')
    .map((s) => {
      if (s === '{*}') return `${pchar}+`;
      if (s === '{**}') return `(?:${pchar}|/)*`;
      return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    });
  return new RegExp(`^/${segments.join('/')}$`);
}

function paths(vs: readonly string[]): Predicate {
  const tests: StringTest[] = vs.map((v) => {
    if (hasPathTemplate(v)) {
      const re = pathTemplate(v);
      return (s) => re.test(s);
    }
    return stringTest(v);
  });
  return (r) => tests.some((t) => t(r.path));
}

// ---------------------------------------------------------------- sources, operations, conditions

const peerIp = (r: AuthzRequest) => r.peerIp;
const remoteIp = (r: AuthzRequest) => r.remoteIp;

function source(s: AuthzSource): Predicate {
  return allOf([
    field(s.ipBlocks, s.notIpBlocks, ipBlocks(peerIp)),
    field(s.remoteIpBlocks, s.notRemoteIpBlocks, ipBlocks(remoteIp)),
    field(s.namespaces, s.notNamespaces, peerIdentity),
    field(s.trustDomains, s.notTrustDomains, peerIdentity),
    field(s.serviceAccounts, s.notServiceAccounts, peerIdentity),
    field(s.requestPrincipals, s.notRequestPrincipals, requestPrincipals),
    field(s.principals, s.notPrincipals, peerIdentity),
  ]);
}

function operation(o: AuthzOperation): Predicate {
  return allOf([
    field(
      o.hosts,
      o.notHosts,
      headers((r) => r.authority, true),
    ),
    field(
      o.methods,
      o.notMethods,
      headers((r) => r.method),
    ),
    field(o.paths, o.notPaths, paths),
    field(
      o.ports,
      o.notPorts,
      ports((r) => r.localPort),
    ),
  ]);
}

function condition(c: AuthzCondition, split: ReadonlySet<string>): Predicate | undefined {
  const key = c.key;
  const compile = ((): ((vs: readonly string[]) => Predicate) => {
    const header = HEADER_KEY.exec(key);
    if (header) {
      const name = header[1]!.toLowerCase();
      return headers((r) => headerValue(r.headers, name));
    }
    if (CLAIM_KEY.test(key)) return claim(claimPath(key)!, split);
    switch (key) {
      case 'source.ip':
        return ipBlocks(peerIp);
      case 'remote.ip':
        return ipBlocks(remoteIp);
      case 'destination.ip':
        return ipBlocks((r) => r.localIp);
      case 'destination.port':
        return ports((r) => r.localPort);
      case 'connection.sni':
        return strings((r) => r.sni);
      case 'request.auth.principal':
        return requestPrincipals;
      case 'request.auth.audiences':
        return claim(['aud'], split, (a) => a.audiences);
      case 'request.auth.presenter':
        return claim(['azp'], split, (a) => (a.presenter === '' ? [] : [a.presenter]));
      case 'source.namespace':
      case 'source.principal':
      case 'source.serviceAccount':
      case 'source.trustDomain':
        return peerIdentity;
      default:
        // The loader rejects every other key; a policy built in code with one matches nothing.
        return () => never;
    }
  })();
  return field(c.values, c.notValues, compile);
}

export interface CompileOptions {
  /** Top-level claims split on spaces, besides "scope" and "permission". */
  spaceDelimitedClaims?: readonly string[];
}

/** A rule: all of from (any source), to (any operation) and when (every condition). */
export function compileRule(rule: AuthzRule, options: CompileOptions = {}): Predicate {
  const split = new Set([...SPACE_DELIMITED, ...(options.spaceDelimitedClaims ?? [])]);
  return allOf([
    rule.from.length > 0 ? oneOf(rule.from.map((f) => source(f.source))) : undefined,
    rule.to.length > 0 ? oneOf(rule.to.map((t) => operation(t.operation))) : undefined,
    ...rule.when.map((c) => condition(c, split)),
  ]);
}
