// ABI area: foreign functions, the ones Envoy registers that SDK examples call.
import { deflateSync, inflateSync } from 'node:zlib';
import type { AbiHost } from './host-api.ts';
import { Status, type StatusCode } from './result.ts';

type Foreign = (h: AbiHost, args: Uint8Array) => { status: StatusCode; result?: Uint8Array };

const MAX_UNCOMPRESSED = 16 * 1024 * 1024;

export const FOREIGN_FUNCTIONS: Record<string, Foreign> = {
  // zlib format, as Envoy's `compress` (zlib compress()).
  compress: (_h, args) => ({ status: Status.OK, result: deflateSync(args) }),
  uncompress: (_h, args) => {
    try {
      return { status: Status.OK, result: inflateSync(args, { maxOutputLength: MAX_UNCOMPRESSED }) };
    } catch {
      return { status: Status.SERIALIZATION_FAILURE };
    }
  },
  // Property schemas are not enforced: declaring succeeds and set_property stores bytes as given.
  declare_property: () => ({ status: Status.OK }),
  // Filter state lands where proxy_set_property puts it; args are a serialized protobuf in Envoy,
  // accepted as opaque bytes here.
  set_envoy_filter_state: (h, args) => {
    const ctx = h.effectiveContext();
    if (!ctx) return { status: Status.NOT_FOUND };
    return { status: ctx.setProperty(['envoy_filter_state'], args) };
  },
  clear_route_cache: () => ({ status: Status.OK }),
};

export function foreignFunctions(h: AbiHost) {
  return {
    proxy_call_foreign_function: (
      namePtr: number,
      nameSize: number,
      argsPtr: number,
      argsSize: number,
      retPtrPtr: number,
      retSizePtr: number,
    ) => {
      const fn = FOREIGN_FUNCTIONS[h.memory.string(namePtr, nameSize)];
      if (!fn) return Status.NOT_FOUND;
      const { status, result } = fn(h, h.memory.copy(argsPtr, argsSize));
      if (status !== Status.OK) return status;
      return h.copyOut(result ?? new Uint8Array(0), retPtrPtr, retSizePtr);
    },
  };
}
