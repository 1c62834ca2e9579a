// Shared key-value data, partitioned by vm_id, with Envoy's CAS rules. Knows nothing about Wasm.
// This is the in-process backend (one thread); shared-memory.ts is the cross-thread one.
import type { SharedDataStore } from './backend.ts';

export interface SharedValue {
  value: Uint8Array;
  cas: number;
}

export type SetResult = 'ok' | 'cas_mismatch';

export class SharedData implements SharedDataStore {
  readonly #partitions = new Map<string, Map<string, SharedValue>>();
  #nextCas = 1;

  get(vmId: string, key: string): SharedValue | undefined {
    return this.#partitions.get(vmId)?.get(key);
  }

  /** cas 0 sets unconditionally; otherwise it must equal the current cas of an existing key. */
  set(vmId: string, key: string, value: Uint8Array, cas: number): SetResult {
    let partition = this.#partitions.get(vmId);
    if (!partition) {
      partition = new Map();
      this.#partitions.set(vmId, partition);
    }
    const current = partition.get(key);
    if (cas !== 0 && current && current.cas !== cas) return 'cas_mismatch';
    const next = this.#nextCas;
    this.#nextCas = this.#nextCas >= 0xffffffff ? 1 : this.#nextCas + 1;
    partition.set(key, { value, cas: next });
    return 'ok';
  }
}

/** The in-process store (one thread); see backend.ts for the one in use. */
export const sharedData = new SharedData();
