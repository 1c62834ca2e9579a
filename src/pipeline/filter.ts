// The filter contract. A filter answers synchronously with a status; pausing is resumed explicitly
// through its callbacks (a Wasm host function cannot await, so neither can the pipeline).
import type { HeaderMap } from './headers.ts';
import type { HttpStream } from './stream.ts';

export const HeadersStatus = {
  /** Pass the headers on. */
  Continue: 0,
  /** Stop here; later body data is buffered and delivered to this filter first on continue. */
  StopIteration: 1,
} as const;
export type HeadersStatusValue = (typeof HeadersStatus)[keyof typeof HeadersStatus];

export const DataStatus = {
  Continue: 0,
  /** Keep buffering; the filter is called again with the whole buffered body as more arrives. */
  StopAndBuffer: 1,
} as const;
export type DataStatusValue = (typeof DataStatus)[keyof typeof DataStatus];

export interface LocalReply {
  status: number;
  body?: Uint8Array | string;
  headers?: [string, string][];
  /** Goes to response_code_details in the access log. */
  details: string;
  grpcStatus?: number;
}

/** What a filter may do to its stream from outside its callbacks. */
export interface FilterCallbacks {
  readonly stream: HttpStream;
  continueDecoding(): void;
  continueEncoding(): void;
  sendLocalReply(reply: LocalReply): void;
  resetStream(details: string): void;
}

export interface HttpFilter {
  decodeHeaders?(headers: HeaderMap, endStream: boolean): HeadersStatusValue;
  /** `body` holds the data presented now (the whole buffer after StopAndBuffer); filters may change it. */
  decodeData?(body: BodyBuffer, endStream: boolean): DataStatusValue;
  decodeTrailers?(trailers: HeaderMap): HeadersStatusValue;
  encodeHeaders?(headers: HeaderMap, endStream: boolean): HeadersStatusValue;
  encodeData?(body: BodyBuffer, endStream: boolean): DataStatusValue;
  encodeTrailers?(trailers: HeaderMap): HeadersStatusValue;
  /** Access-log phase: headers still readable. */
  onLog?(): void;
  onDestroy?(): void;
}

/** Creates one filter instance per stream. */
export interface FilterFactory {
  /** `<namespace>.<name>` for plugins, `istio.authn` etc. for built-ins. */
  readonly name: string;
  create(callbacks: FilterCallbacks): HttpFilter;
}

/** A body buffer: what a filter sees of the request or response body and may rewrite. */
export class BodyBuffer {
  #chunks: Uint8Array[] = [];
  #length = 0;
  /** Set when a filter rewrote the bytes (content-length no longer holds). */
  modified = false;

  get length(): number {
    return this.#length;
  }

  append(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }

  bytes(): Uint8Array {
    if (this.#chunks.length === 1) return this.#chunks[0]!;
    const out = Buffer.concat(this.#chunks, this.#length);
    this.#chunks = this.#length > 0 ? [out] : [];
    return out;
  }

  replace(bytes: Uint8Array): void {
    this.#chunks = bytes.length > 0 ? [bytes] : [];
    this.#length = bytes.length;
    this.modified = true;
  }

  /** Takes everything out, leaving the buffer empty. */
  drain(): Uint8Array {
    const out = this.bytes();
    this.#chunks = [];
    this.#length = 0;
    return out;
  }
}
