// One direction of a stream (request: decode; response: encode) flowing through an ordered list
// of filters to a terminal. The only place that knows the iteration rules:
// - headers stop at a filter until it continues; body data that arrives meanwhile is held there
//   and, on continue, delivered to that same filter first (Envoy's StopAllIteration);
// - a filter that answers StopAndBuffer is called again with the whole buffered body as more
//   arrives, until it continues;
// - data never overtakes headers; trailers follow the last data.
import { BodyBuffer, DataStatus, type DataStatusValue, HeadersStatus, type HeadersStatusValue } from './filter.ts';
import type { HeaderMap } from './headers.ts';

export interface DirectionStep {
  headers(headers: HeaderMap, endStream: boolean): HeadersStatusValue;
  data(body: BodyBuffer, endStream: boolean): DataStatusValue;
  trailers(trailers: HeaderMap): HeadersStatusValue;
}

export interface DirectionTerminal {
  headers(headers: HeaderMap, endStream: boolean): void;
  data(chunk: Uint8Array, endStream: boolean, modified: boolean): void;
  trailers(trailers: HeaderMap): void;
}

export class Direction {
  readonly #steps: DirectionStep[];
  readonly #terminal: DirectionTerminal;
  readonly #limit: number;
  readonly #onOverLimit: () => void;
  #headers: HeaderMap | undefined;
  #headersEnd = false;
  /** Number of filters the headers have passed; equals steps.length once the terminal has them. */
  #frontier = 0;
  #headersStopped = false;
  /** Where held data waits (-1: none). */
  #dataAt = -1;
  #bufferStopped = false;
  readonly #buffer = new BodyBuffer();
  #endPending = false;
  #trailers: HeaderMap | undefined;
  #trailersSent = false;
  #ended = false;
  /** Set when the stream was answered locally or reset: nothing flows any more. */
  aborted = false;

  constructor(steps: DirectionStep[], terminal: DirectionTerminal, limit: number, onOverLimit: () => void) {
    this.#steps = steps;
    this.#terminal = terminal;
    this.#limit = limit;
    this.#onOverLimit = onOverLimit;
  }

  get headersDone(): boolean {
    return this.#frontier === this.#steps.length && !this.#headersStopped && this.#headers !== undefined;
  }

  /** Index of the filter holding the headers, or -1. */
  get stoppedAt(): number {
    return this.#headersStopped ? this.#frontier : this.#bufferStopped ? this.#dataAt : -1;
  }

  /** The body bytes currently held (what a paused filter can read). */
  get buffer(): BodyBuffer {
    return this.#buffer;
  }

  startHeaders(headers: HeaderMap, endStream: boolean): void {
    this.#headers = headers;
    this.#headersEnd = endStream;
    if (endStream) this.#ended = true;
    this.#iterateHeaders(0);
  }

  #iterateHeaders(from: number): void {
    const headers = this.#headers!;
    for (let j = from; j < this.#steps.length; j++) {
      this.#frontier = j;
      const status = this.#steps[j]!.headers(headers, this.#headersEnd);
      if (this.aborted) return;
      if (status !== HeadersStatus.Continue) {
        this.#headersStopped = true;
        return;
      }
    }
    this.#frontier = this.#steps.length;
    this.#headersStopped = false;
    this.#terminal.headers(headers, this.#headersEnd);
  }

  /** Data from the source (downstream for requests, upstream for responses). */
  receiveData(chunk: Uint8Array, endStream: boolean): void {
    if (this.aborted) return;
    if (endStream) this.#ended = true;
    if (this.#dataAt >= 0) {
      // Filters before the holding point already passed the earlier data: they see this chunk
      // on its own, then it joins the held buffer.
      this.#buffer.append(this.#throughPrefix(chunk, endStream));
      if (this.aborted) return;
      this.#endPending ||= endStream;
      if (this.#buffer.length > this.#limit) {
        this.#onOverLimit();
        return;
      }
      if (this.#bufferStopped && (chunk.length > 0 || endStream)) this.#iterateData(this.#dataAt);
      return;
    }
    this.#buffer.append(chunk);
    this.#endPending = endStream;
    this.#iterateData(0);
  }

  #throughPrefix(chunk: Uint8Array, endStream: boolean): Uint8Array {
    if (this.#dataAt <= 0) return chunk;
    const piece = new BodyBuffer();
    piece.append(chunk);
    for (let j = 0; j < this.#dataAt; j++) {
      // A filter that already let data through cannot hold part of it now: its answer is ignored.
      this.#steps[j]!.data(piece, endStream && this.#trailers === undefined);
      if (this.aborted) break;
    }
    if (piece.modified) this.#buffer.modified = true;
    return piece.drain();
  }

  receiveTrailers(trailers: HeaderMap): void {
    if (this.aborted) return;
    this.#ended = true;
    this.#trailers = trailers;
    if (this.#dataAt < 0 && this.headersDone) this.#sendTrailers();
  }

  #iterateData(from: number): void {
    const endStream = this.#endPending && this.#trailers === undefined;
    for (let j = from; j < this.#steps.length; j++) {
      if (j >= this.#frontier && !this.headersDone) {
        this.#dataAt = j;
        this.#bufferStopped = false;
        return;
      }
      const status = this.#steps[j]!.data(this.#buffer, endStream);
      if (this.aborted) return;
      if (status !== DataStatus.Continue) {
        this.#dataAt = j;
        this.#bufferStopped = true;
        return;
      }
    }
    if (!this.headersDone) {
      this.#dataAt = this.#steps.length;
      this.#bufferStopped = false;
      return;
    }
    this.#dataAt = -1;
    this.#bufferStopped = false;
    const modified = this.#buffer.modified;
    const bytes = this.#buffer.drain();
    if (bytes.length > 0 || endStream) this.#terminal.data(bytes, endStream, modified);
    if (this.#trailers) this.#sendTrailers();
  }

  #sendTrailers(): void {
    if (this.#trailersSent) return;
    this.#trailersSent = true;
    const trailers = this.#trailers!;
    for (const step of this.#steps) {
      step.trailers(trailers);
      if (this.aborted) return;
    }
    this.#terminal.trailers(trailers);
  }

  /** A filter resumes: `index` is its position in this direction. */
  continueFrom(index: number): void {
    if (this.aborted) return;
    if (this.#headersStopped && this.#frontier === index) {
      this.#headersStopped = false;
      this.#iterateHeaders(index + 1);
      if (this.aborted) return;
      if (this.#dataAt >= 0 && !this.#bufferStopped && this.#dataAt <= this.#frontier) {
        this.#iterateData(this.#dataAt);
      } else if (this.headersDone && this.#dataAt < 0 && this.#trailers) {
        this.#sendTrailers();
      }
      return;
    }
    if (this.#bufferStopped && this.#dataAt === index) {
      this.#bufferStopped = false;
      this.#iterateData(index + 1);
    }
  }

  get ended(): boolean {
    return this.#ended;
  }
}
