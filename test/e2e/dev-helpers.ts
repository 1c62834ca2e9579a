// Starts `wasmgate dev ...` as a child process and reads its human output.
import { type ChildProcess, spawn } from 'node:child_process';
import { CLI, ROOT } from '../helpers/proxy.ts';

export interface DevProcess {
  child: ChildProcess;
  url: string;
  output(): string;
  /** Resolves when the output matches, from `from` (an index into output()) on. */
  waitFor(re: RegExp, from?: number, timeoutMs?: number): Promise<RegExpExecArray>;
  stop(): Promise<number | null>;
}

export async function startDev(args: string[], cwd = ROOT): Promise<DevProcess> {
  const child = spawn(process.execPath, [CLI, 'dev', '--port', '0', '--admin-port', '0', ...args], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => {
    out += d;
  });
  child.stderr!.on('data', (d) => {
    out += d;
  });
  const waitFor = async (re: RegExp, from = 0, timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = re.exec(out.slice(from));
      if (m) return m;
      if (child.exitCode !== null || Date.now() > deadline)
        throw new Error(`wasmgate dev: no ${re} (exit ${child.exitCode}); output:\n${out}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  const m = await waitFor(/wasmgate dev: (http:\/\/\S+) -> /);
  return {
    child,
    url: m[1]!,
    output: () => out,
    waitFor,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve(child.exitCode);
        child.once('exit', (code) => resolve(code));
        child.kill('SIGINT');
      }),
  };
}
