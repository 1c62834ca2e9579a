// Downstream limits and request-head strictness: what Envoy's edge best practices configure
// (https://www.envoyproxy.io/docs/envoy/latest/configuration/best_practices/edge), as defaults
// that every listener applies, and the checks Node's HTTP/1 parser (llhttp) leaves to us.
//
// llhttp already refuses (400, before a request exists) CL+TE together, repeated or malformed
// Content-Length, obs-fold, bare LF, NUL/CR in values, invalid names, bad chunk sizes and chunk
// extensions. It lets through what `checkRequestHead` refuses here: two Host headers, a missing
// Host on HTTP/1.1, a Host that is not `host[:port]`, Transfer-Encoding other than exactly
// `chunked` (`,chunked`, `gzip, chunked`), Transfer-Encoding on HTTP/1.0, a Content-Length above
// 2^53-1, duplicate Authorization, underscores in header names (per policy) and more headers than
// the count limit (Node's own maxHeadersCount silently drops the rest, which can hide a
// Content-Length, CVE-2026-58044).
import type http from 'node:http';
import type http2 from 'node:http2';
import { parseDurationMs } from '../config/duration.ts';
import { parseByteSize } from '../wasm/runtime/limits.ts';

/** What to do with a request header whose name has an underscore (Envoy's headers_with_underscores_action). */
export type UnderscoreAction = 'allow' | 'drop' | 'reject';

