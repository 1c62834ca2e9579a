// ABI area: shared key-value data. Talks to whichever backend is in use (in-process or across
// worker threads); a backend failure (lock timeout) throws and the guard answers INTERNAL_FAILURE.
import { type SharedDataStore, sharedState } from '../../shared-state/backend.ts';
import type { AbiHost } from './host-api.ts';
import { Status } from './result.ts';

/** `store` fixes the store (tests); left out, each call uses the backend selected by useSharedState(). */
export function sharedDataFunctions(h: AbiHost, store?: SharedDataStore, vmId = '') {
  const data = () => store ?? sharedState().data;
  return {
    proxy_get_shared_data: (kp: number, ks: number, retValPtrPtr: number, retValSizePtr: number, retCasPtr: number) => {
      const entry = data().get(vmId, h.memory.string(kp, ks));
      if (!entry) return Status.NOT_FOUND;
      const status = h.copyOut(entry.value, retValPtrPtr, retValSizePtr);
      if (status === Status.OK) h.memory.setU32(retCasPtr, entry.cas);
      return status;
    },
    proxy_set_shared_data: (kp: number, ks: number, vp: number, vs: number, cas: number) => {
      const result = data().set(vmId, h.memory.string(kp, ks), h.memory.copy(vp, vs), cas >>> 0);
      return result === 'ok' ? Status.OK : Status.CAS_MISMATCH;
    },
  };
}
