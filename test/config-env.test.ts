// ${VAR} and ${VAR:-default} in configuration files.
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${VAR} in plain strings is the syntax under test
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { expandEnv } from '../src/config/env.ts';
import { loadConfig } from '../src/config/load.ts';
import { tempConfig } from './helpers/proxy.ts';

test('expansion: set, default, empty with default, escape, comments untouched', () => {
  const env = { A: 'alpha', EMPTY: '' };
  const r = expandEnv('a: ${A}\nb: ${B:-beta}\nc: ${EMPTY:-gamma}\nd: $${A}\n# ${NOT_SET}\ne: x${A}y\n', env);
  assert.deepEqual(r.problems, []);
  assert.equal(r.text, 'a: alpha\nb: beta\nc: gamma\nd: ${A}\n# ${NOT_SET}\ne: xalphay\n');
});

test('an unset variable, a malformed reference and a newline are errors at their line and column', async () => {
  const dir = tempConfig({});
  const file = join(dir, 'p.yaml');
  writeFileSync(
    file,
    'apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata:\n  name: p\nspec:\n  url: ${WASMGATE_TEST_UNSET_URL}\n  phase: ${WASMGATE_TEST_PHASE:-AUTHN}\n',
  );
  delete process.env.WASMGATE_TEST_UNSET_URL;
  const bad = await loadConfig([file]);
  assert.equal(bad.problems.length, 1);
  assert.deepEqual(
    { line: bad.problems[0]!.line, col: bad.problems[0]!.col, field: bad.problems[0]!.field },
    { line: 6, col: 8, field: '(env)' },
  );
  assert.match(bad.problems[0]!.message, /environment variable WASMGATE_TEST_UNSET_URL is not set/);

  process.env.WASMGATE_TEST_UNSET_URL = 'oci://registry.example.com/p:v1';
  try {
    const good = await loadConfig([file]);
    assert.deepEqual(good.problems, []);
    assert.equal(good.wasmPlugins[0]!.spec.url, 'oci://registry.example.com/p:v1');
    assert.equal(good.wasmPlugins[0]!.spec.phase, 'AUTHN');
    process.env.WASMGATE_TEST_UNSET_URL = 'a\nb';
    const nl = await loadConfig([file]);
    assert.match(nl.problems[0]!.message, /holds a newline/);
  } finally {
    delete process.env.WASMGATE_TEST_UNSET_URL;
  }
  assert.match(expandEnv('x: ${1BAD}\n', {}).problems[0]!.message, /expected \$\{NAME\}/);
});
