// Readiness, shared by the admin port (/ready, /healthcheck/*) and Istio's health port 15021
// (/healthz/ready), which kubelet probes and `wasmgate health` asks.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export class Readiness {
  /** False once draining or after POST /healthcheck/fail. */
  live = true;
}

export class HealthServer {
  readonly server: http.Server;
  readonly #readiness: Readiness;

  constructor(readiness: Readiness) {
    this.#readiness = readiness;
    this.server = http.createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path !== '/healthz/ready') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return;
      }
      const live = this.#readiness.live;
      res.writeHead(live ? 200 : 503, { 'content-type': 'text/plain' }).end(live ? 'LIVE\n' : 'DRAINING\n');
    });
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve((this.server.address() as AddressInfo).port));
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

/** `wasmgate health`: exit 0 when GET /healthz/ready answers 200 within the timeout. */
export async function probe(url: string, timeoutMs = 2000): Promise<{ ok: boolean; message: string }> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const text = (await res.text()).trim();
    return { ok: res.status === 200, message: `${res.status} ${text}` };
  } catch (err) {
    return { ok: false, message: (err as Error).message };
  }
}
