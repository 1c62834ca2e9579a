// V8's allocation-site pretenuring is off in wasmgate (src/server/v8-tuning.ts, the CLI's first
// import): under load it moved every request's objects into the old generation. V8 reports its pretenuring decisions
// with --trace-pretenuring-statistics; these tests read that report.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { ROOT, tempConfig } from '../helpers/proxy.ts';
import { startEmbeddedHttpbin, type Upstream } from '../helpers/upstreams.ts';

const TRACE = '--trace-pretenuring-statistics';
const TENURED = /pretenuring: .*tenured=[1-9]/;

/** Objects from one literal, all kept alive: V8 decides to allocate that literal in old space. */
function workload(tuned: boolean): string {
  const tuning = pathToFileURL(join(ROOT, 'src/server/v8-tuning.ts')).href;
  return `${tuned ? `await import(${JSON.stringify(tuning)});\n` : ''}
function make(i) { return { a: i, b: [i, i], c: { d: i } }; }
let keep = [];
for (let r = 0; r < 60; r++) { for (let i = 0; i < 50000; i++) keep.push(make(i)); if (keep.length > 1e6) keep = []; }
console.log('kept ' + keep.length);`;
}

function runNode(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`node exited ${code}:\n${out}`))));
  });
}

describe('allocation-site pretenuring', () => {
  test('V8 pretenures literals that survive (the control), and not once v8-tuning is loaded', async () => {
    const plain = await runNode([TRACE, '--input-type=module', '-e', workload(false)]);
    assert.match(plain, /kept \d+/);
    assert.match(plain, TENURED, 'without the tuning V8 pretenures this workload');
    const tuned = await runNode([TRACE, '--input-type=module', '-e', workload(true)]);
    assert.match(tuned, /kept \d+/);
    assert.doesNotMatch(tuned, /pretenuring:/);
  });

  describe('wasmgate run', () => {
    let upstream: Upstream;
    before(async () => {
      upstream = await startEmbeddedHttpbin();
    });
    after(() => upstream.close());

    test('it makes no pretenuring decision, starting or under load', async () => {
      const child = spawn(
        process.execPath,
        [
          TRACE,
          // The installed command (dist/, built by npm test), as users start it.
          join(ROOT, 'bin/wasmgate.js'),
          'run',
          '-c',
          tempConfig({}),
          '--port',
          '0',
          '--admin-port=-1',
          '--health-port=-1',
          '--host',
          '127.0.0.1',
          '--access-log',
          'off',
          '--concurrency',
          '2',
          '--upstream',
          upstream.url,
        ],
        { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
      });
      child.stderr.on('data', (d) => {
        out += d;
      });
      try {
        const deadline = Date.now() + 30_000;
        let m: RegExpExecArray | null = null;
        while (!(m = /listening on [^:]+:(\d+):/.exec(out))) {
          assert.ok(Date.now() < deadline && child.exitCode === null, `wasmgate did not start:\n${out}`);
          await new Promise((r) => setTimeout(r, 50));
        }
        const port = Number(m[1]);
        // 40 keep-alive connections, 150 requests each: enough for many scavenges on both workers.
        const agent = new http.Agent({ keepAlive: true, maxSockets: 40 });
        let ok = 0;
        await Promise.all(
          Array.from({ length: 40 }, async () => {
            for (let i = 0; i < 150; i++) {
              const status = await new Promise<number>((resolve, reject) => {
                http
                  .get({ host: '127.0.0.1', port, path: '/get', agent }, (res) => {
                    res.resume();
                    res.on('end', () => resolve(res.statusCode ?? 0));
                  })
                  .on('error', reject);
              });
              if (status === 200) ok++;
            }
          }),
        );
        agent.destroy();
        assert.equal(ok, 6000);
        // V8 prints a statistics line after each scavenge that found allocation mementos, and
        // there are none to find with pretenuring off.
        assert.doesNotMatch(out, /pretenuring:/);
      } finally {
        child.kill('SIGKILL');
      }
    });
  });
});
