// An HTTP/1.1 listener: turns each request into an HttpStream with Envoy's request headers
// (pseudo-headers, hop-by-hop removed, x-forwarded-*, x-request-id) and drives it through a
// FilterManager to the router.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FilterFactory } from '../pipeline/filter.ts';
import { FilterManager } from '../pipeline/filter-manager.ts';
import { HeaderMap } from '../pipeline/headers.ts';
import { HttpStream, newStreamInfo } from '../pipeline/stream.ts';
import { hopByHopNames } from '../router/hop-by-hop.ts';
import type { RouteTable } from '../router/route-table.ts';
import { createUpstreamRequest } from '../router/router.ts';

export interface ListenerConfig {
  name: string;
  host: string;
  port: number;
  chain: readonly FilterFactory[];
  routes: RouteTable;
  requestBufferLimit?: number;
  responseBufferLimit?: number;
}

export interface ListenerHooks {
  onComplete(stream: HttpStream): void;
  onError(message: string, err: unknown): void;
}

const DEFAULT_BUFFER_LIMIT = 1024 * 1024;
const connectionIds = new WeakMap<object, number>();
let lastConnectionId = 0;
function nextConnectionId(socket: object): number {
  const id = ++lastConnectionId;
  connectionIds.set(socket, id);
  return id;
}
const EMPTY = new Uint8Array(0);

export class HttpListener {
  readonly config: ListenerConfig;
  readonly server: http.Server;
  readonly #hooks: ListenerHooks;

  constructor(config: ListenerConfig, hooks: ListenerHooks) {
    this.config = config;
    this.#hooks = hooks;
    this.server = http.createServer(
      { requireHostHeader: false, joinDuplicateHeaders: false, keepAliveTimeout: 60_000 },
      (req, res) => this.#handle(req, res),
    );
    this.server.on('clientError', (err, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      else socket.destroy(err);
    });
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.config.port, this.config.host, () => {
        this.server.off('error', reject);
        resolve((this.server.address() as AddressInfo).port);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
    });
  }

  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const socket = req.socket;
    const remote = socket.remoteAddress ?? '';
    const raw = req.rawHeaders;
    const connection: string[] = [];
    for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === 'connection') connection.push(raw[i + 1]!);
    const drop = hopByHopNames(connection);
    const pairs: [string, string][] = [
      [':authority', req.headers.host ?? ''],
      [':path', req.url ?? '/'],
      [':method', req.method ?? 'GET'],
      [':scheme', 'http'],
    ];
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toLowerCase();
      if (name === 'host' || drop.has(name)) continue;
      pairs.push([name, raw[i + 1]!]);
    }
    const headers = new HeaderMap(pairs);
    // As Envoy at the edge: append the client address, set the scheme, ensure a request id.
    const xff = headers.get('x-forwarded-for');
    headers.replace('x-forwarded-for', xff ? `${xff}, ${remote}` : remote);
    headers.replace('x-forwarded-proto', 'http');
    let requestId = headers.get('x-request-id');
    if (!requestId) {
      requestId = randomUUID();
      headers.add('x-request-id', requestId);
    }
    const stream = new HttpStream(
      headers,
      newStreamInfo({
        requestId,
        protocol: `HTTP/${req.httpVersion}`,
        downstreamRemoteAddress: remote,
        downstreamRemotePort: socket.remotePort ?? 0,
        downstreamLocalAddress: socket.localAddress ?? '',
        downstreamLocalPort: socket.localPort ?? 0,
        connectionId: connectionIds.get(socket) ?? nextConnectionId(socket),
      }),
    );
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
      this.config.chain,
      {
        writeHeaders: (status, h, endStream) => {
          const flat = h.toFlat();
          res.writeHead(status, flat);
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
            res.addTrailers(t.pairs.filter(([k]) => k[0] !== ':'));
            res.end();
          }
        },
        reset: () => {
          res.destroy();
        },
      },
      (m) => {
        const route = this.config.routes.find(stream.requestHeaders, this.config.port);
        return createUpstreamRequest(m, route, flow);
      },
      {
        requestBufferLimit: this.config.requestBufferLimit ?? DEFAULT_BUFFER_LIMIT,
        responseBufferLimit: this.config.responseBufferLimit ?? DEFAULT_BUFFER_LIMIT,
        onComplete: (s) => this.#hooks.onComplete(s),
      },
    );
    res.on('close', () => {
      if (!res.writableFinished) manager.downstreamAborted();
    });
    const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
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
