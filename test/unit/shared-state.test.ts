// Shared data and queues: the same semantics from the in-process backend and the cross-thread one,
// then the cross-thread one with real worker_threads (CAS under contention, large values, queues
// fed from another worker, release on exit, a lock that is never freed).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { inProcessSharedState, type SharedStateBackend } from '../../src/shared-state/backend.ts';
import { SharedStateHost } from '../../src/shared-state/cross-thread.ts';
import { SharedData } from '../../src/shared-state/shared-data.ts';
import { createSharedMemory, SharedMemoryStore } from '../../src/shared-state/shared-memory.ts';
import { type QueueOwner, SharedQueues } from '../../src/shared-state/shared-queues.ts';
import type { Command } from './shared-state-worker.ts';

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | null | undefined) => (b ? new TextDecoder().decode(b) : b);
const tick = () => new Promise((r) => setImmediate(r));

function recorder(): QueueOwner & { calls: number[] } {
  const calls: number[] = [];
  return { calls, ready: (id) => calls.push(id) };
}

const backends: [string, () => SharedStateBackend][] = [
  ['in-process', () => ({ kind: 'in-process', data: new SharedData(), queues: new SharedQueues(3) })],
  ['cross-thread', () => new SharedStateHost({ maxQueueItems: 3 }).backend],
];

for (const [name, make] of backends) {
  describe(`shared state semantics: ${name}`, () => {
    test('get/set partitioned by vm_id; cas 0 unconditional; cas mismatch', () => {
      const { data } = make();
      assert.equal(data.get('', 'k'), undefined);
      assert.equal(data.set('', 'k', bytes('v1'), 0), 'ok');
      const v1 = data.get('', 'k')!;
      assert.equal(text(v1.value), 'v1');
      assert.equal(data.get('other-vm', 'k'), undefined);
      assert.equal(data.set('other-vm', 'k', bytes('x'), 0), 'ok');
      assert.equal(text(data.get('', 'k')!.value), 'v1');
      assert.equal(data.set('', 'k', bytes('v2'), v1.cas + 1), 'cas_mismatch');
      assert.equal(data.set('', 'k', bytes('v2'), v1.cas), 'ok');
      const v2 = data.get('', 'k')!;
      assert.equal(text(v2.value), 'v2');
      assert.notEqual(v2.cas, v1.cas);
      assert.equal(data.set('', 'k', bytes('v3'), v1.cas), 'cas_mismatch', 'a stale cas fails');
      assert.equal(data.set('', 'k', bytes('v3'), 0), 'ok');
      assert.equal(data.set('', 'new', bytes('n'), 12345), 'ok', 'a cas on a missing key sets it (as Envoy)');
      assert.equal(data.set('', 'empty', new Uint8Array(0), 0), 'ok');
      assert.equal(data.get('', 'empty')!.value.length, 0);
      assert.equal(text(data.get('', 'ключ') && data.get('', 'ключ')!.value), undefined);
      data.set('', 'ключ', bytes('unicode'), 0);
      assert.equal(text(data.get('', 'ключ')!.value), 'unicode');
    });

    test('queues: register, resolve, bounded (drop oldest), ready asynchronously, release', async () => {
      const { queues } = make();
      const owner = recorder();
      const id = queues.register('', 'q', owner);
      assert.equal(queues.register('', 'q', owner), id, 'registering again answers the same id');
      assert.equal(queues.resolve('', 'q'), id);
      assert.equal(queues.resolve('vm2', 'q'), undefined);
      assert.equal(queues.dequeue(id), null);
      assert.equal(queues.enqueue(id + 1000, bytes('x')), false);
      assert.equal(queues.dequeue(id + 1000), undefined);
      for (const item of ['a', 'b', 'c', 'd']) assert.equal(queues.enqueue(id, bytes(item)), true);
      assert.deepEqual(owner.calls, [], 'never inside the enqueuer');
      await tick();
      await tick();
      assert.deepEqual(owner.calls, [id], 'one notification for the batch');
      assert.deepEqual(
        [1, 2, 3, 4].map(() => text(queues.dequeue(id))),
        ['b', 'c', 'd', null],
        'oldest dropped',
      );
      queues.enqueue(id, bytes('e'));
      await tick();
      await tick();
      assert.deepEqual(owner.calls, [id, id]);
      const other = recorder();
      queues.register('', 'q', other);
      queues.enqueue(id, bytes('f'));
      await tick();
      await tick();
      assert.deepEqual(other.calls, [id], 'the last registrant owns the queue');
      queues.release(owner);
      assert.equal(queues.resolve('', 'q'), id, 'released by a former owner: still there');
      queues.release(other);
      assert.equal(queues.resolve('', 'q'), undefined);
      assert.equal(queues.enqueue(id, bytes('g')), false);
      const again = queues.register('', 'q', owner);
      assert.notEqual(again, id, 'ids are not reused');
    });
  });
}

