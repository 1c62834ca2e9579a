// ABI area: contexts (proxy_set_effective_context, proxy_done).
import type { AbiHost } from './host-api.ts';
import { Status } from './result.ts';

export function contextFunctions(h: AbiHost) {
  return {
    proxy_set_effective_context: (contextId: number) => h.setEffectiveContext(contextId >>> 0),
    proxy_done: () => h.effectiveContext()?.done() ?? Status.NOT_FOUND,
  };
}
