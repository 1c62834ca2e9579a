// One autocannon run in its own process (so it can be pinned apart from the proxy).
// Usage: node bench/load/autocannon.ts '<json options>'; the body, when given, is `bodyBytes` bytes.
// Prints one JSON line: { requests, ok, duration, rps, p50, p99 (ms), non2xx, errors, timeouts }.
import autocannon from 'autocannon';

const o = JSON.parse(process.argv[2] ?? '{}') as {
  url: string;
  connections: number;
  duration: number;
  method?: 'GET' | 'POST';
  bodyBytes?: number;
  headers?: Record<string, string>;
  /** keep-alive off: `connection: close`, and one request per connection. */
  close?: boolean;
};
// autocannon writes the next request as soon as a response completes, before it sees the server
// close the connection; that request is lost and its start time skews every later latency. With
// `close`, each connection sends exactly one request and the reconnect sends the next.
type RawClient = { _connect: () => void; _doRequest: (...a: unknown[]) => void };
function oneRequestPerConnection(client: unknown): void {
  const c = client as RawClient;
  const connect = c._connect.bind(c);
  const doRequest = c._doRequest.bind(c);
  let fresh = false;
  c._connect = () => {
    fresh = true;
    connect();
  };
  c._doRequest = (...a: unknown[]) => {
    if (!fresh) return;
    fresh = false;
    doRequest(...a);
  };
}
// autocannon's own histogram has 1 ms resolution; keep every 2xx latency (ms, from hrtime) instead.
let lat = new Float64Array(1 << 16);
let n = 0;
const instance = autocannon({
  url: o.url,
  connections: o.connections,
  duration: o.duration,
  method: o.method ?? 'GET',
  headers: o.close ? { ...o.headers, connection: 'close' } : o.headers,
  setupClient: o.close ? oneRequestPerConnection : undefined,
  body: o.bodyBytes ? Buffer.alloc(o.bodyBytes, 'p') : undefined,
}) as Promise<autocannon.Result> & {
  on(event: 'response', fn: (client: unknown, status: number, bytes: number, ms: number) => void): void;
};
instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
  if (status < 200 || status > 299) return;
  if (n === lat.length) {
    const next = new Float64Array(lat.length * 2);
    next.set(lat);
    lat = next;
  }
  lat[n++] = ms;
});
const result = await instance;
const sorted = lat.subarray(0, n).sort();
const pct = (q: number) => (n ? sorted[Math.min(n - 1, Math.floor(q * n))] : 0);
const ok = result.requests.total - result.non2xx;
process.stdout.write(
  `${JSON.stringify({
    requests: result.requests.total,
    ok,
    duration: result.duration,
    rps: ok / result.duration,
    p50: pct(0.5),
    p99: pct(0.99),
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
  })}\n`,
);
