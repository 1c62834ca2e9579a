// Istio routing kinds -> listeners, routes and clusters: Gateway servers, VirtualService http
// routes, ServiceEntry endpoints and DestinationRule traffic policies (see docs/config.md).
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { clientCredential } from '../config/credentials.ts';
import { CLIENT_TLS_MODES, LB_SIMPLE } from '../config/destination-rule.ts';
import { parseDurationMs } from '../config/duration.ts';
import { compileRe2 } from '../config/re2.ts';
import type {
  DestinationRuleSpec,
  GatewayServer,
  LoadedConfig,
  PortTrafficPolicy,
  Resource,
  ServiceEntrySpec,
  TrafficPolicy,
} from '../config/types.ts';
import { Cluster, type ClusterOptions, type Endpoint, type UpstreamTls } from '../router/cluster.ts';
import type { HashPolicy } from '../router/route-actions.ts';
import { re2Replacement } from '../router/route-actions.ts';
import type {
  FaultPolicy,
  HeaderOps,
  Mirror,
  Redirect,
  RetryPolicy,
  Route,
  RouteDestination,
  RouteMatch,
  StringMatch,
} from '../router/route-table.ts';
import { labelsMatch } from './chain.ts';

type AnyRecord = Record<string, unknown>;

export interface ListenerPlan {
  port: number;
  /** Gateways (namespace/name) with a server on this port. */
  gateways: string[];
  /** The Gateway servers on this port (protocol, hosts, tls), in file order, with their YAML folder. */
  servers: { server: GatewayServer; dir: string }[];
}

/**
 * Server protocols served by the HTTP listener. TCP and TLS belong to L4 (src/l4/plan.ts), and so
 * does HTTPS with `tls.mode` PASSTHROUGH or AUTO_PASSTHROUGH: it is TLS passthrough routed by SNI.
 */
const HTTP_LISTENER_PROTOCOLS = new Set(['HTTP', 'HTTP2', 'HTTPS', 'GRPC']);

/**
 * Whether a Gateway server's `tls` passes the TLS bytes through: mode PASSTHROUGH or
 * AUTO_PASSTHROUGH, or no mode (Istio's default is PASSTHROUGH). Servers without `tls` do not.
 */
export function passesTlsThrough(server: { tls?: unknown }): boolean {
  const tls = server.tls;
  if (typeof tls !== 'object' || tls === null) return false;
  const mode = String((tls as { mode?: unknown }).mode ?? 'PASSTHROUGH');
  return mode === 'PASSTHROUGH' || mode === 'AUTO_PASSTHROUGH';
}

/** Gateways whose selector picks this proxy, and the HTTP ports their servers open. */
export function planListeners(config: LoadedConfig, labels: Record<string, string>): ListenerPlan[] {
  return planGatewayPorts(
    config,
    labels,
    (protocol, server) => HTTP_LISTENER_PROTOCOLS.has(protocol) && !(protocol === 'HTTPS' && passesTlsThrough(server)),
  );
}

/**
 * The ports the selected Gateways' servers open, for the servers `accepts` takes (by upper-cased
 * protocol and the server itself), grouped by port with their gateways, in port order.
 */
export function planGatewayPorts(
  config: LoadedConfig,
  labels: Record<string, string>,
  accepts: (protocol: string, server: AnyRecord) => boolean,
): ListenerPlan[] {
  const byPort = new Map<number, ListenerPlan>();
  for (const gw of config.gateways) {
    const spec = gw.spec as AnyRecord;
    if (!labelsMatch(spec.selector as Record<string, string> | undefined, labels)) continue;
    for (const server of (spec.servers as AnyRecord[] | undefined) ?? []) {
      const port = server.port as AnyRecord | undefined;
      const number = Number(port?.number);
      const protocol = String(port?.protocol ?? 'HTTP').toUpperCase();
      if (!Number.isInteger(number) || !accepts(protocol, server)) continue;
      const plan = byPort.get(number) ?? { port: number, gateways: [], servers: [] };
      const key = `${gw.metadata.namespace}/${gw.metadata.name}`;
      if (!plan.gateways.includes(key)) plan.gateways.push(key);
      plan.servers.push({ server: server as unknown as GatewayServer, dir: gw.dir });
      byPort.set(number, plan);
    }
  }
  return [...byPort.values()].sort((a, b) => a.port - b.port);
}

