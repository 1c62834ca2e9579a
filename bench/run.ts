// Load benchmark: wasmgate against the proxies users would pick instead, with and without plugins,
// side by side in one run (issue P9). Loopback only, bounded in time, stops everything it started.
//
//   npm run bench                 full run (about 15 minutes; stops itself at 20): every system, every workload, 2-3 rounds
//   npm run bench -- --quick      CI smoke: undici proxy, wasmgate 0 plugins and + 1 Rust plugin,
//                                 small GET; exits 1 if wasmgate + 1 Rust plugin < 0.6x the undici proxy
//   options: --rounds N  --duration S  --only system,system,...  --workloads small,64k,post1m,noka  --no-write
//
// Pinning (taskset, when there are at least 2 cores): the proxy under test on core 0, the upstream
// and the load generator (autocannon; wrk too when installed) on the last core. Multi-worker
// wasmgate cannot be pinned to one core: it runs unpinned, and so do its 1-worker comparison, the
// upstream and the load generator while these two are measured (everything shares every core).
// CPU per request = the proxy's utime+stime (/proc/<pid>/stat, every thread and child process)
// over the measured window / 2xx responses; peak RSS = VmHWM summed over its processes, reset
// before each measured window through /proc/<pid>/clear_refs.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const NODE = process.execPath;
const args = process.argv.slice(2);
const flag = (name: string) => args.includes(name);
const opt = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const QUICK = flag('--quick');
const CONNECTIONS = 50;
const DURATION = Number(opt('--duration') ?? (QUICK ? 3 : 4));
/** Warm-up before each later workload on a process already warmed up (seconds). */
const WARMUP = 1;
/**
 * A freshly started process is warmed up in 1 s steps until its CPU per request stops falling:
 * V8 compiles the hot path over several seconds, and N workers compile it N times over, each
 * seeing 1/N of the requests. At least WARMUP_MIN steps, at most WARMUP_MAX.
 */
const WARMUP_MIN = 3;
const WARMUP_MAX = QUICK ? 5 : 12;
const ROUNDS = Number(opt('--rounds') ?? (QUICK ? 2 : 2));
/** Extra rounds of the small GET (the targets are read from it). */
const SMALL_ROUNDS = Number(opt('--rounds') ?? (QUICK ? 2 : 3));
const WRITE = !QUICK && !flag('--no-write');
const DEADLINE_MS = (QUICK ? 110 : 20 * 60) * 1000;
const started = Date.now();

// ---------------------------------------------------------------------------------------------
// Processes: every child gets its own process group, killed on exit, error, Ctrl-C.

const children = new Set<ChildProcess>();
/** The last output of each child, for error messages. */
const tails = new WeakMap<ChildProcess, () => string>();
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {}
  }
}
process.on('exit', () => {
  for (const c of children) killGroup(c, 'SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    process.stderr.write(`\nbench: ${sig}, stopping everything it started\n`);
    process.exit(130);
  });
}

const CORES = availableParallelism();
const TASKSET = CORES >= 2 && spawnSync('taskset', ['-V']).status === 0;
const LOAD_CPU = String(CORES - 1);
const PROXY_CPU = '0';
const ALL_CPUS = `0-${CORES - 1}`;
/**
 * Where the load generator runs: LOAD_CPU, or every core while a floating system is measured.
 * The upstream follows it (see floatLoad()).
 */
let loadCpus = LOAD_CPU;

/**
 * Starts a child on `cpus`; null: on every core. The bench itself is pinned to LOAD_CPU and a
 * child inherits its parent's affinity, so "unpinned" must be said explicitly.
 */
function start(cmd: string, argv: string[], cpus: string | null, opts: { cwd?: string } = {}): ChildProcess {
  const [file, list] = TASKSET ? ['taskset', ['-c', cpus ?? ALL_CPUS, cmd, ...argv]] : [cmd, argv];
  const child = spawn(file, list, { cwd: opts.cwd ?? ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  children.add(child);
  child.on('exit', () => children.delete(child));
  let out = '';
  const keep = (d: Buffer) => {
    out = (out + d).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  tails.set(child, () => out);
  return child;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise<void>((r) => child.once('exit', () => r()));
  killGroup(child, 'SIGTERM');
  const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 3000);
  await done;
  clearTimeout(timer);
  children.delete(child);
}

/** Resolves with the first match of `re` in the child's stdout+stderr. */
function waitFor(child: ChildProcess, re: RegExp, what: string, ms = 30_000): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`${what}: not ready after ${ms} ms:\n${text.slice(-2000)}`)), ms);
    const on = (d: Buffer) => {
      text += d;
      if (text.length > 100_000) text = text.slice(-50_000);
      const m = re.exec(text);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    };
    child.stdout?.on('data', on);
    child.stderr?.on('data', on);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code}):\n${text.slice(-2000)}`));
    });
  });
}

function run(cmd: string, argv: string[], cpus: string | null): Promise<string> {
  const child = start(cmd, argv, cpus);
  let out = '';
  let err = '';
  child.stdout?.on('data', (d) => {
    out += d;
  });
  child.stderr?.on('data', (d) => {
    err += d;
  });
  return new Promise((resolve, reject) =>
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}: ${err}`)))),
  );
}

