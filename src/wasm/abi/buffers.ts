// ABI area: buffers (bodies, L4 data, configuration, call responses).
import type { AbiHost } from './host-api.ts';
import { BufferType, Status } from './result.ts';

/** The buffer of this type, wherever it lives: the callout response belongs to the VM, not a context. */
function findBuffer(h: AbiHost, type: number) {
  if (type === BufferType.HTTP_CALL_RESPONSE_BODY) {
    const r = h.callResponse();
    return r ? { bytes: () => r.body, set: () => Status.BAD_ARGUMENT } : undefined;
  }
  if (type === BufferType.GRPC_CALL_MESSAGE) {
    const m = h.grpcDelivery()?.message;
    return m ? { bytes: () => m, set: () => Status.BAD_ARGUMENT } : undefined;
  }
  return h.effectiveContext()?.buffer(type);
}

export function bufferFunctions(h: AbiHost) {
  return {
    proxy_get_buffer_bytes: (type: number, start: number, maxSize: number, retPtrPtr: number, retSizePtr: number) => {
      start >>>= 0;
      maxSize >>>= 0;
      if (start + maxSize > 0xffffffff) return Status.BAD_ARGUMENT;
      const buf = findBuffer(h, type);
      if (!buf) return type > BufferType.FOREIGN_FUNCTION_ARGUMENTS ? Status.BAD_ARGUMENT : Status.NOT_FOUND;
      const bytes = buf.bytes();
      const from = Math.min(start, bytes.length);
      return h.copyOut(bytes.subarray(from, Math.min(bytes.length, from + maxSize)), retPtrPtr, retSizePtr);
    },
    proxy_set_buffer_bytes: (type: number, start: number, size: number, dataPtr: number, dataSize: number) => {
      const buf = findBuffer(h, type);
      if (!buf) return type > BufferType.FOREIGN_FUNCTION_ARGUMENTS ? Status.BAD_ARGUMENT : Status.NOT_FOUND;
      return buf.set(start >>> 0, size >>> 0, h.memory.copy(dataPtr, dataSize));
    },
    proxy_get_buffer_status: (type: number, retLengthPtr: number, retFlagsPtr: number) => {
      const buf = findBuffer(h, type);
      if (!buf) return type > BufferType.FOREIGN_FUNCTION_ARGUMENTS ? Status.BAD_ARGUMENT : Status.NOT_FOUND;
      h.memory.setU32(retLengthPtr, buf.bytes().length);
      h.memory.setU32(retFlagsPtr, 0);
      return Status.OK;
    },
    // 0.1.0: the VM configuration during on_vm_start, the plugin configuration otherwise.
    proxy_get_configuration: (retPtrPtr: number, retSizePtr: number) => {
      const ctx = h.effectiveContext();
      const buf = ctx?.buffer(BufferType.VM_CONFIGURATION) ?? ctx?.buffer(BufferType.PLUGIN_CONFIGURATION);
      return h.copyOut(buf ? buf.bytes() : new Uint8Array(0), retPtrPtr, retSizePtr);
    },
  };
}
