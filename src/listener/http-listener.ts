// An HTTP/1.1 listener: turns each request into an HttpStream with Envoy's request headers
// (pseudo-headers, hop-by-hop removed, x-forwarded-*, x-request-id) and drives it through a
// FilterManager to the router.
import http, { STATUS_CODES } from 'node:http';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type tls from 'node:tls';
import { NetworkConnection } from '../l4/http-network.ts';
import type { NetworkFilterFactory } from '../l4/network-filter-manager.ts';
import type { FilterFactory } from '../pipeline/filter.ts';
import { FilterManager } from '../pipeline/filter-manager.ts';
import { HeaderMap } from '../pipeline/headers.ts';
import { HttpStream, newStreamInfo } from '../pipeline/stream.ts';
import type { RouteTable } from '../router/route-table.ts';
import { createUpstreamRequest } from '../router/router.ts';
import { LiveSet } from '../util/live-set.ts';
import {
  checkRequestHead,
  declaredLength,
  H2_CONNECTION_WINDOW,
  H2_INITIAL_STREAM_WINDOW,
  type ListenerLimits,
  parserRejection,
  type Rejection,
  resolveLimits,
} from './limits.ts';
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
  /**
   * Header, body, timeout and connection limits (src/listener/limits.ts; defaults for anything
   * left out). Fixed when the listener starts: a reload does not change them.
   */
  limits?: Partial<ListenerLimits>;
  /**
   * NETWORK plugins: run on the connection's bytes beneath HTTP (src/l4/http-network.ts). Read
   * when a connection is accepted; absent or empty, the socket goes to the HTTP server as it is.
   */
  network?: readonly NetworkFilterFactory[];
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
/** HTTP/1 sockets whose request body is being read: how to answer Node's request timeout (408). */
const requestTimeouts = new WeakMap<object, () => void>();

/** An HTTP/1.1 response head and body that closes the connection, for refusals made outside a stream. */
function closingResponse(r: Rejection): string {
  return (
    `HTTP/1.1 ${r.status} ${STATUS_CODES[r.status] ?? 'Error'}\r\ncontent-type: text/plain\r\n` +
    `content-length: ${Buffer.byteLength(r.body)}\r\nconnection: close\r\n\r\n${r.body}`
  );
}

