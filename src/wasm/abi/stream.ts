// ABI area: stream control (continue, close, local response) and the 0.1.0 legacy calls.
import type { AbiHost } from './host-api.ts';
import { decodePairs } from './pairs.ts';
import { Status, StreamType } from './result.ts';

export function streamFunctions(h: AbiHost) {
  return {
    proxy_continue_stream: (type: number) => {
      if (type < 0 || type > StreamType.UPSTREAM) return Status.BAD_ARGUMENT;
      return h.effectiveContext()?.continueStream(type) ?? Status.NOT_FOUND;
    },
    proxy_close_stream: (type: number) => {
      if (type < 0 || type > StreamType.UPSTREAM) return Status.BAD_ARGUMENT;
      return h.effectiveContext()?.closeStream(type) ?? Status.NOT_FOUND;
    },
    proxy_continue_request: () => h.effectiveContext()?.continueStream(StreamType.HTTP_REQUEST) ?? Status.NOT_FOUND,
    proxy_continue_response: () => h.effectiveContext()?.continueStream(StreamType.HTTP_RESPONSE) ?? Status.NOT_FOUND,
    // Routes are not cached per stream here: clearing is a no-op that succeeds.
    proxy_clear_route_cache: () => Status.OK,
    proxy_send_local_response: (
      status: number,
      detailsPtr: number,
      detailsSize: number,
      bodyPtr: number,
      bodySize: number,
      headersPtr: number,
      headersSize: number,
      grpcStatus: number,
    ) => {
      const ctx = h.effectiveContext();
      if (!ctx) return Status.NOT_FOUND;
      const details = h.memory.string(detailsPtr, detailsSize);
      const body = h.memory.copy(bodyPtr, bodySize);
      const headers = decodePairs(h.memory.view(headersPtr, headersSize)) ?? [];
      return ctx.sendLocalResponse({ status: status >>> 0, details, body, headers, grpcStatus });
    },
  };
}
