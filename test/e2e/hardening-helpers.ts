// Raw-socket tools for the hardening tests: send exact bytes to the proxy and read back exactly
// what it answered (and whether it closed the connection), a recording upstream that keeps
// every request it received as it arrived on the wire, and the policy that denies /admin*.
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';

export interface RawResponse {
  /** The first response's status code (0 when nothing came back). */
  status: number;
  /** Every byte the proxy sent on this connection. */
  raw: string;
  /** Header names (lower case) and values of the first response. */
  headers: Record<string, string>;
  body: string;
  /** Whether the proxy closed the connection (within `closeWaitMs` after the answer). */
  closed: boolean;
  /** How many responses (status lines) came back. */
  responses: number;
}

/** Parses the first response head and its Content-Length body out of `raw`. */
function parseFirst(raw: string): { status: number; headers: Record<string, string>; body: string; complete: boolean } {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) return { status: 0, headers: {}, body: '', complete: false };
  const lines = raw.slice(0, end).split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  const rest = raw.slice(end + 4);
  if (status === 100) {
    const next = parseFirst(rest);
    return next.status ? next : { status: 0, headers: {}, body: '', complete: false };
  }
  const cl = headers['content-length'];
  if (cl !== undefined) {
    const n = Number(cl);
    return { status, headers, body: rest.slice(0, n), complete: rest.length >= n };
  }
  if (headers['transfer-encoding'] === 'chunked')
    return { status, headers, body: rest, complete: rest.endsWith('0\r\n\r\n') };
  return { status, headers, body: rest, complete: false };
}

/**
 * Writes `chunks` (each after `gapMs`) to 127.0.0.1:`port`, then reads until the connection
 * closes or the first response is complete and `closeWaitMs` more passed without a close.
 */
export function rawRequest(
  port: number,
  data: string | Buffer | (string | Buffer)[],
  opts: { timeoutMs?: number; closeWaitMs?: number; gapMs?: number; endAfterWrite?: boolean } = {},
): Promise<RawResponse> {
  const chunks = Array.isArray(data) ? data : [data];
  const timeoutMs = opts.timeoutMs ?? 5000;
  const closeWaitMs = opts.closeWaitMs ?? 300;
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let raw = Buffer.alloc(0);
    let settled = false;
    let closeTimer: NodeJS.Timeout | undefined;
    const finish = (closed: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(overall);
      clearTimeout(closeTimer);
      const text = raw.toString('latin1');
      const first = parseFirst(text);
      const responses = (text.match(/HTTP\/1\.[01] [2-5]\d\d /g) ?? []).length;
      socket.destroy();
      resolve({ status: first.status, raw: text, headers: first.headers, body: first.body, closed, responses });
    };
    const overall = setTimeout(() => {
      if (raw.length === 0) {
        settled = true;
        socket.destroy();
        reject(new Error(`no answer within ${timeoutMs} ms`));
      } else finish(false);
    }, timeoutMs);
    socket.on('data', (d: Buffer) => {
      raw = Buffer.concat([raw, d]);
      if (parseFirst(raw.toString('latin1')).complete && !closeTimer)
        closeTimer = setTimeout(() => finish(false), closeWaitMs);
    });
    socket.on('close', () => finish(true));
    socket.on('error', () => {});
    socket.once('connect', async () => {
      for (const [i, c] of chunks.entries()) {
        if (i > 0 && opts.gapMs) await new Promise((r) => setTimeout(r, opts.gapMs));
        if (socket.destroyed) return;
        socket.write(c);
      }
      if (opts.endAfterWrite) socket.end();
    });
  });
}

export interface SeenRequest {
  method: string;
  url: string;
  httpVersion: string;
  rawHeaders: string[];
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A request head as the upstream received it, whether or not its body completed. */
export interface SeenHead {
  method: string;
  url: string;
}

export interface RecordingUpstream {
  port: number;
  /** Every complete request (head and body) received so far, in order. */
  seen: SeenRequest[];
  /** Every request head, at arrival. */
  heads: SeenHead[];
  /** Connections accepted so far. */
  connections: number;
  /** Forgets the requests and heads seen so far. */
  reset(): void;
  close(): Promise<void>;
}

/**
 * An upstream that records each request (head and body) and answers 200 `ok`. With
 * `insecureHTTPParser`, its parser is lenient, as many non-Node backends are.
 */
export function startRecordingUpstream(opts: { insecureHTTPParser?: boolean } = {}): Promise<RecordingUpstream> {
  const seen: SeenRequest[] = [];
  const heads: SeenHead[] = [];
  const server = http.createServer(
    { maxHeaderSize: 256 * 1024, ...(opts.insecureHTTPParser ? { insecureHTTPParser: true } : {}) },
    (req, res) => {
      heads.push({ method: req.method ?? '', url: req.url ?? '' });
      const chunks: Buffer[] = [];
      req.on('data', (d: Buffer) => chunks.push(d));
      req.on('end', () => {
        seen.push({
          method: req.method ?? '',
          url: req.url ?? '',
          httpVersion: req.httpVersion,
          rawHeaders: req.rawHeaders,
          headers: req.headers,
          body: Buffer.concat(chunks).toString('latin1'),
        });
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' });
        res.end('ok');
      });
    },
  );
  const up: RecordingUpstream = {
    port: 0,
    seen,
    heads,
    connections: 0,
    reset: () => {
      seen.length = 0;
      heads.length = 0;
    },
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  server.on('connection', () => {
    up.connections++;
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      up.port = (server.address() as AddressInfo).port;
      resolve(up);
    });
  });
}

/**
 * An AuthorizationPolicy `deny-admin` on the ingress gateway (a YAML document starting with
 * `---`) that denies /admin* and, with `operations`, the requests matching any of them (flow-style
 * YAML, e.g. `{hosts: ["evil.example"]}`).
 */
export function denyAdminPolicy(...operations: string[]): string {
  return `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin*"]}}]
${operations.map((o) => `  - to: [{operation: ${o}}]\n`).join('')}`;
}

/** The proxy's admin /stats as name -> number. */
export async function adminStats(adminPort: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/stats`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(\S+): (-?\d+)$/.exec(line.trim());
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/** Polls `fn` until it returns true or `ms` pass; returns the last result. */
export async function eventually(fn: () => Promise<boolean> | boolean, ms = 5000, every = 50): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await fn()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, every));
  }
}
