import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LiveSet } from '../../src/util/live-set.ts';

test('LiveSet: add, has, delete (the last item takes the freed slot), size', () => {
  const s = new LiveSet<{ n: number }>();
  const items = [0, 1, 2, 3].map((n) => ({ n }));
  for (const i of items) s.add(i);
  s.add(items[0]!); // twice: once
  assert.equal(s.size, 4);
  assert.equal(s.delete(items[1]!), true);
  assert.equal(s.delete(items[1]!), false);
  assert.equal(s.has(items[1]!), false);
  assert.deepEqual(
    [...s].map((i) => i.n),
    [0, 3, 2],
  );
  assert.equal(s.delete(items[2]!), true); // now the last one
  assert.equal(s.delete(items[0]!), true);
  assert.deepEqual(
    [...s].map((i) => i.n),
    [3],
  );
  s.add(items[1]!);
  assert.equal(s.has(items[1]!), true);
  assert.equal(s.size, 2);
});

test('LiveSet: an object can be in two sets; deleting while iterating visits every item once', () => {
  const a = new LiveSet<object>();
  const b = new LiveSet<object>();
  const x = {};
  const y = {};
  a.add(x).add(y);
  b.add(y);
  a.delete(y);
  assert.equal(b.has(y), true);
  assert.equal(a.has(y), false);
  const many = Array.from({ length: 10 }, () => ({}));
  for (const m of many) a.add(m);
  const seen: object[] = [];
  for (const m of a) {
    seen.push(m);
    a.delete(m);
  }
  assert.equal(seen.length, 11);
  assert.equal(new Set(seen).size, 11);
  assert.equal(a.size, 0);
});