// ---------------------------------------------------------------------------------------------
// /proc: CPU time and peak RSS of a process tree.

const TICK = Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim()) || 100;

function tree(root: number): number[] {
  const parent = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {}
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) for (const [pid, pp] of parent) if (pp === out[i]) out.push(pid);
  return out;
}

/** utime + stime of every process in the tree (all threads), in microseconds. */
function cpuMicros(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]); // fields 14 and 15 of stat(5)
    } catch {}
  }
  return (ticks * 1e6) / TICK;
}

function resetPeak(pids: number[]): void {
  for (const pid of pids) {
    try {
      writeFileSync(`/proc/${pid}/clear_refs`, '5');
    } catch {}
  }
}

function peakRssMiB(pids: number[]): number {
  let kb = 0;
  for (const pid of pids) {
    try {
      const m = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      kb += Number(m?.[1] ?? 0);
    } catch {}
  }
  return kb / 1024;
}

// ---------------------------------------------------------------------------------------------
// Systems under test.

interface Running {
  port: number;
  child: ChildProcess;
}
interface System {
  id: string;
  label: string;
  /** core(s) for the proxy; null: unpinned */
  cpus: string | null;
  /**
   * The proxy, the upstream and the load generator all float over every core (the multi-worker
   * comparison: workers can only gain from cores the load generator is not pinned away from).
   */
  float?: boolean;
  start(upstream: string): Promise<Running>;
}

