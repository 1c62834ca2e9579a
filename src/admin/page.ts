// The admin page (GET / on the admin port): listeners and their filter chains in the order
// requests run through them, each plugin's module, digest and VM state per worker, clusters with
// endpoint health, and the counters that move. Plain server-rendered HTML with an inline
// stylesheet: no script, no build step, nothing loaded from anywhere but this page itself.
// Every value from the configuration or the workers is escaped.
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { ListenerSummary } from '../server/gateway.ts';
import type { ClusterSnapshot, PluginSnapshot, WorkerSnapshot } from '../server/snapshot.ts';
import { MetricType } from '../wasm/abi/result.ts';

export interface PageInfo {
  version: string;
  startedAt: number;
  live: boolean;
  /** Seconds between reloads (`?refresh=N`), or none. */
  refresh: number | undefined;
  /** The listeners when no worker answered. */
  summaries: ListenerSummary[];
  now?: number;
}

/** The built-in filters by chain name: what they are and the Istio kind that configures them. */
const BUILTINS: Record<string, { title: string; kind: string }> = {
  'istio.authn': { title: 'JWT authentication', kind: 'RequestAuthentication' },
  'istio.authz': { title: 'Authorization policy', kind: 'AuthorizationPolicy' },
  'istio.stats': { title: 'Istio standard metrics', kind: 'istio_* metrics' },
};

const ROUTER = 'envoy.filters.http.router';
const TCP_PROXY = 'envoy.filters.network.tcp_proxy';

/** `?refresh=N` as a number of seconds (1..3600), or undefined. */
export function parseRefresh(value: string | null): number | undefined {
  if (value === null || !/^\d+$/.test(value)) return undefined;
  const n = Number(value);
  return n >= 1 && n <= 3600 ? n : undefined;
}

