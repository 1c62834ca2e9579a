// An embedded httpbin-compatible upstream for the demo (`wasmgate run --httpbin`) and the tests.
//
// Reference: mccutchen/go-httpbin v2.26.0 (the binary test/helpers/upstreams.ts runs), so one set of
// assertions holds for both (test/httpbin.test.ts runs them against each). Shapes follow go-httpbin,
// NOT postman httpbin:
//   - `args`, `headers`, `form` and `files` values are ARRAYS of strings (`{"X-Id": ["a"]}`), keys sorted,
//     header names canonical (`X-Request-Id`); `/headers` reports exactly the header lines received.
//   - `origin` is the first X-Forwarded-For entry when present (like go-httpbin), else the peer address.
//   - `url` keeps the request target as received; the scheme honours X-Forwarded-Proto.
//   - errors are `{"status_code", "error", "detail"}` JSON; unknown path → `404 page not found`,
//     wrong method → 405 with `Allow`, unclean paths (`//`, `..`) → 307 like Go's ServeMux.
//   - every response carries go-httpbin's CORS headers; OPTIONS answers the preflight.
// Deliberate differences from go-httpbin (each kept because the demo or other tests rely on it):
//   - `/status/418` answers postman httpbin's ASCII teapot (TEAPOT below), as the ASM tutorial and the
//     README show; go-httpbin answers `I'm a teapot!`. Status, content type and X-More-Info match.
//   - a request body of an unrecognised content type is echoed in `data` as text when it is valid UTF-8
//     (postman's rule); go-httpbin always turns it into a `data:…;base64,` URL. Invalid UTF-8 gets the
//     data URL in both.
//   - a request body over the cap (10 MiB) is refused with 413; go-httpbin (run with the same cap)
//     answers 400.
//   - `?seed=` on /bytes, /stream-bytes and /unstable is deterministic but not byte-identical to Go's
//     math/rand; `/html` is a shorter Moby-Dick page.
//   - fixed-size answers always carry Content-Length (Go switches to chunked past ~2 KB unless the
//     handler sets a length); /stream, /stream-bytes and /drip frame exactly as go-httpbin does.
// Endpoints: / /get /head /post /put /patch /delete /anything[/…] /upload /status/:codes /headers /ip
// /user-agent /uuid /delay/:d /drip /bytes/:n /stream-bytes/:n /stream/:n /response-headers
// /redirect/:n /relative-redirect/:n /absolute-redirect/:n /redirect-to /cookies[/set|/delete]
// /basic-auth/:u/:p /hidden-basic-auth/:u/:p /bearer /cache[/:n] /gzip /deflate /base64/[:op/]:data
// /html /json /xml /robots.txt /deny /unstable. Anything else is 404.
import { isUtf8 } from 'node:buffer';
import { createCipheriv, createHash, randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { deflateSync, gzipSync } from 'node:zlib';
import { parseDurationMs } from '../config/duration.ts';

/** postman httpbin's /status/418 body (httpbin/helpers.py ASCII_ART), byte for byte. */
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

export const DEFAULT_MAX_BODY_SIZE = 10 * 1024 * 1024;
const MAX_DURATION_MS = 10_000;

const JSON_TYPE = 'application/json; charset=utf-8';
const TEXT_TYPE = 'text/plain; charset=utf-8';
const HTML_TYPE = 'text/html; charset=utf-8';
const BINARY_TYPE = 'application/octet-stream';

type Req = http.IncomingMessage;
type Res = http.ServerResponse;
type Values = Record<string, string[]>;
export type HttpbinHandler = (req: Req, res: Res) => void;

export interface HttpbinOptions {
  /** Cap for request bodies and generated responses (/bytes, /drip, …). Default 10 MiB. */
  maxBodySize?: number;
}

interface Ctx {
  req: Req;
  res: Res;
  method: string;
  /** Request path as received (still percent-encoded), without the query. */
  path: string;
  /** Path plus `?query` as received. */
  target: string;
  /** Host from an absolute-form request target, else the Host header. */
  host: string;
  args: Values;
  query: URLSearchParams;
  maxBody: number;
}

// ---------------------------------------------------------------------------------------------
// Request helpers

/** Go's textproto.CanonicalMIMEHeaderKey for valid names: `x-request-id` → `X-Request-Id`. */
function canonical(name: string): string {
  return name.toLowerCase().replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());
}

/** The first value of a request header, like Go's Header.Get (repeated lines are not joined). */
function header(req: Req, name: string): string {
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) return raw[i + 1]!;
  return '';
}

/** Every header line the server received, merged by canonical name, keys sorted. */
function headersOf(req: Req): Values {
  const out: Values = {};
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) (out[canonical(raw[i]!)] ??= []).push(raw[i + 1]!);
  return sorted(out);
}

function sorted(v: Values): Values {
  const out: Values = {};
  for (const k of Object.keys(v).sort()) out[k] = v[k]!;
  return out;
}

