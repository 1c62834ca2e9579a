// The `wasmgate` command line: run, validate, --help, --version.
// First, before anything else is loaded: V8 flags for the whole process.
import './server/v8-tuning.ts';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { AdminServer } from './admin/admin.ts';
import { HealthServer, probe, Readiness } from './admin/health.ts';
import { parseDurationMs } from './config/duration.ts';
import { formatProblem } from './config/format.ts';
import { loadConfig } from './config/load.ts';
import type { LoadedConfig, Problem } from './config/types.ts';
import { l4ValidateLines, networkEntryLabel, planL4 } from './l4/gateway-l4.ts';
import { LIMIT_FLAGS, type LimitFlag, type ListenerLimits, limitsFromFlags } from './listener/limits.ts';
import { createLogger, LogLevels, levelNumber } from './observability/logger.ts';
import { entryName } from './server/chain.ts';
import { type GatewayOptions, planProxy } from './server/gateway.ts';
import { WorkerPool } from './server/supervisor.ts';
import { ChangeWatcher } from './server/watch.ts';
import { loadModule } from './wasm/plugin/plugin.ts';
import { parseByteSize } from './wasm/runtime/limits.ts';

const VERSION: string = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version;

const HELP = `wasmgate ${VERSION}: a reverse proxy that runs Proxy-Wasm plugins, configured with Istio YAML.

Usage:
  wasmgate run -c PATH [-c PATH]... [options]
  wasmgate validate -c PATH [-c PATH]... [--secrets-dir DIR]
  wasmgate health [--health-port N]      exit 0 when the proxy on this host is ready
  wasmgate dev PLUGIN.wasm|WASMPLUGIN.yaml [--upstream URL] [--port N] [--admin-port N]
                                         plugin developer loop: proxy on :8080 (default upstream: the
                                         embedded httpbin), wasm logs at debug, reload on rebuild,
                                         one line per request
  wasmgate init plugin --lang rust|go|assemblyscript NAME [--dir DIR]
                                         scaffold a buildable plugin project with a WasmPlugin YAML
  wasmgate --help | --version

PATH is a YAML file (multi-document, ---) or a folder of *.yaml / *.yml files holding
WasmPlugin (extensions.istio.io/v1alpha1), Gateway, VirtualService and ServiceEntry resources.

Options for run:
  -c, --config PATH              configuration file or folder (repeatable)
      --port N                   one HTTP listener on port N instead of the Gateways' ports
      --host ADDR                address the listeners bind (default 0.0.0.0)
      --upstream URL             send everything the listener receives to URL (local development)
      --admin-port N             admin API port on 127.0.0.1 (default 15000; 0 picks a free port; -1 disables)
      --namespace NS             this proxy's namespace (default istio-system)
      --label k=v                this proxy's labels (repeatable; default istio=ingressgateway)
      --root-namespace NS        Istio's root namespace (default istio-system)
      --log-level LEVEL          proxy log level: trace|debug|info|warn|error (default info)
      --component-log-level C:L  per component, as Envoy: wasm:debug
      --access-log DEST          stdout (default), off, or a file path
      --httpbin ADDR             also start the embedded httpbin-compatible upstream on ADDR (host:port)
      --cache-dir DIR            Wasm module cache (default $XDG_CACHE_HOME/wasmgate, else a temp folder)
      --secrets-dir DIR          Kubernetes secrets as files: imagePullSecrets and TLS credentialName, read
                                 as DIR/<namespace>/<name>, else DIR/<name> (docs/fetching.md, docs/config.md)
      --insecure-registry H[:P]  reach this OCI registry over plain HTTP (repeatable; loopback always is)
      --no-watch                 do not reload when configuration files, file:// modules or TLS secrets change
      --drain-time DURATION      on SIGTERM, serve with Connection: close for up to this long (default 5s)
      --concurrency N            worker threads, each with its own listeners and Wasm VMs (default: cores)
      --health-port N            Istio's health port: GET /healthz/ready (default 15021; -1 disables)

Every flag can also be set as WASMGATE_<FLAG> in the environment (WASMGATE_CONFIG=/etc/wasmgate,
WASMGATE_LABEL=app=edge,istio=ingressgateway); the command line wins.
      --wasm-deadline DURATION   stop a Wasm plugin callback that runs longer (default 1s; 0: never)
      --wasm-memory-limit SIZE   memory cap per Wasm VM, e.g. 256Mi (default 1Gi, or a quarter of RAM if less)
      --xff-num-trusted-hops N   trusted proxies in front: the client is N hops from the right of X-Forwarded-For (default 0)

Downstream limits (Envoy's edge defaults; docs/security.md says what each defends):
      --max-request-headers-size SIZE   request line and headers (default 60Ki; over it: 431)
      --max-request-headers-count N     request header lines (default 100; over it: 431)
      --headers-timeout DURATION        to receive the request headers (default 10s; 408; 0: none)
      --request-timeout DURATION        to receive the whole request (default 300s; 408; 0: none)
      --idle-timeout DURATION           keep-alive connection with no request, or HTTP/2 session with no frame (default 60s)
      --stream-idle-timeout DURATION    request body with no progress (default 300s; 408; 0: none)
      --max-connections N               open downstream connections per listener, shared by the workers (default 10000; 0: no cap)
      --per-connection-buffer-limit SIZE  socket read/write buffer per connection (default 32Ki)
      --max-request-body-size SIZE      request body cap, 413 before reading when Content-Length is over it (default 1Gi; 0: no cap)
      --headers-with-underscores ACTION reject (default, 400), drop or allow request headers named with "_"
      --h2-max-concurrent-streams N     HTTP/2 streams per connection (default 100)

Reload: a changed config file, file:// module or TLS secret, SIGHUP, or POST /reload on the admin
port builds the new configuration to the side; if it is invalid the running one keeps serving.
`;

