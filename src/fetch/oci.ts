// oci:// through the registry HTTP API v2, as Istio's image fetcher (go-containerregistry) does:
// anonymous, Basic and Bearer (the WWW-Authenticate challenge, scope repository:<name>:pull);
// Docker schema 2 and OCI manifests, an image index resolved to linux/amd64; the three image
// variants Istio accepts (Docker and OCI "compat" images whose last layer is a tar.gz holding
// plugin.wasm, and the OCI Wasm artifact whose layer is the raw module).
import { createHash } from 'node:crypto';
import type { Agent } from 'undici';
import { pluginFromLayer } from './archive.ts';
import { backoff, checkHost, HttpStatusError, header, httpRequest, isLoopback, PermanentError } from './net.ts';
import type { RegistryCredential } from './secrets.ts';

export const MEDIA = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  wasmConfig: 'application/vnd.module.wasm.config.v1+json',
  wasmLayer: 'application/vnd.module.wasm.content.layer.v1+wasm',
  /** The CNCF TAG-Runtime Wasm artifact layer: not accepted by Istio, accepted here too. */
  cncfWasmLayer: 'application/wasm',
} as const;

const ACCEPT = [MEDIA.dockerManifest, MEDIA.ociManifest, MEDIA.dockerList, MEDIA.ociIndex].join(', ');
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const MAX_TOKEN_BYTES = 1024 * 1024;

export interface OciReference {
  /** host[:port]; Docker Hub is index.docker.io. */
  registry: string;
  repository: string;
  tag?: string;
  /** sha256:<hex> */
  digest?: string;
}

/** Parses oci://host[:port]/repo[:tag][@sha256:hex] (or the same without a scheme). */
export function parseOciReference(url: string): OciReference {
  let rest = url.replace(/^oci:\/\//i, '');
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!/^sha256:[a-f0-9]{64}$/.test(digest))
      throw new PermanentError(`invalid digest "${digest}" in image reference`);
  }
  const slash = rest.indexOf('/');
  let registry = 'index.docker.io';
  let path = rest;
  if (slash > 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('[')) {
      registry = first;
      path = rest.slice(slash + 1);
    }
  }
  if (registry === 'docker.io' || registry === 'registry-1.docker.io') registry = 'index.docker.io';
  let tag: string | undefined;
  const lastSlash = path.lastIndexOf('/');
  const colon = path.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = path.slice(colon + 1);
    path = path.slice(0, colon);
    if (!/^[\w][\w.-]{0,127}$/.test(tag)) throw new PermanentError(`invalid tag "${tag}" in image reference`);
  }
  if (!digest && !tag) tag = 'latest';
  if (registry === 'index.docker.io' && !path.includes('/')) path = `library/${path}`;
  if (!/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/.test(path))
    throw new PermanentError(`invalid repository name "${path}" in image reference`);
  const ref: OciReference = { registry, repository: path };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/** The cache's module name: the reference without tag or digest (Istio's moduleName). */
export function ociModuleName(ref: OciReference): string {
  return `oci://${ref.registry}/${ref.repository}`;
}

export interface OciOptions {
  agent: Agent;
  credential?: RegistryCredential | undefined;
  /** host[:port] entries reached over plain HTTP (loopback hosts always are). */
  insecureRegistries: string[];
  timeoutMs: number;
  maxBytes: number;
  /** Attempts for 5xx and network errors (go-containerregistry: 3, backoff 1 s x3). */
  attempts: number;
  backoffMs: number;
}

interface Descriptor {
  mediaType?: string;
  digest: string;
  size: number;
  platform?: { os?: string; architecture?: string; variant?: string };
}

export interface Manifest {
  schemaVersion?: number;
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
}

