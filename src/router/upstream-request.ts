// One stream's request to an upstream cluster through undici's dispatcher: request body streamed
// from the pipeline, response streamed back into it, with backpressure both ways. On top: the
// route's timeout, retries (Envoy's retry_on conditions, fully jittered exponential back-off from
// 25 ms, other hosts first), circuit breakers, outlier accounting and request mirroring.
//
// Retries and mirrors need the request body again: it is kept in memory while it is at most
// RETRY_BUFFER_LIMIT bytes (Envoy's per-request buffer limit, 1 MiB by default). A request whose
// body grew past it is not retried and not mirrored, as Envoy does.
import { type Duplex, PassThrough } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { FilterManager, UpstreamRequest } from '../pipeline/filter-manager.ts';
import { HeaderMap } from '../pipeline/headers.ts';
import type { Cluster, ClusterEndpoint } from './cluster.ts';
import { hopByHopNames, upgradeHopByHopNames } from './hop-by-hop.ts';
import type { Outcome } from './outlier.ts';
import { applyRewrite, pickDestination, requestHash, requestHeaderOps, responseHeaderOps } from './route-actions.ts';
import type { Route, RouteDestination, RouteMatch } from './route-table.ts';

/** Lets the router slow down the downstream request when the upstream cannot keep up. */
export interface DownstreamFlow {
  pause(): void;
  resume(): void;
  /** Called when the response wants to be written faster than the client reads. */
  onDrain(fn: () => void): void;
  writeBlocked(): boolean;
  /**
   * Present when the downstream request is a WebSocket upgrade: the request goes upstream as an
   * upgrade, and on a 101 the upstream socket is handed over here (before the 101 runs through the
   * response filters). The taker calls `done` once, when the tunnel closes or is not used.
   */
  upgraded?(socket: Duplex, done: () => void): void;
}

export const RETRY_BUFFER_LIMIT = 1024 * 1024;

const CONNECT_FAILURE_CODES = new Set([
  'ECONNREFUSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPROTO',
  'ERR_WASMGATE_TLS_CONFIG',
]);
const GRPC_RETRY_ON: Record<string, string> = {
  '1': 'cancelled',
  '4': 'deadline-exceeded',
  '8': 'resource-exhausted',
  '13': 'internal',
  '14': 'unavailable',
};

type Failure = 'connect' | 'reset' | 'timeout';

function classify(err: Error): Failure {
  const code = (err as { code?: string }).code ?? '';
  if (CONNECT_FAILURE_CODES.has(code) || /^(ERR_TLS|ERR_SSL|CERT_|DEPTH_ZERO|SELF_SIGNED|UNABLE_TO)/.test(code))
    return 'connect';
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return 'timeout';
  return 'reset';
}

const BODY_CONNECT = 'upstream connect error or disconnect/reset before headers. reset reason: connection failure';
const BODY_RESET = 'upstream connect error or disconnect/reset before headers. reset reason: remote reset';
const BODY_TERMINATION =
  'upstream connect error or disconnect/reset before headers. reset reason: connection termination';
const BODY_OVERFLOW = 'upstream connect error or disconnect/reset before headers. reset reason: overflow';

interface Attempt {
  endpoint: ClusterEndpoint;
  body: PassThrough | undefined;
  controller: Dispatcher.DispatchController | undefined;
  perTry: NodeJS.Timeout | undefined;
  started: bigint;
  /** Its admission (circuit breaker slot), given back when the attempt ends. */
  slot: () => void;
  finished: boolean;
  forwarded: boolean;
  retry: boolean;
}

export class RouterUpstreamRequest implements UpstreamRequest {
  readonly #manager: FilterManager;
  readonly #route: Route;
  readonly #match: RouteMatch | undefined;
  readonly #flow: DownstreamFlow;
  #dest: RouteDestination | undefined;
  #cluster!: Cluster;
  #headers!: HeaderMap;
  #hash: number | undefined;
  #setCookie: string | undefined;
  // the request body, kept for retries and mirrors while it fits
  #hasBody = false;
  #received: Uint8Array[] = [];
  #receivedBytes = 0;
  #replayable = true;
  #ended = false;
  #firstStarted = false;
  // attempts
  #attempt: Attempt | undefined;
  #waiting: (() => void) | undefined;
  #retries = 0;
  readonly #tried = new Set<ClusterEndpoint>();
  #done = false;
  #retryOverflow = false;
  #timer: NodeJS.Timeout | undefined;
  #backoff: NodeJS.Timeout | undefined;
  /** A WebSocket upgrade (no request body; a 101 hands the upstream socket to the listener). */
  #upgrade = false;
  #upgradedSocket: Duplex | undefined;

