// Envoy attributes of an HTTP stream (request.*, response.*, source.*, destination.*, ...),
// encoded as Envoy encodes them.
import type { HeaderMap } from '../../pipeline/headers.ts';
import type { HttpStream } from '../../pipeline/stream.ts';
import { int, map, str } from '../host/properties.ts';
import { encodeMetadata } from '../host/proto.ts';

/** Envoy's response flags (StreamInfo::ResponseFlag) by short code, as the bit response.flags carries. */
const RESPONSE_FLAG_BITS: Record<string, number> = {
  LH: 0x1,
  UH: 0x2,
  UT: 0x4,
  LR: 0x8,
  UR: 0x10,
  UF: 0x20,
  UC: 0x40,
  UO: 0x80,
  NR: 0x100,
  DI: 0x200,
  FI: 0x400,
  RL: 0x800,
  UAEX: 0x1000,
  RLSE: 0x2000,
  DC: 0x4000,
  URX: 0x8000,
  SI: 0x10000,
  IH: 0x20000,
  DPE: 0x40000,
  UMSDR: 0x80000,
  RFCF: 0x100000,
  NFCF: 0x200000,
  DT: 0x400000,
  UPE: 0x800000,
  NC: 0x1000000,
  OM: 0x2000000,
  DF: 0x4000000,
  DO: 0x8000000,
};

/** Istio's listener traffic direction for gateway listeners (envoy.config.core.v3.TrafficDirection). */
const OUTBOUND = 2;

/** Envoy's approximate header size: names and values of every entry, pseudo-headers included. */
function headerBytes(h: HeaderMap | undefined): number {
  if (!h) return 0;
  let n = 0;
  for (const [k, v] of h.pairs) n += k.length + v.length;
  return n;
}

function grpcStatus(s: HttpStream): Uint8Array | undefined {
  const v = s.responseTrailers?.get('grpc-status') ?? s.responseHeaders?.get('grpc-status');
  return v === undefined || !/^\d+$/.test(v) ? undefined : int(Number(v));
}

/** Istio's cluster metadata: the services behind an `outbound|PORT|SUBSET|HOST` cluster. */
function clusterMetadata(cluster: string): Uint8Array {
  const m = /^outbound\|(\d*)\|([^|]*)\|(.+)$/.exec(cluster);
  if (!m) return new Uint8Array(0);
  const host = m[3]!;
  const svc = /^([^.]+)\.([^.]+)\.svc(\.|$)/.exec(host);
  return encodeMetadata({
    istio: {
      default_original_port: Number(m[1]),
      ...(m[2] ? { subset: m[2] } : {}),
      services: [{ host, name: svc ? svc[1]! : host, namespace: svc ? svc[2]! : 'default' }],
    },
  });
}

function joinHeaders(pairs: [string, string][]): [string, string][] {
  const merged = new Map<string, string>();
  for (const [k, v] of pairs) {
    if (k.startsWith(':')) continue;
    merged.set(k, merged.has(k) ? `${merged.get(k)},${v}` : v);
  }
  return [...merged];
}

