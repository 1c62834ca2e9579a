// The benchmark's upstream: a plain node:http server (what "upstream alone" measures).
// GET /small: a ~100-byte body; GET /64k: 64 KiB; POST (any path): reads the body, answers small.
// Usage: node bench/load/upstream.ts PORT   (prints "listening PORT" when ready)
import { createServer } from 'node:http';

const SMALL = Buffer.from(`${'{"ok":true,"service":"wasmgate-bench-upstream","pad":"'.padEnd(96, 'x')}"}\n`);
const BIG = Buffer.alloc(64 * 1024, 'b');

const server = createServer((req, res) => {
  if (req.method === 'POST' || req.method === 'PUT') {
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
    });
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': SMALL.length, 'x-received': n });
      res.end(SMALL);
    });
    return;
  }
  const body = req.url === '/64k' ? BIG : SMALL;
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  const a = server.address();
  process.stdout.write(`listening ${typeof a === 'object' && a ? a.port : 0}\n`);
});
process.on('SIGTERM', () => process.exit(0));