let upstreamPort = 0;
const tmp = mkdtempSync(join(tmpdir(), 'wasmgate-bench-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

async function nodeServer(script: string, cpus: string | null, upstream: string): Promise<Running> {
  const child = start(NODE, [join(ROOT, script), '0', upstream], cpus);
  const m = await waitFor(child, /listening (\d+)/, script);
  return { port: Number(m[1]), child };
}

function plugin(name: string): string {
  return `file://${join(ROOT, 'plugins', name, 'plugin.wasm')}`;
}
function wasmPlugin(o: { name: string; url: string; phase?: string; priority?: number; extra?: string }): string {
  return `apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: ${o.name}
  namespace: istio-system
spec:
  selector:
    matchLabels:
      istio: ingressgateway
  url: ${o.url}
${o.phase ? `  phase: ${o.phase}\n` : ''}${o.priority !== undefined ? `  priority: ${o.priority}\n` : ''}${o.extra ?? ''}`;
}
const RUST = wasmPlugin({ name: 'header-authorization', url: plugin('header-authorization-rust'), phase: 'AUTHN' });
const GO = wasmPlugin({ name: 'header-authorization-go', url: plugin('header-authorization-go'), phase: 'AUTHN' });
const AS = wasmPlugin({
  name: 'add-header-as',
  url: plugin('add-header-as'),
  phase: 'STATS',
  extra: '  pluginName: add_header\n  pluginConfig:\n    header: x-as\n    value: bench\n',
});
const marker = (name: string, priority: number) =>
  wasmPlugin({ name, url: plugin('chain-marker-go'), phase: 'AUTHZ', priority, extra: '  pluginConfig: {}\n' });
const AUTHZ = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-admin
  namespace: istio-system
spec:
  selector:
    matchLabels:
      istio: ingressgateway
  action: DENY
  rules:
    - to:
        - operation:
            paths: ["/admin", "/admin/*"]
`;

function wasmgate(
  id: string,
  label: string,
  docs: string[],
  workers: number,
  pinned: boolean,
  cpus: string | null = PROXY_CPU,
  wasmLog = 'warn',
): System {
  return {
    id,
    label,
    cpus: pinned ? cpus : null,
    float: !pinned,
    async start(upstream) {
      const dir = join(tmp, id);
      mkdirSync(dir, { recursive: true });
      if (docs.length) writeFileSync(join(dir, 'bench.yaml'), docs.join('---\n'));
      const child = start(
        NODE,
        [
          join(ROOT, 'bin/wasmgate.js'),
          'run',
          '-c',
          dir,
          '--host',
          '127.0.0.1',
          '--port',
          '0',
          '--admin-port=-1',
          '--health-port=-1',
          '--access-log',
          'off',
          '--no-watch',
          '--cache-dir',
          join(tmp, 'cache'),
          '--upstream',
          upstream,
          '--concurrency',
          String(workers),
          '--component-log-level',
          `wasm:${wasmLog}`,
        ],
        pinned ? cpus : null,
      );
      const m = await waitFor(child, /listening on [^:\s]+:(\d+)/, `wasmgate ${id}`);
      // "listening on" is logged once every worker has started.
      return { port: Number(m[1]), child };
    },
  };
}

function nginxBinary(): string | null {
  for (const p of ['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx', '/usr/local/bin/nginx'])
    if (existsSync(p)) return p;
  return null;
}

function ensureNginx(): string | null {
  const have = nginxBinary();
  if (have) return have;
  if (process.getuid?.() !== 0 || spawnSync('apt-get', ['--version']).status !== 0) return null;
  process.stderr.write('bench: installing Debian nginx (apt-get install -y nginx-light)\n');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const pkg of ['nginx-light', 'nginx']) {
    let r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', pkg], { env, stdio: 'ignore' });
    if (r.status !== 0) {
      spawnSync('apt-get', ['update'], { env, stdio: 'ignore' });
      r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', pkg], { env, stdio: 'ignore' });
    }
    // Debian starts the service on install; the bench runs its own instance, not the service.
    if (r.status === 0) {
      spawnSync('service', ['nginx', 'stop'], { stdio: 'ignore' });
      return nginxBinary();
    }
  }
  return null;
}

let nginxVersion = '';
function nginx(bin: string): System {
  return {
    id: 'nginx',
    label: 'nginx, 1 worker, upstream keep-alive',
    cpus: PROXY_CPU,
    async start(upstream) {
      const dir = join(tmp, 'nginx');
      mkdirSync(join(dir, 'logs'), { recursive: true });
      const port = await freePort();
      const u = new URL(upstream);
      writeFileSync(
        join(dir, 'nginx.conf'),
        `daemon off;
master_process on;
worker_processes 1;
user root;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  client_max_body_size 4m;
  upstream backend { server ${u.hostname}:${u.port}; keepalive 128; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:${port} reuseport backlog=4096;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_request_buffering off;
      proxy_buffer_size 16k;
      proxy_buffers 16 16k;
    }
  }
}
`,
      );
      const child = start(bin, ['-p', dir, '-c', join(dir, 'nginx.conf')], PROXY_CPU);
      const t0 = Date.now();
      for (;;) {
        if (child.exitCode !== null) throw new Error('nginx exited; see its error log');
        if (await reachable(port)) break;
        if (Date.now() - t0 > 10_000) throw new Error('nginx did not start');
        await sleep(50);
      }
      return { port, child };
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}
async function reachable(port: number): Promise<boolean> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/small`, { headers: { allow: 'true' } });
    await r.arrayBuffer();
    return r.ok;
  } catch {
    return false;
  }
}

const MULTI = Math.max(2, CORES);
// With more cores than workers + 1, pin N workers to their own cores; on 2 cores they cannot be.
const multiCpus = CORES - 1 >= MULTI ? `0-${MULTI - 1}` : null;

const ALL: System[] = [
  {
    id: 'upstream',
    label: 'upstream alone (node:http)',
    cpus: LOAD_CPU,
    start: async () => {
      const child = [...children].find((c) => c.pid === upstreamPid);
      if (!child) throw new Error('no upstream');
      return { port: upstreamPort, child };
    },
  },
  // nginx is added below when it is installed (or installable).
  {
    id: 'undici',
    label: 'minimal undici Pool proxy',
    cpus: PROXY_CPU,
    start: (u) => nodeServer('bench/load/undici-proxy.ts', PROXY_CPU, u),
  },
  {
    id: 'http-proxy-3',
    label: 'http-proxy-3 2.0.1 (keep-alive agent)',
    cpus: PROXY_CPU,
    start: (u) => nodeServer('bench/load/http-proxy-3.ts', PROXY_CPU, u),
  },
  wasmgate('wg-0', 'wasmgate, 0 plugins', [], 1, true),
  wasmgate('wg-rust', 'wasmgate + 1 Rust plugin', [RUST], 1, true),
  wasmgate('wg-rust-log', 'wasmgate + 1 Rust plugin, its logs on (wasm:info)', [RUST], 1, true, PROXY_CPU, 'info'),
  wasmgate('wg-go', 'wasmgate + 1 Go plugin', [GO], 1, true),
  wasmgate('wg-as', 'wasmgate + 1 AssemblyScript plugin', [AS], 1, true),
  wasmgate('wg-5', 'wasmgate + 5 plugins', [RUST, GO, marker('marker-a', 20), marker('marker-b', 10), AS], 1, true),
  wasmgate('wg-authz', 'wasmgate + built-in authz (+ stats)', [AUTHZ], 1, true),
  wasmgate('wg-0-free', 'wasmgate, 0 plugins, 1 worker, unpinned', [], 1, false),
  wasmgate(
    'wg-0-multi',
    `wasmgate, 0 plugins, ${MULTI} workers${multiCpus ? '' : ', unpinned'}`,
    [],
    MULTI,
    !!multiCpus,
    multiCpus,
  ),
];

