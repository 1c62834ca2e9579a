// `wasmgate dev PLUGIN.wasm|WASMPLUGIN.yaml [--upstream URL] [--port N] [--admin-port N]`: the
// plugin developer's loop. Runs `wasmgate run` (the same code path, as a child process) in front
// of the upstream (default: the embedded httpbin on a free port), with wasm logs at debug and the
// module and YAML watched (run's hot reload), and prints one compact line per request: method,
// path, status, and which filter answered or that the request went through the chain upstream.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, extname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

export class DevError extends Error {
  override name = 'DevError';
}

const CLI = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? '../cli.ts' : '../cli.js', import.meta.url));

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    });
  });
}

/** A WasmPlugin for a bare .wasm: selects the proxy, AUTHN phase, named after the file. */
export function wasmPluginFor(file: string): string {
  const name =
    basename(file, extname(file))
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+|-+$/g, '') || 'plugin';
  const safe = /^[a-z]/.test(name) ? name : `p-${name}`;
  return [
    '# Written by `wasmgate dev` for a bare .wasm file.',
    'apiVersion: extensions.istio.io/v1alpha1',
    'kind: WasmPlugin',
    'metadata:',
    `  name: ${safe}`,
    '  namespace: istio-system',
    'spec:',
    '  selector:',
    '    matchLabels:',
    '      istio: ingressgateway',
    `  url: ${JSON.stringify(pathToFileURL(resolve(file)).href)}`,
    '  phase: AUTHN',
    '',
  ].join('\n');
}

const PROXY_DETAILS =
  /^(upstream_|route_not_found|direct_response|fault_filter|request_payload|response_payload|path_normalization|no_healthy|cluster_not_found|downstream_|http1\.|http2\.|upgrade_failed|filter_chain_error|listener_)/;

/**
 * Who answered a request. `filter` is the access log's `wasmgate_local_reply_filter` (written
 * because dev runs the proxy with WASMGATE_DEV_ACCESS_LOG=1): the filter that sent the local reply,
 * "-" when the proxy itself answered, undefined from a proxy that does not write it (then only
 * response_code_details and the chain tell). `reachedUpstream` (upstream_host set) tells a reply
 * sent from a response callback, after every request callback ran, from one that cut the chain.
 */
export function answeredBy(details: string, chain: string[], filter?: string, reachedUpstream = false): string {
  const full = [...chain, 'router'];
  if (details === 'via_upstream') return `passed ${full.join(' -> ')} -> upstream`;
  const at = filter !== undefined && filter !== '-' ? chain.indexOf(filter) : -1;
  if (at >= 0) {
    const what = details === 'wasm_fail_stream' ? 'plugin failed, failStrategy answered' : 'local reply';
    if (reachedUpstream)
      return `passed ${full.join(' -> ')} -> upstream; answered by ${filter} on the response (${what}: ${details})`;
    const rest = full.slice(at + 1);
    return `answered by ${filter} (${what}: ${details}); ran ${chain.slice(0, at + 1).join(' -> ')}; not run: ${rest.join(' -> ')}`;
  }
  if (details.startsWith('jwt_authn_access_denied')) return `answered by istio.authn (${details})`;
  if (details.startsWith('rbac_access_denied')) return `answered by istio.authz (${details})`;
  if (details === 'wasm_fail_stream') return `plugin failed: failStrategy answered (${details})`;
  if (PROXY_DETAILS.test(details) || filter === '-') return `answered by router (${details})`;
  const plugins = chain.filter((f) => !f.startsWith('istio.'));
  const who = plugins.length === 1 ? plugins[0] : plugins.length > 1 ? `one of ${plugins.join(', ')}` : 'a filter';
  return `answered by ${who} (local reply: ${details})`;
}

/** One human line for an Istio JSON access log entry. */
export function requestLine(entry: Record<string, unknown>, chain: string[]): string {
  const status = String(entry.response_code);
  const flags = entry.response_flags && entry.response_flags !== '-' ? ` [${entry.response_flags}]` : '';
  const filter =
    entry.wasmgate_local_reply_filter === undefined ? undefined : String(entry.wasmgate_local_reply_filter);
  const upstream = entry.upstream_host !== undefined && entry.upstream_host !== '-';
  return `${String(entry.method)} ${String(entry.path)} -> ${status}${flags}  ${answeredBy(String(entry.response_code_details), chain, filter, upstream)}  ${String(entry.duration)}ms`;
}

