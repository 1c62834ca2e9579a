// A worker thread for test/unit/shared-state*.test.ts: connects to the host's shared state and
// runs the commands the test posts, through the backend the ABI uses (sharedState()).
import { createHash } from 'node:crypto';
import { parentPort, threadId, workerData } from 'node:worker_threads';
import { sharedState, useSharedState } from '../../src/shared-state/backend.ts';
import { connectSharedState, type SharedStateInit } from '../../src/shared-state/cross-thread.ts';
import type { QueueOwner } from '../../src/shared-state/shared-queues.ts';
import { guarded } from '../../src/wasm/abi/guard.ts';
import type { AbiHost } from '../../src/wasm/abi/host-api.ts';
import { sharedDataFunctions } from '../../src/wasm/abi/shared-data.ts';

export type Command =
  | { op: 'cas-increment'; key: string; times: number }
  | { op: 'set'; key: string; size: number; seed: number }
  | { op: 'digest'; key: string }
  | { op: 'register'; name: string }
  | { op: 'resolve'; name: string }
  | { op: 'enqueue'; name: string; items: string[] }
  | { op: 'release' }
  | { op: 'hold-lock' }
  | { op: 'abi-get'; key: string };

const port = parentPort!;
const logs: string[] = [];
const backend = connectSharedState((workerData as { sharedState: SharedStateInit }).sharedState, (m) => logs.push(m));
useSharedState(backend);
const { data, queues } = sharedState();

const owner: QueueOwner = {
  ready(id) {
    const items: string[] = [];
    for (let item = queues.dequeue(id); item; item = queues.dequeue(id)) items.push(Buffer.from(item).toString());
    port.postMessage({ event: 'ready', id, thread: threadId, items });
  },
};

export function pattern(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function run(cmd: Command): unknown {
  switch (cmd.op) {
    case 'cas-increment': {
      let retries = 0;
      for (let i = 0; i < cmd.times; i++) {
        for (;;) {
          const cur = data.get('', cmd.key)!; // the test creates the key first
          const next = Buffer.alloc(4);
          next.writeUInt32LE(Buffer.from(cur.value).readUInt32LE(0) + 1);
          if (data.set('', cmd.key, next, cur.cas) === 'ok') break;
          retries++;
        }
      }
      return { retries };
    }
    case 'set':
      return data.set('', cmd.key, pattern(cmd.size, cmd.seed), 0);
    case 'digest': {
      const v = data.get('', cmd.key);
      return v && { size: v.value.length, sha: createHash('sha256').update(v.value).digest('hex'), cas: v.cas };
    }
    case 'register':
      return queues.register('', cmd.name, owner);
    case 'resolve':
      return queues.resolve('', cmd.name) ?? null;
    case 'enqueue': {
      const id = queues.resolve('', cmd.name);
      if (id === undefined) return false;
      return cmd.items.map((item) => queues.enqueue(id, Buffer.from(item)));
    }
    case 'release':
      queues.release(owner);
      return true;
    case 'hold-lock':
      backend.store.holdLockForTesting();
      return true;
    case 'abi-get': {
      // through the ABI function as a VM calls it, with the guard that turns a throw into a status
      const errors: string[] = [];
      const h = {
        memory: { string: () => cmd.key, setU32: () => {}, copy: (_p: number, n: number) => new Uint8Array(n) },
        copyOut: () => 0,
      } as unknown as AbiHost;
      const fns = guarded(
        sharedDataFunctions(h) as unknown as Record<string, (...a: number[]) => number>,
        (name, err) => errors.push(`${name}: ${(err as Error).message}`),
      );
      const started = performance.now();
      const status = (fns.proxy_get_shared_data as (...a: number[]) => number)(0, 0, 0, 0, 0);
      return { status, errors, ms: performance.now() - started };
    }
  }
}

port.on('message', (msg: { seq: number; cmd: Command }) => {
  let reply: { seq: number; result?: unknown; error?: string; logs: string[] };
  try {
    reply = { seq: msg.seq, result: run(msg.cmd), logs };
  } catch (err) {
    reply = { seq: msg.seq, error: (err as Error).message, logs };
  }
  port.postMessage(reply);
});
port.postMessage({ event: 'online', thread: threadId });
