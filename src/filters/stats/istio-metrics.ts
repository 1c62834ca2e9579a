// Istio's standard HTTP metrics (istio_requests_total, istio_request_duration_milliseconds,
// istio_request_bytes, istio_response_bytes) with Istio's label set, in a prom-client registry that
// the admin port serves at /stats/prometheus.
import { type MetricObjectWithValues, type MetricValue, Registry } from 'prom-client';

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

/** One label set's request counter and three histograms (per-bucket counts, not cumulative). */
interface Series {
  labels: IstioLabels;
  count: number;
  duration: Float64Array;
  durationSum: number;
  requestBytes: Float64Array;
  requestBytesSum: number;
  responseBytes: Float64Array;
  responseBytesSum: number;
}

/** The bucket index of a value: the first upper bound it does not exceed, else the last (+Inf). */
function bucket(bounds: readonly number[], value: number): number {
  let i = 0;
  while (i < bounds.length && value > bounds[i]!) i++;
  return i;
}

type Value = MetricValue<string> & { metricName?: string };

function histogramValues(
  name: string,
  bounds: readonly number[],
  labels: IstioLabels,
  counts: Float64Array,
  sum: number,
  count: number,
  out: Value[],
): void {
  let acc = 0;
  for (let i = 0; i < bounds.length; i++) {
    acc += counts[i]!;
    out.push({ labels: { le: bounds[i]!, ...labels }, value: acc, metricName: `${name}_bucket` });
  }
  out.push({ labels: { le: '+Inf', ...labels }, value: count, metricName: `${name}_bucket` });
  out.push({ labels: { ...labels }, value: sum, metricName: `${name}_sum` });
  out.push({ labels: { ...labels }, value: count, metricName: `${name}_count` });
}

/**
 * The request metrics are kept in plain per-label-set records, not in prom-client's metric
 * objects: prom-client validates and hashes the label object on every observation, which cost
 * 20-25 µs per request here. The records are turned into prom-client's JSON form (what
 * `Registry.getMetricsAsJSON()` returns) only when scraped, so the admin port aggregates them over
 * the workers with prom-client as before. The registry holds the other Istio metrics (TCP).
 */
export class IstioMetrics {
  readonly registry = new Registry();
  /** By a key of the values that vary (the caller's choice: it names one label set). */
  readonly #series = new Map<string, Series>();

  /**
   * Records one request under `key`; `labels` is called only the first time a key is seen, and
   * must give the same labels for the same key.
   */
  record(
    key: string,
    labels: () => IstioLabels,
    durationMs: number,
    requestBytes: number,
    responseBytes: number,
  ): void {
    let s = this.#series.get(key);
    if (s === undefined) {
      s = {
        labels: labels(),
        count: 0,
        duration: new Float64Array(DURATION_BUCKETS.length + 1),
        durationSum: 0,
        requestBytes: new Float64Array(SIZE_BUCKETS.length + 1),
        requestBytesSum: 0,
        responseBytes: new Float64Array(SIZE_BUCKETS.length + 1),
        responseBytesSum: 0,
      };
      this.#series.set(key, s);
    }
    s.count++;
    s.duration[bucket(DURATION_BUCKETS, durationMs)]!++;
    s.durationSum += durationMs;
    s.requestBytes[bucket(SIZE_BUCKETS, requestBytes)]!++;
    s.requestBytesSum += requestBytes;
    s.responseBytes[bucket(SIZE_BUCKETS, responseBytes)]!++;
    s.responseBytesSum += responseBytes;
  }

  /** Every Istio metric (request and TCP) in prom-client's JSON form, for the admin port to aggregate. */
  async json(): Promise<MetricObjectWithValues<MetricValue<string>>[]> {
    const requests: Value[] = [];
    const duration: Value[] = [];
    const requestBytes: Value[] = [];
    const responseBytes: Value[] = [];
    for (const s of this.#series.values()) {
      requests.push({ labels: { ...s.labels }, value: s.count });
      histogramValues(
        'istio_request_duration_milliseconds',
        DURATION_BUCKETS,
        s.labels,
        s.duration,
        s.durationSum,
        s.count,
        duration,
      );
      histogramValues(
        'istio_request_bytes',
        SIZE_BUCKETS,
        s.labels,
        s.requestBytes,
        s.requestBytesSum,
        s.count,
        requestBytes,
      );
      histogramValues(
        'istio_response_bytes',
        SIZE_BUCKETS,
        s.labels,
        s.responseBytes,
        s.responseBytesSum,
        s.count,
        responseBytes,
      );
    }
    const metric = (name: string, help: string, type: 'counter' | 'histogram', values: Value[]) =>
      ({ name, help, type, values, aggregator: 'sum' }) as unknown as MetricObjectWithValues<MetricValue<string>>;
    return [
      metric('istio_requests_total', 'Requests processed, by Istio labels', 'counter', requests),
      metric('istio_request_duration_milliseconds', 'Request duration in milliseconds', 'histogram', duration),
      metric('istio_request_bytes', 'Request size (headers and body) in bytes', 'histogram', requestBytes),
      metric('istio_response_bytes', 'Response size (headers and body) in bytes', 'histogram', responseBytes),
      ...((await this.registry.getMetricsAsJSON()) as MetricObjectWithValues<MetricValue<string>>[]),
    ];
  }
}