export function streamProperty(s: HttpStream, path: string[]): Uint8Array | undefined {
  const [head, second, third] = path;
  const req = s.requestHeaders;
  if (head === 'request') {
    const p = req.get(':path') ?? '/';
    switch (second) {
      case 'path':
        return str(p);
      case 'url_path':
        return str(p.split('?')[0]!);
      case 'query': {
        const q = p.indexOf('?');
        return str(q < 0 ? '' : p.slice(q + 1));
      }
      case 'host':
        return str(req.get(':authority') ?? '');
      case 'scheme':
        return str(req.get(':scheme') ?? 'http');
      case 'method':
        return str(req.get(':method') ?? '');
      case 'id':
        return str(s.info.requestId);
      case 'protocol':
        return str(s.info.protocol);
      case 'referer':
        return str(req.get('referer') ?? '');
      case 'useragent':
        return str(req.get('user-agent') ?? '');
      case 'time':
        return int(BigInt(s.info.startTime) * 1_000_000n);
      case 'headers':
        if (third !== undefined) {
          const values = req.getAll(third.toLowerCase());
          return values.length > 0 ? str(values.join(',')) : undefined;
        }
        return map(joinHeaders(req.pairs));
      case 'size': {
        const cl = req.get('content-length');
        return int(cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : s.info.bytesReceived);
      }
      case 'total_size':
        return int(headerBytes(req) + s.info.bytesReceived + headerBytes(s.requestTrailers));
      case 'duration':
        return int(process.hrtime.bigint() - s.info.startHr);
      default:
        return undefined;
    }
  }
  if (head === 'response') {
    const res = s.responseHeaders;
    switch (second) {
      case 'code':
        return s.info.responseCode ? int(s.info.responseCode) : undefined;
      case 'code_details':
        return s.info.responseCodeDetails ? str(s.info.responseCodeDetails) : undefined;
      case 'flags':
        return int(s.info.responseFlags.reduce((bits, f) => bits | (RESPONSE_FLAG_BITS[f] ?? 0), 0));
      case 'grpc_status':
        return grpcStatus(s);
      case 'size':
        return int(s.info.bytesSent);
      case 'total_size':
        return int(headerBytes(res) + s.info.bytesSent + headerBytes(s.responseTrailers));
      case 'backend_latency':
        return s.info.upstreamServiceTimeMs === undefined
          ? undefined
          : int(BigInt(Math.round(s.info.upstreamServiceTimeMs * 1e6)));
      case 'trailers': {
        const t = s.responseTrailers;
        if (!t) return undefined;
        if (third !== undefined) {
          const values = t.getAll(third.toLowerCase());
          return values.length > 0 ? str(values.join(',')) : undefined;
        }
        return map(joinHeaders(t.pairs));
      }
      case 'headers':
        if (!res) return undefined;
        if (third !== undefined) {
          const values = res.getAll(third.toLowerCase());
          return values.length > 0 ? str(values.join(',')) : undefined;
        }
        return map(joinHeaders(res.pairs));
      default:
        return undefined;
    }
  }
  if (head === 'source' || head === 'destination') {
    const src = head === 'source';
    // As Envoy with trusted X-Forwarded-For hops: the source is the client the header names
    // (port 0); otherwise the peer.
    const fromXff = src && s.info.remoteAddress !== s.info.downstreamRemoteAddress;
    const srcPort = fromXff ? 0 : s.info.downstreamRemotePort;
    if (second === 'address')
      return str(
        src
          ? `${fromXff ? s.info.remoteAddress : s.info.downstreamRemoteAddress}:${srcPort}`
          : `${s.info.downstreamLocalAddress}:${s.info.downstreamLocalPort}`,
      );
    if (second === 'port') return int(src ? srcPort : s.info.downstreamLocalPort);
    return undefined;
  }
  if (head === 'upstream' && s.info.upstreamHost) {
    if (second === 'address') return str(s.info.upstreamHost);
    if (second === 'port') return int(Number(s.info.upstreamHost.split(':').at(-1)));
    if (second === 'request_attempt_count') return int(1);
    // TLS details (tls_version, certificates) exist only for TLS upstreams: NotFound otherwise.
    return undefined;
  }
  if (head === 'connection') {
    if (second === 'mtls') return Uint8Array.of(0);
    if (second === 'requested_server_name') return str('');
    if (second === 'id') return int(s.info.connectionId);
    // tls_version, certificates and SANs exist only on TLS connections: NotFound on plain HTTP.
    return undefined;
  }
  // Envoy serves these both under xds.* and at the top level (the Wasm-specific aliases).
  const key = head === 'xds' ? second : path.length === 1 ? head : undefined;
  switch (key) {
    case 'cluster_name':
      return s.info.upstreamCluster ? str(s.info.upstreamCluster) : undefined;
    case 'cluster_metadata':
      return s.info.upstreamCluster ? clusterMetadata(s.info.upstreamCluster) : undefined;
    case 'route_name':
      return s.info.routeName ? str(s.info.routeName) : undefined;
    case 'route_metadata':
      return s.info.routeName ? new Uint8Array(0) : undefined;
    case 'upstream_host_metadata':
      return s.info.upstreamHost ? new Uint8Array(0) : undefined;
    case 'listener_direction':
      return int(OUTBOUND);
    case 'listener_metadata':
      return new Uint8Array(0);
    case 'filter_chain_name':
      return str('');
    default:
      return undefined;
  }
}
