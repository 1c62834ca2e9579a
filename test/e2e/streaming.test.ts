// Bodies stream through the proxy with flat memory: a 100 MiB upload and a 100 MiB download, with
// and without a Wasm plugin that only looks at headers (chain-marker-go), while the proxy
// process's resident set (VmRSS of the child, sampled during the transfer) stays within a bound
// above its idle size. Bytes are checked by length and SHA-256 at the far end.
//
// A proxy that kept a whole 100 MiB body would grow by about 100 MiB, inside the bound (V8 frees
// socket buffers in batches of up to ~64 MiB, so a streaming proxy's peak already swings by tens
// of MiB): 400 MiB each way under the same bound shows that memory does not follow the body size.
//
// The embedded httpbin caps bodies at DEFAULT_MAX_BODY_SIZE (10 MiB) for /anything and
// /bytes/N, so the upstream here is a small node:http server that hashes what it receives and
// streams what it is asked for.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { DEFAULT_MAX_BODY_SIZE } from '../../src/upstream/httpbin.ts';
import { ROOT, type RunningProxy, startProxy, tempConfig, wasmPluginYaml } from '../helpers/proxy.ts';

const MiB = 1024 * 1024;
const SIZE = 100 * MiB;
/** How far above its idle RSS the proxy may grow while 100 MiB go through it. */
const RSS_BOUND = 150 * MiB;
const CHUNK = 64 * 1024;
const BLOCK = randomBytes(CHUNK);

/** Chunk i of a deterministic body: BLOCK with its first 8 bytes replaced by i. */
function chunkAt(i: number, size: number): Buffer {
  const c = Buffer.from(BLOCK.subarray(0, Math.min(CHUNK, size - i * CHUNK)));
  if (c.length >= 8) c.writeBigUInt64BE(BigInt(i));
  return c;
}

/** A body of `size` bytes, produced as it is read (backpressure: nothing is generated ahead). */
function body(size: number): Readable {
  let i = 0;
  const n = Math.ceil(size / CHUNK);
  return new Readable({
    highWaterMark: CHUNK,
    read() {
      this.push(i < n ? chunkAt(i++, size) : null);
    },
  });
}

function expectedHash(size: number): string {
  const h = createHash('sha256');
  for (let i = 0; i < Math.ceil(size / CHUNK); i++) h.update(chunkAt(i, size));
  return h.digest('hex');
}

/** POST /upload answers {length, sha256} of what it read; GET /download/N streams body(N). */
async function upstream(): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/upload') {
      const h = createHash('sha256');
      let length = 0;
      req.on('data', (c: Buffer) => {
        length += c.length;
        h.update(c);
      });
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ length, sha256: h.digest('hex') }));
      });
      return;
    }
    const m = /^\/download\/(\d+)$/.exec(req.url ?? '');
    if (m) {
      const size = Number(m[1]);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size) });
      body(size).pipe(res);
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

