// Property-based tests (fast-check) of the YAML loader and validator: loadConfig on generated
// files (the repository's own configurations with values replaced, fields dropped or renamed, and
// lines cut; arbitrary YAML values under every kind; arbitrary text) never throws, and every
// problem it reports names a file, a 1-based line and column, a kind, a name and a field.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { parseAllDocuments, stringify } from 'yaml';
import { KINDS, loadConfig } from '../../src/config/load.ts';
import type { Problem } from '../../src/config/types.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'wasmgate-config-fuzz-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Every YAML document in config/ and config/examples/*: seeds for mutation. */
function seeds(): unknown[] {
  const files = [
    ...readdirSync(join(ROOT, 'config'))
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => join(ROOT, 'config', f)),
    ...readdirSync(join(ROOT, 'config/examples')).flatMap((d) =>
      readdirSync(join(ROOT, 'config/examples', d))
        .filter((f) => f.endsWith('.yaml'))
        .map((f) => join(ROOT, 'config/examples', d, f)),
    ),
  ];
  return files.flatMap((f) => parseAllDocuments(readFileSync(f, 'utf8')).map((d) => d.toJS()));
}
const SEEDS = seeds();

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Applies one mutation at a random path of a JSON value. */
function mutate(value: Json, choice: number, replacement: Json, key: string): Json {
  if (value === null || typeof value !== 'object') return replacement;
  const keys = Array.isArray(value) ? value.map((_, i) => i) : Object.keys(value);
  if (keys.length === 0) return replacement;
  const k = keys[choice % keys.length]!;
  const op = choice % 5;
  if (Array.isArray(value)) {
    const copy = value.slice();
    if (op === 0) copy.splice(k as number, 1);
    else copy[k as number] = mutate(copy[k as number]!, Math.floor(choice / 5), replacement, key);
    return copy;
  }
  const copy: { [k: string]: Json } = { ...value };
  if (op === 0) delete copy[k as string];
  else if (op === 1) {
    copy[key] = copy[k as string]!;
    delete copy[k as string];
  } else copy[k as string] = mutate(copy[k as string]!, Math.floor(choice / 5), replacement, key);
  return copy;
}

function checkProblems(problems: Problem[], files: string[]): void {
  for (const p of problems) {
    assert.ok(p.severity === 'error' || p.severity === 'warning');
    assert.ok(files.includes(p.file), `problem file ${p.file}`);
    assert.ok(Number.isInteger(p.line) && p.line >= 1, `line ${p.line} in ${JSON.stringify(p)}`);
    assert.ok(Number.isInteger(p.col) && p.col >= 1, `col ${p.col} in ${JSON.stringify(p)}`);
    assert.ok(typeof p.kind === 'string' && p.kind.length > 0, JSON.stringify(p));
    assert.ok(typeof p.name === 'string' && p.name.length > 0, JSON.stringify(p));
    assert.ok(typeof p.field === 'string' && p.field.length > 0, JSON.stringify(p));
    assert.ok(typeof p.message === 'string' && p.message.length > 0, JSON.stringify(p));
  }
}

let n = 0;
async function load(text: string): Promise<void> {
  const file = join(dir, `f${n++}.yaml`);
  writeFileSync(file, text);
  let config: Awaited<ReturnType<typeof loadConfig>>;
  try {
    config = await loadConfig([file]);
  } catch (err) {
    throw new Error(`loadConfig threw on:\n${text}\n${(err as Error).stack}`);
  }
  checkProblems(config.problems, [file]);
  rmSync(file);
}

const leaf: fc.Arbitrary<Json> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double({ noNaN: false }),
  fc.string({ maxLength: 12 }),
  fc.constantFrom('', '*', '0s', '1s', 'file:///x.wasm', 'AUTHN', 'FAIL_OPEN', '/a/b', '[', '{', '- x', 'null'),
);
const anyJson = fc.letrec<{ v: Json }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    leaf,
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 8 }), tie('v'), { maxKeys: 4 }),
  ),
})).v;

test('mutated real configurations: loadConfig never throws; problems have file, line, column, kind, name, field', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(fc.nat({ max: SEEDS.length - 1 }), fc.nat(), anyJson, fc.string({ maxLength: 8 })), {
        minLength: 1,
        maxLength: 3,
      }),
      async (edits) => {
        const docs = edits.map(([i, choice, replacement, key]) =>
          mutate(structuredClone(SEEDS[i]) as Json, choice, replacement, key),
        );
        await load(docs.map((d) => stringify(d)).join('---\n'));
      },
    ),
    { numRuns: 300 },
  );
});

test('arbitrary values under every kind, and arbitrary text: never throws, problems are located', async () => {
  const kinds = Object.keys(KINDS);
  const doc = fc.record({
    apiVersion: fc.oneof(fc.constantFrom(...kinds.map((k) => KINDS[k]!.apiVersions[0] ?? 'v1')), fc.string()),
    kind: fc.oneof(fc.constantFrom(...kinds), fc.string({ maxLength: 6 })),
    metadata: fc.oneof(
      anyJson,
      fc.record({ name: fc.string({ maxLength: 10 }), namespace: fc.string({ maxLength: 10 }) }),
    ),
    spec: anyJson,
  });
  await fc.assert(
    fc.asyncProperty(fc.array(doc, { minLength: 1, maxLength: 3 }), async (docs) => {
      await load(docs.map((d) => stringify(d)).join('---\n'));
    }),
    { numRuns: 300 },
  );
  await fc.assert(
    fc.asyncProperty(fc.string({ maxLength: 200 }), async (text) => {
      await load(text);
    }),
    { numRuns: 200 },
  );
});
