// The naive reverse proxy a Node user writes with http-proxy-3 (its README's setup): an
// http.createServer handler that refuses /admin* with a prefix check on req.url, as an access
// rule would, then hands everything else to createProxyServer({target}).web(). No option beyond
// the target, and the error handler the README shows (so an upstream error is a 502, not a crash).
// The attack tests run the same cases against it and against wasmgate (test/helpers/attack-cases.ts).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createProxyServer } from 'http-proxy-3';

export interface NaiveProxy {
  port: number;
  close(): Promise<void>;
}

/** Starts the naive proxy on a free loopback port, in front of 127.0.0.1:`upstreamPort`. */
export function startNaiveProxy(upstreamPort: number): Promise<NaiveProxy> {
  const proxy = createProxyServer({ target: `http://127.0.0.1:${upstreamPort}` });
  proxy.on('error', (_err, _req, res) => {
    if (res instanceof http.ServerResponse) {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    } else res.destroy();
  });
  const server = http.createServer((req, res) => {
    // The path rule, as written in front of the proxy call.
    if (req.url?.startsWith('/admin')) {
      res.writeHead(403, { 'content-type': 'text/plain' });
      res.end('denied\n');
      return;
    }
    proxy.web(req, res);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () =>
          new Promise((r) => {
            server.closeAllConnections();
            server.close(() => r());
            proxy.close();
          }),
      }),
    );
  });
}
