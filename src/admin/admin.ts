// The admin listener (Envoy's localhost:15000 subset): /ready, /server_info, /config_dump,
// /clusters, /stats/prometheus, POST /logging, /reload, /drain_listeners, /healthcheck/*,
// /quitquitquit. Mutations are POST-only. It runs in the supervisor and merges what the workers
// report (snapshots), so it answers even while a worker is busy or restarting. POST
// /faults/crash_worker exists only when the process runs with WASMGATE_TEST_FAULTS=1 (tests).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { AggregatorRegistry } from 'prom-client';
import type { LogLevels, LogLevelsState } from '../observability/logger.ts';
import { type PluginStatus, renderPluginMetrics, renderPluginStatus } from '../observability/plugin-metrics.ts';
import type { ListenerSummary } from '../server/gateway.ts';
import type { ClusterSnapshot, WorkerSnapshot } from '../server/snapshot.ts';
import { FAULT_KINDS, FAULT_TIMES, testFaultsEnabled, type WorkerStatus } from '../server/supervisor.ts';
import type { WorkerFault } from '../server/worker.ts';
import { Readiness } from './health.ts';
import { parseRefresh, renderAdminPage } from './page.ts';

/** What the admin needs from the workers. */
export interface AdminBackend {
  snapshots(): Promise<WorkerSnapshot[]>;
  readonly summaries: ListenerSummary[];
  readonly pluginNames: string[];
  setLevels(levels: LogLevelsState): Promise<void>;
  /** Each worker position: live, starting or restarting, and its restart count. */
  workers(): WorkerStatus[];
  /** Test-only: makes a worker die (only reachable with WASMGATE_TEST_FAULTS=1). */
  injectFault(worker: number, fault: WorkerFault): Promise<void>;
}

/** The test-only fault injection endpoint (WASMGATE_TEST_FAULTS=1; otherwise 404). */
const FAULT_PATH = '/faults/crash_worker';

export interface AdminOptions {
  host: string;
  port: number;
  version: string;
  startedAt: number;
}

/** Envoy's level names, by Proxy-Wasm level number (6 = off). */
const LEVEL_NAMES = ['trace', 'debug', 'info', 'warning', 'error', 'critical', 'off'];

const MUTATIONS = new Set([
  '/logging',
  '/quitquitquit',
  '/healthcheck/fail',
  '/healthcheck/ok',
  '/reload',
  '/drain_listeners',
]);

export class AdminServer {
  readonly server: http.Server;
  readonly #backend: AdminBackend;
  readonly #levels: LogLevels;
  readonly #options: AdminOptions;
  readonly #readiness: Readiness;
  readonly #faults = testFaultsEnabled();
  onQuit: (() => void) | undefined;
  onReload: (() => Promise<{ ok: boolean; message: string }>) | undefined;
  onDrain: (() => void) | undefined;

