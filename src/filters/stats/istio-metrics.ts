// Istio's standard HTTP metrics (istio_requests_total, istio_request_duration_milliseconds,
// istio_request_bytes, istio_response_bytes) with Istio's label set, in a prom-client registry that
// the admin port serves at /stats/prometheus.
import { Counter, Histogram, Registry } from 'prom-client';

/** Istio's label names for the standard request metrics, in Istio's order. */
export const ISTIO_LABELS = [
  'reporter',
  'source_workload',
  'source_canonical_service',
  'source_canonical_revision',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_cluster',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_service',
  'destination_canonical_service',
  'destination_canonical_revision',
  'destination_service_name',
  'destination_service_namespace',
  'destination_cluster',
  'request_protocol',
  'response_code',
  'grpc_response_status',
  'response_flags',
  'connection_security_policy',
] as const;
export type IstioLabel = (typeof ISTIO_LABELS)[number];
export type IstioLabels = Record<IstioLabel, string>;

/** Istio's buckets: durations in ms, sizes in bytes (exponential 1..10^7). */
const DURATION_BUCKETS = [
  0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000,
];
const SIZE_BUCKETS = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000];

interface Children {
  requests: Counter.Internal;
  duration: Histogram.Internal<IstioLabel>;
  requestBytes: Histogram.Internal<IstioLabel>;
  responseBytes: Histogram.Internal<IstioLabel>;
}

/** One request, as the stats filter observes it at the end of the stream. */
export interface RequestSample {
  labels: IstioLabels;
  durationMs: number;
  requestBytes: number;
  responseBytes: number;
}

export class IstioMetrics {
  readonly registry = new Registry();
  readonly #requests: Counter<IstioLabel>;
  readonly #duration: Histogram<IstioLabel>;
  readonly #requestBytes: Histogram<IstioLabel>;
  readonly #responseBytes: Histogram<IstioLabel>;
  /** Label children by their joined values: prom-client hashes label objects on every call otherwise. */
  readonly #children = new Map<string, Children>();

  constructor() {
    const registers = [this.registry];
    const labelNames = ISTIO_LABELS;
    this.#requests = new Counter({
      name: 'istio_requests_total',
      help: 'Requests processed, by Istio labels',
      labelNames,
      registers,
    });
    this.#duration = new Histogram({
      name: 'istio_request_duration_milliseconds',
      help: 'Request duration in milliseconds',
      labelNames,
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.#requestBytes = new Histogram({
      name: 'istio_request_bytes',
      help: 'Request size (headers and body) in bytes',
      labelNames,
      buckets: SIZE_BUCKETS,
      registers,
    });
    this.#responseBytes = new Histogram({
      name: 'istio_response_bytes',
      help: 'Response size (headers and body) in bytes',
      labelNames,
      buckets: SIZE_BUCKETS,
      registers,
    });
  }

  record(sample: RequestSample): void {
    const values = ISTIO_LABELS.map((k) => sample.labels[k]);
    const key = values.join('\u0000');
    let c = this.#children.get(key);
    if (!c) {
      c = {
        requests: this.#requests.labels(...values),
        duration: this.#duration.labels(...values),
        requestBytes: this.#requestBytes.labels(...values),
        responseBytes: this.#responseBytes.labels(...values),
      };
      this.#children.set(key, c);
    }
    c.requests.inc();
    c.duration.observe(sample.durationMs);
    c.requestBytes.observe(sample.requestBytes);
    c.responseBytes.observe(sample.responseBytes);
  }

  /** Prometheus text exposition of the four metrics. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}