describe('shared memory store', () => {
  test('CAS counter wraps from 0xffffffff to 1', () => {
    const buffer = createSharedMemory();
    new Int32Array(buffer)[3] = 0xffffffff | 0; // NEXT_CAS (see the layout in shared-memory.ts)
    const store = new SharedMemoryStore(buffer, 0);
    store.set('', 'a', bytes('1'), 0);
    assert.equal(store.get('', 'a')!.cas, 0xffffffff);
    store.set('', 'a', bytes('2'), 0xffffffff);
    assert.equal(store.get('', 'a')!.cas, 1);
  });

  test('many keys, values from 0 B to 1 MiB, overwritten smaller and larger: the arena grows and reuses', () => {
    const buffer = createSharedMemory({ initialBytes: 64 * 1024 });
    const store = new SharedMemoryStore(buffer, 0);
    const expect = new Map<string, number>();
    for (let i = 0; i < 20_000; i++) {
      store.set('', `key-${i}`, bytes(`value-${i}`), 0);
      expect.set(`key-${i}`, i);
    }
    assert.equal(store.dataCount(), 20_000);
    for (let i = 0; i < 20_000; i += 997) assert.equal(text(store.get('', `key-${i}`)!.value), `value-${i}`);
    const sizes = [0, 1, 7, 100, 4096, 65_536, 1 << 20, 3, 1 << 20, 512 * 1024];
    for (const [i, size] of sizes.entries()) {
      const value = new Uint8Array(size).fill(i + 1);
      store.set('', 'big', value, 0);
      assert.deepEqual(store.get('', 'big')!.value, value);
    }
    const before = store.byteLength;
    for (let i = 0; i < 50; i++) store.set('', 'big', new Uint8Array(1 << 20).fill(i), 0);
    assert.equal(store.byteLength, before, 'freed blocks are reused');
  });

  test('a full arena answers an error, not a crash', () => {
    const store = new SharedMemoryStore(createSharedMemory({ maxBytes: 1 << 20, initialBytes: 1 << 20 }), 0);
    assert.throws(() => store.set('', 'k', new Uint8Array(2 << 20), 0), /shared state full|too large/);
    assert.equal(store.set('', 'k', bytes('small'), 0), 'ok');
  });
});

// ---------------------------------------------------------------- real worker threads

interface TestWorker {
  worker: Worker;
  thread: number;
  run<T = unknown>(cmd: Command): Promise<T>;
  events: { event: string; id: number; thread: number; items: string[] }[];
  nextEvent(): Promise<{ event: string; id: number; thread: number; items: string[] }>;
}

const workers: Worker[] = [];
after(async () => {
  await Promise.all(workers.map((w) => w.terminate()));
});

async function spawn(host: SharedStateHost): Promise<TestWorker> {
  const { init, transferList } = host.channel();
  const worker = new Worker(new URL('./shared-state-worker.ts', import.meta.url), {
    workerData: { sharedState: init },
    transferList,
  });
  workers.push(worker);
  let seq = 0;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const events: TestWorker['events'] = [];
  const waiting: ((e: TestWorker['events'][number]) => void)[] = [];
  let online: (thread: number) => void;
  const ready = new Promise<number>((r) => {
    online = r;
  });
  worker.on('message', (m) => {
    if (m.event === 'online') online(m.thread);
    else if (m.event) {
      const waiter = waiting.shift();
      if (waiter) waiter(m);
      else events.push(m);
    } else {
      const p = pending.get(m.seq)!;
      pending.delete(m.seq);
      if (m.error) p.reject(new Error(m.error));
      else p.resolve(m.result);
    }
  });
  worker.on('error', (err) => {
    for (const p of pending.values()) p.reject(err);
  });
  const thread = await ready;
  return {
    worker,
    thread,
    events,
    run: <T>(cmd: Command) =>
      new Promise<T>((resolve, reject) => {
        pending.set(++seq, { resolve: resolve as (v: unknown) => void, reject });
        worker.postMessage({ seq, cmd });
      }),
    nextEvent: () =>
      events.length > 0
        ? Promise.resolve(events.shift()!)
        : new Promise((resolve) => {
            waiting.push(resolve);
          }),
  };
}