  constructor(backend: AdminBackend, levels: LogLevels, options: AdminOptions, readiness = new Readiness()) {
    this.#backend = backend;
    this.#readiness = readiness;
    this.#levels = levels;
    this.#options = options;
    this.server = http.createServer((req, res) => this.#handle(req, res));
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.#options.port, this.#options.host, () =>
        resolve((this.server.address() as AddressInfo).port),
      );
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  /** Readiness fails from now on (drain). */
  fail(): void {
    this.#readiness.live = false;
  }

  #send(res: http.ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://admin');
    const path = url.pathname;
    if ((MUTATIONS.has(path) || (this.#faults && path === FAULT_PATH)) && req.method !== 'POST') {
      this.#send(
        res,
        405,
        `This endpoint changes state: use POST, e.g. curl -XPOST "localhost:15000${path}${url.search}"\n`,
      );
      return;
    }
    switch (path) {
      case '/':
        this.#backend.snapshots().then(
          (snaps) =>
            this.#send(
              res,
              200,
              renderAdminPage(snaps, {
                version: this.#options.version,
                startedAt: this.#options.startedAt,
                live: this.#readiness.live,
                refresh: parseRefresh(url.searchParams.get('refresh')),
                summaries: this.#backend.summaries,
              }),
              'text/html; charset=utf-8',
            ),
          (err: Error) => this.#send(res, 500, `admin page failed: ${err.message}\n`),
        );
        return;
      case '/ready':
        this.#send(res, this.#readiness.live ? 200 : 503, this.#readiness.live ? 'LIVE\n' : 'DRAINING\n');
        return;
      case '/server_info':
        this.#send(
          res,
          200,
          JSON.stringify(
            {
              version: this.#options.version,
              state: this.#readiness.live ? 'LIVE' : 'DRAINING',
              uptime_current_epoch: `${Math.floor((Date.now() - this.#options.startedAt) / 1000)}s`,
              node: { runtime: `node ${process.version}` },
            },
            null,
            2,
          ),
          'application/json',
        );
        return;
      case '/stats/prometheus':
        this.#prometheus().then(
          (text) => this.#send(res, 200, text, 'text/plain; version=0.0.4; charset=utf-8'),
          (err: Error) => this.#send(res, 500, `metrics failed: ${err.message}\n`),
        );
        return;
      case '/stats':
        this.#backend.snapshots().then(
          (snaps) => {
            const stats = envoyStats(snaps, this.#readiness.live);
            if (url.searchParams.get('format') === 'json')
              this.#send(
                res,
                200,
                JSON.stringify({ stats: stats.map(([name, value]) => ({ name, value })) }, null, 2),
                'application/json',
              );
            else this.#send(res, 200, `${stats.map(([n, v]) => `${n}: ${v}`).join('\n')}\n`);
          },
          (err: Error) => this.#send(res, 500, `stats failed: ${err.message}\n`),
        );
        return;
      case '/listeners': {
        const listeners = this.#backend.summaries.map((l) => ({ name: l.name, port: l.port, chain: l.chain }));
        if (url.searchParams.get('format') === 'json')
          this.#send(res, 200, JSON.stringify(listeners, null, 2), 'application/json');
        else this.#send(res, 200, `${listeners.map((l) => `${l.name}::0.0.0.0:${l.port}`).join('\n')}\n`);
        return;
      }
      case '/clusters':
        this.#backend.snapshots().then(
          (snaps) => this.#send(res, 200, renderClusters(snaps)),
          (err: Error) => this.#send(res, 500, `clusters failed: ${err.message}\n`),
        );
        return;
      case '/config_dump': {
        // The workers' states are read in the same turn as snapshots() picks the live workers, so a
        // replacement that becomes ready meanwhile is not shown live without its snapshot.
        const workers = this.#backend.workers();
        this.#backend.snapshots().then(
          (snaps) =>
            this.#send(res, 200, JSON.stringify(this.#configDump(snaps, workers), null, 2), 'application/json'),
          (err: Error) => this.#send(res, 500, `config_dump failed: ${err.message}\n`),
        );
        return;
      }
      case '/logging':
        this.#logging(url, res);
        return;
      case '/healthcheck/fail':
        this.#readiness.live = false;
        this.#send(res, 200, 'OK\n');
        return;
      case '/healthcheck/ok':
        this.#readiness.live = true;
        this.#send(res, 200, 'OK\n');
        return;
      case '/reload':
        if (!this.onReload) {
          this.#send(res, 501, 'reload is not available\n');
          return;
        }
        this.onReload().then(
          (r) => this.#send(res, r.ok ? 200 : 400, `${r.message}\n`),
          (err: Error) => this.#send(res, 500, `reload failed: ${err.message}\n`),
        );
        return;
      case '/drain_listeners':
        this.#readiness.live = false;
        this.onDrain?.();
        this.#send(res, 200, 'OK\n');
        return;
      case '/quitquitquit':
        this.#send(res, 200, 'OK\n');
        this.onQuit?.();
        return;
      case FAULT_PATH:
        if (this.#faults) {
          this.#fault(url, res);
          return;
        }
        this.#send(res, 404, 'not found\n');
        return;
      default:
        this.#send(res, 404, 'not found\n');
    }
  }

  async #prometheus(): Promise<string> {
    const snaps = await this.#backend.snapshots();
    const istio = await AggregatorRegistry.aggregate(snaps.map((s) => s.istioMetrics)).metrics();
    return (
      istio +
      renderPluginStatus(mergePluginStatus(snaps)) +
      renderPluginMetrics(snaps.flatMap((s) => s.pluginMetrics)) +
      renderWorkerMetrics(this.#backend.workers())
    );
  }

  /** POST /faults/crash_worker?worker=K&kind=throw|exit&at=now|drain|close (tests only). */
  #fault(url: URL, res: http.ServerResponse): void {
    const worker = Number(url.searchParams.get('worker') ?? '0');
    const kind = (url.searchParams.get('kind') ?? 'throw') as WorkerFault['kind'];
    const at = (url.searchParams.get('at') ?? 'now') as WorkerFault['at'];
    if (!Number.isInteger(worker) || !FAULT_KINDS.includes(kind) || !FAULT_TIMES.includes(at)) {
      this.#send(
        res,
        400,
        `expected worker=N, kind=${FAULT_KINDS.join('|')}, at=${FAULT_TIMES.join('|')}; got ${url.search}\n`,
      );
      return;
    }
    this.#backend.injectFault(worker, { kind, at }).then(
      () => this.#send(res, 200, `worker ${worker}: ${kind} ${at === 'now' ? 'injected' : `armed for ${at}`}\n`),
      (err: Error) => this.#send(res, 409, `${err.message}\n`),
    );
  }

  #logging(url: URL, res: http.ServerResponse): void {
    const changes: string[] = [];
    for (const [key, value] of url.searchParams) {
      let ok = false;
      if (key === 'wasm' || key === 'level') ok = this.#levels.setWasm(value);
      else if (this.#backend.pluginNames.includes(key)) ok = this.#levels.setPlugin(key, value);
      if (!ok) {
        this.#send(res, 400, `invalid logging change: ${key}=${value}\n`);
        return;
      }
      changes.push(`${key}: ${value}`);
    }
    const lines = [`active loggers:`, `  wasm: ${LEVEL_NAMES[this.#levels.wasm]}`];
    if (changes.length > 0) void this.#backend.setLevels(this.#levels.state());
    for (const name of this.#backend.pluginNames) {
      const n = this.#levels.pluginLevel(name);
      lines.push(`  ${name}: ${LEVEL_NAMES[n]}`);
    }
    this.#send(res, 200, `${lines.join('\n')}\n`);
  }

  #configDump(snaps: WorkerSnapshot[], workers: WorkerStatus[]): unknown {
    const first = snaps[0];
    return {
      workers: snaps.length,
      // Every worker position, live or being replaced, with what its current thread has served.
      worker_threads: workers.map((w) => {
        const snap = snaps.find((s) => s.worker === w.worker);
        return {
          worker: w.worker,
          state: w.state,
          thread_id: w.threadId,
          restarts: w.restarts,
          last_exit: w.lastExit,
          downstream_cx_active: snap?.connections,
          downstream_rq_total: snap && requestsByCode(snap),
        };
      }),
      listeners: (first?.summaries ?? this.#backend.summaries).map((l) => ({
        name: l.name,
        port: l.port,
        http_filters: [...l.chain, 'envoy.filters.http.router'],
        routes: l.routes,
      })),
      wasm_plugins: (first?.plugins ?? []).map((p) => ({
        name: p.name,
        url: p.url,
        sha256: p.digest,
        phase: p.phase,
        priority: p.priority,
        fail_strategy: p.failStrategy,
        workers: snaps.map((s) => {
          const w = s.plugins.find((x) => x.name === p.name);
          return { worker: s.worker, state: w?.failure ? 'FAILED' : 'ACTIVE', failure: w?.failure };
        }),
      })),
    };
  }
}

