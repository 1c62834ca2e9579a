// NETWORK plugins beneath an HTTP listener, as Envoy runs a listener's network filters before its
// HTTP connection manager: the client socket's bytes go through the network filter chain, whose
// terminal is this Duplex, which the HTTP server reads as its connection; what the HTTP server
// writes (responses) goes through the write filters on its way to the socket. A filter's Pause
// holds bytes, a rewrite changes what HTTP parses or what the client gets, a close closes the
// socket. Over TLS the filters see the decrypted bytes (the TLS socket is the "raw" side), as in
// Envoy, where the transport socket sits below the filters. Only listeners with NETWORK plugins
// get this: the others hand the socket to the HTTP server as it is.
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import {
  type ConnectionInfo,
  type NetworkFilterFactory,
  NetworkFilterManager,
  Peer,
} from './network-filter-manager.ts';
import { newConnectionId, resetSocket } from './tcp-proxy.ts';

const EMPTY = new Uint8Array(0);

const strip = (a: string | undefined) => (a ?? '').replace(/^::ffff:/, '');

export class NetworkConnection extends Duplex {
  readonly info: ConnectionInfo;
  // What the HTTP server and the listener read from a socket.
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly localAddress: string | undefined;
  readonly localPort: number | undefined;
  readonly encrypted: boolean | undefined;
  readonly alpnProtocol: string | false | null | undefined;
  readonly servername: string | false | null | undefined;
  /** The server that accepted the socket (Node's HTTP code reads socket.server). */
  server: unknown;
  /** Handed to the HTTP/2 server (the listener's drain treats it as a session's socket). */
  h2 = false;
  readonly #raw: Socket;
  readonly #manager: NetworkFilterManager;
  /** The raw socket was paused because the HTTP side did not read. */
  #rawPaused = false;
  /** The proxy (the HTTP server or a plugin), not the client, closed first. */
  #localClose = false;
  /** The client's FIN arrived. */
  #clientEnded = false;

  constructor(raw: Socket, filters: readonly NetworkFilterFactory[], listenerName: string) {
    super({ allowHalfOpen: false, readableHighWaterMark: raw.readableHighWaterMark });
    this.#raw = raw;
    this.remoteAddress = raw.remoteAddress;
    this.remotePort = raw.remotePort;
    this.localAddress = raw.localAddress;
    this.localPort = raw.localPort;
    const secure = (raw as TLSSocket).encrypted === true ? (raw as TLSSocket) : undefined;
    this.encrypted = secure ? true : undefined;
    this.alpnProtocol = secure?.alpnProtocol;
    this.servername = secure?.servername;
    this.server = (raw as { server?: unknown }).server;
    this.info = {
      id: newConnectionId(),
      listenerName,
      startTime: Date.now(),
      sourceAddress: strip(raw.remoteAddress),
      sourcePort: raw.remotePort ?? 0,
      destinationAddress: strip(raw.localAddress),
      destinationPort: raw.localPort ?? 0,
      requestedServerName: secure?.servername || undefined,
      tls: secure ? tlsInfo(secure) : undefined,
      bytesReceived: 0,
      bytesSent: 0,
      responseFlags: [],
      properties: new Map(),
    };
    this.#manager = new NetworkFilterManager(
      filters,
      this.info,
      {
        onNewConnection: () => {},
        onData: (data, end) => this.#toHttp(data, end),
        onWrite: (data, end) => this.#toClient(data, end),
      },
      () => this.#close(),
    );
    raw.allowHalfOpen = true; // the client's FIN goes through the filters; the HTTP side decides
    raw.on('data', (chunk: Buffer) => {
      this.info.bytesReceived += chunk.length;
      this.#manager.onRead(chunk, false);
    });
    raw.on('end', () => {
      this.#clientEnded = true;
      this.#manager.onRead(EMPTY, true);
    });
    raw.on('timeout', () => this.emit('timeout'));
    raw.on('error', () => {});
    raw.on('close', () => {
      this.destroy();
      try {
        this.#manager.downstreamClosed(this.#localClose ? Peer.LOCAL : Peer.REMOTE);
        this.#manager.destroy();
      } catch {
        // A filter failing at the end cannot change anything any more.
      }
    });
    this.#manager.start();
  }

  // ---- the terminal of the filter chain ----

  /** Bytes the read filters passed on: the HTTP server reads them. */
  #toHttp(data: Uint8Array, end: boolean): void {
    if (this.destroyed || this.readableEnded) return;
    if (data.length > 0 && !this.push(data)) {
      this.#rawPaused = true;
      this.#raw.pause();
    }
    if (end) this.push(null);
  }

  /** Bytes the write filters passed on: to the client. */
  #toClient(data: Uint8Array, end: boolean): void {
    const raw = this.#raw;
    if (raw.destroyed || raw.writableEnded) return;
    if (data.length > 0) {
      this.info.bytesSent += data.length;
      raw.write(data);
    }
    if (end) raw.end();
  }

  /** A plugin closed the connection: what was written goes out, then the socket closes. */
  #close(): void {
    this.#localClose = true;
    if (!this.#raw.destroyed) this.#raw.end();
    this.destroy();
  }

  // ---- Duplex ----

  override _read(): void {
    if (this.#rawPaused) {
      this.#rawPaused = false;
      this.#raw.resume();
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#manager.onUpstreamData(chunk, false);
    if (this.#raw.writableNeedDrain && !this.#raw.destroyed) this.#raw.once('drain', () => callback());
    else callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (!this.#clientEnded) this.#localClose = true;
    this.#manager.onUpstreamData(EMPTY, true);
    this.#manager.upstreamClosed(Peer.UNKNOWN);
    callback();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    const raw = this.#raw;
    if (!raw.destroyed) {
      if (!this.#clientEnded) this.#localClose = true;
      // Ended: the last bytes are flushed first (as net.Socket.destroySoon); otherwise cut now.
      if (raw.writableEnded) raw.destroySoon();
      else raw.destroy();
    }
    callback(err);
  }

  // ---- what Node's HTTP servers call on a net.Socket ----

  setTimeout(ms: number, callback?: () => void): this {
    this.#raw.setTimeout(ms);
    if (callback) {
      if (ms === 0) this.off('timeout', callback);
      else this.once('timeout', callback);
    }
    return this;
  }

  setNoDelay(noDelay?: boolean): this {
    this.#raw.setNoDelay(noDelay);
    return this;
  }

  setKeepAlive(enable?: boolean, initialDelay?: number): this {
    this.#raw.setKeepAlive(enable, initialDelay);
    return this;
  }

  ref(): this {
    this.#raw.ref();
    return this;
  }

  unref(): this {
    this.#raw.unref();
    return this;
  }

  address() {
    return this.#raw.address();
  }

  destroySoon(): void {
    if (this.writable) this.end();
    if (this.writableFinished) this.destroy();
    else this.once('finish', () => this.destroy());
  }

  resetAndDestroy(): this {
    this.#localClose = true;
    if (!this.#raw.destroyed) resetSocket(this.#raw);
    return this.destroy();
  }
}

/** The TLS details of a terminated connection (connection.tls_version, subject_peer_certificate, RFC 2253 order). */
export function tlsInfo(s: TLSSocket): ConnectionInfo['tls'] {
  const peer = s.getPeerCertificate();
  const subject = peer?.subject
    ? Object.entries(peer.subject)
        .reverse()
        .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : v}`)
        .join(',')
    : undefined;
  return { version: s.getProtocol() ?? undefined, subjectPeerCertificate: subject || undefined };
}
