// The cross-thread backend: every worker thread reads and writes the same SharedMemoryStore
// (shared-memory.ts) synchronously, as host functions must; only the queue-ready notification is
// a message, sent to the owner's thread through the host (the main thread), which also cleans up
// after a thread that exits. Usage:
//
//   main:    const host = new SharedStateHost();
//            const { init, transferList } = host.channel();
//            new Worker(url, { workerData: { sharedState: init }, transferList });
//   worker:  useSharedState(connectSharedState(workerData.sharedState));   // before any VM starts
import { MessageChannel, type MessagePort as NodeMessagePort, threadId } from 'node:worker_threads';
import { type SharedDataStore, type SharedQueueStore, type SharedStateBackend, SharedStateError } from './backend.ts';
import type { SetResult, SharedValue } from './shared-data.ts';
import { createSharedMemory, type SharedMemoryOptions, SharedMemoryStore } from './shared-memory.ts';
import type { QueueOwner } from './shared-queues.ts';

/** What a worker needs to connect (structured-clonable; the port goes in the transfer list). */
export interface SharedStateInit {
  buffer: SharedArrayBuffer;
  port: NodeMessagePort;
  lockTimeoutMs: number;
}

export interface SharedStateOptions extends SharedMemoryOptions {
  /** How long a host call waits for the lock before answering INTERNAL_FAILURE. Default 1000 ms. */
  lockTimeoutMs?: number;
  /** Where problems that reach no host call go (a lost notification, a dead thread's cleanup). */
  log?: (message: string) => void;
}

type ToHost = { t: 'hello'; thread: number } | { t: 'ready'; to: number; id: number };
type ToWorker = { t: 'ready'; id: number };

const warn = (message: string) => process.emitWarning(message, { code: 'WASMGATE_SHARED_STATE' });

/** One thread's backend over the shared store. */
export class CrossThreadSharedState implements SharedStateBackend {
  readonly kind = 'cross-thread' as const;
  readonly store: SharedMemoryStore;
  readonly data: SharedDataStore;
  readonly queues: SharedQueueStore;
  readonly #thread: number;
  readonly #send: (to: number, id: number) => void;
  readonly #log: (message: string) => void;
  readonly #owners = new Map<number, QueueOwner>();
  readonly #tokens = new Map<QueueOwner, number>();
  #nextToken = 1;

  constructor(
    store: SharedMemoryStore,
    thread: number,
    send: (to: number, id: number) => void,
    log: (message: string) => void,
  ) {
    this.store = store;
    this.#thread = thread;
    this.#send = send;
    this.#log = log;
    this.data = {
      get: (vmId: string, key: string): SharedValue | undefined => store.get(vmId, key),
      set: (vmId: string, key: string, value: Uint8Array, cas: number): SetResult => store.set(vmId, key, value, cas),
    };
    this.queues = {
      register: (vmId, name, owner) => store.register(vmId, name, thread, this.#token(owner)),
      resolve: (vmId, name) => store.resolve(vmId, name),
      enqueue: (id, value) => {
        const result = store.enqueue(id, value);
        if (result.notify) this.#notify(result.notify.thread, id);
        return result.ok;
      },
      dequeue: (id) => store.dequeue(id),
      release: (owner) => {
        const token = this.#tokens.get(owner);
        if (token === undefined) return;
        this.#tokens.delete(owner);
        this.#owners.delete(token);
        store.release(thread, token);
      },
    };
  }

  get thread(): number {
    return this.#thread;
  }

  /** A notification for queue `id` reached this thread (or was raised on it). */
  deliver(id: number): void {
    let check: ReturnType<SharedMemoryStore['takeReady']>;
    try {
      check = this.store.takeReady(id, this.#thread);
    } catch (err) {
      this.#log(`shared queue ${id}: ready notification lost: ${(err as Error).message}`);
      return;
    }
    if (!check) return; // released meanwhile
    if (check.thread !== this.#thread) {
      this.#notify(check.thread, id); // taken over by another thread: the flag is still set for it
      return;
    }
    if (check.hasItems) this.#owners.get(check.token)?.ready(id);
  }

  #notify(thread: number, id: number): void {
    if (thread === this.#thread) setImmediate(() => this.deliver(id));
    else this.#send(thread, id);
  }

  #token(owner: QueueOwner): number {
    let token = this.#tokens.get(owner);
    if (token === undefined) {
      token = this.#nextToken++;
      this.#tokens.set(owner, token);
      this.#owners.set(token, owner);
    }
    return token;
  }
}

/** Worker side: connects this thread to the host's store. Call once per worker, before any VM starts. */
export function connectSharedState(
  init: SharedStateInit,
  log: (message: string) => void = warn,
): CrossThreadSharedState {
  const port = init.port;
  const store = new SharedMemoryStore(init.buffer, threadId, init.lockTimeoutMs);
  const backend = new CrossThreadSharedState(
    store,
    threadId,
    (to, id) => port.postMessage({ t: 'ready', to, id } satisfies ToHost),
    log,
  );
  port.on('message', (m: ToWorker) => {
    if (m.t === 'ready') backend.deliver(m.id);
  });
  port.unref(); // the worker's own work keeps it alive, not this port
  port.postMessage({ t: 'hello', thread: threadId } satisfies ToHost);
  return backend;
}

/**
 * Main-thread side: owns the buffer, forwards queue-ready notifications to the owner's thread and,
 * when a worker's port closes (it exited, crashed or was terminated), frees the lock it may have
 * held and removes the queues it owned. Its event loop is never blocked by the workers.
 */
export class SharedStateHost {
  readonly buffer: SharedArrayBuffer;
  /** The main thread's own backend (thread 0), e.g. for tests or the admin API. */
  readonly backend: CrossThreadSharedState;
  readonly #lockTimeoutMs: number;
  readonly #log: (message: string) => void;
  readonly #ports = new Map<number, NodeMessagePort>();
  readonly #pending = new Set<NodeMessagePort>();
  #closed = false;

