// imagePullSecret, standalone: the name of a Docker config JSON secret, read from a folder
// (--secrets-dir DIR) as DIR/<namespace>/<name> or DIR/<name>. The file holds either the
// .dockerconfigjson JSON itself ({"auths": {...}}) or a Kubernetes Secret (YAML or JSON) of type
// kubernetes.io/dockerconfigjson whose data[".dockerconfigjson"] is base64 (or stringData, plain).
// Without an imagePullSecret, $DOCKER_CONFIG/config.json or ~/.docker/config.json is used, as
// Istio's default keychain does. Credentials are never put in errors or logs.
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { PermanentError } from './net.ts';

export interface RegistryCredential {
  username?: string;
  password?: string;
  /** A refresh token for the registry's token server (OAuth2 refresh_token grant). */
  identityToken?: string;
  /** A bearer token sent to the registry as is. */
  registryToken?: string;
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
  registrytoken?: string;
}

export type DockerAuths = Map<string, AuthEntry>;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Registry host as a config.json key names it: "https://host:5000/v1/" -> "host:5000". */
export function authKey(key: string): string {
  let k = key
    .trim()
    .toLowerCase()
    .replace(/^[a-z]+:\/\//, '');
  k = k.split('/')[0]!;
  if (k === 'docker.io' || k === 'registry-1.docker.io' || k === 'index.docker.io') return 'index.docker.io';
  return k;
}

/** Parses a Docker config JSON text (or the older .dockercfg map). Throws without echoing the content. */
export function parseDockerConfig(text: string, what: string): DockerAuths {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new PermanentError(`${what}: not valid Docker config JSON`);
  }
  if (json === null) throw new PermanentError(`${what}: Docker config JSON is null`);
  if (!isObj(json)) throw new PermanentError(`${what}: Docker config JSON must be an object`);
  const auths = isObj(json.auths) ? json.auths : json;
  const out: DockerAuths = new Map();
  for (const [key, value] of Object.entries(auths)) {
    if (!isObj(value)) continue;
    const entry: AuthEntry = {};
    for (const f of ['auth', 'username', 'password', 'identitytoken', 'registrytoken'] as const)
      if (typeof value[f] === 'string') entry[f] = value[f];
    out.set(authKey(key), entry);
  }
  return out;
}

/** The Docker config JSON in a secret file: the JSON itself, or a Kubernetes Secret around it. */
export function dockerConfigFromSecretFile(text: string, what: string): DockerAuths {
  const trimmed = text.trim();
  let doc: unknown;
  try {
    doc = trimmed.startsWith('{') ? JSON.parse(trimmed) : parseYaml(trimmed);
  } catch {
    throw new PermanentError(`${what}: neither Docker config JSON nor a Kubernetes Secret (YAML or JSON)`);
  }
  if (isObj(doc) && (doc.kind === 'Secret' || isObj(doc.data) || isObj(doc.stringData))) {
    const type = doc.type;
    if (typeof type === 'string' && type !== 'kubernetes.io/dockerconfigjson' && type !== 'kubernetes.io/dockercfg')
      throw new PermanentError(`${what}: Secret type is ${type}, expected kubernetes.io/dockerconfigjson`);
    for (const k of ['.dockerconfigjson', '.dockercfg']) {
      const plain = isObj(doc.stringData) ? doc.stringData[k] : undefined;
      if (typeof plain === 'string') return parseDockerConfig(plain, what);
      const b64 = isObj(doc.data) ? doc.data[k] : undefined;
      if (typeof b64 === 'string') return parseDockerConfig(Buffer.from(b64, 'base64').toString('utf8'), what);
    }
    throw new PermanentError(`${what}: the Secret has no data[".dockerconfigjson"]`);
  }
  return parseDockerConfig(trimmed, what);
}

/** The credential for `registry` (host[:port]), or undefined for anonymous access. */
export function credentialFor(auths: DockerAuths, registry: string): RegistryCredential | undefined {
  const e = auths.get(authKey(registry));
  if (!e) return undefined;
  const cred: RegistryCredential = {};
  if (e.username) cred.username = e.username;
  if (e.password) cred.password = e.password;
  if (e.auth) {
    const decoded = Buffer.from(e.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw new PermanentError(`pull secret entry for ${registry}: "auth" is not base64 of user:password`);
    cred.username = decoded.slice(0, colon);
    cred.password = decoded.slice(colon + 1);
  }
  if (e.identitytoken) cred.identityToken = e.identitytoken;
  if (e.registrytoken) cred.registryToken = e.registrytoken;
  return Object.keys(cred).length > 0 ? cred : undefined;
}

/** Reads the pull secret `name` for a WasmPlugin in `namespace` from `dir`. */
export async function loadPullSecret(dir: string | undefined, namespace: string, name: string): Promise<DockerAuths> {
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/i.test(name) || name.includes('..'))
    throw new PermanentError(`imagePullSecret "${name}" is not a valid Secret name`);
  if (!dir)
    throw new PermanentError(
      `imagePullSecret "${name}" is set but no --secrets-dir was given (expected DIR/${namespace}/${name} or DIR/${name})`,
    );
  const candidates = [join(dir, namespace, name), join(dir, name)];
  for (const path of candidates) {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') continue;
      throw new PermanentError(`imagePullSecret "${name}": cannot read ${path}: ${code}`);
    }
    return dockerConfigFromSecretFile(text, `imagePullSecret "${name}" (${path})`);
  }
  throw new PermanentError(`imagePullSecret "${name}" not found: no file ${candidates.join(' or ')}`);
}

/** Istio's default keychain: $DOCKER_CONFIG/config.json or ~/.docker/config.json, if present. */
export async function defaultDockerConfig(): Promise<DockerAuths> {
  const dir = process.env.DOCKER_CONFIG ?? join(homedir(), '.docker');
  try {
    return parseDockerConfig(await readFile(join(dir, 'config.json'), 'utf8'), 'docker config.json');
  } catch {
    return new Map();
  }
}
