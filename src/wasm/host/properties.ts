// Property values as Envoy encodes them: strings raw, integers 8-byte little-endian, maps as pairs.
import { encodePairs } from '../abi/pairs.ts';

const encoder = new TextEncoder();

export function str(value: string): Uint8Array {
  return encoder.encode(value);
}

export function int(value: number | bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigInt64(0, BigInt(value), true);
  return out;
}

export function map(pairs: [string, string][]): Uint8Array {
  return encodePairs(pairs);
}