async function until(check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('shared state across worker threads', () => {
  test('CAS under contention: 4 workers x 5,000 increments with retry loops end at exactly 20,000', async (t) => {
    const host = new SharedStateHost();
    const ws = await Promise.all([1, 2, 3, 4].map(() => spawn(host)));
    host.backend.data.set('', 'counter', new Uint8Array(4), 0);
    const results = await Promise.all(
      ws.map((w) => w.run<{ retries: number }>({ op: 'cas-increment', key: 'counter', times: 5000 })),
    );
    const total = new DataView(host.backend.data.get('', 'counter')!.value.buffer).getUint32(0, true);
    assert.equal(total, 20_000);
    const retries = results.reduce((n, r) => n + r.retries, 0);
    t.diagnostic(`cas mismatches retried: ${retries}`);
  });

  test('values up to 1 MiB set on one worker read identically on another and on the main thread', async () => {
    const host = new SharedStateHost({ initialBytes: 64 * 1024 });
    const [a, b] = await Promise.all([spawn(host), spawn(host)]);
    for (const [i, size] of [0, 1, 1000, 65_536, 1 << 20].entries()) {
      assert.equal(await a.run({ op: 'set', key: `v${i}`, size, seed: i + 7 }), 'ok');
      const seen = await b.run<{ size: number; sha: string }>({ op: 'digest', key: `v${i}` });
      const local = host.backend.data.get('', `v${i}`)!;
      assert.equal(seen.size, size);
      assert.equal(seen.sha, createHash('sha256').update(local.value).digest('hex'));
    }
    assert.equal(await b.run({ op: 'digest', key: 'missing' }), undefined);
  });

  test('a queue registered on worker A, resolved and fed from worker B: ready fires on A, items in order', async () => {
    const host = new SharedStateHost();
    const [a, b] = await Promise.all([spawn(host), spawn(host)]);
    const id = await a.run<number>({ op: 'register', name: 'events' });
    assert.equal(await b.run({ op: 'resolve', name: 'events' }), id);
    assert.deepEqual(await b.run({ op: 'enqueue', name: 'events', items: ['one', 'two', 'three'] }), [
      true,
      true,
      true,
    ]);
    const got: string[] = [];
    while (got.length < 3) {
      const e = await a.nextEvent();
      assert.equal(e.event, 'ready');
      assert.equal(e.id, id);
      assert.equal(e.thread, a.thread, 'delivered on the owner');
      got.push(...e.items);
    }
    assert.deepEqual(got, ['one', 'two', 'three']);
    await b.run({ op: 'enqueue', name: 'events', items: ['four'] });
    assert.deepEqual((await a.nextEvent()).items, ['four']);
    // the main thread feeds it too
    host.backend.queues.enqueue(id, bytes('five'));
    assert.deepEqual((await a.nextEvent()).items, ['five']);
    assert.equal(b.events.length, 0, 'nothing delivered on B');
    // explicit release (the VM went away)
    await a.run({ op: 'release' });
    assert.equal(await b.run({ op: 'resolve', name: 'events' }), null);
    assert.equal(await b.run({ op: 'enqueue', name: 'events', items: ['x'] }), false);
  });

  test("a worker's queues are removed when it exits", async () => {
    const host = new SharedStateHost();
    const [a, b] = await Promise.all([spawn(host), spawn(host)]);
    await a.run({ op: 'register', name: 'doomed' });
    await b.run({ op: 'register', name: 'kept' });
    await b.run({ op: 'enqueue', name: 'doomed', items: ['pending'] });
    assert.equal(host.backend.store.queueCount(), 2);
    await a.worker.terminate();
    await until(() => host.backend.queues.resolve('', 'doomed') === undefined);
    assert.notEqual(host.backend.queues.resolve('', 'kept'), undefined);
    assert.equal(host.connected, 1);
  });

  test('a lock never freed: the host call answers INTERNAL_FAILURE after the timeout, logged; freed when the holder dies', async () => {
    const logs: string[] = [];
    const host = new SharedStateHost({ lockTimeoutMs: 100, log: (m) => logs.push(m) });
    const [holder, victim] = await Promise.all([spawn(host), spawn(host)]);
    await holder.run({ op: 'hold-lock' });
    const stuck = await victim.run<{ status: number; errors: string[]; ms: number }>({ op: 'abi-get', key: 'k' });
    assert.equal(stuck.status, 10, 'INTERNAL_FAILURE');
    assert.match(stuck.errors[0]!, /proxy_get_shared_data: shared state lock not acquired in 100 ms/);
    assert.ok(stuck.ms >= 90 && stuck.ms < 1000, `waited ${stuck.ms} ms`);
    await holder.worker.terminate();
    await until(() => logs.some((l) => /exited holding the lock/.test(l)));
    const after = await victim.run<{ status: number; errors: string[] }>({ op: 'abi-get', key: 'k' });
    assert.equal(after.status, 1, 'NOT_FOUND: the store answers again');
    assert.deepEqual(after.errors, []);
  });

  test('the main thread gone away (ports closed): synchronous calls keep working, no hang', async () => {
    const host = new SharedStateHost();
    const [a, b] = await Promise.all([spawn(host), spawn(host)]);
    await a.run({ op: 'register', name: 'q' });
    host.close();
    assert.equal(await b.run({ op: 'set', key: 'k', size: 10, seed: 1 }), 'ok');
    assert.equal((await a.run<{ size: number }>({ op: 'digest', key: 'k' })).size, 10);
    assert.deepEqual(await b.run({ op: 'enqueue', name: 'q', items: ['lost'] }), [true]);
    assert.notEqual(host.backend.queues.resolve('', 'q'), undefined, 'closing the host is not a worker exit');
  });
});

test('the default backend is the in-process one', () => {
  assert.equal(inProcessSharedState.kind, 'in-process');
});
