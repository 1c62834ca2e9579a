// Drives one HTTP stream through the filter chain: request (decode) through the filters in order to
// the router, response (encode) back through them in reverse, local replies, resets, and the
// access-log phase. Filters run synchronously; pauses resume through FilterCallbacks.
import { Direction, type DirectionStep, type DirectionTerminal } from './direction.ts';
import type { FilterCallbacks, FilterFactory, HttpFilter, LocalReply } from './filter.ts';
import { DataStatus, HeadersStatus } from './filter.ts';
import { HeaderMap } from './headers.ts';
import type { HttpStream } from './stream.ts';

/** Where the response goes (the downstream connection). */
export interface DownstreamSink {
  writeHeaders(status: number, headers: HeaderMap, endStream: boolean): void;
  writeData(chunk: Uint8Array, endStream: boolean): void;
  writeTrailers(trailers: HeaderMap): void;
  /** Abort the downstream connection/stream (no response possible). */
  reset(details: string): void;
}

/** Where the request goes (the router's upstream request for this stream). */
export interface UpstreamRequest {
  sendHeaders(headers: HeaderMap, endStream: boolean): void;
  sendData(chunk: Uint8Array, endStream: boolean, modified: boolean): void;
  sendTrailers(trailers: HeaderMap): void;
  abort(): void;
}

export interface FilterManagerOptions {
  requestBufferLimit: number;
  responseBufferLimit: number;
  onComplete?: (stream: HttpStream) => void;
}

const STATUS_TEXT_PLAIN = 'text/plain';

export class FilterManager {
  readonly stream: HttpStream;
  readonly #filters: HttpFilter[];
  readonly #names: string[];
  readonly #sink: DownstreamSink;
  readonly #options: FilterManagerOptions;
  #upstream: UpstreamRequest | undefined;
  readonly #decode: Direction;
  #encode: Direction | undefined;
  /** Highest filter index that saw the request headers. */
  #decodedUpTo = -1;
  #completed = false;
  #destroyed = false;