// ---------------------------------------------------------------------------------------------
// Workloads and load generators.

interface Workload {
  id: string;
  label: string;
  path: string;
  method: 'GET' | 'POST';
  bodyBytes?: number;
  close?: boolean;
  rounds: number;
}
const WORKLOADS: Workload[] = [
  { id: 'small', label: 'small GET (~100 B)', path: '/small', method: 'GET', rounds: SMALL_ROUNDS },
  { id: '64k', label: 'GET, 64 KiB response', path: '/64k', method: 'GET', rounds: ROUNDS },
  { id: 'post1m', label: 'POST, 1 MiB body', path: '/post', method: 'POST', bodyBytes: 1 << 20, rounds: ROUNDS },
  { id: 'noka', label: 'small GET, keep-alive off', path: '/small', method: 'GET', close: true, rounds: ROUNDS },
];

interface Load {
  requests: number;
  ok: number;
  duration: number;
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

async function autocannon(port: number, w: Workload, seconds: number): Promise<Load> {
  const o = {
    url: `http://127.0.0.1:${port}${w.path}`,
    connections: CONNECTIONS,
    duration: seconds,
    method: w.method,
    bodyBytes: w.bodyBytes,
    close: w.close,
    headers: { allow: 'true', ...(w.bodyBytes ? { 'content-type': 'application/octet-stream' } : {}) },
  };
  const out = await run(NODE, [join(ROOT, 'bench/load/autocannon.ts'), JSON.stringify(o)], loadCpus);
  return JSON.parse(out.trim().split('\n').pop() ?? '{}') as Load;
}

const WRK = spawnSync('wrk', ['-v']).stdout?.toString().includes('wrk') ?? false;
/** wrk, small GET only (when installed). */
async function wrk(port: number, seconds: number): Promise<Load> {
  const out = await run(
    'wrk',
    [
      '-t1',
      `-c${CONNECTIONS}`,
      `-d${Math.max(1, Math.round(seconds))}s`,
      '--latency',
      '-H',
      'allow: true',
      `http://127.0.0.1:${port}/small`,
    ],
    LOAD_CPU,
  );
  const ms = (v: string, unit: string) => Number(v) * (unit === 'us' ? 1e-3 : unit === 's' ? 1e3 : 1);
  const lat = (q: string) => {
    const m = new RegExp(`${q}%\\s+([\\d.]+)(us|ms|s)`).exec(out);
    return m ? ms(m[1] ?? '0', m[2] ?? 'ms') : 0;
  };
  const total = Number(/(\d+) requests in ([\d.]+)s/.exec(out)?.[1] ?? 0);
  const dur = Number(/(\d+) requests in ([\d.]+)s/.exec(out)?.[2] ?? seconds);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  return {
    requests: total,
    ok: total - non2xx,
    duration: dur,
    rps: (total - non2xx) / dur,
    p50: lat('50'),
    p99: lat('99'),
    non2xx,
    errors: 0,
  };
}

// ---------------------------------------------------------------------------------------------
// Measurement.

interface Sample extends Load {
  cpuUsPerReq: number;
  cpuBusy: number;
  rssMiB: number;
  /** Seconds of load before this window. */
  warmupS?: number;
}
type Cell = { system: string; workload: string; samples: Sample[] };
const cells = new Map<string, Cell>();
const key = (s: string, w: string) => `${s}|${w}`;

/**
 * Load before a measured window. A fresh process gets 1 s steps until two steps in a row are no
 * more than 3% below the best step before them (its CPU per request has stopped falling: JIT
 * compilation done), between WARMUP_MIN and WARMUP_MAX steps; later workloads on the same process
 * get WARMUP seconds. Returns the seconds.
 */
async function warmUp(r: Running, w: Workload, fresh: boolean): Promise<number> {
  if (!fresh) {
    await autocannon(r.port, w, WARMUP);
    return WARMUP;
  }
  let best = Number.POSITIVE_INFINITY;
  let flat = 0;
  for (let step = 1; ; step++) {
    const pids = tree(r.child.pid ?? 0);
    const c0 = cpuMicros(pids);
    const load = await autocannon(r.port, w, 1);
    const perReq = (cpuMicros(tree(r.child.pid ?? 0)) - c0) / Math.max(1, load.ok);
    flat = perReq >= best * 0.97 ? flat + 1 : 0;
    best = Math.min(best, perReq);
    if (step >= WARMUP_MAX || (step >= WARMUP_MIN && flat >= 2)) return step;
  }
}

async function measure(sys: System, r: Running, w: Workload, gen: 'ac' | 'wrk'): Promise<Sample> {
  const pids = tree(r.child.pid ?? 0);
  resetPeak(pids);
  const c0 = cpuMicros(pids);
  const t0 = process.hrtime.bigint();
  const load = gen === 'wrk' ? await wrk(r.port, DURATION) : await autocannon(r.port, w, DURATION);
  const wall = Number(process.hrtime.bigint() - t0) / 1000;
  const all = tree(r.child.pid ?? 0);
  const cpu = cpuMicros(all) - c0;
  if (load.ok === 0 || load.non2xx > load.requests * 0.01 || r.child.exitCode !== null)
    throw new Error(
      `${sys.id} ${w.id}: ${load.ok} ok, ${load.non2xx} non-2xx, ${load.errors} errors` +
        `${r.child.exitCode !== null ? `; it exited (${r.child.exitCode})` : ''}; its last output:\n${tails.get(r.child)?.() ?? ''}`,
    );
  return { ...load, cpuUsPerReq: cpu / load.ok, cpuBusy: cpu / wall, rssMiB: peakRssMiB(all) };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] ?? 0) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
};
interface Summary {
  rps: number;
  p50: number;
  p99: number;
  cpuUsPerReq: number;
  cpuBusy: number;
  rssMiB: number;
  rounds: number;
}
function summary(system: string, workload: string): Summary | undefined {
  const c = cells.get(key(system, workload));
  if (!c?.samples.length) return undefined;
  const f = (k: keyof Sample) => median(c.samples.map((s) => s[k] as number));
  return {
    rps: f('rps'),
    p50: f('p50'),
    p99: f('p99'),
    cpuUsPerReq: f('cpuUsPerReq'),
    cpuBusy: f('cpuBusy'),
    rssMiB: Math.max(...c.samples.map((s) => s.rssMiB)),
    rounds: c.samples.length,
  };
}

