// Hostile Wasm guests under load, across two workers. Each kind of plugin has its own listener
// port (WasmPlugin match.ports): a bystander port with no plugin and a port with a well-behaved
// plugin take steady autocannon load while, at the same time, requests hit ports whose plugins
// loop forever, grow memory without end, trap (unreachable) or make host calls in the wrong
// context or phase. Every bystander request succeeds, each hostile request gets what its
// failStrategy gives, the process survives, both workers serve, and the trap and VM restart
// counters on the admin port move as the hostile requests say they must.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import autocannon from 'autocannon';
import { gatewayYaml, type RunningProxy, startProxy, tempConfig, wasmPluginYaml } from '../helpers/proxy.ts';
import { startEmbeddedHttpbin, type Upstream } from '../helpers/upstreams.ts';
import { HEADER_PLUGIN_WAT, RUNAWAY_WAT, tempModule, WRONG_PHASE_WAT, wat } from '../helpers/wat.ts';
import { freePort } from './tcp-helpers.ts';

const DEADLINE_MS = 250;
const LOAD_SECONDS = 8;
const WORKERS = 2;

/** A listener port and the plugin on it (none for the bystander). */
interface Route {
  name: string;
  port: number;
  plugin?: { module: string; failStrategy: 'FAIL_CLOSE' | 'FAIL_OPEN' | 'FAIL_RELOAD' };
  /** Headers that make this route's plugin misbehave (or let the well-behaved one pass). */
  headers: Record<string, string>;
}

const runaway = tempModule(wat(RUNAWAY_WAT), 'runaway.wasm').url;
const header = tempModule(wat(HEADER_PLUGIN_WAT), 'header.wasm').url;
const wrongPhase = tempModule(wat(WRONG_PHASE_WAT), 'wrong-phase.wasm').url;

const routes = {
  bystander: { name: 'bystander', headers: {} },
  good: { name: 'good', plugin: { module: header, failStrategy: 'FAIL_CLOSE' }, headers: { allow: '1' } },
  spin: { name: 'spin', plugin: { module: runaway, failStrategy: 'FAIL_CLOSE' }, headers: { 'x-spin': '1' } },
  bomb: { name: 'bomb', plugin: { module: runaway, failStrategy: 'FAIL_CLOSE' }, headers: { 'x-bomb': '1' } },
  trap: { name: 'trap', plugin: { module: header, failStrategy: 'FAIL_RELOAD' }, headers: { trap: '1', allow: '1' } },
  trapOpen: {
    name: 'trap-open',
    plugin: { module: header, failStrategy: 'FAIL_OPEN' },
    headers: { trap: '1', allow: '1' },
  },
  wrongPhase: { name: 'wrong-phase', plugin: { module: wrongPhase, failStrategy: 'FAIL_CLOSE' }, headers: {} },
} satisfies Record<string, Omit<Route, 'port'>>;
type RouteName = keyof typeof routes;
const ports = {} as Record<RouteName, number>;

function config(upstreamPort: number): string {
  const entries = Object.entries(routes) as [RouteName, Omit<Route, 'port'>][];
  const servers = entries
    .map(([k, r]) => `  - port: {number: ${ports[k]}, name: http-${r.name}, protocol: HTTP}\n    hosts: ["*"]`)
    .join('\n');
  const plugins = entries
    .filter(([, r]) => r.plugin)
    .map(
      ([k, r]) =>
        `---\n${wasmPluginYaml({
          name: r.name,
          url: r.plugin!.module,
          failStrategy: r.plugin!.failStrategy,
          extra: `  match:\n  - ports: [{number: ${ports[k]}}]\n`,
        })}`,
    )
    .join('');
  return gatewayYaml(upstreamPort, plugins, { servers });
}

/** One request on a fresh connection, so the kernel picks a worker each time. */
function hit(
  port: number,
  headers: Record<string, string>,
): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/get', headers, agent: false, timeout: 15_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body, headers: res.headers, ms: performance.now() - t0 }),
      );
    });
    req.on('timeout', () => req.destroy(new Error(`no answer on port ${port} within 15 s`)));
    req.on('error', reject);
  });
}

function load(name: RouteName, connections: number): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url: `http://127.0.0.1:${ports[name]}/get`,
        connections,
        duration: LOAD_SECONDS,
        headers: routes[name].headers,
        // A new connection every 50 requests: the kernel spreads them over both workers.
        reconnectRate: 50,
        timeout: 10,
      },
      (err, result) => (err ? reject(err) : resolve(result)),
    );
  });
}

/** Prometheus samples of one metric, by plugin name. */
function byPlugin(text: string, metric: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of text.matchAll(new RegExp(`^${metric}\\{plugin="([^"]+)"\\} (\\d+)$`, 'gm')))
    out.set(m[1]!, Number(m[2]));
  return out;
}

