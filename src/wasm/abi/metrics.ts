// ABI area: plugin-defined metrics (counters, gauges, histograms), kept per VM.
import type { AbiHost } from './host-api.ts';
import { MetricType, Status } from './result.ts';

export interface PluginMetric {
  name: string;
  type: number;
  value: bigint;
  samples: number;
  sum: bigint;
}

export class MetricRegistry {
  readonly byId = new Map<number, PluginMetric>();
  readonly #byName = new Map<string, number>();
  #nextId = 1;

  define(type: number, name: string): number {
    const key = `${type}:${name}`;
    const existing = this.#byName.get(key);
    if (existing !== undefined) return existing;
    const id = this.#nextId++;
    this.byId.set(id, { name, type, value: 0n, samples: 0, sum: 0n });
    this.#byName.set(key, id);
    return id;
  }
}

export function metricFunctions(h: AbiHost, registry: MetricRegistry) {
  return {
    proxy_define_metric: (type: number, namePtr: number, nameSize: number, retIdPtr: number) => {
      if (type !== MetricType.COUNTER && type !== MetricType.GAUGE && type !== MetricType.HISTOGRAM)
        return Status.BAD_ARGUMENT;
      h.memory.setU32(retIdPtr, registry.define(type, h.memory.string(namePtr, nameSize)));
      return Status.OK;
    },
    proxy_increment_metric: (id: number, delta: bigint) => {
      const m = registry.byId.get(id >>> 0);
      if (!m) return Status.NOT_FOUND;
      if (m.type === MetricType.COUNTER) {
        if (delta <= 0n) return Status.BAD_ARGUMENT;
        m.value += delta;
      } else if (m.type === MetricType.GAUGE) {
        m.value += delta;
      } else return Status.BAD_ARGUMENT;
      return Status.OK;
    },
    proxy_record_metric: (id: number, value: bigint) => {
      const m = registry.byId.get(id >>> 0);
      if (!m) return Status.NOT_FOUND;
      const v = BigInt.asUintN(64, value);
      if (m.type === MetricType.COUNTER) m.value += v;
      else if (m.type === MetricType.GAUGE) m.value = BigInt.asIntN(64, v);
      else {
        m.samples++;
        m.sum += v;
      }
      return Status.OK;
    },
    proxy_get_metric: (id: number, retPtr: number) => {
      const m = registry.byId.get(id >>> 0);
      if (!m) return Status.NOT_FOUND;
      if (m.type === MetricType.HISTOGRAM) return Status.BAD_ARGUMENT;
      h.memory.setU64(retPtr, m.value);
      return Status.OK;
    },
  };
}
