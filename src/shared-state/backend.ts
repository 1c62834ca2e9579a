// The shared-state backend: what the ABI's shared data and shared queue functions talk to. Two
// implementations: the in-process one (SharedData + SharedQueues, one thread) and the cross-thread
// one (shared-memory.ts + cross-thread.ts, every worker thread of the process). The active one is
// chosen once at start-up with useSharedState(), before any VM starts; the ABI modules only ever
// call sharedState(). Knows nothing about Wasm.
import { type SetResult, type SharedValue, sharedData } from './shared-data.ts';
import { type QueueOwner, sharedQueues } from './shared-queues.ts';

/** A backend that cannot answer (lock timeout, arena full): the host call answers INTERNAL_FAILURE. */
export class SharedStateError extends Error {
  override name = 'SharedStateError';
}

export interface SharedDataStore {
  get(vmId: string, key: string): SharedValue | undefined;
  /** cas 0 sets unconditionally; otherwise it must equal the current cas of an existing key. */
  set(vmId: string, key: string, value: Uint8Array, cas: number): SetResult;
}

export interface SharedQueueStore {
  /** Registers (or takes over) the queue `name` in partition `vmId`; `owner` is told when it has items. */
  register(vmId: string, name: string, owner: QueueOwner): number;
  resolve(vmId: string, name: string): number | undefined;
  /** False when the queue does not exist. The owner is told asynchronously, never inside this call. */
  enqueue(id: number, value: Uint8Array): boolean;
  /** undefined: no such queue; null: empty. */
  dequeue(id: number): Uint8Array | null | undefined;
  /** Forgets the queues `owner` owns (its VM went away). */
  release(owner: QueueOwner): void;
}

export interface SharedStateBackend {
  readonly kind: 'in-process' | 'cross-thread';
  readonly data: SharedDataStore;
  readonly queues: SharedQueueStore;
}

/** One thread's state: the process-local singletons. */
export const inProcessSharedState: SharedStateBackend = {
  kind: 'in-process',
  data: sharedData,
  queues: sharedQueues,
};

let active: SharedStateBackend = inProcessSharedState;

/** Selects the backend for this thread. Call before any VM starts (queues registered before stay where they are). */
export function useSharedState(backend: SharedStateBackend): void {
  active = backend;
}

/** The backend in use on this thread. */
export function sharedState(): SharedStateBackend {
  return active;
}