class UsageError extends Error {}

export const OPTIONS = {
  config: { type: 'string', short: 'c', multiple: true },
  port: { type: 'string' },
  host: { type: 'string' },
  upstream: { type: 'string' },
  'admin-port': { type: 'string' },
  namespace: { type: 'string' },
  label: { type: 'string', multiple: true },
  'root-namespace': { type: 'string' },
  'log-level': { type: 'string' },
  'component-log-level': { type: 'string', multiple: true },
  'access-log': { type: 'string' },
  httpbin: { type: 'string' },
  'cache-dir': { type: 'string' },
  'secrets-dir': { type: 'string' },
  'insecure-registry': { type: 'string', multiple: true },
  'no-watch': { type: 'boolean' },
  'drain-time': { type: 'string' },
  concurrency: { type: 'string' },
  'health-port': { type: 'string' },
  'wasm-deadline': { type: 'string' },
  'wasm-memory-limit': { type: 'string' },
  'xff-num-trusted-hops': { type: 'string' },
  'max-request-headers-size': { type: 'string' },
  'max-request-headers-count': { type: 'string' },
  'headers-timeout': { type: 'string' },
  'request-timeout': { type: 'string' },
  'idle-timeout': { type: 'string' },
  'stream-idle-timeout': { type: 'string' },
  'max-connections': { type: 'string' },
  'per-connection-buffer-limit': { type: 'string' },
  'max-request-body-size': { type: 'string' },
  'headers-with-underscores': { type: 'string' },
  'h2-max-concurrent-streams': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
} as const;

/**
 * Every flag can also come from the environment as WASMGATE_<FLAG> (upper case, dashes as
 * underscores): WASMGATE_CONFIG=/etc/wasmgate, WASMGATE_LABEL=app=edge,istio=ingressgateway
 * (repeatable flags take a comma-separated list), WASMGATE_NO_WATCH=true. The command line wins.
 */
export function envName(flag: string): string {
  return `WASMGATE_${flag.toUpperCase().replaceAll('-', '_')}`;
}

