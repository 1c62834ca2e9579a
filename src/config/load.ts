// Reads configuration files and folders: multi-document YAML, kinds dispatched by apiVersion/kind,
// schema and Istio validation, defaults applied. Every problem names file:line:col and the field.
import { readdir, readFile, stat } from 'node:fs/promises';
import { dirname, resolve, sep } from 'node:path';
import type { ValidateFunction } from 'ajv';
import { type Alias, LineCounter, parseAllDocuments, visit } from 'yaml';
import { destinationRuleCredentials, gatewayCredentials, type SecretContext } from './credentials.ts';
import { destinationRuleRules, destinationRuleSpec } from './destination-rule.ts';
import { expandEnv } from './env.ts';
import {
  type Anchor,
  docStart,
  fieldPath,
  offsetOf,
  type Path,
  type Pos,
  parseFieldPath,
  positionOf,
  type SourceDoc,
  sourceTextOf,
} from './position.ts';
import { gatewayRules, serviceEntryRules, virtualServiceRules, wasmPluginRules } from './rules.ts';
import {
  authorizationPolicySpec,
  gatewaySpec,
  requestAuthenticationSpec,
  resourceSchema,
  type Schema,
  serviceEntrySpec,
  virtualServiceSpec,
  wasmPluginSpec,
} from './schemas.ts';
import {
  authorizationPolicyRules,
  normalizeAuthorizationPolicy,
  normalizeRequestAuthentication,
  requestAuthenticationRules,
} from './security.ts';
import type {
  DestinationRuleSpec,
  GatewaySpec,
  LoadedConfig,
  Meta,
  Problem,
  Resource,
  ServiceEntrySpec,
  VirtualServiceSpec,
} from './types.ts';
import { compile, type Issue, pruneNulls, schemaIssues } from './validate.ts';
import { normalizeWasmPlugin } from './wasmplugin.ts';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

interface Base {
  apiVersion: string;
  kind: string;
  metadata: Meta;
  file: string;
  line: number;
  col: number;
  dir: string;
}

interface KindDef {
  apiVersions: readonly string[];
  schema: Schema;
  validate: ValidateFunction;
  /** Istio's rules beyond the schema; `meta` is the resource's metadata as written (for annotations). */
  rules(spec: Obj, name: string, meta: Obj): Issue[];
  /** TLS secrets the resource names (--secrets-dir), read once the resource has no other error. */
  credentials?(spec: Obj, ctx: SecretContext): Issue[];
  add(config: LoadedConfig, base: Base, spec: Obj): Resource<unknown>;
}

const NETWORKING = ['networking.istio.io/v1', 'networking.istio.io/v1beta1', 'networking.istio.io/v1alpha3'];
const SECURITY = ['security.istio.io/v1', 'security.istio.io/v1beta1'];

function kind(
  apiVersions: readonly string[],
  spec: Schema,
  rest: Pick<KindDef, 'rules' | 'add' | 'credentials'>,
): KindDef {
  const schema = resourceSchema(spec);
  return { apiVersions, schema, validate: compile(schema), ...rest };
}

