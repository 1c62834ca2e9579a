// The watchdog thread: watches the call state of every registered VM and, when a guest call has
// run past its deadline, sets the VM's interrupt flag; the instrumented guest traps at its next
// loop head or function entry (see instrument.ts). It runs its own event loop, so it keeps time
// while the thread that serves traffic is stuck inside Wasm. Protocol: see watchdog.ts.
import { parentPort } from 'node:worker_threads';
import { FLAG, INTERRUPTED, pollMs, STATE, type WatchMessage } from './watchdog.ts';

interface Slot {
  page: Int32Array;
  deadlineMs: number;
  /** The call sequence number last seen, and when (this thread's clock) it was first seen. */
  seq: number;
  seenAt: number;
}

const slots = new Map<number, Slot>();
let timer: ReturnType<typeof setTimeout> | undefined;

function schedule(delayMs: number): void {
  if (timer) clearTimeout(timer);
  timer = slots.size > 0 ? setTimeout(scan, Math.max(1, delayMs)) : undefined;
}

function scan(): void {
  timer = undefined;
  const now = performance.now();
  let next = Number.POSITIVE_INFINITY;
  for (const [id, slot] of slots) {
    next = Math.min(next, now + pollMs(slot.deadlineMs));
    const s = Atomics.load(slot.page, STATE);
    if (s < 0) {
      // Closed, or already interrupted: nothing more to watch.
      slots.delete(id);
      continue;
    }
    if ((s & 1) === 0) {
      slot.seq = s; // idle
      continue;
    }
    if (s !== slot.seq) {
      // A call we had not seen: it started at most one poll ago; never stop it early.
      slot.seq = s;
      slot.seenAt = now;
    }
    const due = slot.seenAt + slot.deadlineMs;
    if (now >= due) {
      // Only the call we watched: if it returned meanwhile, the CAS fails and nothing happens.
      if (Atomics.compareExchange(slot.page, STATE, s, INTERRUPTED) === s) {
        Atomics.compareExchange(slot.page, FLAG, 0, 1);
        slots.delete(id);
      }
    } else next = Math.min(next, due);
  }
  if (next !== Number.POSITIVE_INFINITY) schedule(next - performance.now());
}

parentPort!.on('message', (msg: WatchMessage) => {
  if (msg.type === 'watch') {
    slots.set(msg.id, { page: new Int32Array(msg.buffer), deadlineMs: msg.deadlineMs, seq: 0, seenAt: 0 });
    if (!timer) schedule(0);
  } else if (msg.type === 'forget') {
    slots.delete(msg.id);
  }
});
