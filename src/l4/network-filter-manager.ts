// The network (L4) filter chain of one downstream connection, as Envoy's Network::FilterManagerImpl
// runs it: read filters in order on bytes from the client (then the terminal filter, the TCP proxy,
// sends them upstream), write filters in reverse order on bytes going back to the client. A filter
// that answers StopIteration keeps the bytes in the connection's buffer; more bytes are appended
// and the chain runs again from its first filter with the whole buffer, as Envoy does, or the
// filter resumes it with continueReading()/continueWriting().

export const NetworkStatus = { Continue: 0, StopIteration: 1 } as const;
export type NetworkStatusValue = (typeof NetworkStatus)[keyof typeof NetworkStatus];

/** Who closed a connection (proxy_peer_type_t). */
export const Peer = { UNKNOWN: 0, LOCAL: 1, REMOTE: 2 } as const;
export type PeerValue = (typeof Peer)[keyof typeof Peer];

/** The bytes a filter sees now: the whole connection buffer for one direction. */
export interface DataBuffer {
  bytes(): Uint8Array;
  replace(data: Uint8Array): void;
  readonly length: number;
}

/** What filters may know about the connection (Envoy's connection and stream info attributes). */
export interface ConnectionInfo {
  readonly id: number;
  readonly listenerName: string;
  readonly startTime: number;
  readonly sourceAddress: string;
  readonly sourcePort: number;
  readonly destinationAddress: string;
  readonly destinationPort: number;
  requestedServerName?: string;
  /** TLS details when the listener terminates TLS (not for TCP or passthrough). */
  tls?: { version?: string; subjectPeerCertificate?: string };
  upstreamAddress?: string;
  upstreamPort?: number;
  upstreamCluster?: string;
  routeName?: string;
  /** Bytes read from and written to the client socket. */
  bytesReceived: number;
  bytesSent: number;
  /** Envoy response flags (UF, UH, NR, ...). */
  responseFlags: string[];
  /** Filter state written with proxy_set_property. */
  readonly properties: Map<string, Uint8Array>;
}

export interface NetworkFilterCallbacks {
  readonly connection: ConnectionInfo;
  /** Resumes the read path after this filter (it had answered StopIteration). */
  continueReading(): void;
  /** Resumes the write path after this filter. */
  continueWriting(): void;
  /** Closes the connection, flushing what was already written. */
  close(details: string): void;
}

export interface NetworkFilter {
  onNewConnection(): NetworkStatusValue;
  /** Bytes from the client (`buffer` holds every byte not yet passed on). */
  onData(buffer: DataBuffer, endStream: boolean): NetworkStatusValue;
  /** Bytes from the upstream on their way to the client. */
  onWrite(buffer: DataBuffer, endStream: boolean): NetworkStatusValue;
  onDownstreamClose(peer: PeerValue): void;
  onUpstreamClose(peer: PeerValue): void;
  /** The connection is gone (both sides closed). */
  onDestroy(): void;
}

export interface NetworkFilterFactory {
  readonly name: string;
  create(callbacks: NetworkFilterCallbacks): NetworkFilter;
}

/** The terminal filter (the TCP proxy): sends read bytes upstream, writes bytes to the client. */
export interface NetworkTerminal {
  onNewConnection(): void;
  onData(data: Uint8Array, endStream: boolean): void;
  onWrite(data: Uint8Array, endStream: boolean): void;
}

const EMPTY = new Uint8Array(0);

class Direction implements DataBuffer {
  bytes_: Uint8Array = EMPTY;
  endStream = false;
  /** End of stream passed to the terminal: nothing more flows this way. */
  done = false;

  bytes(): Uint8Array {
    return this.bytes_;
  }
  replace(data: Uint8Array): void {
    this.bytes_ = data;
  }
  get length(): number {
    return this.bytes_.length;
  }
  append(data: Uint8Array): void {
    this.bytes_ = this.bytes_.length === 0 ? data : Buffer.concat([this.bytes_, data]);
  }
  take(): Uint8Array {
    const b = this.bytes_;
    this.bytes_ = EMPTY;
    return b;
  }
}

