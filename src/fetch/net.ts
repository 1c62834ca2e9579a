// What every module download shares: the address guard Istio applies at dial time (link-local and
// cloud metadata addresses are refused, plus BLOCKED_CIDRS_IN_WASM_FETCH), one GET with a size
// cap, a timeout and manual redirects (Authorization dropped across origins), and URL redaction.
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { Agent, request } from 'undici';

/** ISTIO_WASM_MAX_BINARY_SIZE_BYTES: 256 MiB unless the environment says otherwise. */
export const DEFAULT_MAX_BYTES = positiveInt(process.env.ISTIO_WASM_MAX_BINARY_SIZE_BYTES) ?? 256 * 1024 * 1024;
/** Istio's HTTPRequestTimeout. */
export const DEFAULT_TIMEOUT_MS = 15_000;

function positiveInt(v: string | undefined): number | undefined {
  const n = Number(v);
  return v && Number.isInteger(n) && n > 0 ? n : undefined;
}

/** A failure that retrying cannot fix (refused address, 4xx, bad digest, too large). */
export class PermanentError extends Error {}

/** A non-2xx answer, kept for callers that look at the status (401 challenges, 404, 5xx retries). */
export class HttpStatusError extends Error {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  constructor(status: number, headers: Record<string, string | string[] | undefined>, message: string) {
    super(message);
    this.status = status;
    this.headers = headers;
  }
}

const METADATA_HOSTS = new Set(['metadata.google.internal', 'metadata.google.internal.', 'metadata', 'instance-data']);

function blockList(): { list: BlockList; cidrs: string[] } {
  const list = new BlockList();
  list.addSubnet('169.254.0.0', 16, 'ipv4'); // link-local, incl. 169.254.169.254 (AWS, GCP, Azure, ...)
  list.addSubnet('fe80::', 10, 'ipv6'); // link-local
  list.addAddress('100.100.100.200', 'ipv4'); // Alibaba Cloud metadata
  list.addSubnet('fd00:ec2::', 32, 'ipv6'); // AWS IMDS over IPv6 (fd00:ec2::254)
  const cidrs: string[] = [];
  for (const raw of (process.env.BLOCKED_CIDRS_IN_WASM_FETCH ?? '').split(',')) {
    const cidr = raw.trim();
    const m = /^([^/]+)\/(\d+)$/.exec(cidr);
    const type = m ? isIP(m[1]!) : 0;
    if (!m || type === 0) continue;
    list.addSubnet(m[1]!, Number(m[2]), type === 4 ? 'ipv4' : 'ipv6');
    cidrs.push(cidr);
  }
  return { list, cidrs };
}

const BLOCKED = blockList();

/** Why connecting to `ip` is refused, or undefined when it is allowed. */
export function blockedReason(ip: string): string | undefined {
  const type = isIP(ip);
  if (type === 0) return undefined;
  if (!BLOCKED.list.check(ip, type === 4 ? 'ipv4' : 'ipv6')) return undefined;
  return `connection blocked: ${ip} is a link-local or cloud metadata address${BLOCKED.cidrs.length ? ' (or in BLOCKED_CIDRS_IN_WASM_FETCH)' : ''}`;
}

/** Throws when `hostname` (an IP literal or a known metadata name) may not be fetched from. */
export function checkHost(hostname: string): void {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (METADATA_HOSTS.has(host)) throw new PermanentError(`connection blocked: ${host} is a cloud metadata host`);
  const reason = blockedReason(host);
  if (reason) throw new PermanentError(reason);
}

/** 127.0.0.0/8, ::1 and localhost: registries there are reached over plain HTTP. */
export function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1' || host === '0:0:0:0:0:0:0:1' || /^::ffff:127\./.test(host);
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** dns.lookup that refuses blocked addresses: every connection (redirects, token realms) goes through it. */
function guardedLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
  dnsLookup(hostname, { ...options }, (err, address, family) => {
    if (err) return callback(err, '');
    const all: LookupAddress[] = Array.isArray(address) ? address : [{ address, family: family ?? 4 }];
    for (const a of all) {
      const reason = blockedReason(a.address);
      if (reason)
        return callback(Object.assign(new PermanentError(`${hostname}: ${reason}`), { code: 'EBLOCKED' }), '');
    }
    callback(null, address as string | LookupAddress[], family);
  });
}

