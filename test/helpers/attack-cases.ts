// The attack checklist (operators.md C.5) as one table of raw requests, shared by every target
// that runs it (test/e2e/hardening-naive.test.ts runs it against wasmgate and against the naive
// http-proxy-3 setup of test/helpers/naive-proxy.ts), so the cases cannot drift between targets.
//
// Each case has raw request bytes (one or more variants), wasmgate's answer, and the security
// property the checklist item defends, written as a function that returns what went wrong (or
// undefined) from the answer and what a recording upstream received. Both targets sit in front
// of the same recording upstream and refuse /admin*: wasmgate with an AuthorizationPolicy, the
// naive proxy with `req.url.startsWith('/admin')`. `naive` records what the naive setup was
// found to do (run the test to check it); docs/security.md lists it.
import {
  type RawResponse,
  type RecordingUpstream,
  rawRequest,
  type SeenHead,
  type SeenRequest,
  startRecordingUpstream,
} from '../e2e/hardening-helpers.ts';

/** What one request variant produced: the answer, and what the upstream received for it. */
export interface Outcome extends RawResponse {
  /** Complete requests the upstream received. */
  seen: SeenRequest[];
  /** Request heads the upstream received (also those whose body never completed). */
  heads: SeenHead[];
  /** No answer at all within the case's timeout. */
  silent: boolean;
}

export interface AttackCase {
  /** Checklist item, e.g. "#12". */
  item: string;
  title: string;
  /** Raw request bytes, one connection each; the property must hold for every one. */
  requests: string[];
  /** wasmgate's status for every variant (the checklist's answer). */
  wasmgate: number;
  /** What went wrong against the property, undefined when it held. */
  violation: (o: Outcome) => string | undefined;
  /** What the naive http-proxy-3 setup does, found by running this table against it. */
  naive: 'violates' | 'holds';
  /** One line for the docs table: how the naive setup gets it wrong, or why it holds. */
  naiveNote: string;
  /** How long to wait for an answer (default 3000 ms). */
  timeoutMs?: number;
}

const H = 'Host: a\r\n';

/** The path prefix both targets refuse. */
export const DENIED_PREFIX = '/admin';

/**
 * How a typical backend resolves a request-target: query and fragment cut, percent-decoded once
 * (%2F and %5C become separators, as in servers that decode before routing), `\` as `/`,
 * matrix parameters cut from each segment (Tomcat: `..;` is `..`), empty segments merged, dot
 * segments removed.
 */
