// Helpers for the L4 tests: free ports, a node:net echo server that records what it saw, a raw
// client that sends, half-closes and collects, and the Istio config of a TCP Gateway.
import net, { type AddressInfo } from 'node:net';
import { type RunningProxy, startProxy, tempConfig } from '../helpers/proxy.ts';

/** A port free now (listen on 0, close, reuse). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface EchoServer {
  port: number;
  /** Per connection: bytes received, whether a FIN and whether a reset arrived. */
  conns: { received: Buffer[]; ended: boolean; reset: boolean; socket: net.Socket }[];
  /** What a connection does; default: echo every byte, FIN after the client's FIN. */
  behave: (socket: net.Socket) => boolean;
  close(): Promise<void>;
}

export async function echoServer(): Promise<EchoServer> {
  const state: EchoServer = { port: 0, conns: [], behave: () => false, close: async () => {} };
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const c = { received: [] as Buffer[], ended: false, reset: false, socket };
    state.conns.push(c);
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET') c.reset = true;
    });
    socket.on('data', (d: Buffer) => c.received.push(d));
    socket.on('end', () => {
      c.ended = true;
    });
    if (state.behave(socket)) return;
    socket.on('data', (d: Buffer) => socket.write(d));
    socket.on('end', () => socket.end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.port = (server.address() as AddressInfo).port;
  state.close = () =>
    new Promise((r) => {
      for (const c of state.conns) c.socket.destroy();
      server.close(() => r());
    });
  return state;
}

export interface ClientResult {
  data: Buffer;
  ended: boolean;
  error?: string;
}

/** Connects, writes `chunks` (with a pause between them), half-closes, and collects until close. */
export function exchange(port: number, chunks: (string | Buffer)[], gapMs = 0): Promise<ClientResult> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const got: Buffer[] = [];
    const out: ClientResult = { data: Buffer.alloc(0), ended: false };
    s.on('data', (d: Buffer) => got.push(d));
    s.on('end', () => {
      out.ended = true;
      s.end();
    });
    s.on('error', (err: NodeJS.ErrnoException) => {
      out.error = err.code ?? err.message;
    });
    s.on('close', () => {
      out.data = Buffer.concat(got);
      resolve(out);
    });
    s.once('connect', async () => {
      for (const c of chunks) {
        s.write(c);
        if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
      }
      s.end();
    });
  });
}

export function waitFor(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (cond()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 10);
    };
    tick();
  });
}

/** A Gateway with one TCP server on `port`, a VirtualService tcp route to `host`:`upstreamPort`. */
export function tcpGatewayYaml(opts: {
  port: number;
  upstreamPort: number;
  host?: string;
  extra?: string;
  idleTimeout?: string;
  connectTimeout?: string;
}): string {
  const host = opts.host ?? 'echo.tcp.local';
  const dr =
    opts.idleTimeout || opts.connectTimeout
      ? `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: tcp-policy
  namespace: istio-system
spec:
  host: ${host}
  trafficPolicy:
    connectionPool:
      tcp:
${opts.idleTimeout ? `        idleTimeout: ${opts.idleTimeout}\n` : ''}${opts.connectTimeout ? `        connectTimeout: ${opts.connectTimeout}\n` : ''}`
      : '';
  return `apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: tcp-gateway
  namespace: istio-system
spec:
  selector:
    istio: ingressgateway
  servers:
  - port: {number: ${opts.port}, name: tcp, protocol: TCP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: tcp-echo
  namespace: istio-system
spec:
  hosts: ["*"]
  gateways: [tcp-gateway]
  tcp:
  - match: [{port: ${opts.port}}]
    route:
    - destination: {host: ${host}, port: {number: ${opts.upstreamPort}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: tcp-echo
  namespace: istio-system
spec:
  hosts: [${host}]
  ports: [{number: ${opts.upstreamPort}, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
${dr}${opts.extra ?? ''}`;
}

/** Starts the proxy on the Gateways' own ports with `files` as its configuration. */
export function startTcpProxy(files: Record<string, string>, args: string[] = []): Promise<RunningProxy> {
  return startProxy(['-c', tempConfig(files), ...args], 30_000, { gatewayPorts: true });
}

/** One sample of a Prometheus metric whose labels include `match` (all of them). */
export function metricValue(text: string, name: string, match: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(match).every(([k, v]) => line.includes(`${k}="${v}"`)))
      return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

export async function adminText(proxy: RunningProxy, path: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${proxy.adminPort}${path}`);
  return res.text();
}

/** The first access log line for which `pred` holds, waiting for it. */
export async function accessLogWhere(
  proxy: RunningProxy,
  pred: (line: Record<string, unknown>) => boolean,
  ms = 5000,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const lines = proxy
      .stdout()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const found = lines.find(pred);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no matching access log line in:\n${proxy.stdout()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
