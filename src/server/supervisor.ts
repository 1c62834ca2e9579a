// The supervisor: starts N worker threads (each a Gateway with its own VMs, listening on the same
// ports with SO_REUSEPORT), asks them for snapshots, reloads and drains them, and replaces one
// that dies. It never serves traffic itself, so a worker's crash cannot take it down.
//
// Crash containment (docs/design.md): a worker that throws or exits ends its thread only. Its slot
// is marked dead at once, so admin requests skip it instead of waiting
// for an answer that never comes, and a replacement starts after a backoff (100 ms to 5 s, growing
// while the worker keeps dying within STABLE_MS of starting, and while a replacement fails to start).
import { Worker } from 'node:worker_threads';
import type { Logger, LogLevelsState } from '../observability/logger.ts';
import { SharedStateHost } from '../shared-state/cross-thread.ts';
import type { ListenerSummary, ReloadResult } from './gateway.ts';
import type { WorkerSnapshot } from './snapshot.ts';
import type { WorkerFault, WorkerInit, WorkerMessage, WorkerRequest } from './worker.ts';

const WORKER_URL = new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js', import.meta.url);
const RESPAWN_BACKOFF_MS = [100, 500, 1000, 2000, 5000];
/**
 * How long the admin waits for a worker's snapshot. A worker that takes longer is stuck (a busy
 * loop, a heap close to its limit): it is left out rather than holding every admin answer for long.
 */
const SNAPSHOT_TIMEOUT_MS = 5000;
/** A worker that served this long before dying starts the backoff over (its next restart waits 100 ms). */
const STABLE_MS = 10_000;

/** The environment variable that enables fault injection: tests only, never in production. */
export const TEST_FAULTS_ENV = 'WASMGATE_TEST_FAULTS';
export const FAULT_KINDS: readonly WorkerFault['kind'][] = ['throw', 'exit'];
export const FAULT_TIMES: readonly WorkerFault['at'][] = ['now', 'drain', 'close'];

export function testFaultsEnabled(): boolean {
  return process.env[TEST_FAULTS_ENV] === '1';
}

/** starting: spawned, not ready yet; ready: serving and answering requests; dead: exited (or failed to start). */
type SlotState = 'starting' | 'ready' | 'dead';

interface Slot {
  index: number;
  worker: Worker;
  state: SlotState;
  readyAt: number;
  /** A reload happened while this worker was starting: it reloads once ready. */
  reloadWhenReady: boolean;
  pending: Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>;
}

/** One worker position's history: it outlives the threads that fill it. */
interface Seat {
  /** Replacements started for this position since the proxy started (the restart counter). */
  restarts: number;
  /** Deaths in a row without STABLE_MS of service: picks the next backoff. */
  consecutive: number;
  lastExit: { code: number; reason: string; at: number } | undefined;
  /** Pending restart timer (while the position is empty). */
  timer: NodeJS.Timeout | undefined;
}

/** What the admin shows per worker position (GET /config_dump `worker_threads`, /stats/prometheus). */
export interface WorkerStatus {
  worker: number;
  /** live: serving; starting: a replacement is starting; restarting: dead, waiting for the backoff. */
  state: 'live' | 'starting' | 'restarting';
  threadId: number;
  restarts: number;
  lastExit: { code: number; reason: string; at: string } | undefined;
}

export class WorkerPool {
  readonly #init: Omit<WorkerInit, 'index' | 'sharedState' | 'draining'>;
  readonly #shared: SharedStateHost;
  readonly #count: number;
  readonly #logger: Logger;
  readonly #slots: (Slot | undefined)[] = [];
  readonly #seats: Seat[];
  #nextId = 1;
  #closing = false;
  #draining = false;
  /** Listeners and chains as the workers run them (from worker 0). */
  summaries: ListenerSummary[] = [];
  pluginNames: string[] = [];

