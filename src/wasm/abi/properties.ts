// ABI area: properties (proxy_get_property, proxy_set_property). Paths are NUL-separated segments.
import type { AbiHost } from './host-api.ts';
import { Status } from './result.ts';

export function splitPath(bytes: Uint8Array): string[] {
  const text = new TextDecoder().decode(bytes);
  const parts = text.split('\0');
  if (parts.length > 1 && parts[parts.length - 1] === '') parts.pop();
  return parts;
}

export function propertyFunctions(h: AbiHost) {
  return {
    proxy_get_property: (pathPtr: number, pathSize: number, retPtrPtr: number, retSizePtr: number) => {
      const ctx = h.effectiveContext();
      const value = ctx?.getProperty(splitPath(h.memory.view(pathPtr, pathSize)));
      if (value === undefined) return Status.NOT_FOUND;
      return h.copyOut(value, retPtrPtr, retSizePtr);
    },
    proxy_set_property: (pathPtr: number, pathSize: number, valuePtr: number, valueSize: number) => {
      const ctx = h.effectiveContext();
      if (!ctx) return Status.NOT_FOUND;
      return ctx.setProperty(splitPath(h.memory.view(pathPtr, pathSize)), h.memory.copy(valuePtr, valueSize));
    },
  };
}
