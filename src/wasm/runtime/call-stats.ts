// What the host asked of a VM: guest callbacks entered from the host, by export name, and their
// duration (sampled: one call in 16 is timed, so the cost stays a counter increment). Plain data,
// read by the admin through worker snapshots.

/** Upper bounds in microseconds; the last bucket is +Inf. */
export const CALL_BUCKETS_US = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 5000, 10000, 100000] as const;
const SAMPLE_MASK = 15;

export interface CallStatsSnapshot {
  calls: [string, number][];
  /** Counts per bucket of CALL_BUCKETS_US plus +Inf, over the sampled calls. */
  buckets: number[];
  sampledSumUs: number;
  sampled: number;
}

export class CallStats {
  readonly calls = new Map<string, number>();
  readonly buckets: number[] = new Array(CALL_BUCKETS_US.length + 1).fill(0);
  sampledSumUs = 0;
  sampled = 0;
  #n = 0;

  /** Counts a call; returns a start time when this call is to be timed. */
  enter(name: string): number | undefined {
    this.calls.set(name, (this.calls.get(name) ?? 0) + 1);
    return (++this.#n & SAMPLE_MASK) === 0 ? performance.now() : undefined;
  }

  exit(start: number | undefined): void {
    if (start === undefined) return;
    const us = (performance.now() - start) * 1000;
    let i = 0;
    while (i < CALL_BUCKETS_US.length && us > CALL_BUCKETS_US[i]!) i++;
    this.buckets[i]!++;
    this.sampledSumUs += us;
    this.sampled++;
  }

  snapshot(): CallStatsSnapshot {
    return {
      calls: [...this.calls],
      buckets: [...this.buckets],
      sampledSumUs: this.sampledSumUs,
      sampled: this.sampled,
    };
  }
}
