// ABI area: shared key-value data.
import { type SharedData, sharedData } from '../../shared-state/shared-data.ts';
import type { AbiHost } from './host-api.ts';
import { Status } from './result.ts';

export function sharedDataFunctions(h: AbiHost, store: SharedData = sharedData, vmId = '') {
  return {
    proxy_get_shared_data: (kp: number, ks: number, retValPtrPtr: number, retValSizePtr: number, retCasPtr: number) => {
      const entry = store.get(vmId, h.memory.string(kp, ks));
      if (!entry) return Status.NOT_FOUND;
      const status = h.copyOut(entry.value, retValPtrPtr, retValSizePtr);
      if (status === Status.OK) h.memory.setU32(retCasPtr, entry.cas);
      return status;
    },
    proxy_set_shared_data: (kp: number, ks: number, vp: number, vs: number, cas: number) => {
      const result = store.set(vmId, h.memory.string(kp, ks), h.memory.copy(vp, vs), cas >>> 0);
      return result === 'ok' ? Status.OK : Status.CAS_MISMATCH;
    },
  };
}