const isObj = (v: unknown): v is AnyRecord => typeof v === 'object' && v !== null && !Array.isArray(v);
const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);
const durationMs = (v: unknown): number | undefined => (typeof v === 'string' ? parseDurationMs(v) : undefined);
const enumName = (v: unknown, names: readonly string[]): string | undefined =>
  typeof v === 'number' ? names[v] : typeof v === 'string' ? v : undefined;

/** Istio's StringMatch: exact, prefix, regex (RE2, full match), or `{}` for presence. */
function stringMatch(m: unknown): StringMatch | undefined {
  if (!isObj(m)) return undefined;
  if (typeof m.exact === 'string') return { exact: m.exact };
  if (typeof m.prefix === 'string') return { prefix: m.prefix };
  if (typeof m.regex === 'string') return { regex: compileRe2(m.regex) };
  return { present: true };
}

function namedMatches(v: unknown, lower: boolean): [string, StringMatch][] | undefined {
  if (!isObj(v)) return undefined;
  return Object.entries(v).flatMap(([k, sm]) => {
    const m = stringMatch(sm);
    return m ? [[lower ? k.toLowerCase() : k, m] as [string, StringMatch]] : [];
  });
}

export class ClusterSet {
  readonly clusters = new Map<string, Cluster>();

  get(name: string, make: () => Cluster): Cluster {
    let c = this.clusters.get(name);
    if (!c) {
      c = make();
      this.clusters.set(name, c);
    }
    return c;
  }

  async close(): Promise<void> {
    await Promise.all([...this.clusters.values()].map((c) => c.close()));
  }
}

/** A short name (no dot) is a Kubernetes service of `namespace`, as Istio resolves it. */
export function fqdn(host: string, namespace: string): string {
  return host.includes('.') || host.includes('*') ? host : `${host}.${namespace}.svc.cluster.local`;
}

function hostCovers(pattern: string, host: string): boolean {
  return pattern === host || (pattern.startsWith('*') && host.endsWith(pattern.slice(1)));
}

function findServiceEntry(config: LoadedConfig, host: string, full: string): Resource<ServiceEntrySpec> | undefined {
  const entries = config.serviceEntries;
  return (
    entries.find((s) => s.spec.hosts?.includes(host) || s.spec.hosts?.includes(full)) ??
    entries.find((s) => s.spec.hosts?.some((h) => h.startsWith('*') && hostCovers(h, full)))
  );
}

/** The DestinationRule for a host: an exact host (short names in the rule's namespace) before wildcards. */
export function findDestinationRule(config: LoadedConfig, full: string): Resource<DestinationRuleSpec> | undefined {
  const rules = config.destinationRules ?? [];
  const exact = rules.find((r) => fqdn(r.spec.host, r.metadata.namespace) === full);
  if (exact) return exact;
  let best: Resource<DestinationRuleSpec> | undefined;
  for (const r of rules)
    if (r.spec.host.startsWith('*') && hostCovers(r.spec.host, full))
      if (!best || r.spec.host.length > best.spec.host.length) best = r;
  return best;
}

/** Destination-level policy with the port's portLevelSettings over it (field by field, as Istio merges). */
function policyForPort(tp: TrafficPolicy | undefined, port: number): PortTrafficPolicy {
  if (!tp) return {};
  const out: PortTrafficPolicy = {
    loadBalancer: tp.loadBalancer,
    connectionPool: tp.connectionPool,
    outlierDetection: tp.outlierDetection,
    tls: tp.tls,
  };
  const pl = tp.portLevelSettings?.find((p) => p.port?.number === port);
  if (pl)
    for (const k of ['loadBalancer', 'connectionPool', 'outlierDetection', 'tls'] as const)
      if (pl[k] !== undefined) (out as Record<string, unknown>)[k] = pl[k];
  return out;
}

function readPem(path: string | undefined, dir: string): Buffer | undefined {
  if (!path) return undefined;
  return readFileSync(isAbsolute(path) ? path : resolve(dir, path));
}

