// Small upstreams for the routing tests: node:http servers that answer with their own id and
// record what they received, with an optional per-request behaviour (delay, status).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';

export interface Answer {
  status: number;
  headers: Headers;
  text: string;
}

/** A request through undici (fetch drops a Host header; this keeps it), answer read whole. */
export async function send(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  const res = await request(url, {
    method: (init.method ?? 'GET') as 'GET',
    headers: init.headers,
    body: init.body,
  });
  const headers = new Headers();
  for (const [k, v] of Object.entries(res.headers))
    if (v !== undefined) for (const one of ([] as string[]).concat(v)) headers.append(k, one);
  return { status: res.statusCode, headers, text: await res.body.text() };
}

export interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface IdServer {
  id: string;
  port: number;
  seen: Seen[];
  /** Decides each answer; default 200 with the id as body. */
  behave: (n: number, req: http.IncomingMessage) => { status?: number; delayMs?: number } | undefined;
  close(): Promise<void>;
}

export async function idServer(id: string, opts: { key?: string; cert?: string } = {}): Promise<IdServer> {
  const state: IdServer = {
    id,
    port: 0,
    seen: [],
    behave: () => undefined,
    close: async () => {},
  };
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      state.seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      });
      const b = state.behave(state.seen.length, req) ?? {};
      const answer = () => {
        if (res.destroyed) return;
        res.writeHead(b.status ?? 200, { 'content-type': 'text/plain', 'x-server': id });
        res.end(id);
      };
      if (b.delayMs) setTimeout(answer, b.delayMs);
      else answer();
    });
  };
  let server: http.Server;
  if (opts.key) {
    const https = await import('node:https');
    server = https.createServer(opts, handler) as unknown as http.Server;
  } else server = http.createServer(handler);
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.port = (server.address() as AddressInfo).port;
  state.close = () =>
    new Promise((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return state;
}

export const GATEWAY = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
`;

/** A STATIC ServiceEntry `host` on port 80 over the servers, labelled by id. */
export function serviceEntry(host: string, servers: IdServer[], name = host.split('.')[0]!): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${name}, namespace: istio-system}
spec:
  hosts: [${host}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints:
${servers.map((s) => `  - {address: 127.0.0.1, ports: {http: ${s.port}}, labels: {id: ${s.id}}}`).join('\n')}
`;
}

/** `count` GETs with `parallel` in flight; the x-server (or body) of each answer. */
export async function hammer(
  url: string,
  count: number,
  parallel = 8,
  init: { headers?: Record<string, string> } = {},
): Promise<string[]> {
  const out: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      const res = await send(url, init);
      out.push(res.headers.get('x-server') ?? `${res.status}:${res.text}`);
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return out;
}

export function tally(list: string[]): Record<string, number> {
  const t: Record<string, number> = {};
  for (const x of list) t[x] = (t[x] ?? 0) + 1;
  return t;
}
