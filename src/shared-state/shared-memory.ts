// Shared data and shared queues in one growable SharedArrayBuffer, used by every thread of the
// process at once. One Atomics mutex guards everything (as Envoy guards its shared data with one
// mutex); critical sections are short and never run guest code. Knows nothing about Wasm or ports:
// cross-thread.ts adds the queue-ready notifications.
//
// Layout (all offsets in bytes; words are int32). Views are fixed-length views refreshed after a
// grow (length-tracking views on a growable buffer cost ~10x per element access in V8):
//   header   LOCK, WAITERS, MAGIC, NEXT_CAS, BUMP, TABLE, COUNT, QDIR, NEXT_QID, MAX_ITEMS, LENGTH,
//            free lists
//   blocks   power-of-two sized (32 B .. 1 GiB), a free list per size: [class, next-free] then payload
//   TABLE    open-addressing hash table of shared data entries: [cap, -] then cap slots (entry or 0)
//   entry    [hash, cas, keyLen, valLen] key value          (key = utf8(vm_id) 0xFF utf8(key))
//   QDIR     [cap, -] then cap slots (queue record or 0)
//   queue    [id, ownerThread+1, ownerToken, notifyPending, head, tail, ring, keyLen, hash, -] key
//   ring     [cap (power of two), -] then cap item slots; item = [len, -] bytes
//
// Crash consistency: a thread can be terminated (watchdog, OOM) inside a critical section. Every
// change is built off to the side and published by one word store (a table slot, the TABLE/QDIR/ring
// pointer, a queue's head or tail), and a block is freed only after it is unpublished. A thread that
// dies in the middle leaks at most a block; the host then clears the lock it held (breakLock).
import { SharedStateError } from './backend.ts';

const LOCK = 0;
const WAITERS = 1;
const MAGIC = 2;
const NEXT_CAS = 3;
const BUMP = 4;
const TABLE = 5;
const COUNT = 6;
const QDIR = 7;
const NEXT_QID = 8;
const MAX_ITEMS = 9;
const LENGTH = 10; // the arena's byte length, as last grown (views are refreshed when it changes)
const FREE = 16; // 31 free-list heads, indexed by size class
const HEADER_BYTES = 256;
const MAGIC_VALUE = 0x5747_5353; // "WGSS"
const MIN_CLASS = 5;
const MAX_CLASS = 30;
const PAGE = 64 * 1024;

const encoder = new TextEncoder();

export interface SharedMemoryOptions {
  /** Upper bound of the arena (virtual reservation; pages are committed as it grows). Default 1 GiB. */
  maxBytes?: number;
  /** Initial arena size. Default 1 MiB. */
  initialBytes?: number;
  /** Items per queue; enqueue beyond drops the oldest. Default 10,000 (as SharedQueues). */
  maxQueueItems?: number;
}

/** What enqueue tells the caller: whether the queue exists, and whom to wake (once per batch). */
export interface EnqueueResult {
  ok: boolean;
  /** Set when the owner must be told: its thread id and its owner token. */
  notify?: { thread: number; token: number };
}

export type ReadyCheck =
  | undefined // no such queue (released)
  | { thread: number; token: number; hasItems: boolean };

/** Creates the buffer the host hands to every thread. */
export function createSharedMemory(options: SharedMemoryOptions = {}): SharedArrayBuffer {
  const maxBytes = Math.min(options.maxBytes ?? 2 ** 30, 2 ** 31 - PAGE);
  const initial = Math.min(roundUp(Math.max(options.initialBytes ?? 2 ** 20, PAGE), PAGE), maxBytes);
  const Growable = SharedArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => SharedArrayBuffer;
  const sab = new Growable(initial, { maxByteLength: maxBytes });
  const i32 = new Int32Array(sab);
  i32[BUMP] = HEADER_BYTES;
  i32[NEXT_CAS] = 1;
  i32[NEXT_QID] = 1;
  i32[MAX_ITEMS] = options.maxQueueItems ?? 10_000;
  i32[LENGTH] = initial;
  const store = new SharedMemoryStore(sab, 0, 1000);
  store.withLock(() => {
    const table = store.allocZeroed(8 + 64 * 4);
    i32[(table + 8) >> 2] = 64;
    i32[TABLE] = table;
    const qdir = store.allocZeroed(8 + 16 * 4);
    i32[(qdir + 8) >> 2] = 16;
    i32[QDIR] = qdir;
  });
  Atomics.store(i32, MAGIC, MAGIC_VALUE);
  return sab;
}

