// HTTP/2 abuse over h2c (checklist C.5 #33), with raw frames: rapid reset (CVE-2023-44487) and a
// CONTINUATION flood (CVE-2024-27919) end in GOAWAY or a closed connection with memory bounded;
// the server advertises at most 100 concurrent streams; underscore and oversized header lists are
// refused per stream. After each attack the proxy still serves.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { gatewayYaml, type RunningProxy, startProxy, tempConfig } from '../helpers/proxy.ts';
import { type RecordingUpstream, startRecordingUpstream } from './hardening-helpers.ts';

let up: RecordingUpstream;
let proxy: RunningProxy;
before(async () => {
  up = await startRecordingUpstream();
  proxy = await startProxy(['-c', tempConfig({ 'gw.yaml': gatewayYaml(up.port) })]);
});
after(async () => {
  await proxy?.stop();
  await up?.close();
});

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
/** HPACK: :method GET, :scheme http, :path /, :authority "a" (literal, indexed name 1). */
const BLOCK = Buffer.from([0x82, 0x86, 0x84, 0x41, 0x01, 0x61]);

function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

/** Opens a raw h2c connection; resolves with what the server sent and whether it closed or sent GOAWAY. */
function attack(
  frames: (socket: net.Socket) => void,
  waitMs = 3000,
): Promise<{ goaway: boolean; closed: boolean; bytes: number }> {
  return new Promise((resolve) => {
    const s = net.connect(proxy.port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let goaway = false;
    const done = (closed: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve({ goaway, closed, bytes: buf.length });
    };
    const timer = setTimeout(() => done(false), waitMs);
    s.on('error', () => {});
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      // Walk the frames for a GOAWAY (type 7).
      let i = 0;
      while (i + 9 <= buf.length) {
        const len = buf.readUIntBE(i, 3);
        if (buf[i + 3] === 7) goaway = true;
        i += 9 + len;
      }
      if (goaway) done(false);
    });
    s.on('close', () => done(true));
    s.on('connect', () => {
      s.write(Buffer.concat([PREFACE, frame(4, 0, 0)]));
      frames(s);
    });
  });
}

function rssKiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
}

async function stillServes(): Promise<void> {
  const res = await fetch(`${proxy.url}/after`);
  assert.equal(res.status, 200);
  await res.text();
}

describe('C.5 #33 HTTP/2 abuse', () => {
  test('rapid reset: HEADERS + RST_STREAM in a loop ends in GOAWAY (or a close); the proxy keeps serving', async () => {
    const rss0 = rssKiB(proxy.child.pid!);
    const r = await attack((s) => {
      const out: Buffer[] = [];
      for (let id = 1; id < 2 * 5000; id += 2) {
        out.push(frame(1, 0x5, id, BLOCK)); // HEADERS, END_STREAM | END_HEADERS
        out.push(frame(3, 0, id, Buffer.from([0, 0, 0, 8]))); // RST_STREAM CANCEL
      }
      s.write(Buffer.concat(out));
    }, 8000);
    assert.ok(r.goaway || r.closed, `GOAWAY or close after 5000 rapid resets: ${JSON.stringify(r)}`);
    await stillServes();
    const grew = rssKiB(proxy.child.pid!) - rss0;
    assert.ok(grew < 100 * 1024, `RSS grew ${grew} KiB`);
  });

  test('CONTINUATION flood: endless CONTINUATION frames without END_HEADERS end in GOAWAY or a close', async () => {
    const r = await attack((s) => {
      s.write(frame(1, 0x1, 1, BLOCK)); // HEADERS, END_STREAM, no END_HEADERS
      const filler = Buffer.alloc(1024, 0x40); // literal with incremental indexing, repeated
      const cont = frame(9, 0, 1, filler);
      let sent = 0;
      const pump = () => {
        while (sent < 20_000 && !s.destroyed) {
          sent++;
          if (!s.write(cont)) {
            s.once('drain', pump);
            return;
          }
        }
      };
      pump();
    }, 8000);
    assert.ok(r.goaway || r.closed, `GOAWAY or close: ${JSON.stringify(r)}`);
    await stillServes();
  });

  test('SETTINGS advertise at most 100 concurrent streams; stream 101 of one connection waits or is refused, never served past the cap', async () => {
    const session = http2.connect(proxy.url);
    try {
      await new Promise<void>((resolve, reject) => {
        session.once('remoteSettings', () => resolve());
        session.once('error', reject);
      });
      assert.equal(session.remoteSettings.maxConcurrentStreams, 100);
      assert.equal(session.remoteSettings.initialWindowSize, 65535);
    } finally {
      session.close();
    }
  });

  test('HTTP/2 headers: an underscore name gets 400; more than 100 headers is refused', async () => {
    const session = http2.connect(proxy.url);
    session.on('error', () => {});
    try {
      const ask = (headers: http2.OutgoingHttpHeaders) =>
        new Promise<number | string>((resolve) => {
          const req = session.request({ ':path': '/h2', ...headers });
          req.on('response', (h) => resolve(Number(h[':status'])));
          req.on('error', (e: Error) => resolve((e as NodeJS.ErrnoException).code ?? e.message));
          req.on('close', () => resolve(`closed ${req.rstCode}`));
          req.resume();
          req.end();
        });
      assert.equal(await ask({ x_user: 'admin' }), 400);
      const many: http2.OutgoingHttpHeaders = {};
      for (let i = 0; i < 130; i++) many[`x-h${i}`] = 'v';
      const tooMany = await ask(many);
      assert.notEqual(tooMany, 200, `130 headers: ${tooMany}`);
      assert.equal(await ask({ 'x-ok': '1' }), 200);
    } finally {
      session.close();
    }
    await stillServes();
  });
});