function parse(argv: string[], env: NodeJS.ProcessEnv = process.env) {
  let parsed: ReturnType<
    typeof parseArgs<{ args: string[]; allowPositionals: true; strict: true; options: typeof OPTIONS }>
  >;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, strict: true, options: OPTIONS });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const values = parsed.values as Record<string, string | string[] | boolean | undefined>;
  for (const [flag, spec] of Object.entries(OPTIONS) as [string, { type: string; multiple?: boolean }][]) {
    if (flag === 'help' || flag === 'version' || values[flag] !== undefined) continue;
    const raw = env[envName(flag)];
    if (raw === undefined || raw === '') continue;
    if (spec.type === 'boolean') {
      if (!/^(1|true|yes|0|false|no)$/i.test(raw))
        throw new UsageError(`${envName(flag)}: expected true or false, got "${raw}"`);
      values[flag] = /^(1|true|yes)$/i.test(raw);
    } else
      values[flag] = spec.multiple
        ? raw
            .split(',')
            .map((v) => v.trim())
            .filter((v) => v !== '')
        : raw;
  }
  return parsed;
}

function portOption(value: string | undefined, flag: string, allowNegative = false): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n > 65535 || n < (allowNegative ? -1 : 0))
    throw new UsageError(`${flag}: not a port number: ${value}`);
  return n;
}

function wasmLimitOptions(deadline: string | undefined, memory: string | undefined) {
  const wasmDeadlineMs = deadline === undefined ? undefined : parseDurationMs(deadline);
  if (deadline !== undefined && (wasmDeadlineMs === undefined || wasmDeadlineMs < 0))
    throw new UsageError(`--wasm-deadline: expected a duration such as 1s or 250ms (0: none), got "${deadline}"`);
  const wasmMemoryLimitBytes = memory === undefined ? undefined : parseByteSize(memory);
  if (memory !== undefined && (wasmMemoryLimitBytes === undefined || wasmMemoryLimitBytes < 65536))
    throw new UsageError(`--wasm-memory-limit: expected a size of at least 64Ki such as 512Mi, got "${memory}"`);
  return { wasmDeadlineMs: wasmDeadlineMs === undefined ? undefined : Math.ceil(wasmDeadlineMs), wasmMemoryLimitBytes };
}

function xffHopsOption(value: string | undefined): number {
  if (value === undefined) return 0;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n))
    throw new UsageError(`--xff-num-trusted-hops: expected a number of hops (0 or more), got "${value}"`);
  return n;
}

