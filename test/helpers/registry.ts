// A real OCI registry for tests: Debian's docker-registry (the CNCF distribution server) on a
// free loopback port with temporary storage, anonymous, with htpasswd (bcrypt) auth, or with
// Bearer token auth against a small token server here that signs RS256 JWTs with a key whose
// certificate the registry trusts. Images are pushed through the registry HTTP API v2
// (monolithic blob upload, then manifest PUT) in the three formats Istio accepts.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash, createSign, randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

const INSTALL_HINT = 'run `bash .ci/install-registry.sh` (installs docker-registry, apache2-utils and openssl)';

function which(cmd: string): string {
  for (const dir of (process.env.PATH ?? '/usr/bin').split(':')) {
    const p = join(dir, cmd);
    if (existsSync(p)) return p;
  }
  throw new Error(`${cmd} not found: ${INSTALL_HINT}`);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export interface Registry {
  /** host:port */
  host: string;
  url: string;
  /** Credentials that can push and pull (auth modes). */
  user?: string;
  password?: string;
  /** Tokens the token server issued (bearer mode). */
  tokensIssued: () => number;
  stop(): Promise<void>;
  /** Starts the registry again on the same port and storage (after stop). */
  restart(): Promise<void>;
  /** Stops the registry and the token server and removes the storage. */
  close(): Promise<void>;
}

export type RegistryAuth = 'none' | 'htpasswd' | 'token';

interface TokenServer {
  realm: string;
  certFile: string;
  issued: number;
  close(): Promise<void>;
}

const SERVICE = 'wasmgate-test-registry';
const ISSUER = 'wasmgate-test-issuer';

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

/** A token server: Basic credentials in, an RS256 JWT granting the requested repository actions out. */
async function startTokenServer(dir: string, user: string, password: string): Promise<TokenServer> {
  const keyFile = join(dir, 'token.key');
  const certFile = join(dir, 'token.crt');
  execFileSync(
    which('openssl'),
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '2',
      '-subj',
      '/CN=wasmgate-test-token-issuer',
    ],
    { stdio: 'ignore' },
  );
  const key = readFileSync(keyFile, 'utf8');
  const der = new X509Certificate(readFileSync(certFile)).raw.toString('base64');
  const expected = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  const state = { issued: 0 };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://token');
    if (req.headers.authorization !== expected) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end('{"details":"invalid credentials"}');
      return;
    }
    const access = url.searchParams.getAll('scope').flatMap((scope) => {
      const [type, name, actions] = scope.split(':');
      return type === 'repository' && name && actions ? [{ type, name, actions: actions.split(',') }] : [];
    });
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'RS256', x5c: [der] };
    const claims = {
      iss: ISSUER,
      sub: user,
      aud: url.searchParams.get('service') ?? SERVICE,
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(8).toString('hex'),
      access,
    };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const signature = createSign('RSA-SHA256').update(input).sign(key);
    state.issued++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token: `${input}.${b64url(signature)}`, expires_in: 300 }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    certFile,
    get issued() {
      return state.issued;
    },
    close: () =>
      new Promise((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/** Starts docker-registry on 127.0.0.1:<free port>; fails (never skips) when it is not installed. */
export async function startRegistry(auth: RegistryAuth = 'none'): Promise<Registry> {
  const bin = which('docker-registry');
  const dir = mkdtempSync(join(tmpdir(), 'wasmgate-registry-'));
  const port = await freePort();
  const user = 'puller';
  const password = randomBytes(9).toString('base64url');
  let authYaml = '';
  let token: TokenServer | undefined;
  if (auth === 'htpasswd') {
    const file = join(dir, 'htpasswd');
    execFileSync(which('htpasswd'), ['-Bbc', file, user, password], { stdio: 'ignore' });
    authYaml = `auth:\n  htpasswd:\n    realm: wasmgate-test\n    path: ${file}\n`;
  } else if (auth === 'token') {
    token = await startTokenServer(dir, user, password);
    authYaml = `auth:\n  token:\n    realm: ${token.realm}\n    service: ${SERVICE}\n    issuer: ${ISSUER}\n    rootcertbundle: ${token.certFile}\n`;
  }
  const config = join(dir, 'config.yml');
  writeFileSync(
    config,
    `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${join(dir, 'storage')}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${port}
  secret: ${randomBytes(16).toString('hex')}
${authYaml}`,
  );
  let child: ChildProcess | undefined;
  let output = '';
  const start = async () => {
    output = '';
    child = spawn(bin, ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d) => {
      output += d;
    });
    child.stderr!.on('data', (d) => {
      output += d;
    });
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`docker-registry exited with ${child.exitCode}:\n${output}`);
      try {
        const res = await fetch(`http://127.0.0.1:${port}/v2/`);
        await res.arrayBuffer();
        if (res.status === 200 || res.status === 401) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`docker-registry did not start:\n${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const stopChild = () =>
    new Promise<void>((resolve) => {
      if (!child || child.exitCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
  await start();
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    ...(auth === 'none' ? {} : { user, password }),
    tokensIssued: () => token?.issued ?? 0,
    stop: stopChild,
    restart: start,
    close: async () => {
      await stopChild();
      await token?.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---- pushing images through the registry API v2 ----

export const MEDIA = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  wasmConfig: 'application/vnd.module.wasm.config.v1+json',
  wasmLayer: 'application/vnd.module.wasm.content.layer.v1+wasm',
} as const;

export const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** A one-file ustar archive (as `docker build` with `ADD plugin.wasm .` layers it). */
export function tarOf(files: Record<string, Buffer>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, data] of Object.entries(files)) {
    const h = Buffer.alloc(512);
    h.write(name, 0, 100, 'utf8');
    h.write('0000644\0', 100);
    h.write('0000000\0', 108);
    h.write('0000000\0', 116);
    h.write(`${data.length.toString(8).padStart(11, '0')}\0`, 124);
    h.write(
      `${Math.floor(Date.now() / 1000)
        .toString(8)
        .padStart(11, '0')}\0`,
      136,
    );
    h.write('        ', 148);
    h.write('0', 156);
    h.write('ustar\0', 257);
    h.write('00', 263);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
    parts.push(h, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export interface Blob {
  mediaType: string;
  bytes: Buffer;
}

export interface Image {
  /** The manifest (or index) JSON text, as pushed. */
  manifest: string;
  mediaType: string;
  blobs: Blob[];
  /** sha256 hex of the manifest: what WasmPlugin.sha256 names for oci://. */
  digest: string;
  /** Child images of an index, pushed first. */
  children?: Image[];
}

function descriptor(b: Blob) {
  return { mediaType: b.mediaType, digest: `sha256:${sha256(b.bytes)}`, size: b.bytes.length };
}

function image(mediaType: string, config: Blob, layers: Blob[], extra: Record<string, unknown> = {}): Image {
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType,
    config: descriptor(config),
    layers: layers.map(descriptor),
    ...extra,
  });
  return { manifest, mediaType, blobs: [config, ...layers], digest: sha256(manifest) };
}

/** Docker image manifest v2 schema 2 whose one layer (tar.gz) holds plugin.wasm. */
export function dockerImage(wasm: Buffer): Image {
  const tar = tarOf({ 'plugin.wasm': wasm });
  const config = JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    config: {},
    rootfs: { type: 'layers', diff_ids: [`sha256:${sha256(tar)}`] },
  });
  return image(MEDIA.dockerManifest, { mediaType: MEDIA.dockerConfig, bytes: Buffer.from(config) }, [
    { mediaType: MEDIA.dockerLayer, bytes: gzipSync(tar) },
  ]);
}

/** The OCI "compat" image: the same with OCI media types (solo-io spec-compat). */
export function ociCompatImage(wasm: Buffer): Image {
  const tar = tarOf({ 'plugin.wasm': wasm });
  const config = JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    config: {},
    rootfs: { type: 'layers', diff_ids: [`sha256:${sha256(tar)}`] },
  });
  return image(
    MEDIA.ociManifest,
    { mediaType: MEDIA.ociConfig, bytes: Buffer.from(config) },
    [{ mediaType: MEDIA.ociLayer, bytes: gzipSync(tar) }],
    { annotations: { 'module.wasm.image/variant': 'compat' } },
  );
}

/** The OCI Wasm artifact (solo-io spec "oci" variant, as wasme pushes it): raw module + config layer. */
export function ociArtifactImage(wasm: Buffer): Image {
  const config = Buffer.from(JSON.stringify({ type: 'envoy_proxy', abiVersions: ['v0.2.1'], config: { rootIds: [] } }));
  return image(MEDIA.ociManifest, { mediaType: MEDIA.wasmConfig, bytes: config }, [
    { mediaType: MEDIA.wasmLayer, bytes: wasm },
    { mediaType: MEDIA.wasmConfig, bytes: config },
  ]);
}

/** An OCI image index with an arm64 decoy and the linux/amd64 image `amd64`. */
export function ociIndex(amd64: Image, arm64: Image): Image {
  const entry = (img: Image, architecture: string) => ({
    mediaType: img.mediaType,
    digest: `sha256:${img.digest}`,
    size: Buffer.byteLength(img.manifest),
    platform: { os: 'linux', architecture },
  });
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA.ociIndex,
    manifests: [entry(arm64, 'arm64'), entry(amd64, 'amd64')],
  });
  return { manifest, mediaType: MEDIA.ociIndex, blobs: [], digest: sha256(manifest), children: [arm64, amd64] };
}

/** A registry API v2 client for pushing, answering Basic and Bearer challenges with the registry's user. */
class Pusher {
  readonly #registry: Registry;
  readonly #repo: string;
  #authorization: string | undefined;

  constructor(registry: Registry, repo: string) {
    this.#registry = registry;
    this.#repo = repo;
  }

  async #send(method: string, url: string, body?: Buffer | string, headers: Record<string, string> = {}) {
    for (let round = 0; ; round++) {
      const h: Record<string, string> = { ...headers };
      if (this.#authorization) h.authorization = this.#authorization;
      const res = await fetch(url, { method, headers: h, body, redirect: 'manual' });
      if (res.status === 401 && round === 0) {
        await res.arrayBuffer();
        await this.#answer(res.headers.get('www-authenticate') ?? '');
        continue;
      }
      return res;
    }
  }

  async #answer(challenge: string): Promise<void> {
    const basic = `Basic ${Buffer.from(`${this.#registry.user}:${this.#registry.password}`).toString('base64')}`;
    if (/^basic/i.test(challenge)) {
      this.#authorization = basic;
      return;
    }
    const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    const url = new URL(params.realm!);
    url.searchParams.set('service', params.service ?? '');
    url.searchParams.set('scope', `repository:${this.#repo}:pull,push`);
    const res = await fetch(url, { headers: { authorization: basic } });
    if (!res.ok) throw new Error(`token server: ${res.status}`);
    this.#authorization = `Bearer ${((await res.json()) as { token: string }).token}`;
  }

  async blob(b: Blob): Promise<void> {
    const base = this.#registry.url;
    const digest = `sha256:${sha256(b.bytes)}`;
    const start = await this.#send('POST', `${base}/v2/${this.#repo}/blobs/uploads/`);
    await start.arrayBuffer();
    if (start.status !== 202) throw new Error(`blob upload start: HTTP ${start.status}`);
    const location = new URL(start.headers.get('location')!, base);
    location.searchParams.set('digest', digest);
    const put = await this.#send('PUT', location.href, b.bytes, {
      'content-type': 'application/octet-stream',
      'content-length': String(b.bytes.length),
    });
    const text = await put.text();
    if (put.status !== 201) throw new Error(`blob upload ${digest}: HTTP ${put.status} ${text}`);
  }

  async manifest(img: Image, reference: string): Promise<void> {
    const res = await this.#send('PUT', `${this.#registry.url}/v2/${this.#repo}/manifests/${reference}`, img.manifest, {
      'content-type': img.mediaType,
    });
    const text = await res.text();
    if (res.status !== 201) throw new Error(`manifest PUT ${this.#repo}:${reference}: HTTP ${res.status} ${text}`);
  }
}

