// gRPC callouts for plugins (proxy_grpc_call / proxy_grpc_stream) over HTTP/2 (h2c, or TLS for
// https clusters) with node:http2: length-prefixed messages, initial and trailing metadata,
// grpc-status. One HTTP/2 session per cluster endpoint, reused.
import http2 from 'node:http2';
import type { Pairs } from '../wasm/abi/pairs.ts';
import type { Cluster } from './cluster.ts';

export interface GrpcEvents {
  initialMetadata(md: Pairs): void;
  message(bytes: Uint8Array): void;
  trailingMetadata(md: Pairs): void;
  /** Always last, once. `status` is the grpc-status (14 UNAVAILABLE for transport failures). */
  close(status: number, message: string): void;
}

export interface GrpcStreamHandle {
  send(message: Uint8Array, endStream: boolean): void;
  /** Half-close our side. */
  close(): void;
  /** Abandon the call; no more events are delivered. */
  cancel(): void;
}

export interface GrpcCallouts {
  /** undefined: unknown cluster. */
  open(
    cluster: string,
    service: string,
    method: string,
    metadata: Pairs,
    timeoutMs: number,
    events: GrpcEvents,
  ): GrpcStreamHandle | undefined;
}

const UNAVAILABLE = 14;
const DEADLINE_EXCEEDED = 4;
const CANCELLED = 1;
const MAX_MESSAGE = 4 * 1024 * 1024;

function frame(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

function toPairs(headers: http2.IncomingHttpHeaders, skip: (k: string) => boolean): Pairs {
  const out: Pairs = [];
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined || skip(k)) continue;
    for (const one of ([] as string[]).concat(v)) out.push([k, one]);
  }
  return out;
}

export class Http2GrpcCallouts implements GrpcCallouts {
  readonly #resolve: (name: string) => Cluster | undefined;
  readonly #sessions = new Map<string, http2.ClientHttp2Session>();

  constructor(resolve: (name: string) => Cluster | undefined) {
    this.#resolve = resolve;
  }

  #session(authority: string): http2.ClientHttp2Session {
    let s = this.#sessions.get(authority);
    if (s && !s.closed && !s.destroyed) return s;
    s = http2.connect(authority);
    s.on('error', () => {});
    s.on('close', () => {
      if (this.#sessions.get(authority) === s) this.#sessions.delete(authority);
    });
    s.unref();
    this.#sessions.set(authority, s);
    return s;
  }

  open(
    clusterName: string,
    service: string,
    method: string,
    metadata: Pairs,
    timeoutMs: number,
    events: GrpcEvents,
  ): GrpcStreamHandle | undefined {
    const picked = this.#resolve(clusterName)?.pick();
    if (!picked) return undefined;
    const { host, port, tls } = picked.endpoint;
    const authority = `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
    let done = false;
    const finish = (status: number, message: string) => {
      if (done) return;
      done = true;
      events.close(status, message);
    };
    const headers: http2.OutgoingHttpHeaders = {
      ':method': 'POST',
      ':path': `/${service}/${method}`,
      'content-type': 'application/grpc',
      te: 'trailers',
    };
    for (const [k, v] of metadata) if (!k.startsWith(':')) headers[k] = v;
    if (timeoutMs > 0) headers['grpc-timeout'] = `${timeoutMs}m`;
    let req: http2.ClientHttp2Stream;
    try {
      req = this.#session(authority).request(headers);
    } catch (err) {
      queueMicrotask(() => finish(UNAVAILABLE, (err as Error).message));
      return { send: () => {}, close: () => {}, cancel: () => {} };
    }
    const timer =
      timeoutMs > 0
        ? setTimeout(() => {
            finish(DEADLINE_EXCEEDED, 'deadline exceeded');
            req.close(http2.constants.NGHTTP2_CANCEL);
          }, timeoutMs)
        : undefined;
    timer?.unref();
    let pending: Buffer = Buffer.alloc(0);
    let trailersSeen = false;
    req.on('response', (h) => {
      if (done) return;
      const status = Number(h[':status']);
      if (status !== 200) {
        finish(UNAVAILABLE, `HTTP status ${status}`);
        return;
      }
      // Trailers-only responses carry grpc-status in the headers.
      if (h['grpc-status'] !== undefined) {
        trailersSeen = true;
        events.trailingMetadata(toPairs(h, (k) => k.startsWith(':')));
        finish(Number(h['grpc-status']), String(h['grpc-message'] ?? ''));
        return;
      }
      events.initialMetadata(toPairs(h, (k) => k.startsWith(':') || k === 'content-type'));
    });
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      pending = pending.length > 0 ? Buffer.concat([pending, chunk]) : chunk;
      while (pending.length >= 5) {
        const len = pending.readUInt32BE(1);
        if (len > MAX_MESSAGE) {
          finish(UNAVAILABLE, 'message too large');
          req.close(http2.constants.NGHTTP2_CANCEL);
          return;
        }
        if (pending.length < 5 + len) break;
        events.message(pending.subarray(5, 5 + len));
        if (done) return;
        pending = pending.subarray(5 + len);
      }
    });
    req.on('trailers', (t) => {
      if (done) return;
      trailersSeen = true;
      events.trailingMetadata(toPairs(t, (k) => k.startsWith(':') || k === 'grpc-status' || k === 'grpc-message'));
      finish(Number(t['grpc-status'] ?? 2), decodeURIComponent(String(t['grpc-message'] ?? '')));
    });
    req.on('error', (err) => finish(UNAVAILABLE, err.message));
    req.on('close', () => {
      if (timer) clearTimeout(timer);
      if (!trailersSeen) finish(UNAVAILABLE, 'stream closed without status');
    });
    return {
      send: (message, endStream) => {
        if (done || req.writableEnded) return;
        req.write(frame(message));
        if (endStream) req.end();
      },
      close: () => {
        if (!req.writableEnded) req.end();
      },
      cancel: () => {
        done = true;
        if (timer) clearTimeout(timer);
        req.close(http2.constants.NGHTTP2_CANCEL);
      },
    };
  }

  close(): void {
    for (const s of this.#sessions.values()) s.close();
    this.#sessions.clear();
  }
}

export { CANCELLED };