export class NetworkFilterManager {
  readonly connection: ConnectionInfo;
  readonly #filters: NetworkFilter[] = [];
  readonly #initialized: boolean[] = [];
  readonly #terminal: NetworkTerminal;
  #terminalStarted = false;
  readonly #read = new Direction();
  readonly #write = new Direction();
  #downstreamClosed = false;
  #upstreamClosed = false;
  #destroyed = false;

  constructor(
    factories: readonly NetworkFilterFactory[],
    connection: ConnectionInfo,
    terminal: NetworkTerminal,
    close: (details: string) => void,
  ) {
    this.connection = connection;
    this.#terminal = terminal;
    for (const f of factories) {
      const index = this.#filters.length;
      const callbacks: NetworkFilterCallbacks = {
        connection,
        continueReading: () => this.#continueReading(index),
        continueWriting: () => this.#continueWriting(index),
        close,
      };
      this.#filters.push(f.create(callbacks));
      this.#initialized.push(false);
    }
  }

  /** A new connection: on_new_connection through the chain, then the TCP proxy connects. */
  start(): void {
    this.#continueReading(-1);
  }

  /** Bytes (or the end of the stream) from the client. */
  onRead(data: Uint8Array, endStream: boolean): void {
    if (this.#read.done || this.#destroyed) return;
    this.#read.append(data);
    if (endStream) this.#read.endStream = true;
    this.#continueReading(-1);
  }

  /** Bytes (or the end of the stream) from the upstream. */
  onUpstreamData(data: Uint8Array, endStream: boolean): void {
    if (this.#write.done || this.#destroyed) return;
    this.#write.append(data);
    if (endStream) this.#write.endStream = true;
    this.#continueWriting(this.#filters.length);
  }

  #continueReading(after: number): void {
    if (this.#destroyed) return;
    const r = this.#read;
    for (let i = after + 1; i < this.#filters.length; i++) {
      const f = this.#filters[i]!;
      if (!this.#initialized[i]) {
        this.#initialized[i] = true;
        if (f.onNewConnection() === NetworkStatus.StopIteration) return;
        if (this.#destroyed) return;
      }
      if (!r.done && (r.length > 0 || r.endStream)) {
        if (f.onData(r, r.endStream) === NetworkStatus.StopIteration) return;
        if (this.#destroyed) return;
      }
    }
    if (!this.#terminalStarted) {
      this.#terminalStarted = true;
      this.#terminal.onNewConnection();
      if (this.#destroyed) return;
    }
    if (!r.done && (r.length > 0 || r.endStream)) {
      if (r.endStream) r.done = true;
      this.#terminal.onData(r.take(), r.endStream);
    }
  }

  #continueWriting(before: number): void {
    if (this.#destroyed) return;
    const w = this.#write;
    if (w.done || (w.length === 0 && !w.endStream)) return;
    for (let i = before - 1; i >= 0; i--) {
      if (this.#filters[i]!.onWrite(w, w.endStream) === NetworkStatus.StopIteration) return;
      if (this.#destroyed) return;
    }
    if (w.endStream) w.done = true;
    this.#terminal.onWrite(w.take(), w.endStream);
  }

  /** The client connection closed (REMOTE: the client closed or reset it; LOCAL: the proxy did). */
  downstreamClosed(peer: PeerValue): void {
    if (this.#downstreamClosed) return;
    this.#downstreamClosed = true;
    for (const [i, f] of this.#filters.entries()) if (this.#initialized[i]) f.onDownstreamClose(peer);
  }

  /** The upstream connection ended (end of stream on the write path: UNKNOWN, as Envoy reports). */
  upstreamClosed(peer: PeerValue): void {
    if (this.#upstreamClosed) return;
    this.#upstreamClosed = true;
    for (const [i, f] of this.#filters.entries()) if (this.#initialized[i]) f.onUpstreamClose(peer);
  }

  /** Both sides are gone: close callbacks not yet delivered, then each filter's end. */
  destroy(): void {
    if (this.#destroyed) return;
    this.downstreamClosed(Peer.LOCAL);
    this.upstreamClosed(Peer.UNKNOWN);
    this.#destroyed = true;
    for (const f of this.#filters) {
      try {
        f.onDestroy();
      } catch {
        // A filter failing at the end cannot change anything any more.
      }
    }
  }
}
