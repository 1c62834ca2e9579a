// Upstream clusters: a named set of endpoints (static, or re-resolved through DNS), an undici Pool
// per endpoint with keep-alive, a load balancer, circuit breakers (Istio's connectionPool),
// outlier detection and upstream TLS. Names follow Istio's `outbound|port|subset|host`.
import { lookup } from 'node:dns/promises';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { Pool } from 'undici';
import { createLoadBalancer, type LbPolicy, type LoadBalancer } from './load-balancer.ts';
import { newOutlierState, type Outcome, type OutlierConfig, OutlierDetector, type OutlierState } from './outlier.ts';
import type { HashPolicy } from './route-actions.ts';

export interface Endpoint {
  host: string;
  port: number;
  tls: boolean;
  labels?: Record<string, string>;
  /** LB weight (ServiceEntry endpoint weight), default 1. */
  weight?: number;
}

/** An endpoint as the cluster keeps it: with its request counters and outlier state. */
export interface ClusterEndpoint extends Endpoint {
  weight: number;
  /** Requests in flight. */
  active: number;
  /** Requests sent, ever. */
  total: number;
  outlier: OutlierState;
}

export interface UpstreamTls {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Revocation list for the upstream's chain (a credentialName secret's ca.crl / crl). */
  crl?: string | Buffer;
  /** Fixed SNI; absent: the request's Host (Istio's auto SNI). */
  sni?: string;
  /** Accepted server names instead of the SNI/host (Istio's subjectAltNames). */
  subjectAltNames?: string[];
  insecureSkipVerify?: boolean;
  /** Why the TLS settings could not be read (e.g. a missing certificate file): every connect fails. */
  error?: string;
}

export interface ClusterOptions {
  lb?: LbPolicy;
  /** The consistent-hash key (DestinationRule consistentHash), with a RING_HASH or MAGLEV lb. */
  hash?: HashPolicy;
  /** tcp.maxConnections: connections (and so, on HTTP/1.1, requests in flight) across the cluster. */
  maxConnections?: number;
  /** http.http1MaxPendingRequests: requests waiting for a connection; more overflow (503 UO). */
  maxPendingRequests?: number;
  /** http.http2MaxRequests: requests in flight; more overflow (503 UO). */
  maxRequests?: number;
  maxRequestsPerConnection?: number;
  /** http.maxRetries: retries in flight across the cluster. */
  maxRetries?: number;
  connectTimeoutMs?: number;
  idleTimeoutMs?: number;
  headersTimeoutMs?: number;
  bodyTimeoutMs?: number;
  outlier?: OutlierConfig;
  tls?: UpstreamTls;
  /** DNS resolution: host names re-resolved every refreshMs; each address is an endpoint. */
  dns?: { refreshMs: number; roundRobin?: boolean };
}

export interface Picked {
  endpoint: ClusterEndpoint;
  pool: Pool;
}

const UNLIMITED = Number.MAX_SAFE_INTEGER;

export class Cluster {
  readonly name: string;
  readonly options: ClusterOptions;
  #endpoints: ClusterEndpoint[] = [];
  readonly #pools = new Map<string, Pool>();
  readonly #lb: LoadBalancer<ClusterEndpoint>;
  readonly #outlier: OutlierDetector<ClusterEndpoint> | undefined;
  /** Requests holding a connection slot, and those waiting for one (circuit breakers). */
  #inflight = 0;
  readonly #waiting: (() => void)[] = [];
  #retries = 0;
  #dnsTimer: NodeJS.Timeout | undefined;
  #ready: Promise<void> | undefined;
  #closed = false;
  /** Requests in flight and sent, over all endpoints (the admin /clusters page reads them). */
  active = 0;
  total = 0;
  /** Overflow (UO) and ejection counters. */
  overflows = 0;
  /** TCP proxy connections refused at maxConnections (Envoy's upstream_cx_overflow). */
  cxOverflows = 0;
  ejections = 0;
  /** Retries started (Envoy's upstream_rq_retry). */
  retriesTotal = 0;

