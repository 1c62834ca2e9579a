// Load balancers without sockets: round robin exact, least request, ring hash and maglev stability.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLoadBalancer, hash32, type LbEndpoint } from '../../src/router/load-balancer.ts';
import { newOutlierState, OutlierDetector } from '../../src/router/outlier.ts';

const eps = (n: number): LbEndpoint[] =>
  Array.from({ length: n }, (_, i) => ({ host: `10.0.0.${i + 1}`, port: 80, weight: 1, active: 0 }));

test('ROUND_ROBIN cycles exactly', () => {
  const all = eps(3);
  const lb = createLoadBalancer<LbEndpoint>({ kind: 'ROUND_ROBIN' });
  const counts = new Map<LbEndpoint, number>();
  for (let i = 0; i < 300; i++) {
    const e = lb.pick(all, all, undefined);
    counts.set(e, (counts.get(e) ?? 0) + 1);
  }
  assert.deepEqual([...counts.values()], [100, 100, 100]);
});

test('LEAST_REQUEST prefers the endpoint with fewer requests in flight', () => {
  const all = eps(2);
  all[0]!.active = 10;
  const lb = createLoadBalancer<LbEndpoint>({ kind: 'LEAST_REQUEST' });
  for (let i = 0; i < 100; i++) assert.equal(lb.pick(all, all, undefined), all[1]);
});

for (const policy of [
  { kind: 'RING_HASH', minimumRingSize: 1024 },
  { kind: 'MAGLEV', tableSize: 65537 },
] as const) {
  test(`${policy.kind}: a key always maps to the same endpoint; keys spread; an unhealthy endpoint is skipped`, () => {
    const all = eps(4);
    const lb = createLoadBalancer<LbEndpoint>(policy);
    const used = new Set<LbEndpoint>();
    for (let k = 0; k < 200; k++) {
      const h = hash32(`user-${k}`);
      const first = lb.pick(all, all, h);
      for (let i = 0; i < 3; i++) assert.equal(lb.pick(all, all, h), first);
      used.add(first);
    }
    assert.equal(used.size, 4);
    // removing one endpoint moves only the keys that were on it
    const healthy = all.slice(1);
    let moved = 0;
    for (let k = 0; k < 200; k++) {
      const h = hash32(`user-${k}`);
      const before = lb.pick(all, all, h);
      const after = lb.pick(all, healthy, h);
      assert.notEqual(after, all[0]);
      if (before !== all[0] && before !== after) moved++;
    }
    assert.ok(moved < 40, `${moved} keys moved that did not need to`);
  });
}

test('outlier detection: consecutive 5xx eject, time grows with ejections, maxEjectionPercent holds', () => {
  const all = eps(3).map((e) => ({ ...e, outlier: newOutlierState() }));
  const changes: string[] = [];
  const d = new OutlierDetector(
    {
      consecutive5xx: 2,
      consecutiveGateway: 0,
      intervalMs: 1_000_000,
      baseEjectionMs: 1000,
      maxEjectionPercent: 50,
      minHealthPercent: 0,
    },
    () => all,
    (e, ejected) => changes.push(`${e.host}:${ejected}`),
  );
  d.record(all[0]!, { status: 500 });
  d.record(all[0]!, { status: 200 });
  d.record(all[0]!, { status: 500 });
  assert.deepEqual(changes, [], 'a success resets the count');
  d.record(all[0]!, { status: 503 });
  assert.deepEqual(changes, ['10.0.0.1:true']);
  d.record(all[1]!, { localFailure: 'connect' });
  d.record(all[1]!, { localFailure: 'timeout' });
  assert.deepEqual(changes, ['10.0.0.1:true'], 'a second ejection would pass 50%');
  const at = all[0]!.outlier.ejectedAt!;
  d.tick(at + 999);
  assert.equal(all[0]!.outlier.ejectedAt, at);
  d.tick(at + 1000);
  assert.equal(all[0]!.outlier.ejectedAt, undefined);
  d.record(all[0]!, { status: 500 });
  d.record(all[0]!, { status: 500 });
  const again = all[0]!.outlier.ejectedAt!;
  d.tick(again + 1500);
  assert.notEqual(all[0]!.outlier.ejectedAt, undefined, 'second ejection lasts 2 x base');
  d.tick(again + 2000);
  assert.equal(all[0]!.outlier.ejectedAt, undefined);
  d.close();
});