/** The flags of `wasmgate dev` (docs/reference.md lists them). */
export const DEV_OPTIONS = {
  upstream: { type: 'string' },
  port: { type: 'string', short: 'p' },
  'admin-port': { type: 'string' },
  host: { type: 'string' },
  namespace: { type: 'string' },
  'log-level': { type: 'string' },
} as const;

const LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

export async function dev(argv: string[], out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: DEV_OPTIONS,
  });
  if (positionals.length !== 1)
    throw new DevError('usage: wasmgate dev PLUGIN.wasm|WASMPLUGIN.yaml [--upstream URL] [--port N]');
  const target = resolve(positionals[0]!);
  let configPath = target;
  let tempDir: string | undefined;
  if (/\.wasm$/i.test(target)) {
    tempDir = mkdtempSync(join(tmpdir(), 'wasmgate-dev-'));
    configPath = join(tempDir, 'wasmplugin.yaml');
    writeFileSync(configPath, wasmPluginFor(target));
  } else if (!/\.ya?ml$/i.test(target))
    throw new DevError(`${positionals[0]}: expected a .wasm module or a WasmPlugin .yaml file`);

  const args = ['run', '-c', configPath, '--port', values.port ?? '8080', '--component-log-level', 'wasm:debug'];
  args.push('--concurrency', '1', '--health-port=-1', '--admin-port', values['admin-port'] ?? '15000');
  args.push('--host', values.host ?? '127.0.0.1', '--access-log', 'stdout');
  if (values.namespace) args.push('--namespace', values.namespace);
  if (values['log-level']) args.push('--log-level', values['log-level']);
  let upstream = values.upstream;
  if (!upstream) {
    const hb = await freePort();
    args.push('--httpbin', `127.0.0.1:${hb}`);
    upstream = `http://127.0.0.1:${hb}`;
  }
  args.push('--upstream', upstream);

  const child: ChildProcess = spawn(process.execPath, [CLI, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, WASMGATE_DEV_ACCESS_LOG: '1' },
  });
  let chain: string[] = [];
  let started = false;
  const say = (line: string) => out.write(`${line}\n`);

  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (entry.response_code !== undefined) return say(requestLine(entry, chain));
    } catch {}
    say(line);
  });
  createInterface({ input: child.stderr! }).on('line', (line) => {
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line);
    } catch {
      return say(line);
    }
    const msg = String(rec.msg ?? '');
    const level = LEVELS[Number(rec.level)] ?? String(rec.level);
    if (Array.isArray(rec.chain)) {
      chain = rec.chain.map(String);
      const m = /listening on (.*?):(\d+):/.exec(msg);
      if (m && started) return say(`  chain: ${[...chain, 'router'].join(' -> ')}`);
      started = true;
      if (m)
        return say(
          `wasmgate dev: http://${m[1]}:${m[2]} -> ${upstream}\n  chain: ${[...chain, 'router'].join(' -> ')}\n` +
            `  watching ${configPath === target ? `${positionals[0]} and its file:// modules` : positionals[0]}; rebuild and it reloads`,
        );
    }
    if (msg.startsWith('wasm log ')) return say(`  [${level}] ${msg.slice('wasm log '.length)}`);
    if (/^(reload|embedded httpbin|admin listening)/.test(msg) || Number(rec.level) >= 40)
      return say(`${level}: ${msg}`);
  });

  const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  const onHup = forward('SIGHUP');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  process.on('SIGHUP', onHup);
  const code = await new Promise<number>((res) => child.on('exit', (c, s) => res(c ?? (s ? 1 : 0))));
  process.off('SIGINT', onInt);
  process.off('SIGTERM', onTerm);
  process.off('SIGHUP', onHup);
  if (tempDir) rmSync(tempDir, { recursive: true, force: true });
  return code;
}
