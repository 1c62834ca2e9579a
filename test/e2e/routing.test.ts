// VirtualService routing over real sockets: the match matrix, redirects, direct responses,
// rewrites, header operations, weighted split, fault injection, timeouts, retries, mirroring and
// the errors Envoy reports (UH, UO, UT, URX, FI, DI) in the access log.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type RunningProxy, startProxy, tempConfig } from '../helpers/proxy.ts';
import { startEmbeddedHttpbin, type Upstream } from '../helpers/upstreams.ts';
import { GATEWAY, hammer, type IdServer, idServer, send, serviceEntry, tally } from './routing-helpers.ts';

const VS_HEAD = (name: string, host: string) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${name}, namespace: istio-system}
spec:
  hosts: ["${host}"]
  gateways: [gw]
  http:
`;

const direct = (text: string) => `    directResponse: {status: 200, body: {string: "${text}"}}`;

describe('route matching matrix (first match wins, in file order)', () => {
  let proxy: RunningProxy;
  before(async () => {
    const vs = `${VS_HEAD('matrix', 'match.test')}  - match: [{uri: {exact: /exact}}]
${direct('exact')}
  - match: [{uri: {prefix: /Pre}, ignoreUriCase: true}]
${direct('prefix-ic')}
  - match: [{uri: {regex: "/re/[0-9]+"}}]
${direct('regex')}
  - match: [{uri: {exact: /m}, method: {exact: POST}}]
${direct('post')}
  - match: [{headers: {x-a: {exact: "1"}}}]
${direct('hdr-exact')}
  - match: [{headers: {x-p: {}}}]
${direct('hdr-present')}
  - match: [{uri: {exact: /wo}, withoutHeaders: {x-no: {}}}]
${direct('without')}
  - match: [{uri: {exact: /wo}}]
${direct('wo-fallback')}
  - match: [{uri: {exact: /qp}, queryParams: {q: {exact: v}}}]
${direct('query')}
  - match: [{uri: {exact: /qp}, queryParams: {q: {regex: "[0-9]+"}}}]
${direct('query-regex')}
  - match: [{uri: {exact: /scheme}, scheme: {exact: https}}]
${direct('scheme-https')}
  - match: [{uri: {exact: /scheme}, scheme: {exact: http}}]
${direct('scheme-http')}
  - match: [{uri: {exact: /either}}, {uri: {exact: /or}}]
${direct('either')}
  - match: [{uri: {exact: /bytes}}]
    directResponse: {status: 201, body: {bytes: "aGVsbG8gYnl0ZXM="}}
  - match: [{uri: {prefix: /old}}]
    redirect: {uri: /new, authority: new.example.com}
  - match: [{uri: {prefix: /secure}}]
    redirect: {scheme: https, port: 8443, redirectCode: 308}
  - match: [{uri: {exact: /hdr}}]
    headers:
      response:
        set: {x-route: yes}
        add: {x-added: one}
    directResponse: {status: 200, body: {string: "hdr"}}
  - name: fallback
