// Istio's default JSON access log, field names unchanged; "-" for absent values, as Istio prints.
import type { HttpStream } from '../pipeline/stream.ts';

export interface AccessLogSink {
  write(line: string): void;
}

/**
 * Set by `wasmgate dev` for the proxy it runs: each entry also names the filter that sent a local
 * reply (`wasmgate_local_reply_filter`, not an Istio field), so dev can say exactly who answered.
 */
const DEV_FIELDS = process.env.WASMGATE_DEV_ACCESS_LOG === '1';

const dash = (v: string | number | undefined | null): string | number =>
  v === undefined || v === null || v === '' ? '-' : v;

export function accessLogEntry(s: HttpStream): Record<string, string | number> {
  const req = s.requestHeaders;
  const i = s.info;
  const durationMs = Number((process.hrtime.bigint() - i.startHr) / 1_000_000n);
  const entry: Record<string, string | number> = {
    start_time: new Date(i.startTime).toISOString(),
    method: dash(req.get(':method')),
    path: dash(req.get('x-envoy-original-path') ?? req.get(':path')),
    protocol: i.protocol,
    response_code: i.responseCode,
    response_flags: i.responseFlags.length > 0 ? i.responseFlags.join(',') : '-',
    response_code_details: dash(i.responseCodeDetails),
    connection_termination_details: '-',
    upstream_transport_failure_reason: '-',
    bytes_received: i.bytesReceived,
    bytes_sent: i.bytesSent,
    duration: durationMs,
    upstream_service_time: dash(i.upstreamServiceTimeMs),
    x_forwarded_for: dash(req.get('x-forwarded-for')),
    user_agent: dash(req.get('user-agent')),
    request_id: dash(i.requestId),
    authority: dash(req.get(':authority')),
    upstream_host: dash(i.upstreamHost),
    upstream_cluster: dash(i.upstreamCluster),
    upstream_local_address: '-',
    downstream_local_address: `${i.downstreamLocalAddress}:${i.downstreamLocalPort}`,
    // The trusted client address; taken from X-Forwarded-For it has no port (Envoy prints :0).
    downstream_remote_address: `${i.remoteAddress}:${i.remoteAddress === i.downstreamRemoteAddress ? i.downstreamRemotePort : 0}`,
    requested_server_name: '-',
    route_name: dash(i.routeName),
  };
  if (DEV_FIELDS) entry.wasmgate_local_reply_filter = dash(s.localReplyFilter);
  return entry;
}

export function formatAccessLog(s: HttpStream): string {
  return `${JSON.stringify(accessLogEntry(s))}\n`;
}
