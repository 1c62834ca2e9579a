// Slow and vanishing clients (checklist C.5 #30-#32, #35) against a proxy run with short limits:
// slowloris heads and bodies are cut off by the header, request and stream-idle timeouts, idle
// keep-alive connections close, a silent upstream gets 504 at the route timeout, connections over
// --max-connections are refused, and client aborts leave no connection, pooled request or file
// descriptor behind (admin /stats, /clusters and /proc/<pid>/fd).
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { gatewayYaml, type RunningProxy, startProxy, tempConfig } from '../helpers/proxy.ts';
import { startEmbeddedHttpbin, type Upstream } from '../helpers/upstreams.ts';
import { adminStats, eventually, rawRequest } from './hardening-helpers.ts';

const H = 'Host: a\r\n';
let httpbin: Upstream;
let hang: net.Server;
let hangPort: number;
let proxy: RunningProxy;

function config(httpbinPort: number): string {
  return gatewayYaml(httpbinPort, '', {
    routes: `  - match: [{uri: {prefix: /hang}}]
    timeout: 1s
    route: [{destination: {host: 127.0.0.1, port: {number: ${hangPort}}}}]
  - route: [{destination: {host: 127.0.0.1, port: {number: ${httpbinPort}}}}]`,
  });
}

/** Open file descriptors of a process. */
function fds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

before(async () => {
  httpbin = await startEmbeddedHttpbin();
  // An upstream that accepts and never answers.
  hang = net.createServer((s) => s.on('error', () => {}));
  await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
  hangPort = (hang.address() as net.AddressInfo).port;
  proxy = await startProxy([
    '-c',
    tempConfig({ 'gw.yaml': config(httpbin.port) }),
    '--headers-timeout',
    '1s',
    '--request-timeout',
    '3s',
    '--stream-idle-timeout',
    '1s',
    '--idle-timeout',
    '1s',
  ]);
});
after(async () => {
  await proxy?.stop();
  await httpbin?.close();
  hang?.close();
});

describe('C.5 #30-#31 slow clients are cut off by timeouts', () => {
  test('#30 slowloris: a head trickled byte by byte gets 408 and a close at the headers timeout', async () => {
    const start = Date.now();
    const bytes = `GET / HTTP/1.1\r\n${H}X-Slow: ${'b'.repeat(40)}`.split('');
    const r = await rawRequest(proxy.port, bytes, { gapMs: 100, timeoutMs: 8000 });
    const took = Date.now() - start;
    assert.equal(r.status, 408, r.raw);
    assert.equal(r.closed, true);
    assert.ok(took >= 900 && took < 2500, `cut after ${took} ms`);
    const logs = await proxy.accessLogs(1);
    assert.ok(logs.some((l) => l.response_code === 408 && l.response_flags === 'DPE'));
  });

  test('#30 a connection that never sends a byte is closed at the headers timeout', async () => {
    const start = Date.now();
    const closed = await new Promise<number>((resolve) => {
      const s = net.connect(proxy.port, '127.0.0.1');
      s.on('error', () => {});
      s.on('close', () => resolve(Date.now() - start));
    });
    assert.ok(closed >= 900 && closed < 2500, `closed after ${closed} ms`);
  });

  test('#31 a stalled body gets 408 at the stream idle timeout; a trickled one at the request timeout', async () => {
    let start = Date.now();
    const stalled = await rawRequest(proxy.port, `POST /anything HTTP/1.1\r\n${H}Content-Length: 10\r\n\r\nab`, {
      timeoutMs: 5000,
    });
    let took = Date.now() - start;
    assert.equal(stalled.status, 408);
    assert.equal(stalled.closed, true);
    assert.ok(took >= 900 && took < 2500, `stalled body cut after ${took} ms`);
    // 1 byte every 250 ms keeps the stream alive, but the whole request must arrive within 3 s.
    start = Date.now();
    const trickle = await rawRequest(
      proxy.port,
      [`POST /anything HTTP/1.1\r\n${H}Content-Length: 100\r\n\r\n`, ...'x'.repeat(40).split('')],
      { gapMs: 250, timeoutMs: 8000 },
    );
    took = Date.now() - start;
    assert.equal(trickle.status, 408);
    assert.equal(trickle.closed, true);
    assert.ok(took >= 2800 && took < 5500, `trickled body cut after ${took} ms`);
    const logs = await proxy.accessLogs(2);
    const details = logs.filter((l) => l.response_code === 408).map((l) => l.response_code_details);
    assert.ok(details.includes('stream_idle_timeout'), String(details));
    assert.ok(details.includes('request_overall_timeout'), String(details));
  });

  test('#31 an idle keep-alive connection is closed at the idle timeout', async () => {
    const start = Date.now();
    const r = await rawRequest(proxy.port, `GET /get HTTP/1.1\r\n${H}\r\n`, { closeWaitMs: 3000, timeoutMs: 5000 });
    assert.equal(r.status, 200);
    assert.equal(r.closed, true);
    const took = Date.now() - start;
    assert.ok(took >= 900 && took < 2500, `closed after ${took} ms`);
  });

  test('#31 an upstream that never answers: 504 at the route timeout, not a hang', async () => {
    const start = Date.now();
    const r = await rawRequest(proxy.port, `GET /hang HTTP/1.1\r\n${H}\r\n`, { timeoutMs: 5000 });
    assert.equal(r.status, 504);
    assert.ok(Date.now() - start < 2500);
  });
});

