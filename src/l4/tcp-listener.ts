// L4 listeners: one net.Server per Gateway TCP / TLS port. Each connection runs the port's
// NETWORK plugins and the TCP proxy (src/l4/tcp-proxy.ts); on a port with TLS servers that
// terminate (SIMPLE / MUTUAL), after the TLS handshake, on the decrypted bytes. A reload swaps a
// listener's configuration for new connections (open connections finish on the one they started
// with); ports no longer configured close, new ones open.
import { createServer, type Server, type Socket } from 'node:net';
import { type TLSSocket, type TlsOptions, Server as TlsServer } from 'node:tls';
import type { TcpMetrics } from '../filters/stats/tcp-metrics.ts';
import { LiveSet } from '../util/live-set.ts';
import { tlsInfo } from './http-network.ts';
import type { ConnectionInfo, NetworkFilterFactory } from './network-filter-manager.ts';
import { sniCovers, type TcpRoute } from './plan.ts';
import { peekSni } from './sni.ts';
import { tcpAccessLogLine } from './tcp-access-log.ts';
import { TcpProxySession } from './tcp-proxy.ts';

/** TLS terminated on an L4 port (Gateway `protocol: TLS` servers with mode SIMPLE or MUTUAL). */
export interface TcpTlsTermination {
  /** The server side's TLS options (certificates by SNI, client certificates for MUTUAL). */
  options: TlsOptions;
  /** Hosts of PASSTHROUGH servers on the same port: a ClientHello naming one is passed through. */
  passthroughHosts: string[];
}

export interface TcpListenerConfig {
  name: string;
  host: string;
  port: number;
  /** TLS passthrough: routes choose by the ClientHello's SNI. */
  sni: boolean;
  /** TLS terminated here, then TCP (routes: `tcp[]`). */
  terminate?: TcpTlsTermination;
  filters: NetworkFilterFactory[];
  routes: TcpRoute[];
  reusePort?: boolean;
}

export interface TcpListenerHooks {
  metrics?: TcpMetrics;
  accessLog?: (line: string) => void;
  onError: (message: string, err?: unknown) => void;
}

/** How long a TLS passthrough connection may take to send its ClientHello (Envoy's tls_inspector: 15 s). */
const SNI_TIMEOUT_MS = 15_000;

export class TcpListener {
  config: TcpListenerConfig;
  readonly #hooks: TcpListenerHooks;
  readonly #server: Server;
  readonly #sessions = new LiveSet<TcpProxySession>();
  /** Connections still in their TLS handshake (terminated ports). */
  readonly #handshakes = new LiveSet<Socket>();
  /**
   * Node's TLS server for a termination config (it never listens: it is handed sockets): the
   * handshake, certificates by SNI, client certificate checks (MUTUAL) and the handshake timeout.
   */
  #tls: { for: TcpTlsTermination; server: TlsServer } | undefined;
  #port = 0;

  constructor(config: TcpListenerConfig, hooks: TcpListenerHooks) {
    this.config = config;
    this.#hooks = hooks;
    this.#server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => this.#accept(socket));
    this.#server.on('error', (err) => hooks.onError(`tcp listener ${config.name}`, err));
  }