function upstreamTls(tls: PortTrafficPolicy['tls'], dir: string): UpstreamTls | undefined {
  if (!tls) return undefined;
  const mode = enumName(tls.mode, CLIENT_TLS_MODES) ?? 'DISABLE';
  if (mode === 'DISABLE') return undefined;
  if (mode === 'ISTIO_MUTUAL')
    return { error: 'ISTIO_MUTUAL needs Istio mesh certificates, which wasmgate does not have' };
  if (tls.credentialName) {
    // Read at load from --secrets-dir (src/config/credentials.ts).
    const secret = clientCredential(tls);
    if (!secret) return { error: `credentialName ${tls.credentialName}: the secret was not read (no --secrets-dir)` };
    return {
      ca: secret.ca,
      crl: secret.crl,
      cert: mode === 'MUTUAL' ? secret.cert : undefined,
      key: mode === 'MUTUAL' ? secret.key : undefined,
      sni: tls.sni || undefined,
      subjectAltNames: tls.subjectAltNames,
      insecureSkipVerify: tls.insecureSkipVerify === true,
    };
  }
  try {
    return {
      ca: readPem(tls.caCertificates, dir),
      cert: mode === 'MUTUAL' ? readPem(tls.clientCertificate, dir) : undefined,
      key: mode === 'MUTUAL' ? readPem(tls.privateKey, dir) : undefined,
      sni: tls.sni || undefined,
      subjectAltNames: tls.subjectAltNames,
      insecureSkipVerify: tls.insecureSkipVerify === true,
    };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

/** ClusterOptions from a merged traffic policy (Istio's defaults where a field is absent or 0). */
export function clusterOptions(policy: PortTrafficPolicy, dir: string): ClusterOptions {
  const o: ClusterOptions = {};
  const lb = policy.loadBalancer;
  if (lb?.consistentHash) {
    const ch = lb.consistentHash;
    o.lb = ch.maglev
      ? { kind: 'MAGLEV', tableSize: ch.maglev.tableSize || 65537 }
      : { kind: 'RING_HASH', minimumRingSize: ch.ringHash?.minimumRingSize || ch.minimumRingSize || 1024 };
    const hash: HashPolicy = {};
    if (ch.httpHeaderName) hash.header = ch.httpHeaderName;
    else if (ch.useSourceIp) hash.sourceIp = true;
    else if (ch.httpQueryParameterName) hash.queryParameter = ch.httpQueryParameterName;
    else if (ch.httpCookie) {
      const ttl = ch.httpCookie.ttl === undefined ? undefined : (parseDurationMs(ch.httpCookie.ttl) ?? 0);
      hash.cookie = {
        name: ch.httpCookie.name,
        path: ch.httpCookie.path,
        ttlSeconds: ttl === undefined ? undefined : Math.floor(ttl / 1000),
      };
    }
    o.hash = hash;
  } else {
    const simple = enumName(lb?.simple, LB_SIMPLE);
    o.lb = {
      kind:
        simple === 'ROUND_ROBIN'
          ? 'ROUND_ROBIN'
          : simple === 'RANDOM' || simple === 'PASSTHROUGH'
            ? 'RANDOM'
            : 'LEAST_REQUEST',
    };
  }
  const cp = policy.connectionPool;
  const positive = (v: unknown) => (typeof v === 'number' && v > 0 ? v : undefined);
  o.maxConnections = positive(cp?.tcp?.maxConnections);
  o.maxPendingRequests = positive(cp?.http?.http1MaxPendingRequests);
  o.maxRequests = positive(cp?.http?.http2MaxRequests);
  o.maxRequestsPerConnection = positive(cp?.http?.maxRequestsPerConnection);
  o.maxRetries = positive(cp?.http?.maxRetries);
  o.connectTimeoutMs = durationMs(cp?.tcp?.connectTimeout) ?? 10_000;
  o.idleTimeoutMs = durationMs(cp?.http?.idleTimeout);
  const od = policy.outlierDetection;
  if (od) {
    o.outlier = {
      consecutive5xx: num(od.consecutive5xxErrors) ?? num(od.consecutiveErrors) ?? 5,
      consecutiveGateway: num(od.consecutiveGatewayErrors) ?? 0,
      intervalMs: durationMs(od.interval) ?? 10_000,
      baseEjectionMs: durationMs(od.baseEjectionTime) ?? 30_000,
      maxEjectionPercent: num(od.maxEjectionPercent) ?? 10,
      minHealthPercent: num(od.minHealthPercent) ?? 0,
    };
  }
  o.tls = upstreamTls(policy.tls, dir);
  return o;
}

/** Istio's DNS refresh rate (meshConfig dnsRefreshRate default). */
export const DNS_REFRESH_MS = 60_000;

/**
 * The cluster `outbound|port|subset|host` for a destination: a ServiceEntry's endpoints (STATIC,
 * or DNS names re-resolved), else the host itself; the DestinationRule's policy for the port and
 * subset applied.
 */
export function destinationCluster(
  config: LoadedConfig,
  clusters: ClusterSet,
  host: string,
  port: number | undefined,
  subset = '',
  namespace = 'default',
): Cluster {
  const full = fqdn(host, namespace);
  const se = findServiceEntry(config, host, full);
  const sePorts = se?.spec.ports ?? [];
  const servicePort = port ?? (sePorts[0] ? Number(sePorts[0].number) : 80);
  const name = `outbound|${servicePort}|${subset}|${full}`;
  return clusters.get(name, () => {
    const dr = findDestinationRule(config, full);
    let policy = policyForPort(dr?.spec.trafficPolicy, servicePort);
    const sub = subset ? dr?.spec.subsets?.find((s) => s.name === subset) : undefined;
    if (sub?.trafficPolicy) {
      const over = policyForPort(sub.trafficPolicy, servicePort);
      policy = { ...policy, ...Object.fromEntries(Object.entries(over).filter(([, v]) => v !== undefined)) };
    }
    const options = clusterOptions(policy, dr?.dir ?? process.cwd());
    const tls = options.tls !== undefined;
    let endpoints: Endpoint[];
    if (!se) endpoints = [{ host, port: servicePort, tls }];
    else {
      const portSpec = sePorts.find((p) => Number(p.number) === servicePort);
      const targetPort = Number(portSpec?.targetPort ?? servicePort);
      const list = se.spec.endpoints ?? [];
      const resolution = se.spec.resolution ?? 'NONE';
      if (list.length === 0) {
        endpoints = (resolution === 'DNS' || resolution === 'DNS_ROUND_ROBIN' ? se.spec.hosts : [host]).map((h) => ({
          host: h,
          port: targetPort,
          tls,
        }));
      } else {
        endpoints = list
          .filter((e) => typeof e.address === 'string' && !e.address.startsWith('unix://'))
          .filter((e) => !sub?.labels || Object.entries(sub.labels).every(([k, v]) => e.labels?.[k] === v))
          .map((e) => ({
            host: String(e.address),
            port: Number((portSpec?.name ? e.ports?.[portSpec.name] : undefined) ?? targetPort),
            tls,
            labels: e.labels,
            weight: e.weight,
          }));
      }
      if (resolution === 'DNS' || resolution === 'DNS_ROUND_ROBIN')
        options.dns = { refreshMs: DNS_REFRESH_MS, roundRobin: resolution === 'DNS_ROUND_ROBIN' };
    }
    if (!se && sub?.labels) endpoints = []; // a subset of a host without endpoints and labels selects nothing
    return new Cluster(name, endpoints, options);
  });
}

function boundTo(vs: Resource<unknown>, gateways: string[]): boolean {
  const list = ((vs.spec as AnyRecord).gateways as string[] | undefined) ?? [];
  return list.some((g) => gateways.includes(g.includes('/') ? g : `${vs.metadata.namespace}/${g}`));
}

/**
 * A cluster by the name a plugin gives in proxy_http_call: an existing cluster, Istio's
 * `outbound|PORT|SUBSET|HOST`, or a plain ServiceEntry host.
 */
export function resolveCluster(config: LoadedConfig, clusters: ClusterSet, name: string): Cluster | undefined {
  const existing = clusters.clusters.get(name);
  if (existing) return existing;
  const m = /^outbound\|(\d+)\|([^|]*)\|(.+)$/.exec(name);
  if (m) return destinationCluster(config, clusters, m[3]!, Number(m[1]), m[2]!);
  const se = config.serviceEntries.find((s) => ((s.spec as AnyRecord).hosts as string[] | undefined)?.includes(name));
  if (se) return destinationCluster(config, clusters, name, undefined, '', se.metadata.namespace);
  for (const c of clusters.clusters.values()) if (c.name.endsWith(`||${name}`)) return c;
  return undefined;
}

function headerOps(v: unknown): HeaderOps | undefined {
  if (!isObj(v)) return undefined;
  const pairs = (m: unknown) =>
    isObj(m) ? Object.entries(m).map(([k, val]) => [k.toLowerCase(), String(val)] as [string, string]) : [];
  return {
    set: pairs(v.set),
    add: pairs(v.add),
    remove: Array.isArray(v.remove) ? v.remove.map((r) => String(r).toLowerCase()) : [],
  };
}

/** Istio's default retry policy for gateways and sidecars (no `retries` in the route). */
export const DEFAULT_RETRY_ON = 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes';

function retryPolicy(v: unknown): RetryPolicy | undefined {
  if (v === undefined)
    return { attempts: 2, retryOn: new Set(DEFAULT_RETRY_ON.split(',')), statusCodes: new Set([503]), backoffMs: 25 };
  if (!isObj(v)) return undefined;
  const attempts = num(v.attempts) ?? 0;
  if (attempts <= 0) return undefined;
  const policy: RetryPolicy = {
    attempts,
    retryOn: new Set(DEFAULT_RETRY_ON.split(',')),
    statusCodes: new Set([503]),
    backoffMs: durationMs(v.backoff) ?? 25,
    perTryTimeoutMs: durationMs(v.perTryTimeout),
  };
  if (typeof v.retryOn === 'string' && v.retryOn.trim() !== '') {
    policy.retryOn = new Set();
    policy.statusCodes = new Set();
    for (const part of v.retryOn
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)) {
      if (/^\d+$/.test(part)) {
        policy.statusCodes.add(Number(part));
        policy.retryOn.add('retriable-status-codes');
      } else policy.retryOn.add(part);
    }
  }
  return policy;
}

function percentOf(p: unknown, legacy: unknown, fallback: number): number {
  if (isObj(p) && typeof p.value === 'number') return p.value;
  if (typeof legacy === 'number') return legacy;
  return fallback;
}

function faultPolicy(v: unknown): FaultPolicy | undefined {
  if (!isObj(v)) return undefined;
  const out: FaultPolicy = {};
  if (isObj(v.delay)) {
    const ms = durationMs(v.delay.fixedDelay);
    if (ms !== undefined) out.delay = { ms, percent: percentOf(v.delay.percentage, v.delay.percent, 0) };
  }
  if (isObj(v.abort) && typeof v.abort.httpStatus === 'number')
    out.abort = { status: v.abort.httpStatus, percent: percentOf(v.abort.percentage, undefined, 0) };
  return out.delay || out.abort ? out : undefined;
}

/** Routes of the VirtualServices bound to these gateways, in file order. */
export function buildRoutes(config: LoadedConfig, gateways: string[], clusters: ClusterSet): Route[] {
  const routes: Route[] = [];
  for (const vs of config.virtualServices) {
    if (!boundTo(vs as Resource<unknown>, gateways)) continue;
    const spec = vs.spec as AnyRecord;
    const ns = vs.metadata.namespace;
    const hosts = (spec.hosts as string[] | undefined) ?? [];
    const cluster = (d: AnyRecord) => {
      const port = num((d.port as AnyRecord | undefined)?.number);
      return destinationCluster(
        config,
        clusters,
        String(d.host),
        port,
        typeof d.subset === 'string' ? d.subset : '',
        ns,
      );
    };
    ((spec.http as AnyRecord[] | undefined) ?? []).forEach((http, i) => {
      const written = (http.match as AnyRecord[] | undefined) ?? [];
      // A match naming gateways applies on those gateways only (instead of the VirtualService's).
      const applicable = written.filter((m) => {
        const gw = m.gateways as string[] | undefined;
        return !gw || gw.length === 0 || gw.some((g) => gateways.includes(g.includes('/') ? g : `${ns}/${g}`));
      });
      if (written.length > 0 && applicable.length === 0) return;
      const matches: RouteMatch[] = applicable.map((m) => ({
        uri: stringMatch(m.uri),
        scheme: stringMatch(m.scheme),
        method: stringMatch(m.method),
        authority: stringMatch(m.authority),
        port: num(m.port),
        headers: namedMatches(m.headers, true),
        withoutHeaders: namedMatches(m.withoutHeaders, true),
        queryParams: namedMatches(m.queryParams, false),
        ignoreUriCase: m.ignoreUriCase === true,
      }));
      const route: Route = { name: String(http.name ?? `${vs.metadata.name}.${i}`), matches, hosts };
      const direct = http.directResponse as AnyRecord | undefined;
      const redirect = http.redirect as AnyRecord | undefined;
      const dests = (http.route as AnyRecord[] | undefined) ?? [];
      if (direct) {
        const body = direct.body as AnyRecord | undefined;
        route.directResponse = {
          status: Number(direct.status),
          body: typeof body?.bytes === 'string' ? Buffer.from(body.bytes, 'base64') : String(body?.string ?? ''),
        };
      } else if (redirect) {
        route.redirect = {
          uri: typeof redirect.uri === 'string' ? redirect.uri : undefined,
          authority: typeof redirect.authority === 'string' ? redirect.authority : undefined,
          port: num(redirect.port),
          derivePort: redirect.derivePort as Redirect['derivePort'],
          scheme: typeof redirect.scheme === 'string' ? redirect.scheme : undefined,
          code: num(redirect.redirectCode) || 301,
        };
      } else if (dests.length > 0) {
        route.destinations = dests.map(
          (r): RouteDestination => ({
            cluster: cluster(r.destination as AnyRecord),
            weight: num(r.weight) ?? (dests.length === 1 ? 100 : 0),
            request: headerOps((r.headers as AnyRecord | undefined)?.request),
            response: headerOps((r.headers as AnyRecord | undefined)?.response),
          }),
        );
        if (route.destinations.every((d) => d.weight === 0)) for (const d of route.destinations) d.weight = 1;
      }
      const rewrite = http.rewrite as AnyRecord | undefined;
      if (isObj(rewrite)) {
        const rr = rewrite.uriRegexRewrite;
        route.rewrite = {
          uri: typeof rewrite.uri === 'string' ? rewrite.uri : undefined,
          authority: typeof rewrite.authority === 'string' ? rewrite.authority : undefined,
          regex:
            isObj(rr) && typeof rr.match === 'string'
              ? {
                  match: compileRe2(rr.match, { partial: true, global: true }),
                  replacement: re2Replacement(String(rr.rewrite ?? '')),
                }
              : undefined,
        };
      }
      const headers = http.headers as AnyRecord | undefined;
      route.request = headerOps(headers?.request);
      route.response = headerOps(headers?.response);
      const timeout = durationMs(http.timeout);
      if (timeout) route.timeoutMs = timeout;
      route.retry = retryPolicy(http.retries);
      route.fault = faultPolicy(http.fault);
      const mirrors: Mirror[] = [];
      if (isObj(http.mirror))
        mirrors.push({
          cluster: cluster(http.mirror),
          percent: percentOf(http.mirrorPercentage, http.mirrorPercent ?? http.mirror_percent, 100),
        });
      for (const m of (http.mirrors as AnyRecord[] | undefined) ?? [])
        if (isObj(m.destination))
          mirrors.push({ cluster: cluster(m.destination), percent: percentOf(m.percentage, undefined, 100) });
      if (mirrors.length > 0) route.mirrors = mirrors;
      routes.push(route);
    });
  }
  return routes;
}

/** A catch-all route to one URL (`--upstream`): a plain proxy, without Istio's default retries. */
export function upstreamRoute(url: string, clusters: ClusterSet): Route {
  const u = new URL(url);
  const tls = u.protocol === 'https:';
  const port = Number(u.port || (tls ? 443 : 80));
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const name = `outbound|${port}||${host}`;
  const cluster = clusters.get(name, () => new Cluster(name, [{ host, port, tls }], tls ? { tls: {} } : {}));
  return {
    name: 'upstream',
    matches: [],
    hosts: [],
    destinations: [{ cluster, weight: 1 }],
  };
}