export function escapeHtml(value: unknown): string {
  return String(value)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const e = escapeHtml;

export function renderAdminPage(snaps: WorkerSnapshot[], info: PageInfo): string {
  const now = info.now ?? Date.now();
  const workers = [...snaps].sort((a, b) => a.worker - b.worker);
  const listeners = workers[0]?.summaries ?? info.summaries;
  const plugins = workers[0]?.plugins ?? [];
  const byName = new Map(plugins.map((p) => [p.name, p]));
  const uptime = Math.max(0, Math.floor((now - info.startedAt) / 1000));
  const refresh = info.refresh;
  const head = [
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    // Nothing but this page: no script, no fetch, no external style or font.
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    refresh ? `<meta http-equiv="refresh" content="${refresh}">` : '',
    '<link rel="icon" href="data:,">',
    `<title>wasmgate admin</title>`,
    `<style>${STYLE}</style>`,
    '</head>',
  ].filter((l) => l !== '');
  const body = [
    '<body>',
    '<header>',
    `<h1>wasmgate <span class="muted">${e(info.version)}</span></h1>`,
    '<p class="facts">',
    `<span class="state ${info.live ? 'ok' : 'bad'}" id="server-state">${info.live ? 'LIVE' : 'DRAINING'}</span>`,
    `<span>uptime ${e(formatDuration(uptime))}</span>`,
    `<span>${workers.length} worker${workers.length === 1 ? '' : 's'}</span>`,
    `<span>${sum(workers.map((w) => w.connections))} open connections</span>`,
    `<span>rendered ${e(new Date(now).toISOString())}</span>`,
    '</p>',
    '<nav>',
    refresh
      ? `<a href="/">stop refreshing (every ${refresh}s)</a>`
      : '<a href="/?refresh=2">refresh every 2s</a> <a href="/?refresh=10">every 10s</a>',
    ' · <a href="/config_dump">config_dump</a> <a href="/listeners">listeners</a> <a href="/clusters">clusters</a>',
    ' <a href="/stats">stats</a> <a href="/stats/prometheus">stats/prometheus</a> <a href="/server_info">server_info</a> <a href="/ready">ready</a>',
    '</nav>',
    '</header>',
    '<main>',
    workers.length === 0
      ? '<p class="warn">No worker answered: the listeners below are from the configuration; states and counters are unknown.</p>'
      : '',
    renderListeners(listeners, byName, workers),
    renderPlugins(plugins, workers, networkPlugins(listeners)),
    renderClusters(workers),
    renderCounters(workers),
    '</main>',
    '</body>',
    '</html>',
  ].filter((l) => l !== '');
  return `${[...head, ...body].join('\n')}\n`;
}

function renderListeners(
  listeners: ListenerSummary[],
  plugins: Map<string, PluginSnapshot>,
  workers: WorkerSnapshot[],
): string {
  const out = ['<section id="listeners">', '<h2>Listeners and filter chains</h2>'];
  if (listeners.length === 0) out.push('<p class="muted">No listeners.</p>');
  for (const l of listeners) {
    // The summary's chain: NETWORK plugins first (l.network of them), then the HTTP filters, or
    // tcp_proxy last on a TCP listener (drawn as its terminal, where HTTP listeners have the router).
    const tcp = l.chain.at(-1) === 'tcp_proxy';
    const filters = tcp ? l.chain.slice(0, -1) : l.chain;
    const network = Math.min(l.network ?? 0, filters.length);
    const terminal = tcp
      ? { name: TCP_PROXY, kind: 'tcp_proxy', tag: 'tcp proxy' }
      : { name: ROUTER, kind: 'router', tag: 'router' };
    out.push(
      `<article class="listener" data-listener="${e(l.name)}" data-port="${e(l.port)}" data-kind="${tcp ? 'tcp' : 'http'}">`,
      `<h3>${e(l.name)} <span class="muted">port ${e(l.port)}${tcp ? ' · TCP' : ''}</span></h3>`,
      `<p class="legend">${network > 0 ? '<span class="swatch network"></span> NETWORK plugin, on the connection\'s bytes ' : ''}${tcp ? '' : '<span class="swatch builtin"></span> built-in filter <span class="swatch wasm"></span> Wasm plugin, by phase then priority (higher first)'}</p>`,
      '<div class="flow">',
      '<span class="end">client</span><span class="arrow">→</span>',
      '<ol class="chain">',
    );
    filters.forEach((name, i) => {
      out.push(renderFilter(name, i + 1, plugins.get(name), workers, i < network));
    });
    out.push(
      `<li class="filter router" data-filter="${terminal.name}" data-kind="${terminal.kind}"><span class="head"><span class="pos">${filters.length + 1}</span><span class="tag">${terminal.tag}</span></span><span class="name">${terminal.name}</span></li>`,
      '</ol>',
      '<span class="arrow">→</span><span class="end">upstream</span>',
      '</div>',
    );
    if (l.routes.length > 0)
      out.push(`<p class="routes">Routes: ${l.routes.map((r) => `<code>${e(r)}</code>`).join(' ')}</p>`);
    out.push('</article>');
  }
  out.push('</section>');
  return out.join('\n');
}

function renderFilter(
  name: string,
  pos: number,
  plugin: PluginSnapshot | undefined,
  workers: WorkerSnapshot[],
  network = false,
): string {
  const head = (tag: string) =>
    `<span class="head"><span class="pos">${pos}</span><span class="tag">${tag}</span></span>`;
  if (!plugin) {
    const b = BUILTINS[name];
    return [
      `<li class="filter builtin" data-filter="${e(name)}" data-kind="builtin">`,
      head('built-in'),
      `<span class="name">${e(name)}</span>`,
      b ? `<span class="detail">${e(b.title)} · ${e(b.kind)}</span>` : '',
      '</li>',
    ].join('');
  }
  const states = workers.map((w) => w.plugins.find((p) => p.name === name));
  const failed = states.filter((p) => p?.failure !== undefined).length;
  const state =
    workers.length === 0 ? 'UNKNOWN' : failed === 0 ? 'ACTIVE' : failed === workers.length ? 'FAILED' : 'DEGRADED';
  const open = network
    ? `<li class="filter wasm network" data-filter="${e(name)}" data-kind="network" data-priority="${e(plugin.priority)}" data-state="${state}">`
    : `<li class="filter wasm phase-${e(plugin.phase.toLowerCase())}" data-filter="${e(name)}" data-kind="wasm" data-phase="${e(plugin.phase)}" data-priority="${e(plugin.priority)}" data-state="${state}">`;
  return [
    open,
    head(network ? 'NETWORK plugin' : 'Wasm plugin'),
    `<span class="name"><a href="#plugin-${e(anchor(name))}">${e(name)}</a></span>`,
    `<span class="detail">${network ? 'NETWORK' : e(plugin.phase)} · priority ${e(plugin.priority)} · ${e(plugin.failStrategy)}</span>`,
    `<span class="state ${state === 'ACTIVE' ? 'ok' : 'bad'}">${state}${workers.length > 0 && failed > 0 && failed < workers.length ? ` ${failed}/${workers.length}` : ''}</span>`,
    '</li>',
  ].join('');
}

/** The plugins some listener runs as NETWORK filters (the first `network` entries of its chain). */
function networkPlugins(listeners: ListenerSummary[]): Set<string> {
  return new Set(listeners.flatMap((l) => l.chain.slice(0, l.network ?? 0)));
}

function renderPlugins(plugins: PluginSnapshot[], workers: WorkerSnapshot[], network: Set<string>): string {
  const out = ['<section id="plugins">', '<h2>Wasm plugins</h2>'];
  if (plugins.length === 0) {
    out.push('<p class="muted">No WasmPlugin applies to this proxy.</p>', '</section>');
    return out.join('\n');
  }
  out.push(
    '<table class="plugins">',
    '<thead><tr><th>Plugin</th><th>Phase</th><th>Priority</th><th>Fail strategy</th><th>Module</th>',
    ...workers.map((w) => `<th>VM on worker ${e(w.worker)}</th>`),
    '</tr></thead>',
    '<tbody>',
  );
  for (const p of plugins) {
    out.push(
      `<tr id="plugin-${e(anchor(p.name))}" data-plugin="${e(p.name)}">`,
      `<td class="name">${e(p.name)}</td>`,
      `<td>${network.has(p.name) ? 'NETWORK' : e(p.phase)}</td>`,
      `<td class="num">${e(p.priority)}</td>`,
      `<td>${e(p.failStrategy)}</td>`,
      '<td class="module">',
      `<div class="url">${e(p.url)}</div>`,
      `<div class="digest">${p.digest ? `sha256:${e(p.digest)}` : '<span class="muted">no module loaded</span>'}</div>`,
      '</td>',
    );
    for (const w of workers) {
      const s = w.plugins.find((x) => x.name === p.name);
      if (!s) {
        out.push(
          `<td class="vm" data-worker="${e(w.worker)}" data-state="ABSENT"><span class="muted">absent</span></td>`,
        );
        continue;
      }
      const state = s.failure === undefined ? 'ACTIVE' : 'FAILED';
      out.push(
        `<td class="vm" data-worker="${e(w.worker)}" data-state="${state}">`,
        `<span class="state ${state === 'ACTIVE' ? 'ok' : 'bad'}">${state}</span>`,
        s.failure !== undefined ? `<div class="failure">${e(s.failure)}</div>` : '',
        `<div class="counters">traps ${s.trapCount} · fail-open skips ${s.skippedCount} · fail-close 503s ${s.rejectedCount}</div>`,
        s.digest && s.digest !== p.digest ? `<div class="digest">sha256:${e(s.digest)}</div>` : '',
        '</td>',
      );
    }
    out.push('</tr>');
  }
  out.push('</tbody>', '</table>', '</section>');
  return out.join('\n');
}

/** Clusters summed over workers, endpoints healthy only if healthy on every worker. */
function mergeClusters(workers: WorkerSnapshot[]): ClusterSnapshot[] {
  const merged = new Map<string, ClusterSnapshot>();
  for (const w of workers) {
    for (const c of w.clusters) {
      const cur = merged.get(c.name);
      if (!cur) {
        merged.set(c.name, { ...c, endpoints: c.endpoints.map((x) => ({ ...x })) });
        continue;
      }
      cur.active += c.active;
      cur.total += c.total;
      cur.overflows += c.overflows;
      cur.ejections += c.ejections;
      for (const x of c.endpoints) {
        const m = cur.endpoints.find((y) => y.host === x.host && y.port === x.port);
        if (!m) cur.endpoints.push({ ...x });
        else {
          m.active += x.active;
          m.total += x.total;
          m.healthy &&= x.healthy;
        }
      }
    }
  }
  return [...merged.values()];
}

function renderClusters(workers: WorkerSnapshot[]): string {
  const clusters = mergeClusters(workers);
  const out = ['<section id="clusters">', '<h2>Clusters</h2>'];
  if (clusters.length === 0) {
    out.push('<p class="muted">No clusters.</p>', '</section>');
    return out.join('\n');
  }
  out.push(
    '<table class="clusters">',
    '<thead><tr><th>Cluster / endpoint</th><th>Health</th><th>Active requests</th><th>Total requests</th><th>Overflows</th><th>Ejections</th></tr></thead>',
    '<tbody>',
  );
  for (const c of clusters) {
    out.push(
      `<tr class="cluster" data-cluster="${e(c.name)}"><td class="name">${e(c.name)}</td><td></td><td class="num">${c.active}</td><td class="num">${c.total}</td><td class="num">${c.overflows}</td><td class="num">${c.ejections}</td></tr>`,
    );
    for (const x of c.endpoints) {
      const health = x.healthy ? 'healthy' : 'ejected';
      out.push(
        `<tr class="endpoint" data-endpoint="${e(`${x.host}:${x.port}`)}" data-health="${health}"><td class="indent">${e(x.host)}:${e(x.port)}</td><td><span class="state ${x.healthy ? 'ok' : 'bad'}">${health}</span></td><td class="num">${x.active}</td><td class="num">${x.total}</td><td></td><td></td></tr>`,
      );
    }
  }
  out.push('</tbody>', '</table>', '</section>');
  return out.join('\n');
}

type IstioMetric = MetricObjectWithValues<MetricValue<string>>;

/** Sums a metric's samples over workers, grouped by one label. */
function sumByLabel(workers: WorkerSnapshot[], metric: string, label: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const w of workers) {
    const m = w.istioMetrics.find((x: IstioMetric) => x.name === metric);
    for (const v of m?.values ?? []) {
      const key = String((v.labels as Record<string, string | number | undefined>)[label] ?? '');
      out.set(key, (out.get(key) ?? 0) + Number(v.value));
    }
  }
  return out;
}