/** Requests one worker answered (since its thread started), by response code. */
function requestsByCode(snap: WorkerSnapshot): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of snap.istioMetrics) {
    if (m.name !== 'istio_requests_total') continue;
    for (const v of m.values) {
      const code = String(v.labels.response_code ?? '0');
      out[code] = (out[code] ?? 0) + v.value;
    }
  }
  return out;
}

/** Worker restarts (crash containment) and which positions serve now. */
function renderWorkerMetrics(workers: WorkerStatus[]): string {
  return `${[
    '# HELP wasmgate_worker_restarts_total Worker threads replaced after one died (crash containment)',
    '# TYPE wasmgate_worker_restarts_total counter',
    ...workers.map((w) => `wasmgate_worker_restarts_total{worker="${w.worker}"} ${w.restarts}`),
    '# HELP wasmgate_worker_live 1 when the worker position has a thread serving, 0 while it is replaced',
    '# TYPE wasmgate_worker_live gauge',
    ...workers.map((w) => `wasmgate_worker_live{worker="${w.worker}"} ${w.state === 'live' ? 1 : 0}`),
  ].join('\n')}\n`;
}

/** Plugin health and failStrategy counters summed over workers (failed if failed on any). */
function mergePluginStatus(snaps: WorkerSnapshot[]): PluginStatus[] {
  const merged = new Map<string, PluginStatus>();
  for (const s of snaps) {
    for (const p of s.plugins) {
      let cur = merged.get(p.name);
      if (!cur) {
        cur = {
          name: p.name,
          failure: undefined,
          skippedCount: 0,
          rejectedCount: 0,
          trapCount: 0,
          restartCount: 0,
          calls: new Map(),
          buckets: [],
          sampledSumUs: 0,
          sampled: 0,
        };
        merged.set(p.name, cur);
      }
      cur.failure ??= p.failure;
      cur.skippedCount += p.skippedCount;
      cur.rejectedCount += p.rejectedCount;
      cur.trapCount! += p.trapCount;
      cur.restartCount! += p.restartCount;
      const cs = p.callStats;
      if (!cs) continue;
      for (const [cb, n] of cs.calls) cur.calls!.set(cb, (cur.calls!.get(cb) ?? 0) + n);
      cs.buckets.forEach((n, i) => {
        cur.buckets![i] = (cur.buckets![i] ?? 0) + n;
      });
      cur.sampledSumUs! += cs.sampledSumUs;
      cur.sampled! += cs.sampled;
    }
  }
  return [...merged.values()];
}

