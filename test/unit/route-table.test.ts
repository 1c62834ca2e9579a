// Route matching, RE2 translation, rewrites and redirects, without sockets.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileRe2, re2Problem } from '../../src/config/re2.ts';
import { HeaderMap } from '../../src/pipeline/headers.ts';
import { applyRewrite, re2Replacement, redirectLocation } from '../../src/router/route-actions.ts';
import { matches, type Route, RouteTable } from '../../src/router/route-table.ts';

const req = (path: string, extra: [string, string][] = [], method = 'GET') =>
  new HeaderMap([
    [':authority', 'example.com:8080'],
    [':path', path],
    [':method', method],
    [':scheme', 'http'],
    ...extra,
  ]);

test('RE2: full match, translated syntax, and what RE2 rejects', () => {
  assert.equal(compileRe2('/a/[0-9]+').test('/a/12'), true);
  assert.equal(compileRe2('/a/[0-9]+').test('/a/12x'), false, 'anchored as a full match');
  assert.equal(compileRe2('(?i)/ABC').test('/abc'), true);
  assert.equal(compileRe2('(?P<id>[a-z]+)-\\d').test('ab-1'), true);
  assert.equal(compileRe2('[[:digit:]]+').test('123'), true);
  assert.equal(compileRe2('\\Afoo\\z').test('foo'), true);
  assert.equal(compileRe2('\\Qa.b\\E').test('a.b'), true);
  assert.equal(compileRe2('\\Qa.b\\E').test('axb'), false);
  assert.match(re2Problem('(a)\\1') ?? '', /backreference/);
  assert.match(re2Problem('foo(?=bar)') ?? '', /look-around/);
  assert.match(re2Problem('a++') ?? '', /possessive/);
  assert.match(re2Problem('(open') ?? '', /Unterminated group/);
  assert.equal(re2Problem('^/api/v[12]/.*$'), undefined);
});

test('matches: uri kinds, ignoreUriCase, headers joined, presence, withoutHeaders, query, port, scheme', () => {
  assert.ok(matches({ uri: { prefix: '/API' }, ignoreUriCase: true }, req('/api/x?q=1'), 80));
  assert.ok(!matches({ uri: { prefix: '/API' } }, req('/api/x'), 80));
  assert.ok(matches({ uri: { exact: '/a' } }, req('/a?x=1'), 80), 'query is not part of the uri');
  assert.ok(
    matches(
      { headers: [['x', { exact: 'a,b' }]] },
      req('/', [
        ['x', 'a'],
        ['x', 'b'],
      ]),
      80,
    ),
  );
  assert.ok(matches({ headers: [['x', { present: true }]] }, req('/', [['x', '']]), 80));
  assert.ok(!matches({ headers: [['x', { present: true }]] }, req('/'), 80));
  assert.ok(matches({ withoutHeaders: [['x', { exact: 'a' }]] }, req('/'), 80));
  assert.ok(matches({ withoutHeaders: [['x', { exact: 'a' }]] }, req('/', [['x', 'b']]), 80));
  assert.ok(!matches({ withoutHeaders: [['x', { exact: 'a' }]] }, req('/', [['x', 'a']]), 80));
  assert.ok(matches({ queryParams: [['q', { exact: 'a b' }]] }, req('/p?q=a%20b&q=zz'), 80), 'decoded, first value');
  assert.ok(!matches({ queryParams: [['q', { regex: compileRe2('[0-9]+') }]] }, req('/p?q=12a'), 80));
  assert.ok(matches({ port: 8080 }, req('/'), 8080));
  assert.ok(!matches({ port: 8080 }, req('/'), 80));
  assert.ok(!matches({ scheme: { exact: 'https' } }, req('/'), 80));
  assert.ok(matches({ method: { regex: compileRe2('GET|HEAD') } }, req('/'), 80));
});

test('RouteTable: first match wins, hosts with wildcards', () => {
  const r = (name: string, hosts: string[], uri?: string): Route => ({
    name,
    hosts,
    matches: uri ? [{ uri: { prefix: uri } }] : [],
  });
  const table = new RouteTable([r('a', ['*.test'], '/a'), r('b', ['example.com'], '/a'), r('c', ['*'])]);
  assert.equal(table.find(req('/a'), 80)?.name, 'b');
  assert.equal(table.find(req('/b'), 80)?.name, 'c');
  const other = new HeaderMap([
    [':authority', 'x.test'],
    [':path', '/a'],
  ]);
  assert.equal(table.find(other, 80)?.name, 'a');
  // The Gateway servers' hosts (namespace prefixes dropped) gate the listener: other hosts get no route.
  const gated = new RouteTable([r('c', ['*'])], ['istio-system/example.com', '*/*.test']);
  assert.equal(gated.find(req('/x'), 80)?.name, 'c');
  assert.equal(gated.find(other, 80)?.name, 'c');
  assert.equal(
    gated.find(
      new HeaderMap([
        [':authority', 'evil.org'],
        [':path', '/'],
      ]),
      80,
    ),
    undefined,
  );
  assert.equal(new RouteTable([r('c', ['*'])], ['*']).find(new HeaderMap([[':authority', 'evil.org']]), 80)?.name, 'c');
});

test('rewrite: prefix replaced as Envoy prefix_rewrite, regex rewrite keeps the query, authority', () => {
  const route = (rewrite: Route['rewrite']): Route => ({ name: 'r', hosts: [], matches: [], rewrite });
  let h = req('/api/v1/items?x=1');
  applyRewrite(h, route({ uri: '/v2' }), { uri: { prefix: '/api/v1' } });
  assert.equal(h.get(':path'), '/v2/items?x=1');
  assert.equal(h.get('x-envoy-original-path'), '/api/v1/items?x=1');
  h = req('/exact?y=2');
  applyRewrite(h, route({ uri: '/other' }), { uri: { exact: '/exact' } });
  assert.equal(h.get(':path'), '/other?y=2');
  h = req('/service/foo/v1/api?z=3');
  applyRewrite(
    h,
    route({
      regex: {
        match: compileRe2('^/service/([^/]+)(/.*)$', { partial: true, global: true }),
        replacement: re2Replacement('\\2/instance/\\1'),
      },
    }),
    undefined,
  );
  assert.equal(h.get(':path'), '/v1/api/instance/foo?z=3');
  h = req('/');
  applyRewrite(h, route({ authority: 'new.example' }), undefined);
  assert.equal(h.get(':authority'), 'new.example');
});

test('redirect Location: uri keeps the query, authority, port, derivePort and scheme', () => {
  assert.equal(redirectLocation(req('/old?a=1'), { uri: '/new', code: 301 }, 8080), 'http://example.com:8080/new?a=1');
  assert.equal(
    redirectLocation(req('/p'), { authority: 'other.com', scheme: 'https', code: 302 }, 8080),
    'https://other.com/p',
  );
  assert.equal(
    redirectLocation(req('/p'), { port: 9443, scheme: 'https', code: 302 }, 8080),
    'https://example.com:9443/p',
  );
  assert.equal(
    redirectLocation(req('/p'), { scheme: 'https', derivePort: 'FROM_REQUEST_PORT', code: 302 }, 8443),
    'https://example.com:8443/p',
  );
  assert.equal(redirectLocation(req('/p'), { port: 80, code: 301 }, 8080), 'http://example.com/p');
});
