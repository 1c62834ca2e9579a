// The supervisor: starts N worker threads (each a Gateway with its own VMs, listening on the same
// ports with SO_REUSEPORT), asks them for snapshots, reloads and drains them, and replaces one
// that dies. It never serves traffic itself, so a worker's crash cannot take it down.
import { Worker } from 'node:worker_threads';
import type { Logger, LogLevelsState } from '../observability/logger.ts';
import { SharedStateHost } from '../shared-state/cross-thread.ts';
import type { ListenerSummary, ReloadResult } from './gateway.ts';
import type { WorkerSnapshot } from './snapshot.ts';
import type { WorkerInit, WorkerMessage, WorkerRequest } from './worker.ts';

const WORKER_URL = new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js', import.meta.url);
const RESPAWN_BACKOFF_MS = [100, 500, 1000, 2000, 5000];

interface Slot {
  index: number;
  worker: Worker;
  pending: Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>;
  restarts: number;
}

export class WorkerPool {
  readonly #init: Omit<WorkerInit, 'index' | 'sharedState'>;
  readonly #shared: SharedStateHost;
  readonly #count: number;
  readonly #logger: Logger;
  readonly #slots: (Slot | undefined)[] = [];
  #nextId = 1;
  #closing = false;
  /** Listeners and chains as the workers run them (from worker 0). */
  summaries: ListenerSummary[] = [];
  pluginNames: string[] = [];

  constructor(init: Omit<WorkerInit, 'index' | 'sharedState'>, count: number, logger: Logger) {
    this.#init = init;
    this.#shared = new SharedStateHost({ log: (m) => logger.warn(m) });
    this.#count = count;
    this.#logger = logger;
  }

  get count(): number {
    return this.#count;
  }

  /** Starts worker 0, then (with its ports known, for --port 0) the others. */
  async start(): Promise<void> {
    const ports = await this.#spawn(0);
    if (this.#init.options.port === 0 && ports[0] !== undefined) this.#init.options.port = ports[0];
    await Promise.all(Array.from({ length: this.#count - 1 }, (_, i) => this.#spawn(i + 1)));
    await this.#refreshSummary();
  }

  #spawn(index: number): Promise<number[]> {
    // Shared data and queues live in shared memory that every worker (and a replacement) joins.
    const { init: sharedState, transferList } = this.#shared.channel();
    const worker = new Worker(WORKER_URL, {
      workerData: { ...this.#init, index, sharedState } satisfies WorkerInit,
      transferList,
      // The worker writes its logs to fd 2 itself; its process.stdout/stderr are unused.
      stdout: false,
      stderr: false,
    });
    const slot: Slot = { index, worker, pending: new Map(), restarts: this.#slots[index]?.restarts ?? 0 };
    this.#slots[index] = slot;
    return new Promise<number[]>((resolve, reject) => {
      let started = false;
      worker.on('message', (msg: WorkerMessage) => {
        if (msg.type === 'ready') {
          started = true;
          slot.restarts = 0;
          resolve(msg.ports);
        } else if (msg.type === 'failed') {
          if (!started) reject(new Error(msg.message));
          else this.#logger.error(`worker ${index}: ${msg.message}`);
        } else {
          const p = slot.pending.get(msg.id);
          if (!p) return;
          slot.pending.delete(msg.id);
          if (msg.ok) p.resolve(msg.result);
          else p.reject(new Error(msg.error));
        }
      });
      worker.on('error', (err) => {
        this.#logger.error({ worker: index }, `worker ${index} failed: ${err.message}`);
      });
      worker.on('exit', (code) => {
        for (const p of slot.pending.values()) p.reject(new Error(`worker ${index} exited`));
        slot.pending.clear();
        if (!started) {
          reject(new Error(`worker ${index} exited with code ${code} while starting`));
          return;
        }
        if (this.#closing || this.#slots[index] !== slot) return;
        // Crash containment: the supervisor stays, the worker is replaced.
        const delay = RESPAWN_BACKOFF_MS[Math.min(slot.restarts, RESPAWN_BACKOFF_MS.length - 1)]!;
        slot.restarts++;
        this.#logger.error({ worker: index, code }, `worker ${index} exited (code ${code}); restarting in ${delay} ms`);
        setTimeout(() => {
          if (this.#closing) return;
          this.#spawn(index).then(
            () => this.#logger.info({ worker: index }, `worker ${index} restarted`),
            (err: Error) => this.#logger.error({ worker: index }, `worker ${index} restart failed: ${err.message}`),
          );
        }, delay).unref();
      });
    });
  }

  #request<T>(slot: Slot, req: WorkerRequest, timeoutMs = 30_000): Promise<T> {
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        slot.pending.delete(id);
        reject(new Error(`worker ${slot.index} did not answer ${req.op} in ${timeoutMs} ms`));
      }, timeoutMs);
      slot.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      slot.worker.postMessage({ id, req });
    });
  }

  #live(): Slot[] {
    return this.#slots.filter((s): s is Slot => s !== undefined);
  }

  /** Every live worker's snapshot (a worker that does not answer is left out). */
  async snapshots(): Promise<WorkerSnapshot[]> {
    const all = await Promise.allSettled(this.#live().map((s) => this.#request<WorkerSnapshot>(s, { op: 'snapshot' })));
    return all.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  }

  async #refreshSummary(): Promise<void> {
    const first = this.#live()[0];
    if (!first) return;
    const snap = await this.#request<WorkerSnapshot>(first, { op: 'snapshot' });
    this.summaries = snap.summaries;
    this.pluginNames = snap.plugins.map((p) => p.name);
  }

  /** Every worker reloads the (already validated) configuration; resolves with worker 0's result. */
  async reload(): Promise<ReloadResult> {
    const results = await Promise.all(this.#live().map((s) => this.#request<ReloadResult>(s, { op: 'reload' })));
    await this.#refreshSummary();
    return results[0]!;
  }

  async drain(): Promise<void> {
    await Promise.allSettled(this.#live().map((s) => this.#request(s, { op: 'drain' })));
  }

  async connections(): Promise<number> {
    const all = await Promise.allSettled(
      this.#live().map((s) => this.#request<number>(s, { op: 'connections' }, 2000)),
    );
    return all.reduce((n, r) => n + (r.status === 'fulfilled' ? r.value : 0), 0);
  }

  async setLevels(levels: LogLevelsState): Promise<void> {
    await Promise.allSettled(this.#live().map((s) => this.#request(s, { op: 'levels', levels })));
  }

  async close(): Promise<void> {
    this.#closing = true;
    setImmediate(() => this.#shared.close());
    await Promise.allSettled(
      this.#live().map(async (s) => {
        try {
          await this.#request(s, { op: 'close' }, 10_000);
        } finally {
          await s.worker.terminate();
        }
      }),
    );
  }
}