/** The kinds wasmgate reads, and the apiVersions it reads them in. */
export const KINDS: Readonly<Record<string, KindDef>> = {
  WasmPlugin: kind(['extensions.istio.io/v1alpha1'], wasmPluginSpec, {
    rules: (spec) => wasmPluginRules(spec),
    add(config, base, spec) {
      const r = { ...base, spec: normalizeWasmPlugin(spec, base.dir) };
      config.wasmPlugins.push(r);
      return r;
    },
  }),
  Gateway: kind(NETWORKING, gatewaySpec, {
    rules: gatewayRules,
    credentials: gatewayCredentials,
    add(config, base, spec) {
      const r = { ...base, spec: spec as GatewaySpec };
      config.gateways.push(r);
      return r;
    },
  }),
  VirtualService: kind(NETWORKING, virtualServiceSpec, {
    rules: (spec) => virtualServiceRules(spec),
    add(config, base, spec) {
      const r = { ...base, spec: spec as VirtualServiceSpec };
      config.virtualServices.push(r);
      return r;
    },
  }),
  ServiceEntry: kind(NETWORKING, serviceEntrySpec, {
    rules: (spec) => serviceEntryRules(spec),
    add(config, base, spec) {
      const r = { ...base, spec: spec as ServiceEntrySpec };
      config.serviceEntries.push(r);
      return r;
    },
  }),
  RequestAuthentication: kind(SECURITY, requestAuthenticationSpec, {
    rules: requestAuthenticationRules,
    add(config, base, spec) {
      const r = { ...base, spec: normalizeRequestAuthentication(spec) };
      config.requestAuthentications.push(r);
      return r;
    },
  }),
  AuthorizationPolicy: kind(SECURITY, authorizationPolicySpec, {
    rules: authorizationPolicyRules,
    add(config, base, spec) {
      const r = { ...base, spec: normalizeAuthorizationPolicy(spec) };
      config.authorizationPolicies.push(r);
      return r;
    },
  }),
  DestinationRule: kind(NETWORKING, destinationRuleSpec, {
    rules: (spec) => destinationRuleRules(spec),
    credentials: destinationRuleCredentials,
    add(config, base, spec) {
      const r = { ...base, spec: spec as unknown as DestinationRuleSpec };
      config.destinationRules.push(r);
      return r;
    },
  }),
};

const origins = new WeakMap<object, { src: SourceDoc; base: Path }>();

/**
 * The line:col of a field of a loaded resource, e.g. locate(plugin, 'spec.url'), for problems found
 * after loading. Falls back to the resource's own position.
 */
export function locate(resource: Resource<unknown>, field: string | Path, anchor: Anchor = 'value'): Pos {
  const origin = origins.get(resource);
  if (!origin) return { line: resource.line, col: resource.col };
  const path = typeof field === 'string' ? parseFieldPath(field) : field;
  return positionOf(origin.src, [...origin.base, ...path], anchor);
}

interface LoadState {
  config: LoadedConfig;
  defaultNamespace: string;
  /** kind/namespace/name -> where it was first defined */
  seen: Map<string, string>;
  /** absolute paths of the files read so far */
  read: Set<string>;
  /** --secrets-dir, for TLS credentialName */
  secretsDir: string | undefined;
  /** the secret paths tried for TLS credentials */
  secrets: Set<string>;
}

function fileProblem(file: string, message: string, severity: Problem['severity'] = 'error'): Problem {
  return { severity, file, line: 1, col: 1, kind: '-', name: '-', field: '(file)', message };
}

function joinKeep(dir: string, name: string): string {
  return dir.endsWith('/') || dir.endsWith(sep) ? `${dir}${name}` : `${dir}${sep}${name}`;
}

/** A file is itself; a folder is its *.yaml and *.yml files (not recursive, no dotfiles), sorted by name. */
async function expand(path: string, problems: Problem[]): Promise<string[]> {
  let isFolder: boolean;
  try {
    isFolder = (await stat(path)).isDirectory();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    problems.push(
      fileProblem(path, code === 'ENOENT' ? 'no such file or folder' : `cannot read: ${(err as Error).message}`),
    );
    return [];
  }
  if (!isFolder) return [path];
  try {
    const names = (await readdir(path, { withFileTypes: true }))
      .filter((d) => !d.name.startsWith('.') && /\.ya?ml$/i.test(d.name) && !d.isDirectory())
      .map((d) => d.name)
      .sort();
    if (names.length === 0) problems.push(fileProblem(path, 'no *.yaml or *.yml files in this folder', 'warning'));
    return names.map((n) => joinKeep(path, n));
  } catch (err) {
    problems.push(fileProblem(path, `cannot read folder: ${(err as Error).message}`));
    return [];
  }
}

/**
 * Loads every resource from the files and folders named. Nothing throws: unreadable files, YAML
 * syntax errors and invalid resources become problems, and only resources without errors are listed.
 * TLS secrets named by credentialName are read from `secretsDir` (src/config/credentials.ts).
 */
