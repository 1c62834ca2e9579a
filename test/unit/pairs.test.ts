import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodePairs, encodePairs } from '../../src/wasm/abi/pairs.ts';

test('encodePairs matches the spec layout byte for byte', () => {
  const bytes = encodePairs([
    ['a', '1'],
    ['b', '22'],
  ]);
  assert.equal(
    Buffer.from(bytes).toString('hex'),
    '02000000' + '01000000' + '01000000' + '01000000' + '02000000' + '6100' + '3100' + '6200' + '323200',
  );
});

test('decodePairs round-trips and accepts the empty encodings', () => {
  const pairs: [string, string][] = [
    [':path', '/status/418'],
    ['allow', 'true'],
    ['x-empty', ''],
  ];
  assert.deepEqual(decodePairs(encodePairs(pairs)), pairs);
  assert.deepEqual(decodePairs(new Uint8Array(0)), []);
  assert.deepEqual(decodePairs(new Uint8Array(1)), []);
  assert.deepEqual(decodePairs(new Uint8Array(4)), []);
});

test('decodePairs refuses malformed input', () => {
  const good = encodePairs([['k', 'v']]);
  assert.equal(decodePairs(good.subarray(0, good.length - 1)), undefined, 'truncated');
  const noNul = good.slice();
  noNul[noNul.length - 1] = 0x41;
  assert.equal(decodePairs(noNul), undefined, 'missing NUL terminator');
  const huge = new Uint8Array(8);
  new DataView(huge.buffer).setUint32(0, 5000, true);
  assert.equal(decodePairs(huge), undefined, 'count over the limit');
  assert.equal(decodePairs(Uint8Array.of(...good, 0)), undefined, 'trailing bytes');
});