/** Pushes `img` (its blobs, children and manifest) as repo:tag; returns the manifest digest (hex). */
export async function pushImage(registry: Registry, repo: string, tag: string, img: Image): Promise<string> {
  const pusher = new Pusher(registry, repo);
  for (const child of img.children ?? []) {
    for (const b of child.blobs) await pusher.blob(b);
    await pusher.manifest(child, `sha256:${child.digest}`);
  }
  for (const b of img.blobs) await pusher.blob(b);
  await pusher.manifest(img, tag);
  return img.digest;
}

/** A temp --secrets-dir holding `name` for `namespace` in the given form. */
export function secretsDir(
  registry: Registry,
  namespace: string,
  name: string,
  form: 'dockerconfigjson' | 'k8s-yaml' | 'k8s-json' = 'dockerconfigjson',
): string {
  const dir = mkdtempSync(join(tmpdir(), 'wasmgate-secrets-'));
  const auth = Buffer.from(`${registry.user}:${registry.password}`).toString('base64');
  const config = JSON.stringify({ auths: { [registry.host]: { auth } } });
  const b64 = Buffer.from(config).toString('base64');
  const text =
    form === 'dockerconfigjson'
      ? config
      : form === 'k8s-json'
        ? JSON.stringify({
            apiVersion: 'v1',
            kind: 'Secret',
            metadata: { name, namespace },
            type: 'kubernetes.io/dockerconfigjson',
            data: { '.dockerconfigjson': b64 },
          })
        : `apiVersion: v1\nkind: Secret\nmetadata:\n  name: ${name}\n  namespace: ${namespace}\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: ${b64}\n`;
  mkdirSync(join(dir, namespace), { recursive: true });
  writeFileSync(join(dir, namespace, name), text);
  return dir;
}