/** Percent-decoding as Go's url.QueryUnescape / PathUnescape; null on a malformed escape. */
function percentDecode(s: string, plusIsSpace: boolean): string | null {
  if (!s.includes('%')) return plusIsSpace ? s.replaceAll('+', ' ') : s;
  const bytes: number[] = [];
  const src = Buffer.from(s, 'utf8');
  for (let i = 0; i < src.length; i++) {
    const b = src[i]!;
    if (b === 0x25) {
      const hex = src.subarray(i + 1, i + 3).toString('latin1');
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) return null;
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else bytes.push(plusIsSpace && b === 0x2b ? 0x20 : b);
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Go's url.ParseQuery: `&`-separated, pairs with `;` or bad escapes are errors (and skipped). */
function parseQuery(q: string): { values: Values; error?: string } {
  const values: Values = {};
  let error: string | undefined;
  for (const pair of q.split('&')) {
    if (pair === '') continue;
    if (pair.includes(';')) {
      error ??= 'invalid semicolon separator in query';
      continue;
    }
    const eq = pair.indexOf('=');
    const k = percentDecode(eq < 0 ? pair : pair.slice(0, eq), true);
    const v = percentDecode(eq < 0 ? '' : pair.slice(eq + 1), true);
    if (k === null || v === null) {
      error ??= `invalid URL escape in ${JSON.stringify(pair)}`;
      continue;
    }
    (values[k] ??= []).push(v);
  }
  return error === undefined ? { values: sorted(values) } : { values: sorted(values), error };
}

/** go-httpbin's getClientIP. */
function clientIP(req: Req): string {
  for (const name of ['fly-client-ip', 'cf-connecting-ip', 'fastly-client-ip', 'true-client-ip']) {
    const v = header(req, name);
    if (v) return v;
  }
  const xff = header(req, 'x-forwarded-for');
  if (xff) return xff.split(',', 1)[0]!.trim();
  const addr = req.socket.remoteAddress ?? '';
  return addr.startsWith('::ffff:') && addr.includes('.') ? addr.slice(7) : addr;
}

/** go-httpbin's getURL: scheme from X-Forwarded-Proto & co, the request target as received. */
function requestURL(c: Ctx): string {
  const { req } = c;
  let scheme = header(req, 'x-forwarded-proto') || header(req, 'x-forwarded-protocol');
  if (!scheme && header(req, 'x-forwarded-ssl') === 'on') scheme = 'https';
  if (!scheme && 'encrypted' in req.socket) scheme = 'https';
  return `${scheme || 'http'}://${c.host}${c.target}`;
}

function isHTTPS(c: Ctx): boolean {
  return requestURL(c).startsWith('https:');
}

// ---------------------------------------------------------------------------------------------
// Response helpers (header names written canonically, as Go does on the wire)

const GO_STATUS_TEXT: Record<number, string> = { 413: 'Request Entity Too Large', 418: "I'm a teapot" };

function statusText(code: number): string {
  return GO_STATUS_TEXT[code] ?? http.STATUS_CODES[code] ?? '';
}

/**
 * Ends the response with a Content-Length, except where Go sends none: 204/304, and HEAD (go-httpbin
 * discards HEAD bodies, so Go cannot count them) unless the handler sets the length itself (`explicit`).
 */
function send(c: Ctx, status: number, type: string | null, body: string | Buffer = '', explicit = false) {
  const { res } = c;
  if (type !== null) res.setHeader('Content-Type', type);
  if (status !== 204 && status !== 304 && (explicit || c.method !== 'HEAD'))
    res.setHeader('Content-Length', Buffer.byteLength(body));
  res.statusCode = status;
  res.end(body);
}

/** Go's json.Encoder with two-space indent and a trailing newline. */
function sendJSON(c: Ctx, status: number, body: unknown) {
  send(c, status, JSON_TYPE, `${JSON.stringify(body, null, 2)}\n`);
}

function sendError(c: Ctx, status: number, detail?: string) {
  const body: Record<string, unknown> = { status_code: status, error: statusText(status) };
  if (detail) body.detail = detail;
  sendJSON(c, status, body);
}

function redirect(c: Ctx, location: string, status = 302) {
  c.res.setHeader('Location', location);
  send(c, status, null);
}

function htmlEscape(s: string): string {
  return s.replace(/[&'<>"]/g, (ch) => ({ '&': '&amp;', "'": '&#39;', '<': '&lt;', '>': '&gt;', '"': '&#34;' })[ch]!);
}

const SAFE_CONTENT_TYPES = new Set(['text/plain', 'application/json', 'application/octet-string']);
const TOKEN = "[!#$%&'*+.^_`|~0-9a-z-]+";
const MEDIA_TYPE = new RegExp(`^${TOKEN}/${TOKEN}$`);

/** go-httpbin's isDangerousContentType: anything a browser might render as HTML. */
function isDangerous(contentType: string): boolean {
  const media = contentType.split(';', 1)[0]!.trim().toLowerCase();
  return !MEDIA_TYPE.test(media) || !SAFE_CONTENT_TYPES.has(media);
}

function serverTiming(entries: [name: string, ms: number, desc: string][]): string {
  return entries.map(([name, ms, desc]) => `${name};dur=${ms.toFixed(2)};desc="${desc}"`).join(', ');
}

// ---------------------------------------------------------------------------------------------
// Parsing helpers

/** The message of a strconv syntax error, as Go prints it. */
function syntax(fn: string, s: string): string {
  return `strconv.${fn}: parsing ${JSON.stringify(s)}: invalid syntax`;
}

/** strconv.Atoi */
function atoi(s: string): number | null {
  return /^[+-]?\d+$/.test(s) ? Number(s) : null;
}

/** A Go duration (`1.5s`, `300ms`, `1m30s`) or float seconds, in milliseconds; null if invalid. */
function parseDuration(s: string): number | null {
  const go = parseDurationMs(s);
  if (go !== undefined) return go;
  if (!/^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/.test(s)) return null;
  return Math.trunc(Number(s) * 1000);
}

/** Go's Duration.String, enough for error messages. */
function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  const sign = ms < 0 ? '-' : '';
  let rest = Math.abs(ms);
  const num = (n: number) => String(Number(n.toFixed(9)));
  if (rest < 1000) return `${sign}${num(rest)}ms`;
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  rest -= m * 60_000;
  return `${sign}${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${num(rest / 1000)}s`;
}

function boundedDuration(s: string, minMs: number): { ms: number } | { error: string } {
  const ms = parseDuration(s);
  if (ms === null) return { error: syntax('ParseFloat', s) };
  if (ms > MAX_DURATION_MS)
    return { error: `duration ${formatDuration(ms)} longer than ${formatDuration(MAX_DURATION_MS)}` };
  if (ms < minMs) return { error: `duration ${formatDuration(ms)} shorter than ${formatDuration(minMs)}` };
  return { ms };
}

function parseStatusCode(s: string, min = 100, max = 599): { code: number } | { error: string } {
  const code = atoi(s);
  if (code === null)
    return {
      error: `invalid status code: ${JSON.stringify(s)}: strconv.Atoi: parsing ${JSON.stringify(s)}: invalid syntax`,
    };
  if (code < min || code > max) return { error: `invalid status code: ${code} not in range [${min}, ${max}]` };
  return { code };
}

/** A deterministic byte source for `?seed=` (AES-256-CTR keyed by the seed): not Go's math/rand. */
function seededBytes(seed: string): (n: number) => Buffer {
  const key = createHash('sha256').update(`httpbin-seed:${seed}`).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return (n) => cipher.update(Buffer.alloc(n));
}

function bytesSource(c: Ctx): ((n: number) => Buffer) | null {
  const seed = c.query.get('seed') ?? '';
  if (seed === '') return randomBytes;
  return atoi(seed) === null ? null : seededBytes(seed);
}

// ---------------------------------------------------------------------------------------------
// Request bodies

/** Reads the request body as a stream with a cap; answers 413 itself (and returns null) past it. */
function readBody(c: Ctx): Promise<Buffer | null> {
  const { req, maxBody } = c;
  const tooLarge = () => {
    c.res.setHeader('Connection', 'close');
    sendError(c, 413, `request body too large: more than ${maxBody} bytes`);
    req.resume();
  };
  const declared = Number(req.headers['content-length'] ?? Number.NaN);
  if (declared > maxBody) {
    tooLarge();
    return Promise.resolve(null);
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (body: Buffer | null) => {
      if (done) return;
      done = true;
      req.off('data', onData);
      resolve(body);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBody) {
        tooLarge();
        finish(null);
      } else chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => finish(Buffer.concat(chunks, size)));
    req.once('error', () => finish(null));
    req.once('close', () => finish(null));
  });
}

interface BodyEcho {
  args: Values;
  headers: Values;
  method: string;
  origin: string;
  url: string;
  data: string;
  files: Values;
  form: Values;
  json: unknown;
}

/** A minimal multipart/form-data parser: fields go to `form`, parts with a filename to `files`. */
function parseMultipart(body: Buffer, contentType: string, echo: BodyEcho) {
  const m = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  const boundary = m?.[1] ?? m?.[2];
  if (!boundary) throw new Error('no multipart boundary param in Content-Type');
  const delimiter = Buffer.from(`--${boundary}`);
  let pos = body.indexOf(delimiter);
  if (pos < 0) throw new Error('multipart: NextPart: EOF');
  const form: Values = {};
  const files: Values = {};
  for (;;) {
    pos += delimiter.length;
    if (body.subarray(pos, pos + 2).toString() === '--') break;
    const headStart = body.indexOf('\r\n', pos) + 2;
    const headEnd = body.indexOf('\r\n\r\n', headStart - 2);
    if (headStart < 2 || headEnd < 0) throw new Error('multipart: NextPart: EOF');
    const head = body.subarray(headStart, headEnd).toString('utf8');
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), delimiter]), headEnd + 4);
    if (next < 0) throw new Error('multipart: NextPart: EOF');
    const content = body.subarray(headEnd + 4, next).toString('utf8');
    const disposition = /^content-disposition:(.*)$/im.exec(head)?.[1] ?? '';
    const param = (p: string) => new RegExp(`;\\s*${p}=(?:"([^"]*)"|([^;\\s]*))`, 'i').exec(disposition);
    const name = param('name');
    const filename = param('filename');
    const key = name?.[1] ?? name?.[2] ?? '';
    if (filename && (filename[1] ?? filename[2])) (files[key] ??= []).push(content);
    else if (name) (form[key] ??= []).push(content);
    pos = next + 2;
  }
  echo.form = sorted(form);
  echo.files = sorted(files);
}

