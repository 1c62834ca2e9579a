// Plugin-defined metrics (proxy_define_metric) in Prometheus text format, under their own names.
import type { PluginMetric } from '../wasm/abi/metrics.ts';
import { MetricType } from '../wasm/abi/result.ts';

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