export interface ResolvedImage {
  /** The image manifest's digest, hex: what WasmPlugin.sha256 is compared with. */
  digest: string;
  manifest: Manifest;
  /** Downloads the layers and returns the module bytes. */
  module(): Promise<Buffer>;
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses one WWW-Authenticate challenge: Bearer realm="...",service="...",scope="...". */
export function parseChallenge(value: string): Challenge | undefined {
  const m = /^\s*([A-Za-z]+)\s*(.*)$/.exec(value);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  for (const p of m[2]!.matchAll(/([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g))
    params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!;
  return { scheme: m[1]!.toLowerCase(), params };
}

/** One registry and repository; remembers the Authorization it earned. */
export class RegistryClient {
  readonly ref: OciReference;
  readonly base: string;
  readonly #options: OciOptions;
  #authorization: string | undefined;

  constructor(ref: OciReference, options: OciOptions) {
    this.ref = ref;
    this.#options = options;
    const host = ref.registry.replace(/:\d+$/, '');
    const insecure = options.insecureRegistries.some((h) => h === '*' || h === ref.registry || h === host);
    this.base = `${isLoopback(host) || insecure ? 'http' : 'https'}://${ref.registry}`;
    if (options.credential?.registryToken) this.#authorization = `Bearer ${options.credential.registryToken}`;
  }

  get scope(): string {
    return `repository:${this.ref.repository}:pull`;
  }

  /** GET with the earned Authorization; on 401, answers the challenge once and retries. */
  async #get(path: string, accept: string | undefined, maxBytes: number) {
    const url = `${this.base}${path}`;
    for (let round = 0; ; round++) {
      const headers: Record<string, string> = {};
      if (accept) headers.accept = accept;
      if (this.#authorization) headers.authorization = this.#authorization;
      const res = await this.#retrying(() =>
        httpRequest(url, { agent: this.#options.agent, headers, maxBytes, timeoutMs: this.#options.timeoutMs }),
      );
      if (res.status === 401 && round === 0) {
        await this.#answer(header(res.headers, 'www-authenticate'));
        continue;
      }
      if (res.status < 200 || res.status >= 300) {
        let detail = '';
        try {
          const errors = (JSON.parse(res.body.toString('utf8')) as { errors?: { code?: string; message?: string }[] })
            .errors;
          if (errors?.length) detail = `: ${errors.map((e) => `${e.code ?? ''} ${e.message ?? ''}`.trim()).join('; ')}`;
        } catch {
          // not a registry error body
        }
        const what = res.status === 401 ? ' (credentials missing or rejected)' : '';
        throw new HttpStatusError(res.status, res.headers, `GET ${path}: HTTP ${res.status}${what}${detail}`);
      }
      return res;
    }
  }

  async #retrying<T extends { status: number }>(call: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const last = attempt + 1 >= this.#options.attempts;
      try {
        const res = await call();
        if ([500, 502, 503, 504, 408, 429].includes(res.status) && !last) {
          await backoff(this.#options.backoffMs, attempt);
          continue;
        }
        return res;
      } catch (err) {
        if (err instanceof PermanentError || last) throw err;
        await backoff(this.#options.backoffMs, attempt);
      }
    }
  }

  /** Earns an Authorization header from a 401's challenge. */
  async #answer(wwwAuthenticate: string | undefined): Promise<void> {
    const challenge = wwwAuthenticate ? parseChallenge(wwwAuthenticate) : undefined;
    const cred = this.#options.credential;
    if (!challenge) throw new PermanentError(`registry answered 401 without a WWW-Authenticate challenge`);
    if (challenge.scheme === 'basic') {
      if (!cred?.username || cred.password === undefined)
        throw new PermanentError(`registry ${this.ref.registry} requires credentials (set imagePullSecret)`);
      this.#authorization = `Basic ${Buffer.from(`${cred.username}:${cred.password}`).toString('base64')}`;
      return;
    }
    if (challenge.scheme !== 'bearer') throw new PermanentError(`unsupported auth scheme "${challenge.scheme}"`);
    const realm = challenge.params.realm;
    if (!realm) throw new PermanentError('Bearer challenge without a realm');
    const realmUrl = this.#checkRealm(realm);
    const scopes = [this.scope];
    if (challenge.params.scope && !scopes.includes(challenge.params.scope)) scopes.unshift(challenge.params.scope);
    const service = challenge.params.service;
    const token = cred?.identityToken
      ? await this.#refreshToken(realmUrl, cred, service, scopes)
      : await this.#getToken(realmUrl, cred, service, scopes);
    this.#authorization = `Bearer ${token}`;
  }

  /** The realm must be http(s), not a metadata address, and loopback only when the registry is. */
  #checkRealm(realm: string): URL {
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new PermanentError(`Bearer realm is not a URL`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:')
      throw new PermanentError(`Bearer realm must be http(s), got ${url.protocol}`);
    checkHost(url.hostname);
    if (isLoopback(url.hostname) && !isLoopback(new URL(this.base).hostname))
      throw new PermanentError(`Bearer realm ${url.origin} is a loopback address but the registry is not`);
    return url;
  }

  async #getToken(realm: URL, cred: RegistryCredential | undefined, service: string | undefined, scopes: string[]) {
    const url = new URL(realm);
    if (service) url.searchParams.set('service', service);
    for (const s of scopes) url.searchParams.append('scope', s);
    const headers: Record<string, string> = {};
    if (cred?.username && cred.password !== undefined)
      headers.authorization = `Basic ${Buffer.from(`${cred.username}:${cred.password}`).toString('base64')}`;
    const res = await this.#retrying(() =>
      httpRequest(url.href, {
        agent: this.#options.agent,
        headers,
        maxBytes: MAX_TOKEN_BYTES,
        timeoutMs: this.#options.timeoutMs,
      }),
    );
    return this.#tokenFrom(res.status, res.body, realm);
  }

  async #refreshToken(realm: URL, cred: RegistryCredential, service: string | undefined, scopes: string[]) {
    const form = new URLSearchParams({
      grant_type: 'refresh_token',
      refresh_token: cred.identityToken!,
      client_id: 'wasmgate',
      scope: scopes.join(' '),
    });
    if (service) form.set('service', service);
    const res = await httpRequest(realm.href, {
      agent: this.#options.agent,
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form.toString(),
      maxBytes: MAX_TOKEN_BYTES,
      timeoutMs: this.#options.timeoutMs,
    });
    if (res.status === 404 || res.status === 405) return this.#getToken(realm, cred, service, scopes);
    return this.#tokenFrom(res.status, res.body, realm);
  }

