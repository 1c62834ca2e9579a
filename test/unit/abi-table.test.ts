import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { renderAbiDoc } from '../../src/wasm/abi/doc.ts';
import { buildImports } from '../../src/wasm/abi/imports.ts';
import { MetricRegistry } from '../../src/wasm/abi/metrics.ts';
import { HOST_FUNCTIONS } from '../../src/wasm/abi/table.ts';
import { WASI_FUNCTIONS } from '../../src/wasm/wasi/preview1.ts';

test('docs/abi.md is generated from the table (run `npm run docs:abi`)', () => {
  assert.equal(readFileSync(new URL('../../docs/abi.md', import.meta.url), 'utf8'), renderAbiDoc());
});

test('every function in the table is linked, and every linked function is in the table', () => {
  const imports = buildImports({} as never, new MetricRegistry(), [], () => {});
  const linked = new Set([...Object.keys(imports.env!), ...Object.keys(imports.wasi_snapshot_preview1!)]);
  const listed = new Set(HOST_FUNCTIONS.map((f) => f.name));
  assert.deepEqual(
    [...linked].filter((n) => !listed.has(n)),
    [],
  );
  assert.deepEqual(
    [...listed].filter((n) => !linked.has(n)),
    [],
  );
  assert.equal(Object.keys(imports.wasi_unstable!).length, WASI_FUNCTIONS.length);
  const proxy = HOST_FUNCTIONS.filter((f) => f.name.startsWith('proxy_'));
  assert.equal(proxy.length, 43, '39 functions of 0.2.1 plus the four 0.1.0 legacy ones');
});
