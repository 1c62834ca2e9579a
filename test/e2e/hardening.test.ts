// The attack checklist (shared reference operators.md, section C.5), each item over a raw socket
// against the running proxy: the exact status, whether the connection closes, and what the
// upstream received (a recording upstream keeps every request as it arrived). An authz policy
// denies /admin*, so that "what authz sees is what the upstream gets" is checked too.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { BAD_CHUNK_BODIES } from '../helpers/attack-cases.ts';
import { gatewayYaml, type RunningProxy, startProxy, tempConfig } from '../helpers/proxy.ts';
import {
  denyAdminPolicy,
  type RawResponse,
  type RecordingUpstream,
  rawRequest,
  type SeenRequest,
  startRecordingUpstream,
} from './hardening-helpers.ts';

const POLICY = denyAdminPolicy('{hosts: ["evil.example"]}');

let up: RecordingUpstream;
let proxy: RunningProxy;
before(async () => {
  up = await startRecordingUpstream();
  proxy = await startProxy(['-c', tempConfig({ 'gw.yaml': gatewayYaml(up.port, POLICY) })]);
});
after(async () => {
  await proxy?.stop();
  await up?.close();
});

const H = 'Host: a\r\n';

/** Sends `bytes` and returns the answer and what the upstream saw for it. */
async function send(
  bytes: string | Buffer | (string | Buffer)[],
  opts = {},
): Promise<RawResponse & { seen: SeenRequest[] }> {
  up.reset();
  const r = await rawRequest(proxy.port, bytes, opts);
  return { ...r, seen: up.seen.slice() };
}

/** Header value as the upstream received it (first line of that name). */
function header(s: SeenRequest, name: string): string | undefined {
  for (let i = 0; i < s.rawHeaders.length; i += 2)
    if (s.rawHeaders[i]!.toLowerCase() === name) return s.rawHeaders[i + 1];
  return undefined;
}
function names(s: SeenRequest): string[] {
  return s.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
}

/** A request refused with `status` and a closed connection; nothing reached the upstream. */
async function refused(bytes: string | Buffer, status: number) {
  const r = await send(bytes);
  assert.equal(r.status, status, `${JSON.stringify(bytes.toString().slice(0, 120))}: ${r.raw.slice(0, 200)}`);
  assert.equal(r.closed, true, `connection closed after ${JSON.stringify(bytes.toString().slice(0, 80))}`);
  assert.equal(r.seen.length, 0, 'nothing reached the upstream');
  assert.equal(r.responses, 1);
  return r;
}

