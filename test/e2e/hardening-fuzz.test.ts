// A bounded raw-HTTP fuzz run (checklist C.6): for a few seconds, mutated and random request bytes
// go to the proxy over many sockets at once. The proxy never crashes and never leaves a connection
// hanging: each one gets a response or is closed (within the short timeouts set here). Afterwards
// it still serves, and no connection is left open. FUZZ_SECONDS overrides the duration; a failing
// input is printed so that it can become a regression test in hardening.test.ts.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { gatewayYaml, type RunningProxy, startProxy, tempConfig } from '../helpers/proxy.ts';
import { adminStats, eventually, type RecordingUpstream, startRecordingUpstream } from './hardening-helpers.ts';

const SECONDS = Number(process.env.FUZZ_SECONDS ?? 8);
const PARALLEL = 16;

let up: RecordingUpstream;
let proxy: RunningProxy;
before(async () => {
  up = await startRecordingUpstream();
  proxy = await startProxy([
    '-c',
    tempConfig({ 'gw.yaml': gatewayYaml(up.port) }),
    '--headers-timeout',
    '1s',
    '--request-timeout',
    '2s',
    '--stream-idle-timeout',
    '1s',
    '--idle-timeout',
    '1s',
    '--access-log',
    'off',
  ]);
});
after(async () => {
  await proxy?.stop();
  await up?.close();
});

const CORPUS = [
  'GET / HTTP/1.1\r\nHost: a\r\n\r\n',
  'GET /anything?x=1 HTTP/1.1\r\nHost: a\r\nUser-Agent: fuzz\r\nAccept: */*\r\n\r\n',
  'POST /anything HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello',
  'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
  'PUT /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nTrailer-A: 1\r\n\r\n',
  'GET http://a/b HTTP/1.1\r\nHost: b\r\n\r\n',
  'GET / HTTP/1.0\r\n\r\n',
  'OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n',
  'GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc',
  'GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n',
  'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x06\x01\x05\x00\x00\x00\x01\x82\x86\x84\x41\x01\x61',
];
const SPECIAL = [
  '\r',
  '\n',
  '\r\n',
  '\x00',
  ' ',
  '\t',
  ':',
  ',',
  ';',
  '%',
  '#',
  '\x7f',
  '\xff',
  '0',
  'chunked',
  'Content-Length: 3',
  'Transfer-Encoding: chunked',
  'Host: b',
  '\r\n\r\n',
  '_',
  '..',
  '//',
  '%2F',
];

const mutation = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.constantFrom(...SPECIAL) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('dup' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 40 }) }),
);
const input = fc.oneof(
  {
    weight: 8,
    arbitrary: fc
      .tuple(fc.nat({ max: CORPUS.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 6 }))
      .map(([i, ms]) => {
        let b = Buffer.from(CORPUS[i]!, 'latin1');
        for (const m of ms) {
          const at = b.length === 0 ? 0 : m.at % b.length;
          if (m.kind === 'flip') b[at] = m.byte;
          else if (m.kind === 'insert')
            b = Buffer.concat([b.subarray(0, at), Buffer.from(m.text, 'latin1'), b.subarray(at)]);
          else if (m.kind === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.len)]);
          else if (m.kind === 'cut') b = b.subarray(0, at);
          else b = Buffer.concat([b.subarray(0, at + m.len), b.subarray(at)]);
        }
        return b;
      }),
  },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 400 }).map((a) => Buffer.from(a)) },
);

/** Sends `bytes` (half-closing or not); resolves with how the proxy reacted, or 'hang'. */
function probe(bytes: Buffer, halfClose: boolean): Promise<'answered' | 'closed' | 'hang'> {
  return new Promise((resolve) => {
    const s = net.connect(proxy.port, '127.0.0.1');
    let answered = false;
    const timer = setTimeout(() => {
      s.destroy();
      resolve(answered ? 'answered' : 'hang');
    }, 5000);
    s.on('error', () => {});
    s.on('data', (d: Buffer) => {
      if (!answered && (d.subarray(0, 7).toString() === 'HTTP/1.' || d[3] === 4 || d[3] === 7)) {
        answered = true;
        clearTimeout(timer);
        s.destroy();
        resolve('answered');
      }
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve(answered ? 'answered' : 'closed');
    });
    s.on('connect', () => {
      s.write(bytes);
      if (halfClose) s.end();
    });
  });
}

test(`raw HTTP fuzz for ${SECONDS}s: never a crash, never a hang`, { timeout: (SECONDS + 30) * 1000 }, async () => {
  const samples = fc.sample(fc.tuple(input, fc.boolean()), {
    numRuns: 100_000,
    seed: Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31),
  });
  const deadline = Date.now() + SECONDS * 1000;
  const counts = { answered: 0, closed: 0, hang: 0 };
  const hangs: string[] = [];
  let next = 0;
  const worker = async () => {
    while (Date.now() < deadline && next < samples.length) {
      const [bytes, halfClose] = samples[next++]!;
      const r = await probe(bytes, halfClose);
      counts[r]++;
      if (r === 'hang' && hangs.length < 5) hangs.push(JSON.stringify(bytes.toString('latin1')));
      assert.equal(proxy.child.exitCode, null, `proxy exited after ${JSON.stringify(bytes.toString('latin1'))}`);
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
  process.stderr.write(`raw fuzz: ${JSON.stringify(counts)} inputs in ${SECONDS}s\n`);
  assert.equal(counts.hang, 0, `connections left hanging:\n${hangs.join('\n')}`);
  assert.ok(counts.answered + counts.closed > 100, 'the run sent enough inputs');
  assert.doesNotMatch(proxy.stderr(), /Uncaught|TypeError|RangeError|filter chain failed/);
  const res = await fetch(`${proxy.url}/after-fuzz`);
  assert.equal(res.status, 200);
  await res.text();
  assert.ok(
    await eventually(async () => (await adminStats(proxy.adminPort)).get('server.downstream_cx_active') === 0, 5000),
    'every fuzz connection closed',
  );
});
