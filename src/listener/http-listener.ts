// An HTTP/1.1 listener: turns each request into an HttpStream with Envoy's request headers
// (pseudo-headers, hop-by-hop removed, x-forwarded-*, x-request-id) and drives it through a
// FilterManager to the router.
import http from 'node:http';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { FilterFactory } from '../pipeline/filter.ts';
import { FilterManager } from '../pipeline/filter-manager.ts';
import { HeaderMap } from '../pipeline/headers.ts';
import type { HttpStream } from '../pipeline/stream.ts';
import type { RouteTable } from '../router/route-table.ts';
import { createUpstreamRequest } from '../router/router.ts';
import { requestStream } from './request.ts';
import type { ListenerTls } from './tls.ts';
import { handleUpgrade, shouldUpgrade } from './upgrade.ts';

export interface ListenerConfig {
  name: string;
  host: string;
  port: number;
  chain: readonly FilterFactory[];
  routes: RouteTable;
  requestBufferLimit?: number;
  responseBufferLimit?: number;
  /** Terminate TLS (HTTP/1.1 and HTTP/2 by ALPN). Without it the port speaks HTTP/1.1 and h2c. */
  tls?: ListenerTls;
  /** Answer every request with a 301 to https:// (Gateway tls.httpsRedirect). */
  httpsRedirect?: boolean;
  /** SO_REUSEPORT: several worker threads listen on the same port (the kernel spreads connections). */
  reusePort?: boolean;
  /** Envoy's xff_num_trusted_hops: the client address is taken this many hops from the right of X-Forwarded-For. */
  xffNumTrustedHops?: number;
}

type Request = http.IncomingMessage | http2.Http2ServerRequest;
type Response = http.ServerResponse | http2.Http2ServerResponse;

/** The client connection preface of HTTP/2 (RFC 9113 §3.4): h2c with prior knowledge. */
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

function startsLikeH2(chunk: Buffer): boolean {
  const n = Math.min(chunk.length, H2_PREFACE.length);
  return n > 0 && chunk.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
}

export interface ListenerHooks {
  onComplete(stream: HttpStream): void;
  onError(message: string, err: unknown): void;
}

const DEFAULT_BUFFER_LIMIT = 1024 * 1024;
const connectionIds = new WeakMap<object, number>();
const busy = new WeakMap<object, number>();
let lastConnectionId = 0;
/** Headers as an object (repeated names as arrays), without pseudo-headers, for HTTP/2 responses. */
function headersObject(pairs: [string, string][]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of pairs) {
    if (k[0] === ':') continue;
    const cur = out[k];
    out[k] = cur === undefined ? v : Array.isArray(cur) ? [...cur, v] : [cur, v];
  }
  return out;
}

/** One id per downstream connection (for HTTP/2, per session: streams share it). */
function connectionKey(req: Request, socket: object): number {
  const key = 'stream' in req ? (req.stream.session ?? socket) : socket;
  let id = connectionIds.get(key);
  if (id === undefined) {
    id = ++lastConnectionId;
    connectionIds.set(key, id);
  }
  return id;
}
const EMPTY = new Uint8Array(0);

export class HttpListener {
  /** Read once per request: a swap (hot reload) applies to requests that start after it. */
  config: ListenerConfig;
  /** What accepts connections: a TLS server (h2 + HTTP/1.1 by ALPN) or a TCP server that sniffs h2c. */
  readonly server: net.Server;
  readonly #http1: http.Server | undefined;
  readonly #http2: http2.Http2Server | http2.Http2SecureServer;
  readonly #hooks: ListenerHooks;
  readonly #sessions = new Set<http2.Http2Session>();
  readonly #sockets = new Set<net.Socket>();
  /** Downstream sockets upgrading to, or carrying, a WebSocket tunnel. */
  readonly #tunnels = new Set<Duplex>();
  #closing = false;
  #draining = false;

