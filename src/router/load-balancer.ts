// Load balancers over a cluster's endpoints, as Envoy's: LEAST_REQUEST (two random choices, the
// one with fewer active requests; Istio's default), ROUND_ROBIN, RANDOM, and consistent hashing on
// a ring (ring_hash) or a Maglev table. Each picks among the healthy endpoints it is given; hashing
// LBs keep their table over all endpoints and walk past unhealthy ones, which is what Envoy's
// rebuilt ring gives.

export interface LbEndpoint {
  host: string;
  port: number;
  weight: number;
  /** Requests in flight to this endpoint. */
  active: number;
}

export type LbPolicy =
  | { kind: 'LEAST_REQUEST' | 'ROUND_ROBIN' | 'RANDOM' }
  | { kind: 'RING_HASH'; minimumRingSize: number }
  | { kind: 'MAGLEV'; tableSize: number };

export interface LoadBalancer<E extends LbEndpoint> {
  /** `healthy` is never empty; `hash` is the request's hash key (hash LBs), if any. */
  pick(all: readonly E[], healthy: readonly E[], hash: number | undefined): E;
}

/** 32-bit FNV-1a with a murmur3 finalizer: stable across runs, well spread. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const randomIndex = (n: number) => Math.floor(Math.random() * n);

function weightedRandom<E extends LbEndpoint>(healthy: readonly E[]): E {
  let total = 0;
  for (const e of healthy) total += e.weight;
  let r = Math.random() * total;
  for (const e of healthy) {
    r -= e.weight;
    if (r < 0) return e;
  }
  return healthy[healthy.length - 1]!;
}

class RoundRobin<E extends LbEndpoint> implements LoadBalancer<E> {
  #next = 0;
  pick(_all: readonly E[], healthy: readonly E[]): E {
    return healthy[this.#next++ % healthy.length]!;
  }
}

class Random<E extends LbEndpoint> implements LoadBalancer<E> {
  pick(_all: readonly E[], healthy: readonly E[]): E {
    return weightedRandom(healthy);
  }
}

/** Envoy's least request with choice_count 2 (power of two choices) when weights are equal. */
class LeastRequest<E extends LbEndpoint> implements LoadBalancer<E> {
  pick(_all: readonly E[], healthy: readonly E[]): E {
    if (healthy.length === 1) return healthy[0]!;
    const a = healthy[randomIndex(healthy.length)]!;
    let b = healthy[randomIndex(healthy.length - 1)]!;
    if (b === a) b = healthy[healthy.length - 1]!;
    return b.active < a.active ? b : a;
  }
}

/** Ring hash: each endpoint gets about minimumRingSize / N points (by weight); first point clockwise. */
class RingHash<E extends LbEndpoint> implements LoadBalancer<E> {
  readonly #minSize: number;
  #ring: { point: number; endpoint: E }[] = [];
  #key = '';

  constructor(minSize: number) {
    this.#minSize = Math.max(1, Math.min(minSize, 8_388_608));
  }

  #build(all: readonly E[]): void {
    const key = all.map((e) => `${e.host}:${e.port}/${e.weight}`).join(',');
    if (key === this.#key) return;
    this.#key = key;
    const totalWeight = all.reduce((s, e) => s + e.weight, 0) || 1;
    const ring: { point: number; endpoint: E }[] = [];
    for (const e of all) {
      const n = Math.max(1, Math.ceil((this.#minSize * e.weight) / totalWeight));
      for (let i = 0; i < n; i++) ring.push({ point: hash32(`${e.host}:${e.port}_${i}`), endpoint: e });
    }
    ring.sort((x, y) => x.point - y.point);
    this.#ring = ring;
  }

  pick(all: readonly E[], healthy: readonly E[], hash: number | undefined): E {
    if (hash === undefined) return weightedRandom(healthy);
    this.#build(all);
    const ring = this.#ring;
    let lo = 0;
    let hi = ring.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ring[mid]!.point < hash) lo = mid + 1;
      else hi = mid;
    }
    const ok = new Set(healthy);
    for (let i = 0; i < ring.length; i++) {
      const e = ring[(lo + i) % ring.length]!.endpoint;
      if (ok.has(e)) return e;
    }
    return healthy[0]!;
  }
}

/** Maglev (Eisenbud et al.): a lookup table of prime size filled from per-endpoint permutations. */
class Maglev<E extends LbEndpoint> implements LoadBalancer<E> {
  readonly #size: number;
  #table: E[] = [];
  #key = '';

  constructor(size: number) {
    this.#size = size;
  }

  #build(healthy: readonly E[]): void {
    const key = healthy.map((e) => `${e.host}:${e.port}/${e.weight}`).join(',');
    if (key === this.#key) return;
    this.#key = key;
    const m = this.#size;
    const n = healthy.length;
    const offset = healthy.map((e) => hash32(`${e.host}:${e.port}`) % m);
    const skip = healthy.map((e) => (hash32(`${e.host}:${e.port}#skip`) % (m - 1)) + 1);
    const next = new Array<number>(n).fill(0);
    const maxWeight = Math.max(...healthy.map((e) => e.weight));
    const credit = new Array<number>(n).fill(0);
    const table = new Array<E | undefined>(m).fill(undefined);
    let filled = 0;
    for (let _round = 0; filled < m; _round++) {
      for (let i = 0; i < n && filled < m; i++) {
        credit[i]! += healthy[i]!.weight;
        if (credit[i]! < maxWeight) continue;
        credit[i]! -= maxWeight;
        let c = (offset[i]! + next[i]! * skip[i]!) % m;
        while (table[c] !== undefined) {
          next[i]!++;
          c = (offset[i]! + next[i]! * skip[i]!) % m;
        }
        table[c] = healthy[i]!;
        next[i]!++;
        filled++;
      }
    }
    this.#table = table as E[];
  }

  pick(_all: readonly E[], healthy: readonly E[], hash: number | undefined): E {
    if (hash === undefined) return weightedRandom(healthy);
    this.#build(healthy);
    return this.#table[hash % this.#size]!;
  }
}

export function createLoadBalancer<E extends LbEndpoint>(policy: LbPolicy): LoadBalancer<E> {
  switch (policy.kind) {
    case 'ROUND_ROBIN':
      return new RoundRobin<E>();
    case 'RANDOM':
      return new Random<E>();
    case 'RING_HASH':
      return new RingHash<E>(policy.minimumRingSize);
    case 'MAGLEV':
      return new Maglev<E>(policy.tableSize);
    default:
      return new LeastRequest<E>();
  }
}