  /**
   * A TCP proxy session for a client connection (a TLS socket when TLS was terminated). As Istio
   * builds the filter chains: TLS passed through takes `tls[]` routes (by SNI), TLS terminated
   * and plain TCP take `tcp[]` routes.
   */
  #start(config: TcpListenerConfig, socket: Socket, sni?: string, head?: Uint8Array): void {
    const secure = (socket as TLSSocket).encrypted ? (socket as TLSSocket) : undefined;
    const passthrough = config.sni && !secure;
    const session = new TcpProxySession(
      socket,
      {
        listenerName: config.name,
        filters: config.filters,
        routes: config.routes.filter((r) => (r.sniHosts !== undefined) === passthrough),
        metrics: this.#hooks.metrics,
        accessLog: this.#hooks.accessLog
          ? (c: ConnectionInfo, ms: number, details: string) => this.#hooks.accessLog!(tcpAccessLogLine(c, ms, details))
          : undefined,
        onError: this.#hooks.onError,
      },
      (s) => this.#sessions.delete(s),
      sni,
      secure ? tlsInfo(secure) : undefined,
    );
    this.#sessions.add(session);
    session.start(head);
  }

  #accept(socket: Socket): void {
    const config = this.config;
    const terminate = config.terminate;
    if (!config.sni && !terminate) {
      this.#start(config, socket);
      return;
    }
    socket.on('error', () => {});
    const handshake = (t: TcpTlsTermination, head?: Uint8Array) => {
      // Bytes read for the SNI go back first: the TLS socket reads them as the ClientHello.
      if (head && head.length > 0) socket.unshift(head);
      this.#handshakes.add(socket);
      socket.once('close', () => this.#handshakes.delete(socket));
      this.#tlsServer(config, t).emit('connection', socket);
    };
    if (terminate && terminate.passthroughHosts.length === 0) {
      handshake(terminate);
      return;
    }
    peekSni(socket, SNI_TIMEOUT_MS).then(
      ({ sni, head }) => {
        const passthrough = sni !== undefined && terminate?.passthroughHosts.some((h) => sniCovers(h, sni));
        if (terminate && !passthrough) handshake(terminate, head);
        else this.#start(config, socket, sni, head);
      },
      () => socket.destroy(),
    );
  }

  /** The TLS server of `config` (whose termination is `t`), made once per configuration. */
  #tlsServer(config: TcpListenerConfig, t: TcpTlsTermination): TlsServer {
    if (this.#tls?.for === t) return this.#tls.server;
    const server = new TlsServer({ ...t.options, handshakeTimeout: SNI_TIMEOUT_MS }, (secure: TLSSocket) => {
      secure.allowHalfOpen = true; // a FIN travels through, as on plain TCP
      this.#start(config, secure, secure.servername || undefined);
    });
    // A failed handshake (no or a bad client certificate, timeout): the connection just closes.
    server.on('tlsClientError', (_err, secure) => secure.destroy());
    this.#tls = { for: t, server };
    return server;
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen({ port: this.config.port, host: this.config.host, reusePort: this.config.reusePort }, () => {
        this.#server.off('error', reject);
        const a = this.#server.address();
        this.#port = typeof a === 'object' && a ? a.port : this.config.port;
        resolve(this.#port);
      });
    });
  }

  get boundPort(): number {
    return this.#port;
  }

  get connections(): number {
    return this.#sessions.size;
  }

  /** New connections use `config`; open ones keep theirs. */
  update(config: TcpListenerConfig): void {
    this.config = config;
  }

  /** Graceful drain: raw TCP has nothing to tell a client, so connections go on until they end. */
  drain(): void {}

  /** Stops accepting and closes every connection. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      for (const s of this.#sessions) s.destroy();
      for (const s of this.#handshakes) s.destroy();
      if (!this.#server.listening) return resolve();
      this.#server.close(() => resolve());
    });
  }
}

/** Every L4 listener of a Gateway, applied as a whole on start and reload. */
export class TcpListeners {
  readonly listeners = new Map<number, TcpListener>();
  readonly #hooks: TcpListenerHooks;

  constructor(hooks: TcpListenerHooks) {
    this.#hooks = hooks;
  }

  /**
   * Opens new ports first (a failure closes them again and throws, leaving the running set as
   * it was), updates the ports that stay, and closes the ports no longer configured. Returns the
   * bound ports of `configs`, in order, and what changed.
   */
  async apply(configs: TcpListenerConfig[]): Promise<{ ports: number[]; added: number[]; removed: number[] }> {
    const opened: TcpListener[] = [];
    const ports: number[] = [];
    try {
      for (const c of configs) {
        if (this.listeners.has(c.port)) continue;
        const l = new TcpListener(c, this.#hooks);
        await l.listen();
        opened.push(l);
      }
    } catch (err) {
      await Promise.all(opened.map((l) => l.close()));
      throw err;
    }
    const added = opened.map((l) => l.config.port);
    for (const l of opened) this.listeners.set(l.config.port, l);
    for (const c of configs) {
      const l = this.listeners.get(c.port)!;
      if (!opened.includes(l)) l.update(c);
      ports.push(l.boundPort);
    }
    const removed: number[] = [];
    const keep = new Set(configs.map((c) => c.port));
    for (const [port, l] of this.listeners) {
      if (keep.has(port)) continue;
      this.listeners.delete(port);
      removed.push(port);
      void l.close();
    }
    return { ports, added, removed };
  }

  get connections(): number {
    let n = 0;
    for (const l of this.listeners.values()) n += l.connections;
    return n;
  }

  drain(): void {
    for (const l of this.listeners.values()) l.drain();
  }

  async close(): Promise<void> {
    await Promise.all([...this.listeners.values()].map((l) => l.close()));
    this.listeners.clear();
  }
}
