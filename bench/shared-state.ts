// Micro-benchmark of shared data: nanoseconds per get / set (a 16-byte value, as a counter or a
// token) for
//   - the in-process backend (SharedData, one thread),
//   - the cross-thread backend (SharedArrayBuffer + Atomics mutex), from one thread uncontended,
//     and from 2 and 4 worker threads hammering the same key at once,
//   - for comparison, the design not taken: a synchronous RPC to a store on the main thread
//     (worker posts, Atomics.wait, main answers, receiveMessageOnPort), one round trip per call.
// Usage: node bench/shared-state.ts [--quick]
import {
  isMainThread,
  MessageChannel,
  type MessagePort,
  receiveMessageOnPort,
  Worker,
  workerData,
} from 'node:worker_threads';
import { connectSharedState, SharedStateHost, type SharedStateInit } from '../src/shared-state/cross-thread.ts';
import { SharedData } from '../src/shared-state/shared-data.ts';

const quick = process.argv.includes('--quick') || (workerData as { quick?: boolean } | null)?.quick === true;
const N = quick ? 50_000 : 500_000;
const VALUE = new Uint8Array(16).fill(7);

type Store = {
  get(vm: string, k: string): unknown;
  set(vm: string, k: string, v: Uint8Array, cas: number): unknown;
};

function measure(store: Store, key: string, n: number): { get: number; set: number } {
  store.set('', key, VALUE, 0);
  for (let i = 0; i < 1000; i++) store.get('', key); // warm-up
  let t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) store.get('', key);
  const get = Number(process.hrtime.bigint() - t) / n;
  t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) store.set('', key, VALUE, 0);
  const set = Number(process.hrtime.bigint() - t) / n;
  return { get, set };
}

interface Job {
  role: 'store' | 'rpc';
  sharedState?: SharedStateInit;
  rpc?: { port: MessagePort; flag: Int32Array };
  key: string;
  n: number;
  quick: boolean;
}

if (!isMainThread) {
  const job = workerData as Job;
  const { parentPort } = await import('node:worker_threads');
  if (job.role === 'store') {
    const backend = connectSharedState(job.sharedState!);
    parentPort!.once('message', () => parentPort!.postMessage(measure(backend.data, job.key, job.n)));
    parentPort!.postMessage('ready');
  } else {
    const { port, flag } = job.rpc!;
    // one synchronous round trip: post the request, block until the main thread has answered
    const call = (op: 'get' | 'set') => {
      Atomics.store(flag, 0, 0);
      port.postMessage(op === 'get' ? { op, key: job.key } : { op, key: job.key, value: VALUE });
      while (Atomics.wait(flag, 0, 0, 1000) === 'timed-out') {
        throw new Error('rpc timed out');
      }
      return receiveMessageOnPort(port)!.message;
    };
    const rpcStore: Store = { get: () => call('get'), set: () => call('set') };
    parentPort!.postMessage(measure(rpcStore, job.key, Math.max(1000, job.n / 20)));
  }
} else {
  const fmt = (r: { get: number; set: number }) =>
    `get ${r.get.toFixed(0).padStart(6)} ns   set ${r.set.toFixed(0).padStart(6)} ns`;
  const rows: [string, { get: number; set: number }][] = [];

  rows.push(['in-process (SharedData), 1 thread', measure(new SharedData(), 'k', N)]);

  const host = new SharedStateHost();
  rows.push(['cross-thread store, 1 thread, uncontended', measure(host.backend.data, 'k', N)]);

  for (const workers of [2, 4]) {
    const ws = Array.from({ length: workers }, () => {
      const { init, transferList } = host.channel();
      return new Worker(new URL(import.meta.url), {
        workerData: { role: 'store', sharedState: init, key: 'hot', n: N, quick } satisfies Job,
        transferList,
      });
    });
    await Promise.all(ws.map((w) => new Promise((r) => w.once('message', r))));
    const results = await Promise.all(
      ws.map((w) => {
        const done = new Promise<{ get: number; set: number }>((r) => w.once('message', r));
        w.postMessage('go');
        return done;
      }),
    );
    const avg = (f: 'get' | 'set') => results.reduce((s, r) => s + r[f], 0) / results.length;
    rows.push([
      `cross-thread store, ${workers} workers on one key (per call, each)`,
      { get: avg('get'), set: avg('set') },
    ]);
    await Promise.all(ws.map((w) => w.terminate()));
  }

  // the alternative: a store on the main thread answering synchronous RPCs
  {
    const store = new SharedData();
    const { port1, port2 } = new MessageChannel();
    const flag = new Int32Array(new SharedArrayBuffer(4));
    port1.on('message', (m: { op: 'get' | 'set'; key: string; value?: Uint8Array }) => {
      const result = m.op === 'get' ? store.get('', m.key) : store.set('', m.key, m.value!, 0);
      port1.postMessage(result);
      Atomics.store(flag, 0, 1);
      Atomics.notify(flag, 0);
    });
    const w = new Worker(new URL(import.meta.url), {
      workerData: { role: 'rpc', rpc: { port: port2, flag }, key: 'k', n: N, quick } satisfies Job,
      transferList: [port2],
    });
    const r = await new Promise<{ get: number; set: number }>((res) => w.once('message', res));
    rows.push(['(not taken) sync RPC to a main-thread store, 1 worker', r]);
    await w.terminate();
    port1.close();
  }

  host.close();
  console.log(`shared data, ${N} calls per measure, Node ${process.version}\n`);
  for (const [name, r] of rows) console.log(`${name.padEnd(64)} ${fmt(r)}`);
}
