// ABI area: gRPC callouts (unary calls and streams).
import type { AbiHost } from './host-api.ts';
import { decodePairs } from './pairs.ts';
import { Status } from './result.ts';

/**
 * The upstream argument is a cluster name or a serialized envoy.config.core.v3.GrpcService;
 * from the latter the envoy_grpc.cluster_name (field 1 of field 1) is used.
 */
export function grpcCluster(bytes: Uint8Array): string {
  if (bytes.length > 2 && bytes[0] === 0x0a) {
    const outerLen = bytes[1]!;
    if (bytes[2] === 0x0a && outerLen + 2 <= bytes.length) {
      const nameLen = bytes[3]!;
      if (4 + nameLen <= 2 + outerLen) return new TextDecoder().decode(bytes.subarray(4, 4 + nameLen));
    }
  }
  return new TextDecoder().decode(bytes);
}

export function grpcFunctions(h: AbiHost) {
  const str = (p: number, n: number) => h.memory.string(p, n);
  return {
    // 12 parameters; the AssemblyScript SDK declares 10 (no metadata): told apart by the count.
    proxy_grpc_call: (...a: number[]) => {
      const full = a.length >= 12;
      const [up, upN, svc, svcN, m, mN] = a as [number, number, number, number, number, number];
      const [md, mdN] = full ? [a[6]!, a[7]!] : [0, 0];
      const [msg, msgN, timeout, ret] = full ? [a[8]!, a[9]!, a[10]!, a[11]!] : [a[6]!, a[7]!, a[8]!, a[9]!];
      const metadata = decodePairs(h.memory.view(md, mdN)) ?? [];
      const r = h.grpcOpen(
        grpcCluster(h.memory.copy(up, upN)),
        str(svc, svcN),
        str(m, mN),
        metadata,
        timeout >>> 0,
        h.memory.copy(msg, msgN),
      );
      if (r.status === Status.OK) h.memory.setU32(ret, r.token);
      return r.status;
    },
    proxy_grpc_stream: (
      up: number,
      upN: number,
      svc: number,
      svcN: number,
      m: number,
      mN: number,
      md: number,
      mdN: number,
      ret: number,
    ) => {
      const metadata = decodePairs(h.memory.view(md, mdN)) ?? [];
      const r = h.grpcOpen(grpcCluster(h.memory.copy(up, upN)), str(svc, svcN), str(m, mN), metadata, 0, undefined);
      if (r.status === Status.OK) h.memory.setU32(ret, r.token);
      return r.status;
    },
    proxy_grpc_send: (token: number, msg: number, msgN: number, endStream: number) =>
      h.grpcSend(token >>> 0, h.memory.copy(msg, msgN), endStream !== 0),
    proxy_grpc_cancel: (token: number) => h.grpcCancel(token >>> 0),
    proxy_grpc_close: (token: number) => h.grpcClose(token >>> 0),
  };
}
