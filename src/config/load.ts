// Reads configuration files and folders: multi-document YAML, kinds dispatched by apiVersion/kind,
// schema and Istio validation, defaults applied. Every problem names file:line:col and the field.
import { readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseAllDocuments } from 'yaml';
import { ENUMS, gatewaySpec, resourceSchema, serviceEntrySpec, virtualServiceSpec, wasmPluginSpec } from './schemas.ts';
import type { LoadedConfig, Meta, Problem, Resource, WasmPluginSpec } from './types.ts';

const ajv = new Ajv({ allErrors: true, strict: false });
const KINDS: Record<string, { apiVersions: string[]; validate: ValidateFunction }> = {
  WasmPlugin: { apiVersions: ['extensions.istio.io/v1alpha1'], validate: ajv.compile(resourceSchema(wasmPluginSpec)) },
  Gateway: {
    apiVersions: ['networking.istio.io/v1', 'networking.istio.io/v1beta1', 'networking.istio.io/v1alpha3'],
    validate: ajv.compile(resourceSchema(gatewaySpec)),
  },
  VirtualService: {
    apiVersions: ['networking.istio.io/v1', 'networking.istio.io/v1beta1', 'networking.istio.io/v1alpha3'],
    validate: ajv.compile(resourceSchema(virtualServiceSpec)),
  },
  ServiceEntry: {
    apiVersions: ['networking.istio.io/v1', 'networking.istio.io/v1beta1', 'networking.istio.io/v1alpha3'],
    validate: ajv.compile(resourceSchema(serviceEntrySpec)),
  },
};

type Path = (string | number)[];

/** Finds the YAML node at `path`; `key` returns the key node of the last segment. */
function nodeAt(root: Node | null | undefined, path: Path, key = false): Node | undefined {
  let node: unknown = root;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i]!;
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) return node as Node;
      if (key && i === path.length - 1) return pair.key as Node;
      node = pair.value;
    } else if (isSeq(node)) {
      const item = node.items[Number(seg)];
      if (item === undefined) return node as Node;
      node = item;
    } else return node as Node | undefined;
  }
  return node as Node | undefined;
}

function fieldPath(path: Path): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out ? `.${seg}` : seg;
  return out || '(document)';
}