  constructor(init: Omit<WorkerInit, 'index' | 'sharedState' | 'draining'>, count: number, logger: Logger) {
    this.#init = init;
    this.#shared = new SharedStateHost({ log: (m) => logger.warn(m) });
    this.#count = count;
    this.#logger = logger;
    this.#seats = Array.from({ length: count }, () => ({
      restarts: 0,
      consecutive: 0,
      lastExit: undefined,
      timer: undefined,
    }));
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
      workerData: { ...this.#init, index, sharedState, draining: this.#draining } satisfies WorkerInit,
      transferList,
      // The worker writes its logs to fd 2 itself; its process.stdout/stderr are unused.
      stdout: false,
      stderr: false,
    });
    const slot: Slot = { index, worker, state: 'starting', readyAt: 0, reloadWhenReady: false, pending: new Map() };
    this.#slots[index] = slot;
    const seat = this.#seats[index]!;
    let reason = '';
    return new Promise<number[]>((resolve, reject) => {
      const failedToStart = (message: string) => {
        if (slot.state !== 'starting') return;
        slot.state = 'dead';
        reject(new Error(message));
        // A worker that reported a failed start may still have handles open: stop it.
        void worker.terminate();
      };
      worker.on('message', (msg: WorkerMessage) => {
        if (msg.type === 'ready') {
          if (slot.state !== 'starting') return;
          slot.state = 'ready';
          slot.readyAt = Date.now();
          resolve(msg.ports);
          if (slot.reloadWhenReady) void this.#reloadOne(slot);
        } else if (msg.type === 'failed') {
          reason = msg.message;
          if (slot.state === 'starting') failedToStart(`worker ${index} failed to start: ${msg.message}`);
          else this.#logger.error({ worker: index }, `worker ${index}: ${msg.message}`);
        } else {
          const p = slot.pending.get(msg.id);
          if (!p) return;
          slot.pending.delete(msg.id);
          if (msg.ok) p.resolve(msg.result);
          else p.reject(new Error(msg.error));
        }
      });
      worker.on('error', (err: Error & { code?: string }) => {
        reason = err.code ? `${err.code}: ${err.message}` : err.message;
        this.#logger.error({ worker: index, err }, `worker ${index} failed: ${reason}`);
      });
      worker.on('exit', (code) => {
        const wasReady = slot.state === 'ready';
        const wasStarting = slot.state === 'starting';
        slot.state = 'dead';
        for (const p of slot.pending.values()) p.reject(new Error(`worker ${index} exited`));
        slot.pending.clear();
        if (wasStarting) reject(new Error(`worker ${index} exited with code ${code} while starting`));
        if (this.#closing || this.#slots[index] !== slot) return;
        // Worker 0 (or another) failing at the first start fails `start()`; there is nothing to replace.
        if (!wasReady && seat.restarts === 0 && seat.lastExit === undefined) return;
        seat.lastExit = { code, reason: reason || `exit code ${code}`, at: Date.now() };
        if (wasReady && Date.now() - slot.readyAt >= STABLE_MS) seat.consecutive = 0;
        this.#respawnLater(index, wasReady ? `exited (code ${code})` : `did not start (${seat.lastExit.reason})`);
      });
    });
  }

  /** Crash containment: the supervisor stays, the worker is replaced after a growing backoff. */
  #respawnLater(index: number, what: string): void {
    const seat = this.#seats[index]!;
    if (seat.timer) return;
    const delay = RESPAWN_BACKOFF_MS[Math.min(seat.consecutive, RESPAWN_BACKOFF_MS.length - 1)]!;
    seat.consecutive++;
    this.#logger.error(
      { worker: index, code: seat.lastExit?.code, reason: seat.lastExit?.reason },
      `worker ${index} ${what}; restarting in ${delay} ms`,
    );
    seat.timer = setTimeout(() => {
      seat.timer = undefined;
      if (this.#closing) return;
      seat.restarts++;
      this.#spawn(index).then(
        () => this.#logger.info({ worker: index, restarts: seat.restarts }, `worker ${index} restarted`),
        // Its exit (a replacement that reports a failed start is terminated) logs and schedules the next try.
        () => {},
      );
    }, delay);
    seat.timer.unref();
  }

  #request<T>(slot: Slot, req: WorkerRequest, timeoutMs = 30_000): Promise<T> {
    // A dead worker would never answer: say so now rather than after the timeout.
    if (slot.state === 'dead') return Promise.reject(new Error(`worker ${slot.index} is not running`));
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

  /** Workers that are serving and answer requests (not starting, not dead). */
  #live(): Slot[] {
    return this.#slots.filter((s): s is Slot => s?.state === 'ready');
  }

  /** Every live worker's snapshot (a worker that does not answer, or is being replaced, is left out). */
  async snapshots(): Promise<WorkerSnapshot[]> {
    const all = await Promise.allSettled(
      this.#live().map((s) => this.#request<WorkerSnapshot>(s, { op: 'snapshot' }, SNAPSHOT_TIMEOUT_MS)),
    );
    return all.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  }

  /** Each worker position: live, starting or waiting to restart, and how often it was replaced. */
  workers(): WorkerStatus[] {
    return this.#seats.map((seat, i) => {
      const slot = this.#slots[i];
      const state = slot?.state === 'ready' ? 'live' : slot?.state === 'starting' ? 'starting' : 'restarting';
      const last = seat.lastExit;
      return {
        worker: i,
        state,
        threadId: slot?.worker.threadId ?? -1,
        restarts: seat.restarts,
        lastExit: last && { code: last.code, reason: last.reason, at: new Date(last.at).toISOString() },
      };
    });
  }

  /** Test-only (WASMGATE_TEST_FAULTS=1): asks worker `index` to die as `fault` says. */
  async injectFault(index: number, fault: WorkerFault): Promise<void> {
    const slot = this.#slots[index];
    if (slot?.state !== 'ready') throw new Error(`worker ${index} is not running`);
    await this.#request(slot, { op: 'fault', fault }, 5000);
  }

  async #refreshSummary(): Promise<void> {
    const first = this.#live()[0];
    if (!first) return;
    const snap = await this.#request<WorkerSnapshot>(first, { op: 'snapshot' });
    this.summaries = snap.summaries;
    this.pluginNames = snap.plugins.map((p) => p.name);
  }

  #reloadOne(slot: Slot): Promise<ReloadResult> {
    slot.reloadWhenReady = false;
    return this.#request<ReloadResult>(slot, { op: 'reload' }).catch((err: Error) => {
      this.#logger.error({ worker: slot.index }, `worker ${slot.index} reload failed: ${err.message}`);
      throw err;
    });
  }

  /** Every worker reloads the (already validated) configuration; resolves with worker 0's result. */
  async reload(): Promise<ReloadResult> {
    // A starting replacement may have read the files before they changed: it reloads once ready.
    for (const s of this.#slots) if (s?.state === 'starting') s.reloadWhenReady = true;
    const results = await Promise.all(this.#live().map((s) => this.#request<ReloadResult>(s, { op: 'reload' })));
    await this.#refreshSummary();
    if (results.length === 0) throw new Error('no worker is running');
    return results[0]!;
  }

  async drain(): Promise<void> {
    // A replacement started from now on starts draining too.
    this.#draining = true;
    await Promise.allSettled(this.#live().map((s) => this.#request(s, { op: 'drain' })));
  }

  async connections(): Promise<number> {
    const all = await Promise.allSettled(
      this.#live().map((s) => this.#request<number>(s, { op: 'connections' }, 2000)),
    );
    return all.reduce((n, r) => n + (r.status === 'fulfilled' ? r.value : 0), 0);
  }

  async setLevels(levels: LogLevelsState): Promise<void> {
    // A replacement starts with the levels in force, not those of the command line.
    this.#init.levels = levels;
    await Promise.allSettled(this.#live().map((s) => this.#request(s, { op: 'levels', levels })));
  }

  async close(): Promise<void> {
    this.#closing = true;
    for (const seat of this.#seats) clearTimeout(seat.timer);
    setImmediate(() => this.#shared.close());
    await Promise.allSettled(
      this.#slots.map(async (s) => {
        if (!s) return;
        try {
          // A worker still starting is not asked (it answers only once started): it is stopped.
          if (s.state === 'ready') await this.#request(s, { op: 'close' }, 10_000);
        } finally {
          await s.worker.terminate();
        }
      }),
    );
  }
}
