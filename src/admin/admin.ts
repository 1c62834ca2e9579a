// The admin listener (Envoy's localhost:15000 subset for now): /ready, /server_info, /config_dump,
// /clusters, POST /logging. Mutations are POST-only.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { redactUrl } from '../fetch/index.ts';
import type { LogLevels } from '../observability/logger.ts';
import { renderPluginMetrics, renderPluginStatus } from '../observability/plugin-metrics.ts';
import type { Gateway } from '../server/gateway.ts';

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
  readonly #gateway: Gateway;
  readonly #levels: LogLevels;
  readonly #options: AdminOptions;
  #live = true;
  onQuit: (() => void) | undefined;
  onReload: (() => Promise<{ ok: boolean; message: string }>) | undefined;
  onDrain: (() => void) | undefined;

  constructor(gateway: Gateway, levels: LogLevels, options: AdminOptions) {
    this.#gateway = gateway;
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
    this.#live = false;
  }

  #send(res: http.ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://admin');
    const path = url.pathname;
    if (MUTATIONS.has(path) && req.method !== 'POST') {
      this.#send(
        res,
        405,
        `This endpoint changes state: use POST, e.g. curl -XPOST "localhost:15000${path}${url.search}"\n`,
      );
      return;
    }
    switch (path) {
      case '/ready':
        this.#send(res, this.#live ? 200 : 503, this.#live ? 'LIVE\n' : 'DRAINING\n');
        return;
      case '/server_info':
        this.#send(
          res,
          200,
          JSON.stringify(
            {
              version: this.#options.version,
              state: this.#live ? 'LIVE' : 'DRAINING',
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
      case '/config_dump':
        this.#send(res, 200, JSON.stringify(this.#configDump(), null, 2), 'application/json');
        return;
      case '/clusters': {
        const lines: string[] = [];
        for (const c of this.#gateway.clusters.clusters.values()) {
          for (const e of c.endpoints) {
            lines.push(`${c.name}::${e.host}:${e.port}::health_flags::healthy`);
            lines.push(`${c.name}::${e.host}:${e.port}::rq_active::${c.active}`);
            lines.push(`${c.name}::${e.host}:${e.port}::rq_total::${c.total}`);
          }
        }
        this.#send(res, 200, `${lines.join('\n')}\n`);
        return;
      }
      case '/logging':
        this.#logging(url, res);
        return;
      case '/healthcheck/fail':
        this.#live = false;
        this.#send(res, 200, 'OK\n');
        return;
      case '/healthcheck/ok':
        this.#live = true;
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
        this.#live = false;
        this.onDrain?.();
        this.#send(res, 200, 'OK\n');
        return;
      case '/quitquitquit':
        this.#send(res, 200, 'OK\n');
        this.onQuit?.();
        return;
      default:
        this.#send(res, 404, 'not found\n');
    }
  }

  async #prometheus(): Promise<string> {
    const plugins = [...this.#gateway.plugins.values()];
    const metrics = plugins.flatMap((p) => (p.vm ? [...p.vm.metrics.byId.values()] : []));
    return (await this.#gateway.metrics.text()) + renderPluginStatus(plugins) + renderPluginMetrics(metrics);
  }

  #logging(url: URL, res: http.ServerResponse): void {
    const changes: string[] = [];
    for (const [key, value] of url.searchParams) {
      let ok = false;
      if (key === 'wasm' || key === 'level') ok = this.#levels.setWasm(value);
      else if (this.#gateway.plugins.has(key)) ok = this.#levels.setPlugin(key, value);
      if (!ok) {
        this.#send(res, 400, `invalid logging change: ${key}=${value}\n`);
        return;
      }
      changes.push(`${key}: ${value}`);
    }
    const lines = [`active loggers:`, `  wasm: ${LEVEL_NAMES[this.#levels.wasm]}`];
    for (const name of this.#gateway.plugins.keys()) {
      const n = this.#levels.pluginLevel(name);
      lines.push(`  ${name}: ${LEVEL_NAMES[n]}`);
    }
    this.#send(res, 200, `${lines.join('\n')}\n`);
  }

  #configDump(): unknown {
    return {
      listeners: this.#gateway.summaries.map((l) => ({
        name: l.name,
        port: l.port,
        http_filters: [...l.chain, 'envoy.filters.http.router'],
        routes: l.routes,
      })),
      wasm_plugins: [...this.#gateway.plugins.values()].map((p) => ({
        name: p.name,
        url: redactUrl(p.resource.spec.url),
        phase: p.resource.spec.phase,
        priority: p.resource.spec.priority,
        fail_strategy: p.resource.spec.failStrategy,
        state: p.failure ? 'FAILED' : 'ACTIVE',
        failure: p.failure,
      })),
    };
  }
}