function rss(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

/** Samples the proxy's RSS every 25 ms while `work` runs; the peak. */
async function peakRss<T>(pid: number, work: () => Promise<T>): Promise<{ result: T; peak: number }> {
  let peak = rss(pid);
  const timer = setInterval(() => {
    peak = Math.max(peak, rss(pid));
  }, 25);
  try {
    const result = await work();
    peak = Math.max(peak, rss(pid));
    return { result, peak };
  } finally {
    clearInterval(timer);
  }
}

function upload(proxyUrl: string, size: number): Promise<{ status: number; length: number; sha256: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${proxyUrl}/upload`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
    });
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        text += d;
      });
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, ...(JSON.parse(text) as { length: number; sha256: string }) });
        } catch (err) {
          reject(new Error(`status ${res.statusCode}: ${text.slice(0, 200)} (${err})`));
        }
      });
    });
    req.on('error', reject);
    body(size).pipe(req);
  });
}

function download(proxyUrl: string, size: number): Promise<{ status: number; length: number; sha256: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(`${proxyUrl}/download/${size}`, (res) => {
        const h = createHash('sha256');
        let length = 0;
        res.on('data', (c: Buffer) => {
          length += c.length;
          h.update(c);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, length, sha256: h.digest('hex') }));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

/** Idle RSS: after a warm-up exchange, once the proxy has settled. */
async function idleRss(proxy: RunningProxy): Promise<number> {
  await upload(proxy.url, MiB);
  await download(proxy.url, MiB);
  await new Promise((r) => setTimeout(r, 300));
  return rss(proxy.child.pid!);
}

const EXPECTED = expectedHash(SIZE);
const BIG = 400 * MiB;

for (const withPlugin of [false, true]) {
  describe(`100 MiB through the proxy ${withPlugin ? 'with a header-only Wasm plugin' : 'without plugins'}`, () => {
    let up: Awaited<ReturnType<typeof upstream>>;
    let proxy: RunningProxy;
    let idle = 0;
    before(async () => {
      up = await upstream();
      const files: Record<string, string> = withPlugin
        ? {
            'p.yaml': wasmPluginYaml({
              name: 'marker',
              url: `file://${join(ROOT, 'plugins/chain-marker-go/plugin.wasm')}`,
            }),
          }
        : {};
      proxy = await startProxy(['-c', tempConfig(files), '--upstream', up.url, '--access-log', 'off']);
      idle = await idleRss(proxy);
    });
    after(async () => {
      await proxy?.stop();
      await up?.close();
    });

    test('a 100 MiB upload arrives whole, with flat proxy memory', async (t) => {
      assert.ok(SIZE > DEFAULT_MAX_BODY_SIZE, 'bigger than the embedded httpbin accepts');
      const { result, peak } = await peakRss(proxy.child.pid!, () => upload(proxy.url, SIZE));
      assert.equal(result.status, 200);
      assert.equal(result.length, SIZE);
      assert.equal(result.sha256, EXPECTED);
      const growth = peak - idle;
      t.diagnostic(`proxy RSS: idle ${(idle / MiB).toFixed(1)} MiB, peak +${(growth / MiB).toFixed(1)} MiB`);
      assert.ok(
        growth < RSS_BOUND,
        `proxy RSS grew by ${(growth / MiB).toFixed(1)} MiB (idle ${(idle / MiB).toFixed(1)} MiB)`,
      );
    });

    test('a 100 MiB download arrives whole, with flat proxy memory', async (t) => {
      const { result, peak } = await peakRss(proxy.child.pid!, () => download(proxy.url, SIZE));
      assert.equal(result.status, 200);
      assert.equal(result.length, SIZE);
      assert.equal(result.sha256, EXPECTED);
      const growth = peak - idle;
      t.diagnostic(`proxy RSS: idle ${(idle / MiB).toFixed(1)} MiB, peak +${(growth / MiB).toFixed(1)} MiB`);
      assert.ok(
        growth < RSS_BOUND,
        `proxy RSS grew by ${(growth / MiB).toFixed(1)} MiB (idle ${(idle / MiB).toFixed(1)} MiB)`,
      );
    });

    if (!withPlugin)
      test('400 MiB each way stay under the same bound: memory does not follow the body size', async (t) => {
        const expected = expectedHash(BIG);
        const up1 = await peakRss(proxy.child.pid!, () => upload(proxy.url, BIG));
        assert.deepEqual([up1.result.length, up1.result.sha256], [BIG, expected]);
        const down = await peakRss(proxy.child.pid!, () => download(proxy.url, BIG));
        assert.deepEqual([down.result.length, down.result.sha256], [BIG, expected]);
        for (const [what, peak] of [
          ['upload', up1.peak],
          ['download', down.peak],
        ] as const) {
          const growth = peak - idle;
          t.diagnostic(`${what} 400 MiB: proxy RSS peak +${(growth / MiB).toFixed(1)} MiB`);
          assert.ok(growth < RSS_BOUND, `${what}: proxy RSS grew by ${(growth / MiB).toFixed(1)} MiB`);
        }
      });
  });
}
