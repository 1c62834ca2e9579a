// The host side of the watchdog (one small worker thread per thread that runs VMs, started on
// first use). Each instrumented VM has a one-page shared memory (instrument.ts) laid out as
// Int32 words:
//   FLAG  (0): read by the guest at every loop head and function entry; non-zero traps.
//              1: deadline exceeded (set by the watchdog), 2: memory limit (set by the guest's
//              grow helper).
//   STATE (1): the host's call state: an odd sequence number while a guest call runs, even when
//              idle, INTERRUPTED (-1) once the watchdog stopped a call, CLOSED (-2).
// The host only stores a new odd number when an outermost guest call starts and compare-exchanges
// it to the next even number when the call returns: no clock read, no message, no syscall on the
// hot path. The watchdog thread samples STATE: a call it sees with the same sequence number for
// longer than the deadline is interrupted (STATE -> INTERRUPTED by compare-exchange, so a call
// that just returned is never hit, then FLAG -> 1). The sampling period is a tenth of the
// deadline (1..100 ms), so a call is stopped between D and D + D/10 after it started.
import { Worker } from 'node:worker_threads';

export const FLAG = 0;
export const STATE = 1;
export const INTERRUPTED = -1;
export const CLOSED = -2;

export type WatchMessage =
  | { type: 'watch'; id: number; buffer: SharedArrayBuffer; deadlineMs: number }
  | { type: 'forget'; id: number };

/** How often the watchdog samples a VM with this deadline. */
export function pollMs(deadlineMs: number): number {
  return Math.min(100, Math.max(1, Math.floor(deadlineMs / 10)));
}

const THREAD_URL = new URL(
  import.meta.url.endsWith('.ts') ? './watchdog-thread.ts' : './watchdog-thread.js',
  import.meta.url,
);

let thread: Worker | undefined;
let nextId = 1;
/** Guards being watched, to hand to a replacement thread if the watchdog thread ever exits. */
const live = new Map<number, CallGuard>();

function post(msg: WatchMessage): void {
  if (!thread) {
    thread = new Worker(THREAD_URL, {
      name: 'wasmgate-watchdog',
      stdout: false,
      stderr: false,
      resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 },
    });
    thread.unref();
    const started = thread;
    started.on('error', () => {});
    started.on('exit', () => {
      if (thread !== started) return;
      thread = undefined;
      for (const g of live.values()) if (!g.closed) post(g.watchMessage());
    });
  }
  thread.postMessage(msg);
}

/** One VM's call state, shared with the watchdog thread. */
export class CallGuard {
  readonly id = nextId++;
  readonly deadlineMs: number;
  readonly #page: Int32Array;
  readonly #buffer: SharedArrayBuffer;
  #seq = 0;
  closed = false;

  /** Starts watching a VM whose interrupt memory is `buffer`. */
  constructor(buffer: SharedArrayBuffer, deadlineMs: number) {
    this.#buffer = buffer;
    this.#page = new Int32Array(buffer);
    this.deadlineMs = deadlineMs;
    live.set(this.id, this);
    post(this.watchMessage());
  }

  watchMessage(): WatchMessage {
    return { type: 'watch', id: this.id, buffer: this.#buffer, deadlineMs: this.deadlineMs };
  }

  /** An outermost guest call starts. */
  enter(): void {
    this.#seq = ((this.#seq + 2) & 0x3ffffffe) | 1;
    Atomics.store(this.#page, STATE, this.#seq);
  }

  /** The outermost guest call returned: false when the watchdog stopped it (it ran past the deadline). */
  exit(): boolean {
    const seq = this.#seq;
    this.#seq = (seq + 1) & 0x3fffffff;
    return Atomics.compareExchange(this.#page, STATE, seq, this.#seq) === seq;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    live.delete(this.id);
    if (Atomics.load(this.#page, STATE) >= 0) Atomics.store(this.#page, STATE, CLOSED);
    thread?.postMessage({ type: 'forget', id: this.id } satisfies WatchMessage);
  }
}

/** The interrupt flag of a VM's page (0: none, 1: deadline, 2: memory limit). */
export function interruptFlag(buffer: SharedArrayBuffer): number {
  return Atomics.load(new Int32Array(buffer), FLAG);
}