/** A connection pool whose every connection goes through the address guard; close it when done. */
export function guardedAgent(): Agent {
  return new Agent({ connect: { lookup: guardedLookup as never }, keepAliveTimeout: 1000 });
}

/** The URL as it may be shown in logs, errors and the admin API: user:password@ replaced by ***@. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, '$1***@');
}

export interface GetOptions {
  /** From guardedAgent(); the caller closes it. */
  agent: Agent;
  headers?: Record<string, string>;
  method?: 'GET' | 'POST';
  body?: string;
  maxBytes: number;
  timeoutMs: number;
  /** Redirects followed (Authorization and cookies are dropped when the origin changes). */
  maxRedirects?: number;
}

export interface GetResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** The URL that answered, after redirects. */
  url: string;
}

export function header(headers: GetResult['headers'], name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

/** One request with redirects, a timeout and a body cap; non-2xx answers are returned, not thrown. */
export async function httpRequest(url: string, options: GetOptions): Promise<GetResult> {
  let current = new URL(url);
  let headers = { ...options.headers };
  const signal = AbortSignal.timeout(options.timeoutMs);
  for (let hop = 0; ; hop++) {
    if (current.protocol !== 'http:' && current.protocol !== 'https:')
      throw new PermanentError(`unsupported redirect to ${current.protocol}`);
    checkHost(current.hostname);
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(current, {
        method: options.method ?? 'GET',
        headers,
        body: options.body,
        dispatcher: options.agent,
        signal,
        headersTimeout: options.timeoutMs,
        bodyTimeout: options.timeoutMs,
      });
    } catch (err) {
      throw networkError(err, signal, options.timeoutMs);
    }
    const status = res.statusCode;
    if (status >= 300 && status < 400 && status !== 304 && res.headers.location) {
      await res.body.dump().catch(() => {});
      if (hop >= (options.maxRedirects ?? 5)) throw new PermanentError(`too many redirects`);
      const next = new URL(String(res.headers.location), current);
      if (next.origin !== current.origin) {
        const { authorization: _a, cookie: _c, ...rest } = headers;
        headers = rest;
      }
      current = next;
      continue;
    }
    const length = Number(header(res.headers, 'content-length'));
    if (Number.isFinite(length) && length > options.maxBytes) {
      res.body.destroy();
      throw new PermanentError(`response of ${length} bytes exceeds the limit of ${options.maxBytes} bytes`);
    }
    const chunks: Buffer[] = [];
    let total = 0;
    try {
      for await (const chunk of res.body) {
        total += (chunk as Buffer).length;
        if (total > options.maxBytes) {
          res.body.destroy();
          throw new PermanentError(`response exceeds the limit of ${options.maxBytes} bytes`);
        }
        chunks.push(chunk as Buffer);
      }
    } catch (err) {
      if (err instanceof PermanentError) throw err;
      throw networkError(err, signal, options.timeoutMs);
    }
    return { status, headers: res.headers, body: Buffer.concat(chunks), url: current.href };
  }
}

function networkError(err: unknown, signal: AbortSignal, timeoutMs: number): Error {
  if (err instanceof PermanentError) return err;
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  if (e.code === 'EBLOCKED' || e.cause?.code === 'EBLOCKED') return new PermanentError((e.cause ?? e).message);
  if (signal.aborted) return new Error(`timed out after ${timeoutMs} ms`);
  const code = e.code ?? e.cause?.code;
  return new Error(code ? `${code} ${e.message.includes(code) ? '' : e.message}`.trim() : e.message);
}

/** Exponential backoff with a little jitter. */
export function backoff(base: number, attempt: number): Promise<void> {
  const ms = base * 2 ** attempt * (0.9 + Math.random() * 0.2);
  return new Promise((r) => setTimeout(r, ms));
}
