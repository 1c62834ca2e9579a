// One downstream TCP connection through the network filter chain to an upstream picked by the
// listener's routes, as Envoy's tcp_proxy: reading from the client waits until the upstream is
// connected; bytes pass unchanged unless a filter changes them; a half-close (FIN) travels to the
// other side and the connection ends when both directions have; a reset (RST) on either side
// resets the other; connect timeout (cluster connectTimeout) and idle timeout (tcp.idleTimeout).
// The cluster's circuit breaker (tcp.maxConnections) refuses connections over the limit (UO), its
// outlier detection counts connect failures (as gateway errors) and successes, and its TLS
// settings (DestinationRule tls SIMPLE / MUTUAL) make the upstream connection TLS.
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { TCP_REPORTING_MS, type TcpMetrics } from '../filters/stats/tcp-metrics.ts';
import { type Cluster, type ClusterEndpoint, tlsConnectOptions } from '../router/cluster.ts';
import type { Outcome } from '../router/outlier.ts';
import {
  type ConnectionInfo,
  type NetworkFilterFactory,
  NetworkFilterManager,
  type NetworkTerminal,
  Peer,
  type PeerValue,
} from './network-filter-manager.ts';
import { pickDestination, selectTcpRoute, type TcpRoute } from './plan.ts';

export interface TcpProxyConfig {
  listenerName: string;
  filters: readonly NetworkFilterFactory[];
  routes: readonly TcpRoute[];
  metrics?: TcpMetrics;
  accessLog?: (c: ConnectionInfo, durationMs: number, details: string) => void;
  onError?: (message: string, err?: unknown) => void;
}

let lastConnectionId = 0;

/** Connection ids (connection.id) for L4 connections, TCP proxy and HTTP listeners alike. */
export function newConnectionId(): number {
  return ++lastConnectionId;
}

const EMPTY = new Uint8Array(0);

const strip = (a: string | undefined) => (a ?? '').replace(/^::ffff:/, '');

/** Resets a connection (RST); a TLS socket, which cannot be reset from JS, is destroyed. */
export function resetSocket(s: Socket): void {
  try {
    s.resetAndDestroy();
  } catch {
    s.destroy();
  }
}

/** A TCP or (the cluster's DestinationRule tls) TLS connection to an endpoint. */
function connectEndpoint(cluster: Cluster, e: ClusterEndpoint): { socket: Socket; ready: 'connect' | 'secureConnect' } {
  const options = { host: e.host, port: e.port, allowHalfOpen: true, noDelay: true };
  const tls = cluster.options.tls;
  if (!tls) return { socket: connect(options), ready: 'connect' };
  // SNI is DestinationRule tls.sni (no HTTP Host to take it from). Without sni and
  // subjectAltNames the chain is verified, not the name, as Envoy does for TCP.
  const checkName = tls.sni !== undefined || (tls.subjectAltNames?.length ?? 0) > 0;
  const socket = tlsConnect({
    ...options,
    ...tlsConnectOptions(tls),
    servername: tls.sni,
    ...(checkName || tls.error ? {} : { checkServerIdentity: () => undefined }),
  });
  return { socket, ready: 'secureConnect' };
}

export class TcpProxySession {
  readonly info: ConnectionInfo;
  readonly #config: TcpProxyConfig;
  readonly #down: Socket;
  #up: Socket | undefined;
  #upConnected = false;
  /** Bytes for the upstream before it is connected. */
  #pendingUp: { data: Uint8Array; end: boolean }[] = [];
  readonly #manager: NetworkFilterManager;
  readonly #startHr = process.hrtime.bigint();
  #downClosed = false;
  #upClosed = true; // no upstream yet
  #finished = false;
  #details = '';
  #idleMs = 0;
  #idleTimer: NodeJS.Timeout | undefined;
  #lastActivity = Date.now();
  #reportTimer: NodeJS.Timeout | undefined;
  /** Who closed the client connection first. */
  #downPeer: PeerValue = Peer.REMOTE;
  #onDone: (s: TcpProxySession) => void;
  /** Reads paused: waiting for the upstream, or for it to drain. */
  #readBlocked = { connect: true, drain: false };