/** The downstream limit flags (src/listener/limits.ts); --max-connections is split over the workers. */
function listenerLimitsOption(values: Record<string, unknown>, workers: number): ListenerLimits {
  const given: Partial<Record<LimitFlag, string>> = {};
  for (const flag of Object.keys(LIMIT_FLAGS) as LimitFlag[])
    if (typeof values[flag] === 'string') given[flag] = values[flag] as string;
  try {
    return limitsFromFlags(given, workers);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function labelsOption(values: string[] | undefined): Record<string, string> {
  if (!values || values.length === 0) return { istio: 'ingressgateway' };
  const labels: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf('=');
    if (eq <= 0) throw new UsageError(`--label: expected k=v, got "${v}"`);
    labels[v.slice(0, eq)] = v.slice(eq + 1);
  }
  return labels;
}

/** Module problems (missing file, not Wasm, missing exports) as warnings on spec.url. */
async function moduleWarnings(config: LoadedConfig): Promise<Problem[]> {
  const out: Problem[] = [];
  for (const p of config.wasmPlugins) {
    if (!p.spec.url.startsWith('file://')) continue;
    try {
      await loadModule(p.spec.url);
    } catch (err) {
      out.push({
        severity: 'warning',
        file: p.file,
        line: p.line,
        col: p.col,
        kind: 'WasmPlugin',
        name: `${p.metadata.namespace}/${p.metadata.name}`,
        field: 'spec.url',
        message: (err as Error).message,
      });
    }
  }
  return out;
}

function printProblems(problems: Problem[]): void {
  for (const p of problems) {
    const line = formatProblem(p);
    process.stderr.write(`${p.severity === 'warning' ? `${line} (warning)` : line}\n`);
  }
}

async function validate(paths: string[], values: ReturnType<typeof parse>['values']): Promise<number> {
  const config = await loadConfig(paths, { secretsDir: values['secrets-dir'] });
  const problems = [...config.problems, ...(await moduleWarnings(config))];
  printProblems(problems);
  if (problems.some((p) => p.severity === 'error')) return 1;
  const identity = {
    namespace: values.namespace ?? 'istio-system',
    labels: labelsOption(values.label),
    rootNamespace: values['root-namespace'] ?? 'istio-system',
  };
  const { plans, chains } = planProxy(config, identity);
  // NETWORK plugins run first, beneath HTTP (src/l4/http-network.ts); then TCP listeners.
  const l4 = planL4(config, identity, plans);
  for (const [i, plan] of plans.entries()) {
    const network = (l4.http.get(plan.port) ?? []).map(networkEntryLabel);
    const chain = chains[i]!.map((e) =>
      e.kind === 'builtin' ? e.name : `${entryName(e)} (${e.plugin.spec.phase}, priority ${e.plugin.spec.priority})`,
    );
    process.stdout.write(`listener :${plan.port}: ${[...network, ...chain, 'router'].join(' -> ')}\n`);
  }
  for (const line of l4ValidateLines(l4)) process.stdout.write(`${line}\n`);
  process.stdout.write(`valid: ${config.files.length} file(s), ${config.wasmPlugins.length} WasmPlugin(s)\n`);
  return 0;
}

async function run(paths: string[], values: ReturnType<typeof parse>['values']): Promise<number> {
  const logLevel = values['log-level'] ?? 'info';
  if (levelNumber(logLevel) === undefined) throw new UsageError(`--log-level: unknown level "${logLevel}"`);
  const levels = new LogLevels('info');
  for (const c of values['component-log-level'] ?? []) {
    for (const part of c.split(',')) {
      const [component, level] = part.split(':');
      if (component !== 'wasm' || !level || !levels.setWasm(level))
        throw new UsageError(`--component-log-level: expected wasm:LEVEL, got "${part}"`);
    }
  }
  const port = portOption(values.port, '--port');
  const drainMs = values['drain-time'] === undefined ? 5000 : parseDurationMs(values['drain-time']);
  if (drainMs === undefined)
    throw new UsageError(`--drain-time: expected a duration such as 5s, got "${values['drain-time']}"`);
  const adminPort = portOption(values['admin-port'], '--admin-port', true) ?? 15000;
  if (values.upstream !== undefined) {
    try {
      const u = new URL(values.upstream);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme');
    } catch {
      throw new UsageError(`--upstream: expected an http:// or https:// URL, got "${values.upstream}"`);
    }
  }
  const logger = createLogger(logLevel === 'warning' ? 'warn' : logLevel);
  const secretsDir = values['secrets-dir'];
  const config = await loadConfig(paths, { secretsDir });
  printProblems(config.problems);
  if (config.problems.some((p) => p.severity === 'error')) {
    logger.error('configuration is invalid; not starting (run `wasmgate validate` for details)');
    return 1;
  }
  for (const h of values['insecure-registry'] ?? [])
    if (!/^(\*|[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:\d+)?$/.test(h))
      throw new UsageError(`--insecure-registry: expected HOST or HOST:PORT, got "${h}"`);
  const closers: (() => Promise<void>)[] = [];
  if (values.httpbin) {
    const { startHttpbin } = await import('./upstream/httpbin.ts');
    const m = /^(.*):(\d+)$/.exec(values.httpbin);
    if (!m) throw new UsageError(`--httpbin: expected host:port, got "${values.httpbin}"`);
    const hb = await startHttpbin({ host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) });
    closers.push(() => hb.close());
    logger.info(`embedded httpbin listening on ${hb.url}`);
  }
  const concurrency = values.concurrency === undefined ? availableParallelism() : Number(values.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 256)
    throw new UsageError(`--concurrency: expected a number of workers from 1 to 256, got "${values.concurrency}"`);
  const gatewayOptions: GatewayOptions = {
    host: values.host ?? '0.0.0.0',
    port,
    upstream: values.upstream,
    namespace: values.namespace ?? 'istio-system',
    labels: labelsOption(values.label),
    rootNamespace: values['root-namespace'] ?? 'istio-system',
    accessLog: values['access-log'] ?? 'stdout',
    reusePort: concurrency > 1,
    xffNumTrustedHops: xffHopsOption(values['xff-num-trusted-hops']),
    ...wasmLimitOptions(values['wasm-deadline'], values['wasm-memory-limit']),
    limits: listenerLimitsOption(values, concurrency),
  };
  // Each worker thread runs a Gateway (listeners, VMs, clusters); this thread supervises.
  const gateway = new WorkerPool(
    {
      paths,
      options: gatewayOptions,
      logLevel: logLevel === 'warning' ? 'warn' : logLevel,
      levels: levels.state(),
      fetch: {
        cacheDir: values['cache-dir'],
        secretsDir,
        insecureRegistries: values['insecure-registry'] ?? [],
      },
    },
    concurrency,
    logger,
  );
  closers.unshift(() => gateway.close());
  try {
    await gateway.start();
  } catch (err) {
    await gateway.close();
    throw err;
  }
  logger.info(`${concurrency} worker(s) started`);
  const readiness = new Readiness();
  const healthPort = portOption(values['health-port'], '--health-port', true) ?? 15021;
  if (healthPort >= 0) {
    const health = new HealthServer(readiness);
    const host = values.host ?? '0.0.0.0';
    const actual = await health.listen(healthPort, host);
    closers.unshift(() => health.close());
    logger.info(`health listening on ${host}:${actual} (/healthz/ready)`);
  }
  let admin: AdminServer | undefined;
  if (adminPort >= 0) {
    admin = new AdminServer(
      gateway,
      levels,
      { host: '127.0.0.1', port: adminPort, version: VERSION, startedAt: Date.now() },
      readiness,
    );
    const actual = await admin.listen();
    closers.unshift(() => admin!.close());
    logger.info(`admin listening on 127.0.0.1:${actual}`);
  }
  const listening = () => {
    for (const s of gateway.summaries) {
      logger.info(
        { listener: s.name, port: s.port, chain: s.chain },
        `listening on ${values.host ?? '0.0.0.0'}:${s.port}: ${(s.chain.at(-1) === 'tcp_proxy' ? s.chain : [...s.chain, 'router']).join(' -> ')}`,
      );
    }
  };

  // ---- hot reload: file changes, SIGHUP, POST /reload ----
  const watchedPaths = (config: LoadedConfig) => [
    ...paths,
    ...config.wasmPlugins.filter((p) => p.spec.url.startsWith('file://')).map((p) => fileURLToPath(p.spec.url)),
  ];
  const watcher = values['no-watch']
    ? undefined
    : new ChangeWatcher((files) => void reload(`changed: ${files.join(', ')}`));
  // TLS secrets (credentialName) too: a rotated certificate reloads like a config edit.
  watcher?.set(watchedPaths(config), config.secretPaths);
  closers.unshift(async () => watcher?.close());
  // Logged once the files are watched: an edit made after this line is seen.
  listening();
  const reload = async (why: string): Promise<{ ok: boolean; message: string }> => {
    const next = await loadConfig(paths, { secretsDir });
    const errors = next.problems.filter((p) => p.severity === 'error');
    if (errors.length > 0) {
      for (const p of errors) logger.error(`reload: ${formatProblem(p)}`);
      const message = `reload rejected (${why}): ${errors.length} error(s); still serving the previous configuration`;
      logger.error(message);
      return { ok: false, message: `${message}\n${errors.map(formatProblem).join('\n')}` };
    }
    try {
      const r = await gateway.reload();
      watcher?.set(watchedPaths(next), next.secretPaths);
      const message =
        `reloaded (${why}): plugins kept ${r.plugins.kept.length}, replaced ${r.plugins.replaced.length}, ` +
        `added ${r.plugins.added.length}, removed ${r.plugins.removed.length}`;
      logger.info({ reload: r }, message);
      listening();
      return { ok: true, message };
    } catch (err) {
      const message = `reload failed (${why}): ${(err as Error).message}; still serving the previous configuration`;
      logger.error(message);
      return { ok: false, message };
    }
  };
  process.on('SIGHUP', () => void reload('SIGHUP'));
  if (admin) {
    admin.onReload = () => reload('admin /reload');
    admin.onDrain = () => void gateway.drain();
  }

  return await new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info(`${signal}: shutting down`);
      Promise.all(closers.map((c) => c().catch(() => {}))).then(() => resolve(0));
    };
    // SIGTERM: readiness fails at once; listeners keep serving with Connection: close (GOAWAY on
    // HTTP/2) until no connection is left or the drain time is over; then the process exits.
    const drainAndStop = () => {
      if (stopping) return;
      readiness.live = false;
      void gateway.drain();
      logger.info(`SIGTERM: draining for up to ${drainMs} ms`);
      const deadline = Date.now() + drainMs;
      const poll = async () => {
        const open = await gateway.connections();
        if (open === 0 || Date.now() >= deadline) stop('SIGTERM');
        else setTimeout(poll, 50);
      };
      void poll();
    };
    process.once('SIGTERM', drainAndStop);
    process.once('SIGINT', () => stop('SIGINT'));
    if (admin) admin.onQuit = () => stop('quitquitquit');
  });
}