/** Envoy's /clusters text, per endpoint, summed over workers. */
function renderClusters(snaps: WorkerSnapshot[]): string {
  const merged = new Map<string, ClusterSnapshot>();
  for (const s of snaps) {
    for (const c of s.clusters) {
      const cur = merged.get(c.name);
      if (!cur) {
        merged.set(c.name, { ...c, endpoints: c.endpoints.map((e) => ({ ...e })) });
        continue;
      }
      for (const e of c.endpoints) {
        const m = cur.endpoints.find((x) => x.host === e.host && x.port === e.port);
        if (!m) cur.endpoints.push({ ...e });
        else {
          m.active += e.active;
          m.total += e.total;
          m.healthy &&= e.healthy;
        }
      }
    }
  }
  const lines: string[] = [];
  for (const c of merged.values()) {
    for (const e of c.endpoints) {
      const at = `${c.name}::${e.host}:${e.port}`;
      lines.push(`${at}::health_flags::${e.healthy ? 'healthy' : '/failed_outlier_check'}`);
      lines.push(`${at}::rq_active::${e.active}`);
      lines.push(`${at}::rq_total::${e.total}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** Envoy-style counters and gauges, summed over workers, sorted by name (GET /stats). */
function envoyStats(snaps: WorkerSnapshot[], live: boolean): [string, number][] {
  const out = new Map<string, number>();
  const add = (name: string, v: number) => out.set(name, (out.get(name) ?? 0) + v);
  add('server.live', live ? 1 : 0);
  add('server.concurrency', snaps.length);
  for (const s of snaps) {
    add('server.downstream_cx_active', s.connections);
    for (const c of s.clusters) {
      add(`cluster.${c.name}.upstream_rq_total`, c.total);
      add(`cluster.${c.name}.upstream_rq_active`, c.active);
      add(`cluster.${c.name}.upstream_rq_pending_overflow`, c.overflows);
      add(`cluster.${c.name}.upstream_cx_overflow`, c.cxOverflows);
      add(`cluster.${c.name}.outlier_detection.ejections_total`, c.ejections);
      add(`cluster.${c.name}.upstream_rq_retry`, c.retries);
      out.set(`cluster.${c.name}.membership_total`, c.endpoints.length);
      out.set(`cluster.${c.name}.membership_healthy`, c.endpoints.filter((e) => e.healthy).length);
    }
    for (const p of s.plugins) {
      add(`wasm.${p.name}.fail_open`, p.skippedCount);
      add(`wasm.${p.name}.fail_close`, p.rejectedCount);
      add(`wasm.${p.name}.traps`, p.trapCount);
      add(`wasm.${p.name}.failed_vms`, p.failure ? 1 : 0);
    }
    for (const m of s.istioMetrics) {
      if (m.name !== 'istio_requests_total') continue;
      for (const v of m.values) {
        const code = String(v.labels.response_code ?? '0');
        add('http.downstream_rq_total', v.value);
        add(`http.downstream_rq_${code[0] ?? '0'}xx`, v.value);
      }
    }
  }
  return [...out].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}
