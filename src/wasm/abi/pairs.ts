// The header-pairs codec: u32 N, N x (u32 key_len, u32 value_len), N x (key\0 value\0).

/** Header map entries in order: names lower-cased, values as received. */
export type Pairs = [string, string][];

// Limits as in proxy-wasm-cpp-host (include/proxy-wasm/limits.h).
export const MAX_PAIRS_SIZE = 1 << 20;
export const MAX_PAIRS_COUNT = 1024;

const decoder = new TextDecoder();

/**
 * The UTF-8 byte length of every key and value, in order (key 0, value 0, key 1, ...), and the
 * serialized size. writePairs() takes both.
 */
export function pairsLayout(pairs: readonly (readonly [string, string])[]): { lens: number[]; size: number } {
  const lens: number[] = new Array(pairs.length * 2);
  let size = 4 + pairs.length * 8;
  for (let i = 0; i < pairs.length; i++) {
    const [k, v] = pairs[i]!;
    const kl = Buffer.byteLength(k, 'utf8');
    const vl = Buffer.byteLength(v, 'utf8');
    lens[2 * i] = kl;
    lens[2 * i + 1] = vl;
    size += kl + vl + 2;
  }
  return { lens, size };
}

/**
 * Serializes pairs into `out` (exactly the layout's size, e.g. a view of guest memory): the
 * strings are encoded in place, with no byte array per key or value.
 */
export function writePairs(out: Buffer, pairs: readonly (readonly [string, string])[], lens: readonly number[]): void {
  out.writeUInt32LE(pairs.length, 0);
  let p = 4 + pairs.length * 8;
  for (let i = 0; i < pairs.length; i++) {
    const [k, v] = pairs[i]!;
    const kl = lens[2 * i]!;
    const vl = lens[2 * i + 1]!;
    out.writeUInt32LE(kl, 4 + i * 8);
    out.writeUInt32LE(vl, 8 + i * 8);
    out.write(k, p, kl, 'utf8');
    p += kl;
    out[p++] = 0;
    out.write(v, p, vl, 'utf8');
    p += vl;
    out[p++] = 0;
  }
}

/** Serializes pairs. An empty map is 4 zero bytes. */
export function encodePairs(pairs: readonly (readonly [string, string])[]): Uint8Array {
  const { lens, size } = pairsLayout(pairs);
  const out = Buffer.allocUnsafe(size);
  writePairs(out, pairs, lens);
  return out;
}

/**
 * Parses serialized pairs. Returns undefined when the bytes are malformed or over the limits
 * (cpp-host then yields an empty map; callers decide). Zero bytes or a single 0 byte is an empty map.
 */
export function decodePairs(bytes: Uint8Array): Pairs | undefined {
  if (bytes.length <= 1) return bytes.length === 1 && bytes[0] !== 0 ? undefined : [];
  if (bytes.length < 4 || bytes.length > MAX_PAIRS_SIZE) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = view.getUint32(0, true);
  if (n > MAX_PAIRS_COUNT || 4 + n * 8 > bytes.length) return undefined;
  const out: Pairs = [];
  let p = 4 + n * 8;
  for (let i = 0; i < n; i++) {
    const kl = view.getUint32(4 + i * 8, true);
    const vl = view.getUint32(8 + i * 8, true);
    if (p + kl + vl + 2 > bytes.length) return undefined;
    if (bytes[p + kl] !== 0 || bytes[p + kl + 1 + vl] !== 0) return undefined;
    const key = decoder.decode(bytes.subarray(p, p + kl));
    p += kl + 1;
    const value = decoder.decode(bytes.subarray(p, p + vl));
    p += vl + 1;
    out.push([key, value]);
  }
  return p === bytes.length ? out : undefined;
}