/** go-httpbin's parseBody; throws on a body its content type says it should parse but cannot. */
function parseBody(c: Ctx, body: Buffer, echo: BodyEcho) {
  if (body.length === 0) return;
  echo.data = body.toString('utf8');
  const contentType = header(c.req, 'content-type');
  const media = contentType.split(';', 1)[0]!;
  switch (media) {
    case 'text/html':
    case 'text/plain':
      return;
    case 'application/x-www-form-urlencoded': {
      const { values, error } = parseQuery(echo.data);
      if (error) throw new Error(error);
      echo.form = values;
      return;
    }
    case 'multipart/form-data':
      parseMultipart(body, contentType, echo);
      return;
    case 'application/json':
      echo.json = JSON.parse(echo.data);
      return;
    default:
      // go-httpbin: always a data URL here; we keep valid UTF-8 as text (see the note at the top).
      if (!isUtf8(body)) echo.data = `data:${media || BINARY_TYPE};base64,${body.toString('base64url')}`;
  }
}

function noBodyEcho(c: Ctx) {
  return { args: c.args, headers: headersOf(c.req), method: c.method, origin: clientIP(c.req), url: requestURL(c) };
}

async function echoWithBody(c: Ctx) {
  const body = await readBody(c);
  if (body === null) return;
  const echo: BodyEcho = { ...noBodyEcho(c), data: '', files: {}, form: {}, json: null };
  try {
    parseBody(c, body, echo);
  } catch (err) {
    sendError(c, 400, `error parsing request body: ${(err as Error).message}`);
    return;
  }
  sendJSON(c, 200, echo);
}

// ---------------------------------------------------------------------------------------------
// /status

