// Outlier detection as Envoy's (Istio's OutlierDetection): consecutive 5xx and consecutive gateway
// errors eject an endpoint for baseEjectionTime x (number of ejections); every `interval` the
// detector returns endpoints whose time is up and forgets one ejection of endpoints that stayed
// healthy. maxEjectionPercent bounds how many endpoints may be out at once.

export interface OutlierConfig {
  /** 0 disables. Envoy's default 5 (enforced 100%). */
  consecutive5xx: number;
  /** 0 disables (Envoy enforces it only when Istio sets it). */
  consecutiveGateway: number;
  intervalMs: number;
  baseEjectionMs: number;
  maxEjectionPercent: number;
  /** Below this share of healthy endpoints, balance across all (Envoy's panic threshold); 0: never. */
  minHealthPercent: number;
}

export const MAX_EJECTION_MS = 300_000;

export interface OutlierState {
  consecutive5xx: number;
  consecutiveGateway: number;
  ejectedAt: number | undefined;
  ejections: number;
  lastUnejectedAt: number;
}

export function newOutlierState(): OutlierState {
  return { consecutive5xx: 0, consecutiveGateway: 0, ejectedAt: undefined, ejections: 0, lastUnejectedAt: 0 };
}

/** What happened to one request, for outlier accounting. Local-origin failures count as 5xx/gateway errors. */
export type Outcome = { status: number } | { localFailure: 'connect' | 'timeout' | 'reset' };

export class OutlierDetector<E extends { outlier: OutlierState }> {
  readonly config: OutlierConfig;
  readonly #endpoints: () => readonly E[];
  readonly #timer: NodeJS.Timeout;
  readonly #onChange: (endpoint: E, ejected: boolean) => void;

  constructor(config: OutlierConfig, endpoints: () => readonly E[], onChange: (endpoint: E, ejected: boolean) => void) {
    this.config = config;
    this.#endpoints = endpoints;
    this.#onChange = onChange;
    this.#timer = setInterval(() => this.tick(), config.intervalMs);
    this.#timer.unref();
  }

  /** Records a request's outcome; may eject the endpoint. */
  record(endpoint: E, outcome: Outcome): void {
    const s = endpoint.outlier;
    const status = 'status' in outcome ? outcome.status : outcome.localFailure === 'timeout' ? 504 : 503;
    if (status >= 500) {
      s.consecutive5xx++;
      if (status >= 502 && status <= 504) s.consecutiveGateway++;
      else s.consecutiveGateway = 0;
    } else {
      s.consecutive5xx = 0;
      s.consecutiveGateway = 0;
      return;
    }
    if (s.ejectedAt !== undefined) return;
    const c = this.config;
    if (
      (c.consecutive5xx > 0 && s.consecutive5xx >= c.consecutive5xx) ||
      (c.consecutiveGateway > 0 && s.consecutiveGateway >= c.consecutiveGateway)
    )
      this.#eject(endpoint);
  }

  #eject(endpoint: E): void {
    const all = this.#endpoints();
    const ejected = all.filter((e) => e.outlier.ejectedAt !== undefined).length;
    if ((100 * (ejected + 1)) / all.length > this.config.maxEjectionPercent) return;
    const s = endpoint.outlier;
    s.ejectedAt = Date.now();
    s.ejections++;
    s.consecutive5xx = 0;
    s.consecutiveGateway = 0;
    this.#onChange(endpoint, true);
  }

  /** Returns endpoints whose ejection time is over (run every interval). */
  tick(now = Date.now()): void {
    for (const e of this.#endpoints()) {
      const s = e.outlier;
      if (s.ejectedAt !== undefined) {
        const time = Math.min(
          this.config.baseEjectionMs * s.ejections,
          Math.max(MAX_EJECTION_MS, this.config.baseEjectionMs),
        );
        if (now - s.ejectedAt >= time) {
          s.ejectedAt = undefined;
          s.lastUnejectedAt = now;
          this.#onChange(e, false);
        }
      } else if (s.ejections > 0 && now - s.lastUnejectedAt >= this.config.baseEjectionMs * s.ejections) {
        // healthy long enough: the next ejection is shorter again
        s.ejections--;
        s.lastUnejectedAt = now;
      }
    }
  }

  close(): void {
    clearInterval(this.#timer);
  }
}
