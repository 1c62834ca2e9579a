// ABI areas not implemented yet: HTTP and gRPC callouts, shared queues, foreign functions.
// Each answers UNIMPLEMENTED (logged once per VM), never throws. See docs/abi.md.
import type { AbiHost } from './host-api.ts';
import { Status } from './result.ts';

export const UNIMPLEMENTED_IMPORTS = [
  'proxy_http_call',
  'proxy_grpc_call',
  'proxy_grpc_stream',
  'proxy_grpc_send',
  'proxy_grpc_cancel',
  'proxy_grpc_close',
  'proxy_register_shared_queue',
  'proxy_resolve_shared_queue',
  'proxy_enqueue_shared_queue',
  'proxy_dequeue_shared_queue',
] as const;

export function unimplementedFunctions(h: AbiHost) {
  const out: Record<string, (...args: number[]) => number> = {};
  for (const name of UNIMPLEMENTED_IMPORTS) out[name] = () => h.unimplemented(name);
  // proxy_get_status reports the last callout; with no callouts there is nothing to report.
  out.proxy_get_status = () => Status.NOT_FOUND;
  // No foreign functions are registered yet.
  out.proxy_call_foreign_function = () => Status.NOT_FOUND;
  return out;
}
