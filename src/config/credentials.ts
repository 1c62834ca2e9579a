// TLS credentials named by Kubernetes Secret: Gateway servers[].tls.credentialName,
// credentialNames and caCertCredentialName, DestinationRule tls.credentialName. Standalone, they
// are read from --secrets-dir DIR as a Secret mounted into the container would be:
// DIR/<namespace>/<name>, else DIR/<name> (<namespace>: the resource's metadata.namespace), each
// either a folder with one file per key (how Kubernetes mounts a Secret volume) or a Secret
// manifest file (YAML or JSON; `data` base64, `stringData` plain). Keys: tls.crt, tls.key, ca.crt,
// ca.crl (kubernetes.io/tls) or cert, key, cacert, crl (Istio's generic secret). A CA that the
// secret lacks comes from the secret <name>-cacert, as in Istio.
//
// Read while the configuration loads, so that `validate`, the start and a reload report the same
// problems at the field's file:line:col. The material is kept out of the resources (a WeakMap on
// the tls settings object): it never reaches a dump or a message.
import { createPrivateKey } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { parse as parseYaml } from 'yaml';
import { CLIENT_TLS_MODES } from './destination-rule.ts';
import type { Path } from './position.ts';
import { Issues } from './rules.ts';
import type { Issue } from './validate.ts';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const text = (v: unknown): string => (typeof v === 'string' ? v : '');

/** The keys of each part: the kubernetes.io/tls name first, then Istio's generic-secret name. */
const KEYS = {
  cert: ['tls.crt', 'cert'],
  key: ['tls.key', 'key'],
  ca: ['ca.crt', 'cacert'],
  crl: ['ca.crl', 'crl'],
} as const;
type Part = keyof typeof KEYS;
const ALL_KEYS: readonly string[] = Object.values(KEYS).flat();

/** A Kubernetes object name (DNS subdomain); nothing that could leave the folder. */
const SECRET_NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/i;

export const SECRET_LAYOUT =
  'a folder holding tls.crt and tls.key (and ca.crt for MUTUAL), or a Kubernetes Secret file (YAML or JSON) with those keys under data (base64) or stringData';

export interface SecretContext {
  /** --secrets-dir; undefined when not given. */
  secretsDir: string | undefined;
  /** The namespace of the resource naming the secret. */
  namespace: string;
  /** Every candidate path tried, found or not: the config watcher watches them. */
  watch: Set<string>;
}

/** Certificates for a Gateway server: one or two (credentialNames) certificate/key pairs. */
export interface ServerCredential {
  cert: Buffer[];
  key: Buffer[];
  /** MUTUAL / OPTIONAL_MUTUAL: the CA client certificates must chain to. */
  ca?: Buffer;
  crl?: Buffer;
}

/** A DestinationRule's client TLS from a secret. */
export interface ClientCredential {
  cert?: Buffer;
  key?: Buffer;
  /** Verifies the upstream; absent: the system CAs. */
  ca?: Buffer;
  crl?: Buffer;
}

const servers = new WeakMap<object, ServerCredential>();
const clients = new WeakMap<object, ClientCredential>();

/** The credential read for a Gateway server's `tls` object at load, if it names one. */
export function serverCredential(tlsSettings: object): ServerCredential | undefined {
  return servers.get(tlsSettings);
}

/** The credential read for a DestinationRule `tls` object at load, if it names one. */
export function clientCredential(tlsSettings: object): ClientCredential | undefined {
  return clients.get(tlsSettings);
}

interface Secret {
  name: string;
  path: string;
  form: 'folder' | 'Secret file';
  /** The values of the keys wasmgate reads. */
  values: Map<string, Buffer>;
  /** Every key's name (not its value), for messages. */
  keys: string[];
}

class SecretError extends Error {}