/** One thread's handle on the shared buffer. */
export class SharedMemoryStore {
  readonly #sab: SharedArrayBuffer & { grow(n: number): void; maxByteLength: number };
  #i32: Int32Array;
  #u8: Uint8Array;
  /** This thread's id + 1 (the lock word's value while this thread holds it). */
  readonly #me: number;
  readonly #lockTimeoutMs: number;
  readonly maxQueueItems: number;

  constructor(sab: SharedArrayBuffer, threadId: number, lockTimeoutMs = 1000) {
    this.#sab = sab as SharedArrayBuffer & { grow(n: number): void; maxByteLength: number };
    this.#i32 = new Int32Array(sab, 0, 64);
    this.#u8 = new Uint8Array(sab, 0, 256);
    this.#refresh(Atomics.load(this.#i32, LENGTH));
    this.#me = threadId + 1;
    this.#lockTimeoutMs = lockTimeoutMs;
    this.maxQueueItems = this.#i32[MAX_ITEMS]!;
  }

  get byteLength(): number {
    return this.#sab.byteLength;
  }

  /** New fixed-length views over the first `length` bytes (the arena as the last grower left it). */
  #refresh(length: number): void {
    this.#i32 = new Int32Array(this.#sab, 0, length >> 2);
    this.#u8 = new Uint8Array(this.#sab, 0, length);
  }

  // ---------------------------------------------------------------- lock

  lock(): void {
    this.#acquire();
    const length = this.#i32[LENGTH]!;
    if (length !== this.#u8.length) this.#refresh(length);
  }

  #acquire(): void {
    const i32 = this.#i32;
    const me = this.#me;
    if (Atomics.compareExchange(i32, LOCK, 0, me) === 0) return;
    for (let spin = 0; spin < 200; spin++) {
      if (Atomics.load(i32, LOCK) === 0 && Atomics.compareExchange(i32, LOCK, 0, me) === 0) return;
    }
    const deadline = performance.now() + this.#lockTimeoutMs;
    for (;;) {
      const holder = Atomics.load(i32, LOCK);
      if (holder === 0) {
        if (Atomics.compareExchange(i32, LOCK, 0, me) === 0) return;
        continue;
      }
      if (holder === me) throw new SharedStateError('shared state lock already held by this thread');
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new SharedStateError(
          `shared state lock not acquired in ${this.#lockTimeoutMs} ms (held by thread ${holder - 1})`,
        );
      }
      Atomics.add(i32, WAITERS, 1);
      Atomics.wait(i32, LOCK, holder, Math.min(left, 50));
      Atomics.sub(i32, WAITERS, 1);
    }
  }

  unlock(): void {
    Atomics.store(this.#i32, LOCK, 0);
    if (Atomics.load(this.#i32, WAITERS) > 0) Atomics.notify(this.#i32, LOCK, 1);
  }

  withLock<T>(fn: () => T): T {
    this.lock();
    try {
      return fn();
    } finally {
      this.unlock();
    }
  }

  /** Host only: frees the lock if `threadId` (a thread known to be dead) held it. */
  breakLock(threadId: number): boolean {
    const broken = Atomics.compareExchange(this.#i32, LOCK, threadId + 1, 0) === threadId + 1;
    if (broken) Atomics.notify(this.#i32, LOCK);
    return broken;
  }

  /** Tests only: takes the lock and keeps it (as a thread that dies or hangs inside a call). */
  holdLockForTesting(): void {
    this.lock();
  }

  // ---------------------------------------------------------------- allocator (lock held)

  alloc(payload: number): number {
    const total = payload + 8;
    if (total > 2 ** MAX_CLASS) throw new SharedStateError(`shared state value too large (${payload} bytes)`);
    const k = Math.max(MIN_CLASS, 32 - Math.clz32(total - 1));
    const i32 = this.#i32;
    const head = i32[FREE + k]!;
    if (head !== 0) {
      i32[FREE + k] = i32[(head >> 2) + 1]!;
      return head;
    }
    const off = i32[BUMP]!;
    const end = off + 2 ** k;
    if (end > this.#sab.byteLength) {
      const max = this.#sab.maxByteLength;
      if (end > max) throw new SharedStateError(`shared state full (${max} bytes)`);
      const length = Math.min(max, roundUp(Math.max(end, this.#sab.byteLength * 2), PAGE));
      this.#sab.grow(length);
      this.#refresh(length);
      this.#i32[LENGTH] = length;
    }
    this.#i32[off >> 2] = k;
    this.#i32[BUMP] = end;
    return off;
  }

  allocZeroed(payload: number): number {
    const b = this.alloc(payload);
    this.#u8.fill(0, b + 8, b + 8 + payload);
    return b;
  }

  free(b: number): void {
    const i32 = this.#i32;
    const k = i32[b >> 2]!;
    i32[(b >> 2) + 1] = i32[FREE + k]!;
    i32[FREE + k] = b;
  }

  // ---------------------------------------------------------------- shared data

  get(vmId: string, key: string): { value: Uint8Array; cas: number } | undefined {
    const k = encodeKey(vmId, key);
    const h = hash(k);
    this.lock();
    try {
      const e = this.#i32[this.#lookup(this.#i32[TABLE]!, k, h)]!;
      if (e === 0) return undefined;
      const w = (e + 8) >> 2;
      const keyLen = this.#i32[w + 2]!;
      const valLen = this.#i32[w + 3]!;
      const start = e + 24 + keyLen;
      return { value: this.#u8.slice(start, start + valLen), cas: this.#i32[w + 1]! >>> 0 };
    } finally {
      this.unlock();
    }
  }

  set(vmId: string, key: string, value: Uint8Array, cas: number): 'ok' | 'cas_mismatch' {
    const k = encodeKey(vmId, key);
    const h = hash(k);
    this.lock();
    try {
      let i32 = this.#i32;
      let slot = this.#lookup(i32[TABLE]!, k, h);
      const old = i32[slot]!;
      if (cas !== 0 && old !== 0 && i32[((old + 8) >> 2) + 1]! >>> 0 !== cas) return 'cas_mismatch';
      if (old === 0) {
        const table = i32[TABLE]!;
        if ((i32[COUNT]! + 1) * 2 > i32[(table + 8) >> 2]!) slot = this.#lookup(this.#growTable(table), k, h);
      }
      const e = this.alloc(16 + k.length + value.length);
      i32 = this.#i32; // alloc may have grown the arena
      const w = (e + 8) >> 2;
      const next = i32[NEXT_CAS]! >>> 0;
      i32[w] = h;
      i32[w + 1] = next;
      i32[w + 2] = k.length;
      i32[w + 3] = value.length;
      this.#u8.set(k, e + 24);
      this.#u8.set(value, e + 24 + k.length);
      i32[NEXT_CAS] = next >= 0xffffffff ? 1 : next + 1;
      i32[slot] = e; // publish
      if (old !== 0) this.free(old);
      else i32[COUNT]!++;
      return 'ok';
    } finally {
      this.unlock();
    }
  }

  /** Word index of the slot holding key `k`, or of the empty slot where it would go. */
  #lookup(table: number, k: Uint8Array, h: number): number {
    const i32 = this.#i32;
    const mask = i32[(table + 8) >> 2]! - 1;
    const base = (table + 16) >> 2;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const e = i32[base + i]!;
      if (e === 0 || this.#keyIs(e + 8, 16, k, h)) return base + i;
    }
  }

  /** Does the record with payload at `p` (hash at word 0... see layout) carry key `k`? */
  #keyIs(p: number, keyAt: number, k: Uint8Array, h: number, hashWord = 0, lenWord = 2): boolean {
    const i32 = this.#i32;
    const w = p >> 2;
    if (i32[w + hashWord] !== h || i32[w + lenWord] !== k.length) return false;
    const u8 = this.#u8;
    const start = p + keyAt;
    for (let i = 0; i < k.length; i++) if (u8[start + i] !== k[i]) return false;
    return true;
  }

  #growTable(old: number): number {
    const oldCap = this.#i32[(old + 8) >> 2]!;
    const cap = oldCap * 2;
    const table = this.allocZeroed(8 + cap * 4);
    const i32 = this.#i32;
    i32[(table + 8) >> 2] = cap;
    const mask = cap - 1;
    const base = (table + 16) >> 2;
    const oldBase = (old + 16) >> 2;
    for (let j = 0; j < oldCap; j++) {
      const e = i32[oldBase + j]!;
      if (e === 0) continue;
      let i = i32[(e + 8) >> 2]! & mask;
      while (i32[base + i] !== 0) i = (i + 1) & mask;
      i32[base + i] = e;
    }
    i32[TABLE] = table; // publish
    this.free(old);
    return table;
  }

  /** Number of shared data keys (all partitions). */
  dataCount(): number {
    return this.withLock(() => this.#i32[COUNT]!);
  }

  // ---------------------------------------------------------------- shared queues

  register(vmId: string, name: string, thread: number, token: number): number {
    const k = encodeKey(vmId, name);
    const h = hash(k);
    this.lock();
    try {
      let i32 = this.#i32;
      const found = this.#findQueueByKey(k, h);
      if (found !== 0) {
        const w = (found + 8) >> 2;
        i32[w + 2] = token;
        i32[w + 1] = thread + 1;
        return i32[w]! >>> 0;
      }
      let slot = this.#freeQueueSlot(i32[QDIR]!);
      if (slot === 0) slot = this.#freeQueueSlot(this.#growQdir(i32[QDIR]!));
      const ring = this.allocZeroed(8 + 16 * 4);
      const q = this.alloc(40 + k.length);
      i32 = this.#i32; // alloc may have grown the arena
      i32[(ring + 8) >> 2] = 16;
      const w = (q + 8) >> 2;
      const id = i32[NEXT_QID]! >>> 0;
      i32[NEXT_QID] = id >= 0xffffffff ? 1 : id + 1;
      i32[w] = id;
      i32[w + 1] = thread + 1;
      i32[w + 2] = token;
      i32[w + 3] = 0;
      i32[w + 4] = 0;
      i32[w + 5] = 0;
      i32[w + 6] = ring;
      i32[w + 7] = k.length;
      i32[w + 8] = h;
      this.#u8.set(k, q + 48);
      i32[slot] = q; // publish
      return id;
    } finally {
      this.unlock();
    }
  }

  resolve(vmId: string, name: string): number | undefined {
    const k = encodeKey(vmId, name);
    const h = hash(k);
    this.lock();
    try {
      const q = this.#findQueueByKey(k, h);
      return q === 0 ? undefined : this.#i32[(q + 8) >> 2]! >>> 0;
    } finally {
      this.unlock();
    }
  }

  enqueue(id: number, value: Uint8Array): EnqueueResult {
    this.lock();
    try {
      let i32 = this.#i32;
      const q = this.#findQueue(id);
      if (q === 0) return { ok: false };
      const w = (q + 8) >> 2;
      const head = i32[w + 4]! >>> 0;
      const tail = i32[w + 5]! >>> 0;
      let len = (tail - head) >>> 0;
      let ring = i32[w + 6]!;
      if (len === i32[(ring + 8) >> 2]! && len < this.maxQueueItems) ring = this.#growRing(w, ring, head, tail);
      const item = this.alloc(8 + value.length);
      i32 = this.#i32; // alloc may have grown the arena
      i32[(item + 8) >> 2] = value.length;
      this.#u8.set(value, item + 16);
      const mask = i32[(ring + 8) >> 2]! - 1;
      const slots = (ring + 16) >> 2;
      if (len >= this.maxQueueItems) {
        const oldest = i32[slots + (head & mask)]!;
        i32[w + 4] = head + 1; // publish: the oldest item is dropped
        this.free(oldest);
        len--;
      }
      i32[slots + (tail & mask)] = item;
      i32[w + 5] = tail + 1; // publish
      if (i32[w + 3] !== 0) return { ok: true };
      i32[w + 3] = 1;
      return { ok: true, notify: { thread: i32[w + 1]! - 1, token: i32[w + 2]! } };
    } finally {
      this.unlock();
    }
  }

  dequeue(id: number): Uint8Array | null | undefined {
    this.lock();
    try {
      const i32 = this.#i32;
      const q = this.#findQueue(id);
      if (q === 0) return undefined;
      const w = (q + 8) >> 2;
      const head = i32[w + 4]! >>> 0;
      if (head === i32[w + 5]! >>> 0) return null;
      const ring = i32[w + 6]!;
      const item = i32[((ring + 16) >> 2) + (head & (i32[(ring + 8) >> 2]! - 1))]!;
      const len = i32[(item + 8) >> 2]!;
      const value = this.#u8.slice(item + 16, item + 16 + len);
      i32[w + 4] = head + 1; // publish
      this.free(item);
      return value;
    } finally {
      this.unlock();
    }
  }

  /**
   * The owner side of a notification: clears the queue's pending flag if `thread` still owns it
   * (another thread that took it over is told instead, the flag kept) and says whether it has items.
   */
  takeReady(id: number, thread: number): ReadyCheck {
    this.lock();
    try {
      const i32 = this.#i32;
      const q = this.#findQueue(id);
      if (q === 0) return undefined;
      const w = (q + 8) >> 2;
      const owner = i32[w + 1]! - 1;
      if (owner === thread) i32[w + 3] = 0;
      return { thread: owner, token: i32[w + 2]!, hasItems: i32[w + 4] !== i32[w + 5] };
    } finally {
      this.unlock();
    }
  }

  /** Removes the queues owned by `thread` (with `token`, or any token): the VM or the thread is gone. */
  release(thread: number, token?: number): number {
    this.lock();
    try {
      const i32 = this.#i32;
      const qdir = i32[QDIR]!;
      const cap = i32[(qdir + 8) >> 2]!;
      const base = (qdir + 16) >> 2;
      let removed = 0;
      for (let j = 0; j < cap; j++) {
        const q = i32[base + j]!;
        if (q === 0) continue;
        const w = (q + 8) >> 2;
        if (i32[w + 1] !== thread + 1 || (token !== undefined && i32[w + 2] !== token)) continue;
        i32[base + j] = 0; // publish: the queue is gone
        const ring = i32[w + 6]!;
        const mask = i32[(ring + 8) >> 2]! - 1;
        const tail = i32[w + 5]! >>> 0;
        for (let c = i32[w + 4]! >>> 0; c !== tail; c = (c + 1) >>> 0) this.free(i32[((ring + 16) >> 2) + (c & mask)]!);
        this.free(ring);
        this.free(q);
        removed++;
      }
      return removed;
    } finally {
      this.unlock();
    }
  }

  /** Number of registered queues. */
  queueCount(): number {
    return this.withLock(() => {
      const qdir = this.#i32[QDIR]!;
      const cap = this.#i32[(qdir + 8) >> 2]!;
      let n = 0;
      for (let j = 0; j < cap; j++) if (this.#i32[((qdir + 16) >> 2) + j] !== 0) n++;
      return n;
    });
  }

  #findQueueByKey(k: Uint8Array, h: number): number {
    const i32 = this.#i32;
    const qdir = i32[QDIR]!;
    const cap = i32[(qdir + 8) >> 2]!;
    const base = (qdir + 16) >> 2;
    for (let j = 0; j < cap; j++) {
      const q = i32[base + j]!;
      if (q !== 0 && this.#keyIs(q + 8, 40, k, h, 8, 7)) return q;
    }
    return 0;
  }

  #findQueue(id: number): number {
    const i32 = this.#i32;
    const qdir = i32[QDIR]!;
    const cap = i32[(qdir + 8) >> 2]!;
    const base = (qdir + 16) >> 2;
    for (let j = 0; j < cap; j++) {
      const q = i32[base + j]!;
      if (q !== 0 && i32[(q + 8) >> 2]! >>> 0 === id) return q;
    }
    return 0;
  }

  /** Word index of a free directory slot, or 0 when full. */
  #freeQueueSlot(qdir: number): number {
    const i32 = this.#i32;
    const cap = i32[(qdir + 8) >> 2]!;
    const base = (qdir + 16) >> 2;
    for (let j = 0; j < cap; j++) if (i32[base + j] === 0) return base + j;
    return 0;
  }

  #growQdir(old: number): number {
    const oldCap = this.#i32[(old + 8) >> 2]!;
    const qdir = this.allocZeroed(8 + oldCap * 8);
    const i32 = this.#i32;
    i32[(qdir + 8) >> 2] = oldCap * 2;
    for (let j = 0; j < oldCap; j++) i32[((qdir + 16) >> 2) + j] = i32[((old + 16) >> 2) + j]!;
    i32[QDIR] = qdir; // publish
    this.free(old);
    return qdir;
  }

  /** Doubles a full ring; items keep their positions modulo the new capacity. */
  #growRing(w: number, old: number, head: number, tail: number): number {
    const oldCap = this.#i32[(old + 8) >> 2]!;
    const cap = oldCap * 2;
    const ring = this.alloc(8 + cap * 4);
    const i32 = this.#i32;
    i32[(ring + 8) >> 2] = cap;
    for (let c = head; c !== tail; c = (c + 1) >>> 0) {
      i32[((ring + 16) >> 2) + (c & (cap - 1))] = i32[((old + 16) >> 2) + (c & (oldCap - 1))]!;
    }
    i32[w + 6] = ring; // publish
    this.free(old);
    return ring;
  }
}

/** utf8(vm_id) 0xFF utf8(key): 0xFF never occurs in UTF-8, so partitions cannot collide. */
function encodeKey(vmId: string, key: string): Uint8Array {
  if (vmId.length === 0) {
    // the usual case (Istio leaves vm_id empty): an ASCII key is copied without the encoder
    const out = new Uint8Array(key.length + 1);
    out[0] = 0xff;
    let i = 0;
    for (; i < key.length; i++) {
      const c = key.charCodeAt(i);
      if (c >= 0x80) break;
      out[i + 1] = c;
    }
    if (i === key.length) return out;
  }
  const out = new Uint8Array((vmId.length + key.length) * 3 + 1);
  const a = vmId.length === 0 ? 0 : encoder.encodeInto(vmId, out).written;
  out[a] = 0xff;
  const b = encoder.encodeInto(key, out.subarray(a + 1)).written;
  return out.subarray(0, a + 1 + b);
}

/** FNV-1a. */
function hash(k: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < k.length; i++) h = Math.imul(h ^ k[i]!, 0x01000193);
  return h | 0;
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}
