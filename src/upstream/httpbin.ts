// An embedded httpbin-compatible upstream for the demo and the tests. JSON shapes follow
// mccutchen/go-httpbin (header and query values are arrays) so one set of assertions holds for
// both; /status/418 answers postman httpbin's ASCII teapot, as the ASM tutorial shows.
import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export const TEAPOT = `
    -=[ teapot ]=-

       _...._
     .'  _ _ \`.
    | ."\` ^ \`". _,
    \\_;\`"---"\`|//
      |       ;/
      \\_     _/
        \`"""\`
`;

const MAX_BODY = 10 * 1024 * 1024;
const MAX_BYTES = 10 * 1024 * 1024;

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

function canonical(name: string): string {
  return name.replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());
}

function headersOf(req: http.IncomingMessage): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = canonical(raw[i]!.toLowerCase());
    (out[name] ??= []).push(raw[i + 1]!);
  }
  return out;
}

function argsOf(url: URL): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, v] of url.searchParams) (out[k] ??= []).push(v);
  return out;
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function text(res: http.ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function readBody(req: http.IncomingMessage, res: http.ServerResponse, done: (body: Buffer) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let over = false;
  req.on('data', (c: Buffer) => {
    if (over) return;
    size += c.length;
    if (size > MAX_BODY) {
      over = true;
      text(res, 413, 'request body too large\n');
      req.resume();
      return;
    }
    chunks.push(c);
  });
  req.on('end', () => {
    if (!over) done(Buffer.concat(chunks));
  });
}

function origin(req: http.IncomingMessage): string {
  return req.socket.remoteAddress ?? '';
}

function requestUrl(req: http.IncomingMessage): URL {
  return new URL(req.url ?? '/', `http://${req.headers.host ?? 'localhost'}`);
}

function echo(req: http.IncomingMessage, res: http.ServerResponse, withBody: boolean): void {
  const url = requestUrl(req);
  const base = { args: argsOf(url), headers: headersOf(req), method: req.method, origin: origin(req), url: url.href };
  if (!withBody) {
    req.resume();
    json(res, 200, base);
    return;
  }
  readBody(req, res, (body) => {
    const type = req.headers['content-type'] ?? '';
    const data = body.toString('utf8');
    let parsed: unknown = null;
    const form: Record<string, string[]> = {};
    if (type.includes('application/json') && data.length > 0) {
      try {
        parsed = JSON.parse(data);
      } catch {
        parsed = null;
      }
    } else if (type.includes('application/x-www-form-urlencoded')) {
      for (const [k, v] of new URLSearchParams(data)) (form[k] ??= []).push(v);
    }
    json(res, 200, { ...base, data, files: {}, form, json: parsed });
  });
}

function status(res: http.ServerResponse, spec: string): void {
  const choices = spec.split(',').map((c) => Number(c.split(':')[0]));
  if (choices.some((c) => !Number.isInteger(c) || c < 100 || c > 599)) {
    json(res, 400, { status_code: 400, error: `invalid status code: ${spec}` });
    return;
  }
  const code = choices[Math.floor(Math.random() * choices.length)]!;
  if (code === 418) {
    res.writeHead(418, {
      'content-type': 'text/plain; charset=utf-8',
      'x-more-info': 'http://tools.ietf.org/html/rfc2324',
      'content-length': Buffer.byteLength(TEAPOT),
    });
    res.end(TEAPOT);
    return;
  }
  res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8' });
  res.end();
}

export function createHttpbinHandler(): Handler {
  return (req, res) => {
    const url = requestUrl(req);
    const path = url.pathname;
    const method = req.method ?? 'GET';
    let m: RegExpExecArray | null;
    if ((m = /^\/status\/([^/]+)$/.exec(path))) {
      req.resume();
      status(res, m[1]!);
    } else if (path === '/headers') {
      req.resume();
      json(res, 200, { headers: headersOf(req) });
    } else if (path === '/ip') {
      req.resume();
      json(res, 200, { origin: origin(req) });
    } else if (path === '/user-agent') {
      req.resume();
      json(res, 200, { 'user-agent': req.headers['user-agent'] ?? '' });
    } else if (path === '/uuid') {
      req.resume();
      json(res, 200, { uuid: randomUUID() });
    } else if (path === '/get' && (method === 'GET' || method === 'HEAD')) {
      echo(req, res, false);
    } else if (['/post', '/put', '/patch', '/delete'].includes(path)) {
      if (method !== path.slice(1).toUpperCase()) {
        req.resume();
        text(res, 405, 'Method Not Allowed\n');
      } else echo(req, res, true);
    } else if (path === '/anything' || path.startsWith('/anything/')) {
      echo(req, res, true);
    } else if ((m = /^\/delay\/([\d.]+)$/.exec(path))) {
      req.resume();
      const seconds = Math.min(Number(m[1]), 10);
      setTimeout(() => echo(req, res, false), seconds * 1000);
    } else if ((m = /^\/bytes\/(\d+)$/.exec(path))) {
      req.resume();
      const n = Math.min(Number(m[1]), MAX_BYTES);
      const body = randomBytes(n);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n });
      res.end(body);
    } else if ((m = /^\/stream\/(\d+)$/.exec(path))) {
      req.resume();
      const n = Math.min(Number(m[1]), 100);
      res.writeHead(200, { 'content-type': 'application/json' });
      for (let i = 0; i < n; i++) {
        res.write(
          `${JSON.stringify({ id: i, args: argsOf(url), headers: headersOf(req), origin: origin(req), url: url.href })}\n`,
        );
      }
      res.end();
    } else if ((m = /^\/stream-bytes\/(\d+)$/.exec(path))) {
      req.resume();
      const n = Math.min(Number(m[1]), MAX_BYTES);
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      for (let sent = 0; sent < n; sent += 10240) res.write(randomBytes(Math.min(10240, n - sent)));
      res.end();
    } else if (path === '/response-headers') {
      req.resume();
      const out: Record<string, string[]> = {};
      for (const [k, v] of url.searchParams) {
        res.appendHeader(k, v);
        (out[k] ??= []).push(v);
      }
      json(res, 200, out);
    } else if (path === '/json') {
      req.resume();
      json(res, 200, { slideshow: { author: 'Yours Truly', title: 'Sample Slide Show' } });
    } else if (path === '/html') {
      req.resume();
      text(
        res,
        200,
        '<!DOCTYPE html>\n<html><body><h1>Herman Melville - Moby-Dick</h1></body></html>\n',
        'text/html; charset=utf-8',
      );
    } else if (path === '/robots.txt') {
      req.resume();
      text(res, 200, 'User-agent: *\nDisallow: /deny\n');
    } else if ((m = /^\/base64\/(.+)$/.exec(path))) {
      req.resume();
      text(res, 200, Buffer.from(decodeURIComponent(m[1]!), 'base64url').toString('utf8'), 'text/html; charset=utf-8');
    } else if ((m = /^\/redirect\/(\d+)$/.exec(path))) {
      req.resume();
      const n = Number(m[1]);
      res.writeHead(302, { location: n > 1 ? `/redirect/${n - 1}` : '/get', 'content-length': 0 });
      res.end();
    } else {
      req.resume();
      text(res, 404, '404 page not found\n');
    }
  };
}

export interface RunningHttpbin {
  server: http.Server;
  url: string;
  port: number;
  close(): Promise<void>;
}

export function startHttpbin(opts: { host?: string; port?: number } = {}): Promise<RunningHttpbin> {
  const host = opts.host ?? '127.0.0.1';
  const server = http.createServer({ keepAliveTimeout: 65_000 }, createHttpbinHandler());
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      const port = (server.address() as AddressInfo).port;
      resolve({
        server,
        port,
        url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
        close: () =>
          new Promise<void>((r) => {
            server.close(() => r());
            server.closeAllConnections();
          }),
      });
    });
  });
}