  constructor(name: string, endpoints: Endpoint[], options: ClusterOptions = {}) {
    this.name = name;
    this.options = options;
    this.#lb = createLoadBalancer(options.lb ?? { kind: 'LEAST_REQUEST' });
    if (options.dns) {
      const names = endpoints;
      this.#ready = this.#resolve(names).catch(() => {});
      this.#dnsTimer = setInterval(() => void this.#resolve(names).catch(() => {}), options.dns.refreshMs);
      this.#dnsTimer.unref();
    } else {
      this.#endpoints = endpoints.map((e) => this.#endpoint(e));
    }
    if (options.outlier)
      this.#outlier = new OutlierDetector(
        options.outlier,
        () => this.#endpoints,
        (_e, ejected) => {
          if (ejected) this.ejections++;
        },
      );
  }

  #endpoint(e: Endpoint): ClusterEndpoint {
    return { ...e, weight: e.weight || 1, active: 0, total: 0, outlier: newOutlierState() };
  }

  get endpoints(): readonly ClusterEndpoint[] {
    return this.#endpoints;
  }

  /** Resolves once DNS endpoints are known (at once for static clusters). */
  ready(): Promise<void> | undefined {
    const r = this.#ready;
    if (r)
      r.then(() => {
        if (this.#ready === r) this.#ready = undefined;
      });
    return r;
  }

  async #resolve(names: Endpoint[]): Promise<void> {
    const next: ClusterEndpoint[] = [];
    const seen = new Set<string>();
    for (const n of names) {
      let addresses: string[];
      try {
        const all = await lookup(n.host, { all: true });
        addresses = all.map((a) => a.address);
        if (this.options.dns?.roundRobin) addresses = addresses.slice(0, 1);
      } catch {
        continue;
      }
      for (const address of addresses) {
        const key = `${address}:${n.port}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const old = this.#endpoints.find((e) => e.host === address && e.port === n.port);
        next.push(old ?? this.#endpoint({ ...n, host: address }));
      }
    }
    if (this.#closed) return;
    this.#endpoints = next;
    for (const [key, pool] of this.#pools)
      if (!next.some((e) => `${e.host}:${e.port}` === key)) {
        this.#pools.delete(key);
        void pool.close().catch(() => pool.destroy());
      }
  }

  #pool(e: ClusterEndpoint): Pool {
    const key = `${e.host}:${e.port}`;
    let pool = this.#pools.get(key);
    if (pool) return pool;
    const o = this.options;
    const tls = o.tls;
    pool = new Pool(`${e.tls ? 'https' : 'http'}://${e.host.includes(':') ? `[${e.host}]` : e.host}:${e.port}`, {
      connections: o.maxConnections ?? null,
      connectTimeout: o.connectTimeoutMs ?? 10_000,
      headersTimeout: o.headersTimeoutMs ?? 0,
      bodyTimeout: o.bodyTimeoutMs ?? 0,
      keepAliveTimeout: o.idleTimeoutMs ?? 4_000,
      maxRequestsPerClient: o.maxRequestsPerConnection || undefined,
      pipelining: 1,
      ...(e.tls ? { connect: tlsConnectOptions(tls) } : {}),
    });
    this.#pools.set(key, pool);
    return pool;
  }

  /** Endpoints the LB may pick now: healthy (not ejected), or all below minHealthPercent (panic). */
  healthy(): ClusterEndpoint[] {
    const all = this.#endpoints;
    const ok = all.filter((e) => e.outlier.ejectedAt === undefined);
    const min = this.options.outlier?.minHealthPercent ?? 0;
    if (all.length > 0 && min > 0 && (100 * ok.length) / all.length < min) return all.slice();
    return ok;
  }

  /**
   * An endpoint and its pool, or undefined when no endpoint is healthy. `hash` is the request's
   * consistent-hash key; `exclude` are hosts already tried (Istio's previous_hosts retry predicate).
   */
  pick(hash?: number, exclude?: ReadonlySet<ClusterEndpoint>): Picked | undefined {
    let healthy = this.healthy();
    if (healthy.length === 0) return undefined;
    if (exclude && exclude.size > 0) {
      const fresh = healthy.filter((e) => !exclude.has(e));
      if (fresh.length > 0) healthy = fresh;
    }
    const endpoint = this.#lb.pick(this.#endpoints, healthy, hash);
    return { endpoint, pool: this.#pool(endpoint) };
  }

  /**
   * Circuit breakers: runs `start` now or when a connection frees up; false (overflow, 503 UO) when
   * the requests in flight or the queue of pending requests are at their limits.
   */
  admit(start: () => void): boolean {
    const o = this.options;
    if (this.#inflight >= (o.maxRequests ?? UNLIMITED)) {
      this.overflows++;
      return false;
    }
    if (this.#inflight < (o.maxConnections ?? UNLIMITED)) {
      this.#inflight++;
      start();
      return true;
    }
    if (this.#waiting.length >= (o.maxPendingRequests ?? UNLIMITED)) {
      this.overflows++;
      return false;
    }
    this.#waiting.push(start);
    return true;
  }

  /** Gives back an admitted slot, or withdraws a waiting `start`. */
  release(start: () => void): void {
    const i = this.#waiting.indexOf(start);
    if (i >= 0) {
      this.#waiting.splice(i, 1);
      return;
    }
    this.#inflight--;
    const next = this.#waiting.shift();
    if (next) {
      this.#inflight++;
      next();
    }
  }

  /**
   * A TCP proxy connection's slot (tcp.maxConnections, shared with HTTP requests): taken now, or
   * false (overflow, UO) at the limit. Nothing waits, as Envoy's tcp_proxy.
   */
  admitConnection(): boolean {
    if (this.#inflight >= (this.options.maxConnections ?? UNLIMITED)) {
      this.cxOverflows++;
      return false;
    }
    this.#inflight++;
    return true;
  }

  /** Gives back a slot taken by admitConnection(). */
  releaseConnection(): void {
    this.release(() => {});
  }

  /** A retry may start unless http.maxRetries retries are already in flight. */
  tryRetry(): boolean {
    if (this.#retries >= (this.options.maxRetries ?? UNLIMITED)) return false;
    this.#retries++;
    this.retriesTotal++;
    return true;
  }

  retryDone(): void {
    this.#retries--;
  }

  /** Counts a request to an endpoint in (start) and out (end). */
  requestStarted(e: ClusterEndpoint): void {
    e.active++;
    e.total++;
    this.active++;
    this.total++;
  }

  requestEnded(e: ClusterEndpoint, outcome: Outcome | undefined): void {
    e.active--;
    this.active--;
    if (outcome) this.record(e, outcome);
  }

  /** An outcome for outlier detection while the request (or TCP connection) goes on. */
  record(e: ClusterEndpoint, outcome: Outcome): void {
    this.#outlier?.record(e, outcome);
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#dnsTimer) clearInterval(this.#dnsTimer);
    this.#outlier?.close();
    await Promise.all([...this.#pools.values()].map((p) => p.close().catch(() => p.destroy())));
  }
}

/** tls.connect options for an upstream (the router's pools and the TCP proxy). */
export function tlsConnectOptions(tls: UpstreamTls | undefined) {
  if (!tls) return {};
  if (tls.error) {
    const message = tls.error;
    return {
      // undici calls this for every connection: fail it with the configuration problem.
      checkServerIdentity: () => new Error(message),
      rejectUnauthorized: true,
    };
  }
  const names = tls.subjectAltNames;
  return {
    ca: tls.ca,
    cert: tls.cert,
    key: tls.key,
    ...(tls.crl ? { crl: tls.crl } : {}),
    rejectUnauthorized: !tls.insecureSkipVerify,
    ...(names && names.length > 0
      ? {
          checkServerIdentity: (_host: string, cert: PeerCertificate) => {
            for (const name of names) if (checkServerIdentity(name, cert) === undefined) return undefined;
            const uris = (cert.subjectaltname ?? '').split(/,\s*/).filter((s) => s.startsWith('URI:'));
            if (uris.some((u) => names.includes(u.slice(4)))) return undefined;
            return Object.assign(new Error(`certificate does not match subjectAltNames ${names.join(', ')}`), {
              code: 'ERR_TLS_CERT_ALTNAME_INVALID',
            });
          },
        }
      : {}),
  };
}
