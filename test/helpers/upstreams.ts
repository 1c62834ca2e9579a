// Upstreams for tests: the embedded httpbin and the real go-httpbin binary.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { startHttpbin } from '../../src/upstream/httpbin.ts';

export interface Upstream {
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startEmbeddedHttpbin(): Promise<Upstream> {
  return startHttpbin({ host: '127.0.0.1', port: 0 });
}

function goHttpbinPath(): string {
  if (process.env.GO_HTTPBIN && existsSync(process.env.GO_HTTPBIN)) return process.env.GO_HTTPBIN;
  try {
    const gopath = execFileSync('go', ['env', 'GOPATH'], { encoding: 'utf8' }).trim();
    const p = join(gopath, 'bin', 'go-httpbin');
    if (existsSync(p)) return p;
  } catch {
    // go not on PATH
  }
  throw new Error('go-httpbin is not installed: run `bash .ci/install-go-httpbin.sh` (or set GO_HTTPBIN)');
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

async function waitUntilServing(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`go-httpbin exited with ${child.exitCode}`);
    try {
      const res = await fetch(`${url}/get`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.ok) return;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('go-httpbin did not start in time');
}

/** Starts the real go-httpbin on a free loopback port. Throws when the binary is missing. */
export async function startGoHttpbin(): Promise<Upstream> {
  const bin = goHttpbinPath();
  const port = await freePort();
  const child = spawn(bin, ['-host', '127.0.0.1', '-port', String(port), '-log-level', 'OFF'], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitUntilServing(url, child, 10_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    url,
    port,
    close: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