const REDIRECT_TO_1 = { headers: { Location: '/redirect/1' } };
const STATUS_SPECIAL: Record<number, { headers?: Record<string, string>; body?: string }> = {
  300: {
    headers: { Location: '/image/jpeg' },
    body: `<!doctype html>
<head>
<title>Multiple Choices</title>
</head>
<body>
<ul>
<li><a href="/image/jpeg">/image/jpeg</a></li>
<li><a href="/image/png">/image/png</a></li>
<li><a href="/image/svg">/image/svg</a></li>
</body>
</html>`,
  },
  301: REDIRECT_TO_1,
  302: REDIRECT_TO_1,
  303: REDIRECT_TO_1,
  305: REDIRECT_TO_1,
  307: REDIRECT_TO_1,
  308: {
    headers: { Location: '/image/jpeg' },
    body: `<!doctype html>
<head>
<title>Permanent Redirect</title>
</head>
<body>Permanently redirected to <a href="/image/jpeg">/image/jpeg</a>
</body>
</html>`,
  },
  401: { headers: { 'WWW-Authenticate': 'Basic realm="Fake Realm"' } },
  402: { headers: { 'X-More-Info': 'http://vimeo.com/22053820' }, body: 'Fuck you, pay me!' },
  406: {
    headers: { 'Content-Type': JSON_TYPE },
    body: `{
  "message": "Client did not request a supported media type",
  "accept": [
    "image/webp",
    "image/svg+xml",
    "image/jpeg",
    "image/png",
    "image/"
  ]
}
`,
  },
  407: { headers: { 'Proxy-Authenticate': 'Basic realm="Fake Realm"' } },
  418: { headers: { 'X-More-Info': 'http://tools.ietf.org/html/rfc2324' }, body: TEAPOT },
};

function status(c: Ctx, spec: string) {
  let code: number;
  if (!spec.includes(',')) {
    const parsed = parseStatusCode(spec);
    if ('error' in parsed) return sendError(c, 400, parsed.error);
    code = parsed.code;
  } else {
    // weighted choice: `200:0.5,500:0.5` (weight defaults to 1)
    const choices: [number, number][] = [];
    for (const pair of spec.split(',')) {
      const [rawCode, rawWeight] = pair.split(/:(.*)/s) as [string, string | undefined];
      const weight = rawWeight === undefined ? 1 : Number(rawWeight);
      if (rawWeight !== undefined && (rawWeight.trim() === '' || Number.isNaN(weight)))
        return sendError(c, 400, `invalid weight value: ${JSON.stringify(rawWeight)}`);
      if ('error' in parseStatusCode(rawCode))
        return sendError(c, 400, `invalid choice value: ${JSON.stringify(rawCode)}`);
      choices.push([Number(rawCode), weight]);
    }
    const total = choices.reduce((sum, [, w]) => sum + w, 0);
    let r = Math.random() * total;
    code = choices.at(-1)![0];
    for (const [choice, w] of choices) {
      if (r < w) {
        code = choice;
        break;
      }
      r -= w;
    }
  }
  const { res } = c;
  res.setHeader('Content-Type', TEXT_TYPE);
  if (code < 200 && code !== 101) {
    // Go sends a 1xx as an informational response, then its default 200.
    if (code === 100) res.writeContinue();
    else if (code === 102) res.writeProcessing();
    else if (code === 103) res.writeEarlyHints({});
    return send(c, 200, TEXT_TYPE);
  }
  if (code === 101) res.setHeader('Connection', 'close');
  const special = STATUS_SPECIAL[code];
  for (const [k, v] of Object.entries(special?.headers ?? {})) res.setHeader(k, v);
  send(c, code, null, special?.body ?? '');
}

// ---------------------------------------------------------------------------------------------
// Streaming endpoints

function onClose(c: Ctx, fn: () => void) {
  c.res.once('close', fn);
}

function sleep(c: Ctx, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (ms <= 0) return resolve(true);
    const t = setTimeout(() => resolve(true), ms);
    onClose(c, () => {
      clearTimeout(t);
      resolve(false);
    });
  });
}

function bytes(c: Ctx, raw: string, streaming: boolean) {
  const n = atoi(raw);
  if (n === null) return sendError(c, 400, `invalid byte count: ${syntax('Atoi', raw)}`);
  const source = bytesSource(c);
  if (source === null) return sendError(c, 400, `invalid seed: ${syntax('ParseInt', c.query.get('seed')!)}`);
  if (n < 0) return sendError(c, 400, `invalid byte count: ${n} must be greater than 0`);
  if (n === 0) return send(c, 200, null, '', true);
  if (n > c.maxBody) return sendError(c, 400, `invalid byte count: ${n} not in range [1, ${c.maxBody}]`);
  if (!streaming) return send(c, 200, BINARY_TYPE, source(n), true);
  const rawChunk = c.query.get('chunk_size') ?? '';
  const chunk = rawChunk === '' ? 10 * 1024 : atoi(rawChunk);
  if (chunk === null) return sendError(c, 400, `invalid chunk_size: ${syntax('Atoi', rawChunk)}`);
  const size = chunk > 0 ? chunk : n;
  const { res } = c;
  res.setHeader('Content-Type', BINARY_TYPE);
  res.writeHead(200);
  let sent = 0;
  const pump = () => {
    while (sent < n) {
      const len = Math.min(size, n - sent);
      sent += len;
      if (!res.write(source(len))) return void res.once('drain', pump);
    }
    res.end();
  };
  pump();
}

function stream(c: Ctx, raw: string) {
  let n = atoi(raw);
  if (n === null) return sendError(c, 400, `invalid count: ${syntax('Atoi', raw)}`);
  n = Math.min(Math.max(n, 1), 100);
  const { args, headers, origin, url } = noBodyEcho(c);
  const { res } = c;
  res.setHeader('Content-Type', TEXT_TYPE); // go-httpbin sets none; Go's sniffing picks text/plain
  res.writeHead(200);
  for (let id = 0; id < n; id++) res.write(`${JSON.stringify({ id, args, headers, origin, url })}\n`);
  res.end();
}

async function delay(c: Ctx, raw: string) {
  const d = boundedDuration(raw, 0);
  if ('error' in d) return sendError(c, 400, `invalid duration: ${d.error}`);
  if (!(await sleep(c, d.ms))) return;
  c.res.setHeader('Server-Timing', serverTiming([['initial_delay', d.ms, 'initial delay']]));
  await echoWithBody(c);
}