  constructor(config: ListenerConfig, hooks: ListenerHooks) {
    this.config = config;
    this.#hooks = hooks;
    const handle = (req: Request, res: Response) => this.#handle(req, res);
    if (config.tls) {
      this.#http2 = http2.createSecureServer({ ...config.tls.options, allowHTTP1: true }, handle);
      this.server = this.#http2;
    } else {
      this.#http1 = http.createServer(
        { requireHostHeader: false, joinDuplicateHeaders: false, keepAliveTimeout: 60_000 },
        handle,
      );
      this.#http1.on('clientError', (err, socket) => {
        if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
        else socket.destroy(err);
      });
      // The HTTP/1 server never listens itself; 'listening' starts its connection tracking, which
      // closeIdleConnections() and the header/request timeouts rely on.
      this.#http1.emit('listening');
      this.#http2 = http2.createServer(handle);
      const h1 = this.#http1;
      const h2 = this.#http2;
      // One port, both codecs (Envoy's AUTO): the first bytes say whether it is h2c.
      this.server = net.createServer((socket) => {
        socket.once('data', (chunk) => {
          socket.pause();
          socket.unshift(chunk);
          if (startsLikeH2(chunk)) {
            // The HTTP/2 session reads what is buffered on the socket itself.
            h2.emit('connection', socket);
          } else {
            h1.emit('connection', socket);
            socket.resume();
          }
        });
        socket.on('error', () => socket.destroy());
      });
    }
    // Every connection, for close(): idle HTTP/1 sockets are destroyed, busy ones close after
    // their response; HTTP/2 sessions get a GOAWAY and finish their streams.
    this.server.on(config.tls ? 'secureConnection' : 'connection', (socket: net.Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
    this.#http2.on('session', (session) => {
      this.#sessions.add(session);
      if (this.#draining) setImmediate(() => session.close());
      session.once('close', () => this.#sessions.delete(session));
    });
    this.#http2.on('sessionError', () => {});
    // WebSocket upgrades (HTTP/1.1, plain or over TLS); `Upgrade: h2c` stays a plain request.
    const upgradeServer = (this.#http1 ?? this.#http2) as http.Server & {
      shouldUpgradeCallback?: (req: http.IncomingMessage) => boolean;
    };
    upgradeServer.shouldUpgradeCallback = shouldUpgrade;
    upgradeServer.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) =>
      handleUpgrade(
        { config: this.config, hooks: this.#hooks, connectionId: connectionKey(req, socket), tunnels: this.#tunnels },
        req,
        socket,
        head,
      ),
    );
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      // reusePort: every worker thread listens on the same port; the kernel spreads connections.
      this.server.listen({ port: this.config.port, host: this.config.host, reusePort: this.config.reusePort }, () => {
        this.server.off('error', reject);
        resolve((this.server.address() as AddressInfo).port);
      });
    });
  }

  /**
   * Swaps chain, routes and TLS settings for requests that start from now on; in-flight requests
   * finish with what they started with. The port and the TLS-or-not choice cannot change here.
   */
  update(config: ListenerConfig): void {
    if (config.tls && this.config.tls) (this.server as http2.Http2SecureServer).setSecureContext(config.tls.options);
    this.config = { ...config, port: this.config.port };
  }

  /** Whether `config` can replace this listener's in place (same TLS-or-plaintext choice). */
  canUpdate(config: ListenerConfig): boolean {
    return Boolean(config.tls) === Boolean(this.config.tls);
  }

  /** The port actually bound (differs from config.port when that is 0). */
  get boundPort(): number {
    const a = this.server.address();
    return a && typeof a === 'object' ? a.port : this.config.port;
  }

  /** Open downstream connections (HTTP/1 sockets and HTTP/2 sessions). */
  get connections(): number {
    return this.#sockets.size;
  }

  /**
   * Graceful drain: keep serving, but every HTTP/1 response says `Connection: close` and every
   * HTTP/2 session gets a GOAWAY, so clients move away without a failed request.
   */
  drain(): void {
    if (this.#draining) return;
    this.#draining = true;
    for (const s of this.#sessions) if (!s.closed) s.close();
    for (const socket of this.#sockets)
      if (!busy.get(socket) && !this.#isH2(socket) && !this.#tunnels.has(socket)) socket.destroy();
  }

  #isH2(socket: net.Socket): boolean {
    for (const s of this.#sessions) if (s.socket === socket || (s.socket as unknown) === socket) return true;
    return false;
  }

  get draining(): boolean {
    return this.#draining;
  }

  close(): Promise<void> {
    this.#closing = true;
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.#http1?.close();
      for (const s of this.#sessions) s.close();
      for (const socket of this.#sockets) if (!busy.get(socket)) socket.destroy();
    });
  }

  #redirect(req: Request, res: http.ServerResponse, authority: string): void {
    const host = authority.replace(/:\d+$/, '');
    res.writeHead(301, { location: `https://${host}${req.url ?? '/'}`, 'content-length': '0' });
    res.end();
  }

  #handle(req: Request, response: Response): void {
    // The HTTP/2 compatibility API mirrors http.ServerResponse for everything used here.
    const res = response as http.ServerResponse;
    const socket = req.socket;
    const h2 = req.httpVersionMajor === 2;
    const config = this.config;
    const scheme = config.tls ? 'https' : 'http';
    const authority = (h2 ? (req.headers[':authority'] as string | undefined) : req.headers.host) ?? '';
    if (config.httpsRedirect) {
      this.#redirect(req, res, authority);
      return;
    }
    const { stream, normalized } = requestStream(req, {
      scheme,
      authority,
      h2,
      connectionId: connectionKey(req, socket),
      xffNumTrustedHops: config.xffNumTrustedHops,
    });
    if (!h2) {
      // In-flight HTTP/1 requests per socket: close() spares busy sockets, which close after.
      busy.set(socket, (busy.get(socket) ?? 0) + 1);
      res.once('close', () => {
        const n = (busy.get(socket) ?? 1) - 1;
        busy.set(socket, n);
        if (n === 0 && (this.#closing || this.#draining)) socket.destroy();
      });
    }
    const isHead = req.method === 'HEAD';
    const drainWaiters: (() => void)[] = [];
    res.on('drain', () => {
      for (const fn of drainWaiters.splice(0)) fn();
    });
    const flow = {
      pause: () => req.pause(),
      resume: () => req.resume(),
      onDrain: (fn: () => void) => drainWaiters.push(fn),
      writeBlocked: () => res.writableNeedDrain,
    };
    const manager = new FilterManager(
      stream,
      config.chain,
      {
        writeHeaders: (status, h, endStream) => {
          if (h2) res.writeHead(status, headersObject(h.pairs));
          else {
            // Draining or closing: this response is the connection's last.
            if (this.#closing || this.#draining) res.setHeader('connection', 'close');
            res.writeHead(status, h.toFlat());
          }
          if (endStream || isHead) res.end();
        },
        writeData: (chunk, endStream) => {
          if (res.writableEnded) return;
          stream.info.bytesSent += chunk.length;
          if (isHead) {
            if (endStream) res.end();
            return;
          }
          if (endStream) res.end(chunk.length > 0 ? chunk : undefined);
          else if (chunk.length > 0) res.write(chunk);
        },
        writeTrailers: (t) => {
          if (!res.writableEnded) {
            res.addTrailers(h2 ? headersObject(t.pairs) : t.pairs.filter(([k]) => k[0] !== ':'));
            res.end();
          }
        },
        reset: () => {
          res.destroy();
        },
      },
      (m) => {
        const route = config.routes.find(stream.requestHeaders, config.port);
        return createUpstreamRequest(m, route, flow);
      },
      {
        requestBufferLimit: config.requestBufferLimit ?? DEFAULT_BUFFER_LIMIT,
        responseBufferLimit: config.responseBufferLimit ?? DEFAULT_BUFFER_LIMIT,
        onComplete: (s) => this.#hooks.onComplete(s),
      },
    );
    res.on('close', () => {
      if (!res.writableFinished) manager.downstreamAborted();
    });
    const hasBody = h2
      ? !(req as http2.Http2ServerRequest).stream.endAfterHeaders
      : req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
    if ('reject' in normalized) {
      req.resume();
      manager.sendLocalReply({
        status: 400,
        body: 'Bad Request',
        details: `path_normalization_failed{${normalized.reject}}`,
      });
      return;
    }
    try {
      manager.decodeHeaders(!hasBody);
    } catch (err) {
      this.#hooks.onError('filter chain failed on request headers', err);
      manager.sendLocalReply({ status: 500, body: 'Internal Server Error', details: 'filter_chain_error' });
    }
    if (!hasBody) {
      req.resume();
      return;
    }
    req.on('data', (chunk: Buffer) => {
      stream.info.bytesReceived += chunk.length;
      manager.decodeData(chunk, false);
    });
    req.on('end', () => {
      const trailers = req.rawTrailers;
      if (trailers.length > 0) manager.decodeTrailers(HeaderMap.fromRaw(trailers));
      else manager.decodeData(EMPTY, true);
    });
  }
}
