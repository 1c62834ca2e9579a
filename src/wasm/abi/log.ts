// ABI area: logging (proxy_log, proxy_get_log_level).
import type { AbiHost } from './host-api.ts';
import { Status } from './result.ts';

export function logFunctions(h: AbiHost) {
  return {
    proxy_log: (level: number, ptr: number, size: number) => {
      if (level < 0 || level > 5) return Status.BAD_ARGUMENT;
      // Below the plugin's level: check the range, skip decoding.
      if (level < h.logLevel()) h.memory.view(ptr, size);
      else h.log(level, h.memory.string(ptr, size));
      return Status.OK;
    },
    proxy_get_log_level: (retLevelPtr: number) => {
      h.memory.setU32(retLevelPtr, h.logLevel());
      return Status.OK;
    },
  };
}
