// The header-pairs codec: u32 N, N x (u32 key_len, u32 value_len), N x (key\0 value\0).

/** Header map entries in order: names lower-cased, values as received. */
export type Pairs = [string, string][];

// Limits as in proxy-wasm-cpp-host (include/proxy-wasm/limits.h).
export const MAX_PAIRS_SIZE = 1 << 20;
export const MAX_PAIRS_COUNT = 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Serializes pairs. An empty map is 4 zero bytes. */
export function encodePairs(pairs: readonly (readonly [string, string])[]): Uint8Array {
  const keys: Uint8Array[] = new Array(pairs.length);
  const values: Uint8Array[] = new Array(pairs.length);
  let size = 4 + pairs.length * 8;
  for (let i = 0; i < pairs.length; i++) {
    keys[i] = encoder.encode(pairs[i]![0]);
    values[i] = encoder.encode(pairs[i]![1]);
    size += keys[i]!.length + values[i]!.length + 2;
  }
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, pairs.length, true);
  let p = 4 + pairs.length * 8;
  for (let i = 0; i < pairs.length; i++) {
    view.setUint32(4 + i * 8, keys[i]!.length, true);
    view.setUint32(8 + i * 8, values[i]!.length, true);
    out.set(keys[i]!, p);
    p += keys[i]!.length + 1;
    out.set(values[i]!, p);
    p += values[i]!.length + 1;
  }
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
