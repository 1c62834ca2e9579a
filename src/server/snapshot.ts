// What one worker reports to the supervisor for the admin API: listeners and chains, plugin states
// and metrics, clusters, Istio metrics, open connections. Plain data (structured-clonable), so it
// crosses worker_threads as is; the admin merges the workers' snapshots.
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import { redactUrl } from '../fetch/index.ts';
import type { PluginMetric } from '../wasm/abi/metrics.ts';
import type { CallStatsSnapshot } from '../wasm/runtime/call-stats.ts';
import type { Gateway, ListenerSummary } from './gateway.ts';

export interface PluginSnapshot {
  name: string;
  url: string;
  phase: string;
  priority: number;
  failStrategy: string;
  failure: string | undefined;
  skippedCount: number;
  rejectedCount: number;
  trapCount: number;
  restartCount: number;
  /** Callbacks the host made into the current VM, and their sampled durations. */
  callStats: CallStatsSnapshot | undefined;
  /** sha256 of the module bytes. */
  digest: string | undefined;
}

export interface ClusterSnapshot {
  name: string;
  active: number;
  total: number;
  overflows: number;
  /** TCP proxy connections refused at tcp.maxConnections. */
  cxOverflows: number;
  ejections: number;
  retries: number;
  endpoints: { host: string; port: number; active: number; total: number; healthy: boolean }[];
}

export interface WorkerSnapshot {
  worker: number;
  summaries: ListenerSummary[];
  plugins: PluginSnapshot[];
  pluginMetrics: PluginMetric[];
  clusters: ClusterSnapshot[];
  istioMetrics: MetricObjectWithValues<MetricValue<string>>[];
  connections: number;
}

export async function snapshotOf(gw: Gateway, worker: number): Promise<WorkerSnapshot> {
  const plugins = [...gw.plugins.values()];
  return {
    worker,
    summaries: gw.summaries.map((s) => ({ ...s, chain: [...s.chain], routes: [...s.routes] })),
    plugins: plugins.map((p) => ({
      name: p.name,
      url: redactUrl(p.resource.spec.url),
      phase: p.resource.spec.phase,
      priority: p.resource.spec.priority,
      failStrategy: p.resource.spec.failStrategy,
      failure: p.failure,
      skippedCount: p.skippedCount,
      rejectedCount: p.rejectedCount,
      trapCount: p.trapCount,
      restartCount: p.restartCount,
      callStats: p.vm?.vm.callStats.snapshot(),
      digest: p.digest,
    })),
    pluginMetrics: plugins.flatMap((p) => (p.vm ? [...p.vm.metrics.byId.values()].map((m) => ({ ...m })) : [])),
    clusters: [...gw.clusters.clusters.values()].map((c) => ({
      name: c.name,
      active: c.active,
      total: c.total,
      overflows: c.overflows,
      cxOverflows: c.cxOverflows,
      ejections: c.ejections,
      retries: c.retriesTotal,
      endpoints: c.endpoints.map((e) => ({
        host: e.host,
        port: e.port,
        active: e.active,
        total: e.total,
        healthy: e.outlier.ejectedAt === undefined,
      })),
    })),
    istioMetrics: await gw.metrics.json(),
    connections: gw.connections,
  };
}
