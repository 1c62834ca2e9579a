// The module cache on disk, laid out as Istio's (keyed by module name and checksum):
//
//   <dir>/modules/<sha256(moduleName)>/<checksum>.wasm   the module
//   <dir>/modules/<sha256(moduleName)>/<checksum>.json   {moduleName, wasmSha256, size, fetchedAt}
//   <dir>/urls/<sha256(url)>.json                         {url, checksum}: what a tag or URL last resolved to
//
// moduleName is the URL without tag or digest (oci) or the URL itself (http); checksum is the OCI
// manifest digest or the module's sha256 (http). Every file is written to a temp file in the same
// folder and renamed into place, so concurrent starts and crashes never leave a partial file;
// a module whose bytes do not hash to the recorded sha256 is ignored (and fetched again).
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { redactUrl } from './net.ts';

export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** $XDG_CACHE_HOME/wasmgate, else a per-user folder under the system temp folder. */
export function defaultCacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  if (xdg) return join(xdg, 'wasmgate');
  return join(tmpdir(), `wasmgate-cache-${process.getuid?.() ?? 'user'}`);
}

interface ModuleMeta {
  moduleName: string;
  wasmSha256: string;
  size: number;
  fetchedAt: string;
}

async function atomicWrite(path: string, data: Uint8Array | string): Promise<void> {
  const dir = path.slice(0, path.lastIndexOf('/'));
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.${path.slice(dir.length + 1)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeFile(tmp, data, { mode: 0o600, flush: true });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => {});
    throw err;
  }
}

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

export class ModuleCache {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  #moduleDir(moduleName: string): string {
    return join(this.dir, 'modules', sha256Hex(moduleName));
  }

  /** The cached module for (moduleName, checksum), verified against its recorded sha256. */
  async get(moduleName: string, checksum: string): Promise<Buffer | undefined> {
    if (!/^[a-f0-9]{64}$/.test(checksum)) return undefined;
    const base = join(this.#moduleDir(moduleName), checksum);
    const meta = await readJson<ModuleMeta>(`${base}.json`);
    if (!meta) return undefined;
    let bytes: Buffer;
    try {
      bytes = await readFile(`${base}.wasm`);
    } catch {
      return undefined;
    }
    if (sha256Hex(bytes) !== meta.wasmSha256) return undefined;
    return bytes;
  }

  async put(moduleName: string, checksum: string, bytes: Uint8Array): Promise<void> {
    const base = join(this.#moduleDir(moduleName), checksum);
    await atomicWrite(`${base}.wasm`, bytes);
    const meta: ModuleMeta = {
      moduleName: redactUrl(moduleName),
      wasmSha256: sha256Hex(bytes),
      size: bytes.length,
      fetchedAt: new Date().toISOString(),
    };
    await atomicWrite(`${base}.json`, `${JSON.stringify(meta)}\n`);
  }

  /** The checksum `url` resolved to when it was last fetched. */
  async resolved(url: string): Promise<string | undefined> {
    const ref = await readJson<{ checksum?: unknown }>(join(this.dir, 'urls', `${sha256Hex(url)}.json`));
    return typeof ref?.checksum === 'string' ? ref.checksum : undefined;
  }

  async remember(url: string, checksum: string): Promise<void> {
    const path = join(this.dir, 'urls', `${sha256Hex(url)}.json`);
    await atomicWrite(path, `${JSON.stringify({ url: redactUrl(url), checksum })}\n`);
  }
}
