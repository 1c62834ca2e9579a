// The container image's runtime conditions, reproduced without a Docker engine (none runs here):
// the package as `npm pack` ships it, production dependencies only (`npm ci --omit=dev`, as the
// Dockerfile's runtime stage), run as uid/gid 1337 from its own folder (WORKDIR) with the image's
// environment (WASMGATE_CONFIG=/etc/wasmgate-like folder laid out as a kubelet-mounted ConfigMap
// and read-only, WASMGATE_CACHE_DIR and TMPDIR on separate writable folders). As root on Linux
// the root filesystem is made read-only for real in a private mount namespace (unshare -m), so any
// write outside the cache and temp folders fails as it would under readOnlyRootFilesystem.
// It serves the tutorial, `wasmgate health` (the HEALTHCHECK) exits 0, and SIGTERM drains: an
// in-flight request completes with Connection: close, readiness fails, the process exits 0.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ROOT } from '../helpers/proxy.ts';

const UID = 1337;
const isRoot = process.getuid?.() === 0;
const canUnshare =
  isRoot && process.platform === 'linux' && spawnSync('unshare', ['-m', 'true'], { stdio: 'ignore' }).status === 0;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Runs argv as the image would: uid/gid 1337 (when root), read-only root fs (when possible). */
function asImageUser(argv: string[], writable: string[]): [string, string[]] {
  if (!isRoot) return [argv[0]!, argv.slice(1)];
  const setpriv = ['setpriv', `--reuid=${UID}`, `--regid=${UID}`, '--clear-groups', '--'];
  if (!canUnshare) return [setpriv[0]!, [...setpriv.slice(1), ...argv]];
  // Every exec replaces the process: the child's pid is node's, so signals reach it directly.
  const script = [
    'set -e',
    'mount --make-rprivate /',
    ...writable.map((_, i) => `mount --bind "$W${i}" "$W${i}"`),
    'mount -o remount,bind,ro /',
    'mount -o remount,bind,ro /dev/shm 2>/dev/null || true',
    'exec "$@"',
  ].join('\n');
  return [
    'env',
    [...writable.map((w, i) => `W${i}=${w}`), 'unshare', '-m', 'sh', '-c', script, 'sh', ...setpriv, ...argv],
  ];
}