async function drip(c: Ctx) {
  const q = c.query;
  let duration = 2000;
  let wait = 2000;
  let numBytes = 10;
  let code = 200;
  if (q.get('duration')) {
    const d = boundedDuration(q.get('duration')!, 0);
    if ('error' in d) return sendError(c, 400, `invalid duration: ${d.error}`);
    duration = d.ms;
  }
  if (q.get('delay')) {
    const d = boundedDuration(q.get('delay')!, 0);
    if ('error' in d) return sendError(c, 400, `invalid delay: ${d.error}`);
    wait = d.ms;
  }
  if (q.get('numbytes')) {
    const n = atoi(q.get('numbytes')!);
    if (n === null) return sendError(c, 400, `invalid numbytes: ${syntax('ParseInt', q.get('numbytes')!)}`);
    if (n < 1 || n > c.maxBody) return sendError(c, 400, `invalid numbytes: ${n} not in range [1, ${c.maxBody}]`);
    numBytes = n;
  }
  if (q.get('code')) {
    const parsed = parseStatusCode(q.get('code')!);
    if ('error' in parsed) return sendError(c, 400, parsed.error);
    code = parsed.code;
  }
  if (duration + wait > MAX_DURATION_MS)
    return sendError(
      c,
      400,
      `too much time: ${formatDuration(duration)}+${formatDuration(wait)} > ${formatDuration(MAX_DURATION_MS)}`,
    );
  const pause = numBytes > 1 ? duration / (numBytes - 1) : duration;
  if (!(await sleep(c, wait))) return;
  const { res } = c;
  res.writeHead(code, {
    'Content-Type': TEXT_TYPE,
    'Content-Length': numBytes,
    'Server-Timing': serverTiming([
      ['total_duration', wait + duration, 'total request duration'],
      ['initial_delay', wait, 'initial delay'],
      ['write_duration', duration, 'duration of writes after initial delay'],
      ['pause_per_write', pause, 'computed pause between writes'],
    ]),
  });
  if (pause === 0) return void res.end('*'.repeat(numBytes));
  for (let i = 0; i < numBytes; i++) {
    res.write('*');
    if (i < numBytes - 1 && !(await sleep(c, pause))) return;
  }
  res.end();
}

// ---------------------------------------------------------------------------------------------
// Other endpoints

function responseHeaders(c: Ctx) {
  const args: Values = structuredClone(c.args);
  const contentType = args['Content-Type']?.[0] || JSON_TYPE;
  if (!args['Content-Type']?.[0]) args['Content-Type'] = [contentType];
  for (const [k, vs] of Object.entries(args)) {
    // framing stays ours; invalid names or values are dropped, as Go's server does
    if (/^(content-length|transfer-encoding)$/i.test(k)) continue;
    for (const v of vs) {
      try {
        c.res.appendHeader(canonical(k), v);
      } catch {
        // skip
      }
    }
  }
  let out = sorted(args);
  if (isDangerous(contentType)) {
    out = {};
    for (const [k, vs] of Object.entries(args)) (out[htmlEscape(k)] ??= []).push(...vs.map(htmlEscape));
    out = sorted(out);
  }
  send(c, 200, null, `${JSON.stringify(out, null, 2)}\n`);
}

function redirectLocation(c: Ctx, relative: boolean, n: number): string {
  const path = n < 1 ? '/get' : relative ? `/relative-redirect/${n}` : `/absolute-redirect/${n}`;
  if (relative) return path;
  return `${requestURL(c).replace(/^([a-z]+:\/\/[^/]*).*$/s, '$1')}${path}`;
}

function redirects(c: Ctx, raw: string, relative: boolean) {
  const n = atoi(raw);
  if (n === null) return sendError(c, 400, `invalid redirect count: ${syntax('Atoi', raw)}`);
  if (n < 1) return sendError(c, 400, 'redirect count must be > 0');
  redirect(c, redirectLocation(c, relative, n - 1));
}

function redirectTo(c: Ctx) {
  const target = c.query.get('url') ?? '';
  if (!target) return sendError(c, 400, 'missing required query parameter: url');
  const absolute = /^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(target);
  const rootRelative = target.startsWith('/');
  if (!absolute && !rootRelative) return send(c, 403, 'text/plain');
  let status = 302;
  const rawStatus = c.query.get('status_code') ?? '';
  if (rawStatus) {
    const parsed = parseStatusCode(rawStatus, 300, 399);
    if ('error' in parsed) return sendError(c, 400, parsed.error);
    status = parsed.code;
  }
  redirect(c, target, status);
}

function cookiesOf(req: Req): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i]!.toLowerCase() !== 'cookie') continue;
    for (const part of req.rawHeaders[i + 1]!.split(';')) {
      const eq = part.indexOf('=');
      if (eq < 0) continue;
      const name = part.slice(0, eq).trim();
      let value = part.slice(eq + 1).trim();
      if (value.length > 1 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
      if (/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) out[name] = value;
    }
  }
  return out;
}

