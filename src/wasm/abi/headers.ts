// ABI area: header and trailer maps.
import type { AbiHost, HeaderMapAccess } from './host-api.ts';
import { decodePairs, type Pairs } from './pairs.ts';
import { MapType, Status } from './result.ts';

function readOnlyMap(pairs: Pairs): HeaderMapAccess {
  const noop = () => {};
  return {
    pairs,
    get: (name) => pairs.find(([k]) => k === name)?.[1],
    byteSize: () => pairs.reduce((n, [k, v]) => n + k.length + v.length, 0),
    writable: false,
    add: noop,
    replace: noop,
    remove: noop,
    setPairs: noop,
  };
}

export function headerFunctions(h: AbiHost) {
  const map = (mapType: number): HeaderMapAccess | undefined => {
    if (mapType === MapType.HTTP_CALL_RESPONSE_HEADERS || mapType === MapType.HTTP_CALL_RESPONSE_TRAILERS) {
      const r = h.callResponse();
      if (!r) return undefined;
      return readOnlyMap(mapType === MapType.HTTP_CALL_RESPONSE_HEADERS ? r.headers : r.trailers);
    }
    if (mapType === MapType.GRPC_CALL_INITIAL_METADATA || mapType === MapType.GRPC_CALL_TRAILING_METADATA) {
      const d = h.grpcDelivery();
      const md = mapType === MapType.GRPC_CALL_INITIAL_METADATA ? d?.initial : d?.trailing;
      return md ? readOnlyMap(md) : undefined;
    }
    return h.effectiveContext()?.headerMap(mapType);
  };
  const key = (ptr: number, size: number) => h.memory.string(ptr, size).toLowerCase();
  return {
    proxy_get_header_map_size: (mapType: number, retSizePtr: number) => {
      const m = map(mapType);
      if (!m) return Status.BAD_ARGUMENT;
      h.memory.setU32(retSizePtr, m.byteSize());
      return Status.OK;
    },
    proxy_get_header_map_pairs: (mapType: number, retPtrPtr: number, retSizePtr: number) => {
      const m = map(mapType);
      // Envoy answers OK with an empty map when the map is absent.
      return h.copyOutPairs(m ? m.pairs : [], retPtrPtr, retSizePtr);
    },
    proxy_set_header_map_pairs: (mapType: number, ptr: number, size: number) => {
      const m = map(mapType);
      if (!m?.writable) return Status.BAD_ARGUMENT;
      const pairs = decodePairs(h.memory.view(ptr, size)) ?? [];
      m.setPairs(pairs.map(([k, v]) => [k.toLowerCase(), v]));
      return Status.OK;
    },
    proxy_get_header_map_value: (
      mapType: number,
      keyPtr: number,
      keySize: number,
      retPtrPtr: number,
      retSizePtr: number,
    ) => {
      const m = map(mapType);
      if (!m) return Status.BAD_ARGUMENT;
      const value = m.get(key(keyPtr, keySize));
      if (value === undefined) {
        if (h.abiVersion !== '0.1.0') return Status.NOT_FOUND;
        h.memory.setU32(retPtrPtr, 0);
        h.memory.setU32(retSizePtr, 0);
        return Status.OK;
      }
      return h.copyOutString(value, retPtrPtr, retSizePtr);
    },
    proxy_add_header_map_value: (mapType: number, kp: number, ks: number, vp: number, vs: number) => {
      const m = map(mapType);
      if (!m?.writable) return Status.BAD_ARGUMENT;
      m.add(key(kp, ks), h.memory.string(vp, vs));
      return Status.OK;
    },
    proxy_replace_header_map_value: (mapType: number, kp: number, ks: number, vp: number, vs: number) => {
      const m = map(mapType);
      if (!m?.writable) return Status.BAD_ARGUMENT;
      m.replace(key(kp, ks), h.memory.string(vp, vs));
      return Status.OK;
    },
    proxy_remove_header_map_value: (mapType: number, kp: number, ks: number) => {
      const m = map(mapType);
      if (!m?.writable) return Status.BAD_ARGUMENT;
      m.remove(key(kp, ks));
      return Status.OK;
    },
  };
}
