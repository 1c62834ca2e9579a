// gzip and tar, bounded: the plugin.wasm inside an image layer, and Istio's "unboxing" of http
// downloads (gunzip, then the first file of a tar, until the bytes are Wasm).
import { gunzipSync } from 'node:zlib';
import { PermanentError } from './net.ts';

const WASM_MAGIC = [0x00, 0x61, 0x73, 0x6d];

export function isWasm(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && WASM_MAGIC.every((b, i) => bytes[i] === b);
}

export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** POSIX ustar (and GNU) archives carry "ustar" at offset 257 of the first header. */
export function isTar(bytes: Uint8Array): boolean {
  return bytes.length >= 512 && Buffer.from(bytes.subarray(257, 262)).toString('latin1') === 'ustar';
}

export function gunzip(bytes: Uint8Array, maxBytes: number): Buffer {
  try {
    return gunzipSync(bytes, { maxOutputLength: maxBytes });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ERR_BUFFER_TOO_LARGE') throw new PermanentError(`gzip content exceeds ${maxBytes} bytes`);
    throw new PermanentError(`invalid gzip data: ${e.message}`);
  }
}

export interface TarEntry {
  name: string;
  /** '0' regular file, '5' directory, '1'/'2' hard/symbolic link, ... */
  type: string;
  data: Buffer;
}

function field(block: Buffer, offset: number, length: number): string {
  const raw = block.subarray(offset, offset + length);
  const nul = raw.indexOf(0);
  return raw.subarray(0, nul < 0 ? raw.length : nul).toString('utf8');
}

function octal(block: Buffer, offset: number, length: number): number {
  if (block[offset]! & 0x80) {
    // GNU base-256 for sizes over 8 GiB: far beyond any cap, refuse.
    throw new PermanentError('tar entry too large');
  }
  const text = field(block, offset, length).trim();
  const n = text === '' ? 0 : Number.parseInt(text, 8);
  if (!Number.isFinite(n) || n < 0) throw new PermanentError('corrupt tar header');
  return n;
}

/** The entries of a tar archive, with PAX `path` and GNU long names applied. */
export function* tarEntries(archive: Buffer): Generator<TarEntry> {
  let offset = 0;
  let longName: string | undefined;
  while (offset + 512 <= archive.length) {
    const block = archive.subarray(offset, offset + 512);
    if (block.every((b) => b === 0)) return;
    const size = octal(block, 124, 12);
    const type = String.fromCharCode(block[156]!) === '\0' ? '0' : String.fromCharCode(block[156]!);
    const start = offset + 512;
    if (start + size > archive.length) throw new PermanentError('truncated tar archive');
    const data = archive.subarray(start, start + size);
    offset = start + Math.ceil(size / 512) * 512;
    if (type === 'x') {
      const path = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(data.toString('utf8'))?.[1];
      if (path !== undefined) longName = path;
      continue;
    }
    if (type === 'L') {
      longName = field(data, 0, data.length);
      continue;
    }
    if (type === 'g') continue;
    let name = field(block, 0, 100);
    const magic = field(block, 257, 6);
    if (magic.startsWith('ustar')) {
      const prefix = field(block, 345, 155);
      if (prefix) name = `${prefix}/${name}`;
    }
    if (longName !== undefined) {
      name = longName;
      longName = undefined;
    }
    yield { name, type, data };
  }
}

/**
 * The first regular file named plugin.wasm (any folder) in a tar.gz layer, as Istio extracts
 * the "compat" image variant. Links are never followed.
 */
export function pluginFromLayer(layer: Uint8Array, maxBytes: number): Buffer {
  if (!isGzip(layer)) throw new PermanentError('layer is not gzip-compressed');
  const tar = gunzip(layer, maxBytes);
  for (const entry of tarEntries(tar)) {
    const base = entry.name.split('/').pop();
    if (base !== 'plugin.wasm') continue;
    if (entry.type !== '0' && entry.type !== '7')
      throw new PermanentError(`plugin.wasm in the layer is not a regular file (tar type ${entry.type})`);
    return Buffer.from(entry.data);
  }
  throw new PermanentError('plugin.wasm not found in the layer');
}

/** Istio's unboxing of an http download: gunzip, take a tar's first file, until it is Wasm. */
export function unbox(bytes: Buffer, maxBytes: number): Buffer {
  for (let depth = 0; depth < 8; depth++) {
    if (isWasm(bytes)) return bytes;
    if (isGzip(bytes)) {
      bytes = gunzip(bytes, maxBytes);
      continue;
    }
    if (isTar(bytes)) {
      const first = tarEntries(bytes).next();
      if (first.done) throw new PermanentError('empty tar archive');
      bytes = Buffer.from(first.value.data);
      continue;
    }
    break;
  }
  throw new PermanentError('the downloaded content is not a WebAssembly module (nor gzip or tar of one)');
}
