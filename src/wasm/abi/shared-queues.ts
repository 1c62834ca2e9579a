// ABI area: shared queues. Talks to whichever backend is in use (in-process or across worker
// threads); a backend failure (lock timeout) throws and the guard answers INTERNAL_FAILURE.
import { type SharedQueueStore, sharedState } from '../../shared-state/backend.ts';
import type { AbiHost } from './host-api.ts';
import { Status } from './result.ts';

/** `store` fixes the store (tests); left out, each call uses the backend selected by useSharedState(). */
export function sharedQueueFunctions(h: AbiHost, store?: SharedQueueStore, vmId = '') {
  const queues = () => store ?? sharedState().queues;
  return {
    proxy_register_shared_queue: (namePtr: number, nameSize: number, retIdPtr: number) => {
      const ctx = h.effectiveContext();
      if (!ctx) return Status.NOT_FOUND;
      const id = queues().register(vmId, h.memory.string(namePtr, nameSize), h.queueOwner(ctx.rootId));
      h.memory.setU32(retIdPtr, id);
      return Status.OK;
    },
    proxy_resolve_shared_queue: (
      vmPtr: number,
      vmSize: number,
      namePtr: number,
      nameSize: number,
      retIdPtr: number,
    ) => {
      const vm = h.memory.string(vmPtr, vmSize);
      const id = queues().resolve(vm || vmId, h.memory.string(namePtr, nameSize));
      if (id === undefined) return Status.NOT_FOUND;
      h.memory.setU32(retIdPtr, id);
      return Status.OK;
    },
    proxy_enqueue_shared_queue: (id: number, valuePtr: number, valueSize: number) =>
      queues().enqueue(id >>> 0, h.memory.copy(valuePtr, valueSize)) ? Status.OK : Status.NOT_FOUND,
    proxy_dequeue_shared_queue: (id: number, retPtrPtr: number, retSizePtr: number) => {
      const item = queues().dequeue(id >>> 0);
      if (item === undefined) return Status.NOT_FOUND;
      if (item === null) return Status.EMPTY;
      return h.copyOut(item, retPtrPtr, retSizePtr);
    },
  };
}
