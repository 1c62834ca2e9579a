// ABI area: shared queues.
import { type SharedQueues, sharedQueues } from '../../shared-state/shared-queues.ts';
import type { AbiHost } from './host-api.ts';
import { Status } from './result.ts';

export function sharedQueueFunctions(h: AbiHost, queues: SharedQueues = sharedQueues, vmId = '') {
  return {
    proxy_register_shared_queue: (namePtr: number, nameSize: number, retIdPtr: number) => {
      const ctx = h.effectiveContext();
      if (!ctx) return Status.NOT_FOUND;
      const id = queues.register(vmId, h.memory.string(namePtr, nameSize), h.queueOwner(ctx.rootId));
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
      const id = queues.resolve(vm || vmId, h.memory.string(namePtr, nameSize));
      if (id === undefined) return Status.NOT_FOUND;
      h.memory.setU32(retIdPtr, id);
      return Status.OK;
    },
    proxy_enqueue_shared_queue: (id: number, valuePtr: number, valueSize: number) =>
      queues.enqueue(id >>> 0, h.memory.copy(valuePtr, valueSize)) ? Status.OK : Status.NOT_FOUND,
    proxy_dequeue_shared_queue: (id: number, retPtrPtr: number, retSizePtr: number) => {
      const item = queues.dequeue(id >>> 0);
      if (item === undefined) return Status.NOT_FOUND;
      if (item === null) return Status.EMPTY;
      return h.copyOut(item, retPtrPtr, retSizePtr);
    },
  };
}