function readFolder(path: string, name: string): Secret {
  let names: string[];
  try {
    names = readdirSync(path).filter((n) => !n.startsWith('.'));
  } catch (err) {
    throw new SecretError(`cannot read folder ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const values = new Map<string, Buffer>();
  for (const k of ALL_KEYS) {
    if (!names.includes(k)) continue;
    try {
      values.set(k, readFileSync(join(path, k)));
    } catch (err) {
      throw new SecretError(`cannot read ${join(path, k)}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  }
  return { name, path, form: 'folder', values, keys: names.sort() };
}

const BASE64 = /^[A-Za-z0-9+/\s]*={0,2}\s*$/;

function readManifest(path: string, name: string): Secret {
  let source: string;
  try {
    source = readFileSync(path, 'utf8');
  } catch (err) {
    throw new SecretError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const trimmed = source.trim();
  if (trimmed.startsWith('-----BEGIN'))
    throw new SecretError(`${path} is a PEM file, not a secret: make ${path} ${SECRET_LAYOUT}`);
  let doc: unknown;
  try {
    // No parser message: it could quote the file, and the file holds a private key.
    doc = trimmed.startsWith('{') ? JSON.parse(trimmed) : parseYaml(trimmed, { prettyErrors: false });
  } catch {
    throw new SecretError(`${path} is not a Kubernetes Secret: it does not parse as YAML or JSON`);
  }
  if (!isObj(doc))
    throw new SecretError(`${path} is not a Kubernetes Secret: expected a mapping with data or stringData`);
  if (doc.kind !== undefined && doc.kind !== 'Secret')
    throw new SecretError(`${path} is not a Kubernetes Secret: its kind is ${JSON.stringify(doc.kind)}`);
  const data = isObj(doc.data) ? doc.data : {};
  const stringData = isObj(doc.stringData) ? doc.stringData : {};
  if (!isObj(doc.data) && !isObj(doc.stringData))
    throw new SecretError(`${path} is not a Kubernetes Secret: it has neither data nor stringData`);
  const values = new Map<string, Buffer>();
  for (const k of ALL_KEYS) {
    const plain = stringData[k];
    if (typeof plain === 'string') {
      values.set(k, Buffer.from(plain, 'utf8'));
      continue;
    }
    const b64 = data[k];
    if (b64 === undefined) continue;
    if (typeof b64 !== 'string' || !BASE64.test(b64))
      throw new SecretError(
        `${path}: data[${JSON.stringify(k)}] is not base64 (a Secret's data is base64; plain PEM goes under stringData)`,
      );
    values.set(k, Buffer.from(b64, 'base64'));
  }
  const keys = [...new Set([...Object.keys(data), ...Object.keys(stringData)])].sort();
  return { name, path, form: 'Secret file', values, keys };
}

/** DIR/<namespace>/<name>, then DIR/<name>: the first that exists, and the paths tried. */
function findSecret(ctx: SecretContext & { secretsDir: string }, name: string): { secret?: Secret; tried: string[] } {
  const tried: string[] = [];
  for (const path of [join(ctx.secretsDir, ctx.namespace, name), join(ctx.secretsDir, name)]) {
    tried.push(path);
    ctx.watch.add(path);
    let folder: boolean;
    try {
      folder = statSync(path).isDirectory();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') continue;
      throw new SecretError(`cannot read ${path}: ${code ?? 'error'}`);
    }
    return { secret: folder ? readFolder(path, name) : readManifest(path, name), tried };
  }
  return { tried };
}

function part(s: Secret, p: Part): Buffer | undefined {
  for (const k of KEYS[p]) {
    const v = s.values.get(k);
    if (v && v.length > 0) return v;
  }
  return undefined;
}

const expect = (p: Part) => `${KEYS[p][0]} (or ${KEYS[p][1]})`;
const where = (s: Secret) => `${s.path}, a ${s.form}`;
const keysOf = (s: Secret) => (s.keys.length > 0 ? `its keys: ${s.keys.join(', ')}` : 'it has no keys');

/** Why OpenSSL refuses these PEM blocks, or undefined. Its messages never quote the material. */
function contextProblem(options: tls.SecureContextOptions): string | undefined {
  try {
    tls.createSecureContext(options);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * The secret `name`, or undefined after reporting at `at` why not: no --secrets-dir, an invalid
 * name, not found (with the paths tried), unreadable or not a Secret.
 */
function lookup(out: Issues, at: Path, name: string, ctx: SecretContext): Secret | undefined {
  const r = tryLookup(out, at, name, ctx);
  if (r && !r.secret)
    out.error(at, `secret "${name}" not found: tried ${r.tried.join(', ')}; each may be ${SECRET_LAYOUT}`);
  return r?.secret;
}

/** As lookup, but a secret that is not found is not an error (undefined secret, with the paths tried). */
function tryLookup(
  out: Issues,
  at: Path,
  name: string,
  ctx: SecretContext,
): { secret?: Secret; tried: string[] } | undefined {
  if (!SECRET_NAME.test(name) || name.includes('..')) {
    out.error(at, `"${name}" is not a valid Secret name (letters, digits, "-" and ".")`);
    return undefined;
  }
  if (ctx.secretsDir === undefined || ctx.secretsDir === '') {
    out.error(
      at,
      `secret "${name}" cannot be read: no --secrets-dir was given. Start with --secrets-dir DIR (or WASMGATE_SECRETS_DIR) where DIR/${ctx.namespace}/${name} or DIR/${name} is ${SECRET_LAYOUT}`,
    );
    return undefined;
  }
  try {
    return findSecret({ ...ctx, secretsDir: ctx.secretsDir }, name);
  } catch (err) {
    if (!(err instanceof SecretError)) throw err;
    out.error(at, `secret "${name}": ${err.message}`);
    return undefined;
  }
}

/** The certificate and key of a secret, or undefined after reporting what is missing or wrong. */
function certAndKey(out: Issues, at: Path, s: Secret): { cert: Buffer; key: Buffer } | undefined {
  const cert = part(s, 'cert');
  const key = part(s, 'key');
  if (!cert || !key) {
    const missing = [cert ? '' : expect('cert'), key ? '' : expect('key')].filter((m) => m !== '');
    out.error(at, `secret "${s.name}" (${where(s)}) has no ${missing.join(' and no ')}; ${keysOf(s)}`);
    return undefined;
  }
  const problem = contextProblem({ cert, key });
  if (problem) {
    out.error(at, `secret "${s.name}" (${where(s)}): the certificate and key are not a usable pair: ${problem}`);
    return undefined;
  }
  return { cert, key };
}

/** The CA (and CRL) of a secret, checked; undefined after reporting a CA OpenSSL refuses. */
function caOf(out: Issues, at: Path, s: Secret): { ca?: Buffer; crl?: Buffer } | undefined {
  const ca = part(s, 'ca');
  const crl = part(s, 'crl');
  if (!ca) return { crl };
  const problem = contextProblem({ ca, crl });
  if (problem) {
    out.error(at, `secret "${s.name}" (${where(s)}): ${expect('ca')} is not usable: ${problem}`);
    return undefined;
  }
  return { ca, crl };
}

/**
 * The CA of a secret, else of the secret <name>-cacert (Istio's convention). `found: false` when
 * neither has one (`tried`: where <name>-cacert was looked for); undefined after an error.
 */
function caWithFallback(
  out: Issues,
  at: Path,
  s: Secret,
  ctx: SecretContext,
): { found: true; ca: Buffer; crl?: Buffer } | { found: false; tried: string[] } | undefined {
  const own = caOf(out, at, s);
  if (!own) return undefined;
  if (own.ca) return { found: true, ca: own.ca, crl: own.crl };
  const name = `${s.name}-cacert`;
  const r = tryLookup(out, at, name, ctx);
  if (!r) return undefined;
  if (!r.secret) return { found: false, tried: r.tried };
  const other = caOf(out, at, r.secret);
  if (!other) return undefined;
  if (!other.ca) {
    out.error(at, `secret "${name}" (${where(r.secret)}) has no ${expect('ca')}; ${keysOf(r.secret)}`);
    return undefined;
  }
  return { found: true, ca: other.ca, crl: other.crl ?? own.crl };
}

/** Gateway servers: HTTPS and TLS servers that terminate (SIMPLE, MUTUAL, OPTIONAL_MUTUAL). */
export function gatewayCredentials(spec: Obj, ctx: SecretContext): Issue[] {
  const out = new Issues();
  list(spec.servers).forEach((server, i) => {
    if (!isObj(server) || !isObj(server.tls) || !isObj(server.port)) return;
    const protocol = text(server.port.protocol).toUpperCase();
    const t = server.tls;
    const mode = text(t.mode) || 'PASSTHROUGH';
    if ((protocol !== 'HTTPS' && protocol !== 'TLS') || !['SIMPLE', 'MUTUAL', 'OPTIONAL_MUTUAL'].includes(mode)) return;
    const at: Path = ['spec', 'servers', i, 'tls'];
    const names =
      text(t.credentialName) !== ''
        ? [{ name: text(t.credentialName), path: [...at, 'credentialName'] }]
        : list(t.credentialNames).map((n, j) => ({ name: text(n), path: [...at, 'credentialNames', j] }));
    if (names.length === 0) return;
    const before = out.all.length;
    const secrets: Secret[] = [];
    const pairs: { cert: Buffer; key: Buffer }[] = [];
    for (const { name, path } of names) {
      const s = lookup(out, path, name, ctx);
      const pair = s && certAndKey(out, path, s);
      if (!s || !pair) continue;
      secrets.push(s);
      pairs.push(pair);
    }
    if (out.all.length > before) return;
    if (pairs.length === 2) {
      const types = pairs.map((p) => createPrivateKey(p.key).asymmetricKeyType);
      if (types[0] === types[1])
        out.warn(
          [...at, 'credentialNames'],
          `both certificates have ${String(types[0]).toUpperCase()} keys: the TLS server keeps one per key type, so only one is served (credentialNames is for an RSA and an ECDSA certificate)`,
          'key',
        );
    }
    const credential: ServerCredential = { cert: pairs.map((p) => p.cert), key: pairs.map((p) => p.key) };
    if (mode !== 'SIMPLE') {
      const ca = serverCa(out, at, t, secrets, names[0]!.path, mode, ctx);
      if (!ca) return;
      credential.ca = ca.ca;
      if (ca.crl) credential.crl = ca.crl;
    }
    servers.set(t, credential);
  });
  return out.all;
}

/** MUTUAL's client CA: caCertCredentialName, else a credential's own CA, else <first name>-cacert. */
function serverCa(
  out: Issues,
  at: Path,
  t: Obj,
  secrets: readonly Secret[],
  firstPath: Path,
  mode: string,
  ctx: SecretContext,
): { ca: Buffer; crl?: Buffer } | undefined {
  const caName = text(t.caCertCredentialName);
  if (caName !== '') {
    const path = [...at, 'caCertCredentialName'];
    const s = lookup(out, path, caName, ctx);
    const own = s && caOf(out, path, s);
    if (!s || !own) return undefined;
    if (!own.ca) {
      out.error(path, `secret "${caName}" (${where(s)}) has no ${expect('ca')}; ${keysOf(s)}`);
      return undefined;
    }
    return { ca: own.ca, crl: own.crl };
  }
  for (const s of secrets) {
    const own = caOf(out, firstPath, s);
    if (!own) return undefined;
    if (own.ca) return { ca: own.ca, crl: own.crl };
  }
  const first = secrets[0]!;
  const r = caWithFallback(out, firstPath, first, ctx);
  if (!r) return undefined;
  if (r.found) return r;
  out.error(
    firstPath,
    `${mode} TLS needs the CA that client certificates must chain to: secret "${first.name}" (${where(first)}) has no ${expect('ca')}, and there is no secret "${first.name}-cacert" (tried ${r.tried.join(', ')}); or name one with caCertCredentialName`,
  );
  return undefined;
}

const enumName = (v: unknown, names: readonly string[]): string | undefined =>
  typeof v === 'number' ? names[v] : typeof v === 'string' ? v : undefined;

/** DestinationRules: every tls with credentialName (traffic policy, port-level, subsets). */
export function destinationRuleCredentials(spec: Obj, ctx: SecretContext): Issue[] {
  const out = new Issues();
  const policy = (tp: unknown, at: Path) => {
    if (!isObj(tp)) return;
    clientTls(out, [...at, 'tls'], tp.tls, ctx);
    list(tp.portLevelSettings).forEach((p, i) => {
      if (isObj(p)) clientTls(out, [...at, 'portLevelSettings', i, 'tls'], p.tls, ctx);
    });
  };
  policy(spec.trafficPolicy, ['spec', 'trafficPolicy']);
  list(spec.subsets).forEach((s, j) => {
    if (isObj(s)) policy(s.trafficPolicy, ['spec', 'subsets', j, 'trafficPolicy']);
  });
  return out.all;
}

function clientTls(out: Issues, at: Path, t: unknown, ctx: SecretContext): void {
  if (!isObj(t)) return;
  const mode = enumName(t.mode, CLIENT_TLS_MODES);
  const name = text(t.credentialName);
  if ((mode !== 'SIMPLE' && mode !== 'MUTUAL') || name === '') return;
  const path = [...at, 'credentialName'];
  const s = lookup(out, path, name, ctx);
  if (!s) return;
  const credential: ClientCredential = {};
  if (mode === 'MUTUAL') {
    const pair = certAndKey(out, path, s);
    if (!pair) return;
    credential.cert = pair.cert;
    credential.key = pair.key;
  }
  const ca = caWithFallback(out, path, s, ctx);
  if (!ca) return;
  if (ca.found) {
    credential.ca = ca.ca;
    if (ca.crl) credential.crl = ca.crl;
  } else if (mode === 'SIMPLE')
    out.warn(
      path,
      `secret "${name}" (${where(s)}) has no ${expect('ca')} and there is no secret "${name}-cacert": the upstream is verified against the system CAs`,
    );
  clients.set(t, credential);
}