/** `dev` and `init` (src/dev/): their own options; usage problems exit 2 like the others. */
async function devCommands(command: 'dev' | 'init', argv: string[]): Promise<number> {
  try {
    if (command === 'dev') return await (await import('./dev/dev.ts')).dev(argv);
    return await (await import('./dev/init.ts')).init(argv);
  } catch (err) {
    const e = err as Error & { code?: string };
    if (e.name === 'DevError' || e.name === 'InitError' || e.code?.startsWith('ERR_PARSE_ARGS'))
      throw new UsageError(e.message);
    throw err;
  }
}

/** Entry point; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  try {
    if (argv[0] === 'dev' || argv[0] === 'init') return await devCommands(argv[0], argv.slice(1));
    const { values, positionals } = parse(argv);
    if (values.version) {
      process.stdout.write(`wasmgate ${VERSION}\n`);
      return 0;
    }
    if (values.help || positionals.length === 0) {
      process.stdout.write(HELP);
      return values.help ? 0 : 1;
    }
    const [command, ...rest] = positionals;
    if (rest.length > 0) throw new UsageError(`unexpected argument "${rest[0]}"`);
    const paths = values.config ?? [];
    if (command === 'health') {
      // For container health checks: exit 0 when this host's proxy is ready.
      const port = portOption(values['health-port'], '--health-port') ?? 15021;
      const r = await probe(`http://127.0.0.1:${port}/healthz/ready`);
      process.stdout.write(`${r.message}\n`);
      return r.ok ? 0 : 1;
    }
    if (command !== 'run' && command !== 'validate') throw new UsageError(`unknown command "${command}"`);
    if (paths.length === 0) throw new UsageError(`${command}: at least one -c PATH is required`);
    return command === 'run' ? await run(paths, values) : await validate(paths, values);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`wasmgate: ${err.message}\nRun 'wasmgate --help' for usage.\n`);
      return 2;
    }
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE' || e.code === 'EACCES') {
      process.stderr.write(`wasmgate: cannot listen: ${e.message}\n`);
      return 1;
    }
    process.stderr.write(`wasmgate: ${e.message ?? String(err)}\n`);
    return 1;
  }
}

// Run directly (node src/cli.ts ...): the bin script calls main() itself.
if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