function renderCounters(workers: WorkerSnapshot[]): string {
  const out = ['<section id="counters">', '<h2>Counters</h2>', '<div class="cards">'];
  const byCode = sumByLabel(workers, 'istio_requests_total', 'response_code');
  const total = sum([...byCode.values()]);
  out.push(
    '<div class="card">',
    '<h3>Requests (istio_requests_total)</h3>',
    `<p class="big" id="requests-total">${total}</p>`,
    '<table class="compact"><tbody>',
    ...[...byCode.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([code, n]) => `<tr><td>${e(code || '-')}</td><td class="num">${n}</td></tr>`),
    '</tbody></table>',
    '</div>',
  );
  out.push(
    '<div class="card">',
    '<h3>Workers</h3>',
    '<table class="compact"><thead><tr><th>Worker</th><th>Connections</th><th>Requests</th></tr></thead><tbody>',
    ...workers.map(
      (w) =>
        `<tr><td>${e(w.worker)}</td><td class="num">${w.connections}</td><td class="num">${sum([...sumByLabel([w], 'istio_requests_total', 'response_code').values()])}</td></tr>`,
    ),
    '</tbody></table>',
    '</div>',
  );
  // Plugin-defined metrics (proxy_define_metric), summed over the VMs that define them.
  const merged = new Map<string, { name: string; type: number; value: bigint; samples: number; sum: bigint }>();
  for (const m of workers.flatMap((w) => w.pluginMetrics)) {
    const key = `${m.type}:${m.name}`;
    const cur = merged.get(key);
    if (!cur) merged.set(key, { ...m });
    else {
      cur.value += m.value;
      cur.samples += m.samples;
      cur.sum += m.sum;
    }
  }
  out.push(
    '<div class="card">',
    '<h3>Plugin metrics</h3>',
    merged.size === 0
      ? '<p class="muted">No plugin defined a metric.</p>'
      : [
          '<table class="compact"><tbody>',
          ...[...merged.values()]
            .sort((a, b) => a.name.localeCompare(b.name))
            .map(
              (m) =>
                `<tr><td>${e(m.name)}</td><td>${m.type === MetricType.COUNTER ? 'counter' : m.type === MetricType.GAUGE ? 'gauge' : 'histogram'}</td><td class="num">${m.type === MetricType.HISTOGRAM ? `${m.samples} samples, sum ${m.sum}` : String(m.value)}</td></tr>`,
            ),
          '</tbody></table>',
        ].join('\n'),
    '</div>',
  );
  out.push('</div>', '</section>');
  return out.join('\n');
}

