// HTTP callouts for plugins (proxy_http_call): a request to a named cluster, collected whole,
// with a timeout. Failures and timeouts are reported as Envoy's async client reports them.
import type { Pairs } from '../wasm/abi/pairs.ts';
import type { Cluster } from './cluster.ts';
import { isHopByHop } from './hop-by-hop.ts';

export type CalloutResult =
  | { kind: 'response'; headers: Pairs; body: Uint8Array; trailers: Pairs }
  | { kind: 'failure'; message: string };

export interface Callouts {
  /** Starts a call; false when the cluster is unknown. `done` is always called later, once. */
  httpCall(
    cluster: string,
    headers: Pairs,
    body: Uint8Array,
    trailers: Pairs,
    timeoutMs: number,
    done: (result: CalloutResult) => void,
  ): boolean;
}

const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

export class ClusterCallouts implements Callouts {
  readonly #resolve: (name: string) => Cluster | undefined;

  constructor(resolve: (name: string) => Cluster | undefined) {
    this.#resolve = resolve;
  }

  httpCall(
    clusterName: string,
    headers: Pairs,
    body: Uint8Array,
    _trailers: Pairs,
    timeoutMs: number,
    done: (result: CalloutResult) => void,
  ): boolean {
    const cluster = this.#resolve(clusterName);
    const picked = cluster?.pick();
    if (!picked) return false;
    let method = 'GET';
    let path = '/';
    let authority = '';
    const out: string[] = [];
    for (const [k, v] of headers) {
      if (k === ':method') method = v;
      else if (k === ':path') path = v;
      else if (k === ':authority') authority = v;
      else if (k[0] !== ':' && !isHopByHop(k) && k !== 'host' && k !== 'content-length') out.push(k, v);
    }
    out.push('host', authority);
    const signal = timeoutMs > 0 ? AbortSignal.timeout(timeoutMs) : undefined;
    picked.pool
      .request({ method, path, headers: out, body: body.length > 0 ? Buffer.from(body) : null, signal })
      .then(async (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const chunk of res.body) {
          size += (chunk as Buffer).length;
          if (size > MAX_RESPONSE_BYTES) {
            res.body.destroy();
            done({ kind: 'failure', message: 'response too large' });
            return;
          }
          chunks.push(chunk as Buffer);
        }
        const pairs: Pairs = [[':status', String(res.statusCode)]];
        for (const [k, v] of Object.entries(res.headers)) {
          if (v === undefined) continue;
          for (const one of ([] as string[]).concat(v)) pairs.push([k, one]);
        }
        const trailers: Pairs = [];
        for (const [k, v] of Object.entries(res.trailers ?? {}))
          if (v !== undefined) for (const one of ([] as string[]).concat(v)) trailers.push([k, one]);
        done({ kind: 'response', headers: pairs, body: Buffer.concat(chunks), trailers });
      })
      .catch((err: Error) => {
        if (signal?.aborted) {
          // Envoy's async client answers a timeout with a synthesized 504.
          const text = new TextEncoder().encode('upstream request timeout');
          done({
            kind: 'response',
            headers: [
              [':status', '504'],
              ['content-length', String(text.length)],
              ['content-type', 'text/plain'],
            ],
            body: text,
            trailers: [],
          });
        } else done({ kind: 'failure', message: err.message });
      });
    return true;
  }
}