export interface ListenerLimits {
  /** Request line plus headers, bytes (Envoy max_request_headers_kb: 60 KiB). Over it: 431. */
  maxRequestHeadersBytes: number;
  /** Request header lines (Envoy max_headers_count: 100). Over it: 431. */
  maxRequestHeadersCount: number;
  /** From the connection's first byte (or the previous response) to the end of the request headers; 408. */
  headersTimeoutMs: number;
  /** The whole request, headers and body, must arrive within this (Envoy edge request_timeout 300 s); 408. */
  requestTimeoutMs: number;
  /** A keep-alive connection with no request in flight is closed after this (HTTP/2: no stream for this long). */
  idleTimeoutMs: number;
  /** A request body that makes no progress for this long is answered 408 (Envoy edge stream_idle_timeout 300 s). */
  streamIdleTimeoutMs: number;
  /** Open downstream connections per listener and worker; more are closed on accept (0: no cap). */
  maxConnections: number;
  /** Socket read and write buffers per connection, bytes (Envoy edge per_connection_buffer_limit_bytes 32 KiB). */
  perConnectionBufferLimitBytes: number;
  /** Request bodies larger than this get 413: at once when Content-Length says so (0: no cap). */
  maxRequestBodyBytes: number;
  /** Underscores in request header names (Envoy edge: REJECT_REQUEST). */
  headersWithUnderscores: UnderscoreAction;
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS (Envoy edge: 100). */
  h2MaxConcurrentStreams: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;

/** The edge defaults (docs/security.md says what each one defends). */
export const DEFAULT_LIMITS: Readonly<ListenerLimits> = Object.freeze({
  maxRequestHeadersBytes: 60 * KiB,
  maxRequestHeadersCount: 100,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 300_000,
  idleTimeoutMs: 60_000,
  streamIdleTimeoutMs: 300_000,
  maxConnections: 10_000,
  perConnectionBufferLimitBytes: 32 * KiB,
  maxRequestBodyBytes: 1024 * MiB,
  headersWithUnderscores: 'reject',
  h2MaxConcurrentStreams: 100,
});

/** Envoy edge: HTTP/2 stream and connection flow-control windows. */
export const H2_INITIAL_STREAM_WINDOW = 64 * KiB - 1;
export const H2_CONNECTION_WINDOW = 1 * MiB;

/** The command-line flags of these limits, with the field each sets and how its value is read. */
export const LIMIT_FLAGS = {
  'max-request-headers-size': { field: 'maxRequestHeadersBytes', kind: 'size' },
  'max-request-headers-count': { field: 'maxRequestHeadersCount', kind: 'count' },
  'headers-timeout': { field: 'headersTimeoutMs', kind: 'duration' },
  'request-timeout': { field: 'requestTimeoutMs', kind: 'duration' },
  'idle-timeout': { field: 'idleTimeoutMs', kind: 'duration' },
  'stream-idle-timeout': { field: 'streamIdleTimeoutMs', kind: 'duration' },
  'max-connections': { field: 'maxConnections', kind: 'count' },
  'per-connection-buffer-limit': { field: 'perConnectionBufferLimitBytes', kind: 'size' },
  'max-request-body-size': { field: 'maxRequestBodyBytes', kind: 'size' },
  'headers-with-underscores': { field: 'headersWithUnderscores', kind: 'underscore' },
  'h2-max-concurrent-streams': { field: 'h2MaxConcurrentStreams', kind: 'count' },
} as const;

export type LimitFlag = keyof typeof LIMIT_FLAGS;

/**
 * Reads the limit flags (values as given on the command line; absent ones keep their default).
 * `--max-connections` is for the whole proxy: each of `workers` listeners gets its share.
 * Throws an Error naming the flag when a value is not understood.
 */
export function limitsFromFlags(values: Partial<Record<LimitFlag, string>>, workers = 1): ListenerLimits {
  const out: ListenerLimits = { ...DEFAULT_LIMITS };
  for (const [flag, { field, kind }] of Object.entries(LIMIT_FLAGS) as [LimitFlag, (typeof LIMIT_FLAGS)[LimitFlag]][]) {
    const raw = values[flag];
    if (raw === undefined) continue;
    const target = out as unknown as Record<string, number | string>;
    if (kind === 'underscore') {
      if (raw !== 'allow' && raw !== 'drop' && raw !== 'reject')
        throw new Error(`--${flag}: expected allow, drop or reject, got "${raw}"`);
      target[field] = raw;
    } else if (kind === 'duration') {
      const ms = parseDurationMs(raw);
      if (ms === undefined || ms < 0 || !Number.isFinite(ms))
        throw new Error(`--${flag}: expected a duration such as 10s or 500ms (0: none), got "${raw}"`);
      target[field] = Math.ceil(ms);
    } else if (kind === 'size') {
      const n = parseByteSize(raw);
      if (n === undefined || n < 0) throw new Error(`--${flag}: expected a size such as 60Ki or 1Mi, got "${raw}"`);
      target[field] = n;
    } else {
      const n = Number(raw);
      if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n))
        throw new Error(`--${flag}: expected a whole number (0 or more), got "${raw}"`);
      target[field] = n;
    }
  }
  if (out.maxRequestHeadersBytes < 1024)
    throw new Error(`--max-request-headers-size: at least 1Ki, got ${out.maxRequestHeadersBytes}`);
  if (out.maxRequestHeadersCount < 1) throw new Error('--max-request-headers-count: at least 1');
  if (out.perConnectionBufferLimitBytes < 1024)
    throw new Error(`--per-connection-buffer-limit: at least 1Ki, got ${out.perConnectionBufferLimitBytes}`);
  if (out.h2MaxConcurrentStreams < 1) throw new Error('--h2-max-concurrent-streams: at least 1');
  if (out.requestTimeoutMs > 0 && out.headersTimeoutMs > out.requestTimeoutMs)
    throw new Error('--headers-timeout: must not be longer than --request-timeout');
  if (out.maxConnections > 0 && workers > 1) out.maxConnections = Math.ceil(out.maxConnections / workers);
  return out;
}

/** The complete limits for a listener: defaults for anything not given. */
export function resolveLimits(limits: Partial<ListenerLimits> | undefined): ListenerLimits {
  return { ...DEFAULT_LIMITS, ...limits };
}

/** A refusal: the status, Envoy's response_code_details, and whether it is a protocol error (flag DPE). */
export interface Rejection {
  status: number;
  details: string;
  body: string;
}

const reject = (
  status: number,
  details: string,
  body = status === 431 ? 'Request Header Fields Too Large' : 'Bad Request',
): Rejection => ({
  status,
  details,
  body,
});