function anchor(name: string): string {
  return name.replace(/[^A-Za-z0-9_.-]/g, '_');
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

function formatDuration(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return h > 0 ? `${h}h${m}m${s}s` : m > 0 ? `${m}m${s}s` : `${s}s`;
}

const STYLE = `
:root{--fg:#1d2330;--muted:#6b7280;--line:#d9dee7;--bg:#f6f7f9;--ok:#137333;--okbg:#e6f4ea;--bad:#b3261e;--badbg:#fce8e6;
--builtin:#eef0f4;--builtin-b:#8a94a6;--wasm:#e8f0fe;--wasm-b:#1a73e8;--net:#fef7e0;--net-b:#b06000}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);background:var(--bg)}
header{background:#fff;border-bottom:1px solid var(--line);padding:12px 24px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}h3{font-size:14px;margin:0 0 8px}
main{padding:0 24px 32px}
.muted{color:var(--muted);font-weight:normal}
.facts span{margin-right:14px}
nav a{margin-right:8px}
a{color:#1a5fb4}
code,.url,.digest,.name{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace}
.warn{background:var(--badbg);border:1px solid var(--bad);padding:8px;border-radius:4px}
.listener{background:#fff;border:1px solid var(--line);border-radius:6px;padding:12px 16px;margin-bottom:12px}
.legend{color:var(--muted);margin:0 0 8px}
.swatch{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:-1px;margin-left:8px}
.swatch.builtin{background:var(--builtin);border:1px dashed var(--builtin-b)}.swatch.wasm{background:var(--wasm);border:1px solid var(--wasm-b)}
.swatch.network{background:var(--net);border:1px solid var(--net-b)}
.flow{display:flex;align-items:center;flex-wrap:wrap;gap:6px}
.end{font-weight:600;color:var(--muted)}
.arrow{color:var(--muted);font-size:18px}
ol.chain{list-style:none;display:flex;flex-wrap:wrap;gap:6px;margin:0;padding:0}
ol.chain>li+li{margin-left:22px}
ol.chain>li+li::before{content:"→";color:var(--muted);font-size:18px;position:absolute;left:-21px;top:50%;transform:translateY(-50%)}
.filter{display:flex;flex-direction:column;gap:2px;min-width:150px;padding:6px 10px;border-radius:6px;position:relative}
.filter .pos{font-size:11px;color:var(--muted);margin-right:6px}
.filter .tag{font-size:11px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);margin-right:6px}
.filter .name{font-weight:600}
.filter .detail{font-size:12px}
.filter .state{align-self:flex-start}
.filter.builtin{background:var(--builtin);border:1px dashed var(--builtin-b)}
.filter.wasm{background:var(--wasm);border:1px solid var(--wasm-b)}
.filter.wasm .tag{color:var(--wasm-b)}
.filter.wasm.network{background:var(--net);border-color:var(--net-b)}.filter.wasm.network .tag{color:var(--net-b)}
.filter.router{background:#fff;border:1px solid var(--line)}
.state{display:inline-block;font-size:11px;font-weight:700;padding:1px 6px;border-radius:3px}
.state.ok{color:var(--ok);background:var(--okbg)}.state.bad{color:var(--bad);background:var(--badbg)}
.routes{margin:8px 0 0;color:var(--muted)}
table{border-collapse:collapse;background:#fff;border:1px solid var(--line);width:100%}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:#fafbfc;font-weight:600}
td.name{white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.indent{padding-left:24px;font-family:ui-monospace,"DejaVu Sans Mono",monospace}
.module .digest{font-size:12px;color:var(--muted);word-break:break-all}.module .url{word-break:break-all}
.failure{color:var(--bad);font-size:12px;margin-top:4px;max-width:360px;word-break:break-word}
.counters{font-size:12px;color:var(--muted);margin-top:4px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{background:#fff;border:1px solid var(--line);border-radius:6px;padding:12px 16px;min-width:260px}
.card table{border:0}.big{font-size:28px;margin:0 0 8px;font-weight:600}
`;