  constructor(options: SharedStateOptions = {}) {
    this.buffer = createSharedMemory(options);
    this.#lockTimeoutMs = options.lockTimeoutMs ?? 1000;
    this.#log = options.log ?? warn;
    this.backend = new CrossThreadSharedState(
      new SharedMemoryStore(this.buffer, threadId, this.#lockTimeoutMs),
      threadId,
      (to, id) => this.#forward(to, id),
      this.#log,
    );
  }

  /** A fresh connection for one worker: pass `init` in workerData and `transferList` alongside. */
  channel(): { init: SharedStateInit; transferList: NodeMessagePort[] } {
    const { port1, port2 } = new MessageChannel();
    let thread: number | undefined;
    this.#pending.add(port1);
    port1.on('message', (m: ToHost) => {
      if (m.t === 'hello') {
        thread = m.thread;
        this.#pending.delete(port1);
        this.#ports.set(thread, port1);
      } else if (m.t === 'ready') {
        this.#forward(m.to, m.id);
      }
    });
    port1.on('close', () => {
      this.#pending.delete(port1);
      if (thread !== undefined && !this.#closed) this.#threadGone(thread);
    });
    port1.unref();
    return { init: { buffer: this.buffer, port: port2, lockTimeoutMs: this.#lockTimeoutMs }, transferList: [port2] };
  }

  /** Worker threads connected now. */
  get connected(): number {
    return this.#ports.size;
  }

  /** Closes every port: notifications between threads stop; the store keeps working and keeps its queues. */
  close(): void {
    this.#closed = true;
    for (const port of [...this.#ports.values(), ...this.#pending]) port.close();
  }

  #forward(to: number, id: number): void {
    if (to === this.backend.thread) {
      setImmediate(() => this.backend.deliver(id));
      return;
    }
    const port = this.#ports.get(to);
    if (port) port.postMessage({ t: 'ready', id } satisfies ToWorker);
    // else: that thread is gone and its queues with it
  }

  #threadGone(thread: number): void {
    this.#ports.delete(thread);
    const store = this.backend.store;
    if (store.breakLock(thread)) this.#log(`shared state: thread ${thread} exited holding the lock; lock freed`);
    try {
      store.release(thread);
    } catch (err) {
      this.#log(`shared state: queues of thread ${thread} not released: ${(err as SharedStateError).message}`);
    }
  }
}

export { SharedStateError };
