// The V8 runtime wrapper: instantiation, start-up, guest calls, traps. Knows nothing of Proxy-Wasm
// semantics beyond the entry-point rules; the ABI lives in ../abi and ../host.
import { GuestMemory } from './memory.ts';
import type { ModuleInfo } from './module.ts';

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
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WasmTrap';
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
  #deferred: (() => void)[] = [];
  /** Set once the guest trapped; every later call fails fast. */
  failure: Error | undefined;
  /** True while the entry point runs (start restrictions apply, proc_exit(0) ends start-up). */
  starting = false;
  /** A guest whose memory grows past this is failed (Envoy's cap is 1 GiB too). */
  maxMemoryBytes = 1024 * 1024 * 1024;

  constructor(module: WebAssembly.Module, info: ModuleInfo, imports: ImportObject) {
    this.info = info;
    this.starting = true; // a start section (AssemblyScript) runs inside instantiation
    try {
      this.instance = new WebAssembly.Instance(module, imports as WebAssembly.Imports);
    } catch (err) {
      throw new WasmTrap(`instantiation failed: ${describe(err)}`, { cause: err });
    } finally {
      this.starting = false;
    }
    this.#exports = this.instance.exports as Record<string, unknown>;
    const memory = this.#exports.memory;
    if (!(memory instanceof WebAssembly.Memory)) throw new WasmTrap('module does not export its memory');
    this.memory = new GuestMemory(memory);
    // The spec prefers proxy_on_memory_allocate; both names are accepted.
    const alloc = this.#exports.proxy_on_memory_allocate ?? this.#exports.malloc;
    if (typeof alloc !== 'function') throw new WasmTrap('module exports no allocator');
    this.#allocator = alloc as GuestFn;
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
        const trap = err instanceof WasmTrap ? err : new WasmTrap(`${name}: ${describe(err)}`, { cause: err });
        this.failure ??= trap;
        this.#deferred.length = 0;
        throw trap;
      }
    }
    this.#depth--;
    if (this.memory && this.memory.size > this.maxMemoryBytes) {
      const trap = new WasmTrap(
        `${name}: memory grew to ${this.memory.size} bytes, over the ${this.maxMemoryBytes}-byte limit`,
      );
      this.failure ??= trap;
      this.#deferred.length = 0;
      throw trap;
    }
    if (this.#depth === 0 && this.#deferred.length > 0) this.#runDeferred();
    return typeof result === 'number' ? result : 0;
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
    this.#depth++;
    try {
      const ptr = this.#allocator(size);
      return typeof ptr === 'number' ? ptr >>> 0 : 0;
    } catch (err) {
      const trap = new WasmTrap(`allocator: ${describe(err)}`, { cause: err });
      this.failure ??= trap;
      throw trap;
    } finally {
      this.#depth--;
    }
  }
}

function describe(err: unknown): string {
  if (err instanceof WebAssembly.RuntimeError) return `trap: ${err.message}`;
  if (err instanceof Error) return err.message;
  return String(err);
}
