// An ordered header map with lower-cased names, shared by the pipeline, the Wasm host and the router.
import type { Pairs } from '../wasm/abi/pairs.ts';

export class HeaderMap {
  pairs: Pairs;
  /** Cleared when a map may no longer be changed (e.g. request headers already sent upstream). */
  writable = true;

  constructor(pairs: Pairs = []) {
    this.pairs = pairs;
  }

  /** From Node's rawHeaders ([name, value, name, value, ...]). */
  static fromRaw(raw: readonly string[], pseudo: Pairs = []): HeaderMap {
    const pairs: Pairs = pseudo.slice();
    for (let i = 0; i < raw.length; i += 2) pairs.push([raw[i]!.toLowerCase(), raw[i + 1]!]);
    return new HeaderMap(pairs);
  }

  get(name: string): string | undefined {
    for (const [k, v] of this.pairs) if (k === name) return v;
    return undefined;
  }

  getAll(name: string): string[] {
    const out: string[] = [];
    for (const [k, v] of this.pairs) if (k === name) out.push(v);
    return out;
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  add(name: string, value: string): void {
    this.pairs.push([name, value]);
  }

  /** Sets the first occurrence and drops the others; appends when absent. */
  replace(name: string, value: string): void {
    const idx = this.pairs.findIndex(([k]) => k === name);
    if (idx < 0) {
      this.pairs.push([name, value]);
      return;
    }
    this.pairs[idx] = [name, value];
    this.pairs = this.pairs.filter(([k], i) => i <= idx || k !== name);
  }

  remove(name: string): void {
    if (this.pairs.some(([k]) => k === name)) this.pairs = this.pairs.filter(([k]) => k !== name);
  }

  setPairs(pairs: Pairs): void {
    this.pairs = pairs;
  }

  byteSize(): number {
    let n = 0;
    for (const [k, v] of this.pairs) n += k.length + v.length;
    return n;
  }

  get size(): number {
    return this.pairs.length;
  }

  /** Flat [name, value, ...] without pseudo-headers, for Node and undici. */
  toFlat(): string[] {
    const out: string[] = [];
    for (const [k, v] of this.pairs) if (k[0] !== ':') out.push(k, v);
    return out;
  }
}