function setCookies(c: Ctx, remove: boolean) {
  const attrs = { httpOnly: true, path: '/', secure: isHTTPS(c), domain: '', sameSite: '' };
  const truthy = (v: string) => v === '1' || v.toLowerCase() === 'true';
  for (const [k, vs] of Object.entries(c.args)) {
    const m = /^attr\[(.*)\]$/.exec(k);
    if (!m || vs.length === 0) continue;
    const v = vs[0]!;
    switch (m[1]!.toLowerCase()) {
      case 'domain':
        attrs.domain = v;
        break;
      case 'httponly':
        attrs.httpOnly = truthy(v);
        break;
      case 'path':
        attrs.path = v;
        break;
      case 'samesite':
        attrs.sameSite = { strict: 'Strict', lax: 'Lax', none: 'None' }[v.toLowerCase()] ?? '';
        break;
      case 'secure':
        attrs.secure = truthy(v);
        break;
    }
  }
  const lines: string[] = [];
  for (const [name, vs] of Object.entries(c.args)) {
    if (/^attr\[.*\]$/.test(name) || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) continue;
    const value = vs[0]!.replace(/[^\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e ,]/g, '');
    let line = `${name}=${/[ ,]/.test(value) ? `"${value}"` : value}`;
    if (attrs.path) line += `; Path=${attrs.path}`;
    if (attrs.domain) line += `; Domain=${attrs.domain}`;
    if (remove) line += `; Expires=${new Date(Date.now() - 365 * 86_400_000).toUTCString()}; Max-Age=0`;
    if (attrs.httpOnly) line += '; HttpOnly';
    if (attrs.secure) line += '; Secure';
    if (attrs.sameSite) line += `; SameSite=${attrs.sameSite}`;
    lines.push(line);
  }
  if (lines.length) c.res.setHeader('Set-Cookie', lines);
  redirect(c, '/cookies');
}