${direct('default')}
---
${VS_HEAD('authority', 'api.match.test')}  - match: [{authority: {prefix: "api."}}]
${direct('authority')}
`;
    proxy = await startProxy(['-c', tempConfig({ 'gw.yaml': GATEWAY, 'vs.yaml': vs })]);
  });
  after(async () => {
    await proxy?.stop();
  });

  const get = (path: string, headers: Record<string, string> = {}, method = 'GET') =>
    send(`${proxy.url}${path}`, { method, headers: { host: 'match.test', ...headers } });

  test('each match kind selects its route, or falls through to the next', async () => {
    const cases: [string, Record<string, string>, string, string][] = [
      ['/exact', {}, 'GET', 'exact'],
      ['/exact/more', {}, 'GET', 'default'],
      ['/pREfix/x', {}, 'GET', 'prefix-ic'],
      ['/re/123', {}, 'GET', 'regex'],
      ['/re/123x', {}, 'GET', 'default'],
      ['/m', {}, 'POST', 'post'],
      ['/m', {}, 'GET', 'default'],
      ['/any', { 'x-a': '1' }, 'GET', 'hdr-exact'],
      ['/any', { 'x-a': '2' }, 'GET', 'default'],
      ['/any', { 'x-p': 'whatever' }, 'GET', 'hdr-present'],
      ['/wo', {}, 'GET', 'without'],
      ['/wo', { 'x-no': '1' }, 'GET', 'wo-fallback'],
      ['/qp?q=v', {}, 'GET', 'query'],
      ['/qp?q=42', {}, 'GET', 'query-regex'],
      ['/qp?q=x', {}, 'GET', 'default'],
      ['/scheme', {}, 'GET', 'scheme-http'],
      ['/or', {}, 'GET', 'either'],
      ['/any', { host: 'api.match.test' }, 'GET', 'authority'],
    ];
    for (const [path, headers, method, want] of cases) {
      const r = await get(path, headers, method);
      assert.equal(r.text, want, `${method} ${path} ${JSON.stringify(headers)}`);
    }
  });

  test('directResponse bytes, redirects (default 301, redirectCode, scheme and port) and response headers', async () => {
    const bytes = await get('/bytes');
    assert.equal(bytes.status, 201);
    assert.equal(bytes.text, 'hello bytes');
    const old = await get('/old/path?a=1');
    assert.equal(old.status, 301);
    assert.equal(old.headers.get('location'), 'http://new.example.com/new?a=1');
    const secure = await get('/secure/x');
    assert.equal(secure.status, 308);
    assert.equal(secure.headers.get('location'), 'https://match.test:8443/secure/x');
    const hdr = await get('/hdr');
    assert.equal(hdr.headers.get('x-route'), 'yes');
    assert.equal(hdr.headers.get('x-added'), 'one');
  });

  test('no route: 404 NR', async () => {
    const res = await send(`${proxy.url}/x`, { headers: { host: 'elsewhere.test' } });
    assert.equal(res.status, 404);
    let found = false;
    for (let i = 0; i < 100 && !found; i++) {
      found = (await proxy.accessLogs(1)).some((l) => l.response_flags === 'NR' && l.authority === 'elsewhere.test');
      if (!found) await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(found, 'an access log line with NR');
  });
});

describe('upstream routes: rewrite, headers, split, faults, timeouts, retries, mirror, errors', () => {
  let httpbin: Upstream;
  let a: IdServer;
  let b: IdServer;
  let flaky: IdServer;
  let shadow: IdServer;
  let slow: IdServer;
  let proxy: RunningProxy;
  before(async () => {
    httpbin = await startEmbeddedHttpbin();
    [a, b, flaky, shadow, slow] = await Promise.all(['a', 'b', 'flaky', 'shadow', 'slow'].map((id) => idServer(id)));
    const hb = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: istio-system}
spec:
  hosts: [httpbin.istio-system.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 8000, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: ${httpbin.port}}}]
`;
    const vs = `${VS_HEAD('up', 'up.test')}  - match: [{uri: {prefix: /api/}}]
    rewrite: {uri: /anything/, authority: rewritten.test}
    headers:
      request:
        set: {x-set: route}
        add: {x-add: route}
        remove: [x-drop]
      response:
        set: {x-resp: route}
        remove: [x-server]
    route:
    - destination: {host: httpbin, port: {number: 8000}}
      headers:
        request: {set: {x-dest: dest, x-set: dest}}
        response: {add: {x-dest-resp: dest}}
  - match: [{uri: {prefix: /svc/}}]
    rewrite:
      uriRegexRewrite: {match: "^/svc/([a-z]+)/(.*)$", rewrite: "/anything/\\\\2/\\\\1"}
    route: [{destination: {host: httpbin, port: {number: 8000}}}]
  - match: [{uri: {prefix: /split}}]
    retries: {attempts: 0}
    route:
    - {destination: {host: ab.test, subset: a}, weight: 80}
    - {destination: {host: ab.test, subset: b}, weight: 20}
  - match: [{uri: {prefix: /abort}}]
    fault: {abort: {httpStatus: 418, percentage: {value: 100}}}
    route: [{destination: {host: ab.test, subset: a}}]
  - match: [{uri: {prefix: /delay-fault}}]
    fault: {delay: {fixedDelay: 300ms, percentage: {value: 100}}}
    route: [{destination: {host: ab.test, subset: a}}]
  - match: [{uri: {prefix: /delay/}}]
    timeout: 300ms
    route: [{destination: {host: httpbin, port: {number: 8000}}}]
  - match: [{uri: {prefix: /flaky}}]
    retries: {attempts: 3, retryOn: 5xx}
    route: [{destination: {host: flaky.test}}]
  - match: [{uri: {prefix: /default-retry}}]
    route: [{destination: {host: flaky.test}}]
  - match: [{uri: {prefix: /pertry}}]
    retries: {attempts: 2, perTryTimeout: 250ms, retryOn: "gateway-error,reset"}
    route: [{destination: {host: slow.test}}]
  - match: [{uri: {prefix: /mirror}}]
    mirror: {host: shadow.test}
    mirrorPercentage: {value: 100}
    route: [{destination: {host: ab.test, subset: a}}]
  - match: [{uri: {prefix: /nohealthy}}]
    route: [{destination: {host: ab.test, subset: none}}]
  - match: [{uri: {prefix: /overflow}}]
    retries: {attempts: 0}
    route: [{destination: {host: slow.test, subset: limited}}]
`;
    const dr = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ab, namespace: istio-system}
