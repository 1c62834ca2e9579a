// Property-based tests (fast-check) of request path normalization, as Envoy's path_utility_fuzz:
// never throws; the result is idempotent, starts with "/", has no "." or ".." segment, no "//",
// no escaped slash or NUL; and whatever it refuses is refused for a reason the path shows.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { normalizePath } from '../../src/pipeline/normalize-path.ts';

/** Path pieces that stress normalization: dots, slashes, escapes in both cases, unreserved escapes. */
const piece = fc.constantFrom(
  '/',
  '//',
  '.',
  '..',
  '/./',
  '/../',
  '%2e',
  '%2E',
  '%2e%2e',
  '%2f',
  '%2F',
  '%5c',
  '%5C',
  '\\',
  '%00',
  '%61',
  '%41',
  '%7e',
  '%25',
  '%252F',
  '%3B',
  ';',
  'a',
  'admin',
  'b',
  '-',
  '_',
  '~',
  '%',
  '%zz',
  '?',
  '?x=/../',
  '#',
  '\t',
  ' ',
  'é',
  '%c3%a9',
);
const path = fc.array(piece, { maxLength: 25 }).map((p) => `/${p.join('')}`);
const anyTarget = fc.oneof(path, fc.string({ maxLength: 60 }), fc.string({ unit: 'binary', maxLength: 60 }));

function pathPart(p: string): string {
  const q = p.indexOf('?');
  return q >= 0 ? p.slice(0, q) : p;
}

test('normalizePath never throws, on structured and on arbitrary targets', () => {
  fc.assert(
    fc.property(anyTarget, (t) => {
      const r = normalizePath(t);
      assert.ok('path' in r || typeof r.reject === 'string');
    }),
    { numRuns: 5000 },
  );
});

test('a normalized path is idempotent, absolute, without dot segments, "//", %2F, %5C or %00', () => {
  fc.assert(
    fc.property(path, (t) => {
      const r = normalizePath(t);
      if (!('path' in r)) return;
      const once = r.path;
      const again = normalizePath(once);
      assert.ok('path' in again, `re-normalizing ${once} was refused`);
      assert.equal(again.path, once, `not idempotent: ${t} -> ${once} -> ${again.path}`);
      const p = pathPart(once);
      assert.ok(p.startsWith('/'));
      assert.ok(!p.includes('//'), `"//" in ${p}`);
      const segments = p.split('/');
      assert.ok(!segments.includes('..') && !segments.includes('.'), `dot segment in ${p}`);
      assert.ok(!/%2f|%5c|%00|\\/i.test(p), `escaped slash or NUL in ${p}`);
    }),
    { numRuns: 5000 },
  );
});

test('refusals: %2F/%5C/%00, "#", control characters or a relative target are always refused', () => {
  fc.assert(
    fc.property(path, fc.constantFrom('%2F', '%2f', '%5C', '%5c', '%00', '#', '\x01', '\x7f'), (t, bad) => {
      const q = t.indexOf('?');
      const target = q >= 0 ? `${t.slice(0, q)}${bad}${t.slice(q)}` : `${t}${bad}`;
      assert.ok('reject' in normalizePath(target), target);
    }),
    { numRuns: 2000 },
  );
});

test('the query string is kept byte for byte', () => {
  fc.assert(
    fc.property(
      path,
      fc.string({ maxLength: 30 }).filter((s) => !/[#\x00-\x1f\x7f]/.test(s)),
      (p, q) => {
        const r = normalizePath(`${pathPart(p)}?${q}`);
        if ('path' in r) assert.ok(r.path.endsWith(`?${q}`));
      },
    ),
    { numRuns: 2000 },
  );
});
