// The embedded httpbin and the real go-httpbin answer the same assertions, over real sockets.
// go-httpbin must be installed (`bash .ci/install-go-httpbin.sh`): its absence fails the suite.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { startHttpbin, TEAPOT } from '../src/upstream/httpbin.ts';
import { startEmbeddedHttpbin, startGoHttpbin, type Upstream } from './helpers/upstreams.ts';

/** go-httpbin v2.26.0 httpbin/handlers.go, statusSpecialCases[418].body */
const GO_TEAPOT = "I'm a teapot!";

interface Target {
  name: string;
  start(): Promise<Upstream>;
  /** The one documented difference in bodies (see the top of src/upstream/httpbin.ts). */
  teapot: string;
}

const TARGETS: Target[] = [
  { name: 'embedded httpbin', start: startEmbeddedHttpbin, teapot: TEAPOT },
  { name: 'go-httpbin', start: startGoHttpbin, teapot: GO_TEAPOT },
];

type Values = Record<string, string[]>;
interface Echo {
  args: Values;
  headers: Values;
  method: string;
  origin: string;
  url: string;
  data?: string;
  files?: Values;
  form?: Values;
  json?: unknown;
}

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
}

/** A request with node:http, so paths go out as written and raw header names are visible. */
function raw(base: string, path: string, init: { method?: string; headers?: Record<string, string> } = {}) {
  return new Promise<RawResponse>((resolve, reject) => {
    const req = http.request(`${base}${path}`, { method: init.method ?? 'GET', headers: init.headers, agent: false });
    req.path = path;
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode!,
          headers: res.headers,
          rawHeaders: res.rawHeaders,
          body: Buffer.concat(chunks),
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

for (const target of TARGETS) {
  describe(target.name, { timeout: 60_000 }, () => {
    let up: Upstream;
    const get = (path: string, init?: RequestInit) => fetch(`${up.url}${path}`, { redirect: 'manual', ...init });

    before(async () => {
      up = await target.start();
    });
    after(async () => {
      await up?.close();
    });

    test('/status/418: the teapot, text/plain, X-More-Info', async () => {
      const res = await raw(up.url, '/status/418');
      assert.equal(res.status, 418);
      assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8');
      assert.equal(res.headers['x-more-info'], 'http://tools.ietf.org/html/rfc2324');
      assert.ok(res.rawHeaders.includes('X-More-Info'), 'header name written canonically');
      assert.equal(res.body.toString('utf8'), target.teapot);
    });

    test('/status: other codes, weighted choices, invalid codes', async () => {
      const ok = await get('/status/201', { method: 'POST' });
      assert.equal(ok.status, 201);
      assert.equal(await ok.text(), '');
      const seen = new Set<number>();
      for (let i = 0; i < 40; i++) {
        const res = await get('/status/200,201');
        await res.arrayBuffer();
        seen.add(res.status);
      }
      assert.deepEqual([...seen].sort(), [200, 201]);
      const weighted = await get('/status/202:1,500:0');
      assert.equal(weighted.status, 202);
      await weighted.arrayBuffer();
      const redirect = await get('/status/302');
      assert.equal(redirect.status, 302);
      assert.equal(redirect.headers.get('location'), '/redirect/1');
      await redirect.arrayBuffer();
      for (const bad of ['abc', '99', '600', '200,x', '200:y,201']) {
        const res = await get(`/status/${bad}`);
        assert.equal(res.status, 400, bad);
        const body = (await res.json()) as { status_code: number; error: string };
        assert.equal(body.status_code, 400);
        assert.equal(body.error, 'Bad Request');
      }
    });

    test('/get?a=1: args as arrays, method, url, origin', async () => {
      const res = await get('/get?a=1&a=2&b=&c=x+y%21');
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8');
      assert.equal(res.headers.get('access-control-allow-origin'), '*');
      const body = (await res.json()) as Echo;
      assert.deepEqual(body.args, { a: ['1', '2'], b: [''], c: ['x y!'] });
      assert.equal(body.method, 'GET');
      assert.equal(body.url, `${up.url}/get?a=1&a=2&b=&c=x+y%21`);
      assert.equal(body.origin, '127.0.0.1');
      assert.deepEqual(Object.keys(body), ['args', 'headers', 'method', 'origin', 'url']);
    });

    test('/get honours X-Forwarded-For and X-Forwarded-Proto', async () => {
      const res = await get('/get', {
        headers: { 'x-forwarded-for': '10.1.2.3, 127.0.0.1', 'x-forwarded-proto': 'https' },
      });
      const body = (await res.json()) as Echo;
      assert.equal(body.origin, '10.1.2.3');
      assert.equal(body.url, `${up.url.replace('http:', 'https:')}/get`);
    });

    test('/headers: exactly the header lines received, canonical names, values as arrays', async () => {
      const res = await raw(up.url, '/headers', {
        headers: {
          'x-custom-header': 'v',
          'x-request-id': 'abc-123',
          'x-forwarded-for': '10.0.0.1',
          host: 'example.test',
        },
      });
      assert.equal(res.status, 200);
      const { headers } = JSON.parse(res.body.toString()) as { headers: Values };
      assert.deepEqual(headers['X-Custom-Header'], ['v']);
      assert.deepEqual(headers['X-Request-Id'], ['abc-123']);
      assert.deepEqual(headers['X-Forwarded-For'], ['10.0.0.1']);
      assert.deepEqual(headers.Host, ['example.test']);
      assert.deepEqual(headers.Connection, ['close']);
      assert.equal(headers['X-Absent'], undefined);
      assert.deepEqual(Object.keys(headers), Object.keys(headers).sort());
    });

    test('/post with JSON echoes json and data', async () => {
      const payload = { a: [1, 2], b: { c: 'ü' }, d: null };
      const res = await get('/post?q=1', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(payload),
      });
      assert.equal(res.status, 200);
      const body = (await res.json()) as Echo;
      assert.deepEqual(body.json, payload);
      assert.equal(body.data, JSON.stringify(payload));
      assert.deepEqual(body.args, { q: ['1'] });
      assert.deepEqual(body.form, {});
      assert.deepEqual(body.files, {});
      assert.equal(body.method, 'POST');
      assert.deepEqual(body.headers['Content-Type'], ['application/json']);
      assert.deepEqual(Object.keys(body), [
        'args',
        'headers',
        'method',
        'origin',
        'url',
        'data',
        'files',
        'form',
        'json',
      ]);
      const bad = await get('/post', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' });
      assert.equal(bad.status, 400);
      await bad.arrayBuffer();
    });

    test('/post with a form, a multipart form and text', async () => {
      const form = (await (
        await get('/post', { method: 'POST', body: new URLSearchParams('x=1&x=2&y=a+b') })
      ).json()) as Echo;
      assert.deepEqual(form.form, { x: ['1', '2'], y: ['a b'] });
      assert.equal(form.json, null);
      const fd = new FormData();
      fd.append('field', 'value');
      fd.append('upload', new Blob(['file contents']), 'a.txt');
      const multi = (await (await get('/post', { method: 'POST', body: fd })).json()) as Echo;
      assert.deepEqual(multi.form, { field: ['value'] });
      assert.deepEqual(multi.files, { upload: ['file contents'] });
      const text = (await (await get('/put', { method: 'PUT', body: 'plain words' })).json()) as Echo;
      assert.equal(text.data, 'plain words');
      const binary = await get('/patch', {
        method: 'PATCH',
        headers: { 'content-type': 'application/x-thing' },
        body: new Uint8Array([0xff, 0xfe, 0x00]),
      });
      assert.equal(((await binary.json()) as Echo).data, 'data:application/x-thing;base64,__4A');
    });

    test('method-restricted routes answer 405 with Allow', async () => {
      const res = await get('/get', { method: 'POST', body: 'x' });
      assert.equal(res.status, 405);
      assert.equal(res.headers.get('allow'), 'GET, HEAD');
      assert.equal(await res.text(), 'Method Not Allowed\n');
      const del = await get('/delete', { method: 'DELETE' });
      assert.equal(((await del.json()) as Echo).method, 'DELETE');
      const head = await get('/get', { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(await head.text(), '');
    });

    test('/bytes/1000: 1000 bytes; a seed repeats them', async () => {
      const res = await get('/bytes/1000');
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'application/octet-stream');
      assert.equal(res.headers.get('content-length'), '1000');
      assert.equal((await res.arrayBuffer()).byteLength, 1000);
      const a = Buffer.from(await (await get('/bytes/64?seed=42')).arrayBuffer());
      const b = Buffer.from(await (await get('/bytes/64?seed=42')).arrayBuffer());
      assert.equal(a.length, 64);
      assert.deepEqual(a, b);
      const zero = await get('/bytes/0');
      assert.equal(zero.status, 200);
      assert.equal((await zero.arrayBuffer()).byteLength, 0);
      const tooMany = await get(`/bytes/${10 * 1024 * 1024 + 1}`);
      assert.equal(tooMany.status, 400);
      await tooMany.arrayBuffer();
    });

    test('/stream/3 yields 3 JSON lines, chunked', async () => {
      const res = await raw(up.url, '/stream/3?k=v');
      assert.equal(res.status, 200);
      assert.equal(res.headers['transfer-encoding'], 'chunked');
      const lines = res.body.toString().trimEnd().split('\n');
      assert.equal(lines.length, 3);
      lines.forEach((line, i) => {
        const obj = JSON.parse(line) as Echo & { id: number };
        assert.equal(obj.id, i);
        assert.deepEqual(obj.args, { k: ['v'] });
        assert.equal(obj.url, `${up.url}/stream/3?k=v`);
      });
      assert.equal((await raw(up.url, '/stream/1000')).body.toString().trimEnd().split('\n').length, 100);
    });

    test('/stream-bytes/n is chunked and n bytes long', async () => {
      const res = await raw(up.url, '/stream-bytes/30000?chunk_size=1000');
      assert.equal(res.status, 200);
      assert.equal(res.headers['transfer-encoding'], 'chunked');
      assert.equal(res.body.length, 30000);
    });

    test('/anything/x echoes method, url and body', async () => {
      const res = await get('/anything/x?y=1', { method: 'PUT', body: 'hello' });
      assert.equal(res.status, 200);
      const body = (await res.json()) as Echo;
      assert.equal(body.method, 'PUT');
      assert.equal(body.url, `${up.url}/anything/x?y=1`);
      assert.equal(body.data, 'hello');
      const custom = (await (await get('/anything', { method: 'PURGE' })).json()) as Echo;
      assert.equal(custom.method, 'PURGE');
    });

    test('/delay/0 answers at once; /delay/0.2 waits; over 10 s is refused', async () => {
      const res = await get('/delay/0');
      assert.equal(res.status, 200);
      assert.match(res.headers.get('server-timing') ?? '', /^initial_delay;dur=0\.00;desc="initial delay"$/);
      assert.equal(((await res.json()) as Echo).url, `${up.url}/delay/0`);
      const t0 = performance.now();
      const slow = await get('/delay/0.2');
      await slow.arrayBuffer();
      assert.ok(performance.now() - t0 >= 190);
      const tooLong = await get('/delay/11');
      assert.equal(tooLong.status, 400);
      await tooLong.arrayBuffer();
    });

    test('/drip sends numbytes asterisks with the given code', async () => {
      const res = await get('/drip?duration=0.1&delay=0&numbytes=5&code=202');
      assert.equal(res.status, 202);
      assert.equal(res.headers.get('content-length'), '5');
      assert.equal(await res.text(), '*****');
    });

    test('404 on an unknown path', async () => {
      for (const path of ['/nope', '/status', '/status/418/x', '/get/']) {
        const res = await get(path);
        assert.equal(res.status, 404, path);
        assert.equal(await res.text(), '404 page not found\n');
      }
    });

    test('unclean paths redirect to the clean one, like Go', async () => {
      const res = await raw(up.url, '//anything//x/./y/../z?q=1');
      assert.equal(res.status, 307);
      assert.equal(res.headers.location, '/anything/x/z?q=1');
      assert.equal(res.body.toString(), '<a href="/anything/x/z?q=1">Temporary Redirect</a>.\n\n');
    });

    test('/ip, /user-agent, /uuid, /headers via OPTIONS preflight', async () => {
      assert.deepEqual(await (await get('/ip')).json(), { origin: '127.0.0.1' });
      assert.deepEqual(await (await get('/user-agent', { headers: { 'user-agent': 'ua/1' } })).json(), {
        'user-agent': 'ua/1',
      });
      const { uuid } = (await (await get('/uuid')).json()) as { uuid: string };
      assert.match(uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      const pre = await get('/headers', {
        method: 'OPTIONS',
        headers: { origin: 'http://a.test', 'access-control-request-headers': 'x-y' },
      });
      assert.equal(pre.status, 200);
      assert.equal(pre.headers.get('access-control-allow-origin'), 'http://a.test');
      assert.equal(pre.headers.get('access-control-allow-headers'), 'x-y');
      assert.match(pre.headers.get('access-control-allow-methods') ?? '', /POST/);
    });

    test('/response-headers sets the headers it is given', async () => {
      const res = await get('/response-headers?X-Test=1&X-Test=2&other=v');
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('x-test'), '1, 2');
      assert.equal(res.headers.get('other'), 'v');
      assert.deepEqual(await res.json(), {
        'Content-Type': ['application/json; charset=utf-8'],
        'X-Test': ['1', '2'],
        other: ['v'],
      });
    });

    test('/redirect/:n, /redirect-to, /cookies', async () => {
      const r2 = await get('/redirect/2');
      assert.equal(r2.status, 302);
      assert.equal(r2.headers.get('location'), '/relative-redirect/1');
      const r1 = await get('/relative-redirect/1');
      assert.equal(r1.headers.get('location'), '/get');
      const abs = await get('/redirect/2?absolute=true');
      assert.equal(abs.headers.get('location'), `${up.url}/absolute-redirect/1`);
      const followed = await fetch(`${up.url}/redirect/3`);
      assert.equal(followed.status, 200);
      assert.equal(((await followed.json()) as Echo).url, `${up.url}/get`);
      const to = await get('/redirect-to?url=%2Fget&status_code=307');
      assert.equal(to.status, 307);
      assert.equal(to.headers.get('location'), '/get');
      const cookies = await get('/cookies', { headers: { cookie: 'a=1; b="two"' } });
      assert.deepEqual(await cookies.json(), { cookies: { a: '1', b: 'two' } });
      const set = await get('/cookies/set?k=v');
      assert.equal(set.status, 302);
      assert.equal(set.headers.get('location'), '/cookies');
      assert.equal(set.headers.get('set-cookie'), 'k=v; Path=/; HttpOnly');
    });

    test('/basic-auth, /bearer', async () => {
      const auth = `Basic ${Buffer.from('u:p').toString('base64')}`;
      assert.deepEqual(await (await get('/basic-auth/u/p', { headers: { authorization: auth } })).json(), {
        authenticated: true,
        user: 'u',
        authorized: true,
      });
      const denied = await get('/basic-auth/u/other');
      assert.equal(denied.status, 401);
      assert.equal(denied.headers.get('www-authenticate'), 'Basic realm="Fake Realm"');
      await denied.arrayBuffer();
      assert.deepEqual(await (await get('/bearer', { headers: { authorization: 'Bearer t0k' } })).json(), {
        authenticated: true,
        token: 't0k',
      });
      const noToken = await get('/bearer');
      assert.equal(noToken.status, 401);
      await noToken.arrayBuffer();
    });

    test('/base64, /json, /html, /robots.txt, /gzip, /deflate', async () => {
      assert.equal(await (await get('/base64/aGVsbG8gd29ybGQ=')).text(), 'hello world');
      assert.equal(await (await get('/base64/encode/hi')).text(), 'aGk=');
      assert.equal((await get('/base64/!!!')).status, 400);
      const json = (await (await get('/json')).json()) as { slideshow: { title: string } };
      assert.equal(json.slideshow.title, 'Sample Slide Show');
      const html = await get('/html');
      assert.equal(html.headers.get('content-type'), 'text/html; charset=utf-8');
      assert.match(await html.text(), /Moby-Dick/);
      assert.equal(await (await get('/robots.txt')).text(), 'User-agent: *\nDisallow: /deny\n');
      const gz = await get('/gzip');
      assert.equal(gz.headers.get('content-encoding'), 'gzip');
      assert.equal(((await gz.json()) as { gzipped: boolean }).gzipped, true);
      const deflated = await get('/deflate');
      assert.equal(((await deflated.json()) as { deflated: boolean }).deflated, true);
    });
  });
}

describe('embedded httpbin only', () => {
  test('a request body over the cap is refused with 413, declared or streamed', async () => {
    const hb = await startHttpbin({ maxBodySize: 16 });
    try {
      const declared = await fetch(`${hb.url}/post`, { method: 'POST', body: 'x'.repeat(17) });
      assert.equal(declared.status, 413);
      assert.equal(((await declared.json()) as { status_code: number }).status_code, 413);
      const streamed = await fetch(`${hb.url}/anything`, {
        method: 'POST',
        body: new ReadableStream({
          start(c) {
            c.enqueue(new TextEncoder().encode('x'.repeat(10)));
            c.enqueue(new TextEncoder().encode('x'.repeat(10)));
            c.close();
          },
        }),
        duplex: 'half',
      } as RequestInit);
      assert.equal(streamed.status, 413);
      await streamed.arrayBuffer();
      const fits = await fetch(`${hb.url}/post`, { method: 'POST', body: 'x'.repeat(16) });
      assert.equal(((await fits.json()) as Echo).data, 'x'.repeat(16));
    } finally {
      await hb.close();
    }
  });

  test('a chunked body streams in intact', async () => {
    const hb = await startHttpbin();
    try {
      const res = await fetch(`${hb.url}/put`, {
        method: 'PUT',
        body: new ReadableStream({
          start(c) {
            c.enqueue(new TextEncoder().encode('part1-'));
            c.enqueue(new TextEncoder().encode('part2'));
            c.close();
          },
        }),
        duplex: 'half',
      } as RequestInit);
      const body = (await res.json()) as Echo;
      assert.equal(body.data, 'part1-part2');
      assert.deepEqual(body.headers['Transfer-Encoding'], ['chunked']);
    } finally {
      await hb.close();
    }
  });
});
