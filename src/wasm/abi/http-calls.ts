// ABI area: HTTP callouts and the status of the last call.
import type { AbiHost } from './host-api.ts';
import { decodePairs } from './pairs.ts';
import { Status } from './result.ts';

const encoder = new TextEncoder();

export function httpCallFunctions(h: AbiHost) {
  return {
    proxy_http_call: (
      upPtr: number,
      upSize: number,
      hdrPtr: number,
      hdrSize: number,
      bodyPtr: number,
      bodySize: number,
      trlPtr: number,
      trlSize: number,
      timeoutMs: number,
      retTokenPtr: number,
    ) => {
      const upstream = h.memory.string(upPtr, upSize);
      const headers = decodePairs(h.memory.view(hdrPtr, hdrSize));
      const trailers = decodePairs(h.memory.view(trlPtr, trlSize)) ?? [];
      if (!headers) return Status.BAD_ARGUMENT;
      if (timeoutMs < 0) return Status.BAD_ARGUMENT;
      const result = h.httpCall(upstream, headers, h.memory.copy(bodyPtr, bodySize), trailers, timeoutMs >>> 0);
      if (result.status === Status.OK) h.memory.setU32(retTokenPtr, result.token);
      return result.status;
    },
    proxy_get_status: (retCodePtr: number, retMsgPtrPtr: number, retMsgSizePtr: number) => {
      const s = h.callStatus();
      if (!s) return Status.NOT_FOUND;
      h.memory.setU32(retCodePtr, s.code);
      return h.copyOut(encoder.encode(s.message), retMsgPtrPtr, retMsgSizePtr);
    },
  };
}