/** "METHOD target" of a request line Node refused, when it is printable; for the access log. */
function requestLineOf(packet: Buffer | undefined): { method?: string; path?: string } {
  if (!packet) return {};
  const m = /^([A-Z]{1,20}) ([\x21-\x7e]{1,2048}) HTTP\/\d\.\d\r?\n/.exec(packet.subarray(0, 2100).toString('latin1'));
  return m ? { method: m[1], path: m[2] } : {};
}
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
  readonly #sessions = new LiveSet<http2.Http2Session>();
  readonly #sockets = new LiveSet<net.Socket>();
  /** Downstream sockets upgrading to, or carrying, a WebSocket tunnel. */
  readonly #tunnels = new Set<Duplex>();
  #closing = false;
  #draining = false;
  readonly #limits: ListenerLimits;

  constructor(config: ListenerConfig, hooks: ListenerHooks) {
    this.config = config;
    this.#hooks = hooks;
    const limits = resolveLimits(config.limits);
    this.#limits = limits;
    const handle = (req: Request, res: Response) => this.#handle(req, res);
    // HTTP/2 as Envoy's edge guide: 100 streams, 64 KiB stream window (the 1 MiB connection window
    // is set per session), header list bounded like HTTP/1 headers. nghttp2 itself answers rapid
    // resets and CONTINUATION floods with GOAWAY.
    const h2Options: http2.ServerOptions = {
      settings: {
        maxConcurrentStreams: limits.h2MaxConcurrentStreams,
        initialWindowSize: H2_INITIAL_STREAM_WINDOW,
        maxHeaderListSize: limits.maxRequestHeadersBytes,
      },
      // Pseudo-headers count as entries too.
      maxHeaderListPairs: limits.maxRequestHeadersCount + 4,
    };
    // Node's HTTP/1 request timers are checked this often: a small fraction of the shortest one.
    const shortest = Math.min(...[limits.headersTimeoutMs, limits.requestTimeoutMs].filter((t) => t > 0), 4000);
    const http1Options = {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.idleTimeoutMs,
      maxHeadersCount: limits.maxRequestHeadersCount + 1,
    };
    if (config.tls) {
      this.#http2 = http2.createSecureServer(
        {
          ...config.tls.options,
          // Through this.config: a reload (update) swaps the certificates chosen by SNI too.
          SNICallback: (servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void) => {
            const pick = this.config.tls?.options.SNICallback;
            if (pick) pick(servername, cb);
            else cb(null, undefined); // the default context: setSecureContext's
          },
          ...h2Options,
          allowHTTP1: true,
          handshakeTimeout: limits.headersTimeoutMs > 0 ? limits.headersTimeoutMs : undefined,
          highWaterMark: limits.perConnectionBufferLimitBytes,
        } as http2.SecureServerOptions,
        handle,
      );
      // HTTP/1.1 over TLS is served by Node's HTTP/1 code with the same server object.
      Object.assign(this.#http2, http1Options);
      // With NETWORK plugins, the HTTP server gets the decrypted bytes through their filter chain.
      const secure = this.#http2;
      const serve = secure.listeners('secureConnection')[0] as (socket: Duplex) => void;
      secure.removeListener('secureConnection', serve);
      secure.on('secureConnection', (socket: tls.TLSSocket) =>
        serve.call(secure, this.config.network?.length ? this.#network(socket) : socket),
      );
      this.#http2.on('clientError' as 'session', (err: NodeJS.ErrnoException, socket: Duplex) =>
        this.#clientError(err, socket),
      );
      this.server = this.#http2;
    } else {
      this.#http1 = http.createServer(
        {
          requireHostHeader: false,
          joinDuplicateHeaders: false,
          insecureHTTPParser: false,
          maxHeaderSize: limits.maxRequestHeadersBytes,
          highWaterMark: limits.perConnectionBufferLimitBytes,
          connectionsCheckingInterval: Math.max(25, Math.floor(shortest / 4)),
          ...http1Options,
        },
        handle,
      );
      this.#http1.maxHeadersCount = http1Options.maxHeadersCount;
      this.#http1.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.#clientError(err, socket));
      // `Expect: 100-continue`: the 100 goes out once the head passed the listener's checks.
      this.#http1.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) =>
        this.#handle(req, res, true),
      );
      // The HTTP/1 server never listens itself; 'listening' starts its connection tracking, which
      // closeIdleConnections() and the header/request timeouts rely on.
      this.#http1.emit('listening');
      this.#http2 = http2.createServer(h2Options, handle);
      const h1 = this.#http1;
      const h2 = this.#http2;
      // One port, both codecs (Envoy's AUTO): the first bytes say whether it is h2c.
      this.server = net.createServer({ highWaterMark: limits.perConnectionBufferLimitBytes }, (raw) => {
        // A connection that sends nothing is cut at the headers timeout, as one that sends too little.
        if (limits.headersTimeoutMs > 0) raw.setTimeout(limits.headersTimeoutMs, () => raw.destroy());
        // With NETWORK plugins, the codecs read the bytes their filter chain passes on.
        const socket = this.config.network?.length ? this.#network(raw) : raw;
        socket.once('data', (chunk: Buffer) => {
          raw.setTimeout(0);
          socket.pause();
          socket.unshift(chunk);
          if (startsLikeH2(chunk)) {
            if (socket !== raw) (socket as NetworkConnection).h2 = true;
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
    // Connections over the cap are closed as they are accepted (Envoy's listener connection_limit).
    if (limits.maxConnections > 0) this.server.maxConnections = limits.maxConnections;
    // Every connection, for close(): idle HTTP/1 sockets are destroyed, busy ones close after
    // their response; HTTP/2 sessions get a GOAWAY and finish their streams.
    // (First: a connection NETWORK plugins wrap then replaces its socket here.)
    this.server.prependListener(config.tls ? 'secureConnection' : 'connection', (socket: net.Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
    this.#http2.on('session', (session) => {
      this.#sessions.add(session);
      try {
        session.setLocalWindowSize(H2_CONNECTION_WINDOW);
      } catch {
        // The session is already gone.
      }
      // No frame for the idle timeout: GOAWAY; streams in flight still finish.
      if (limits.idleTimeoutMs > 0) session.setTimeout(limits.idleTimeoutMs, () => session.close());
      // Rapid reset (CVE-2023-44487), as Envoy counts it: once a connection opened 100 streams and
      // at least half were reset by the client within a second of opening, it gets GOAWAY
      // (ENHANCE_YOUR_CALM) and is closed. nghttp2's own reset rate limit stays as a backstop.
      let streams = 0;
      let premature = 0;
      session.on('stream', (stream) => {
        streams++;
        const born = Date.now();
        stream.once('aborted', () => {
          if (Date.now() - born >= 1000) return;
          premature++;
          if (streams >= 100 && premature * 2 >= streams && !session.destroyed) {
            session.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
            session.destroy();
          }
        });
      });
      if (this.#draining) setImmediate(() => session.close());
      session.once('close', () => this.#sessions.delete(session));
    });
    this.#http2.on('sessionError', () => {});
    // WebSocket upgrades (HTTP/1.1, plain or over TLS); `Upgrade: h2c` stays a plain request.
    const upgradeServer = (this.#http1 ?? this.#http2) as http.Server & {
      shouldUpgradeCallback?: (req: http.IncomingMessage) => boolean;
    };
    upgradeServer.shouldUpgradeCallback = shouldUpgrade;
    upgradeServer.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      const rejection = checkRequestHead(req, limits, false);
      if (rejection) {
        this.#refuse(socket, rejection, { method: req.method, path: req.url }, req.httpVersion);
        return;
      }
      handleUpgrade(
        {
          config: this.config,
          hooks: this.#hooks,
          connectionId: connectionKey(req, socket),
          tunnels: this.#tunnels,
          dropUnderscores: limits.headersWithUnderscores === 'drop',
        },
        req,
        socket,
        head,
      );
    });
  }

  /**
   * A connection with NETWORK plugins: the HTTP server gets their terminal, a Duplex, instead of
   * the socket; close() and drain() track it in the socket's place.
   */
  #network(raw: net.Socket): NetworkConnection {
    const conn = new NetworkConnection(raw, this.config.network!, this.config.name);
    if (this.#sockets.delete(raw)) {
      this.#sockets.add(conn as unknown as net.Socket);
      conn.once('close', () => this.#sockets.delete(conn as unknown as net.Socket));
    }
    if ((raw as tls.TLSSocket).alpnProtocol === 'h2') conn.h2 = true;
    return conn;
  }

  /** The limits this listener runs with. */
  get limits(): Readonly<ListenerLimits> {
    return this.#limits;
  }

  /**
   * Node's HTTP/1 parser refused the bytes, or a request timer fired: answer as Envoy's codec
   * does (400, 431 or 408, then close) and write the access log line (flag DPE).
   */
  #clientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      const onTimeout = requestTimeouts.get(socket);
      if (onTimeout) {
        onTimeout();
        return;
      }
    }
    // Gone, or a response already under way on this connection: nothing more can be said.
    const pending = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (!socket.writable || err.code === 'ECONNRESET' || pending?.headersSent) {
      socket.destroy();
      return;
    }
    const line = requestLineOf((err as { rawPacket?: Buffer }).rawPacket);
    this.#refuse(socket, parserRejection(err), line, '1.1');
  }

  /** Writes a refusal and closes the connection, with an access log line for it. */
  #refuse(socket: Duplex, r: Rejection, line: { method?: string; path?: string }, version: string): void {
    const response = closingResponse(r);
    socket.end(response);
    const s = socket as net.Socket;
    const pairs: [string, string][] = [];
    if (line.method) pairs.push([':method', line.method]);
    if (line.path) pairs.push([':path', line.path]);
    const stream = new HttpStream(
      new HeaderMap(pairs),
      newStreamInfo({
        requestId: '',
        protocol: `HTTP/${version}`,
        downstreamRemoteAddress: s.remoteAddress ?? '',
        downstreamRemotePort: s.remotePort ?? 0,
        downstreamLocalAddress: s.localAddress ?? '',
        downstreamLocalPort: s.localPort ?? 0,
        connectionId: connectionKey({} as Request, socket),
      }),
    );
    stream.info.responseCode = r.status;
    stream.info.responseCodeDetails = r.details;
    stream.info.responseFlags.push('DPE');
    stream.info.bytesSent = Buffer.byteLength(response);
    stream.localReply = true;
    this.#hooks.onComplete(stream);
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
    if (socket instanceof NetworkConnection) return socket.h2;
    return this.#sessions.find((s) => s.socket === socket || (s.socket as unknown) === socket) !== undefined;
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

  #handle(req: Request, response: Response, expectContinue = false): void {
    // The HTTP/2 compatibility API mirrors http.ServerResponse for everything used here.
    const res = response as http.ServerResponse;
    const socket = req.socket;
    const h2 = req.httpVersionMajor === 2;
    const config = this.config;
    const limits = this.#limits;
    // What Node's parser let through but Envoy refuses (400/431/501, flag DPE), checked first.
    const rejection = checkRequestHead(req, limits, h2);
    const length = declaredLength(req);
    const tooLarge =
      rejection === undefined &&
      limits.maxRequestBodyBytes > 0 &&
      length !== undefined &&
      length > limits.maxRequestBodyBytes;
    /** This response is the connection's last (a refused or cut-off request). */
    let closeAfter = rejection !== undefined || tooLarge;
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
      dropUnderscores: limits.headersWithUnderscores === 'drop',
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
            // Draining or closing, or a refused request: this response is the connection's last.
            if (this.#closing || this.#draining || closeAfter) res.setHeader('connection', 'close');
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
    if (rejection) {
      stream.info.responseFlags.push('DPE');
      req.resume();
      manager.sendLocalReply({ status: rejection.status, body: rejection.body, details: rejection.details });
      return;
    }
    if (tooLarge) {
      // Refused on the declared length alone: the body is never read (and no 100 Continue is sent).
      manager.sendLocalReply({ status: 413, body: 'Payload Too Large', details: 'request_payload_too_large' });
      return;
    }
    if ('reject' in normalized) {
      closeAfter = true;
      req.resume();
      manager.sendLocalReply({
        status: 400,
        body: 'Bad Request',
        details: `path_normalization_failed{${normalized.reject}}`,
      });
      return;
    }
    if (expectContinue) res.writeContinue();
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
    // Reading the body: cut off a body over the size cap, one that stalls (stream idle timeout),
    // and one still incomplete at the request timeout (Node's timer, answered here).
    let cut = false;
    const cutOff = (status: number, details: string) => {
      if (cut) return;
      cut = true;
      closeAfter = true;
      clearTimeout(idleTimer);
      requestTimeouts.delete(socket);
      if (stream.responseStarted) manager.reset(details);
      else manager.sendLocalReply({ status, body: STATUS_CODES[status] ?? 'Error', details });
      // The rest of the body is never read: the connection ends once the answer is out.
      if (h2) (req as http2.Http2ServerRequest).stream.close(http2.constants.NGHTTP2_CANCEL);
      else if (res.writableFinished) socket.destroy();
      else res.once('finish', () => socket.destroy());
    };
    let idleTimer: NodeJS.Timeout | undefined;
    const armIdle = () => {
      if (limits.streamIdleTimeoutMs <= 0) return;
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => cutOff(408, 'stream_idle_timeout'), limits.streamIdleTimeoutMs);
    };
    armIdle();
    if (!h2) requestTimeouts.set(socket, () => cutOff(408, 'request_overall_timeout'));
    const bodyDone = () => {
      clearTimeout(idleTimer);
      if (requestTimeouts.get(socket) !== undefined) requestTimeouts.delete(socket);
    };
    res.once('close', bodyDone);
    req.on('data', (chunk: Buffer) => {
      if (cut) return;
      stream.info.bytesReceived += chunk.length;
      if (limits.maxRequestBodyBytes > 0 && stream.info.bytesReceived > limits.maxRequestBodyBytes) {
        cutOff(413, 'request_payload_too_large');
        return;
      }
      armIdle();
      manager.decodeData(chunk, false);
    });
    req.on('end', () => {
      bodyDone();
      if (cut) return;
      const trailers = req.rawTrailers;
      if (trailers.length > 0) manager.decodeTrailers(HeaderMap.fromRaw(trailers));
      else manager.decodeData(EMPTY, true);
    });
  }
}
