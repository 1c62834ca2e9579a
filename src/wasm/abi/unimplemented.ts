// ABI areas not implemented yet: gRPC callouts.
// Each answers UNIMPLEMENTED (logged once per VM), never throws. See docs/abi.md.
import type { AbiHost } from './host-api.ts';

export const UNIMPLEMENTED_IMPORTS = [
  'proxy_grpc_call',
  'proxy_grpc_stream',
  'proxy_grpc_send',
  'proxy_grpc_cancel',
  'proxy_grpc_close',
] as const;

export function unimplementedFunctions(h: AbiHost) {
  const out: Record<string, (...args: number[]) => number> = {};
  for (const name of UNIMPLEMENTED_IMPORTS) out[name] = () => h.unimplemented(name);
  return out;
}
