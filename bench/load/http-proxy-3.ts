// The http-proxy-3 proxy as its README shows it, with a keep-alive agent to the upstream (without
// one, every request opens a new upstream connection and it is slower still).
// Usage: node bench/load/http-proxy-3.ts PORT UPSTREAM_URL   (prints "listening PORT")
import { Agent, createServer } from 'node:http';
import { createProxyServer } from 'http-proxy-3';

const proxy = createProxyServer({
  target: process.argv[3] ?? 'http://127.0.0.1:8000',
  agent: new Agent({ keepAlive: true, maxSockets: 128 }),
});
proxy.on('error', (_err, _req, res) => {
  if ('writeHead' in res && !res.headersSent) res.writeHead(502);
  res.end();
});
const server = createServer((req, res) => proxy.web(req, res));
server.keepAliveTimeout = 60_000;
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  const a = server.address();
  process.stdout.write(`listening ${typeof a === 'object' && a ? a.port : 0}\n`);
});
process.on('SIGTERM', () => process.exit(0));
