// Upstreams for tests: the embedded httpbin and the real go-httpbin binary
// (installed by .ci/install-go-httpbin.sh; tests never skip when it is missing, they fail loudly).
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import net from 'node:net';
import { delimiter, join } from 'node:path';
import { DEFAULT_MAX_BODY_SIZE, startHttpbin } from '../../src/upstream/httpbin.ts';

export interface Upstream {
  url: string;
  port: number;
  close(): Promise<void>;
}

const INSTALL_HINT = 'run `bash .ci/install-go-httpbin.sh` (or point GO_HTTPBIN at the binary)';

export async function startEmbeddedHttpbin(): Promise<Upstream> {
  return startHttpbin({ host: '127.0.0.1', port: 0 });
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** GO_HTTPBIN, else $(go env GOBIN)/go-httpbin or $(go env GOPATH)/bin/go-httpbin, else PATH. */
export function goHttpbinPath(): string {
  const fromEnv = process.env.GO_HTTPBIN;
  if (fromEnv) {
    if (isExecutable(fromEnv)) return fromEnv;
    throw new Error(`GO_HTTPBIN=${fromEnv} is not an executable file: ${INSTALL_HINT}`);
  }
  const candidates: string[] = [];
  try {
    const [gobin, gopath] = execFileSync('go', ['env', 'GOBIN', 'GOPATH'], { encoding: 'utf8' }).split('\n');
    if (gobin?.trim()) candidates.push(join(gobin.trim(), 'go-httpbin'));
    for (const dir of (gopath ?? '').trim().split(delimiter).filter(Boolean))
      candidates.push(join(dir, 'bin', 'go-httpbin'));
  } catch {
    // no go toolchain: fall back to PATH
  }
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) candidates.push(join(dir, 'go-httpbin'));
  const found = candidates.find(isExecutable);
  if (found) return found;
  throw new Error(`go-httpbin is not installed (looked in ${candidates.join(', ')}): ${INSTALL_HINT}`);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitUntilServing(url: string, child: ChildProcess, output: () => string, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`go-httpbin exited (${child.exitCode ?? child.signalCode}): ${output().trim()}`);
    try {
      const res = await fetch(`${url}/get`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`go-httpbin did not answer ${url}/get within ${timeoutMs} ms: ${output().trim()}`);
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    // go-httpbin drains in-flight requests on SIGTERM for up to max-duration + 1 s; don't wait that long
    const kill = setTimeout(() => child.kill('SIGKILL'), 2000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/**
 * Starts the real go-httpbin on a free loopback port, with the embedded httpbin's body cap.
 * go-httpbin has no "port 0" (it never reports the bound port), so a free port is picked first
 * and the start is retried if another process grabs it in between. Throws when the binary is missing.
 */
export async function startGoHttpbin(): Promise<Upstream> {
  const bin = goHttpbinPath();
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const args = ['-host', '127.0.0.1', '-port', String(port), '-max-body-size', String(DEFAULT_MAX_BODY_SIZE)];
    // go-httpbin reads PORT, HOST, PREFIX, MAX_BODY_SIZE, … from the environment: give it a clean one
    const child = spawn(bin, [...args, '-log-level', 'ERROR'], {
      env: { PATH: process.env.PATH ?? '' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    const url = `http://127.0.0.1:${port}`;
    try {
      await waitUntilServing(url, child, () => stderr, 10_000);
      return { url, port, close: () => stop(child) };
    } catch (err) {
      lastError = err;
      await stop(child);
    }
  }
  throw lastError;
}
