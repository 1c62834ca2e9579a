// The V8 runtime wrapper: instantiation, start-up, guest calls, traps. Knows nothing of Proxy-Wasm
// semantics beyond the entry-point rules; the ABI lives in ../abi and ../host.

import { totalmem } from 'node:os';
import { CallStats } from './call-stats.ts';
import { FLAG_DEADLINE, FLAG_MEMORY, INTERRUPT_EXPORT, START_EXPORT } from './instrument.ts';
import { GuestMemory } from './memory.ts';
import type { ModuleInfo } from './module.ts';
import { CallGuard, interruptFlag } from './watchdog.ts';

/** How long one guest callback may run before the watchdog stops it. */
export const DEFAULT_DEADLINE_MS = 1000;
/** Per-VM memory cap: 1 GiB (as Envoy), or a quarter of the machine's memory when that is less. */
export const DEFAULT_MEMORY_LIMIT_BYTES = Math.min(1024 * 1024 * 1024, Math.floor(totalmem() / 4 / 65536) * 65536);

export interface VmLimits {
  /** Deadline for one guest callback in ms (0: none); needs an instrumented module. Default 1 s. */
  deadlineMs?: number;
  /** A guest whose memory passes this is failed. Default DEFAULT_MEMORY_LIMIT_BYTES. */
  memoryLimitBytes?: number;
}

/** Thrown by WASI proc_exit to unwind the guest. */
export class ProcExit extends Error {
  readonly code: number;
  constructor(code: number) {
    super(`guest called proc_exit(${code})`);
    this.name = 'ProcExit';
    this.code = code;
  }
}

/** A guest call that trapped or failed; the VM is unusable afterwards. */
export class WasmTrap extends Error {
  /** Set when the host stopped the guest: it ran past the deadline, or tried to pass the memory cap. */
  limit: 'deadline' | 'memory' | undefined;
  constructor(message: string, options?: { cause?: unknown; limit?: 'deadline' | 'memory' }) {
    super(message, options);
    this.name = 'WasmTrap';
    this.limit = options?.limit;
  }
}

export type ImportObject = Record<string, Record<string, (...args: never[]) => unknown>>;

type GuestFn = (...args: (number | bigint)[]) => unknown;

export class WasmVm {
  readonly info: ModuleInfo;
  readonly instance: WebAssembly.Instance;
  readonly memory: GuestMemory;
  readonly #exports: Record<string, unknown>;
  readonly #allocator: GuestFn;
  #depth = 0;
  /** Callbacks entered from the host and their sampled durations (admin metrics). */
  readonly callStats = new CallStats();
  #deferred: (() => void)[] = [];
  /** Set once the guest trapped; every later call fails fast. */
  failure: Error | undefined;
  /** True while the entry point runs (start restrictions apply, proc_exit(0) ends start-up). */
  starting = false;
  /** A guest whose memory grows past this is failed (instrumented modules cannot grow past it). */
  maxMemoryBytes: number;
  /** Deadline for one outermost guest call, ms (0: none). */
  readonly deadlineMs: number;
  /** The interrupt page of an instrumented module (see instrument.ts, watchdog.ts). */
  readonly #interrupt: SharedArrayBuffer | undefined;
  readonly #guard: CallGuard | undefined;
  /** The outermost guest call running now (named in deadline traps). */
  #outer = '';

