// ABI area: timers and the (deprecated) wall clock.
import type { AbiHost } from './host-api.ts';
import { Status } from './result.ts';

export function timerFunctions(h: AbiHost) {
  return {
    proxy_set_tick_period_milliseconds: (periodMs: number) => {
      const ctx = h.effectiveContext();
      if (!ctx) return Status.NOT_FOUND;
      return h.setTickPeriod(ctx.rootId, periodMs >>> 0);
    },
    proxy_get_current_time_nanoseconds: (retPtr: number) => {
      h.memory.setU64(retPtr, BigInt(Date.now()) * 1_000_000n);
      return Status.OK;
    },
  };
}
