// HTTP/1.1 upgrades (WebSocket). The upgrade request runs through the filter chain and the router
// like any request (authz, Wasm plugins, route matching, faults); the router sends it to the
// chosen endpoint as an upgrade. On the upstream's 101 (after the response filters saw it) the
// two sockets are piped both ways with backpressure and half-close; an error or reset on either
// side destroys both. Any other answer (a local reply such as an authz 403, or the upstream's own
// non-101 response) is written as a plain HTTP/1.1 response and the connection is closed. The
// access log line is written when the tunnel closes, with the bytes carried each way.
//
// As Envoy with Istio's `upgrade_configs: [websocket]`: other upgrade protocols are refused with
// 403 (`upgrade_failed`); `Upgrade: h2c` never gets here (served as a plain HTTP/1.1 request).
import type http from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { FilterManager } from '../pipeline/filter-manager.ts';
import type { HeaderMap } from '../pipeline/headers.ts';
import { isWebSocketUpgrade } from '../router/hop-by-hop.ts';
import { createUpstreamRequest } from '../router/router.ts';
import type { DownstreamFlow } from '../router/upstream-request.ts';
import type { ListenerConfig, ListenerHooks } from './http-listener.ts';
import { requestStream } from './request.ts';

export interface UpgradeHost {
  /** The listener's configuration as the request starts. */
  config: ListenerConfig;
  hooks: ListenerHooks;
  connectionId: number;
  /** Downstream sockets upgrading or carrying a tunnel (a drain leaves them be; close ends them). */
  tunnels: Set<Duplex>;
  /** Leave out request headers with underscores in their names (--headers-with-underscores drop). */
  dropUnderscores?: boolean;
}

const DEFAULT_BUFFER_LIMIT = 1024 * 1024;
const EMPTY = new Uint8Array(0);
/** Never written on a plain (non-101) answer to an upgrade request: the connection closes after it. */
const PLAIN_DROP = new Set(['connection', 'upgrade', 'keep-alive', 'transfer-encoding', 'proxy-connection']);
/** Never written on the 101: it has no body. */
const SWITCH_DROP = new Set(['content-length', 'transfer-encoding', 'keep-alive']);

/** Connection header values from Node's raw headers. */
function connectionValues(raw: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === 'connection') out.push(raw[i + 1]!);
  return out;
}

/** Whether the HTTP server should emit 'upgrade' for this request (every upgrade but h2c). */
export function shouldUpgrade(req: http.IncomingMessage): boolean {
  const upgrade = req.headers.upgrade;
  return upgrade !== undefined && upgrade.trim().toLowerCase() !== 'h2c';
}

/** An HTTP/1.1 response head; header values with CR or LF are left out (no response splitting). */
function responseHead(status: number, pairs: [string, string][]): string {
  let s = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
  for (const [k, v] of pairs) if (!/[\r\n]/.test(k) && !/[\r\n]/.test(v)) s += `${k}: ${v}\r\n`;
  return `${s}\r\n`;
}

