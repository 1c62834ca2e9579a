// The watchdog in one process: a WasmVm over an instrumented module whose call runs past the
// deadline is stopped by the watchdog thread with "deadline exceeded (N ms) in <callback>", the
// VM stays failed, other VMs keep working; deadline 0 leaves calls untimed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import wabtInit from 'wabt';
import { compilePlugin, inspectModule } from '../../src/wasm/runtime/module.ts';
import { WasmTrap, WasmVm } from '../../src/wasm/runtime/vm.ts';

const wabt = await wabtInit();
const SPIN = wabt
  .parseWat(
    's.wat',
    `(module (memory (export "memory") 1)
      (func (export "malloc") (param i32) (result i32) (i32.const 1024))
      (func (export "spin") (param $n i32) (result i32) (local $i i32)
        (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.or (i32.eqz (local.get $n)) (i32.lt_u (local.get $i) (local.get $n)))))
        (local.get $i)))`,
  )
  .toBinary({}).buffer;

async function vm(deadlineMs: number): Promise<WasmVm> {
  const { module, instrumentation } = await compilePlugin(SPIN);
  assert.ok(!('error' in instrumentation));
  return new WasmVm(module, inspectModule(module), {}, { deadlineMs });
}

test('a call past the deadline is stopped; the VM stays failed; another VM is unaffected', async () => {
  const a = await vm(100);
  const b = await vm(100);
  assert.ok(a.watched);
  assert.equal(a.call('spin', 1000), 1000);
  const t0 = performance.now();
  assert.throws(
    () => a.call('spin', 0),
    (err: Error) =>
      err instanceof WasmTrap && err.limit === 'deadline' && /deadline exceeded \(100 ms\) in spin/.test(err.message),
  );
  const ms = performance.now() - t0;
  // Not before the deadline; the upper bound only proves it was stopped (a loaded CI machine may
  // schedule the watchdog thread late).
  assert.ok(ms >= 99 && ms < 2000, `stopped after ${ms} ms`);
  assert.throws(() => a.call('spin', 10), /VM failed earlier: deadline exceeded/);
  assert.equal(b.call('spin', 10), 10);
  a.close();
  b.close();
});

test('calls that finish in time are never stopped, however many', async () => {
  const a = await vm(50);
  let total = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < 300) total += a.call('spin', 100_000);
  assert.ok(total > 0);
  assert.equal(a.failure, undefined);
  a.close();
});

test('deadline 0: no watchdog', async () => {
  const a = await vm(0);
  assert.equal(a.watched, false);
  assert.equal(a.call('spin', 5), 5);
});