function basicAuthOf(req: Req): { user: string; password: string } | null {
  const m = /^basic (.*)$/is.exec(header(req, 'authorization'));
  if (!m || !/^[A-Za-z0-9+/]*={0,2}$/.test(m[1]!) || m[1]!.length % 4 !== 0) return null;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? null : { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

function basicAuth(c: Ctx, user: string, password: string, hidden: boolean) {
  const given = basicAuthOf(c.req);
  const ok = given !== null && given.user === user && given.password === password;
  if (!ok && hidden) return sendError(c, 404);
  if (!ok) c.res.setHeader('WWW-Authenticate', 'Basic realm="Fake Realm"');
  sendJSON(c, ok ? 200 : 401, { authenticated: ok, user: given?.user ?? '', authorized: ok });
}

function bearer(c: Ctx) {
  const fields = header(c.req, 'authorization').split(/\s+/).filter(Boolean);
  if (fields.length !== 2 || fields[0] !== 'Bearer') {
    c.res.setHeader('WWW-Authenticate', 'Bearer');
    return sendError(c, 401);
  }
  sendJSON(c, 200, { authenticated: true, token: fields[1] });
}

function compressed(c: Ctx, encoding: 'gzip' | 'deflate') {
  // go-httpbin leaves `url` empty here
  const body = `${JSON.stringify(
    { ...noBodyEcho(c), url: '', [encoding === 'gzip' ? 'gzipped' : 'deflated']: true },
    null,
    2,
  )}\n`;
  c.res.setHeader('Content-Encoding', encoding);
  send(c, 200, JSON_TYPE, encoding === 'gzip' ? gzipSync(body) : deflateSync(body), true);
}

function base64(c: Ctx, operation: string, data: string) {
  if (data.length === 0) return sendError(c, 400, 'no input data');
  if (data.length > c.maxBody) return sendError(c, 400, `input data exceeds max length of ${c.maxBody}`);
  let result: Buffer;
  if (operation === 'encode') {
    const encoded = Buffer.from(data, 'utf8').toString('base64url');
    result = Buffer.from(encoded + '='.repeat((4 - (encoded.length % 4)) % 4));
  } else if (operation === 'decode') {
    const padded = (alphabet: string) =>
      new RegExp(`^(?:[${alphabet}]{4})*(?:[${alphabet}]{2}==|[${alphabet}]{3}=)?$`).test(data);
    if (!padded('A-Za-z0-9_-') && !padded('A-Za-z0-9+/'))
      return sendError(c, 400, 'base64 decode failed: illegal base64 data');
    result = Buffer.from(data, 'base64');
  } else return sendError(c, 400, `invalid operation: ${operation}`);
  const type = c.query.get('content-type') || TEXT_TYPE;
  send(c, 200, type, isDangerous(type) ? Buffer.from(htmlEscape(result.toString('latin1')), 'latin1') : result);
}

function unstable(c: Ctx) {
  const source = bytesSource(c);
  if (source === null) return sendError(c, 400, `invalid seed: ${syntax('ParseInt', c.query.get('seed')!)}`);
  const raw = c.query.get('failure_rate') ?? '';
  const rate = raw === '' ? 0.5 : Number(raw);
  if (raw !== '' && (Number.isNaN(rate) || raw.trim() === '')) return sendError(c, 400, 'invalid failure rate');
  if (rate < 0 || rate > 1) return sendError(c, 400, `invalid failure rate: ${rate} not in range [0, 1]`);
  const r = source(4).readUInt32BE(0) / 2 ** 32;
  send(c, r < rate ? 500 : 200, TEXT_TYPE);
}

async function upload(c: Ctx) {
  const body = await readBody(c);
  if (body === null) return;
  sendJSON(c, 200, { ...noBodyEcho(c), bytes_received: body.length });
}

const SAMPLE_JSON = `{
  "slideshow": {
    "author": "Yours Truly",
    "date": "date of publication",
    "slides": [
      {
        "title": "Wake up to WonderWidgets!",
        "type": "all"
      },
      {
        "items": [
          "Why <em>WonderWidgets</em> are great",
          "Who <em>buys</em> WonderWidgets"
        ],
        "title": "Overview",
        "type": "all"
      }
    ],
    "title": "Sample Slide Show"
  }
}
`;

const SAMPLE_XML = `<?xml version='1.0' encoding='us-ascii'?>

<!--  A SAMPLE set of slides  -->

<slideshow
    title="Sample Slide Show"
    date="Date of publication"
    author="Yours Truly"
    >

    <!-- TITLE SLIDE -->
    <slide type="all">
      <title>Wake up to WonderWidgets!</title>
    </slide>

    <!-- OVERVIEW -->
    <slide type="all">
        <title>Overview</title>
        <item>Why <em>WonderWidgets</em> are great</item>
        <item/>
        <item>Who <em>buys</em> WonderWidgets</item>
    </slide>

</slideshow>
`;

const MOBY = `<!DOCTYPE html>
<html>
  <head>
  </head>
  <body>
      <h1>Herman Melville - Moby-Dick</h1>

      <div>
        <p>
          Availing himself of the mild, summer-cool weather that now reigned in these latitudes, and in preparation for the peculiarly active pursuits shortly to be anticipated, Perth, the begrimed, blistered old blacksmith, had not removed his portable forge to the hold again, after concluding his contributory work for Ahab's leg, but still retained it on deck, fast lashed to ringbolts by the foremast.
        </p>
      </div>
  </body>
</html>
`;

const INDEX = `<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>wasmgate httpbin</title></head>
<body>
<h1>wasmgate embedded httpbin</h1>
<p>A subset of <a href="https://github.com/mccutchen/go-httpbin">go-httpbin</a>:
/get /post /put /patch /delete /anything /status/:code /headers /ip /user-agent /uuid /delay/:d /drip
/bytes/:n /stream-bytes/:n /stream/:n /response-headers /redirect/:n /redirect-to /cookies /basic-auth/:u/:p
/bearer /cache /gzip /deflate /base64/:data /html /json /xml /robots.txt /deny /unstable /upload</p>
</body>
</html>
`;

// ---------------------------------------------------------------------------------------------
// Routing (Go 1.22 ServeMux semantics: a `GET` route also answers HEAD)

interface Route {
  pattern: RegExp;
  methods?: readonly string[];
  /** True when the handler reads the request body itself; otherwise it is drained. */
  body?: boolean;
  handle(c: Ctx, params: string[]): void | Promise<void>;
}

const GET = ['GET', 'HEAD'] as const;

const ROUTES: Route[] = [
  {
    pattern: /^\/$/,
    methods: GET,
    handle: (c) => {
      c.res.setHeader('Content-Security-Policy', "default-src 'self'");
      send(c, 200, HTML_TYPE, INDEX);
    },
  },
  { pattern: /^\/get$/, methods: GET, handle: (c) => sendJSON(c, 200, noBodyEcho(c)) },
  { pattern: /^\/head$/, methods: ['HEAD'], handle: (c) => sendJSON(c, 200, noBodyEcho(c)) },
  { pattern: /^\/post$/, methods: ['POST'], body: true, handle: echoWithBody },
  { pattern: /^\/put$/, methods: ['PUT'], body: true, handle: echoWithBody },
  { pattern: /^\/patch$/, methods: ['PATCH'], body: true, handle: echoWithBody },
  { pattern: /^\/delete$/, methods: ['DELETE'], body: true, handle: echoWithBody },
  { pattern: /^\/upload$/, methods: ['PATCH', 'POST', 'PUT'], body: true, handle: upload },
  {
    pattern: /^\/anything(?:\/.*)?$/,
    body: true,
    handle: (c) => {
      if (c.method !== 'HEAD') return echoWithBody(c);
      c.req.resume();
      sendJSON(c, 200, noBodyEcho(c));
    },
  },
  { pattern: /^\/status\/([^/]+)$/, handle: (c, [code]) => status(c, code!) },
  { pattern: /^\/headers$/, handle: (c) => sendJSON(c, 200, { headers: headersOf(c.req) }) },
  {
    pattern: /^\/ip$/,
    handle: (c) =>
      c.query.get('format') === 'text'
        ? send(c, 200, TEXT_TYPE, `${clientIP(c.req)}\n`)
        : sendJSON(c, 200, { origin: clientIP(c.req) }),
  },
  { pattern: /^\/user-agent$/, handle: (c) => sendJSON(c, 200, { 'user-agent': header(c.req, 'user-agent') }) },
  { pattern: /^\/uuid$/, handle: (c) => sendJSON(c, 200, { uuid: randomUUID() }) },
  { pattern: /^\/delay\/([^/]+)$/, body: true, handle: (c, [d]) => delay(c, d!) },
  { pattern: /^\/drip$/, handle: drip },
  { pattern: /^\/bytes\/([^/]+)$/, handle: (c, [n]) => bytes(c, n!, false) },
  { pattern: /^\/stream-bytes\/([^/]+)$/, handle: (c, [n]) => bytes(c, n!, true) },
  { pattern: /^\/stream\/([^/]+)$/, handle: (c, [n]) => stream(c, n!) },
  { pattern: /^\/response-headers$/, handle: responseHeaders },
  {
    pattern: /^\/redirect\/([^/]+)$/,
    handle: (c, [n]) => redirects(c, n!, c.query.get('absolute')?.toLowerCase() !== 'true'),
  },
  { pattern: /^\/relative-redirect\/([^/]+)$/, handle: (c, [n]) => redirects(c, n!, true) },
  { pattern: /^\/absolute-redirect\/([^/]+)$/, handle: (c, [n]) => redirects(c, n!, false) },
  { pattern: /^\/redirect-to$/, handle: redirectTo },
  { pattern: /^\/cookies$/, handle: (c) => sendJSON(c, 200, { cookies: cookiesOf(c.req) }) },
  { pattern: /^\/cookies\/set$/, handle: (c) => setCookies(c, false) },
  { pattern: /^\/cookies\/delete$/, handle: (c) => setCookies(c, true) },
  { pattern: /^\/basic-auth\/([^/]+)\/([^/]+)$/, handle: (c, [u, p]) => basicAuth(c, u!, p!, false) },
  { pattern: /^\/hidden-basic-auth\/([^/]+)\/([^/]+)$/, handle: (c, [u, p]) => basicAuth(c, u!, p!, true) },
  { pattern: /^\/bearer$/, handle: bearer },
  {
    pattern: /^\/cache$/,
    handle: (c) => {
      if (header(c.req, 'if-modified-since') || header(c.req, 'if-none-match')) return send(c, 304, null);
      const lastModified = new Date().toUTCString();
      c.res.setHeader('Last-Modified', lastModified);
      c.res.setHeader('ETag', createHash('sha1').update(lastModified).digest('hex'));
      sendJSON(c, 200, noBodyEcho(c));
    },
  },
  {
    pattern: /^\/cache\/([^/]+)$/,
    handle: (c, [n]) => {
      if (atoi(n!) === null) return sendError(c, 400, `invalid seconds: ${syntax('ParseInt', n!)}`);
      c.res.setHeader('Cache-Control', `public, max-age=${Number(n)}`);
      sendJSON(c, 200, noBodyEcho(c));
    },
  },
  { pattern: /^\/gzip$/, handle: (c) => compressed(c, 'gzip') },
  { pattern: /^\/deflate$/, handle: (c) => compressed(c, 'deflate') },
  { pattern: /^\/base64\/([^/]+)$/, handle: (c, [data]) => base64(c, 'decode', data!) },
  { pattern: /^\/base64\/([^/]+)\/([^/]+)$/, handle: (c, [op, data]) => base64(c, op!, data!) },
  { pattern: /^\/html$/, handle: (c) => send(c, 200, HTML_TYPE, MOBY) },
  { pattern: /^\/json$/, handle: (c) => send(c, 200, JSON_TYPE, SAMPLE_JSON) },
  { pattern: /^\/xml$/, handle: (c) => send(c, 200, 'application/xml', SAMPLE_XML) },
  { pattern: /^\/robots\.txt$/, handle: (c) => send(c, 200, TEXT_TYPE, 'User-agent: *\nDisallow: /deny\n') },
  { pattern: /^\/deny$/, handle: (c) => send(c, 200, TEXT_TYPE, "YOU SHOULDN'T BE HERE") },
  { pattern: /^\/unstable$/, handle: unstable },
];

/** Go's ServeMux cleanPath (such requests are redirected with 307): no `.`/`..` segments or repeated slashes; a trailing slash is kept. */
function cleanPath(p: string): string {
  const out: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  const clean = `/${out.join('/')}`;
  return p.endsWith('/') && clean !== '/' ? `${clean}/` : clean;
}

function plain(c: Ctx, status: number, text: string) {
  c.res.setHeader('X-Content-Type-Options', 'nosniff');
  send(c, status, TEXT_TYPE, `${text}\n`);
}

async function dispatch(c: Ctx) {
  const { req, res } = c;
  // go-httpbin's CORS middleware runs first, for every request
  res.setHeader('Access-Control-Allow-Origin', header(req, 'origin') || '*');
  res.setHeader('Access-Control-Allow-Credentials', 'true');
  if (c.method === 'OPTIONS') {
    req.resume();
    res.setHeader('Access-Control-Allow-Methods', 'GET, POST, HEAD, PUT, DELETE, PATCH, QUERY, OPTIONS');
    res.setHeader('Access-Control-Max-Age', '3600');
    const requested = header(req, 'access-control-request-headers');
    if (requested) res.setHeader('Access-Control-Allow-Headers', requested);
    return send(c, 200, null);
  }
  const clean = cleanPath(c.path);
  if (clean !== c.path) {
    req.resume();
    const location = clean + c.target.slice(c.path.length);
    res.setHeader('Location', location);
    // http.Redirect: an HTML note for GET and HEAD only
    const page = c.method === 'GET' || c.method === 'HEAD';
    return send(
      c,
      307,
      page ? HTML_TYPE : null,
      page ? `<a href="${htmlEscape(location)}">Temporary Redirect</a>.\n\n` : '',
    );
  }
  const allowed = new Set<string>();
  for (const route of ROUTES) {
    const m = route.pattern.exec(c.path);
    if (!m) continue;
    if (route.methods && !route.methods.includes(c.method)) {
      for (const method of route.methods) allowed.add(method);
      continue;
    }
    const params: string[] = [];
    for (const raw of m.slice(1)) {
      const v = percentDecode(raw ?? '', false);
      if (v === null) {
        req.resume();
        return sendError(c, 400, `invalid URL escape in path`);
      }
      params.push(v);
    }
    if (!route.body) req.resume();
    return route.handle(c, params);
  }
  req.resume();
  if (allowed.size > 0) {
    res.setHeader('Allow', [...allowed].sort().join(', '));
    return plain(c, 405, 'Method Not Allowed');
  }
  plain(c, 404, '404 page not found');
}

function context(req: Req, res: Res, maxBody: number): Ctx {
  const raw = req.url ?? '/';
  let target = raw;
  let host = header(req, 'host');
  const absolute = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/([^/?#]*)(.*)$/s.exec(raw);
  if (absolute) {
    host = absolute[1]!;
    target = absolute[2]!.startsWith('/') ? absolute[2]! : `/${absolute[2]!}`;
  }
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  const rawQuery = q < 0 ? '' : target.slice(q + 1);
  const args = parseQuery(rawQuery).values;
  const query = new URLSearchParams();
  for (const [k, vs] of Object.entries(args)) for (const v of vs) query.append(k, v);
  return { req, res, method: req.method ?? 'GET', path, target, host, args, query, maxBody };
}

export function createHttpbinHandler(opts: HttpbinOptions = {}): HttpbinHandler {
  const maxBody = opts.maxBodySize ?? DEFAULT_MAX_BODY_SIZE;
  return (req, res) => {
    const c = context(req, res, maxBody);
    dispatch(c).catch((err: unknown) => {
      if (!res.headersSent) sendError(c, 500, (err as Error).message);
      else res.destroy(err as Error);
    });
  };
}

export interface RunningHttpbin {
  server: http.Server;
  url: string;
  port: number;
  close(): Promise<void>;
}

export function startHttpbin(opts: { host?: string; port?: number } & HttpbinOptions = {}): Promise<RunningHttpbin> {
  const host = opts.host ?? '127.0.0.1';
  const server = http.createServer({ keepAliveTimeout: 65_000 }, createHttpbinHandler(opts));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
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