describe('container runtime conditions (packed, production deps, uid 1337, read-only config and root)', () => {
  let base: string;
  let app: string;
  let child: ChildProcess | undefined;
  let stderr = '';
  let env: NodeJS.ProcessEnv;
  let port: number;
  let healthPort: number;
  let writable: string[];

  before(async () => {
    assert.ok(
      existsSync(join(ROOT, 'dist/cli.js')),
      'dist/ is missing: run `npm run build` first (npm test builds it before the tests)',
    );
    base = mkdtempSync(join(tmpdir(), 'wasmgate-container-'));
    chmodSync(base, 0o755);
    // 1. The package as published, then production dependencies only from the lock file.
    const packed = execFileSync('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', base], {
      cwd: ROOT,
      encoding: 'utf8',
    })
      .trim()
      .split('\n')
      .at(-1)!;
    execFileSync('tar', ['-xzf', join(base, packed), '-C', base]);
    app = join(base, 'package');
    cpSync(join(ROOT, 'package-lock.json'), join(app, 'package-lock.json'));
    execFileSync('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], {
      cwd: app,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    execFileSync('chmod', ['-R', 'a+rX,go-w', app]);

    // 2. /etc/wasmgate as the kubelet mounts a ConfigMap: ..<timestamp>/ holds the files, ..data
    //    links to it, each key links to ..data/<key>. Read-only. The image's own config
    //    (deploy/config) with the module path and the httpbin port of this test.
    const upstreamPort = await freePort();
    const etc = join(base, 'etc-wasmgate');
    const stamp = join(etc, '..2026_01_01_00_00_00.000000001');
    mkdirSync(stamp, { recursive: true });
    for (const name of readdirSync(join(ROOT, 'deploy/config'))) {
      const text = readFileSync(join(ROOT, 'deploy/config', name), 'utf8')
        .replace('file:///opt/wasmgate/', `file://${app}/`)
        .replace('number: 8000', `number: ${upstreamPort}`)
        .replace('port:\n              number: 8000', `port:\n              number: ${upstreamPort}`);
      writeFileSync(join(stamp, name), text);
      symlinkSync(join('..data', name), join(etc, name));
    }
    symlinkSync('..2026_01_01_00_00_00.000000001', join(etc, '..data'));
    execFileSync('chmod', ['-R', 'a-w,a+rX', etc]);

    // 3. The two writable volumes, owned by the image's user.
    const cache = join(base, 'var-cache-wasmgate');
    const tmp = join(base, 'tmp');
    writable = [cache, tmp];
    for (const d of writable) {
      mkdirSync(d);
      if (isRoot) chownSync(d, UID, UID);
    }
    port = await freePort();
    healthPort = await freePort();
    env = {
      PATH: process.env.PATH,
      HOME: '/nonexistent',
      NODE_ENV: 'production',
      WASMGATE_CONFIG: etc,
      WASMGATE_CACHE_DIR: cache,
      TMPDIR: tmp,
      WASMGATE_PORT: String(port),
      WASMGATE_HEALTH_PORT: String(healthPort),
      WASMGATE_ADMIN_PORT: '0',
      WASMGATE_CONCURRENCY: '1',
      WASMGATE_HTTPBIN: `127.0.0.1:${upstreamPort}`,
      WASMGATE_DRAIN_TIME: '10s',
    };
  });

  after(() => {
    child?.kill('SIGKILL');
    if (base) rmSync(base, { recursive: true, force: true });
  });

  test('the packed package has production dependencies only and no sources or tests', () => {
    const modules = readdirSync(join(app, 'node_modules'));
    for (const dev of ['typescript', '@biomejs', 'node', 'autocannon', 'wabt'])
      assert.ok(!modules.includes(dev), `dev dependency ${dev} installed`);
    for (const dep of ['yaml', 'pino', 'undici']) assert.ok(modules.includes(dep), `${dep} missing`);
    for (const dir of ['src/cli.ts', 'test', 'bench'])
      assert.ok(!existsSync(join(app, dir)), `${dir} is in the package`);
    // `wasmgate init` reads its templates from the package.
    assert.ok(existsSync(join(app, 'src/dev/templates/go/main.go.tmpl')));
    assert.ok(existsSync(join(app, 'plugins/header-authorization-rust/plugin.wasm')));
  });

  test('as the image user only the cache and temp volumes are writable', () => {
    // Switching to uid 1337 needs root (CI runs as root); elsewhere this fails rather than skipping.
    assert.ok(isRoot, 'run this test as root: it switches to the image user (uid 1337) with setpriv');
    const probe = (dir: string) => {
      const [cmd, args] = asImageUser(['sh', '-c', `touch "${dir}/.probe" && rm "${dir}/.probe"`], writable);
      return spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
    };
    for (const dir of writable) assert.ok(probe(dir), `${dir} is writable`);
    for (const dir of [app, env.WASMGATE_CONFIG!, ...(canUnshare ? [tmpdir(), '/dev/shm'] : [])])
      assert.ok(!probe(dir), `${dir} is not writable`);
  });

  test('runs as uid 1337 with the image environment, serves the tutorial; `wasmgate health` exits 0', async () => {
    const [cmd, args] = asImageUser([process.execPath, 'bin/wasmgate.js', 'run'], writable);
    child = spawn(cmd, args, { cwd: app, env, stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (d) => {
      stderr += d;
    });
    const deadline = Date.now() + 30_000;
    while (!/health listening/.test(stderr) || !/listening on .*:\d+: /.test(stderr)) {
      assert.equal(child.exitCode, null, `wasmgate exited early:\n${stderr}`);
      assert.ok(Date.now() < deadline, `wasmgate did not start:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    if (isRoot) {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      assert.match(status, new RegExp(`^Uid:\\s+${UID}\\s+${UID}\\s+${UID}\\s+${UID}$`, 'm'));
    }
    const denied = await fetch(`http://127.0.0.1:${port}/status/418`);
    assert.equal(denied.status, 403);
    assert.equal(await denied.text(), 'Forbidden by ASM Wasm Plugin, rust version\n');
    const allowed = await fetch(`http://127.0.0.1:${port}/status/418`, { headers: { allow: 'true' } });
    assert.equal(allowed.status, 418);
    await allowed.text();

    const [hcmd, hargs] = asImageUser([process.execPath, 'bin/wasmgate.js', 'health'], writable);
    const health = spawnSync(hcmd, hargs, { cwd: app, env, encoding: 'utf8' });
    assert.equal(health.status, 0, `health: ${health.stdout}${health.stderr}`);
    assert.match(health.stdout, /^200 LIVE/);
    assert.doesNotMatch(stderr, /EROFS|EACCES|read-only file system/i);
  });

  test('SIGTERM drains: readiness fails, the in-flight request completes with Connection: close, exit 0', async () => {
    assert.ok(child && child.exitCode === null, 'the proxy is running');
    const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));
    const inFlight = fetch(`http://127.0.0.1:${port}/delay/1`, { headers: { allow: 'true' } });
    await new Promise((r) => setTimeout(r, 300));
    child!.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 150));
    const ready = await fetch(`http://127.0.0.1:${healthPort}/healthz/ready`);
    assert.equal(ready.status, 503, 'readiness fails while draining');
    await ready.text();
    const res = await inFlight;
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('connection'), 'close');
    await res.text();
    const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 15_000).unref())]);
    assert.equal(code, 0, `exit code; stderr:\n${stderr}`);
    assert.match(stderr, /SIGTERM: draining/);
  });
});