describe('C.5 #35 client aborts leave nothing behind', () => {
  test('aborted uploads and downloads: connections, pooled requests and fds return to baseline', async () => {
    const pid = proxy.child.pid!;
    // Warm up (pools, lazily opened files) before taking the baseline.
    for (let i = 0; i < 3; i++) await rawRequest(proxy.port, `GET /get HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
    await eventually(async () => (await adminStats(proxy.adminPort)).get('server.downstream_cx_active') === 0);
    const baseline = fds(pid);
    const abortOne = (bytes: string, afterMs: number) =>
      new Promise<void>((resolve) => {
        const s = net.connect(proxy.port, '127.0.0.1', () => s.write(bytes));
        s.on('error', () => {});
        s.once('data', () => s.destroy());
        setTimeout(() => s.destroy(), afterMs);
        s.on('close', () => resolve());
      });
    const rounds: Promise<void>[] = [];
    for (let i = 0; i < 100; i++) {
      // Mid-upload: half of the declared body, then gone.
      rounds.push(abortOne(`POST /anything HTTP/1.1\r\n${H}Content-Length: 100000\r\n\r\n${'u'.repeat(50_000)}`, 50));
      // Mid-download: /drip sends over 2 s; the client leaves at the first bytes.
      rounds.push(abortOne(`GET /drip?numbytes=20&duration=2 HTTP/1.1\r\n${H}\r\n`, 1000));
      if (rounds.length >= 40) await Promise.all(rounds.splice(0));
    }
    await Promise.all(rounds);
    const settled = await eventually(async () => {
      const stats = await adminStats(proxy.adminPort);
      const clusters = await (await fetch(`http://127.0.0.1:${proxy.adminPort}/clusters`)).text();
      const active = [...clusters.matchAll(/::rq_active::(\d+)/g)].map((m) => Number(m[1]));
      return stats.get('server.downstream_cx_active') === 0 && active.every((n) => n === 0);
    }, 8000);
    assert.ok(settled, `downstream_cx_active or rq_active did not return to 0`);
    const fdsSettled = await eventually(() => fds(pid) <= baseline + 4, 8000);
    assert.ok(fdsSettled, `fds: baseline ${baseline}, now ${fds(pid)}`);
  });
});

describe('C.5 #32 connection cap', () => {
  test('--max-connections 3: the 4th connection is refused, the 3 open ones keep working', async () => {
    const p = await startProxy(['-c', tempConfig({ 'gw.yaml': gatewayYaml(httpbin.port) }), '--max-connections', '3']);
    const sockets: net.Socket[] = [];
    try {
      const ask = (s: net.Socket) =>
        new Promise<string>((resolve) => {
          let buf = '';
          const onData = (d: Buffer) => {
            buf += d.toString();
            if (/\r\n\r\n/.test(buf) && buf.includes('"url"')) {
              s.off('data', onData);
              resolve(buf.slice(0, 12));
            }
          };
          s.on('data', onData);
          s.write(`GET /get HTTP/1.1\r\n${H}\r\n`);
        });
      for (let i = 0; i < 3; i++) {
        const s = net.connect(p.port, '127.0.0.1');
        s.on('error', () => {});
        await new Promise((r) => s.once('connect', r));
        sockets.push(s);
        assert.equal(await ask(s), 'HTTP/1.1 200');
      }
      const extra = await rawRequest(p.port, `GET /get HTTP/1.1\r\n${H}\r\n`, { timeoutMs: 2000 }).catch(
        (e: Error) => e.message,
      );
      assert.ok(
        typeof extra === 'string' || (extra.status === 0 && extra.closed),
        `4th connection refused: ${JSON.stringify(extra)}`,
      );
      for (const s of sockets) assert.equal(await ask(s), 'HTTP/1.1 200', 'existing connections unaffected');
    } finally {
      for (const s of sockets) s.destroy();
      await p.stop();
    }
  });
});
