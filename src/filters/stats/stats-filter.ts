// The built-in `istio.stats` filter: at the end of every stream (on_log, so local replies from
// earlier filters count too) it records Istio's standard request metrics. A gateway reports as the
// client side (reporter="source"); without peer metadata exchange the destination workload is
// "unknown", as in Istio when the upstream has no sidecar.
import type { FilterCallbacks, FilterFactory, HttpFilter } from '../../pipeline/filter.ts';
import type { HeaderMap } from '../../pipeline/headers.ts';
import type { HttpStream } from '../../pipeline/stream.ts';
import type { IstioLabels, IstioMetrics } from './istio-metrics.ts';

/** The destination service behind a cluster, as Istio labels it. */
export interface DestinationService {
  host: string;
  name: string;
  namespace: string;
}

export interface StatsIdentity {
  /** This proxy's namespace and labels. */
  namespace: string;
  labels: Record<string, string>;
  workload: string;
  cluster: string;
}

export type SourceLabels = Pick<
  IstioLabels,
  | 'reporter'
  | 'source_workload'
  | 'source_canonical_service'
  | 'source_canonical_revision'
  | 'source_workload_namespace'
  | 'source_principal'
  | 'source_app'
  | 'source_version'
  | 'source_cluster'
>;

const UNKNOWN = 'unknown';

/** Istio's `outbound|PORT|SUBSET|HOST` cluster names, and `<name>.<ns>.svc.<domain>` hosts. */
export function serviceOfCluster(cluster: string, namespaceOf?: (host: string) => string | undefined) {
  if (cluster === '') return undefined;
  const m = /^outbound\|\d*\|[^|]*\|(.+)$/.exec(cluster);
  const host = m ? m[1]! : cluster;
  const svc = /^([^.]+)\.([^.]+)\.svc(\.|$)/.exec(host);
  if (svc) return { host, name: svc[1]!, namespace: svc[2]! };
  return { host, name: host, namespace: namespaceOf?.(host) ?? UNKNOWN };
}

function headerBytes(h: HeaderMap | undefined): number {
  if (!h) return 0;
  let n = 0;
  for (const [k, v] of h.pairs) n += k.length + v.length;
  return n;
}

function isGrpc(stream: HttpStream): boolean {
  return (stream.requestHeaders.get('content-type') ?? '').startsWith('application/grpc');
}

/** The source_* labels (and reporter) of this proxy, the same for every stream and connection. */
export function sourceLabels(identity: StatsIdentity): SourceLabels {
  const l = identity.labels;
  return {
    reporter: 'source',
    source_workload: identity.workload,
    source_canonical_service: l['service.istio.io/canonical-name'] ?? l.app ?? identity.workload,
    source_canonical_revision: l['service.istio.io/canonical-revision'] ?? l.version ?? 'latest',
    source_workload_namespace: identity.namespace,
    source_principal: UNKNOWN,
    source_app: l.app ?? UNKNOWN,
    source_version: l.version ?? UNKNOWN,
    source_cluster: identity.cluster,
  };
}

export type DestinationLabels = Pick<
  IstioLabels,
  | 'destination_workload'
  | 'destination_workload_namespace'
  | 'destination_principal'
  | 'destination_app'
  | 'destination_version'
  | 'destination_service'
  | 'destination_canonical_service'
  | 'destination_canonical_revision'
  | 'destination_service_name'
  | 'destination_service_namespace'
  | 'destination_cluster'
>;

/**
 * The destination labels, for requests and TCP connections alike: the service behind the cluster,
 * and "unknown" for the workload (no peer metadata exchange), as Istio when the upstream has no sidecar.
 */
export function destinationLabels(dest: DestinationService | undefined): DestinationLabels {
  return {
    destination_workload: UNKNOWN,
    destination_workload_namespace: UNKNOWN,
    destination_principal: UNKNOWN,
    destination_app: UNKNOWN,
    destination_version: UNKNOWN,
    destination_service: dest?.host ?? UNKNOWN,
    destination_canonical_service: UNKNOWN,
    destination_canonical_revision: UNKNOWN,
    destination_service_name: dest?.name ?? UNKNOWN,
    destination_service_namespace: dest?.namespace ?? UNKNOWN,
    destination_cluster: UNKNOWN,
  };
}

export class StatsFilterFactory implements FilterFactory {
  readonly name = 'istio.stats';
  readonly #metrics: IstioMetrics;
  readonly #source: SourceLabels;
  readonly #service: (cluster: string) => DestinationService | undefined;
  readonly #services = new Map<string, DestinationService | undefined>();

  constructor(
    metrics: IstioMetrics,
    identity: StatsIdentity,
    service: (cluster: string) => DestinationService | undefined = (c) => serviceOfCluster(c),
  ) {
    this.#metrics = metrics;
    this.#service = service;
    this.#source = sourceLabels(identity);
  }

  #destination(cluster: string): DestinationService | undefined {
    if (!this.#services.has(cluster)) this.#services.set(cluster, this.#service(cluster));
    return this.#services.get(cluster);
  }

  /** Istio's labels for a finished stream, from the values that vary between streams. */
  #labels(cluster: string, code: number, flags: string, grpc: boolean, grpcStatus: string): IstioLabels {
    return {
      ...this.#source,
      ...destinationLabels(this.#destination(cluster)),
      request_protocol: grpc ? 'grpc' : 'http',
      response_code: String(code),
      grpc_response_status: grpcStatus,
      response_flags: flags,
      connection_security_policy: UNKNOWN,
    };
  }

  create(callbacks: FilterCallbacks): HttpFilter {
    const stream = callbacks.stream;
    return {
      onLog: () => {
        const info = stream.info;
        const grpc = isGrpc(stream);
        const grpcStatus = grpc
          ? (stream.responseTrailers?.get('grpc-status') ?? stream.responseHeaders?.get('grpc-status') ?? '')
          : '';
        const flags = info.responseFlags.length > 0 ? info.responseFlags.join(',') : '-';
        // The values that vary between streams name the label set; the labels are built once per set.
        const cluster = info.upstreamCluster;
        const code = info.responseCode;
        const key = `${cluster}\u0000${code}\u0000${flags}\u0000${grpc ? grpcStatus : '\u0001'}`;
        this.#metrics.record(
          key,
          () => this.#labels(cluster, code, flags, grpc, grpcStatus),
          Number(process.hrtime.bigint() - info.startHr) / 1e6,
          headerBytes(stream.requestHeaders) + info.bytesReceived + headerBytes(stream.requestTrailers),
          headerBytes(stream.responseHeaders) + info.bytesSent + headerBytes(stream.responseTrailers),
        );
      },
    };
  }
}