export async function loadConfig(
  paths: string[],
  opts: { defaultNamespace?: string; secretsDir?: string } = {},
): Promise<LoadedConfig> {
  const config: LoadedConfig = {
    files: [],
    wasmPlugins: [],
    gateways: [],
    virtualServices: [],
    serviceEntries: [],
    destinationRules: [],
    requestAuthentications: [],
    authorizationPolicies: [],
    problems: [],
  };
  const state: LoadState = {
    config,
    defaultNamespace: opts.defaultNamespace ?? 'default',
    seen: new Map(),
    read: new Set(),
    secretsDir: opts.secretsDir,
    secrets: new Set(),
  };
  for (const path of paths) {
    for (const file of await expand(path, config.problems)) {
      const absolute = resolve(file);
      if (state.read.has(absolute)) {
        config.problems.push(fileProblem(file, 'already loaded (named twice); skipped', 'warning'));
        continue;
      }
      state.read.add(absolute);
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (err) {
        config.problems.push(fileProblem(file, `cannot read: ${(err as Error).message}`));
        continue;
      }
      config.files.push(file);
      loadText(text, file, state);
    }
  }
  config.secretPaths = [...state.secrets];
  return config;
}

/** Loads the resources of one YAML text. */
function loadText(text: string, file: string, state: LoadState): void {
  const raw = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const expanded = expandEnv(raw);
  if (expanded.problems.length > 0) {
    const rawLc = new LineCounter();
    parseAllDocuments(raw, { lineCounter: rawLc, logLevel: 'silent' });
    for (const p of expanded.problems) {
      const { line, col } = rawLc.linePos(p.offset);
      state.config.problems.push({
        severity: 'error',
        file,
        line,
        col,
        kind: '-',
        name: '-',
        field: '(env)',
        message: p.message,
      });
    }
    return;
  }
  const source = expanded.text;
  const lc = new LineCounter();
  const docs = parseAllDocuments(source, {
    lineCounter: lc,
    prettyErrors: false,
    merge: true,
    uniqueKeys: true,
    logLevel: 'error',
  });
  for (const doc of docs) {
    const src: SourceDoc = { doc, lc, text: source };
    const yamlProblem = (severity: Problem['severity'], offset: number, message: string) => {
      const { line, col } = lc.linePos(offset);
      state.config.problems.push({ severity, file, line, col, kind: '-', name: '-', field: '(yaml)', message });
    };
    for (const w of doc.warnings) yamlProblem('warning', w.pos[0], w.message);
    if (doc.errors.length > 0) {
      for (const e of doc.errors) yamlProblem('error', e.pos[0], e.message);
      continue;
    }
    let unresolved: Alias | undefined;
    visit(doc, {
      Alias(_, node) {
        if (node.resolve(doc) !== undefined) return undefined;
        unresolved = node;
        return visit.BREAK;
      },
    });
    if (unresolved) {
      yamlProblem(
        'error',
        unresolved.range?.[0] ?? docStart(src),
        `unknown alias *${unresolved.source}: an anchor &${unresolved.source} must come before it in the same document`,
      );
      continue;
    }
    let value: unknown;
    try {
      value = doc.toJS();
    } catch (err) {
      yamlProblem('error', docStart(src), (err as Error).message);
      continue;
    }
    if (value === null || value === undefined) continue;
    if (isObj(value) && value.apiVersion === 'v1' && value.kind === 'List' && Array.isArray(value.items)) {
      value.items.forEach((item, i) => {
        loadResource(item, ['items', i], src, file, state);
      });
      continue;
    }
    loadResource(value, [], src, file, state);
  }
}

function loadResource(value: unknown, base: Path, src: SourceDoc, file: string, state: LoadState): void {
  const problems: Problem[] = [];
  checkResource(value, base, src, file, state, problems);
  problems.sort((a, b) => a.line - b.line || a.col - b.col);
  state.config.problems.push(...problems);
}