  constructor(
    stream: HttpStream,
    factories: readonly FilterFactory[],
    sink: DownstreamSink,
    upstreamFactory: (manager: FilterManager) => UpstreamRequest,
    options: FilterManagerOptions,
  ) {
    this.stream = stream;
    this.#sink = sink;
    this.#options = options;
    this.#names = factories.map((f) => f.name);
    this.#filters = factories.map((f, i) => f.create(this.#callbacks(i)));
    const steps: DirectionStep[] = this.#filters.map((f, i) => ({
      headers: (h, end) => {
        if (i > this.#decodedUpTo) this.#decodedUpTo = i;
        return f.decodeHeaders ? f.decodeHeaders(h, end) : HeadersStatus.Continue;
      },
      data: (b, end) => (f.decodeData ? f.decodeData(b, end) : DataStatus.Continue),
      trailers: (t) => (f.decodeTrailers ? f.decodeTrailers(t) : HeadersStatus.Continue),
    }));
    const terminal: DirectionTerminal = {
      headers: (h, end) => {
        h.writable = false;
        this.#upstream = upstreamFactory(this);
        this.#upstream.sendHeaders(h, end);
      },
      data: (chunk, end, modified) => this.#upstream?.sendData(chunk, end, modified),
      trailers: (t) => this.#upstream?.sendTrailers(t),
    };
    this.#decode = new Direction(steps, terminal, options.requestBufferLimit, () =>
      this.sendLocalReply({ status: 413, body: 'Payload Too Large', details: 'request_payload_too_large' }),
    );
  }

  get filterNames(): readonly string[] {
    return this.#names;
  }

  #callbacks(index: number): FilterCallbacks {
    return {
      stream: this.stream,
      continueDecoding: () => this.#decode.continueFrom(index),
      continueEncoding: () => {
        if (!this.#encode) return;
        // Encode runs the filters in reverse: position of filter `index`.
        this.#encode.continueFrom(this.#encodePosition(index));
      },
      sendLocalReply: (reply) => this.sendLocalReply(reply, index, this.#names[index]),
      resetStream: (details) => this.reset(details),
    };
  }

  #encodeFilters: number[] = [];
  #encodePosition(index: number): number {
    return this.#encodeFilters.indexOf(index);
  }

  /** The held request body, for a filter paused in a body callback. */
  get requestBuffer() {
    return this.#decode.buffer;
  }

  get responseBuffer() {
    return this.#encode?.buffer;
  }

  // ---- request side (from the downstream connection) ----

  decodeHeaders(endStream: boolean): void {
    this.#decode.startHeaders(this.stream.requestHeaders, endStream);
  }

  decodeData(chunk: Uint8Array, endStream: boolean): void {
    this.#decode.receiveData(chunk, endStream);
  }

  decodeTrailers(trailers: HeaderMap): void {
    this.stream.requestTrailers = trailers;
    this.#decode.receiveTrailers(trailers);
  }

  // ---- response side (from the router) ----

  encodeHeaders(status: number, headers: HeaderMap, endStream: boolean): void {
    if (this.#encode || this.#decode.aborted) return;
    headers.pairs.unshift([':status', String(status)]);
    this.stream.responseHeaders = headers;
    this.stream.info.responseCode = status;
    this.#startEncode(this.#decodedUpTo, headers, endStream);
  }

  encodeData(chunk: Uint8Array, endStream: boolean): void {
    this.#encode?.receiveData(chunk, endStream);
  }

  encodeTrailers(trailers: HeaderMap): void {
    this.stream.responseTrailers = trailers;
    this.#encode?.receiveTrailers(trailers);
  }

  #startEncode(upTo: number, headers: HeaderMap, endStream: boolean): void {
    const order: number[] = [];
    for (let i = upTo; i >= 0; i--) order.push(i);
    this.#encodeFilters = order;
    const steps: DirectionStep[] = order.map((i) => {
      const f = this.#filters[i]!;
      return {
        headers: (h, end) => (f.encodeHeaders ? f.encodeHeaders(h, end) : HeadersStatus.Continue),
        data: (b, end) => (f.encodeData ? f.encodeData(b, end) : DataStatus.Continue),
        trailers: (t) => (f.encodeTrailers ? f.encodeTrailers(t) : HeadersStatus.Continue),
      };
    });
    const terminal: DirectionTerminal = {
      headers: (h, end) => {
        h.writable = false;
        const status = Number(h.get(':status') ?? this.stream.info.responseCode);
        this.stream.info.responseCode = status;
        this.stream.responseStarted = true;
        this.#sink.writeHeaders(status, h, end);
        if (end) this.#complete();
      },
      data: (chunk, end) => {
        this.#sink.writeData(chunk, end);
        if (end) this.#complete();
      },
      trailers: (t) => {
        this.#sink.writeTrailers(t);
        this.#complete();
      },
    };
    this.#encode = new Direction(steps, terminal, this.#options.responseBufferLimit, () => {
      // Over the buffer limit on the response path: 500, as Envoy.
      this.sendLocalReply({ status: 500, body: 'Internal Server Error', details: 'response_payload_too_large' });
    });
    this.#encode.startHeaders(headers, endStream);
  }

  // ---- local replies, resets, completion ----

  /**
   * Answers the request from the proxy. The reply runs through the response callbacks of the
   * filters that saw the request (from `fromIndex` down to the first). Once the response has
   * started, the stream can only be reset. `filter` names the filter that answered ("" when the
   * proxy itself did: router, listener, limits).
   */
  sendLocalReply(reply: LocalReply, fromIndex = this.#decodedUpTo, filter = ''): void {
    if (this.#destroyed || this.#completed) return;
    if (this.stream.responseStarted) {
      this.reset(reply.details);
      return;
    }
    const body = typeof reply.body === 'string' ? Buffer.from(reply.body) : (reply.body ?? new Uint8Array(0));
    const headers = new HeaderMap([[':status', String(reply.status)]]);
    for (const [k, v] of reply.headers ?? []) headers.add(k.toLowerCase(), v);
    if (body.length > 0 && !headers.has('content-type')) headers.add('content-type', STATUS_TEXT_PLAIN);
    headers.replace('content-length', String(body.length));
    if (reply.grpcStatus !== undefined && reply.grpcStatus >= 0 && reply.grpcStatus <= 16)
      headers.replace('grpc-status', String(reply.grpcStatus));
    // From a response callback, the reply continues through the filters after the caller only.
    const upTo = this.#encode ? fromIndex - 1 : Math.min(fromIndex, this.#decodedUpTo);
    this.stream.localReply = true;
    this.stream.localReplyFilter = filter;
    this.stream.info.responseCodeDetails = reply.details;
    this.stream.info.responseCode = reply.status;
    this.#decode.aborted = true;
    this.#upstream?.abort();
    if (this.#encode) this.#encode.aborted = true;
    this.#encode = undefined;
    this.stream.responseHeaders = headers;
    this.#startEncode(upTo, headers, body.length === 0);
    if (body.length > 0) this.#encode!.receiveData(body, true);
  }

  /** Upstream failed before a response: a local reply (503/504) or a reset if the response began. */
  upstreamFailed(status: number, details: string, flag: string): void {
    this.stream.info.responseFlags.push(flag);
    if (this.stream.responseStarted) this.reset(details);
    else this.sendLocalReply({ status, body: statusBody(status), details });
  }

  reset(details: string): void {
    if (this.#completed || this.#destroyed) return;
    this.stream.info.responseCodeDetails ||= details;
    this.#decode.aborted = true;
    if (this.#encode) this.#encode.aborted = true;
    this.#upstream?.abort();
    this.#sink.reset(details);
    this.#complete();
  }

  /** The downstream went away before the response completed. */
  downstreamAborted(): void {
    if (this.#completed) return;
    this.stream.info.responseFlags.push('DC');
    this.stream.info.responseCodeDetails ||= 'downstream_remote_disconnect';
    this.#decode.aborted = true;
    if (this.#encode) this.#encode.aborted = true;
    this.#upstream?.abort();
    this.#complete();
  }

  #complete(): void {
    if (this.#completed) return;
    this.#completed = true;
    this.stream.info.responseCodeDetails ||= this.stream.localReply ? 'local_reply' : 'via_upstream';
    // Envoy's order: on_log for every filter, then destroy (on_done/on_delete).
    for (const f of this.#filters) f.onLog?.();
    this.#options.onComplete?.(this.stream);
    this.#destroy();
  }

  #destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const f of this.#filters) f.onDestroy?.();
  }
}

function statusBody(status: number): string {
  if (status === 503) return 'no healthy upstream';
  if (status === 504) return 'upstream request timeout';
  return 'upstream connect error or disconnect/reset before headers';
}
