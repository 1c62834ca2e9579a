// Upstream clusters: named sets of endpoints, each with an undici Pool; round-robin selection.
import { Pool } from 'undici';

export interface Endpoint {
  host: string;
  port: number;
  tls: boolean;
}

export interface ClusterOptions {
  connections?: number;
  connectTimeoutMs?: number;
  headersTimeoutMs?: number;
  bodyTimeoutMs?: number;
}

export class Cluster {
  readonly name: string;
  readonly endpoints: readonly Endpoint[];
  readonly #pools: Pool[];
  #next = 0;
  active = 0;
  total = 0;

  constructor(name: string, endpoints: Endpoint[], options: ClusterOptions = {}) {
    this.name = name;
    this.endpoints = endpoints;
    this.#pools = endpoints.map(
      (e) =>
        new Pool(`${e.tls ? 'https' : 'http'}://${e.host.includes(':') ? `[${e.host}]` : e.host}:${e.port}`, {
          connections: options.connections ?? 128,
          connectTimeout: options.connectTimeoutMs ?? 10_000,
          headersTimeout: options.headersTimeoutMs ?? 300_000,
          bodyTimeout: options.bodyTimeoutMs ?? 300_000,
          keepAliveTimeout: 4_000,
          pipelining: 1,
        }),
    );
  }

  /** The next endpoint and its pool, or undefined when the cluster has no endpoints. */
  pick(): { endpoint: Endpoint; pool: Pool } | undefined {
    if (this.#pools.length === 0) return undefined;
    const i = this.#next++ % this.#pools.length;
    return { endpoint: this.endpoints[i]!, pool: this.#pools[i]! };
  }

  async close(): Promise<void> {
    await Promise.all(this.#pools.map((p) => p.close().catch(() => p.destroy())));
  }
}