export function handleUpgrade(host: UpgradeHost, req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
  const config = host.config;
  if (config.httpsRedirect) {
    const host = (req.headers.host ?? '').replace(/:\d+$/, '');
    socket.end(
      responseHead(301, [
        ['location', `https://${host}${req.url ?? '/'}`],
        ['content-length', '0'],
        ['connection', 'close'],
      ]),
    );
    return;
  }
  const websocket = isWebSocketUpgrade(connectionValues(req.rawHeaders), req.headers.upgrade);
  const { stream, normalized } = requestStream(req, {
    scheme: config.tls ? 'https' : 'http',
    authority: req.headers.host ?? '',
    h2: false,
    connectionId: host.connectionId,
    xffNumTrustedHops: config.xffNumTrustedHops,
    upgrade: websocket,
    dropUnderscores: host.dropUnderscores,
  });
  host.tunnels.add(socket);
  socket.on('error', () => {});

  /** The upstream socket of a 101 not yet relayed, and how to give back its endpoint slot. */
  let pending: { socket: Duplex; done: () => void } | undefined;
  let tunnel = false;
  const dropPending = () => {
    const p = pending;
    pending = undefined;
    if (!p) return;
    p.socket.destroy();
    p.done();
  };

  const startTunnel = (headers: HeaderMap) => {
    const { socket: up, done } = pending!;
    pending = undefined;
    tunnel = true;
    const info = stream.info;
    socket.write(
      responseHead(
        101,
        headers.pairs.filter(([k]) => k[0] !== ':' && !SWITCH_DROP.has(k)),
      ),
    );
    // Each direction ends on its own (a FIN is passed on as a FIN).
    up.allowHalfOpen = true;
    socket.allowHalfOpen = true;
    up.on('error', () => {});
    up.on('data', (chunk: Buffer) => {
      info.bytesSent += chunk.length;
    });
    socket.on('data', (chunk: Buffer) => {
      info.bytesReceived += chunk.length;
    });
    if (head.length > 0) {
      info.bytesReceived += head.length;
      up.write(head);
    }
    // pipe(): pauses the reader while the writer's buffer is full, and ends the writer on end.
    socket.pipe(up);
    up.pipe(socket);
    let open = 2;
    const onClose = (self: Duplex, other: Duplex) => () => {
      // Gone without a clean end (reset, error, destroyed): the other side goes too.
      if (self.errored || !self.readableEnded) other.destroy();
      if (--open > 0) return;
      host.tunnels.delete(socket);
      done();
      // The end of the stream: response filters see it, then the access log line is written.
      manager.encodeData(EMPTY, true);
    };
    socket.once('close', onClose(socket, up));
    up.once('close', onClose(up, socket));
    if (socket.destroyed) up.destroy();
  };

  const flow: DownstreamFlow = {
    // An upgrade request has no body to slow down; the socket is left alone until the tunnel.
    pause: () => {},
    resume: () => {},
    onDrain: (fn) => socket.once('drain', fn),
    writeBlocked: () => socket.writableNeedDrain,
  };
  if (websocket)
    flow.upgraded = (up, done) => {
      dropPending();
      if (socket.destroyed) {
        up.destroy();
        done();
        return;
      }
      pending = { socket: up, done };
    };

  const manager = new FilterManager(
    stream,
    config.chain,
    {
      writeHeaders: (status, h, endStream) => {
        if (status === 101 && pending) {
          startTunnel(h);
          return;
        }
        // Not switching (a local reply, a filter's answer, or the upstream's): a plain response
        // on a connection that closes after it (the body, if unsized, ends with the connection).
        dropPending();
        if (socket.writableEnded) return;
        const pairs = h.pairs.filter(([k]) => k[0] !== ':' && !PLAIN_DROP.has(k));
        pairs.push(['connection', 'close']);
        socket.write(responseHead(status, pairs));
        if (endStream) socket.end();
      },
      writeData: (chunk, endStream) => {
        if (tunnel || socket.writableEnded) return;
        stream.info.bytesSent += chunk.length;
        if (chunk.length > 0) socket.write(chunk);
        if (endStream) socket.end();
      },
      writeTrailers: () => {
        if (!tunnel && !socket.writableEnded) socket.end();
      },
      reset: () => {
        dropPending();
        socket.destroy();
      },
    },
    (m) => createUpstreamRequest(m, config.routes.find(stream.requestHeaders, config.port), flow),
    {
      requestBufferLimit: config.requestBufferLimit ?? DEFAULT_BUFFER_LIMIT,
      responseBufferLimit: config.responseBufferLimit ?? DEFAULT_BUFFER_LIMIT,
      onComplete: (s) => host.hooks.onComplete(s),
    },
  );
  socket.once('close', () => {
    if (tunnel) return;
    host.tunnels.delete(socket);
    dropPending();
    manager.downstreamAborted();
  });
  if ('reject' in normalized) {
    manager.sendLocalReply({
      status: 400,
      body: 'Bad Request',
      details: `path_normalization_failed{${normalized.reject}}`,
    });
    return;
  }
  if (!websocket) {
    // Istio configures the websocket upgrade only; Envoy refuses the others.
    manager.sendLocalReply({ status: 403, details: 'upgrade_failed' });
    return;
  }
  try {
    // Not the end of the stream: what follows the head is tunnel data.
    manager.decodeHeaders(false);
  } catch (err) {
    host.hooks.onError('filter chain failed on request headers', err);
    manager.sendLocalReply({ status: 500, body: 'Internal Server Error', details: 'filter_chain_error' });
  }
}
