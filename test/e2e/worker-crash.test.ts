// Crash containment (issue P6): a worker thread that dies is replaced and the supervisor never dies
// with it. Workers are killed through the test-only fault hook (WASMGATE_TEST_FAULTS=1, POST
// /faults/crash_worker): an uncaught exception or process.exit() inside the worker. Without the
// variable the endpoint does not exist. Config: the committed
// plugins/header-authorization-go (403 unless `allow: true`), so a replacement is seen enforcing it.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import autocannon from 'autocannon';
import { ROOT, type RunningProxy, startProxy, tempConfig } from '../helpers/proxy.ts';
import { startEmbeddedHttpbin, type Upstream } from '../helpers/upstreams.ts';

const PLUGIN_DIR = join(ROOT, 'plugins/header-authorization-go');
/** The plugin's committed wasmplugin.yaml, its relative file:// URL made absolute. */
const PLUGIN_YAML = readFileSync(join(PLUGIN_DIR, 'wasmplugin.yaml'), 'utf8').replace(
  'file://./plugin.wasm',
  `file://${PLUGIN_DIR}/plugin.wasm`,
);
const DENIED = 'Forbidden by ASM Wasm Plugin';

interface WorkerThread {
  worker: number;
  state: 'live' | 'starting' | 'restarting';
  thread_id: number;
  restarts: number;
  last_exit?: { code: number; reason: string };
  downstream_cx_active?: number;
  downstream_rq_total?: Record<string, number>;
}

interface ConfigDump {
  workers: number;
  worker_threads: WorkerThread[];
  wasm_plugins: { name: string; workers: { worker: number; state: string }[] }[];
}

let upstream: Upstream;
before(async () => {
  upstream = await startEmbeddedHttpbin();
});
after(async () => {
  await upstream?.close();
});

/** Starts the proxy (two workers, the plugin) with `env` added to this process's environment. */
function start(args: string[], env: Record<string, string | undefined>, dir = tempConfig({ 'p.yaml': PLUGIN_YAML })) {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  const set = (vars: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(vars)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  set(env);
  try {
    // startProxy spawns synchronously: the child gets the environment as it is now.
    return startProxy(['-c', dir, '--upstream', upstream.url, '--concurrency', '2', '--access-log', 'off', ...args]);
  } finally {
    set(saved);
  }
}

const FAULTS = { WASMGATE_TEST_FAULTS: '1' };

/** An admin request that must answer within 2 s (a supervisor waiting on a dead worker would not). */
function admin(p: RunningProxy, path: string, method = 'GET', timeoutMs = 2000): Promise<Response> {
  return fetch(`http://127.0.0.1:${p.adminPort}${path}`, { method, signal: AbortSignal.timeout(timeoutMs) });
}

async function dump(p: RunningProxy): Promise<ConfigDump> {
  const res = await admin(p, '/config_dump');
  assert.equal(res.status, 200);
  return (await res.json()) as ConfigDump;
}

async function crash(p: RunningProxy, worker: number, kind: string, at = 'now'): Promise<void> {
  const res = await admin(p, `/faults/crash_worker?worker=${worker}&kind=${kind}&at=${at}`, 'POST');
  const text = await res.text();
  assert.equal(res.status, 200, text);
}

async function waitFor<T>(what: string, check: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Resolves when worker `index` is live again with `restarts` restarts. */
function replaced(p: RunningProxy, index: number, restarts: number): Promise<ConfigDump> {
  return waitFor(`worker ${index} live after ${restarts} restart(s)`, async () => {
    const d = await dump(p);
    const w = d.worker_threads[index]!;
    return w.state === 'live' && w.restarts === restarts ? d : undefined;
  });
}

/**
 * One request on a fresh connection, so the kernel picks a worker each time. The request asks for
 * keep-alive: only a draining proxy answers Connection: close.
 */
function fresh(
  port: number,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string; connection: string | undefined }> {
  const agent = new http.Agent({ keepAlive: true });
  return new Promise<{ status: number; body: string; connection: string | undefined }>((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, headers, agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          body += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, connection: res.headers.connection }));
      })
      .on('error', reject);
  }).finally(() => agent.destroy());
}

function load(url: string, seconds: number, connections = 20): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    autocannon({ url, connections, duration: seconds, headers: { allow: 'true' } }, (err, result) =>
      err ? reject(err) : resolve(result),
    );
  });
}

/**
 * Polls the admin port (/ready, /config_dump) and the health port every 50 ms until stopped:
 * every answer must come, with the expected status, within 2 s.
 */
