// Property-based tests (fast-check) of the header-pairs codec that every Wasm header call goes
// through: encode/decode round-trips any pairs, and decoding arbitrary or corrupted bytes never
// throws and never reads past the buffer.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodePairs, encodePairs, MAX_PAIRS_COUNT } from '../../src/wasm/abi/pairs.ts';

// Well-formed UTF-16 only: lone surrogates cannot survive UTF-8 (the ABI carries bytes).
const text = fc.string({ unit: 'binary', maxLength: 40 });
const pairs = fc.array(fc.tuple(text, text), { maxLength: 40 });

test('decode(encode(pairs)) is pairs, for any strings (empty, NUL, multi-byte)', () => {
  fc.assert(
    fc.property(pairs, (p) => {
      assert.deepEqual(decodePairs(encodePairs(p)), p);
    }),
    { numRuns: 500 },
  );
});

test('decoding arbitrary bytes never throws; a result re-encodes to the same bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      const out = decodePairs(bytes);
      if (out === undefined || bytes.length <= 1) return;
      assert.ok(out.length <= MAX_PAIRS_COUNT);
      // Only when the decoded strings were valid UTF-8 does the round trip hold byte for byte.
      const again = encodePairs(out);
      if (!out.some(([k, v]) => k.includes('\ufffd') || v.includes('\ufffd')))
        assert.deepEqual(Buffer.from(again), Buffer.from(bytes));
    }),
    { numRuns: 2000 },
  );
});

test('a corrupted encoding (one byte changed, or cut) never throws', () => {
  fc.assert(
    fc.property(pairs, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.boolean(), (p, at, value, cut) => {
      const bytes = encodePairs(p).slice();
      if (bytes.length === 0) return;
      const i = at % bytes.length;
      if (!cut) bytes[i] = value;
      const mutated = cut ? bytes.subarray(0, i) : bytes;
      const out = decodePairs(mutated);
      assert.ok(out === undefined || Array.isArray(out));
    }),
    { numRuns: 2000 },
  );
});

test('a huge declared count or length is refused without allocating it', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffffff }), (n, len) => {
      const b = new Uint8Array(16);
      const v = new DataView(b.buffer);
      v.setUint32(0, n, true);
      v.setUint32(4, len, true);
      v.setUint32(8, len, true);
      const out = decodePairs(b);
      if (out !== undefined) assert.ok(out.length <= 1);
    }),
    { numRuns: 1000 },
  );
});
