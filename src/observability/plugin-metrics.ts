// Plugin-defined metrics (proxy_define_metric) in Prometheus text format, under their own names.
import type { PluginMetric } from '../wasm/abi/metrics.ts';
import { MetricType } from '../wasm/abi/result.ts';
import { CALL_BUCKETS_US } from '../wasm/runtime/call-stats.ts';

export function sanitizeMetricName(name: string): string {
  const s = name.replace(/[^a-zA-Z0-9_:]/g, '_');
  return /^[a-zA-Z_:]/.test(s) ? s : `_${s}`;
}

/** Sums metrics of the same name and type across VMs (one per plugin per worker). */
export function renderPluginMetrics(metrics: Iterable<PluginMetric>): string {
  const merged = new Map<string, PluginMetric>();
  for (const m of metrics) {
    const key = `${m.type}:${sanitizeMetricName(m.name)}`;
    const cur = merged.get(key);
    if (!cur) merged.set(key, { ...m, name: sanitizeMetricName(m.name) });
    else {
      cur.value += m.value;
      cur.samples += m.samples;
      cur.sum += m.sum;
    }
  }
  const lines: string[] = [];
  for (const m of merged.values()) {
    if (m.type === MetricType.COUNTER) lines.push(`# TYPE ${m.name} counter`, `${m.name} ${m.value}`);
    else if (m.type === MetricType.GAUGE) lines.push(`# TYPE ${m.name} gauge`, `${m.name} ${m.value}`);
    else lines.push(`# TYPE ${m.name} summary`, `${m.name}_sum ${m.sum}`, `${m.name}_count ${m.samples}`);
  }
  return lines.length > 0 ? `${lines.join('\n')}\n` : '';
}

export interface PluginStatus {
  name: string;
  failure: string | undefined;
  skippedCount: number;
  rejectedCount: number;
  trapCount?: number;
  restartCount?: number;
  /** Callbacks by export name, summed over workers. */
  calls?: Map<string, number>;
  /** Sampled callback durations: counts per CALL_BUCKETS_US bucket (+Inf last), sum, count. */
  buckets?: number[];
  sampledSumUs?: number;
  sampled?: number;
}

function labelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** Each plugin's health and what its failStrategy did: requests skipped (FAIL_OPEN) or rejected (FAIL_CLOSE). */
export function renderPluginStatus(plugins: Iterable<PluginStatus>): string {
  const all = [...plugins];
  if (all.length === 0) return '';
  const rows = (metric: string, value: (p: PluginStatus) => number) =>
    all.map((p) => `${metric}{plugin="${labelValue(p.name)}"} ${value(p)}`);
  return `${[
    '# HELP wasmgate_wasm_plugin_failed 1 when the plugin cannot serve (fetch, load, start or trap failure)',
    '# TYPE wasmgate_wasm_plugin_failed gauge',
    ...rows('wasmgate_wasm_plugin_failed', (p) => (p.failure ? 1 : 0)),
    '# HELP wasmgate_wasm_plugin_fail_open_total Requests that skipped a failed plugin (failStrategy FAIL_OPEN)',
    '# TYPE wasmgate_wasm_plugin_fail_open_total counter',
    ...rows('wasmgate_wasm_plugin_fail_open_total', (p) => p.skippedCount),
    '# HELP wasmgate_wasm_plugin_fail_close_total Requests answered 503 because a plugin failed (failStrategy FAIL_CLOSE)',
    '# TYPE wasmgate_wasm_plugin_fail_close_total counter',
    ...rows('wasmgate_wasm_plugin_fail_close_total', (p) => p.rejectedCount),
    '# HELP wasmgate_wasm_plugin_traps_total Traps in plugin callbacks (including watchdog and memory-cap stops)',
    '# TYPE wasmgate_wasm_plugin_traps_total counter',
    ...rows('wasmgate_wasm_plugin_traps_total', (p) => p.trapCount ?? 0),
    '# HELP wasmgate_wasm_plugin_vm_restarts_total VMs recreated after a failure',
    '# TYPE wasmgate_wasm_plugin_vm_restarts_total counter',
    ...rows('wasmgate_wasm_plugin_vm_restarts_total', (p) => p.restartCount ?? 0),
    '# HELP wasmgate_wasm_plugin_callbacks_total Guest callbacks the host made, by callback',
    '# TYPE wasmgate_wasm_plugin_callbacks_total counter',
    ...all.flatMap((p) =>
      [...(p.calls ?? [])].map(
        ([cb, n]) =>
          `wasmgate_wasm_plugin_callbacks_total{plugin="${labelValue(p.name)}",callback="${labelValue(cb)}"} ${n}`,
      ),
    ),
    '# HELP wasmgate_wasm_plugin_callback_duration_microseconds Duration of guest callbacks (one call in 16 is timed)',
    '# TYPE wasmgate_wasm_plugin_callback_duration_microseconds histogram',
    ...all.flatMap((p) => histogramRows(p)),
  ].join('\n')}\n`;
}

function histogramRows(p: PluginStatus): string[] {
  if (!p.buckets) return [];
  const plugin = `plugin="${labelValue(p.name)}"`;
  const out: string[] = [];
  let cumulative = 0;
  for (const [i, bound] of [...CALL_BUCKETS_US, Number.POSITIVE_INFINITY].entries()) {
    cumulative += p.buckets[i] ?? 0;
    const le = bound === Number.POSITIVE_INFINITY ? '+Inf' : String(bound);
    out.push(`wasmgate_wasm_plugin_callback_duration_microseconds_bucket{${plugin},le="${le}"} ${cumulative}`);
  }
  out.push(`wasmgate_wasm_plugin_callback_duration_microseconds_sum{${plugin}} ${(p.sampledSumUs ?? 0).toFixed(3)}`);
  out.push(`wasmgate_wasm_plugin_callback_duration_microseconds_count{${plugin}} ${p.sampled ?? 0}`);
  return out;
}
