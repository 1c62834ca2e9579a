// Envoy attributes of an HTTP stream (request.*, response.*, source.*, destination.*, ...),
// encoded as Envoy encodes them.
import type { HttpStream } from '../../pipeline/stream.ts';
import { int, map, str } from '../host/properties.ts';

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
      case 'size':
      case 'total_size':
        return int(s.info.bytesReceived);
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
        return int(0);
      case 'size':
      case 'total_size':
        return int(s.info.bytesSent);
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
    if (second === 'address')
      return str(
        src
          ? `${s.info.downstreamRemoteAddress}:${s.info.downstreamRemotePort}`
          : `${s.info.downstreamLocalAddress}:${s.info.downstreamLocalPort}`,
      );
    if (second === 'port') return int(src ? s.info.downstreamRemotePort : s.info.downstreamLocalPort);
    return undefined;
  }
  if (head === 'upstream' && s.info.upstreamHost) {
    if (second === 'address') return str(s.info.upstreamHost);
    if (second === 'port') return int(Number(s.info.upstreamHost.split(':').at(-1)));
  }
  if (head === 'connection') {
    if (second === 'mtls') return Uint8Array.of(0);
    if (second === 'requested_server_name') return str('');
    if (second === 'id') return int(s.info.connectionId);
    return undefined;
  }
  if (head === 'xds' || head === undefined) {
    if (second === 'cluster_name' && s.info.upstreamCluster) return str(s.info.upstreamCluster);
    if (second === 'route_name' && s.info.routeName) return str(s.info.routeName);
  }
  if (head === 'cluster_name' && s.info.upstreamCluster) return str(s.info.upstreamCluster);
  if (head === 'route_name' && s.info.routeName) return str(s.info.routeName);
  return undefined;
}