export function backendPath(target: string): string {
  let p = target.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/]*/i, '').split(/[?#]/)[0] ?? '';
  try {
    p = decodeURIComponent(p);
  } catch {
    // not decodable: taken as written
  }
  const out: string[] = [];
  for (const raw of p.replace(/\\/g, '/').split('/')) {
    const seg = raw.split(';')[0]!;
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  return `/${out.join('/')}`;
}

function names(s: SeenRequest): string[] {
  return s.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
}

function header(s: SeenRequest, name: string): string | undefined {
  for (let i = 0; i < s.rawHeaders.length; i += 2)
    if (s.rawHeaders[i]!.toLowerCase() === name) return s.rawHeaders[i + 1];
  return undefined;
}

function describe(s: SeenRequest): string {
  return `${s.method} ${s.url}`;
}

/** The request must be refused: no complete request reaches the upstream. */
const notForwarded = (o: Outcome) =>
  o.seen.length > 0 ? `forwarded: the upstream received ${o.seen.map(describe).join(', ')}` : undefined;

/** Not even the head reaches the upstream. */
const headNotForwarded = (o: Outcome) =>
  o.heads.length > 0
    ? `the upstream received the head of ${o.heads.map((h) => `${h.method} ${h.url}`).join(', ')}`
    : undefined;

/** No request the upstream received resolves to a denied path. */
const noDeniedPath = (o: Outcome) => {
  const hit = o.seen.find((s) => backendPath(s.url).startsWith(DENIED_PREFIX));
  return hit ? `policy bypassed: the upstream received ${describe(hit)} (${backendPath(hit.url)})` : undefined;
};

/** None of `list` (lower case) reaches the upstream. */
const noHeaders =
  (...list: string[]) =>
  (o: Outcome) => {
    const got = o.seen.flatMap((s) => names(s).filter((n) => list.includes(n)));
    return got.length > 0 ? `the upstream received ${[...new Set(got)].join(', ')}` : undefined;
  };

/** Chunked bodies with bad chunk syntax: 0x5, +5, " 5", 5Z, bare LF or CR terminators, CR in an extension. */
export const BAD_CHUNK_BODIES = [
  '0x5\r\nhello\r\n0\r\n\r\n',
  '+5\r\nhello\r\n0\r\n\r\n',
  ' 5\r\nhello\r\n0\r\n\r\n',
  '5Z\r\nhello\r\n0\r\n\r\n',
  '5\nhello\n0\n\n',
  '5\rhello\r0\r\r',
  '5;a=b\rc\r\nhello\r\n0\r\n\r\n',
];

const chunked = (body: string) => `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;
const SMUGGLED = `GET /admin HTTP/1.1\r\n${H}\r\n`;

export const ATTACK_CASES: AttackCase[] = [
  // ---- HTTP/1 framing and smuggling ----
  {
    item: '#1',
    title: 'Content-Length with Transfer-Encoding: chunked',
    requests: [
      `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n`,
    ],
    wasmgate: 400,
    violation: notForwarded,
    naive: 'holds',
    naiveNote: "Node's parser (llhttp, strict) answers 400",
  },
  {
    item: '#2',
    title: 'two different Content-Lengths, "5, 6"',
    requests: [
      `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`,
      `POST / HTTP/1.1\r\n${H}Content-Length: 5, 6\r\n\r\nhello!`,
    ],
    wasmgate: 400,
    violation: notForwarded,
    naive: 'holds',
    naiveNote: "Node's parser answers 400",
  },
  {
    item: '#3',
    title: 'duplicate identical Content-Length, "5, 5"',
    requests: [
      `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello`,
      `POST / HTTP/1.1\r\n${H}Content-Length: 5, 5\r\n\r\nhello`,
    ],
    wasmgate: 400,
    violation: notForwarded,
    naive: 'holds',
    naiveNote: "Node's parser answers 400",
  },
  {
    item: '#4',
    title: 'malformed Content-Length (+5, -5, 0x5, 1Z, empty, VT)',
    requests: ['+5', '-5', '0x5', '1Z', '', '\x0b5'].map(
      (v) => `POST / HTTP/1.1\r\n${H}Content-Length: ${v}\r\n\r\nhello`,
    ),
    wasmgate: 400,
    violation: notForwarded,
    naive: 'holds',
    naiveNote: "Node's parser answers 400",
  },
  {
    item: '#4',
    title: 'Content-Length over 2^53-1 (9007199254740993)',
    requests: [`POST / HTTP/1.1\r\n${H}Content-Length: 9007199254740993\r\n\r\nhello`],
    wasmgate: 400,
    violation: headNotForwarded,
    naive: 'violates',
    naiveNote:
      'Node accepts it (llhttp reads 64 bits) and the head goes upstream as written, where JavaScript would read 9007199254740992',
    timeoutMs: 1500,
  },
  {
    item: '#5',
    title: 'Transfer-Encoding other than exactly "chunked" (xchunked, ",chunked", "gzip, chunked")',
    requests: ['xchunked', ',chunked', 'gzip, chunked'].map(
      (v) => `POST / HTTP/1.1\r\n${H}Transfer-Encoding: ${v}\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    ),
    wasmgate: 501,
    violation: notForwarded,
    naive: 'violates',
    naiveNote:
      'Node reads `,chunked` and `gzip, chunked` as chunked, and the header goes upstream as written: an upstream that reads it otherwise is desynchronized (TE.TE). `xchunked` gets 400',
  },
  {
    item: '#5',
    title: 'Transfer-Encoding "chunked, identity", repeated, or with a space before the colon',
    requests: [
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`,
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n`,
    ],
    wasmgate: 400,
    violation: notForwarded,
    naive: 'holds',
    naiveNote: "Node's parser answers 400",
  },
  {
    item: '#6',
    title: 'Transfer-Encoding on HTTP/1.0',
    requests: [`POST / HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`],
    wasmgate: 400,
    violation: notForwarded,
    naive: 'violates',
    naiveNote: 'Node reads the HTTP/1.0 body as chunked; it is forwarded as an HTTP/1.1 chunked request',
  },
  {
    item: '#7',
    title: 'bad chunk syntax (0x5, +5, " 5", 5Z, bare LF or CR, CR in an extension)',
    requests: BAD_CHUNK_BODIES.map((body) => `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${body}`),
    wasmgate: 400,
    violation: notForwarded,
    naive: 'holds',
    naiveNote: "Node's parser answers 400",
  },
  {
    item: '#8-#11',
    title: 'space before a colon, obs-fold, bare LF, NUL/CR in a value, bad name bytes, no colon',
    requests: [
      `POST / HTTP/1.1\r\n${H}Content-Length : 5\r\n\r\nhello`,
      'GET / HTTP/1.1\r\n\tHost: a\r\n\r\n',
      `GET / HTTP/1.1\r\n${H}X-A: b\r\n c\r\n\r\n`,
      'GET / HTTP/1.1\nHost: a\nX-A: b\n\n',
      `GET / HTTP/1.1\r\n${H}X-A: b\n\r\n`,
      `GET / HTTP/1.1\r\n${H}X-A: b\x00c\r\n\r\n`,
      `GET / HTTP/1.1\r\n${H}X-A: b\rc\r\n\r\n`,
      `GET / HTTP/1.1\r\n${H}X-(: b\r\n\r\n`,
      `GET / HTTP/1.1\r\n${H}User Agent: b\r\n\r\n`,
      `GET / HTTP/1.1\r\n${H}: x\r\n\r\n`,
      `GET / HTTP/1.1\r\n${H}xyz\r\n\r\n`,
    ],
    wasmgate: 400,
    violation: notForwarded,
    naive: 'holds',
    naiveNote: "Node's parser answers 400",
  },
  {
    item: '#12',
    title: 'DELETE / OPTIONS with a chunked body that looks like a request',
    requests: ['DELETE', 'OPTIONS'].map(
      (m) => `${m} /anything HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${chunked(SMUGGLED)}`,
    ),
    wasmgate: 200,
    violation: (o) => {
      const bypass = noDeniedPath(o);
      if (bypass) return `smuggled: ${bypass}`;
      const req = o.seen.find((s) => s.method === 'DELETE' || s.method === 'OPTIONS');
      if (!req) return 'the request never reached the upstream';
      if (req.body !== SMUGGLED)
        return `body mis-framed: the upstream got Content-Length ${header(req, 'content-length')} and body ${JSON.stringify(req.body)}`;
      return undefined;
    },
    naive: 'violates',
    naiveNote:
      'http-proxy-3 gives a DELETE or OPTIONS without Content-Length `Content-Length: 0`, drops Transfer-Encoding, then writes the body anyway: the upstream reads it as a second request, `GET /admin`, past the /admin rule',
  },
  {
    item: '#13',
    title: 'GET with a Content-Length body',
    requests: [`GET /anything HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhello`],
    wasmgate: 200,
    violation: (o) =>
      o.seen.length === 1 && o.seen[0]!.body === 'hello' && header(o.seen[0]!, 'content-length') === '5'
        ? undefined
        : `the upstream received ${JSON.stringify(o.seen.map((s) => [describe(s), s.body]))}`,
    naive: 'holds',
    naiveNote: 'forwarded with Content-Length 5 and the body',
  },
  {
    item: '#14',
    title: 'CL.TE, TE.CL and TE.TE smuggling payloads',
    requests: [
      `POST / HTTP/1.1\r\n${H}Content-Length: ${5 + SMUGGLED.length}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
      `POST / HTTP/1.1\r\n${H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(SMUGGLED)}`,
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n${chunked(SMUGGLED)}`,
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: ,chunked\r\nContent-Length: 4\r\n\r\n${chunked(SMUGGLED)}`,
    ],
    wasmgate: 400,
    violation: (o) => noDeniedPath(o) ?? notForwarded(o),
    naive: 'holds',
    naiveNote: "Node's parser answers 400",
  },
  // ---- Host and request-target ----
  {
    item: '#15',
    title: 'two Host headers',
    requests: ['GET /anything HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'],
    wasmgate: 400,
    violation: notForwarded,
    naive: 'violates',
    naiveNote: 'forwarded, with the first Host only',
  },
  {
    item: '#15',
    title: 'no Host on HTTP/1.1',
    requests: ['GET /anything HTTP/1.1\r\n\r\n'],
    wasmgate: 400,
    violation: notForwarded,
    naive: 'holds',
    naiveNote: 'Node answers 400 (`requireHostHeader`)',
  },
  {
    item: '#15',
    title: 'a Host that is not host[:port] ("a b", "a@b", "a/b")',
    requests: ['a b', 'a@b', 'a/b'].map((h) => `GET /anything HTTP/1.1\r\nHost: ${h}\r\n\r\n`),
    wasmgate: 400,
    violation: notForwarded,
    naive: 'violates',
    naiveNote: 'forwarded as written',
  },
  {
    item: '#16',
    title: 'absolute-form target to a denied path (GET http://good.example/admin)',
    requests: [`GET http://good.example/admin HTTP/1.1\r\n${H}\r\n`],
    wasmgate: 403,
    violation: noDeniedPath,
    naive: 'violates',
    naiveNote:
      'the rule sees `http://good.example/admin` in `req.url` and lets it pass; http-proxy-3 forwards its path, /admin',
  },
  {
    item: '#17',
    title: '"#" in the target',
    requests: [`GET /anything#x HTTP/1.1\r\n${H}\r\n`],
    wasmgate: 400,
    violation: (o) => {
      const hit = o.seen.find((s) => s.url.includes('#'));
      return hit ? `the upstream received ${describe(hit)}` : undefined;
    },
    naive: 'holds',
    naiveNote: 'http-proxy-3 parses the target as a WHATWG URL, which cuts the fragment',
  },
  {
    item: '#19',
    title: 'dot segments and double slashes to a denied path',
    requests: ['/public/../admin', '/./admin', '//admin', '/public/%2e%2e/admin', '/a/b/../../admin'].map(
      (p) => `GET ${p} HTTP/1.1\r\n${H}\r\n`,
    ),
    wasmgate: 403,
    violation: noDeniedPath,
    naive: 'violates',
    naiveNote:
      'the rule sees the raw target; http-proxy-3 then resolves dot segments (WHATWG URL) and forwards /admin; `//admin` is forwarded as is',
  },
  {
    item: '#20',
    title: 'escaped slashes %2F and %5C',
    requests: ['/public%2F..%2Fadmin', '/public%2f..%2fadmin', '/public%5C..%5Cadmin'].map(
      (p) => `GET ${p} HTTP/1.1\r\n${H}\r\n`,
    ),
    wasmgate: 400,
    violation: noDeniedPath,
    naive: 'violates',
    naiveNote: 'forwarded as written: a backend that decodes before routing reads /admin',
  },
  {
    item: '#20',
    title: 'backslashes as separators (`/public\\..\\admin`)',
    requests: [`GET /public\\..\\admin HTTP/1.1\r\n${H}\r\n`],
    wasmgate: 403,
    violation: noDeniedPath,
    naive: 'violates',
    naiveNote: 'the WHATWG URL parser reads backslashes as `/`: /admin is forwarded',
  },
  {
    item: '#21',
    title: 'encoded unreserved characters (/%61dmin)',
    requests: ['/%61dmin', '/%61%64%6D%69%6E/x'].map((p) => `GET ${p} HTTP/1.1\r\n${H}\r\n`),
    wasmgate: 403,
    violation: noDeniedPath,
    naive: 'violates',
    naiveNote: 'forwarded as written: the backend decodes /%61dmin to /admin',
  },
  {
    item: '#22',
    title: '%00 in the path',
    requests: [`GET /a%00b HTTP/1.1\r\n${H}\r\n`],
    wasmgate: 400,
    violation: (o) => {
      const hit = o.seen.find((s) => backendPath(s.url).includes('\0'));
      return hit ? `the upstream received ${describe(hit)}, a NUL once decoded` : undefined;
    },
    naive: 'violates',
    naiveNote: 'forwarded as written',
  },
  {
    item: '#22',
    title: '%252F is decoded at most once',
    requests: [`GET /public%252F..%252Fadmin HTTP/1.1\r\n${H}\r\n`],
    wasmgate: 200,
    violation: (o) =>
      noDeniedPath(o) ??
      (o.seen[0]?.url === '/public%252F..%252Fadmin' ? undefined : `the upstream received ${o.seen.map(describe)}`),
    naive: 'holds',
    naiveNote: 'forwarded as written, as wasmgate does',
  },
  {
    item: '#23',
    title: 'dot segments with matrix parameters (/public/..;/admin)',
    requests: ['/public/..;/admin', '/public/%2e%2e;/admin'].map((p) => `GET ${p} HTTP/1.1\r\n${H}\r\n`),
    wasmgate: 400,
    violation: noDeniedPath,
    naive: 'violates',
    naiveNote: 'forwarded as written: a Tomcat-style backend reads `..;` as `..`',
  },
  {
    item: '#23',
    title: '/admin;jsessionid=x is still under /admin',
    requests: [`GET /admin;jsessionid=x HTTP/1.1\r\n${H}\r\n`],
    wasmgate: 403,
    violation: noDeniedPath,
    naive: 'holds',
    naiveNote: 'the prefix rule matches it',
  },
  // ---- header hygiene ----
  {
    item: '#24',
    title: 'a header name with an underscore (X_Auth_User)',
    requests: [`GET /anything HTTP/1.1\r\n${H}X_Auth_User: admin\r\n\r\n`],
    wasmgate: 400,
    violation: (o) => {
      const got = o.seen.flatMap((s) => names(s).filter((n) => n.includes('_')));
      return got.length > 0 ? `the upstream received ${got.join(', ')}` : undefined;
    },
    naive: 'violates',
    naiveNote: 'forwarded',
  },
  {
    item: '#25',
    title: 'names listed in Connection (Connection: X-Custom, Authorization)',
    requests: [
      `GET /anything HTTP/1.1\r\n${H}Connection: keep-alive, X-Custom, Authorization\r\nX-Custom: 1\r\nAuthorization: Bearer x\r\n\r\n`,
    ],
    wasmgate: 200,
    violation: noHeaders('x-custom', 'authorization'),
    naive: 'violates',
    naiveNote: 'forwarded: only `Connection` itself is replaced',
  },
  {
    item: '#25',
    title: 'Proxy-Authorization and Proxy-Connection',
    requests: [`GET /anything HTTP/1.1\r\n${H}Proxy-Authorization: Basic eDp5\r\nProxy-Connection: keep-alive\r\n\r\n`],
    wasmgate: 200,
    violation: noHeaders('proxy-authorization', 'proxy-connection'),
    naive: 'violates',
    naiveNote: "forwarded: the client's proxy credentials reach the upstream",
  },
  {
    item: '#25',
    title: 'TE, Keep-Alive, Trailer, Upgrade: h2c, HTTP2-Settings',
    requests: [
      `GET /anything HTTP/1.1\r\n${H}TE: gzip\r\nKeep-Alive: timeout=5\r\nTrailer: x\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n`,
    ],
    wasmgate: 200,
    violation: noHeaders('te', 'keep-alive', 'trailer', 'upgrade', 'http2-settings'),
    naive: 'violates',
    naiveNote: 'only `Trailer` is stripped; TE, Keep-Alive, Upgrade and HTTP2-Settings are forwarded',
  },
  {
    item: '#26',
    title: 'a client X-Forwarded-For and X-Forwarded-Proto',
    requests: [`GET /anything HTTP/1.1\r\n${H}X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\n\r\n`],
    wasmgate: 200,
    violation: (o) => {
      const s = o.seen[0];
      if (!s) return 'the request never reached the upstream';
      const xff = header(s, 'x-forwarded-for')
        ?.split(',')
        .map((x) => x.trim());
      if (xff?.at(-1) !== '127.0.0.1')
        return `the upstream's X-Forwarded-For is ${JSON.stringify(header(s, 'x-forwarded-for'))}: the client picks its own address`;
      if (header(s, 'x-forwarded-proto') !== 'http')
        return `the upstream's X-Forwarded-Proto is ${JSON.stringify(header(s, 'x-forwarded-proto'))} on plain HTTP`;
      return undefined;
    },
    naive: 'violates',
    naiveNote:
      "no X-Forwarded-* of its own (`xfwd` is off by default): the client's values reach the upstream as they are",
  },
  {
    item: '#27',
    title: 'two Authorization headers',
    requests: [`GET /anything HTTP/1.1\r\n${H}Authorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n`],
    wasmgate: 400,
    violation: notForwarded,
    naive: 'violates',
    naiveNote: 'forwarded, with the first Authorization only',
  },
  {
    item: '#28',
    title: '101 header lines',
    requests: [`GET /anything HTTP/1.1\r\n${H}${Array.from({ length: 101 }, (_, i) => `X-H${i}: v\r\n`).join('')}\r\n`],
    wasmgate: 431,
    violation: notForwarded,
    naive: 'violates',
    naiveNote: "forwarded: Node's own count limit is 2000",
  },
  {
    item: '#28',
    title: 'one 61 KiB header',
    requests: [`GET /anything HTTP/1.1\r\n${H}X-Big: ${'a'.repeat(61 * 1024)}\r\n\r\n`],
    wasmgate: 431,
    violation: notForwarded,
    naive: 'holds',
    naiveNote: "Node's 16 KiB head limit answers 431 first",
  },
  {
    item: '#34',
    title: 'a declared body over the cap (Content-Length: 2 GiB, default cap 1 GiB)',
    requests: [`POST /anything HTTP/1.1\r\n${H}Content-Length: 2147483648\r\n\r\n`],
    wasmgate: 413,
    violation: (o) =>
      o.status === 413
        ? undefined
        : o.silent
          ? 'no answer: the proxy waits for the 2 GiB body'
          : `answered ${o.status}`,
    naive: 'violates',
    naiveNote: 'no body cap: the proxy connects upstream and waits for the 2 GiB',
    timeoutMs: 1500,
  },
];