spec:
  host: ab.test
  subsets:
  - {name: a, labels: {id: a}}
  - {name: b, labels: {id: b}}
  - {name: none, labels: {id: nobody}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: slow, namespace: istio-system}
spec:
  host: slow.test
  subsets:
  - name: limited
    labels: {id: slow}
    trafficPolicy:
      connectionPool:
        tcp: {maxConnections: 1}
        http: {http1MaxPendingRequests: 1}
`;
    proxy = await startProxy([
      '-c',
      tempConfig({
        'gw.yaml': GATEWAY,
        'vs.yaml': vs,
        'dr.yaml': dr,
        'se.yaml': [
          hb,
          serviceEntry('ab.test', [a, b]),
          serviceEntry('flaky.test', [flaky]),
          serviceEntry('shadow.test', [shadow]),
          serviceEntry('slow.test', [slow]),
        ].join('---\n'),
      }),
    ]);
  });
  after(async () => {
    await proxy?.stop();
    await Promise.all([httpbin, a, b, flaky, shadow, slow].map((s) => s?.close()));
  });

  const get = async (path: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) => {
    const r = await send(`${proxy.url}${path}`, { ...init, headers: { host: 'up.test', ...init.headers } });
    return { status: r.status, headers: r.headers, text: async () => r.text, json: async () => JSON.parse(r.text) };
  };
  const logFor = async (path: string) => {
    for (let i = 0; i < 100; i++) {
      const logs = await proxy.accessLogs(0);
      const hit = logs.filter((l) => String(l.path).startsWith(path));
      if (hit.length > 0) return hit[hit.length - 1]!;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`no access log for ${path}`);
  };

  test('rewrite (prefix, authority, regex) and request/response header operations at route and destination level', async () => {
    const res = await get('/api/things?x=1', { headers: { 'x-drop': 'gone', 'x-add': 'client' } });
    assert.equal(res.status, 200);
    const echo = (await res.json()) as { url: string; headers: Record<string, string[]> };
    assert.match(echo.url, /\/anything\/things\?x=1$/);
    assert.deepEqual(echo.headers.Host, ['rewritten.test']);
    assert.deepEqual(echo.headers['X-Set'], ['route'], 'route-level set wins over the destination');
    assert.deepEqual(echo.headers['X-Dest'], ['dest']);
    assert.deepEqual(echo.headers['X-Add'], ['client', 'route']);
    assert.equal(echo.headers['X-Drop'], undefined);
    assert.deepEqual(echo.headers['X-Envoy-Original-Path'], ['/api/things?x=1']);
    assert.equal(res.headers.get('x-resp'), 'route');
    assert.equal(res.headers.get('x-dest-resp'), 'dest');
    assert.match(res.headers.get('x-envoy-upstream-service-time') ?? '', /^\d+$/);
    const re = await get('/svc/users/42?q=1');
    const reEcho = (await re.json()) as { url: string };
    assert.match(reEcho.url, /\/anything\/42\/users\?q=1$/);
    const log = await logFor('/api/things');
    assert.equal(log.path, '/api/things?x=1', 'the access log shows the original path');
    assert.equal(log.upstream_cluster, 'outbound|8000||httpbin.istio-system.svc.cluster.local');
  });

  test('weighted split 80/20 over 1,000 requests, within tolerance', async () => {
    const t = tally(await hammer(`${proxy.url}/split`, 1000, 16, { headers: { host: 'up.test' } }));
    assert.equal((t.a ?? 0) + (t.b ?? 0), 1000, JSON.stringify(t));
    assert.ok(t.a! > 730 && t.a! < 870, `a got ${t.a}`);
  });

  test('fault abort (FI) and fault delay (DI)', async () => {
    const abort = await get('/abort');
    assert.equal(abort.status, 418);
    assert.equal(await abort.text(), 'fault filter abort');
    assert.equal((await logFor('/abort')).response_flags, 'FI');
    const t0 = Date.now();
    const delayed = await get('/delay-fault');
    assert.equal(await delayed.text(), 'a');
    assert.ok(Date.now() - t0 >= 280, `took ${Date.now() - t0} ms`);
    const log = await logFor('/delay-fault');
    assert.equal(log.response_flags, 'DI');
    assert.equal(log.response_code, 200);
  });

  test('route timeout against a slow real upstream: 504 UT "upstream request timeout"', async () => {
    const t0 = Date.now();
    const res = await get('/delay/3');
    assert.equal(res.status, 504);
    assert.equal(await res.text(), 'upstream request timeout');
    assert.ok(Date.now() - t0 < 2500);
    const log = await logFor('/delay/3');
    assert.equal(log.response_flags, 'UT');
    assert.equal(log.response_code_details, 'upstream_response_timeout');
    const fast = await get('/delay/0');
    assert.equal(fast.status, 200);
    await fast.text();
  });

  test('retries on 5xx until success; exhausted retries answer the last 5xx with URX', async () => {
    flaky.seen.length = 0;
    flaky.behave = (n) => (n <= 2 ? { status: 503 } : undefined);
    const ok = await get('/flaky/1');
    assert.equal(ok.status, 200);
    assert.equal(await ok.text(), 'flaky');
    assert.equal(flaky.seen.length, 3);
    flaky.seen.length = 0;
    flaky.behave = () => ({ status: 500 });
    const bad = await get('/flaky/2');
    assert.equal(bad.status, 500);
    await bad.text();
    assert.equal(flaky.seen.length, 4, '1 + 3 retries');
    assert.equal((await logFor('/flaky/2')).response_flags, 'URX');
  });

  test("Istio's default retry policy: 503 retried twice, 500 not retried; a POST body is replayed", async () => {
    flaky.seen.length = 0;
    flaky.behave = () => ({ status: 503 });
    const r = await get('/default-retry/a', { method: 'POST', body: 'payload' });
    assert.equal(r.status, 503);
    await r.text();
    assert.equal(flaky.seen.length, 3);
    assert.deepEqual(
      flaky.seen.map((s) => s.body),
      ['payload', 'payload', 'payload'],
    );
    flaky.seen.length = 0;
    flaky.behave = () => ({ status: 500 });
    const r2 = await get('/default-retry/b');
    assert.equal(r2.status, 500);
    await r2.text();
    assert.equal(flaky.seen.length, 1);
  });

  test('perTryTimeout: a slow first attempt is retried and the second answers', async () => {
    slow.seen.length = 0;
    slow.behave = (n) => (n === 1 ? { delayMs: 2000 } : undefined);
    const t0 = Date.now();
    const res = await get('/pertry/1');
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'slow');
    assert.ok(Date.now() - t0 < 1800, `took ${Date.now() - t0} ms`);
    assert.equal(slow.seen.length, 2);
    slow.seen.length = 0;
    slow.behave = () => ({ delayMs: 2000 });
    const timedOut = await get('/pertry/2');
    assert.equal(timedOut.status, 504);
    await timedOut.text();
    assert.equal(slow.seen.length, 3);
    assert.equal((await logFor('/pertry/2')).response_flags, 'UT,URX');
    slow.behave = () => undefined;
  });

  test('mirror: a copy goes to the shadow cluster with Host suffixed -shadow; the answer comes from the route', async () => {
    shadow.seen.length = 0;
    const res = await get('/mirror/x', { method: 'POST', body: 'copy me' });
    assert.equal(await res.text(), 'a');
    for (let i = 0; i < 100 && shadow.seen.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(shadow.seen.length, 1);
    assert.equal(shadow.seen[0]!.headers.host, 'up.test-shadow');
    assert.equal(shadow.seen[0]!.body, 'copy me');
    assert.equal(shadow.seen[0]!.url, '/mirror/x');
  });

  test('a subset that selects no endpoint: 503 UH "no healthy upstream"', async () => {
    const res = await get('/nohealthy');
    assert.equal(res.status, 503);
    assert.equal(await res.text(), 'no healthy upstream');
    const log = await logFor('/nohealthy');
    assert.equal(log.response_flags, 'UH');
    assert.equal(log.upstream_cluster, 'outbound|80|none|ab.test');
  });

  test('connectionPool overflow: 1 connection + 1 pending, the third concurrent request gets 503 UO', async () => {
    slow.behave = () => ({ delayMs: 600 });
    const results = await Promise.all(
      [1, 2, 3].map(async (i) => {
        await new Promise((r) => setTimeout(r, i * 50));
        const res = await get(`/overflow/${i}`);
        return `${res.status}:${await res.text()}`;
      }),
    );
    slow.behave = () => undefined;
    assert.deepEqual(results.slice(0, 2), ['200:slow', '200:slow']);
    assert.match(
      results[2]!,
      /^503:upstream connect error or disconnect\/reset before headers. reset reason: overflow/,
    );
    assert.equal((await logFor('/overflow/3')).response_flags, 'UO');
  });
});