  #tokenFrom(status: number, body: Buffer, realm: URL): string {
    if (status === 401 || status === 403)
      throw new PermanentError(`token server ${realm.origin} refused the credentials (HTTP ${status})`);
    if (status < 200 || status >= 300) throw new Error(`token server ${realm.origin} answered HTTP ${status}`);
    let json: { token?: unknown; access_token?: unknown };
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch {
      throw new PermanentError(`token server ${realm.origin} answered with no JSON`);
    }
    const token = typeof json.token === 'string' && json.token ? json.token : json.access_token;
    if (typeof token !== 'string' || token === '') throw new PermanentError(`token server ${realm.origin}: no token`);
    return token;
  }

  /** The manifest at `reference` (a tag or sha256:...), its digest checked when pinned. */
  async manifest(reference: string): Promise<{ digest: string; manifest: Manifest; mediaType: string }> {
    const res = await this.#get(
      `/v2/${this.ref.repository}/manifests/${encodeURIComponent(reference)}`,
      ACCEPT,
      MAX_MANIFEST_BYTES,
    );
    const digest = sha256Hex(res.body);
    if (reference.startsWith('sha256:') && reference !== `sha256:${digest}`)
      throw new PermanentError(`manifest digest mismatch: asked for ${reference}, got sha256:${digest}`);
    const announced = header(res.headers, 'docker-content-digest');
    if (announced?.startsWith('sha256:') && announced !== `sha256:${digest}`)
      throw new PermanentError(`manifest digest mismatch: registry said ${announced}, content is sha256:${digest}`);
    let manifest: Manifest;
    try {
      manifest = JSON.parse(res.body.toString('utf8')) as Manifest;
    } catch {
      throw new PermanentError('manifest is not JSON');
    }
    if (manifest.schemaVersion === 1) throw new PermanentError('Docker schema 1 manifests are not supported');
    const mediaType = manifest.mediaType ?? header(res.headers, 'content-type')?.split(';')[0]?.trim() ?? '';
    return { digest, manifest, mediaType };
  }

  /** A blob, checked against its descriptor's digest and size. */
  async blob(desc: Descriptor): Promise<Buffer> {
    if (!/^sha256:[a-f0-9]{64}$/.test(desc.digest)) throw new PermanentError(`unsupported blob digest ${desc.digest}`);
    if (desc.size > this.#options.maxBytes)
      throw new PermanentError(`layer of ${desc.size} bytes exceeds the limit of ${this.#options.maxBytes} bytes`);
    const res = await this.#get(`/v2/${this.ref.repository}/blobs/${desc.digest}`, undefined, this.#options.maxBytes);
    const actual = sha256Hex(res.body);
    if (`sha256:${actual}` !== desc.digest)
      throw new PermanentError(`blob digest mismatch: expected ${desc.digest}, got sha256:${actual}`);
    if (typeof desc.size === 'number' && res.body.length !== desc.size)
      throw new PermanentError(`blob ${desc.digest} is ${res.body.length} bytes, the manifest says ${desc.size}`);
    return res.body;
  }

  /** Resolves the reference to an image manifest (through an index: linux/amd64). */
  async resolve(): Promise<ResolvedImage> {
    let { digest, manifest, mediaType } = await this.manifest(this.ref.digest ?? this.ref.tag ?? 'latest');
    if (mediaType === MEDIA.ociIndex || mediaType === MEDIA.dockerList || (!manifest.layers && manifest.manifests)) {
      const child = choosePlatform(manifest.manifests ?? []);
      ({ digest, manifest, mediaType } = await this.manifest(child.digest));
      if (mediaType === MEDIA.ociIndex || mediaType === MEDIA.dockerList)
        throw new PermanentError('nested image indexes are not supported');
    }
    const image = manifest;
    const isDocker = mediaType === MEDIA.dockerManifest;
    return {
      digest,
      manifest: image,
      module: () => this.#extract(image, isDocker),
    };
  }

  /** Istio's order: Docker image; else OCI compat image; else OCI Wasm artifact. */
  async #extract(manifest: Manifest, isDocker: boolean): Promise<Buffer> {
    const layers = manifest.layers ?? [];
    if (layers.length === 0) throw new PermanentError('the image has no layers');
    const last = layers[layers.length - 1]!;
    if (isDocker) {
      if (last.mediaType !== MEDIA.dockerLayer)
        throw new PermanentError(
          `Docker image: last layer has media type ${last.mediaType} (expected ${MEDIA.dockerLayer})`,
        );
      return pluginFromLayer(await this.blob(last), this.#options.maxBytes);
    }
    if (last.mediaType === MEDIA.ociLayer) return pluginFromLayer(await this.blob(last), this.#options.maxBytes);
    const wasm = layers.find((l) => l.mediaType === MEDIA.wasmLayer || l.mediaType === MEDIA.cncfWasmLayer);
    if (wasm) return this.blob(wasm);
    throw new PermanentError(
      `the image is in none of the formats Istio accepts: a Docker or OCI image whose last layer (${MEDIA.dockerLayer} or ${MEDIA.ociLayer}) holds plugin.wasm, or a Wasm artifact with a ${MEDIA.wasmLayer} layer (layers: ${layers.map((l) => l.mediaType).join(', ')})`,
    );
  }
}

/** linux/amd64 as go-containerregistry's default platform; then wasi/wasm; then a sole entry. */
export function choosePlatform(manifests: Descriptor[]): Descriptor {
  const pick =
    manifests.find((m) => m.platform?.os === 'linux' && m.platform.architecture === 'amd64') ??
    manifests.find((m) => m.platform?.os === 'wasi' && m.platform.architecture === 'wasm') ??
    (manifests.length === 1 ? manifests[0] : undefined);
  if (!pick) {
    const platforms = manifests.map((m) => `${m.platform?.os ?? '?'}/${m.platform?.architecture ?? '?'}`).join(', ');
    throw new PermanentError(`the image index has no linux/amd64 image (platforms: ${platforms || 'none'})`);
  }
  return pick;
}
