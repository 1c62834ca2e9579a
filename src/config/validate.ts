// Schema validation with ajv, and the translation of ajv's errors into one readable message per
// field, each with the path and the node (key, value or parent) to point at.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { parseDurationMs } from './duration.ts';
import { type Anchor, fieldPath, type Path } from './position.ts';
import type { Schema } from './schemas.ts';
import { closest } from './suggest.ts';

export interface Issue {
  path: Path;
  anchor: Anchor;
  message: string;
  severity: 'error' | 'warning';
}

const ajv = new Ajv({ allErrors: true, verbose: true, strict: true, allowUnionTypes: true });
ajv.addVocabulary(['patternMessage']);
ajv.addKeyword({
  keyword: 'protoEnum',
  schemaType: 'array',
  validate: (names: readonly string[], data: unknown) => {
    if (typeof data === 'string') return names.includes(data);
    if (typeof data === 'number') return Number.isInteger(data) && data >= 0 && data < names.length;
    return true; // `type` reports anything else
  },
});
ajv.addKeyword({
  keyword: 'exclusive',
  type: 'object',
  schemaType: 'array',
  validate: (fields: readonly string[], data: Record<string, unknown>) =>
    fields.filter((f) => data[f] !== undefined).length <= 1,
});
ajv.addKeyword({
  keyword: 'duration',
  type: 'string',
  schemaType: 'boolean',
  validate: (_: boolean, data: string) => (parseDurationMs(data) ?? 0) >= 1,
});

export function compile(schema: Schema): ValidateFunction {
  return ajv.compile(schema);
}

/** Drops null-valued known fields (`priority:` with no value), as the Kubernetes API server prunes them. */
export function pruneNulls(data: unknown, schema: Schema): void {
  if (Array.isArray(data)) {
    const items = schema.items as Schema | undefined;
    if (items) for (const item of data) pruneNulls(item, items);
    return;
  }
  if (typeof data !== 'object' || data === null) return;
  const props = schema.properties as Record<string, Schema> | undefined;
  if (!props) return; // maps and free-form objects (pluginConfig) keep their nulls
  const record = data as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!Object.hasOwn(props, key)) continue;
    if (record[key] === null) delete record[key];
    else pruneNulls(record[key], props[key]!);
  }
}

function pointerToPath(pointer: string): Path {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^(0|[1-9]\d*)$/.test(s) ? Number(s) : s));
}

function truncate(s: string, max = 60): string {
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** "string \"x\"", "number 5", "a list", ... for "got ..." */
export function describe(v: unknown): string {
  if (v === null || v === undefined) return 'an empty value';
  if (Array.isArray(v)) return 'a list';
  switch (typeof v) {
    case 'string':
      return `string ${JSON.stringify(truncate(v))}`;
    case 'number':
    case 'boolean':
      return `${typeof v} ${String(v)}`;
    default:
      return 'a mapping';
  }
}

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'a boolean (true or false)',
  object: 'a mapping',
  array: 'a list',
  null: 'empty',
};

function enumList(names: readonly string[]): string {
  return names.join(', ');
}

/** Dotted paths (with [] for list items) where a field of this name exists in the schema. */
function fieldLocations(schema: Schema, name: string, prefix: Path = [], depth = 0): string[] {
  if (depth > 6) return [];
  const out: string[] = [];
  const props = schema.properties as Record<string, Schema> | undefined;
  if (props) {
    for (const [key, child] of Object.entries(props)) {
      if (key === name) out.push([...prefix, key].join('.'));
      out.push(...fieldLocations(child, name, [...prefix, key], depth + 1));
    }
  }
  const items = schema.items as Schema | undefined;
  if (items) {
    const last = prefix.length > 0 ? `${String(prefix.at(-1))}[]` : '[]';
    out.push(...fieldLocations(items, name, [...prefix.slice(0, -1), last], depth + 1));
  }
  return out;
}

function genericPath(path: Path): string {
  const out: Path = [];
  for (const seg of path) {
    if (typeof seg === 'number') out.push(`${String(out.pop() ?? '')}[]`);
    else out.push(seg);
  }
  return out.join('.');
}

export interface TranslateContext {
  /** The schema of the whole resource, to say where a misplaced field belongs. */
  root: Schema;
  /** The source text of a scalar, for hints such as "quote it". */
  textAt(path: Path): string | undefined;
  /** Where a field's key is in the text, to tell which of two fields comes second. */
  offsetOf(path: Path): number;
}

function unknownField(e: ErrorObject, path: Path, ctx: TranslateContext): Issue {
  const name = (e.params as { additionalProperty: string }).additionalProperty;
  const parent = e.parentSchema as Schema | undefined;
  const known = Object.keys((parent?.properties as Record<string, Schema> | undefined) ?? {});
  let message = `unknown field "${name}"`;
  const near = closest(name, known);
  if (near !== undefined) message += ` (did you mean "${near}"?)`;
  else {
    const here = genericPath([...path, name]);
    const elsewhere = fieldLocations(ctx.root, name)
      .filter((p) => p !== here)
      .sort((a, b) => a.length - b.length);
    if (elsewhere[0] !== undefined) message += ` (${name} belongs at ${elsewhere[0]})`;
  }
  return { path: [...path, name], anchor: 'key', message, severity: 'error' };
}