/** Validates one resource into `problems` and, when it has no errors, adds it to the config. */
function checkResource(
  value: unknown,
  base: Path,
  src: SourceDoc,
  file: string,
  state: LoadState,
  problems: Problem[],
): void {
  const meta = isObj(value) && isObj(value.metadata) ? value.metadata : {};
  const namespace =
    typeof meta.namespace === 'string' && meta.namespace !== '' ? meta.namespace : state.defaultNamespace;
  const name = typeof meta.name === 'string' && meta.name !== '' ? `${namespace}/${meta.name}` : '-';
  const kindName = isObj(value) && typeof value.kind === 'string' && value.kind !== '' ? value.kind : '-';
  const report = (severity: Problem['severity'], path: Path, anchor: Anchor, message: string) => {
    const full = [...base, ...path];
    const { line, col } = positionOf(src, full, anchor);
    problems.push({ severity, file, line, col, kind: kindName, name, field: fieldPath(full) || '(document)', message });
  };

  if (!isObj(value)) {
    report('error', [], 'value', 'expected a Kubernetes resource: a mapping with apiVersion, kind, metadata and spec');
    return;
  }
  for (const field of ['apiVersion', 'kind'] as const) {
    const v = value[field];
    if (v === undefined || v === null) report('error', [field], 'parent', `missing required field "${field}"`);
    else if (typeof v !== 'string' || v === '') report('error', [field], 'value', 'must be a non-empty string');
  }
  if (problems.length > 0) return;
  const apiVersion = value.apiVersion as string;
  const def = Object.hasOwn(KINDS, kindName) ? KINDS[kindName] : undefined;
  if (!def) {
    report('warning', ['kind'], 'value', `${kindName} (${apiVersion}) is not read by wasmgate; ignored`);
    return;
  }
  if (!def.apiVersions.includes(apiVersion)) {
    report(
      'warning',
      ['apiVersion'],
      'value',
      `${kindName} ${apiVersion} is not read by wasmgate (it reads ${def.apiVersions.join(', ')}); ignored`,
    );
    return;
  }

  const start = positionOf(src, base, 'value');
  if (name !== '-') {
    const id = `${kindName}/${name}`;
    const first = state.seen.get(id);
    if (first !== undefined)
      report('error', ['metadata', 'name'], 'value', `duplicate ${kindName} ${name}: first defined at ${first}`);
    else state.seen.set(id, `${file}:${start.line}:${start.col}`);
  }

  pruneNulls(value, def.schema);
  const issues: Issue[] = [];
  if (!def.validate(value))
    issues.push(
      ...schemaIssues(def.validate.errors ?? [], {
        root: def.schema,
        textAt: (path) => sourceTextOf(src, [...base, ...path]),
        offsetOf: (path) => offsetOf(src, [...base, ...path]),
      }),
    );
  if (isObj(value.spec)) {
    const reported = new Set(issues.map((i) => fieldPath(i.path)));
    const metaName = typeof meta.name === 'string' ? meta.name : '';
    for (const issue of def.rules(value.spec, metaName, meta))
      if (!reported.has(fieldPath(issue.path))) issues.push(issue);
    if (def.credentials && !issues.some((i) => i.severity === 'error'))
      issues.push(...def.credentials(value.spec, { secretsDir: state.secretsDir, namespace, watch: state.secrets }));
  }
  for (const i of issues) report(i.severity, i.path, i.anchor, i.message);

  if (!problems.some((p) => p.severity === 'error')) {
    const metadata: Meta = {
      name: meta.name as string,
      namespace,
      labels: { ...((meta.labels as Record<string, string> | undefined) ?? {}) },
      annotations: { ...((meta.annotations as Record<string, string> | undefined) ?? {}) },
    };
    const dir = dirname(resolve(file));
    const resource = def.add(
      state.config,
      { apiVersion, kind: kindName, metadata, file, line: start.line, col: start.col, dir },
      value.spec as Obj,
    );
    origins.set(resource, { src, base });
  }
}