describe('C.5 HTTP/1 framing and smuggling', () => {
  test('#1 Content-Length with Transfer-Encoding: chunked -> 400 + close', async () => {
    await refused(`POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400);
    await refused(`POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n`, 400);
  });

  test('#2 two different Content-Lengths, and "5, 6" -> 400', async () => {
    await refused(`POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`, 400);
    await refused(`POST / HTTP/1.1\r\n${H}Content-Length: 5, 6\r\n\r\nhello!`, 400);
  });

  test('#3 duplicate identical Content-Length and "5, 5" -> 400 (never collapsed)', async () => {
    await refused(`POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello`, 400);
    await refused(`POST / HTTP/1.1\r\n${H}Content-Length: 5, 5\r\n\r\nhello`, 400);
  });

  test('#4 malformed Content-Length (+, -, 0x, 1Z, empty, VT/FF, over 2^53) -> 400', async () => {
    for (const v of ['+5', '-5', '0x5', '1Z', '', '\x0b5', '\x0c5', '5 5', '9007199254740993', '99999999999999999999'])
      await refused(`POST / HTTP/1.1\r\n${H}Content-Length: ${v}\r\n\r\nhello`, 400);
  });

  test('#4 optional whitespace around a Content-Length value is RFC 9110 OWS: accepted, forwarded as 5', async () => {
    const r = await send(`POST /anything HTTP/1.1\r\n${H}Content-Length:\t5 \r\n\r\nhello`);
    assert.equal(r.status, 200);
    assert.equal(r.seen.length, 1);
    assert.equal(header(r.seen[0]!, 'content-length'), '5');
    assert.equal(r.seen[0]!.body, 'hello');
  });

  test('#5 Transfer-Encoding other than exactly "chunked" -> 400 (parser) or 501 (Envoy: invalid_transfer_encoding)', async () => {
    await refused(`POST / HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`, 501);
    await refused(`POST / HTTP/1.1\r\n${H}Transfer-Encoding: ,chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, 501);
    await refused(`POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`, 501);
    await refused(`POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`, 400);
    await refused(`POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\x0b\r\n\r\n0\r\n\r\n`, 400);
    await refused(
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
      400,
    );
    await refused(`POST / HTTP/1.1\r\n${H}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n`, 400);
  });

  test('#6 Transfer-Encoding on HTTP/1.0 -> 400 + close', async () => {
    await refused(`POST / HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, 400);
  });

  test('#7 bad chunk syntax (0x5, +5, " 5", 5Z, bare CR/LF terminators, CR in chunk-ext) -> 400', async () => {
    for (const body of BAD_CHUNK_BODIES)
      await refused(`POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${body}`, 400);
  });

  test('#8 whitespace before the colon, tab-prefixed first header -> 400', async () => {
    await refused(`POST / HTTP/1.1\r\n${H}Content-Length : 5\r\n\r\nhello`, 400);
    await refused(`GET / HTTP/1.1\r\n\tHost: a\r\n\r\n`, 400);
  });

  test('#9 obs-fold -> 400', async () => {
    await refused(`GET / HTTP/1.1\r\n${H}X-A: b\r\n c\r\n\r\n`, 400);
  });

  test('#10 bare-LF line endings, a head ending in \\r\\n\\rX -> 400', async () => {
    await refused(`GET / HTTP/1.1\nHost: a\nX-A: b\n\n`, 400);
    await refused(`GET / HTTP/1.1\r\n${H}X-A: b\n\r\n`, 400);
    await refused(`GET / HTTP/1.1\r\n${H}X-A: b\r\n\rX`, 400);
  });

  test('#11 NUL/CR in a value, non-token or 8-bit name byte, empty name, no colon -> 400, never forwarded', async () => {
    for (const line of ['X-A: b\x00c', 'X-A: b\rc', 'X-\x80: b', 'X-(: b', 'User Agent: b', ': x', 'xyz'])
      await refused(Buffer.from(`GET / HTTP/1.1\r\n${H}${line}\r\n\r\n`, 'latin1'), 400);
  });

  test('#12 DELETE and OPTIONS with a chunked body: forwarded with correct framing, one request upstream', async () => {
    for (const method of ['DELETE', 'OPTIONS']) {
      const r = await send(
        `${method} /anything HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /second HTTP/1.1\r\n${H}\r\n`,
      );
      assert.equal(r.status, 200);
      assert.equal(r.responses, 2, 'both pipelined requests answered');
      // Node starts pipelined requests at once, so the upstream may finish them in either order.
      assert.deepEqual(
        r.seen.map((s) => [s.method, s.url, s.body]).sort(),
        [
          [method, '/anything', 'hello'],
          ['GET', '/second', ''],
        ].sort(),
      );
      const s = r.seen.find((x) => x.method === method)!;
      assert.ok(header(s, 'content-length') === '5' || header(s, 'transfer-encoding') === 'chunked');
    }
  });

  test('#13 GET with a Content-Length body: body forwarded with the same Content-Length', async () => {
    const r = await send(`GET /anything HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhello`);
    assert.equal(r.status, 200);
    assert.equal(r.seen.length, 1);
    assert.equal(header(r.seen[0]!, 'content-length'), '5');
    assert.equal(r.seen[0]!.body, 'hello');
  });

  test('#14 CL.TE / TE.CL / TE.TE smuggling payloads: refused, the smuggled request never reaches the upstream', async () => {
    const smuggled = `GET /admin HTTP/1.1\r\n${H}\r\n`;
    // CL.TE: a front end that trusts CL forwards the smuggled request inside the body.
    await refused(
      `POST / HTTP/1.1\r\n${H}Content-Length: ${5 + smuggled.length}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`,
      400,
    );
    // TE.CL
    const chunk = `${smuggled.length.toString(16)}\r\n${smuggled}\r\n0\r\n\r\n`;
    await refused(`POST / HTTP/1.1\r\n${H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n${chunk}`, 400);
    // TE.TE with an obfuscated second Transfer-Encoding
    await refused(`POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n${chunk}`, 400);
    await refused(`POST / HTTP/1.1\r\n${H}Transfer-Encoding: ,chunked\r\nContent-Length: 4\r\n\r\n${chunk}`, 400);
    // A well-framed body that looks like a request stays a body: the upstream sees one POST.
    const r = await send(`POST /anything HTTP/1.1\r\n${H}Content-Length: ${smuggled.length}\r\n\r\n${smuggled}`);
    assert.equal(r.status, 200);
    assert.deepEqual(
      r.seen.map((s) => [s.method, s.url, s.body]),
      [['POST', '/anything', smuggled]],
    );
    // Pipelined requests: the upstream sees exactly the requests the proxy logged.
    const before = (await proxy.accessLogs(0)).length;
    const p = await send(
      `GET /one HTTP/1.1\r\n${H}\r\nGET /two HTTP/1.1\r\n${H}\r\nGET /three HTTP/1.1\r\n${H}Connection: close\r\n\r\n`,
    );
    assert.equal(p.responses, 3);
    assert.deepEqual(p.seen.map((s) => s.url).sort(), ['/one', '/three', '/two']);
    const logs = (await proxy.accessLogs(before + 3)).slice(before).map((l) => String(l.path));
    assert.deepEqual(logs.sort(), ['/one', '/three', '/two']);
  });
});

describe('C.5 Host, request-target and path normalization before authz', () => {
  test('#15 two Host headers, no Host on HTTP/1.1, Host with a space, Host: a@b -> 400', async () => {
    await refused(`GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n`, 400);
    await refused(`GET / HTTP/1.1\r\n\r\n`, 400);
    await refused(`GET / HTTP/1.1\r\nHost: a b\r\n\r\n`, 400);
    await refused(`GET / HTTP/1.1\r\nHost: a@b\r\n\r\n`, 400);
    await refused(`GET / HTTP/1.1\r\nHost: a/b\r\n\r\n`, 400);
    // HTTP/1.0 needs no Host.
    const r = await send(`GET /ten HTTP/1.0\r\n\r\n`);
    assert.equal(r.status, 200);
    assert.equal(r.seen.length, 1);
  });

  test('#16 absolute-form target: route, authz and the forwarded Host all use the target authority', async () => {
    // authz denies host evil.example: the target authority is what it sees, not Host.
    const denied = await send(`GET http://evil.example/x HTTP/1.1\r\nHost: a\r\n\r\n`);
    assert.equal(denied.status, 403);
    assert.equal(denied.seen.length, 0);
    const r = await send(`GET http://good.example/x?q=1 HTTP/1.1\r\nHost: evil.example\r\n\r\n`);
    assert.equal(r.status, 200);
    assert.equal(r.seen[0]!.url, '/x?q=1');
    assert.equal(header(r.seen[0]!, 'host'), 'good.example');
    // Userinfo in the target authority is refused.
    const bad = await send(`GET http://user@evil.example/ HTTP/1.1\r\nHost: a\r\n\r\n`);
    assert.equal(bad.status, 400);
  });

  test('#17 "#" in the target -> 400; %23 stays encoded and is forwarded as written', async () => {
    await refused(`GET /app/admin#x HTTP/1.1\r\n${H}\r\n`, 400);
    const r = await send(`GET /anything%23x HTTP/1.1\r\n${H}\r\n`);
    assert.equal(r.status, 200);
    assert.equal(r.seen[0]!.url, '/anything%23x');
  });

  test('#18 Host case and port: matched case-insensitively (any port); the Host is forwarded as sent', async () => {
    const r = await send(`GET /h HTTP/1.1\r\nHost: EXAMPLE.com:8080\r\n\r\n`);
    assert.equal(r.status, 200);
    assert.equal(header(r.seen[0]!, 'host'), 'EXAMPLE.com:8080');
  });

  test('#19 dot segments and double slashes are normalized before authz (deny applies), the normalized path is forwarded', async () => {
    for (const path of [
      '/public/../admin',
      '/./admin',
      '//admin',
      '/public/%2e%2e/admin',
      '/public/%2E%2E/admin/x',
      '/a/b/../../admin',
    ])
      assert.equal((await send(`GET ${path} HTTP/1.1\r\n${H}\r\n`)).status, 403, path);
    const r = await send(`GET /public/./x/..//anything/./y HTTP/1.1\r\n${H}\r\n`);
    assert.equal(r.status, 200);
    assert.equal(r.seen[0]!.url, '/public/anything/y');
  });

  test('#20 escaped slashes %2F / %5C -> 400; a backslash becomes "/" before authz', async () => {
    for (const path of ['/public%2F..%2Fadmin', '/public%2f..%2fadmin', '/public%5C..%5Cadmin', '/a%5cb'])
      await refused(`GET ${path} HTTP/1.1\r\n${H}\r\n`, 400);
    assert.equal((await send(`GET /public\\..\\admin HTTP/1.1\r\n${H}\r\n`)).status, 403);
    await refused(`GET \\admin HTTP/1.1\r\n${H}\r\n`, 400);
  });

  test('#21 encoded unreserved characters are decoded before matching', async () => {
    assert.equal((await send(`GET /%61dmin HTTP/1.1\r\n${H}\r\n`)).status, 403);
    assert.equal((await send(`GET /%61%64%6D%69%6E/x HTTP/1.1\r\n${H}\r\n`)).status, 403);
    const r = await send(`GET /%41DMIN HTTP/1.1\r\n${H}\r\n`);
    assert.equal(r.status, 200, 'paths are case-sensitive: /ADMIN is not /admin');
    assert.equal(r.seen[0]!.url, '/ADMIN');
  });

  test('#22 %00 -> 400; %252F is decoded at most once (stays %252F, never "/")', async () => {
    await refused(`GET /a%00b HTTP/1.1\r\n${H}\r\n`, 400);
    const r = await send(`GET /public%252F..%252Fadmin HTTP/1.1\r\n${H}\r\n`);
    assert.equal(r.status, 200);
    assert.equal(r.seen[0]!.url, '/public%252F..%252Fadmin');
  });

  test('#23 matrix parameters: "..;" and ".;" segments -> 400; /admin;x is still under an /admin* deny', async () => {
    await refused(`GET /public/..;/admin HTTP/1.1\r\n${H}\r\n`, 400);
    await refused(`GET /public/.;x/admin HTTP/1.1\r\n${H}\r\n`, 400);
    await refused(`GET /public/%2e%2e;/admin HTTP/1.1\r\n${H}\r\n`, 400);
    assert.equal((await send(`GET /admin;jsessionid=x HTTP/1.1\r\n${H}\r\n`)).status, 403);
  });
});

describe('C.5 header hygiene', () => {
  test('#24 a header name with an underscore -> 400 by default (Envoy edge: REJECT_REQUEST)', async () => {
    await refused(`GET / HTTP/1.1\r\n${H}X_Auth_User: admin\r\n\r\n`, 400);
  });

  test("#25 hop-by-hop headers and names listed in Connection are stripped; the proxy's own XFF and request id stay", async () => {
    const r = await send(
      `GET /anything HTTP/1.1\r\n${H}Connection: keep-alive, X-Forwarded-For, Authorization, X-Request-Id, X-Custom\r\n` +
        'Keep-Alive: timeout=5\r\nTE: gzip\r\nTrailer: x\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n' +
        'Proxy-Authorization: Basic eDp5\r\nProxy-Connection: keep-alive\r\nAuthorization: Bearer x\r\nX-Custom: 1\r\nX-Forwarded-For: 6.6.6.6\r\n' +
        'X-Request-Id: spoofed\r\nX-Kept: yes\r\n\r\n',
    );
    assert.equal(r.status, 200, 'Upgrade: h2c is served as plain HTTP/1.1');
    const s = r.seen[0]!;
    const got = names(s);
    for (const n of [
      'keep-alive',
      'te',
      'trailer',
      'upgrade',
      'http2-settings',
      'proxy-authorization',
      'proxy-connection',
      'authorization',
      'x-custom',
    ])
      assert.ok(!got.includes(n), `${n} stripped: ${got.join(',')}`);
    assert.equal(header(s, 'x-kept'), 'yes');
    assert.equal(header(s, 'x-forwarded-for'), '127.0.0.1', "XFF is the proxy's own, not the listed one");
    const id = header(s, 'x-request-id');
    assert.ok(id && id !== 'spoofed');
  });

  test('#26 client X-Forwarded-For is appended to (trusted hops 0), X-Forwarded-Proto overwritten, x-envoy-original-path dropped', async () => {
    const r = await send(
      `GET /anything HTTP/1.1\r\n${H}X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\nX-Envoy-Original-Path: /admin\r\n\r\n`,
    );
    const s = r.seen[0]!;
    assert.equal(header(s, 'x-forwarded-for'), '1.2.3.4, 127.0.0.1');
    assert.equal(header(s, 'x-forwarded-proto'), 'http');
    assert.equal(header(s, 'x-envoy-original-path'), undefined);
    const logs = await proxy.accessLogs(1);
    assert.ok(!logs.some((l) => l.path === '/admin' && l.response_code === 200), 'the access log shows the real path');
  });

  test('#27 two Authorization headers -> 400 (authn would check one, the upstream could read the other)', async () => {
    await refused(`GET / HTTP/1.1\r\n${H}Authorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n`, 400);
  });

  test("#28 101 headers -> 431; one 61 KiB header -> 431; 17 KiB of headers (over Node's default) -> 200", async () => {
    const many = Array.from({ length: 101 }, (_, i) => `X-H${i}: v\r\n`).join('');
    await refused(`GET / HTTP/1.1\r\n${H}${many}\r\n`, 431);
    await refused(`GET / HTTP/1.1\r\n${H}X-Big: ${'a'.repeat(61 * 1024)}\r\n\r\n`, 431);
    // Content-Length after the 100th header is never hidden: the request is refused whole.
    const hidden = Array.from({ length: 100 }, (_, i) => `X-H${i}: v\r\n`).join('');
    await refused(`POST / HTTP/1.1\r\n${H}${hidden}Content-Length: 5\r\n\r\nhello`, 431);
    const ok = await send(`GET /anything HTTP/1.1\r\n${H}X-Big: ${'a'.repeat(17 * 1024)}\r\n\r\n`);
    assert.equal(ok.status, 200);
    assert.equal(header(ok.seen[0]!, 'x-big')?.length, 17 * 1024);
    const hundred = Array.from({ length: 99 }, (_, i) => `X-H${i}: v\r\n`).join('');
    assert.equal((await send(`GET / HTTP/1.1\r\n${H}${hundred}\r\n`)).status, 200, '100 headers pass');
  });

  test('#29 Trailer on GET passes without a crash; an upstream CL+TE response is never relayed (503, flagged)', async () => {
    const r = await send(`GET /anything HTTP/1.1\r\n${H}Trailer: x\r\n\r\n`);
    assert.equal(r.status, 200);
    // A raw upstream answering with both CL and TE.
    const bad = net.createServer((sock) => {
      sock.once('data', () =>
        sock.end('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'),
      );
    });
    await new Promise<void>((res) => bad.listen(0, '127.0.0.1', res));
    const badPort = (bad.address() as net.AddressInfo).port;
    const p2 = await startProxy(['-c', tempConfig({ 'gw.yaml': gatewayYaml(badPort) })]);
    try {
      const x = await rawRequest(p2.port, `GET / HTTP/1.1\r\n${H}\r\n`);
      // Envoy's answer to an upstream protocol error: 503 before any response byte went out.
      assert.equal(x.status, 503);
      const logs = await p2.accessLogs(1);
      assert.notEqual(logs[0]!.response_flags, '-');
    } finally {
      await p2.stop();
      bad.close();
    }
  });
});

describe('C.5 limits and access log', () => {
  test('#34 a declared body over the cap -> 413 before any body byte is read; no 100 Continue', async () => {
    const p = await startProxy([
      '-c',
      tempConfig({ 'gw.yaml': gatewayYaml(up.port) }),
      '--max-request-body-size',
      '1Ki',
    ]);
    try {
      up.reset();
      // 2 GiB declared, no body sent: the answer comes at once.
      const r = await rawRequest(p.port, `POST / HTTP/1.1\r\n${H}Content-Length: 2147483648\r\n\r\n`);
      assert.equal(r.status, 413);
      assert.equal(r.closed, true);
      const e = await rawRequest(p.port, `POST / HTTP/1.1\r\n${H}Content-Length: 4096\r\nExpect: 100-continue\r\n\r\n`);
      assert.equal(e.status, 413);
      assert.ok(!e.raw.includes('100 Continue'), e.raw);
      // Chunked: cut when the count passes the cap.
      const c = await rawRequest(p.port, [
        `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n`,
        `800\r\n${'a'.repeat(2048)}\r\n`,
      ]);
      assert.equal(c.status, 413);
      assert.equal(up.seen.length, 0);
      // Under the cap, with Expect: the 100 comes, the upstream never sees Expect (undici refuses it).
      const ok = await rawRequest(
        p.port,
        [`POST /x HTTP/1.1\r\n${H}Content-Length: 5\r\nExpect: 100-continue\r\n\r\n`, 'hello'],
        { gapMs: 100 },
      );
      assert.ok(ok.raw.startsWith('HTTP/1.1 100 Continue\r\n'), ok.raw);
      assert.equal(ok.status, 200);
      assert.equal(up.seen[0]!.body, 'hello');
      assert.equal(header(up.seen[0]!, 'expect'), undefined);
    } finally {
      await p.stop();
    }
  });

  test('--headers-with-underscores drop: the header is dropped, the request passes', async () => {
    const p = await startProxy([
      '-c',
      tempConfig({ 'gw.yaml': gatewayYaml(up.port) }),
      '--headers-with-underscores',
      'drop',
    ]);
    try {
      up.reset();
      const r = await rawRequest(p.port, `GET / HTTP/1.1\r\n${H}X_Auth_User: admin\r\nX-Ok: 1\r\n\r\n`);
      assert.equal(r.status, 200);
      assert.ok(!names(up.seen[0]!).includes('x_auth_user'));
      assert.equal(header(up.seen[0]!, 'x-ok'), '1');
    } finally {
      await p.stop();
    }
  });

  test("refusals are access-logged with Envoy's details and flag DPE", async () => {
    const before = (await proxy.accessLogs(0)).length;
    await send(`GET /dup HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n`);
    await send(`GET /fold HTTP/1.1\r\n${H}X-A: b\r\n c\r\n\r\n`);
    await send(`GET /u HTTP/1.1\r\n${H}X_A: b\r\n\r\n`);
    const logs = (await proxy.accessLogs(before + 3)).slice(before);
    assert.deepEqual(
      logs.map((l) => [l.method, l.path, l.response_code, l.response_flags, l.response_code_details]),
      [
        ['GET', '/dup', 400, 'DPE', 'http1.duplicate_host'],
        ['GET', '/fold', 400, 'DPE', 'http1.codec_error{HPE_INVALID_HEADER_TOKEN}'],
        ['GET', '/u', 400, 'DPE', 'http1.unexpected_underscore'],
      ],
    );
  });
});
