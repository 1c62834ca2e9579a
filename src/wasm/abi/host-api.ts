// The doors between the ABI surface (this folder) and the host (../host). ABI modules decode guest
// arguments, call these interfaces, and encode results; they never see the pipeline.
import type { GuestMemory } from '../runtime/memory.ts';
import type { Pairs } from './pairs.ts';
import type { AbiVersion, StatusCode } from './result.ts';

/** One header/trailer map as a context exposes it. */
export interface HeaderMapAccess {
  readonly pairs: Pairs;
  /** First value of `name` (lower-case), or undefined. */
  get(name: string): string | undefined;
  /** Header map byte size as Envoy counts it (sum of key and value lengths). */
  byteSize(): number;
  /** False when the map may be read but no longer changed (e.g. request headers after they were sent). */
  readonly writable: boolean;
  add(name: string, value: string): void;
  replace(name: string, value: string): void;
  remove(name: string): void;
  setPairs(pairs: Pairs): void;
}

/** One body/data/config buffer. */
export interface BufferAccess {
  bytes(): Uint8Array;
  /** Replaces `size` bytes at `start` with `data` (prepend, append, replace-all). */
  set(start: number, size: number, data: Uint8Array): StatusCode;
}

export interface LocalResponse {
  status: number;
  details: string;
  body: Uint8Array;
  headers: Pairs;
  grpcStatus: number;
}

/** What a context (root or stream) offers to the ABI. Anything absent answers BAD_ARGUMENT/NOT_FOUND. */
export interface AbiContext {
  readonly id: number;
  readonly rootId: number;
  headerMap(mapType: number): HeaderMapAccess | undefined;
  buffer(bufferType: number): BufferAccess | undefined;
  sendLocalResponse(reply: LocalResponse): StatusCode;
  continueStream(streamType: number): StatusCode;
  closeStream(streamType: number): StatusCode;
  getProperty(path: string[]): Uint8Array | undefined;
  setProperty(path: string[], value: Uint8Array): StatusCode;
  /** proxy_done: finish a context whose on_done returned false. */
  done(): StatusCode;
}

/** The response of the HTTP callout being delivered (readable during proxy_on_http_call_response). */
export interface CallResponse {
  headers: Pairs;
  body: Uint8Array;
  trailers: Pairs;
}

/** The host side of one VM as the ABI modules see it. */
export interface AbiHost {
  readonly memory: GuestMemory;
  readonly abiVersion: AbiVersion;
  /** True while the VM runs its entry point (start-up restrictions). */
  readonly starting: boolean;
  /** Copies `bytes` into guest memory (guest allocator) and writes pointer and size; empty -> 0/0. */
  copyOut(bytes: Uint8Array, retPtrPtr: number, retSizePtr: number): StatusCode;
  /** copyOut of a string's UTF-8 bytes. */
  copyOutString(value: string, retPtrPtr: number, retSizePtr: number): StatusCode;
  /** copyOut of header pairs, serialized (pairs.ts) straight into guest memory. */
  copyOutPairs(pairs: readonly (readonly [string, string])[], retPtrPtr: number, retSizePtr: number): StatusCode;
  /** The context host calls currently act on. */
  effectiveContext(): AbiContext | undefined;
  setEffectiveContext(id: number): StatusCode;
  log(level: number, message: string): void;
  logLevel(): number;
  /** Environment for WASI environ_* (vmConfig.env). */
  readonly env: readonly [string, string][];
  /** Per-root timer. */
  setTickPeriod(rootId: number, periodMs: number): StatusCode;
  /** Starts an HTTP callout from the effective context; the token identifies it in the callback. */
  httpCall(
    upstream: string,
    headers: Pairs,
    body: Uint8Array,
    trailers: Pairs,
    timeoutMs: number,
  ): { status: StatusCode; token: number };
  /** Opens a gRPC call (`message` given: unary, half-closed after it) or stream. */
  grpcOpen(
    cluster: string,
    service: string,
    method: string,
    metadata: Pairs,
    timeoutMs: number,
    message: Uint8Array | undefined,
  ): { status: StatusCode; token: number };
  grpcSend(token: number, message: Uint8Array, endStream: boolean): StatusCode;
  grpcCancel(token: number): StatusCode;
  grpcClose(token: number): StatusCode;
  /** The gRPC message / metadata being delivered now, if any. */
  grpcDelivery(): { message?: Uint8Array; initial?: Pairs; trailing?: Pairs } | undefined;
  /** The callout response being delivered now, if any. */
  callResponse(): CallResponse | undefined;
  /** proxy_get_status: code and message of the last callout, if any. */
  callStatus(): { code: number; message: string } | undefined;
  /** The queue owner standing for root context `rootId` (told when its queues have items). */
  queueOwner(rootId: number): import('../../shared-state/shared-queues.ts').QueueOwner;
  /** Logs once per import name and returns UNIMPLEMENTED. */
  unimplemented(name: string): StatusCode;
}

export type HostFunction = (...args: never[]) => number | undefined;
export type ImportFunctions = Record<string, HostFunction>;
