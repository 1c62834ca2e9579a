// Helpers for the L4 tests: free ports, a node:net echo server that records what it saw, a raw
// client that sends, half-closes and collects, their TLS counterparts, and the Istio config of a
// TCP Gateway, a DestinationRule and a NETWORK WasmPlugin.
import { readFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import type { TestPki } from '../helpers/certs.ts';
import { type RunningProxy, startProxy, tempConfig, wasmPluginYaml } from '../helpers/proxy.ts';

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
      ? destinationRule(
          'tcp-policy',
          host,
          `    connectionPool:\n      tcp:\n${opts.idleTimeout ? `        idleTimeout: ${opts.idleTimeout}\n` : ''}${opts.connectTimeout ? `        connectTimeout: ${opts.connectTimeout}\n` : ''}`,
        )
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

/** tcpGatewayYaml with its resource names made unique by `name`. */
export function tcpRoute(name: string, port: number, upstreamPort: number, host: string, extra = ''): string {
  return tcpGatewayYaml({ port, upstreamPort, host, extra })
    .replaceAll('tcp-gateway', `${name}-gateway`)
    .replaceAll('tcp-echo', `${name}-route`);
}

/** A DestinationRule for `host` (a YAML document starting with `---`); `trafficPolicy` is indented by 4. */
export function destinationRule(name: string, host: string, trafficPolicy: string): string {
  return `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: ${name}
  namespace: istio-system
spec:
  host: ${host}
  trafficPolicy:
${trafficPolicy}`;
}

/**
 * A NETWORK WasmPlugin (a YAML document starting with `---`) from the file `path` on the listener
 * of `port`, with `config` (flow-style YAML) as its pluginConfig if given.
 */
export function networkPlugin(name: string, path: string, port: number, config?: string): string {
  return `---\n${wasmPluginYaml({
    name,
    url: `file://${path}`,
    extra: `  type: NETWORK\n  match:\n  - ports: [{number: ${port}}]\n${config === undefined ? '' : `  pluginConfig: ${config}\n`}`,
  })}`;
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

export interface TlsUpstream {
  port: number;
  /** Per connection: the plaintext received, the SNI, the client certificate's CN. */
  conns: { text: string; servername: string | false | null; clientCn: string | undefined }[];
  close(): Promise<void>;
}

/** A TLS-only echo server (the PKI's server certificate); with `mutual`, client certificates are required. */
export async function tlsUpstream(pki: TestPki, mutual = false): Promise<TlsUpstream> {
  const state: TlsUpstream = { port: 0, conns: [], close: async () => {} };
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer(
    {
      key: readFileSync(pki.serverKey),
      cert: readFileSync(pki.serverCert),
      ...(mutual ? { ca: pki.ca, requestCert: true, rejectUnauthorized: true } : {}),
    },
    (s) => {
      sockets.add(s);
      const peer = s.getPeerCertificate();
      const c = { text: '', servername: s.servername, clientCn: peer?.subject?.CN as string | undefined };
      state.conns.push(c);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
      s.on('data', (d: Buffer) => {
        c.text += d;
        s.write(d);
      });
      s.on('end', () => s.end());
    },
  );
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.port = (server.address() as AddressInfo).port;
  state.close = () =>
    new Promise((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  return state;
}

export interface TlsResult {
  data: string;
  error?: string;
  /** Whether the server's certificate chain was verified. */
  authorized: boolean;
  /** The SHA-256 fingerprint of the certificate the server presented. */
  peer?: string;
}

/**
 * A TLS client to 127.0.0.1:`port` trusting the PKI's CA (SNI `localhost` unless `opts` says
 * otherwise): writes `text`, half-closes, collects until close.
 */
export function tlsExchange(
  pki: TestPki,
  port: number,
  text: string,
  opts: tls.ConnectionOptions = {},
): Promise<TlsResult> {
  return new Promise((resolve) => {
    const out: TlsResult = { data: '', authorized: false };
    const s = tls.connect({ port, host: '127.0.0.1', ca: pki.ca, servername: 'localhost', ...opts });
    s.on('secureConnect', () => {
      out.authorized = s.authorized;
      out.peer = s.getPeerX509Certificate()?.fingerprint256;
      s.end(text);
    });
    s.on('data', (d) => {
      out.data += d;
    });
    s.on('error', (err: NodeJS.ErrnoException) => {
      out.error = err.code ?? err.message;
    });
    s.on('close', () => resolve(out));
  });
}
