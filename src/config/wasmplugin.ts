// WasmPlugin: the url rules and the normalization (Istio's defaults applied).
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ENUMS } from './schemas.ts';
import type {
  EnvValueSource,
  FailStrategy,
  Phase,
  PluginType,
  PullPolicy,
  TargetRef,
  WasmPluginSpec,
  WorkloadMode,
} from './types.ts';

type Obj = Record<string, unknown>;

export const URL_SCHEMES = ['oci', 'file', 'http', 'https'] as const;

/** The scheme as Go's net/url sees it (lower-cased), or "" when the url has none. */
export function urlScheme(url: string): string {
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(url);
  return m ? m[1]!.toLowerCase() : '';
}

/** Istio's validateWasmPluginURL, plus wasmgate's hints. */
export function checkUrl(url: string): { error?: string; warning?: string } {
  const scheme = urlScheme(url);
  if (url.startsWith(':')) return { error: `failed to parse url "${url}": missing protocol scheme` };
  if (scheme === '') {
    if (!URL.canParse(`http://${url}`)) return { error: `failed to parse url "${url}"` };
    if (/^\.{0,2}\//.test(url) || /\.wasm$/i.test(url))
      return {
        warning: `url has no scheme, so it names an OCI image (oci://${url}); for a local .wasm file write file://${url.startsWith('/') ? url : `./${url.replace(/^\.\//, '')}`}`,
      };
    return {};
  }
  if (!(URL_SCHEMES as readonly string[]).includes(scheme)) {
    const hint = /^[^/:]+:\d+(\/|$)/.test(url)
      ? ` (an OCI registry with a port needs the scheme: oci://${url})`
      : ' (use oci://, file://, http:// or https://)';
    return { error: `url contains unsupported scheme: ${scheme}${hint}` };
  }
  if (scheme === 'file') {
    if (filePath(url) === '') return { error: 'a file:// url needs a path, e.g. file://./plugin.wasm' };
    return {};
  }
  const asHttp = scheme === 'oci' ? `http:${url.slice(url.indexOf(':') + 1)}` : url;
  if (!URL.canParse(asHttp) || new URL(asHttp).host === '') return { error: `failed to parse url "${url}"` };
  return {};
}

/** The path part of a file: url ("file://./x.wasm" -> "./x.wasm", "file:///opt/x.wasm" -> "/opt/x.wasm"). */
function filePath(url: string): string {
  let rest = url.slice(url.indexOf(':') + 1);
  if (rest.startsWith('//')) rest = rest.slice(2);
  if (rest.startsWith('localhost/')) rest = rest.slice('localhost'.length);
  return rest;
}

/**
 * no scheme -> oci://; a relative file:// path resolves against `dir` (the YAML file's folder) to an
 * absolute file:// URL; other urls keep their text, with the scheme lower-cased.
 */
export function normalizeUrl(url: string, dir: string): string {
  const scheme = urlScheme(url);
  if (scheme === '') return `oci://${url}`;
  const rest = url.slice(scheme.length);
  if (scheme !== 'file') return `${scheme}${rest}`;
  const path = filePath(url);
  if (path.startsWith('/')) return `file://${path}`;
  let decoded = path;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    // keep it as written
  }
  return pathToFileURL(resolve(dir, decoded)).href;
}

/** The digest an OCI or http url pins with @sha256:..., lower-cased. */
export function urlDigest(url: string): string | undefined {
  return /@sha256:([a-fA-F0-9]{64})(?![a-fA-F0-9])/.exec(url)?.[1]?.toLowerCase();
}

/**
 * What UNSPECIFIED_POLICY means: IfNotPresent, except Always for an OCI image tagged latest (or not
 * tagged, which means latest), mirroring Kubernetes.
 */
export function effectivePullPolicy(spec: Pick<WasmPluginSpec, 'url' | 'imagePullPolicy'>): 'IfNotPresent' | 'Always' {
  if (spec.imagePullPolicy !== 'UNSPECIFIED_POLICY') return spec.imagePullPolicy;
  if (!spec.url.startsWith('oci://') || urlDigest(spec.url)) return 'IfNotPresent';
  const ref = spec.url.slice('oci://'.length);
  const lastSegment = ref.slice(ref.lastIndexOf('/') + 1);
  const colon = lastSegment.lastIndexOf(':');
  const tag = colon < 0 ? 'latest' : lastSegment.slice(colon + 1);
  return tag === 'latest' ? 'Always' : 'IfNotPresent';
}

/** An enum field as its name: names stay, numbers map to names, absent is the default. */
export function enumName<T extends string>(names: readonly string[], value: unknown, absent: T): T {
  if (typeof value === 'number') return (names[value] ?? absent) as T;
  if (typeof value === 'string') return value as T;
  return absent;
}

/** A targetRef as read (group "" for the core group; namespace only when given). */
export function targetRef(v: Obj): TargetRef {
  const ref: TargetRef = {
    group: typeof v.group === 'string' ? v.group : '',
    kind: String(v.kind),
    name: String(v.name),
  };
  if (typeof v.namespace === 'string' && v.namespace !== '') ref.namespace = v.namespace;
  return ref;
}

/** A schema-valid WasmPlugin spec with Istio's defaults applied. */
export function normalizeWasmPlugin(spec: Obj, dir: string): WasmPluginSpec {
  const out: WasmPluginSpec = {
    url: normalizeUrl(String(spec.url), dir),
    imagePullPolicy: enumName<PullPolicy>(ENUMS.imagePullPolicy, spec.imagePullPolicy, 'UNSPECIFIED_POLICY'),
    phase: enumName<Phase>(ENUMS.phase, spec.phase, 'UNSPECIFIED_PHASE'),
    priority: typeof spec.priority === 'number' ? spec.priority : 0,
    failStrategy: enumName<FailStrategy>(ENUMS.failStrategy, spec.failStrategy, 'FAIL_CLOSE'),
    match: ((spec.match as Obj[] | undefined) ?? []).map((m) => {
      const mode = enumName<WorkloadMode>(ENUMS.mode, m.mode, 'CLIENT_AND_SERVER');
      return {
        mode: mode === 'UNDEFINED' ? 'CLIENT_AND_SERVER' : mode,
        ports: ((m.ports as { number: number }[] | undefined) ?? []).map((p) => p.number),
      };
    }),
    type: ((t) => (t === 'NETWORK' ? 'NETWORK' : 'HTTP'))(
      enumName<PluginType | 'UNSPECIFIED_PLUGIN_TYPE'>(ENUMS.type, spec.type, 'HTTP'),
    ),
  };
  const selector = spec.selector as Obj | undefined;
  if (selector)
    out.selector = { matchLabels: { ...((selector.matchLabels as Record<string, string> | undefined) ?? {}) } };
  if (spec.targetRef) out.targetRef = targetRef(spec.targetRef as Obj);
  if (Array.isArray(spec.targetRefs)) out.targetRefs = (spec.targetRefs as Obj[]).map(targetRef);
  if (typeof spec.sha256 === 'string' && spec.sha256 !== '') out.sha256 = spec.sha256;
  if (typeof spec.imagePullSecret === 'string') out.imagePullSecret = spec.imagePullSecret;
  if (typeof spec.verificationKey === 'string') out.verificationKey = spec.verificationKey;
  if (spec.pluginConfig !== undefined) out.pluginConfig = spec.pluginConfig as Record<string, unknown>;
  if (typeof spec.pluginName === 'string') out.pluginName = spec.pluginName;
  const vmConfig = spec.vmConfig as Obj | undefined;
  if (vmConfig) {
    out.vmConfig = {
      env: ((vmConfig.env as Obj[] | undefined) ?? []).map((e) => ({
        name: String(e.name),
        valueFrom: enumName<EnvValueSource>(ENUMS.valueFrom, e.valueFrom, 'INLINE'),
        value: typeof e.value === 'string' ? e.value : '',
      })),
    };
  }
  return out;
}