/** The admin page's per-worker request counts (Workers card) and per-worker trap counts by plugin. */
function perWorker(html: string): { requests: Map<number, number>; traps: Map<string, number[]> } {
  const requests = new Map<number, number>();
  const card = html.slice(html.indexOf('<h3>Workers</h3>'));
  for (const m of card.matchAll(/<tr><td>(\d+)<\/td><td class="num">\d+<\/td><td class="num">(\d+)<\/td><\/tr>/g))
    requests.set(Number(m[1]), Number(m[2]));
  const traps = new Map<string, number[]>();
  for (const row of html.matchAll(/<tr id="plugin-[^"]*" data-plugin="([^"]+)">([\s\S]*?)<\/tr>/g)) {
    const counts = [...row[2]!.matchAll(/data-worker="(\d+)"[\s\S]*?traps (\d+)/g)].map((m) => Number(m[2]));
    traps.set(row[1]!, counts);
  }
  return { requests, traps };
}

const P = (name: string) => `istio-system.${name}`;

describe('hostile plugins under load on two workers', () => {
  let upstream: Upstream;
  let proxy: RunningProxy;
  before(async () => {
    upstream = await startEmbeddedHttpbin();
    for (const k of Object.keys(routes) as RouteName[]) ports[k] = await freePort();
    proxy = await startProxy(
      [
        '-c',
        tempConfig({ 'gw.yaml': config(upstream.port) }),
        '--concurrency',
        String(WORKERS),
        '--wasm-deadline',
        `${DEADLINE_MS}ms`,
        '--wasm-memory-limit',
        '64Mi',
        '--access-log',
        'off',
        // The well-behaved plugin logs every request at info.
        '--component-log-level',
        'wasm:warn',
      ],
      30_000,
      { gatewayPorts: true },
    );
    await proxy.waitForLog(`${WORKERS} worker(s) started`);
    for (const k of Object.keys(routes) as RouteName[]) await proxy.waitForLog(`listening on 127.0.0.1:${ports[k]}:`);
  });
  after(async () => {
    await proxy?.stop();
    await upstream?.close();
  });

  test('bystanders never fail, hostile requests get their failStrategy, both workers serve, counters move', {
    timeout: 90_000,
  }, async (t) => {
    const admin = `http://127.0.0.1:${proxy.adminPort}`;
    // Before the storm: the well-behaved plugin runs (it adds x-wat), and no counter has moved.
    const warm = await hit(ports.good, routes.good.headers);
    assert.equal(warm.status, 200);
    assert.equal(warm.headers['x-wat'], '1');
    const baseline = await (await fetch(`${admin}/stats/prometheus`)).text();
    for (const metric of ['traps_total', 'vm_restarts_total', 'fail_close_total', 'fail_open_total']) {
      const values = byPlugin(baseline, `wasmgate_wasm_plugin_${metric}`);
      assert.equal(values.size, 6, `${metric} for the six plugins`);
      assert.deepEqual([...new Set(values.values())], [0], `${metric} starts at 0`);
    }

    const started = performance.now();
    const loads = Promise.all([load('bystander', 8), load('good', 4)]);
    // The hostile requests, one kind after the other every 60 ms, each on a fresh connection,
    // for as long as the load runs (and not awaited one by one: they overlap the load and each other).
    const hostile: { kind: RouteName; answer: ReturnType<typeof hit> }[] = [];
    const kinds: RouteName[] = ['spin', 'trap', 'bomb', 'trapOpen', 'wrongPhase'];
    for (let i = 0; performance.now() - started < (LOAD_SECONDS - 1) * 1000; i++) {
      const kind = kinds[i % kinds.length]!;
      const answer = hit(ports[kind], routes[kind].headers);
      answer.catch(() => {}); // awaited below
      hostile.push({ kind, answer });
      await new Promise((r) => setTimeout(r, 60));
    }
    const [bystander, good] = await loads;
    const answers = await Promise.all(hostile.map(async (h) => ({ kind: h.kind, ...(await h.answer) })));
    const count = (kind: RouteName) => answers.filter((a) => a.kind === kind).length;

    for (const [name, r] of [
      ['bystander', bystander],
      ['good', good],
    ] as const)
      t.diagnostic(
        `${name}: ${r.requests.total} requests, ${r['2xx']} 2xx, latency p50 ${r.latency.p50} ms, p99 ${r.latency.p99} ms, max ${r.latency.max} ms`,
      );
    t.diagnostic(`hostile: ${kinds.map((k) => `${count(k)} ${k}`).join(', ')}`);

    // Bystanders: every request answered 2xx, none failed.
    for (const r of [bystander, good]) {
      assert.ok(r.requests.total > 100, `only ${r.requests.total} requests`);
      assert.equal(r.errors, 0, `${r.errors} errors`);
      assert.equal(r.timeouts, 0, `${r.timeouts} timeouts`);
      assert.equal(r.non2xx, 0, `${r.non2xx} non-2xx answers`);
      assert.equal(r['2xx'], r.requests.total);
    }

    // Hostile requests: what their failStrategy gives.
    for (const a of answers) {
      const what = `${a.kind} answered ${a.status} ${JSON.stringify(a.body.slice(0, 80))}`;
      if (a.kind === 'spin' || a.kind === 'bomb' || a.kind === 'trap') assert.equal(a.status, 503, what);
      else if (a.kind === 'trapOpen') {
        // FAIL_OPEN: the trapped plugin is skipped, the request goes through without its header.
        assert.equal(a.status, 200, what);
        assert.equal(a.headers['x-wat'], undefined, what);
      } else {
        assert.equal(a.status, 200, what);
        assert.equal(a.body, 'CBBA/CCBAB', what);
      }
      if (a.kind === 'spin') assert.ok(a.ms < DEADLINE_MS * 4 + 2000, `a loop was stopped after ${a.ms} ms`);
    }
    for (const k of kinds) assert.ok(count(k) >= 5, `${count(k)} ${k} requests`);

    // The process survived, and each port still works for a request that does not misbehave.
    assert.equal(proxy.child.exitCode, null);
    assert.equal((await fetch(`${admin}/ready`)).status, 200);
    const after = await hit(ports.spin, {});
    assert.equal(after.status, 200);
    assert.equal(after.headers['x-runaway'], 'ok');
    assert.equal((await hit(ports.bomb, {})).status, 200);
    assert.equal((await hit(ports.bystander, {})).status, 200);

    // Counters: every loop and every bomb trapped and its VM was recreated; the FAIL_RELOAD trap
    // plugin trapped on each reload and was reloaded; FAIL_OPEN trapped once per worker and then
    // skipped; the well-behaved and wrong-phase plugins never trapped.
    const prom = await (await fetch(`${admin}/stats/prometheus`)).text();
    const traps = byPlugin(prom, 'wasmgate_wasm_plugin_traps_total');
    const restarts = byPlugin(prom, 'wasmgate_wasm_plugin_vm_restarts_total');
    const failClose = byPlugin(prom, 'wasmgate_wasm_plugin_fail_close_total');
    const failOpen = byPlugin(prom, 'wasmgate_wasm_plugin_fail_open_total');
    t.diagnostic(
      `traps ${JSON.stringify(Object.fromEntries(traps))}; restarts ${JSON.stringify(Object.fromEntries(restarts))}`,
    );
    for (const k of ['spin', 'bomb'] as const) {
      // The request after the storm recreated the last stopped VM of the worker it reached.
      assert.equal(traps.get(P(k)), count(k), `${k}: one trap per hostile request`);
      assert.ok(restarts.get(P(k))! >= count(k) - WORKERS + 1, `${k}: ${restarts.get(P(k))} restarts`);
      assert.ok(restarts.get(P(k))! <= count(k), `${k}: ${restarts.get(P(k))} restarts`);
    }
    assert.ok(traps.get(P('trap'))! >= WORKERS, `trap: ${traps.get(P('trap'))} traps`);
    assert.ok(restarts.get(P('trap'))! >= 1, `trap: ${restarts.get(P('trap'))} reloads`);
    assert.ok(traps.get(P('trap'))! <= count('trap'));
    // Each 503 is counted: the trapped requests and, on the FAIL_RELOAD plugin, those that came
    // during the reload backoff and found no VM.
    for (const k of ['spin', 'bomb', 'trap'] as const)
      assert.equal(failClose.get(P(k)), count(k), `${k}: 503s counted`);
    assert.equal(traps.get(P('trap-open')), WORKERS, 'trap-open: one trap per worker, then skipped');
    assert.equal(failOpen.get(P('trap-open')), count('trapOpen'), 'trap-open: every request skipped the plugin');
    assert.equal(traps.get(P('good')), 0);
    assert.equal(restarts.get(P('good')), 0);
    assert.equal(traps.get(P('wrong-phase')), 0);

    // Both workers served: per-worker request counts (admin page), each beyond what the hostile
    // requests alone could explain, and per-worker traps for the plugins hit on fresh connections.
    const page = perWorker(await (await fetch(`${admin}/`)).text());
    t.diagnostic(
      `requests by worker: ${JSON.stringify(Object.fromEntries(page.requests))}; traps by worker: ${JSON.stringify(Object.fromEntries(page.traps))}`,
    );
    assert.equal(page.requests.size, WORKERS);
    for (const [w, n] of page.requests) assert.ok(n > answers.length, `worker ${w} served ${n} requests`);
    for (const k of ['spin', 'bomb', 'trap-open'])
      assert.deepEqual(
        page.traps.get(P(k))!.map((n) => n > 0),
        [true, true],
        `${k}: trapped on both workers (${page.traps.get(P(k))})`,
      );
    const dump = (await (await fetch(`${admin}/config_dump`)).json()) as {
      workers: number;
      wasm_plugins: { name: string; workers: { worker: number; state: string }[] }[];
    };
    assert.equal(dump.workers, WORKERS);
    for (const name of ['good', 'wrong-phase'])
      assert.deepEqual(
        dump.wasm_plugins.find((p) => p.name === P(name))!.workers.map((w) => w.state),
        ['ACTIVE', 'ACTIVE'],
        name,
      );
  });
});