/** host[:port]: a reg-name (RFC 3986 unreserved and sub-delims, no "@") or an IP literal. */
const HOST = /^(?:\[[0-9A-Fa-f:.]+(?:%25[A-Za-z0-9._~-]+)?\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::\d{1,5})?$/;
/** Header names allowed once only: a second one could make authn or authz and the upstream disagree. */
const SINGLETONS = new Set(['host', 'authorization', 'content-length', 'transfer-encoding']);
/** A Content-Length value: digits (llhttp refused the other forms before we get here). */
const DIGITS = /^\d+$/;

/** Whether `host` is a valid Host / :authority value (host[:port]). */
export function validAuthority(host: string): boolean {
  return HOST.test(host);
}

/**
 * The checks llhttp does not do, on a request head that Node parsed. Returns the rejection, or
 * undefined when the request may go on. `underscoreNames` collects names to drop (policy `drop`).
 */
export function checkRequestHead(
  req: http.IncomingMessage | http2.Http2ServerRequest,
  limits: ListenerLimits,
  h2: boolean,
): Rejection | undefined {
  const raw = req.rawHeaders;
  const count = raw.length / 2;
  if (count > limits.maxRequestHeadersCount) return reject(431, 'http1.too_many_headers');
  const seen = new Map<string, number>();
  const te: string[] = [];
  let contentLength: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name[0] === ':') continue;
    const n = (seen.get(name) ?? 0) + 1;
    seen.set(name, n);
    if (n > 1 && SINGLETONS.has(name)) return reject(400, `http1.duplicate_${name.replaceAll('-', '_')}`);
    if (name === 'transfer-encoding') te.push(raw[i + 1]!);
    else if (name === 'content-length') contentLength = raw[i + 1]!;
    if (limits.headersWithUnderscores === 'reject' && name.includes('_'))
      return reject(400, h2 ? 'http2.unexpected_underscore' : 'http1.unexpected_underscore');
  }
  // A dot segment with matrix parameters (`/public/..;/admin`) is "..": Tomcat and others climb
  // with it, after authz matched the path as written (CVE-2026-73511 class).
  const target = h2 ? ((req.headers[':path'] as string | undefined) ?? '') : (req.url ?? '');
  if (/(?:^|\/)(?:\.|%2e){1,2};/i.test(target.split('?')[0]!))
    return reject(400, 'path_normalization_failed{dot segment with parameters}');
  if (h2) return undefined;
  if (req.httpVersion === '1.1' && !seen.has('host')) return reject(400, 'http1.missing_host_header');
  const host = req.headers.host;
  if (host !== undefined && !validAuthority(host)) return reject(400, 'http1.invalid_host_header');
  if (te.length > 0) {
    if (req.httpVersion !== '1.1') return reject(400, 'http1.transfer_encoding_not_allowed');
    // Envoy answers 501 for a transfer coding other than exactly "chunked".
    if (te[0]!.trim().toLowerCase() !== 'chunked')
      return reject(501, 'http1.invalid_transfer_encoding', 'Not Implemented');
    if (contentLength !== undefined) return reject(400, 'http1.content_length_and_chunked_not_allowed');
  }
  if (contentLength !== undefined) {
    const v = contentLength.trim();
    if (!DIGITS.test(v) || !Number.isSafeInteger(Number(v))) return reject(400, 'http1.invalid_content_length');
  }
  return undefined;
}

/** The request's declared body length (Content-Length), or undefined when there is none. */
export function declaredLength(req: http.IncomingMessage | http2.Http2ServerRequest): number | undefined {
  const cl = req.headers['content-length'];
  return cl === undefined ? undefined : Number(cl);
}

/** What to answer when Node's HTTP/1 parser refused the bytes (its clientError). */
export function parserRejection(err: NodeJS.ErrnoException): Rejection {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return reject(431, 'http1.headers_too_large');
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return reject(408, 'request_header_timeout', 'Request Timeout');
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return reject(413, 'http1.chunk_extensions_too_large', 'Payload Too Large');
    default:
      return reject(400, `http1.codec_error{${(err.code ?? 'unknown').replace(/[^A-Z0-9_]/gi, '')}}`);
  }
}
