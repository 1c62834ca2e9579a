// docs/reference.md cannot go stale silently: every field of every schema wasmgate validates with
// (walked from the loader's KINDS), every enum value, and every command-line flag (run, dev, init)
// with its WASMGATE_ variable must appear in it, in the section of its kind; and every flag the
// document names must exist.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { envName, OPTIONS } from '../../src/cli.ts';
import { KINDS } from '../../src/config/load.ts';
import { metadataSchema, type Schema } from '../../src/config/schemas.ts';
import { DEV_OPTIONS } from '../../src/dev/dev.ts';
import { INIT_OPTIONS } from '../../src/dev/init.ts';
import { ROOT } from '../helpers/proxy.ts';

const DOC = readFileSync(join(ROOT, 'docs/reference.md'), 'utf8');

/** The text under `## <title>` up to the next `## ` heading. */
function section(title: string): string {
  const start = DOC.indexOf(`\n## ${title}\n`);
  assert.ok(start >= 0, `docs/reference.md has no "## ${title}" section`);
  const end = DOC.indexOf('\n## ', start + 4);
  return DOC.slice(start, end < 0 ? undefined : end);
}

/** Every identifier written inside backticks: `a.b[].c` gives a, b, c; `"x"` gives x. */
function codeWords(text: string): Set<string> {
  const words = new Set<string>();
  for (const m of text.matchAll(/`([^`\n]+)`/g)) for (const w of m[1]!.split(/[^A-Za-z0-9_-]+/)) if (w) words.add(w);
  return words;
}

/** Property names and enum values of a schema, recursively (items, maps, nested objects). */
function walk(schema: Schema, fields: Set<string>, values: Set<string>, seen = new Set<Schema>()): void {
  if (seen.has(schema)) return;
  seen.add(schema);
  const props = schema.properties as Record<string, Schema> | undefined;
  if (props)
    for (const [name, child] of Object.entries(props)) {
      fields.add(name);
      walk(child, fields, values, seen);
    }
  for (const key of ['items', 'additionalProperties'] as const) {
    const child = schema[key];
    if (typeof child === 'object' && child !== null) walk(child as Schema, fields, values, seen);
  }
  for (const key of ['enum', 'protoEnum'] as const)
    for (const v of (schema[key] as readonly string[] | undefined) ?? []) values.add(v);
}

describe('docs/reference.md', () => {
  for (const [kind, def] of Object.entries(KINDS)) {
    test(`${kind}: every spec field and enum value is documented in its section`, () => {
      const fields = new Set<string>();
      const values = new Set<string>();
      walk((def.schema.properties as Record<string, Schema>).spec!, fields, values);
      assert.ok(fields.size > 5, `${kind}: schema walk found only ${fields.size} fields`);
      const words = codeWords(section(kind));
      const missing = [...fields].filter((f) => !words.has(f)).map((f) => `field ${f}`);
      missing.push(...[...values].filter((v) => !words.has(v)).map((v) => `value ${v}`));
      assert.deepEqual(missing, [], `${kind}: not in docs/reference.md "## ${kind}"`);
    });

    test(`${kind}: its apiVersions are documented`, () => {
      const text = section('Every resource');
      const words = codeWords(text);
      for (const v of def.apiVersions) {
        const [group, version] = v.split('/') as [string, string];
        assert.ok(text.includes(`\`${group}/`) && words.has(version), `${kind} ${v}`);
      }
    });
  }

  test('every metadata field is documented under "Every resource"', () => {
    const fields = new Set<string>();
    walk(metadataSchema, fields, new Set());
    const words = codeWords(section('Every resource'));
    assert.deepEqual(
      [...fields].filter((f) => !words.has(f)),
      [],
    );
  });

  test('every flag of run, dev and init is documented, run flags with their WASMGATE_ variable', () => {
    const cli = section('Command line');
    const missing: string[] = [];
    for (const [flag, spec] of Object.entries(OPTIONS) as [string, { short?: string }][]) {
      if (!cli.includes(`\`--${flag}`)) missing.push(`--${flag}`);
      if (spec.short && !cli.includes(`\`-${spec.short}\``)) missing.push(`-${spec.short}`);
      if (flag !== 'help' && flag !== 'version' && !cli.includes(`\`${envName(flag)}\``)) missing.push(envName(flag));
    }
    for (const options of [DEV_OPTIONS, INIT_OPTIONS])
      for (const [flag, spec] of Object.entries(options) as [string, { short?: string }][]) {
        if (!cli.includes(`\`--${flag}`)) missing.push(`--${flag}`);
        if (spec.short && !cli.includes(`\`-${spec.short}\``)) missing.push(`-${spec.short}`);
      }
    assert.deepEqual(missing, []);
  });

  test('every flag the document names exists', () => {
    const known = new Set([...Object.keys(OPTIONS), ...Object.keys(DEV_OPTIONS), ...Object.keys(INIT_OPTIONS)]);
    const named = new Set([...DOC.matchAll(/`--([a-z][a-z0-9-]*)/g)].map((m) => m[1]!));
    assert.deepEqual(
      [...named].filter((f) => !known.has(f)),
      [],
    );
    const envs = new Set([...DOC.matchAll(/WASMGATE_[A-Z0-9_]+/g)].map((m) => m[0]));
    const knownEnvs = new Set([...Object.keys(OPTIONS).map(envName), 'WASMGATE_DEV_ACCESS_LOG']);
    assert.deepEqual(
      [...envs].filter((e) => !knownEnvs.has(e) && e !== 'WASMGATE_FLAG'),
      [],
    );
  });
});
