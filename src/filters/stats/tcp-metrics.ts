// Istio's standard TCP metrics (istio_tcp_sent_bytes_total, istio_tcp_received_bytes_total,
// istio_tcp_connections_opened_total, istio_tcp_connections_closed_total) with Istio's TCP label
// set, in the same registry as the request metrics (the admin port serves and sums them).
// Bytes are reported while a connection is open (every 5 s, Istio's tcp_reporting_duration) and
// when it closes.
import { Counter, type Registry } from 'prom-client';
import type { ConnectionInfo } from '../../l4/network-filter-manager.ts';
import { ISTIO_LABELS, type IstioLabel } from './istio-metrics.ts';
import {
  type DestinationService,
  destinationLabels,
  type SourceLabels,
  type StatsIdentity,
  sourceLabels,
} from './stats-filter.ts';

/** Istio's label names for the TCP metrics: the request labels without response_code and grpc status. */
export const ISTIO_TCP_LABELS = ISTIO_LABELS.filter(
  (l): l is Exclude<IstioLabel, 'response_code' | 'grpc_response_status'> =>
    l !== 'response_code' && l !== 'grpc_response_status',
);
export type IstioTcpLabel = (typeof ISTIO_TCP_LABELS)[number];

const UNKNOWN = 'unknown';
export const TCP_REPORTING_MS = 5_000;

function counter(registry: Registry, name: string, help: string): Counter<IstioTcpLabel> {
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Counter<IstioTcpLabel>;
  return new Counter({ name, help, labelNames: ISTIO_TCP_LABELS, registers: [registry] });
}

/** What one connection has reported so far (the counters only ever get the difference). */
interface Reported {
  labels: string[] | undefined;
  sent: number;
  received: number;
  opened: boolean;
}

export class TcpMetrics {
  readonly #sent: Counter<IstioTcpLabel>;
  readonly #received: Counter<IstioTcpLabel>;
  readonly #opened: Counter<IstioTcpLabel>;
  readonly #closed: Counter<IstioTcpLabel>;
  readonly #source: SourceLabels;
  readonly #service: (cluster: string) => DestinationService | undefined;
  readonly #reported = new WeakMap<ConnectionInfo, Reported>();

  constructor(
    registry: Registry,
    identity: StatsIdentity,
    service: (cluster: string) => DestinationService | undefined,
  ) {
    this.#sent = counter(registry, 'istio_tcp_sent_bytes_total', 'Bytes sent to the downstream, by Istio labels');
    this.#received = counter(
      registry,
      'istio_tcp_received_bytes_total',
      'Bytes received from the downstream, by Istio labels',
    );
    this.#opened = counter(registry, 'istio_tcp_connections_opened_total', 'TCP connections opened');
    this.#closed = counter(registry, 'istio_tcp_connections_closed_total', 'TCP connections closed');
    this.#source = sourceLabels(identity);
    this.#service = service;
  }

  /** Istio's TCP labels of a connection (its destination once the TCP proxy picked a cluster). */
  labels(c: ConnectionInfo): Record<IstioTcpLabel, string> {
    const dest = c.upstreamCluster ? this.#service(c.upstreamCluster) : undefined;
    return {
      ...this.#source,
      ...destinationLabels(dest),
      request_protocol: 'tcp',
      response_flags: c.responseFlags.length > 0 ? c.responseFlags.join(',') : '-',
      connection_security_policy: UNKNOWN,
    };
  }

  #state(c: ConnectionInfo): Reported {
    let r = this.#reported.get(c);
    if (!r) {
      r = { labels: undefined, sent: 0, received: 0, opened: false };
      this.#reported.set(c, r);
    }
    return r;
  }

  /** Reports the bytes since the last report (and the opening, the first time). */
  report(c: ConnectionInfo): void {
    const r = this.#state(c);
    if (!r.labels) {
      const l = this.labels(c);
      r.labels = ISTIO_TCP_LABELS.map((k) => l[k]);
    }
    if (!r.opened) {
      r.opened = true;
      this.#opened.labels(...r.labels).inc();
    }
    const sent = c.bytesSent - r.sent;
    const received = c.bytesReceived - r.received;
    if (sent > 0) this.#sent.labels(...r.labels).inc(sent);
    if (received > 0) this.#received.labels(...r.labels).inc(received);
    r.sent = c.bytesSent;
    r.received = c.bytesReceived;
  }

  /** The last report of a connection, and its closing. */
  closed(c: ConnectionInfo): void {
    const r = this.#state(c);
    // Flags set at the end (UF, UH, NR) belong to the labels of a connection never reported yet.
    if (!r.opened) r.labels = undefined;
    this.report(c);
    this.#closed.labels(...r.labels!).inc();
  }
}
