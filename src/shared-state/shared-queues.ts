// Shared queues, partitioned by vm_id: registered by one root context (the owner, told when items
// arrive), resolved and fed by anyone. Knows nothing about Wasm. This is the in-process backend
// (one thread); shared-memory.ts + cross-thread.ts are the cross-thread one.
import type { SharedQueueStore } from './backend.ts';

export interface QueueOwner {
  /** Called (asynchronously, never inside the enqueuer's call) when the queue has items. */
  ready(queueId: number): void;
}

interface Queue {
  vmId: string;
  name: string;
  items: Uint8Array[];
  owner: QueueOwner;
  notifyPending: boolean;
}

export class SharedQueues implements SharedQueueStore {
  readonly #byId = new Map<number, Queue>();
  readonly #byName = new Map<string, number>();
  #nextId = 1;
  /** Bound on items per queue; enqueue beyond it drops the oldest item, as a ring. */
  readonly maxItems: number;

  constructor(maxItems = 10_000) {
    this.maxItems = maxItems;
  }

  register(vmId: string, name: string, owner: QueueOwner): number {
    const key = `${vmId}\0${name}`;
    const existing = this.#byName.get(key);
    if (existing !== undefined) {
      this.#byId.get(existing)!.owner = owner;
      return existing;
    }
    const id = this.#nextId++;
    this.#byId.set(id, { vmId, name, items: [], owner, notifyPending: false });
    this.#byName.set(key, id);
    return id;
  }

  resolve(vmId: string, name: string): number | undefined {
    return this.#byName.get(`${vmId}\0${name}`);
  }

  /** False when the queue does not exist. */
  enqueue(id: number, value: Uint8Array): boolean {
    const q = this.#byId.get(id);
    if (!q) return false;
    q.items.push(value);
    if (q.items.length > this.maxItems) q.items.shift();
    if (!q.notifyPending) {
      q.notifyPending = true;
      setImmediate(() => {
        q.notifyPending = false;
        if (q.items.length > 0) q.owner.ready(id);
      });
    }
    return true;
  }

  /** undefined: no such queue; null: empty. */
  dequeue(id: number): Uint8Array | null | undefined {
    const q = this.#byId.get(id);
    if (!q) return undefined;
    return q.items.shift() ?? null;
  }

  /** Forget queues owned by `owner` (its VM went away). */
  release(owner: QueueOwner): void {
    for (const [id, q] of this.#byId) {
      if (q.owner === owner) {
        this.#byId.delete(id);
        this.#byName.delete(`${q.vmId}\0${q.name}`);
      }
    }
  }
}

export const sharedQueues = new SharedQueues();