  constructor(module: WebAssembly.Module, info: ModuleInfo, imports: ImportObject, limits: VmLimits = {}) {
    this.info = info;
    this.maxMemoryBytes = limits.memoryLimitBytes || DEFAULT_MEMORY_LIMIT_BYTES;
    this.deadlineMs = limits.deadlineMs ?? DEFAULT_DEADLINE_MS;
    this.starting = true; // a start section (AssemblyScript) runs inside instantiation
    try {
      this.instance = new WebAssembly.Instance(module, imports as WebAssembly.Imports);
    } catch (err) {
      throw new WasmTrap(`instantiation failed: ${describe(err)}`, { cause: err });
    } finally {
      this.starting = false;
    }
    this.#exports = this.instance.exports as Record<string, unknown>;
    const interrupt = this.#exports[INTERRUPT_EXPORT];
    if (interrupt instanceof WebAssembly.Memory && interrupt.buffer instanceof SharedArrayBuffer) {
      this.#interrupt = interrupt.buffer;
    }
    const memory = this.#exports.memory;
    if (!(memory instanceof WebAssembly.Memory)) throw new WasmTrap('module does not export its memory');
    this.memory = new GuestMemory(memory);
    // The spec prefers proxy_on_memory_allocate; both names are accepted.
    const alloc = this.#exports.proxy_on_memory_allocate ?? this.#exports.malloc;
    if (typeof alloc !== 'function') throw new WasmTrap('module exports no allocator');
    this.#allocator = alloc as GuestFn;
    if (this.#interrupt && this.deadlineMs > 0) this.#guard = new CallGuard(this.#interrupt, this.deadlineMs);
    // The instrumented module's start function, which instantiation no longer runs (so that
    // the watchdog can watch it).
    if (this.has(START_EXPORT)) {
      this.starting = true;
      try {
        this.call(START_EXPORT);
      } catch (err) {
        this.close();
        throw new WasmTrap(`instantiation failed: ${(err as Error).message}`, { cause: err });
      } finally {
        this.starting = false;
      }
    }
  }

  /** Whether a watchdog guards this VM's calls. */
  get watched(): boolean {
    return this.#guard !== undefined;
  }

  /** Stops watching this VM (its calls are no longer timed). */
  close(): void {
    this.#guard?.close();
  }

  /** Runs the entry point: `_initialize` (+ `main`/`__main_void`) for reactors, else `_start`. */
  start(): void {
    this.starting = true;
    try {
      if (this.has('_initialize')) {
        this.call('_initialize');
        if (this.has('main')) this.call('main', 0, 0);
        else if (this.has('__main_void')) this.call('__main_void');
      } else if (this.has('_start')) {
        this.call('_start');
      }
    } finally {
      this.starting = false;
    }
  }

  has(name: string): boolean {
    return typeof this.#exports[name] === 'function';
  }

  get depth(): number {
    return this.#depth;
  }

  /**
   * Calls a guest export. A trap marks the VM failed and throws WasmTrap. Actions deferred with
   * `defer` during the call run when the outermost guest call returns.
   */
  call(name: string, ...args: (number | bigint)[]): number {
    if (this.failure) throw new WasmTrap(`VM failed earlier: ${this.failure.message}`);
    const fn = this.#exports[name] as GuestFn | undefined;
    if (typeof fn !== 'function') return 0;
    const outer = this.#depth === 0;
    if (outer) this.#enter(name);
    const timed = outer ? this.callStats.enter(name) : undefined;
    this.#depth++;
    let result: unknown;
    try {
      result = fn(...args);
    } catch (err) {
      if (err instanceof ProcExit && err.code === 0 && this.starting) {
        // TinyGo >= 0.35 ends _start with proc_exit(0): initialisation finished.
        result = 0;
      } else {
        this.#depth--;
        if (outer) this.#guard?.exit();
        throw this.#trap(name, err);
      }
    }
    this.#depth--;
    if (outer) this.callStats.exit(timed);
    if (outer && this.#guard && !this.#guard.exit()) {
      // It returned, but only after the watchdog had given up on it.
      throw this.#trap(name, new Error('returned after the deadline'));
    }
    if (this.memory && this.memory.size > this.maxMemoryBytes) {
      const trap = new WasmTrap(
        `${name}: memory grew to ${this.memory.size} bytes, over the ${this.maxMemoryBytes}-byte limit`,
        { limit: 'memory' },
      );
      this.failure ??= trap;
      this.#deferred.length = 0;
      throw trap;
    }
    if (this.#depth === 0 && this.#deferred.length > 0) this.#runDeferred();
    return typeof result === 'number' ? result : 0;
  }

  #enter(name: string): void {
    this.#outer = name;
    this.#guard?.enter();
  }

  /** Marks the VM failed with a WasmTrap for `err`, naming the watchdog's or the cap's cause. */
  #trap(name: string, err: unknown): WasmTrap {
    let trap: WasmTrap;
    const flag = this.#interrupt ? interruptFlag(this.#interrupt) : 0;
    if (flag === FLAG_DEADLINE)
      trap = new WasmTrap(`deadline exceeded (${this.deadlineMs} ms) in ${this.#outer || name}`, {
        cause: err,
        limit: 'deadline',
      });
    else if (flag === FLAG_MEMORY)
      trap = new WasmTrap(
        `memory limit exceeded in ${this.#outer || name}: the guest tried to grow its memory over the ${this.maxMemoryBytes}-byte limit`,
        { cause: err, limit: 'memory' },
      );
    else trap = err instanceof WasmTrap ? err : new WasmTrap(`${name}: ${describe(err)}`, { cause: err });
    this.failure ??= trap;
    this.#deferred.length = 0;
    return trap;
  }

  /** Runs `action` now if no guest call is active, else when the outermost call returns. */
  defer(action: () => void): void {
    if (this.#depth === 0) action();
    else this.#deferred.push(action);
  }

  #runDeferred(): void {
    while (this.#deferred.length > 0) {
      const action = this.#deferred.shift()!;
      action();
    }
  }

  /** Allocates guest memory through the guest's allocator. Returns 0 on failure. */
  allocate(size: number): number {
    if (size <= 0) return 0;
    if (this.failure) throw new WasmTrap(`VM failed earlier: ${this.failure.message}`);
    const outer = this.#depth === 0;
    if (outer) this.#enter('allocator');
    this.#depth++;
    let ptr: unknown;
    try {
      ptr = this.#allocator(size);
    } catch (err) {
      this.#depth--;
      if (outer) this.#guard?.exit();
      throw this.#trap('allocator', err instanceof WasmTrap ? err : new WasmTrap(`allocator: ${describe(err)}`));
    }
    this.#depth--;
    if (outer && this.#guard && !this.#guard.exit())
      throw this.#trap('allocator', new Error('returned after the deadline'));
    return typeof ptr === 'number' ? ptr >>> 0 : 0;
  }
}

function describe(err: unknown): string {
  if (err instanceof WebAssembly.RuntimeError) return `trap: ${err.message}`;
  if (err instanceof Error) return err.message;
  return String(err);
}
