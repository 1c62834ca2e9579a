// http(s):// modules as Istio's HTTP fetcher: up to 5 attempts with exponential backoff from
// 500 ms on network errors and 5xx (except 501, 505, 511); any other non-200 stops at once; a
// timeout per attempt, a size cap, metadata addresses refused at dial time; then "unboxing"
// (gunzip / first tar entry) until the bytes are Wasm.

import type { Agent } from 'undici';
import { unbox } from './archive.ts';
import { backoff, HttpStatusError, httpRequest, PermanentError } from './net.ts';

export interface HttpOptions {
  agent: Agent;
  timeoutMs: number;
  maxBytes: number;
  attempts: number;
  backoffMs: number;
  /** Called before each retry (for logs). */
  onRetry?: (attempt: number, cause: string) => void;
}

const NOT_RETRIED = new Set([501, 505, 511]);

export async function fetchHttp(url: string, options: HttpOptions): Promise<Buffer> {
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < options.attempts; attempt++) {
    if (attempt > 0) {
      options.onRetry?.(attempt, lastError!.message);
      await backoff(options.backoffMs, attempt - 1);
    }
    try {
      const res = await httpRequest(url, {
        agent: options.agent,
        maxBytes: options.maxBytes,
        timeoutMs: options.timeoutMs,
        headers: { accept: '*/*' },
      });
      if (res.status === 200) return unbox(res.body, options.maxBytes);
      const err = new HttpStatusError(res.status, res.headers, `HTTP ${res.status}`);
      if (res.status < 500 || NOT_RETRIED.has(res.status)) throw new PermanentError(err.message);
      lastError = err;
    } catch (err) {
      if (err instanceof PermanentError) throw err;
      lastError = err as Error;
    }
  }
  throw new Error(`${lastError?.message ?? 'failed'} (after ${options.attempts} attempts)`);
}
