// Path normalization at the edge: what the authz filter sees is what the upstream receives.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normalizePath, removeDotSegments } from '../../src/pipeline/normalize-path.ts';

const normalized: [string, string][] = [
  ['/', '/'],
  ['/admin', '/admin'],
  ['/admin/../x', '/x'],
  ['/../admin', '/admin'],
  ['/../../../admin', '/admin'],
  ['//admin', '/admin'],
  ['///admin//x///', '/admin/x/'],
  ['/./admin', '/admin'],
  ['/a/./b/../c', '/a/c'],
  ['/a/b/..', '/a/'],
  ['/a/b/.', '/a/b/'],
  ['/a//../b', '/a/b'], // dot segments first (an empty segment is a segment), then merge_slashes
  ['/%2e%2e/admin', '/admin'],
  ['/%2E%2E/admin', '/admin'],
  ['/.%2e/admin', '/admin'],
  ['/public/%2e%2e/admin', '/admin'],
  ['/a/%2E/b', '/a/b'],
  ['/%61dmin', '/admin'], // %61 is "a", unreserved
  ['/%7euser', '/~user'],
  ['/a%20b', '/a%20b'], // reserved and other escapes stay as written
  ['/a%3Bb', '/a%3Bb'],
  ['/a%252Fb', '/a%252Fb'], // no double decoding
  ['/100%', '/100%'],
  ['/a\\..\\admin', '/admin'],
  ['/a\\b', '/a/b'],
  ['/...', '/...'],
  ['/a/..b/c', '/a/..b/c'],
  ['/admin/../x?next=/../y&a=%2F', '/x?next=/../y&a=%2F'], // the query is untouched
  ['/x?', '/x?'],
  ['*', '*'], // OPTIONS * (asterisk-form)
];

for (const [input, want] of normalized)
  test(`normalizePath(${JSON.stringify(input)}) -> ${JSON.stringify(want)}`, () => {
    assert.deepEqual(normalizePath(input), { path: want });
  });

const rejected: [string, RegExp][] = [
  ['/admin%2F', /escaped slash/],
  ['/admin%2f..%2fsecret', /escaped slash/],
  ['/a%5Cb', /escaped slash/],
  ['/a%5cb', /escaped slash/],
  ['/a%00b', /NUL/],
  ['/a\u0000b', /control character/],
  ['/a\nb', /control character/],
  ['/a#frag', /fragment/],
  ['/a?x=1#frag', /fragment/],
  ['admin', /must start with/],
  ['\\admin', /must start with/],
  ['http://example.com/admin', /must start with/],
  ['', /must start with/],
  ['?x=1', /must start with/],
];

for (const [input, why] of rejected)
  test(`normalizePath(${JSON.stringify(input)}) is rejected`, () => {
    const out = normalizePath(input);
    assert.ok('reject' in out, `expected a rejection, got ${JSON.stringify(out)}`);
    assert.match(out.reject, why);
  });

test('normalizing twice changes nothing (idempotent)', () => {
  for (const [input] of normalized) {
    const once = normalizePath(input);
    assert.ok('path' in once);
    assert.deepEqual(normalizePath(once.path), once, input);
  }
});

test('removeDotSegments follows RFC 3986 5.2.4 examples', () => {
  assert.equal(removeDotSegments('/a/b/c/./../../g'), '/a/g');
  assert.equal(removeDotSegments('/mid/content=5/../6'), '/mid/6');
});