  /** `socket` is the client connection (a TLS socket when the listener terminated TLS: `tls`). */
  constructor(
    socket: Socket,
    config: TcpProxyConfig,
    onDone: (s: TcpProxySession) => void,
    sni?: string,
    tls?: ConnectionInfo['tls'],
  ) {
    this.#config = config;
    this.#down = socket;
    this.#onDone = onDone;
    this.info = {
      id: newConnectionId(),
      listenerName: config.listenerName,
      startTime: Date.now(),
      sourceAddress: strip(socket.remoteAddress),
      sourcePort: socket.remotePort ?? 0,
      destinationAddress: strip(socket.localAddress),
      destinationPort: socket.localPort ?? 0,
      requestedServerName: sni,
      tls,
      bytesReceived: 0,
      bytesSent: 0,
      responseFlags: [],
      properties: new Map(),
    };
    const terminal: NetworkTerminal = {
      onNewConnection: () => this.#connectUpstream(),
      onData: (data, end) => this.#toUpstream(data, end),
      onWrite: (data, end) => this.#toDownstream(data, end),
    };
    this.#manager = new NetworkFilterManager(config.filters, this.info, terminal, (details) => this.close(details));
  }

  /** Starts the filter chain and reads from the client. `head` is bytes already read (SNI peek). */
  start(head?: Uint8Array): void {
    const s = this.#down;
    s.setNoDelay(true);
    s.on('data', (chunk: Buffer) => {
      this.info.bytesReceived += chunk.length;
      this.#touch();
      this.#manager.onRead(chunk, false);
    });
    s.on('end', () => this.#manager.onRead(EMPTY, true));
    s.on('error', (err: NodeJS.ErrnoException) => {
      // A reset by the client: reset the upstream too.
      if (!this.#details) this.#details = err.code === 'ECONNRESET' ? 'downstream_reset' : `downstream_${err.code}`;
      if (this.#up) resetSocket(this.#up);
    });
    s.on('close', () => this.#downstreamGone());
    s.pause();
    this.#manager.start();
    if (head && head.length > 0 && !this.#finished) {
      this.info.bytesReceived += head.length;
      this.#manager.onRead(head, false);
    }
    this.#updateReading();
  }

  #updateReading(): void {
    if (this.#down.destroyed) return;
    if (this.#readBlocked.connect || this.#readBlocked.drain) this.#down.pause();
    else this.#down.resume();
  }

  #touch(): void {
    this.#lastActivity = Date.now();
  }

  #armIdle(ms: number): void {
    this.#idleMs = ms;
    if (ms <= 0) return;
    const check = () => {
      const left = this.#lastActivity + this.#idleMs - Date.now();
      if (left > 0) {
        this.#idleTimer = setTimeout(check, left);
        this.#idleTimer.unref();
        return;
      }
      this.close('idle_timeout');
    };
    this.#idleTimer = setTimeout(check, ms);
    this.#idleTimer.unref();
  }

  #fail(flag: string, details: string): void {
    this.info.responseFlags.push(flag);
    this.close(details);
  }

  /** The terminal's new connection: route, pick an endpoint, connect (reads wait for it). */
  #connectUpstream(): void {
    const route = selectTcpRoute(this.#config.routes, this.info.requestedServerName);
    if (!route) {
      this.#fail('NR', 'filter_chain_not_found');
      return;
    }
    this.info.routeName = route.name;
    const dest = pickDestination(route);
    if (!dest) {
      this.#fail('NR', 'no_route_destination');
      return;
    }
    const cluster = dest.cluster;
    this.info.upstreamCluster = cluster.name;
    this.#armIdle(route.idleTimeoutMs);
    const go = () => {
      if (this.#finished || this.#downClosed) return;
      // Circuit breaker first, then the host, as Envoy's tcp_proxy.
      if (!cluster.admitConnection()) {
        this.#fail('UO', 'upstream_cx_overflow');
        return;
      }
      let slot = true;
      const releaseSlot = () => {
        if (!slot) return;
        slot = false;
        cluster.releaseConnection();
      };
      const picked = cluster.pick();
      if (!picked) {
        releaseSlot();
        this.#fail('UH', 'no_healthy_upstream');
        return;
      }
      const e = picked.endpoint;
      cluster.requestStarted(e);
      let counted = true;
      /** The endpoint's count goes down once, with the connect's outcome if it failed. */
      const endpointDone = (outcome: Outcome | undefined) => {
        if (!counted) return;
        counted = false;
        cluster.requestEnded(e, outcome);
        releaseSlot();
      };
      this.info.upstreamAddress = e.host;
      this.info.upstreamPort = e.port;
      const metrics = this.#config.metrics;
      if (metrics) {
        metrics.report(this.info);
        this.#reportTimer = setInterval(() => metrics.report(this.info), TCP_REPORTING_MS);
        this.#reportTimer.unref();
      }
      const { socket: up, ready } = connectEndpoint(cluster, e);
      this.#up = up;
      this.#upClosed = false;
      let ended = false;
      const timeoutMs = cluster.options.connectTimeoutMs ?? 10_000;
      const timer = setTimeout(() => {
        if (this.#upConnected) return;
        endpointDone({ localFailure: 'timeout' });
        up.destroy();
        this.#fail('UF', 'upstream_connect_timeout');
      }, timeoutMs);
      timer.unref();
      up.once(ready, () => {
        clearTimeout(timer);
        this.#upConnected = true;
        // A connect success resets the endpoint's consecutive failures (Envoy: LocalOriginConnectSuccessFinal).
        cluster.record(e, { status: 200 });
        this.info.upstreamAddress = strip(up.remoteAddress) || e.host;
        this.info.upstreamPort = up.remotePort ?? e.port;
        for (const p of this.#pendingUp) this.#writeUp(p.data, p.end);
        this.#pendingUp = [];
        this.#readBlocked.connect = false;
        this.#updateReading();
      });
      up.on('data', (chunk: Buffer) => {
        this.#touch();
        this.#manager.onUpstreamData(chunk, false);
      });
      up.on('end', () => {
        ended = true;
        this.#manager.onUpstreamData(EMPTY, true);
        this.#manager.upstreamClosed(Peer.UNKNOWN);
      });
      up.on('drain', () => {
        this.#readBlocked.drain = false;
        this.#updateReading();
      });
      up.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (!this.#upConnected) {
          // A refused, unreachable or failed TLS connect: a gateway error for outlier detection.
          endpointDone({ localFailure: 'connect' });
          this.#fail('UF', `upstream_connect_error:${err.code ?? err.message}`);
          return;
        }
        if (!this.#details) this.#details = err.code === 'ECONNRESET' ? 'upstream_reset' : `upstream_${err.code}`;
        // A reset by the upstream: reset the client too.
        if (!this.#down.destroyed) resetSocket(this.#down);
      });
      up.on('close', () => {
        clearTimeout(timer);
        endpointDone(undefined);
        this.#upClosed = true;
        this.#manager.upstreamClosed(ended ? Peer.UNKNOWN : Peer.REMOTE);
        // The upstream went away without a FIN of its own reaching the client (closed by us, or
        // an error): the client connection goes too.
        if (!ended && !this.#down.destroyed) this.#down.destroySoon();
        this.#maybeFinish();
      });
    };
    const ready = cluster.ready();
    if (ready) void ready.then(go);
    else go();
  }

  #writeUp(data: Uint8Array, end: boolean): void {
    const up = this.#up;
    if (!up || up.destroyed) return;
    if (data.length > 0 && !up.write(data)) {
      this.#readBlocked.drain = true;
      this.#updateReading();
    }
    if (end) up.end();
  }

  #toUpstream(data: Uint8Array, end: boolean): void {
    if (!this.#upConnected) {
      this.#pendingUp.push({ data, end });
      return;
    }
    this.#writeUp(data, end);
  }

  #toDownstream(data: Uint8Array, end: boolean): void {
    const d = this.#down;
    if (d.destroyed || d.writableEnded) return;
    if (data.length > 0) {
      this.info.bytesSent += data.length;
      if (!d.write(data) && this.#up) {
        this.#up.pause();
        d.once('drain', () => this.#up?.resume());
      }
    }
    if (end) d.end();
  }

  /** Closes both sides, flushing what was written (idle timeout, a plugin's close, a failure). */
  close(details: string): void {
    if (this.#finished) return;
    if (!this.#details) this.#details = details;
    this.#downPeer = Peer.LOCAL;
    if (!this.#down.destroyed) this.#down.destroySoon();
    if (this.#up && !this.#up.destroyed) this.#up.destroy();
  }

  #downstreamGone(): void {
    this.#downClosed = true;
    this.#manager.downstreamClosed(this.#downPeer);
    if (this.#up && !this.#up.destroyed) {
      // The client is gone: nothing more can reach it. What was written upstream is flushed first
      // (the client may have written its last bytes and FIN after the upstream's FIN).
      if (this.#details === 'downstream_reset') resetSocket(this.#up);
      else this.#up.destroySoon();
    }
    this.#maybeFinish();
  }

  #maybeFinish(): void {
    if (this.#finished || !this.#downClosed || !this.#upClosed) return;
    this.#finished = true;
    clearTimeout(this.#idleTimer);
    clearInterval(this.#reportTimer);
    try {
      this.#manager.destroy();
    } catch (err) {
      this.#config.onError?.('network filter failed at connection end', err);
    }
    this.#config.metrics?.closed(this.info);
    const durationMs = Number((process.hrtime.bigint() - this.#startHr) / 1_000_000n);
    this.#config.accessLog?.(this.info, durationMs, this.#details);
    this.#onDone(this);
  }

  /** Shutdown: both sides go now, without waiting for a client that does not read. */
  destroy(): void {
    if (this.#finished) return;
    if (!this.#details) this.#details = 'listener_closed';
    this.#downPeer = Peer.LOCAL;
    this.#down.destroy();
    this.#up?.destroy();
  }
}