  constructor(manager: FilterManager, route: Route, match: RouteMatch | undefined, flow: DownstreamFlow) {
    this.#manager = manager;
    this.#route = route;
    this.#match = match;
    this.#flow = flow;
  }

  sendHeaders(headers: HeaderMap, endStream: boolean): void {
    const info = this.#manager.stream.info;
    this.#dest = pickDestination(this.#route.destinations ?? []);
    if (!this.#dest) {
      this.#fail(503, 'no healthy upstream', 'no_healthy_upstream', ['UH']);
      return;
    }
    this.#cluster = this.#dest.cluster;
    info.upstreamCluster = this.#cluster.name;
    if (this.#route.rewrite || this.#route.request || this.#dest.request) {
      // Rewritten for the upstream only: the stream keeps the headers the filters and the log saw.
      this.#headers = new HeaderMap(headers.pairs.map(([k, v]) => [k, v]));
      applyRewrite(this.#headers, this.#route, this.#match);
      requestHeaderOps(this.#headers, this.#route, this.#dest);
    } else {
      this.#headers = headers;
    }
    const h = requestHash(this.#cluster.options.hash, headers, this.#manager.stream);
    this.#hash = h.hash;
    this.#setCookie = h.setCookie;
    this.#upgrade = this.#flow.upgraded !== undefined && this.#headers.get('upgrade') !== undefined;
    // An upgrade has no body: what follows its head is tunnel data, once upgraded.
    this.#hasBody = !endStream && !this.#upgrade;
    if (endStream || this.#upgrade) this.#requestEnded();
    const ready = this.#cluster.ready();
    if (ready) void ready.then(() => this.#start());
    else this.#start();
  }

  #requestEnded(): void {
    this.#ended = true;
    const ms = this.#route.timeoutMs;
    if (ms && ms > 0 && !this.#done) {
      this.#timer = setTimeout(() => this.#onGlobalTimeout(), ms);
    }
    this.#mirror();
  }

  /** Starts an attempt: a healthy endpoint must exist, then a circuit-breaker slot. */
  #start(): void {
    if (this.#done) return;
    const tls = this.#cluster.options.tls;
    if (tls?.error) {
      this.#fail(503, BODY_CONNECT, 'upstream_reset_before_response_started{connection_failure}', ['UF']);
      return;
    }
    if (this.#cluster.healthy().length === 0) {
      this.#fail(503, 'no healthy upstream', 'no_healthy_upstream', ['UH']);
      return;
    }
    const slot = () => {
      this.#waiting = undefined;
      this.#dispatch(slot);
    };
    this.#waiting = slot;
    if (!this.#cluster.admit(slot)) {
      this.#waiting = undefined;
      this.#fail(503, BODY_OVERFLOW, 'upstream_reset_before_response_started{overflow}', ['UO']);
    }
  }

  #dispatch(slot: () => void): void {
    if (this.#done) {
      this.#cluster.release(slot);
      return;
    }
    const picked = this.#cluster.pick(this.#hash, this.#tried);
    if (!picked) {
      this.#cluster.release(slot);
      this.#fail(503, 'no healthy upstream', 'no_healthy_upstream', ['UH']);
      return;
    }
    const { endpoint, pool } = picked;
    const info = this.#manager.stream.info;
    info.upstreamHost = `${endpoint.host}:${endpoint.port}`;
    this.#tried.add(endpoint);
    this.#cluster.requestStarted(endpoint);
    const attempt: Attempt = {
      endpoint,
      body: undefined,
      controller: undefined,
      perTry: undefined,
      started: process.hrtime.bigint(),
      slot,
      finished: false,
      forwarded: false,
      retry: this.#retries > 0,
    };
    this.#attempt = attempt;
    const out: string[] = [];
    const h = this.#headers;
    const drop = hopByHopNames(h.getAll('connection'));
    let authority = '';
    for (const [k, v] of h.pairs) {
      if (k[0] === ':') {
        if (k === ':authority') authority = v;
        continue;
      }
      if (drop.has(k) || k === 'host') continue;
      out.push(k, v);
    }
    if (authority) out.push('host', authority);
    if (this.#hasBody) {
      const body = new PassThrough();
      attempt.body = body;
      body.on('drain', () => this.#flow.resume());
      body.on('error', () => {});
      for (const chunk of this.#received) body.write(chunk);
      if (this.#ended) body.end();
    }
    if (!this.#firstStarted) {
      this.#firstStarted = true;
      if (this.#receivedBytes > RETRY_BUFFER_LIMIT) {
        this.#replayable = false;
        this.#received = [];
      }
      this.#flow.resume();
    }
    const perTry = this.#route.retry?.perTryTimeoutMs;
    if (perTry && perTry > 0) attempt.perTry = setTimeout(() => this.#onPerTryTimeout(attempt), perTry);
    const options: Dispatcher.DispatchOptions & { servername?: string } = {
      path: h.get(':path') ?? '/',
      method: (h.get(':method') ?? 'GET') as Dispatcher.HttpMethod,
      headers: out,
      body: attempt.body ?? null,
    };
    // undici writes `connection: upgrade` and this Upgrade itself (both dropped from `out`).
    if (this.#upgrade) options.upgrade = h.get('upgrade') ?? 'websocket';
    if (endpoint.tls) {
      const sni = this.#cluster.options.tls?.sni ?? authority.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
      if (sni && !/^[\d.]+$|:/.test(sni)) options.servername = sni;
    }
    pool.dispatch(options, this.#handler(attempt));
  }

  #handler(attempt: Attempt): Dispatcher.DispatchHandler {
    return {
      onRequestStart: (controller) => {
        attempt.controller = controller;
        if (attempt.finished) controller.abort(new Error('aborted'));
      },
      onResponseStart: (controller, statusCode, headers) => {
        if (statusCode < 200 || attempt.finished) return; // 1xx informational: not forwarded
        if (attempt.perTry) clearTimeout(attempt.perTry);
        const flat = (name: string) => {
          const v = headers[name];
          return v === undefined ? undefined : ([] as string[]).concat(v).join(',');
        };
        const retryable = this.#retriableStatus(statusCode, flat);
        if (retryable && this.#canRetry()) {
          this.#endAttempt(attempt, { status: statusCode });
          controller.abort(new Error('retrying'));
          this.#scheduleRetry();
          return;
        }
        const info = this.#manager.stream.info;
        if (retryable) info.responseFlags.push(...this.#noRetryFlags());
        attempt.forwarded = true;
        const map = this.#responseHeaders(attempt, headers, hopByHopNames);
        this.#manager.encodeHeaders(statusCode, map, false);
        if (this.#flow.writeBlocked()) {
          controller.pause();
          this.#flow.onDrain(() => controller.resume());
        }
      },
      onRequestUpgrade: (_controller, statusCode, headers, socket) => {
        socket.on('error', () => {}); // until the listener's tunnel takes it
        if (attempt.finished || this.#done || !this.#flow.upgraded) {
          socket.destroy();
          return;
        }
        if (attempt.perTry) clearTimeout(attempt.perTry);
        attempt.forwarded = true;
        this.#upgradedSocket = socket;
        // The route timeout covers the wait for the 101, not the tunnel.
        this.#finish();
        const map = this.#responseHeaders(attempt, headers, upgradeHopByHopNames);
        // The endpoint's slot and request count are held until the tunnel closes, as Envoy
        // counts an upgraded stream as an active request on its upstream connection.
        this.#flow.upgraded(socket, () => this.#endAttempt(attempt, { status: statusCode }));
        this.#manager.encodeHeaders(statusCode, map, false);
      },
      onResponseData: (controller, chunk) => {
        if (attempt.finished || !attempt.forwarded) return;
        this.#manager.encodeData(chunk, false);
        if (!controller.paused && this.#flow.writeBlocked()) {
          controller.pause();
          this.#flow.onDrain(() => controller.resume());
        }
      },
      onResponseEnd: (_controller, trailers) => {
        if (attempt.finished) return;
        const status = this.#manager.stream.info.responseCode;
        this.#endAttempt(attempt, { status });
        this.#finish();
        const entries = Object.entries(trailers ?? {});
        if (entries.length > 0) {
          const t = new HeaderMap();
          for (const [k, v] of entries)
            if (v !== undefined) for (const one of ([] as string[]).concat(v)) t.add(k, one);
          this.#manager.encodeTrailers(t);
        } else {
          this.#manager.encodeData(new Uint8Array(0), true);
        }
      },
      onResponseError: (_controller, err) => {
        if (attempt.finished) return;
        const failure = classify(err);
        this.#endAttempt(attempt, { localFailure: failure });
        if (this.#done) return;
        if (attempt.forwarded) {
          this.#fail(0, '', 'upstream_reset_after_response_started{remote_reset}', ['UC']);
          return;
        }
        if (this.#retriableFailure(failure) && this.#canRetry()) {
          this.#scheduleRetry();
          return;
        }
        const exhausted = this.#retriableFailure(failure) ? this.#noRetryFlags() : [];
        if (failure === 'connect')
          this.#fail(503, BODY_CONNECT, 'upstream_reset_before_response_started{connection_failure}', [
            'UF',
            ...exhausted,
          ]);
        else if (failure === 'timeout')
          this.#fail(504, 'upstream request timeout', 'upstream_response_timeout', ['UT', ...exhausted]);
        else if ((err as { code?: string }).code === 'UND_ERR_SOCKET')
          this.#fail(503, BODY_TERMINATION, 'upstream_reset_before_response_started{connection_termination}', [
            'UC',
            ...exhausted,
          ]);
        else this.#fail(503, BODY_RESET, 'upstream_reset_before_response_started{remote_reset}', ['UR', ...exhausted]);
      },
    };
  }

  #retriableStatus(status: number, header: (name: string) => string | undefined): boolean {
    const policy = this.#route.retry;
    if (!policy || policy.attempts <= 0) return false;
    const on = policy.retryOn;
    if (on.has('5xx') && status >= 500) return true;
    if (on.has('gateway-error') && status >= 502 && status <= 504) return true;
    if (on.has('retriable-4xx') && status === 409) return true;
    if (on.has('retriable-status-codes') && policy.statusCodes.has(status)) return true;
    if (on.has('envoy-ratelimited') && header('x-envoy-ratelimited') !== undefined) return true;
    const grpc = header('grpc-status');
    if (grpc !== undefined && GRPC_RETRY_ON[grpc] && on.has(GRPC_RETRY_ON[grpc])) return true;
    return false;
  }

  #retriableFailure(failure: Failure): boolean {
    const policy = this.#route.retry;
    if (!policy || policy.attempts <= 0) return false;
    const on = policy.retryOn;
    if (on.has('5xx') || on.has('gateway-error') || on.has('reset')) return true;
    if (failure === 'connect') return on.has('connect-failure') || on.has('reset-before-request');
    return false;
  }

  #canRetry(): boolean {
    const policy = this.#route.retry;
    if (!policy || this.#done || this.#retries >= policy.attempts) return false;
    if (this.#hasBody && !this.#replayable) return false;
    if (this.#cluster.tryRetry()) return true;
    this.#retryOverflow = true; // Envoy: retry circuit breaker open (UO)
    return false;
  }

  /** Flags for a retriable failure that was not retried: URX when out of attempts, UO on overflow. */
  #noRetryFlags(): string[] {
    if (this.#retryOverflow) return ['UO'];
    return (this.#route.retry?.attempts ?? 0) > 0 ? ['URX'] : [];
  }

  #scheduleRetry(): void {
    this.#retries++;
    const base = this.#route.retry?.backoffMs ?? 25;
    const delay = Math.random() * Math.min(base * (2 ** this.#retries - 1), base * 10);
    this.#backoff = setTimeout(() => {
      this.#backoff = undefined;
      this.#start();
    }, delay);
  }

  #onPerTryTimeout(attempt: Attempt): void {
    if (attempt.finished || attempt.forwarded || this.#done) return;
    this.#endAttempt(attempt, { localFailure: 'timeout' });
    attempt.controller?.abort(new Error('per-try timeout'));
    attempt.body?.destroy();
    const retriable = this.#retriableFailure('timeout');
    if (retriable && this.#canRetry()) {
      this.#scheduleRetry();
      return;
    }
    this.#fail(504, 'upstream request timeout', 'upstream_per_try_timeout', [
      'UT',
      ...(retriable ? this.#noRetryFlags() : []),
    ]);
  }

  #onGlobalTimeout(): void {
    this.#timer = undefined;
    if (this.#done) return;
    const attempt = this.#attempt;
    if (attempt && !attempt.finished) {
      this.#endAttempt(attempt, { localFailure: 'timeout' });
      attempt.controller?.abort(new Error('upstream request timeout'));
      attempt.body?.destroy();
    }
    this.#fail(504, 'upstream request timeout', 'upstream_response_timeout', ['UT']);
  }

  /**
   * The upstream's response headers as the downstream gets them: hop-by-hop headers (`drop` names
   * them, from Connection) removed, x-envoy-upstream-service-time, the hash cookie, and the
   * route's response header operations. Records the upstream service time.
   */
  #responseHeaders(
    attempt: Attempt,
    headers: Record<string, string | string[] | undefined>,
    drop: (connection: readonly string[]) => Set<string>,
  ): HeaderMap {
    const serviceMs = Number((process.hrtime.bigint() - attempt.started) / 1_000_000n);
    this.#manager.stream.info.upstreamServiceTimeMs = serviceMs;
    const connection = headers.connection;
    const dropped = drop(connection === undefined ? [] : ([] as string[]).concat(connection));
    const map = new HeaderMap();
    for (const [k, v] of Object.entries(headers)) {
      if (v === undefined || dropped.has(k)) continue;
      if (Array.isArray(v)) for (const one of v) map.add(k, one);
      else map.add(k, v);
    }
    map.replace('x-envoy-upstream-service-time', String(serviceMs));
    if (this.#setCookie) map.add('set-cookie', this.#setCookie);
    responseHeaderOps(map, this.#route, this.#dest);
    return map;
  }

  #endAttempt(attempt: Attempt, outcome: Outcome | undefined): void {
    if (attempt.finished) return;
    attempt.finished = true;
    if (attempt.perTry) clearTimeout(attempt.perTry);
    this.#cluster.requestEnded(attempt.endpoint, outcome);
    this.#cluster.release(attempt.slot);
    if (attempt.retry) this.#cluster.retryDone();
  }

  #finish(): void {
    this.#done = true;
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#backoff) clearTimeout(this.#backoff);
    this.#timer = undefined;
    this.#backoff = undefined;
    if (this.#waiting) {
      this.#cluster.release(this.#waiting);
      this.#waiting = undefined;
    }
  }

  /** Ends the request with a local reply (or a reset once the response started). */
  #fail(status: number, body: string, details: string, flags: string[]): void {
    if (this.#done) return;
    this.#finish();
    this.#releaseFlow();
    const info = this.#manager.stream.info;
    info.responseFlags.push(...flags);
    if (status === 0 || this.#manager.stream.responseStarted) this.#manager.reset(details);
    else this.#manager.sendLocalReply({ status, body, details });
  }

  #releaseFlow(): void {
    if (!this.#firstStarted) this.#flow.resume();
  }

  /** Fire-and-forget copies to the route's mirrors, Host suffixed with -shadow (before any port). */
  #mirror(): void {
    const mirrors = this.#route.mirrors;
    if (!mirrors || mirrors.length === 0 || this.#upgrade || (this.#hasBody && !this.#replayable)) return;
    const body = this.#hasBody ? Buffer.concat(this.#received) : null;
    for (const m of mirrors) {
      if (Math.random() * 100 >= m.percent) continue;
      const picked = m.cluster.pick();
      if (!picked) continue;
      const out: string[] = [];
      let authority = '';
      const drop = hopByHopNames(this.#headers.getAll('connection'));
      for (const [k, v] of this.#headers.pairs) {
        if (k === ':authority') authority = v;
        else if (k[0] !== ':' && k !== 'host' && k !== 'content-length' && !drop.has(k)) out.push(k, v);
      }
      const port = /:\d+$/.exec(authority)?.[0] ?? '';
      out.push('host', `${authority.slice(0, authority.length - port.length)}-shadow${port}`);
      picked.pool
        .request({
          path: this.#headers.get(':path') ?? '/',
          method: (this.#headers.get(':method') ?? 'GET') as Dispatcher.HttpMethod,
          headers: out,
          body,
        })
        .then((r) => r.body.dump())
        .catch(() => {});
    }
  }

  sendData(chunk: Uint8Array, endStream: boolean): void {
    if (this.#done) return;
    if (chunk.length > 0 && (this.#replayable || !this.#firstStarted)) {
      this.#received.push(chunk);
      this.#receivedBytes += chunk.length;
      if (this.#firstStarted && this.#receivedBytes > RETRY_BUFFER_LIMIT) {
        this.#replayable = false;
        this.#received = [];
      } else if (!this.#firstStarted && this.#receivedBytes > RETRY_BUFFER_LIMIT) {
        this.#flow.pause();
      }
    }
    const body = this.#attempt && !this.#attempt.finished ? this.#attempt.body : undefined;
    if (body && !body.writableEnded) {
      if (chunk.length > 0 && !body.write(chunk)) this.#flow.pause();
      if (endStream) body.end();
    }
    if (endStream) this.#requestEnded();
  }

  sendTrailers(_trailers: HeaderMap): void {
    // HTTP/1.1 request trailers are not forwarded by undici; the body still ends here.
    this.sendData(new Uint8Array(0), true);
  }

  abort(): void {
    // A tunnel (or a 101 not yet relayed) goes down with the stream.
    this.#upgradedSocket?.destroy();
    if (this.#done) return;
    this.#finish();
    const attempt = this.#attempt;
    if (attempt && !attempt.finished) {
      this.#endAttempt(attempt, undefined);
      attempt.controller?.abort(new Error('request aborted by the proxy'));
      attempt.body?.destroy();
    }
  }
}