function typeMessage(e: ErrorObject, path: Path, ctx: TranslateContext): string {
  const parent = (e.parentSchema ?? {}) as Schema;
  const data: unknown = e.data;
  const types = ([] as string[]).concat(e.schema as string | string[]);
  const names = parent.protoEnum as readonly string[] | undefined;
  const want = names
    ? `one of ${enumList(names)} (or its number, 0-${names.length - 1})`
    : types.map((t) => TYPE_NAMES[t] ?? t).join(' or ');
  let message = `must be ${want}, got ${describe(data)}`;
  if (parent.duration && typeof data === 'number') {
    message = `must be a duration such as "10s" or "250ms", got number ${data} (write "${data}s" for seconds)`;
  } else if (!names && types.includes('string') && (typeof data === 'number' || typeof data === 'boolean')) {
    const text = ctx.textAt(path) ?? String(data);
    message += ` (quote it to keep it text: "${text}")`;
  } else if (
    (types.includes('integer') || types.includes('number')) &&
    typeof data === 'string' &&
    /^-?\d+(\.\d+)?$/.test(data.trim())
  ) {
    message += ' (remove the quotes)';
  } else if (types.includes('boolean') && typeof data === 'string' && /^(yes|no|on|off|true|false|y|n)$/i.test(data)) {
    message += ' (write true or false)';
  } else if (types.includes('array') && data !== null && typeof data !== 'object') {
    message += ' (write a list, one "- item" per line)';
  }
  return message;
}

function rangeMessage(parent: Schema, data: unknown): string {
  const min = parent.minimum as number | undefined;
  const max = parent.maximum as number | undefined;
  const got = `got ${String(data)}`;
  if (min !== undefined && max !== undefined) return `must be between ${min} and ${max}, ${got}`;
  if (min !== undefined) return `must be at least ${min}, ${got}`;
  return `must be at most ${max}, ${got}`;
}

function enumMessage(data: unknown, names: readonly string[], numbers: boolean): string {
  if (typeof data === 'number')
    return `${data} is not a valid value: use one of ${enumList(names)}${numbers ? ` or its number, 0-${names.length - 1}` : ''}`;
  const near = typeof data === 'string' ? closest(data, names) : undefined;
  return `${describe(data).replace(/^string /, '')} is not one of ${enumList(names)}${near !== undefined ? ` (did you mean "${near}"?)` : ''}`;
}

function translate(e: ErrorObject, ctx: TranslateContext): Issue | undefined {
  const path = pointerToPath(e.instancePath);
  const parent = (e.parentSchema ?? {}) as Schema;
  const data: unknown = e.data;
  const error = (message: string, p: Path = path, anchor: Anchor = 'value'): Issue => ({
    path: p,
    anchor,
    message,
    severity: 'error',
  });
  switch (e.keyword) {
    case 'additionalProperties':
      return unknownField(e, path, ctx);
    case 'required': {
      const name = (e.params as { missingProperty: string }).missingProperty;
      return error(`missing required field "${name}"`, [...path, name], 'parent');
    }
    case 'type':
      return error(typeMessage(e, path, ctx));
    case 'protoEnum':
      return error(enumMessage(data, e.schema as string[], true));
    case 'enum':
      return error(enumMessage(data, e.schema as string[], false));
    case 'exclusive': {
      const fields = e.schema as string[];
      const set = fields
        .filter((f) => (data as Record<string, unknown>)[f] !== undefined)
        .sort((a, b) => ctx.offsetOf([...path, a]) - ctx.offsetOf([...path, b]));
      const list = `${fields.slice(0, -1).join(', ')} or ${fields.at(-1)}`;
      return error(`only one of ${list} can be set (found ${set.join(' and ')})`, [...path, set.at(-1)!], 'key');
    }
    case 'duration':
      return error(`must be a duration such as "10s", "1.5s" or "250ms", of at least 1ms, got ${describe(data)}`);
    case 'pattern':
      return error(
        `${(parent.patternMessage as string | undefined) ?? `must match ${String(e.schema)}`}, got ${describe(data)}`,
      );
    case 'minimum':
    case 'maximum':
      return error(rangeMessage(parent, data));
    case 'minLength':
      return error(e.schema === 1 ? 'must not be empty' : `must be at least ${String(e.schema)} characters long`);
    case 'maxLength':
      return error(`must be at most ${String(e.schema)} characters long (it has ${(data as string).length})`);
    case 'minItems':
      return error(e.schema === 1 ? 'must not be empty' : `must have at least ${String(e.schema)} items`);
    case 'maxItems':
      return error(`must have at most ${String(e.schema)} items (it has ${(data as unknown[]).length})`);
    case 'maxProperties':
      return error(`must have at most ${String(e.schema)} entries`);
    default:
      return error(e.message ?? `is invalid (${e.keyword})`);
  }
}

/** One issue per field (the first); a wrong type hides the other complaints about the same value. */
export function schemaIssues(errors: readonly ErrorObject[], ctx: TranslateContext): Issue[] {
  const mistyped = new Set(errors.filter((e) => e.keyword === 'type').map((e) => e.instancePath));
  const out = new Map<string, Issue>();
  for (const e of errors) {
    if (e.keyword !== 'type' && mistyped.has(e.instancePath)) continue;
    const issue = translate(e, ctx);
    if (!issue) continue;
    const key = fieldPath(issue.path);
    if (!out.has(key)) out.set(key, issue);
  }
  return [...out.values()];
}
