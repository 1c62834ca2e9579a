// Starts the real wasmgate CLI as a child process and waits until it listens.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = join(ROOT, 'src/cli.ts');

export interface RunningProxy {
  port: number;
  adminPort: number;
  /** Istio's health port (/healthz/ready). */
  healthPort: number;
  url: string;
  child: ChildProcess;
  stderr(): string;
  stdout(): string;
  /** The access log entries so far, waiting until there are at least `count`. */
  accessLogs(count: number, timeoutMs?: number): Promise<Record<string, unknown>[]>;
  /** Resolves when a stderr line contains `text`. */
  waitForLog(text: string, timeoutMs?: number): Promise<void>;
  stop(): Promise<number | null>;
}

/** Runs `wasmgate <args>` to completion. */
export function runCli(
  args: string[],
  timeoutMs = 30_000,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`wasmgate ${args.join(' ')} timed out; stderr:\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Starts `wasmgate run` with `--port 0 --admin-port 0 --concurrency 1` plus `args`.
 * `gatewayPorts`: no `--port 0`, so the Gateways' own ports open (TCP listeners need them); `port`
 * is then the first listener's.
 */
export function startProxy(
  args: string[],
  timeoutMs = 30_000,
  opts: { gatewayPorts?: boolean } = {},
): Promise<RunningProxy> {
  const child = spawn(
    process.execPath,
    [
      CLI,
      'run',
      ...(opts.gatewayPorts ? [] : ['--port', '0']),
      '--admin-port',
      '0',
      '--host',
      '127.0.0.1',
      // One worker unless the test asks for more: most tests look at one VM per plugin.
      ...(args.includes('--concurrency') ? [] : ['--concurrency', '1']),
      ...(args.includes('--health-port') ? [] : ['--health-port', '0']),
      ...args,
    ],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  const waiters: { text: string; resolve: () => void }[] = [];
  child.stdout!.on('data', (d) => {
    stdout += d;
  });
  child.stderr!.on('data', (d) => {
    stderr += d;
    for (const w of waiters.slice()) {
      if (stderr.includes(w.text)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  });
  const waitForLog = (text: string, ms = 10_000) =>
    new Promise<void>((resolve, reject) => {
      if (stderr.includes(text)) return resolve();
      const timer = setTimeout(() => reject(new Error(`no log line containing "${text}"; stderr:\n${stderr}`)), ms);
      waiters.push({
        text,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`proxy did not start; stderr:\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`proxy exited with ${code}; stderr:\n${stderr}`));
    });
    const check = () => {
      const m = /listening on [^:]+:(\d+):/.exec(stderr);
      const a = /admin listening on 127\.0\.0\.1:(\d+)/.exec(stderr);
      const h = /health listening on [^:]+:(\d+)/.exec(stderr);
      if (!m || !a) return;
      clearTimeout(timer);
      child.stderr!.off('data', check);
      child.removeAllListeners('exit');
      const port = Number(m[1]);
      resolve({
        port,
        adminPort: Number(a[1]),
        healthPort: Number(h?.[1] ?? -1),
        url: `http://127.0.0.1:${port}`,
        child,
        stderr: () => stderr,
        stdout: () => stdout,
        waitForLog,
        accessLogs: async (count, ms = 5000) => {
          const deadline = Date.now() + ms;
          for (;;) {
            const lines = stdout.split('\n').filter((l) => l.startsWith('{'));
            if (lines.length >= count) return lines.map((l) => JSON.parse(l) as Record<string, unknown>);
            if (Date.now() > deadline) throw new Error(`expected ${count} access log lines, got:\n${stdout}`);
            await new Promise((r) => setTimeout(r, 20));
          }
        },
        stop: () =>
          new Promise((r) => {
            if (child.exitCode !== null) return r(child.exitCode);
            child.once('exit', (code) => r(code));
            child.kill('SIGTERM');
          }),
      });
    };
    child.stderr!.on('data', check);
  });
}

/** Writes YAML documents to a temp folder and returns its path. */
export function tempConfig(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'wasmgate-config-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

/**
 * Copies `config/examples/<name>` into a temp folder, runnable from there: `file://` plugin URLs
 * made absolute, and the ServiceEntry's endpoint sent to `upstreamPort` (the examples say 8000).
 */
export function exampleConfig(name: string, upstreamPort: number): string {
  const example = join(ROOT, 'config/examples', name);
  const files: Record<string, string> = {};
  for (const f of readdirSync(example)) {
    files[f] = readFileSync(join(example, f), 'utf8')
      .replaceAll('file://../../../plugins/', `file://${join(ROOT, 'plugins')}/`)
      .replace('- address: 127.0.0.1', `- address: 127.0.0.1\n      ports: {http: ${upstreamPort}}`);
  }
  return tempConfig(files);
}

export function wasmPluginYaml(opts: {
  name: string;
  url: string;
  namespace?: string;
  phase?: string;
  priority?: number;
  failStrategy?: string;
  extra?: string;
}): string {
  return `apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: ${opts.name}
  namespace: ${opts.namespace ?? 'istio-system'}
spec:
  selector:
    matchLabels:
      istio: ingressgateway
  url: ${opts.url}
${opts.phase ? `  phase: ${opts.phase}\n` : ''}${opts.priority !== undefined ? `  priority: ${opts.priority}\n` : ''}${opts.failStrategy ? `  failStrategy: ${opts.failStrategy}\n` : ''}${opts.extra ?? ''}`;
}

/**
 * A Gateway `name` (istio-system, selecting istio=ingressgateway) with `servers` (YAML list items
 * under `servers:`, as written: a trailing newline is the caller's). Its first 6 lines are the
 * same for every Gateway, so the first server starts on line 7.
 */
export function gatewayServersYaml(name: string, servers: string): string {
  return `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ${name}, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
${servers}`;
}

/**
 * A Gateway `edge` (istio-system, selecting istio=ingressgateway) and a VirtualService `all` bound
 * to it that sends everything to 127.0.0.1:`port`, followed by `extra` YAML (documents starting
 * with `---`). `servers` replaces the Gateway's one HTTP server on 8080; `routes` replaces the
 * single route (YAML list items under `http:`).
 */
export function gatewayYaml(port: number, extra = '', options: { servers?: string; routes?: string } = {}): string {
  const servers = options.servers ?? '  - port: {number: 8080, name: http, protocol: HTTP}\n    hosts: ["*"]';
  const routes = options.routes ?? `  - route: [{destination: {host: 127.0.0.1, port: {number: ${port}}}}]`;
  return `${gatewayServersYaml('edge', servers)}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: all, namespace: istio-system}
spec:
  hosts: ["*"]
  gateways: [edge]
  http:
${routes}
${extra}`;
}