function pointerToPath(pointer: string): Path {
  if (!pointer) return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

function ajvMessage(e: ErrorObject): { path: Path; key: boolean; message: string } | undefined {
  const path = pointerToPath(e.instancePath);
  switch (e.keyword) {
    case 'additionalProperty':
    case 'additionalProperties': {
      const name = (e.params as { additionalProperty: string }).additionalProperty;
      return { path: [...path, name], key: true, message: `unknown field "${name}"` };
    }
    case 'required': {
      const name = (e.params as { missingProperty: string }).missingProperty;
      return { path, key: false, message: `missing required field "${name}"`.replace('"', '"') };
    }
    case 'type':
      return { path, key: false, message: `must be ${(e.params as { type: string }).type}` };
    case 'enum':
      return {
        path,
        key: false,
        message: `must be one of ${(e.params as { allowedValues: string[] }).allowedValues.join(', ')}`,
      };
    case 'pattern':
      return {
        path,
        key: false,
        message: path.at(-1) === 'sha256' ? 'must be 64 hexadecimal characters' : (e.message ?? 'invalid'),
      };
    case 'anyOf':
      return undefined; // reported through its branches; see collapse below
    default:
      return { path, key: false, message: e.message ?? 'invalid' };
  }
}

/** Turns ajv errors into one message per field (enum anyOf branches collapse into one). */
function schemaProblems(errors: ErrorObject[]): { path: Path; key: boolean; message: string }[] {
  const out = new Map<string, { path: Path; key: boolean; message: string }>();
  const enumFields = new Set(
    errors
      .filter(
        (e) => e.keyword === 'enum' && errors.some((o) => o.keyword === 'anyOf' && o.instancePath === e.instancePath),
      )
      .map((e) => e.instancePath),
  );
  for (const e of errors) {
    if (enumFields.has(e.instancePath) && e.keyword !== 'enum') continue;
    if (
      e.keyword === 'type' &&
      errors.some((o) => o.keyword === 'anyOf' && o.instancePath === e.instancePath) &&
      !enumFields.has(e.instancePath)
    ) {
      // e.g. priority: anyOf integer | null
      const m = { path: pointerToPath(e.instancePath), key: false, message: 'must be an integer' };
      out.set(`${e.instancePath}|type`, m);
      continue;
    }
    const m = ajvMessage(e);
    if (!m) continue;
    out.set(`${fieldPath(m.path)}|${m.message}`, m);
  }
  return [...out.values()];
}

function enumName(list: readonly string[], v: unknown, fallback: string): string {
  if (typeof v === 'number') return list[v] ?? fallback;
  if (typeof v === 'string') return v;
  return fallback;
}

const C_IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Istio's ValidateWasmPlugin rules, beyond the schema. */
function istioRules(spec: Record<string, unknown>): { path: Path; key: boolean; message: string }[] {
  const out: { path: Path; key: boolean; message: string }[] = [];
  const add = (path: Path, message: string) => out.push({ path, key: false, message });
  const hasSelector = spec.selector !== undefined;
  const hasTargetRef = spec.targetRef !== undefined;
  const hasTargetRefs = Array.isArray(spec.targetRefs) && spec.targetRefs.length > 0;
  if (hasSelector && (hasTargetRef || hasTargetRefs))
    add(['spec', hasTargetRef ? 'targetRef' : 'targetRefs'], 'only one of targetRef(s) or selector can be set');
  if (hasTargetRef && hasTargetRefs) add(['spec', 'targetRefs'], 'only one of targetRefs or targetRef can be set');
  const refs = [
    ...(hasTargetRef ? [[['spec', 'targetRef'], spec.targetRef]] : []),
    ...(hasTargetRefs ? (spec.targetRefs as unknown[]) : []).map((r, i) => [['spec', 'targetRefs', i], r]),
  ] as [Path, Record<string, unknown>][];
  for (const [path, ref] of refs) {
    if (!ref || typeof ref !== 'object') continue;
    const group = ref.group ?? '';
    const allowed =
      (ref.kind === 'Gateway' && group === 'gateway.networking.k8s.io') ||
      (ref.kind === 'Service' && (group === '' || group === 'core')) ||
      (ref.kind === 'ServiceEntry' && group === 'networking.istio.io') ||
      (ref.kind === 'GatewayClass' && group === 'gateway.networking.k8s.io');
    if (!allowed)
      add(
        [...path, 'kind'],
        `targetRef must be to a Gateway (group gateway.networking.k8s.io), GatewayClass, Service or ServiceEntry; got ${String(group) || 'core'}/${String(ref.kind)}`,
      );
  }
  const url = spec.url;
  if (typeof url === 'string') {
    if (url.trim() === '') add(['spec', 'url'], 'url field needs to be set');
    else {
      const withScheme = url.includes('://') ? url : `oci://${url}`;
      const scheme = withScheme.slice(0, withScheme.indexOf('://'));
      if (!['oci', 'file', 'http', 'https'].includes(scheme))
        add(['spec', 'url'], `unsupported scheme "${scheme}": use oci://, file://, http:// or https://`);
      else if (scheme !== 'file') {
        try {
          new URL(withScheme.replace(/^oci:/, 'http:'));
        } catch {
          add(['spec', 'url'], `invalid URL "${url}"`);
        }
      }
    }
  }
  const env = (spec.vmConfig as { env?: unknown } | undefined)?.env;
  if (Array.isArray(env)) {
    const seen = new Set<string>();
    env.forEach((v, i) => {
      if (!v || typeof v !== 'object') return;
      const e = v as Record<string, unknown>;
      if (typeof e.name === 'string') {
        if (!C_IDENTIFIER.test(e.name))
          add(['spec', 'vmConfig', 'env', i, 'name'], `invalid env name "${e.name}": must be a C identifier`);
        if (seen.has(e.name)) add(['spec', 'vmConfig', 'env', i, 'name'], `duplicate env name "${e.name}"`);
        seen.add(e.name);
      }
      if (enumName(ENUMS.valueFrom, e.valueFrom, 'INLINE') === 'HOST' && typeof e.value === 'string' && e.value !== '')
        add(['spec', 'vmConfig', 'env', i, 'value'], 'value may only be set when valueFrom is INLINE');
    });
  }
  return out;
}

function normalizeUrl(url: string, dir: string): string {
  if (!url.includes('://')) return `oci://${url}`;
  if (url.startsWith('file://')) {
    const rest = url.slice('file://'.length);
    if (rest.startsWith('/')) return url;
    // Not Istio: a relative file:// path resolves against the YAML file's folder.
    return pathToFileURL(resolve(dir, rest)).href;
  }
  return url;
}

function normalizeWasmPlugin(spec: Record<string, unknown>, dir: string): WasmPluginSpec {
  const vmEnv = (spec.vmConfig as { env?: Record<string, unknown>[] } | undefined)?.env;
  const type = enumName(ENUMS.type, spec.type, 'HTTP');
  return {
    selector: spec.selector as WasmPluginSpec['selector'],
    targetRef: spec.targetRef as WasmPluginSpec['targetRef'],
    targetRefs: spec.targetRefs as WasmPluginSpec['targetRefs'],
    url: normalizeUrl(String(spec.url), dir),
    sha256: spec.sha256 as string | undefined,
    imagePullPolicy: enumName(
      ENUMS.imagePullPolicy,
      spec.imagePullPolicy,
      'UNSPECIFIED_POLICY',
    ) as WasmPluginSpec['imagePullPolicy'],
    imagePullSecret: spec.imagePullSecret as string | undefined,
    pluginConfig: spec.pluginConfig as Record<string, unknown> | undefined,
    pluginName: spec.pluginName as string | undefined,
    phase: enumName(ENUMS.phase, spec.phase, 'UNSPECIFIED_PHASE') as WasmPluginSpec['phase'],
    priority: typeof spec.priority === 'number' ? spec.priority : 0,
    failStrategy: enumName(ENUMS.failStrategy, spec.failStrategy, 'FAIL_CLOSE') as WasmPluginSpec['failStrategy'],
    vmConfig: vmEnv
      ? {
          env: vmEnv.map((e) => ({
            name: String(e.name),
            valueFrom: enumName(ENUMS.valueFrom, e.valueFrom, 'INLINE') as 'INLINE' | 'HOST',
            value: typeof e.value === 'string' ? e.value : '',
          })),
        }
      : undefined,
    match: ((spec.match as Record<string, unknown>[] | undefined) ?? []).map((m) => ({
      mode: enumName(ENUMS.mode, m.mode, 'CLIENT_AND_SERVER') as WasmPluginSpec['match'][number]['mode'],
      ports: ((m.ports as { number: number }[] | undefined) ?? []).map((p) => p.number),
    })),
    type: type === 'UNSPECIFIED_PLUGIN_TYPE' ? 'HTTP' : (type as 'HTTP' | 'NETWORK'),
  };
}

async function expand(path: string, problems: Problem[]): Promise<string[]> {
  try {
    const s = await stat(path);
    if (!s.isDirectory()) return [path];
    const names = (await readdir(path)).filter((n) => /\.ya?ml$/i.test(n)).sort();
    return names.map((n) => join(path, n));
  } catch {
    problems.push({
      severity: 'error',
      file: path,
      line: 1,
      col: 1,
      kind: '-',
      name: '-',
      field: '(file)',
      message: 'no such file or folder',
    });
    return [];
  }
}

export async function loadConfig(paths: string[], opts: { defaultNamespace?: string } = {}): Promise<LoadedConfig> {
  const problems: Problem[] = [];
  const config: LoadedConfig = {
    files: [],
    wasmPlugins: [],
    gateways: [],
    virtualServices: [],
    serviceEntries: [],
    problems,
  };
  const seen = new Set<string>();
  for (const p of paths) {
    for (const file of await expand(p, problems)) {
      config.files.push(file);
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (err) {
        problems.push({
          severity: 'error',
          file,
          line: 1,
          col: 1,
          kind: '-',
          name: '-',
          field: '(file)',
          message: `cannot read: ${(err as NodeJS.ErrnoException).code}`,
        });
        continue;
      }
      loadText(text, file, opts.defaultNamespace ?? 'default', config, seen);
    }
  }
  return config;
}

function loadText(text: string, file: string, defaultNamespace: string, config: LoadedConfig, seen: Set<string>): void {
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const dir = dirname(resolve(file));
  const docList = Array.isArray(docs) ? docs : [docs];
  for (const doc of docList) {
    const pos = (offset: number) => lc.linePos(offset);
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        const { line, col } = pos(e.pos[0]);
        config.problems.push({
          severity: 'error',
          file,
          line,
          col,
          kind: '-',
          name: '-',
          field: '(yaml)',
          message: e.message.split('\n')[0]!,
        });
      }
      continue;
    }
    const value = doc.toJS({ maxAliasCount: 100 }) as unknown;
    if (value === null || value === undefined) continue;
    const docStart = doc.contents?.range?.[0] ?? 0;
    const at = (path: Path, key: boolean) => {
      const node = nodeAt(doc.contents, path, key);
      return pos(node?.range?.[0] ?? docStart);
    };
    if (typeof value !== 'object' || Array.isArray(value)) {
      const { line, col } = pos(docStart);
      config.problems.push({
        severity: 'error',
        file,
        line,
        col,
        kind: '-',
        name: '-',
        field: '(document)',
        message: 'expected a Kubernetes resource (a mapping with apiVersion and kind)',
      });
      continue;
    }
    const res = value as Record<string, unknown>;
    const kind = typeof res.kind === 'string' ? res.kind : '-';
    const meta = (res.metadata ?? {}) as Record<string, unknown>;
    const namespace = typeof meta.namespace === 'string' ? meta.namespace : defaultNamespace;
    const name = typeof meta.name === 'string' ? `${namespace}/${meta.name}` : '-';
    const report = (severity: Problem['severity'], path: Path, key: boolean, message: string) => {
      const { line, col } = at(path, key);
      config.problems.push({ severity, file, line, col, kind, name, field: fieldPath(path), message });
    };
    const def = KINDS[kind];
    if (!def) {
      report('warning', ['kind'], false, `kind "${kind}" (${String(res.apiVersion)}) is not read by wasmgate; ignored`);
      continue;
    }
    if (!def.apiVersions.includes(String(res.apiVersion))) {
      report(
        'warning',
        ['apiVersion'],
        false,
        `apiVersion "${String(res.apiVersion)}" of ${kind} is not read by wasmgate (expected ${def.apiVersions.join(' or ')}); ignored`,
      );
      continue;
    }
    const before = config.problems.length;
    if (!def.validate(res))
      for (const p of schemaProblems(def.validate.errors ?? [])) report('error', p.path, p.key, p.message);
    if (typeof meta.name !== 'string' || meta.name === '')
      report('error', ['metadata', 'name'], false, 'metadata.name is required');
    if (kind === 'WasmPlugin' && res.spec && typeof res.spec === 'object')
      for (const p of istioRules(res.spec as Record<string, unknown>)) report('error', p.path, p.key, p.message);
    if (config.problems.length > before) continue;
    const id = `${kind}/${name}`;
    if (seen.has(id)) {
      report('error', ['metadata', 'name'], false, `duplicate ${kind} ${name}`);
      continue;
    }
    seen.add(id);
    const { line, col } = pos(docStart);
    const metadata: Meta = {
      name: String(meta.name),
      namespace,
      labels: (meta.labels as Record<string, string>) ?? {},
      annotations: (meta.annotations as Record<string, string>) ?? {},
    };
    const base = { apiVersion: String(res.apiVersion), kind, metadata, file, line, col, dir };
    const spec = (res.spec ?? {}) as Record<string, unknown>;
    if (kind === 'WasmPlugin') config.wasmPlugins.push({ ...base, spec: normalizeWasmPlugin(spec, dir) });
    else if (kind === 'Gateway') config.gateways.push({ ...base, spec } as Resource<Record<string, unknown>>);
    else if (kind === 'VirtualService') config.virtualServices.push({ ...base, spec });
    else config.serviceEntries.push({ ...base, spec });
  }
}
