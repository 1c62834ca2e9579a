// One stream's request to an upstream cluster through undici's dispatcher: request body streamed
// from the pipeline, response streamed back into it, with backpressure both ways.
import { PassThrough } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { FilterManager, UpstreamRequest } from '../pipeline/filter-manager.ts';
import { HeaderMap } from '../pipeline/headers.ts';
import type { Cluster } from './cluster.ts';
import { hopByHopNames } from './hop-by-hop.ts';

/** Lets the router slow down the downstream request when the upstream cannot keep up. */
export interface DownstreamFlow {
  pause(): void;
  resume(): void;
  /** Called when the response wants to be written faster than the client reads. */
  onDrain(fn: () => void): void;
  writeBlocked(): boolean;
}

export class RouterUpstreamRequest implements UpstreamRequest {
  readonly #manager: FilterManager;
  readonly #cluster: Cluster;
  readonly #flow: DownstreamFlow;
  #body: PassThrough | undefined;
  #controller: Dispatcher.DispatchController | undefined;
  #done = false;
  #started = 0n;

  constructor(manager: FilterManager, cluster: Cluster, flow: DownstreamFlow) {
    this.#manager = manager;
    this.#cluster = cluster;
    this.#flow = flow;
  }

  sendHeaders(headers: HeaderMap, endStream: boolean): void {
    const picked = this.#cluster.pick();
    const info = this.#manager.stream.info;
    info.upstreamCluster = this.#cluster.name;
    if (!picked) {
      this.#done = true;
      this.#manager.upstreamFailed(503, 'no_healthy_upstream', 'UH');
      return;
    }
    info.upstreamHost = `${picked.endpoint.host}:${picked.endpoint.port}`;
    const out: string[] = [];
    const drop = hopByHopNames(headers.getAll('connection'));
    let authority = '';
    for (const [k, v] of headers.pairs) {
      if (k[0] === ':') {
        if (k === ':authority') authority = v;
        continue;
      }
      if (drop.has(k) || k === 'host') continue;
      out.push(k, v);
    }
    if (authority) out.push('host', authority);
    const method = headers.get(':method') ?? 'GET';
    if (!endStream) {
      this.#body = new PassThrough();
      this.#body.on('drain', () => this.#flow.resume());
    }
    this.#cluster.active++;
    this.#cluster.total++;
    this.#started = process.hrtime.bigint();
    picked.pool.dispatch(
      {
        path: headers.get(':path') ?? '/',
        method,
        headers: out,
        body: this.#body ?? null,
      },
      this.#handler(),
    );
  }

  #handler(): Dispatcher.DispatchHandler {
    return {
      onRequestStart: (controller) => {
        this.#controller = controller;
        if (this.#done) controller.abort(new Error('aborted'));
      },
      onResponseStart: (controller, statusCode, headers) => {
        if (statusCode < 200) return; // 1xx informational: not forwarded
        const info = this.#manager.stream.info;
        info.upstreamServiceTimeMs = Number((process.hrtime.bigint() - this.#started) / 1_000_000n);
        const map = new HeaderMap();
        const connection = headers.connection;
        const drop = hopByHopNames(connection === undefined ? [] : ([] as string[]).concat(connection));
        for (const [k, v] of Object.entries(headers)) {
          if (v === undefined || drop.has(k)) continue;
          if (Array.isArray(v)) for (const one of v) map.add(k, one);
          else map.add(k, v);
        }
        this.#manager.encodeHeaders(statusCode, map, false);
        if (this.#flow.writeBlocked()) {
          controller.pause();
          this.#flow.onDrain(() => controller.resume());
        }
      },
      onResponseData: (controller, chunk) => {
        this.#manager.encodeData(chunk, false);
        if (!controller.paused && this.#flow.writeBlocked()) {
          controller.pause();
          this.#flow.onDrain(() => controller.resume());
        }
      },
      onResponseEnd: (_controller, trailers) => {
        this.#finish();
        const entries = Object.entries(trailers ?? {});
        if (entries.length > 0) {
          const t = new HeaderMap();
          for (const [k, v] of entries)
            if (v !== undefined) for (const one of ([] as string[]).concat(v)) t.add(k, one);
          this.#manager.encodeTrailers(t);
        } else {
          this.#manager.encodeData(new Uint8Array(0), true);
        }
      },
      onResponseError: (_controller, err) => {
        const wasDone = this.#done;
        this.#finish();
        if (wasDone) return;
        const code = (err as { code?: string }).code ?? '';
        if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT')
          this.#manager.upstreamFailed(504, 'upstream_response_timeout', 'UT');
        else if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ECONNREFUSED')
          this.#manager.upstreamFailed(503, 'upstream_reset_before_response_started{connection_failure}', 'UF');
        else this.#manager.upstreamFailed(503, 'upstream_reset_before_response_started{remote_reset}', 'UR');
      },
    };
  }

  #finish(): void {
    if (!this.#done) this.#cluster.active--;
    this.#done = true;
  }

  sendData(chunk: Uint8Array, endStream: boolean): void {
    const body = this.#body;
    if (!body || body.writableEnded) return;
    if (chunk.length > 0 && !body.write(chunk)) this.#flow.pause();
    if (endStream) body.end();
  }

  sendTrailers(_trailers: HeaderMap): void {
    // HTTP/1.1 request trailers are not forwarded by undici; the body still ends here.
    this.#body?.end();
  }

  abort(): void {
    if (this.#done) return;
    this.#finish();
    this.#controller?.abort(new Error('request aborted by the proxy'));
    this.#body?.destroy();
  }
}