function watchSupervisor(p: RunningProxy, ready = 200) {
  const failures: string[] = [];
  let polls = 0;
  let slowest = 0;
  let running = true;
  const probe = async (url: string, expect: number) => {
    const t0 = Date.now();
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.text();
      if (res.status !== expect) failures.push(`${url}: ${res.status}`);
    } catch (err) {
      failures.push(`${url}: ${(err as Error).message}`);
    }
    slowest = Math.max(slowest, Date.now() - t0);
  };
  const loop = (async () => {
    while (running) {
      await Promise.all([
        probe(`http://127.0.0.1:${p.adminPort}/ready`, ready),
        probe(`http://127.0.0.1:${p.adminPort}/config_dump`, 200),
        probe(`http://127.0.0.1:${p.healthPort}/healthz/ready`, ready),
      ]);
      polls++;
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  // Idempotent: tests also call it from t.after, so a failed test does not leave it polling.
  return async () => {
    running = false;
    await loop;
    return { failures, polls, slowest };
  };
}

function exited(p: RunningProxy): Promise<number | null> {
  return new Promise((r) => {
    if (p.child.exitCode !== null) r(p.child.exitCode);
    else p.child.once('exit', (code) => r(code));
  });
}

/** Sends SIGTERM and waits for the exit: its code, and how long it took. */
async function sigterm(p: RunningProxy): Promise<{ code: number | null; ms: number }> {
  const code = exited(p);
  const t0 = Date.now();
  p.child.kill('SIGTERM');
  return { code: await code, ms: Date.now() - t0 };
}

describe('the fault hook is test-only', () => {
  test('without WASMGATE_TEST_FAULTS=1 /faults/crash_worker does not exist (404)', async () => {
    const p = await start([], { WASMGATE_TEST_FAULTS: undefined });
    try {
      for (const method of ['POST', 'GET']) {
        const res = await admin(p, '/faults/crash_worker?worker=0&kind=exit', method);
        assert.equal(res.status, 404, `${method}: ${await res.text()}`);
      }
      // Nothing happened to the workers.
      const d = await dump(p);
      assert.deepEqual(
        d.worker_threads.map((w) => [w.state, w.restarts]),
        [
          ['live', 0],
          ['live', 0],
        ],
      );
    } finally {
      await p.stop();
    }
  });

  test('with it, the endpoint is POST-only and checks its arguments', async () => {
    const p = await start([], FAULTS);
    try {
      assert.equal((await admin(p, '/faults/crash_worker?worker=0&kind=exit')).status, 405);
      assert.equal((await admin(p, '/faults/crash_worker?worker=0&kind=segfault', 'POST')).status, 400);
      assert.equal((await admin(p, '/faults/crash_worker?worker=0&at=later', 'POST')).status, 400);
      const res = await admin(p, '/faults/crash_worker?worker=7&kind=exit', 'POST');
      assert.equal(res.status, 409);
      assert.match(await res.text(), /worker 7 is not running/);
    } finally {
      await p.stop();
    }
  });
});

describe('a worker that dies under load is replaced', () => {
  let p: RunningProxy;
  before(async () => {
    p = await start([], FAULTS);
  });
  after(async () => {
    await p?.stop();
  });

  for (const [kind, victim] of [
    ['throw', 1],
    ['exit', 0],
  ] as const) {
    test(`${kind === 'throw' ? 'an uncaught exception' : 'process.exit()'} in worker ${victim}`, async (t) => {
      const other = 1 - victim;
      const before = await dump(p);
      const restarts = before.worker_threads[victim]!.restarts;
      const running = load(`${p.url}/get`, 5);
      // Let autocannon's 20 keep-alive connections spread over both workers.
      await new Promise((r) => setTimeout(r, 1000));
      const atCrash = await dump(p);
      const onVictim = atCrash.worker_threads[victim]!.downstream_cx_active ?? 0;
      assert.ok(onVictim > 0, `no load connection on worker ${victim}: ${JSON.stringify(atCrash.worker_threads)}`);
      const oldThread = atCrash.worker_threads[victim]!.thread_id;

      const stopWatching = watchSupervisor(p);
      t.after(stopWatching);
      await crash(p, victim, kind);
      const after = await replaced(p, victim, restarts + 1);
      const watched = await stopWatching();
      const result = await running;

      // The supervisor survived and answered all along, on the admin and the health port.
      assert.equal(p.child.exitCode, null);
      assert.deepEqual(watched.failures, []);
      assert.ok(watched.polls > 0);
      // A new thread, its plugin loaded and running.
      const w = after.worker_threads[victim]!;
      assert.notEqual(w.thread_id, oldThread);
      assert.match(w.last_exit!.reason, kind === 'throw' ? /injected fault: uncaught exception/ : /exit code 70/);
      assert.equal(after.workers, 2);
      assert.deepEqual(
        after.wasm_plugins.map((pl) => pl.workers.map((x) => x.state)),
        [['ACTIVE', 'ACTIVE']],
      );
      // Only requests in flight on the victim's connections could fail, at most one per connection.
      const failed = result.errors + result.timeouts + result.non2xx;
      t.diagnostic(
        `${result.requests.total} requests under load, ${failed} failed; ${onVictim} connection(s) on worker ${victim}; ` +
          `admin/health polled ${watched.polls}x, slowest ${watched.slowest} ms`,
      );
      assert.ok(
        failed <= onVictim,
        `${failed} failed requests, but only ${onVictim} connection(s) were on the dead worker`,
      );
      assert.ok(result.requests.total > 100);

      // After the replacement, new connections reach both workers and every request succeeds.
      const served = after.worker_threads.map((x) => x.downstream_rq_total?.['200'] ?? 0);
      const second = await load(`${p.url}/get`, 2);
      assert.equal(second.errors, 0);
      assert.equal(second.timeouts, 0);
      assert.equal(second.non2xx, 0);
      const denied = await Promise.all(Array.from({ length: 40 }, () => fresh(p.port, '/get')));
      for (const r of denied) {
        assert.equal(r.status, 403);
        assert.equal(r.body, DENIED);
      }
      const final = await dump(p);
      for (const i of [victim, other]) {
        const rq = final.worker_threads[i]!.downstream_rq_total!;
        assert.ok((rq['200'] ?? 0) > served[i]!, `worker ${i} served no new request: ${JSON.stringify(rq)}`);
        // The plugin denies on the replacement too.
        assert.ok((rq['403'] ?? 0) > 0, `worker ${i} denied nothing: ${JSON.stringify(rq)}`);
      }
      const prom = await (await admin(p, '/stats/prometheus')).text();
      assert.match(prom, new RegExp(`^wasmgate_worker_restarts_total\\{worker="${victim}"\\} ${restarts + 1}$`, 'm'));
      assert.match(prom, /^wasmgate_worker_live\{worker="0"\} 1$/m);
      assert.match(prom, /^wasmgate_worker_live\{worker="1"\} 1$/m);
    });
  }
});

describe('the supervisor outlives', () => {
  test('a worker that dies again and again: restarted with growing backoff, admin and health answer', async (t) => {
    const p = await start([], FAULTS);
    try {
      const stopWatching = watchSupervisor(p);
      t.after(stopWatching);
      for (let n = 1; n <= 4; n++) {
        await crash(p, 1, n % 2 ? 'throw' : 'exit');
        await replaced(p, 1, n);
      }
      const watched = await stopWatching();
      assert.deepEqual(watched.failures, []);
      t.diagnostic(`admin/health polled ${watched.polls}x during 4 restarts, slowest ${watched.slowest} ms`);
      // Each death within seconds of starting waits longer than the one before.
      const delays = [...p.stderr().matchAll(/worker 1 exited \(code \d+\); restarting in (\d+) ms/g)].map((m) =>
        Number(m[1]),
      );
      assert.deepEqual(delays, [100, 500, 1000, 2000]);
      const rs = await Promise.all(Array.from({ length: 20 }, () => fresh(p.port, '/get', { allow: 'true' })));
      assert.ok(rs.every((r) => r.status === 200));
    } finally {
      await p.stop();
    }
  });

  test('a replacement that cannot start (its config became invalid) is retried with backoff; worker 0 serves', async (t) => {
    const dir = tempConfig({ 'p.yaml': PLUGIN_YAML });
    const p = await start([], FAULTS, dir);
    try {
      // The reload is rejected: the workers keep the previous configuration...
      writeFileSync(join(dir, 'p.yaml'), PLUGIN_YAML.replace('phase: AUTHN', 'phase: NOPE'));
      const rejected = await admin(p, '/reload', 'POST', 10_000);
      assert.equal(rejected.status, 400, await rejected.text());
      // ...but a replacement reads the files as they are now, and refuses them.
      const stopWatching = watchSupervisor(p);
      t.after(stopWatching);
      await crash(p, 1, 'exit');
      await p.waitForLog('restarting in 1000 ms', 20_000);
      const during = await dump(p);
      assert.equal(during.workers, 1);
      assert.notEqual(during.worker_threads[1]!.state, 'live');
      assert.match(during.worker_threads[1]!.last_exit!.reason, /configuration error/);
      // Worker 0 alone serves every new connection, with the plugin.
      const alone = await Promise.all(Array.from({ length: 20 }, () => fresh(p.port, '/get', { allow: 'true' })));
      assert.ok(alone.every((r) => r.status === 200));
      assert.equal((await fresh(p.port, '/get')).status, 403);
      // Fixed on disk: the next attempt starts.
      writeFileSync(join(dir, 'p.yaml'), PLUGIN_YAML);
      const d = await waitFor('worker 1 live again', async () => {
        const x = await dump(p);
        return x.worker_threads[1]!.state === 'live' ? x : undefined;
      });
      const watched = await stopWatching();
      assert.deepEqual(watched.failures, []);
      t.diagnostic(`${d.worker_threads[1]!.restarts} attempts; slowest admin/health answer ${watched.slowest} ms`);
      assert.ok(d.worker_threads[1]!.restarts >= 3);
      assert.equal(p.child.exitCode, null);
      const both = await Promise.all(Array.from({ length: 40 }, () => fresh(p.port, '/get', { allow: 'true' })));
      assert.ok(both.every((r) => r.status === 200));
      const rq = (await dump(p)).worker_threads[1]!.downstream_rq_total!;
      assert.ok((rq['200'] ?? 0) > 0, JSON.stringify(rq));
    } finally {
      await p.stop();
    }
  });
});

describe('a crash during drain or shutdown', () => {
  test('a worker dying when SIGTERM drains it: replaced by a draining worker; exit 0 when the drain ends', async () => {
    const p = await start(['--drain-time', '8s'], FAULTS);
    try {
      await crash(p, 1, 'throw', 'drain');
      // Slow requests keep the drain going; some of them on worker 0.
      const slow: Promise<{ status: number; connection: string | undefined }>[] = [];
      await waitFor('slow requests on worker 0', async () => {
        slow.push(fresh(p.port, '/delay/4', { allow: 'true' }).catch(() => ({ status: 0, connection: undefined })));
        await new Promise((r) => setTimeout(r, 50));
        const d = await dump(p);
        return (d.worker_threads[0]!.downstream_cx_active ?? 0) >= 2 ? true : undefined;
      });
      const code = exited(p);
      const t0 = Date.now();
      p.child.kill('SIGTERM');
      await p.waitForLog('worker 1 exited');
      // The replacement comes up draining: its answers say Connection: close.
      const d = await replaced(p, 1, 1);
      assert.equal(d.workers, 2);
      const rs = await Promise.all(Array.from({ length: 30 }, () => fresh(p.port, '/get', { allow: 'true' })));
      for (const r of rs) {
        assert.equal(r.status, 200);
        assert.equal(r.connection, 'close');
      }
      const after = await dump(p);
      assert.ok((after.worker_threads[1]!.downstream_rq_total!['200'] ?? 0) > 0, 'the replacement served nothing');
      assert.equal((await fetch(`http://127.0.0.1:${p.healthPort}/healthz/ready`)).status, 503);
      // Requests in flight on worker 0 complete; the process exits when they have.
      const done = await Promise.all(slow);
      assert.ok(done.some((r) => r.status === 200));
      assert.equal(await code, 0);
      assert.ok(Date.now() - t0 < 8000, `exit took ${Date.now() - t0} ms`);
    } finally {
      if (p.child.exitCode === null) p.child.kill('SIGKILL');
    }
  });

  test('workers dying while the supervisor closes them: exit 0 promptly, no restart', async () => {
    const p = await start([], FAULTS);
    try {
      await crash(p, 0, 'exit', 'close');
      await crash(p, 1, 'throw', 'close');
      const { code, ms } = await sigterm(p);
      assert.equal(code, 0);
      assert.ok(ms < 5000, `exit took ${ms} ms`);
      assert.match(p.stderr(), /injected fault: exit/);
      assert.doesNotMatch(p.stderr(), /restarting in/);
    } finally {
      if (p.child.exitCode === null) p.child.kill('SIGKILL');
    }
  });

  test('a shutdown while a replacement is starting does not wait for it', async () => {
    const p = await start([], FAULTS);
    try {
      await crash(p, 1, 'exit');
      await waitFor('the replacement starting', async () =>
        (await dump(p)).worker_threads[1]!.state === 'starting' ? true : undefined,
      );
      const { code, ms } = await sigterm(p);
      assert.equal(code, 0);
      assert.ok(ms < 5000, `exit took ${ms} ms`);
    } finally {
      if (p.child.exitCode === null) p.child.kill('SIGKILL');
    }
  });
});