export type AttackUpstream = RecordingUpstream;

/**
 * The upstream behind both targets: records every head at arrival and every complete request,
 * answers 200 `ok`. Its parser is lenient (`insecureHTTPParser`, as many non-Node backends are):
 * it reads a request sent after one marked `Connection: close`, so bytes a proxy mis-frames show
 * up as the extra requests they are.
 */
export function startAttackUpstream(): Promise<AttackUpstream> {
  return startRecordingUpstream({ insecureHTTPParser: true });
}

/**
 * Sends one variant to 127.0.0.1:`port` on a fresh connection and collects the answer and what
 * `up` received for it (reset first; a quiet 50 ms after the answer lets a request smuggled
 * behind it arrive too).
 */
export async function runAttack(port: number, up: AttackUpstream, bytes: string, timeoutMs = 3000): Promise<Outcome> {
  up.reset();
  let r: RawResponse;
  let silent = false;
  try {
    r = await rawRequest(port, Buffer.from(bytes, 'latin1'), { timeoutMs, closeWaitMs: 50 });
  } catch {
    silent = true;
    r = { status: 0, raw: '', headers: {}, body: '', closed: false, responses: 0 };
  }
  await new Promise((res) => setTimeout(res, 50));
  return { ...r, seen: up.seen.slice(), heads: up.heads.slice(), silent };
}

/**
 * The table docs/security.md shows (test/e2e/hardening-naive.test.ts checks it is there, so the
 * docs follow the cases). Backslashes appear only inside code spans.
 */
export function attackTableMarkdown(): string {
  const cell = (t: string) => t.replace(/\|/g, '\\|');
  return [
    '| Item | Attack | wasmgate | naive http-proxy-3 | What the naive setup does |',
    '|---|---|---|---|---|',
    ...ATTACK_CASES.map(
      (c) =>
        `| ${c.item} | ${cell(c.title)} | ${c.wasmgate} | ${c.naive === 'violates' ? '**fails**' : 'holds'} | ${cell(c.naiveNote)} |`,
    ),
  ].join('\n');
}
