// Istio's default JSON access log line for a TCP connection: the HTTP fields are "-" (or 0), as
// Envoy prints them for tcp_proxy, with the bytes, duration, upstream and addresses filled in.
import type { ConnectionInfo } from './network-filter-manager.ts';

const dash = (v: string | number | undefined): string | number => (v === undefined || v === '' ? '-' : v);

export function tcpAccessLogEntry(c: ConnectionInfo, durationMs: number, details: string) {
  return {
    start_time: new Date(c.startTime).toISOString(),
    method: '-',
    path: '-',
    protocol: '-',
    response_code: 0,
    response_flags: c.responseFlags.length > 0 ? c.responseFlags.join(',') : '-',
    response_code_details: '-',
    connection_termination_details: dash(details),
    upstream_transport_failure_reason: '-',
    bytes_received: c.bytesReceived,
    bytes_sent: c.bytesSent,
    duration: durationMs,
    upstream_service_time: '-',
    x_forwarded_for: '-',
    user_agent: '-',
    request_id: '-',
    authority: '-',
    upstream_host: c.upstreamAddress === undefined ? '-' : `${c.upstreamAddress}:${c.upstreamPort}`,
    upstream_cluster: dash(c.upstreamCluster),
    upstream_local_address: '-',
    downstream_local_address: `${c.destinationAddress}:${c.destinationPort}`,
    downstream_remote_address: `${c.sourceAddress}:${c.sourcePort}`,
    requested_server_name: dash(c.requestedServerName),
    route_name: dash(c.routeName),
  };
}

export function tcpAccessLogLine(c: ConnectionInfo, durationMs: number, details: string): string {
  return `${JSON.stringify(tcpAccessLogEntry(c, durationMs, details))}\n`;
}
