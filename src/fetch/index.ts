// fetchModule(): a WasmPlugin's module bytes from file://, http(s):// or oci://, with Istio's
// sha256 check, pull policy, pull secret and on-disk cache. Failures throw one line naming the
// URL (credentials redacted) and the cause.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Agent } from 'undici';
import type { PullPolicy } from '../config/types.ts';
import { effectivePullPolicy } from '../config/wasmplugin.ts';
import { isWasm } from './archive.ts';
import { defaultCacheDir, ModuleCache, sha256Hex } from './cache.ts';
import { fetchHttp } from './http.ts';
import { DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT_MS, guardedAgent, PermanentError, redactUrl } from './net.ts';
import { ociModuleName, parseOciReference, RegistryClient } from './oci.ts';
import { credentialFor, defaultDockerConfig, loadPullSecret, type RegistryCredential } from './secrets.ts';

export { redactUrl } from './net.ts';

export interface FetchOptions {
  /** Default: $XDG_CACHE_HOME/wasmgate, else <tmpdir>/wasmgate-cache-<uid>. */
  cacheDir?: string;
  /** Where imagePullSecrets are read: DIR/<namespace>/<name> or DIR/<name>. */
  secretsDir?: string;
  /** Registries (host or host:port, or *) reached over plain HTTP; loopback registries always are. */
  insecureRegistries?: string[];
  /** Per request (default 15 s). */
  timeoutMs?: number;
  /** Module, layer and download size cap (default 256 MiB, or ISTIO_WASM_MAX_BINARY_SIZE_BYTES). */
  maxBytes?: number;
  /** http(s): attempts and first backoff (Istio: 5, 500 ms). */
  httpAttempts?: number;
  httpBackoffMs?: number;
  /** oci: attempts and first backoff (go-containerregistry: 3, 1 s). */
  ociAttempts?: number;
  ociBackoffMs?: number;
  /** Progress lines (never holding credentials). */
  log?: (level: 'info' | 'warn', message: string) => void;
}

/** What fetchModule needs from a WasmPlugin. */
export interface ModuleSource {
  url: string;
  /** "<namespace>.<name>": the plugin, for the Always-policy memo. */
  name?: string;
  /** The WasmPlugin's namespace: where its imagePullSecret is looked up. */
  namespace?: string;
  sha256?: string;
  imagePullPolicy?: PullPolicy;
  imagePullSecret?: string;
}

export interface FetchedModule {
  bytes: Buffer;
  /** The OCI manifest digest or the module's sha256 (hex). */
  checksum: string;
  from: 'file' | 'cache' | 'remote';
}

export class FetchError extends Error {}

let defaults: FetchOptions = {};

/** Process-wide options (the command line's --cache-dir, --secrets-dir, --insecure-registry). */
export function configureFetch(options: FetchOptions): void {
  defaults = { ...options };
}

/**
 * Under Always, Istio re-pulls only when the WasmPlugin changed (its resourceVersion): a plugin
 * loaded again with the same spec in this process reuses what it pulled.
 */
const pulled = new Map<string, { spec: string; moduleName: string; checksum: string }>();

export async function fetchModule(source: ModuleSource, options: FetchOptions = defaults): Promise<FetchedModule> {
  const url = source.url;
  if (url.startsWith('file:')) return fetchFile(source);
  try {
    return await fetchRemote(source, options);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new FetchError(`cannot fetch ${redactUrl(url)}: ${message}`);
  }
}

function checkSha(expected: string | undefined, actual: string, what: string): void {
  if (expected && expected.toLowerCase() !== actual)
    throw new PermanentError(`sha256 mismatch: expected ${expected.toLowerCase()}, got ${actual} (${what})`);
}

async function fetchFile(source: ModuleSource): Promise<FetchedModule> {
  const path = fileURLToPath(source.url);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new FetchError(code === 'ENOENT' ? `module file not found: ${path}` : `cannot read module ${path}: ${code}`);
  }
  const actual = sha256Hex(bytes);
  try {
    checkSha(source.sha256, actual, 'module bytes');
  } catch (err) {
    throw new FetchError(`${source.url}: ${(err as Error).message}`);
  }
  return { bytes, checksum: actual, from: 'file' };
}

async function credentials(
  source: ModuleSource,
  registry: string,
  options: FetchOptions,
): Promise<RegistryCredential | undefined> {
  const auths = source.imagePullSecret
    ? await loadPullSecret(options.secretsDir, source.namespace ?? 'default', source.imagePullSecret)
    : await defaultDockerConfig();
  return credentialFor(auths, registry);
}