// ---------------------------------------------------------------------------------------------
// Main.

let upstreamPid = 0;
/** Moves the load generator and the upstream (every thread) to every core, or back to LOAD_CPU. */
function floatLoad(on: boolean): void {
  const cpus = on ? ALL_CPUS : LOAD_CPU;
  if (!TASKSET || loadCpus === cpus) return;
  loadCpus = cpus;
  if (upstreamPid) execFileSync('taskset', ['-a', '-cp', cpus, String(upstreamPid)], { stdio: 'ignore' });
}
async function main(): Promise<number> {
  if (TASKSET) execFileSync('taskset', ['-cp', LOAD_CPU, String(process.pid)], { stdio: 'ignore' });
  if (!existsSync(join(ROOT, 'dist/cli.js'))) throw new Error('dist/cli.js is missing: run `npm run build` first');
  const only = opt('--only')?.split(',');
  let systems = QUICK && !only ? ALL.filter((s) => ['undici', 'wg-0', 'wg-rust'].includes(s.id)) : [...ALL];
  let workloads = QUICK ? WORKLOADS.filter((w) => w.id === 'small') : WORKLOADS;
  if (!QUICK || only?.includes('nginx')) {
    const bin = ensureNginx();
    if (bin) {
      nginxVersion = spawnSync(bin, ['-v']).stderr.toString().trim().replace('nginx version: ', '');
      const n = nginx(bin);
      n.label = `${nginxVersion}, 1 worker, upstream keep-alive`;
      systems.splice(1, 0, n);
    } else process.stderr.write('bench: nginx is not installed and cannot be installed here; skipping it\n');
  }
  if (only) systems = systems.filter((s) => only.includes(s.id));
  const wl = opt('--workloads')?.split(',');
  if (wl) workloads = WORKLOADS.filter((w) => wl.includes(w.id));
  const up = start(NODE, [join(ROOT, 'bench/load/upstream.ts'), '0'], LOAD_CPU);
  upstreamPid = up.pid ?? 0;
  upstreamPort = Number((await waitFor(up, /listening (\d+)/, 'upstream'))[1]);
  const upstream = `http://127.0.0.1:${upstreamPort}`;
  const gens: ('ac' | 'wrk')[] = WRK ? ['ac', 'wrk'] : ['ac'];
  process.stderr.write(
    `bench: ${systems.length} systems x ${workloads.length} workloads, ${DURATION}s runs, ${CORES} cores, ` +
      `${TASKSET ? `proxy on core ${PROXY_CPU}, upstream + load generator on core ${LOAD_CPU}` : 'no pinning'}` +
      `${WRK ? ', wrk too' : ''}\n`,
  );
  const maxRounds = Math.max(...workloads.map((w) => w.rounds));
  for (let round = 0; round < maxRounds; round++) {
    for (const sys of systems) {
      const todo = workloads.filter((w) => w.rounds > round);
      if (!todo.length) continue;
      if (Date.now() - started > DEADLINE_MS) {
        process.stderr.write('bench: time budget spent; reporting what was measured\n');
        break;
      }
      floatLoad(sys.float === true);
      const r = await sys.start(upstream);
      try {
        let fresh = true;
        for (const w of todo) {
          for (const gen of gens) {
            if (gen === 'wrk' && w.id !== 'small') continue;
            const wid = gen === 'wrk' ? 'small-wrk' : w.id;
            const warm = await warmUp(r, w, fresh);
            fresh = false;
            const s = await measure(sys, r, w, gen);
            s.warmupS = warm;
            const c = cells.get(key(sys.id, wid)) ?? { system: sys.id, workload: wid, samples: [] };
            c.samples.push(s);
            cells.set(key(sys.id, wid), c);
            process.stderr.write(
              `  [${round + 1}/${maxRounds}] ${sys.id.padEnd(12)} ${wid.padEnd(9)} ${s.rps.toFixed(0).padStart(6)} req/s  ` +
                `p50 ${s.p50.toFixed(2)} p99 ${s.p99.toFixed(2)} ms  ${s.cpuUsPerReq.toFixed(1)} us/req  ` +
                `${(s.cpuBusy * 100).toFixed(0)}% cpu  ${s.rssMiB.toFixed(0)} MiB  (warm-up ${warm} s)\n`,
            );
          }
        }
      } finally {
        if (sys.id !== 'upstream') await stop(r.child);
        floatLoad(false);
      }
    }
  }
  await stop(up);

  const report = buildReport(systems, workloads, WRK);
  process.stdout.write(`${report.markdown}\n`);
  if (WRITE) {
    const date = new Date().toISOString().slice(0, 10);
    const dir = join(ROOT, 'bench/results');
    writeFileSync(join(dir, `${date}.json`), `${JSON.stringify(report.json, null, 2)}\n`);
    writeFileSync(join(dir, `${date}.md`), `${report.markdown}\n`);
    writeFileSync(join(dir, `${date}.svg`), report.svg);
    process.stderr.write(
      `bench: wrote bench/results/${date}.{json,md,svg} in ${((Date.now() - started) / 1000).toFixed(0)} s\n`,
    );
  }
  if (QUICK) {
    const rust = summary('wg-rust', 'small');
    const undici = summary('undici', 'small');
    const ratio = rust && undici ? rust.rps / undici.rps : 0;
    const ok = ratio >= 0.6;
    process.stdout.write(
      `\nguard: wasmgate + 1 Rust plugin / minimal undici proxy = ${ratio.toFixed(2)} (floor 0.60): ${ok ? 'ok' : 'FAILED'}\n`,
    );
    return ok ? 0 : 1;
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Report: markdown tables, targets, JSON, SVG chart.

interface Target {
  ratio: string;
  target: string;
  measured: string;
  met: boolean | null;
}

function buildReport(systems: System[], workloads: Workload[], withWrk: boolean) {
  const label = new Map(systems.map((s) => [s.id, s.label]));
  const wids = [...workloads.map((w) => w.id), ...(withWrk ? ['small-wrk'] : [])];
  const wlabel = (id: string) =>
    id === 'small-wrk' ? 'small GET (~100 B), wrk' : (workloads.find((w) => w.id === id)?.label ?? id);
  const lines: string[] = [];
  const when = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  lines.push(
    `Measured ${when} on ${CORES} cores (${cpuModel()}), Node ${process.versions.node}, loopback, ${CONNECTIONS} connections, ` +
      `${DURATION} s per run after a warm-up (a fresh process: until its CPU per request stops falling, ${WARMUP_MIN}-${WARMUP_MAX} s; then ${WARMUP} s per workload), medians of ${SMALL_ROUNDS} rounds (small GET) / ${ROUNDS} (others); ` +
      `load generator: autocannon${withWrk ? ' (and wrk)' : ''}. ` +
      (TASKSET
        ? `Pinned with taskset: proxy on core ${PROXY_CPU}, upstream + load generator on core ${LOAD_CPU}; in "unpinned" rows the proxy, the upstream and the load generator all float over all cores.`
        : 'Not pinned (taskset missing or 1 core).') +
      ' CPU = the proxy\'s own utime+stime per 2xx response (all threads and processes); "busy" = its share of one core.',
  );
  const base = ['undici', 'http-proxy-3', 'nginx'].filter((b) => label.has(b));
  for (const wid of wids) {
    lines.push('', `### ${wlabel(wid)}`, '');
    lines.push(
      `| system | req/s | p50 ms | p99 ms | CPU µs/req | busy | peak RSS MiB | ${base.map((b) => `× ${b}`).join(' | ')} |`,
    );
    lines.push(`|---|---:|---:|---:|---:|---:|---:|${base.map(() => '---:').join('|')}|`);
    for (const s of systems) {
      const m = summary(s.id, wid);
      if (!m) continue;
      const ratios = base.map((b) => {
        const x = summary(b, wid);
        return s.id === 'upstream' || !x ? '' : (m.rps / x.rps).toFixed(2);
      });
      lines.push(
        `| ${s.label} | ${m.rps.toFixed(0)} | ${m.p50.toFixed(2)} | ${m.p99.toFixed(2)} | ` +
          `${m.cpuUsPerReq.toFixed(1)} | ${(m.cpuBusy * 100).toFixed(0)}% | ${m.rssMiB.toFixed(0)} | ${ratios.join(' | ')} |`,
      );
    }
  }
  const targets = computeTargets();
  lines.push('', '### Targets (issue P9; ratios from this run, small GET)', '');
  lines.push('| ratio | target | measured | |', '|---|---|---|---|');
  for (const t of targets)
    lines.push(
      `| ${t.ratio} | ${t.target} | ${t.measured} | ${t.met === null ? 'not measured' : t.met ? 'met' : '**not met**'} |`,
    );
  const json = {
    date: when,
    machine: {
      cores: CORES,
      cpu: cpuModel(),
      node: process.versions.node,
      nginx: nginxVersion || null,
      taskset: TASKSET,
    },
    settings: {
      connections: CONNECTIONS,
      duration: DURATION,
      warmup: { fresh: [WARMUP_MIN, WARMUP_MAX], later: WARMUP },
      rounds: ROUNDS,
      smallRounds: SMALL_ROUNDS,
      quick: QUICK,
    },
    systems: systems.map((s) => ({ id: s.id, label: s.label, cpus: s.cpus })),
    workloads: wids.map((id) => ({ id, label: wlabel(id) })),
    results: [...cells.values()].map((c) => ({ ...c, median: summary(c.system, c.workload) })),
    targets,
  };
  return { markdown: lines.join('\n'), json, svg: chart(systems, wids, wlabel) };
}

function computeTargets(): Target[] {
  const s = (id: string) => summary(id, 'small');
  const ratio = (a: string, b: string, k: 'rps' | 'cpuUsPerReq' = 'rps') => {
    const x = s(a);
    const y = s(b);
    return x && y ? x[k] / y[k] : null;
  };
  const t = (
    name: string,
    target: string,
    v: number | null,
    ok: (v: number) => boolean,
    fmt = (v: number) => `${v.toFixed(2)}×`,
  ) => ({
    ratio: name,
    target,
    measured: v === null ? '—' : fmt(v),
    met: v === null ? null : ok(v),
  });
  const diff = (a: string, b: string, k: 'p99' | 'cpuUsPerReq') => {
    const x = s(a);
    const y = s(b);
    return x && y ? x[k] - y[k] : null;
  };
  const multiRps = ratio('wg-0-multi', 'wg-0-free');
  const multiCpu = ratio('wg-0-multi', 'wg-0-free', 'cpuUsPerReq');
  const undiciNginx = ratio('undici', 'nginx', 'cpuUsPerReq');
  return [
    t(
      'wasmgate, 0 plugins, 1 worker / minimal undici proxy (req/s)',
      '≥ 0.9',
      ratio('wg-0', 'undici'),
      (v) => v >= 0.9,
    ),
    t('wasmgate, 0 plugins / http-proxy-3 (req/s)', '≥ 1.6', ratio('wg-0', 'http-proxy-3'), (v) => v >= 1.6),
    t(
      'wasmgate + 1 Rust header plugin / wasmgate, 0 plugins (req/s)',
      '≥ 0.90',
      ratio('wg-rust', 'wg-0'),
      (v) => v >= 0.9,
    ),
    t('wasmgate + 5 plugins / wasmgate, 0 plugins (req/s)', '≥ 0.75', ratio('wg-5', 'wg-0'), (v) => v >= 0.75),
    t(`wasmgate, ${MULTI} workers / 1 worker, both unpinned (req/s)`, '≥ 1.0', multiRps, (v) => v >= 1.0),
    t(`wasmgate, ${MULTI} workers / 1 worker, both unpinned (CPU per request)`, '≤ 1.15×', multiCpu, (v) => v <= 1.15),
    {
      ...t(
        'wasmgate CPU per request / nginx CPU per request',
        '≤ 2.5',
        ratio('wg-0', 'nginx', 'cpuUsPerReq'),
        (v) => v <= 2.5,
      ),
      measured: `${ratio('wg-0', 'nginx', 'cpuUsPerReq')?.toFixed(2) ?? '—'}× (undici proxy: ${undiciNginx?.toFixed(2) ?? '—'}×)`,
    },
    t(
      'p99 added by one plugin (Rust) at 50 connections',
      '≤ 0.5 ms',
      diff('wg-rust', 'wg-0', 'p99'),
      (v) => v <= 0.5,
      (v) => `${v.toFixed(2)} ms`,
    ),
    t(
      'proxy CPU per request, 0 plugins, small GET',
      '≤ 60 µs',
      s('wg-0')?.cpuUsPerReq ?? null,
      (v) => v <= 60,
      (v) => `${v.toFixed(1)} µs (undici proxy: ${s('undici')?.cpuUsPerReq.toFixed(1) ?? '—'} µs)`,
    ),
    t(
      'CPU per request added by one Rust header plugin',
      '≤ 3 µs',
      diff('wg-rust', 'wg-0', 'cpuUsPerReq'),
      (v) => v <= 3,
      (v) => `${v.toFixed(1)} µs`,
    ),
  ];
}

function cpuModel(): string {
  try {
    return /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? 'unknown CPU';
  } catch {
    return 'unknown CPU';
  }
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
/** Horizontal bars: req/s by system, one panel per workload. Hand-written SVG. */
function chart(systems: System[], wids: string[], wlabel: (id: string) => string): string {
  const rowH = 16;
  const labelW = 300;
  const barW = 360;
  const panelW = labelW + barW + 70;
  const panelH = 28 + systems.length * rowH + 12;
  const cols = 2;
  const W = cols * panelW + 20;
  const H = 40 + Math.ceil(wids.length / cols) * panelH;
  const color = (id: string) =>
    id === 'upstream' ? '#9e9e9e' : id === 'nginx' ? '#43a047' : id.startsWith('wg-') ? '#1e88e5' : '#fb8c00';
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="10" y="22" font-size="15" font-weight="bold">wasmgate bench: requests per second by system (${esc(new Date().toISOString().slice(0, 10))}, ${CORES} cores, medians)</text>`,
  ];
  wids.forEach((wid, i) => {
    const x0 = 10 + (i % cols) * panelW;
    const y0 = 40 + Math.floor(i / cols) * panelH;
    const vals = systems.map((s) => summary(s.id, wid)?.rps ?? 0);
    const max = Math.max(1, ...vals);
    out.push(`<text x="${x0}" y="${y0 + 14}" font-size="13" font-weight="bold">${esc(wlabel(wid))}</text>`);
    systems.forEach((s, j) => {
      const y = y0 + 24 + j * rowH;
      const v = vals[j] ?? 0;
      const w = (v / max) * barW;
      out.push(
        `<text x="${x0 + labelW - 6}" y="${y + 11}" text-anchor="end">${esc(s.label)}</text>`,
        `<rect x="${x0 + labelW}" y="${y + 2}" width="${w.toFixed(1)}" height="${rowH - 4}" fill="${color(s.id)}"/>`,
        `<text x="${x0 + labelW + w + 4}" y="${y + 11}">${v ? v.toFixed(0) : '—'}</text>`,
      );
    });
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