async function fetchRemote(source: ModuleSource, options: FetchOptions): Promise<FetchedModule> {
  const url = source.url;
  const scheme = url.slice(0, url.indexOf('://')).toLowerCase();
  if (scheme !== 'oci' && scheme !== 'http' && scheme !== 'https') throw new PermanentError(`unsupported scheme`);
  const cache = new ModuleCache(options.cacheDir ?? defaultCacheDir());
  const policy = effectivePullPolicy({ url, imagePullPolicy: source.imagePullPolicy ?? 'UNSPECIFIED_POLICY' });
  const ref = scheme === 'oci' ? parseOciReference(url) : undefined;
  const moduleName = ref ? ociModuleName(ref) : url;
  const expected = source.sha256?.toLowerCase();
  const memoKey = source.name ?? url;
  const spec = JSON.stringify([url, expected, source.imagePullPolicy, source.imagePullSecret, source.namespace]);
  const log: Plan['log'] = options.log ?? (() => {});

  // A pinned checksum (digest in the URL, or sha256) needs no network when cached, whatever the
  // policy; otherwise IfNotPresent uses what the URL last resolved to, and Always what this
  // process pulled for the same, unchanged plugin.
  const pinned = ref?.digest?.slice('sha256:'.length) ?? expected;
  let known: string | undefined = pinned;
  // A URL pinned to an index digest resolves (once) to its linux/amd64 image's digest.
  if (ref?.digest && !(await cache.get(moduleName, ref.digest.slice(7)))) known = await cache.resolved(url);
  if (!known && policy === 'IfNotPresent') known = await cache.resolved(url);
  if (!known && policy === 'Always') {
    const memo = pulled.get(memoKey);
    if (memo?.spec === spec) known = memo.checksum;
  }
  if (known) {
    const hit = await cache.get(moduleName, known);
    if (hit) {
      log('info', `wasm module ${redactUrl(url)}: cached sha256:${known.slice(0, 12)}…`);
      return { bytes: hit, checksum: known, from: 'cache' };
    }
  }

  const agent = guardedAgent();
  try {
    return await download(source, options, agent, { cache, ref, moduleName, expected, memoKey, spec, log });
  } finally {
    await agent.destroy().catch(() => {});
  }
}

interface Plan {
  cache: ModuleCache;
  ref: ReturnType<typeof parseOciReference> | undefined;
  moduleName: string;
  expected: string | undefined;
  memoKey: string;
  spec: string;
  log: NonNullable<FetchOptions['log']>;
}

async function download(source: ModuleSource, options: FetchOptions, agent: Agent, plan: Plan): Promise<FetchedModule> {
  const { cache, ref, moduleName, expected, memoKey, spec, log } = plan;
  const url = source.url;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  let bytes: Buffer;
  let checksum: string;
  if (ref) {
    const client = new RegistryClient(ref, {
      agent,
      credential: await credentials(source, ref.registry, options),
      insecureRegistries: options.insecureRegistries ?? [],
      timeoutMs,
      maxBytes,
      attempts: options.ociAttempts ?? 3,
      backoffMs: options.ociBackoffMs ?? 1000,
    });
    log('info', `fetching image ${ref.repository} from ${client.base} (${ref.digest ?? ref.tag})`);
    const image = await client.resolve();
    checkSha(expected, image.digest, 'OCI manifest digest');
    checksum = image.digest;
    const hit = await cache.get(moduleName, checksum);
    if (hit) {
      // The tag still points at a cached image: no layer download.
      await cache.remember(url, checksum).catch(() => {});
      pulled.set(memoKey, { spec, moduleName, checksum });
      return { bytes: hit, checksum, from: 'cache' };
    }
    bytes = await image.module();
    if (!isWasm(bytes)) throw new PermanentError('the image holds a plugin.wasm that is not a WebAssembly module');
  } else {
    log('info', `fetching ${redactUrl(url)}`);
    bytes = await fetchHttp(url, {
      agent,
      timeoutMs,
      maxBytes,
      attempts: options.httpAttempts ?? 5,
      backoffMs: options.httpBackoffMs ?? 500,
      onRetry: (n, cause) => log('warn', `fetching ${redactUrl(url)}: ${cause}; retry ${n}`),
    });
    checksum = sha256Hex(bytes);
    checkSha(expected, checksum, 'module bytes');
  }
  try {
    await cache.put(moduleName, checksum, bytes);
    await cache.remember(url, checksum);
  } catch (err) {
    log('warn', `wasm module cache ${cache.dir}: cannot write: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  pulled.set(memoKey, { spec, moduleName, checksum });
  return { bytes, checksum, from: 'remote' };
}
