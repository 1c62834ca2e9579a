// The watchdog's cost: load-time instrumentation per real plugin (ms), the interrupt check per
// loop iteration (ns, a tight loop and a memory-heavy loop, before/after), per function call
// (ns, a call-heavy recursion), and per guest call made by the host (ns, WasmVm.call with and
// without a deadline).
// Usage: node bench/watchdog.ts [--quick]   (writes bench/results/watchdog-<date>.json)
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import wabtInit from 'wabt';
import { instrument } from '../src/wasm/runtime/instrument.ts';
import { compilePlugin, inspectModule } from '../src/wasm/runtime/module.ts';
import { WasmVm } from '../src/wasm/runtime/vm.ts';

const quick = process.argv.includes('--quick');
const wabt = await wabtInit();
const root = new URL('../', import.meta.url);

// ---- load time ----
const load: Record<string, { bytes: number; functions: number; loops: number; instrumentMs: number }> = {};
for (const dir of readdirSync(new URL('plugins/', root), { withFileTypes: true })) {
  if (!dir.isDirectory()) continue;
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(readFileSync(new URL(`plugins/${dir.name}/plugin.wasm`, root)));
  } catch {
    continue;
  }
  for (let i = 0; i < 3; i++) instrument(bytes); // warm up
  const runs = quick ? 5 : 20;
  const t0 = performance.now();
  let r = instrument(bytes);
  for (let i = 1; i < runs; i++) r = instrument(bytes);
  load[dir.name] = {
    bytes: bytes.length,
    functions: r.functions,
    loops: r.loops,
    instrumentMs: +((performance.now() - t0) / runs).toFixed(2),
  };
}

// ---- per iteration, per call ----
const LOOPS = wabt
  .parseWat(
    'b.wat',
    `(module (memory (export "memory") 16)
  (func (export "malloc") (param i32) (result i32) (i32.const 1024))
  (func (export "tight") (param $n i32) (result i32) (local $acc i32)
    (loop $l
      (local.set $acc (i32.add (local.get $acc) (i32.mul (local.get $n) (i32.const 31))))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (local.get $n)))
    (local.get $acc))
  (func (export "memory_loop") (param $n i32) (result i32) (local $acc i32) (local $p i32)
    (loop $l
      (local.set $p (i32.and (i32.mul (local.get $n) (i32.const 4)) (i32.const 0xfffc)))
      (i32.store (local.get $p) (i32.add (i32.load (local.get $p)) (local.get $n)))
      (local.set $acc (i32.xor (local.get $acc) (i32.load (local.get $p))))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (local.get $n)))
    (local.get $acc))
  (func $fib (param $n i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $n) (i32.const 2)) (then (local.get $n))
      (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1))) (call $fib (i32.sub (local.get $n) (i32.const 2)))))))
  (func (export "fib") (param $n i32) (result i32) (call $fib (local.get $n)))
  (func (export "empty") (param i32) (result i32) (i32.const 0)))`,
  )
  .toBinary({}).buffer;

const plain = await WebAssembly.compile(LOOPS as Uint8Array<ArrayBuffer>);
const instrumented = (await compilePlugin(LOOPS)).module;
const vmPlain = new WasmVm(plain, inspectModule(plain), {}, { deadlineMs: 0 });
const vmInstr = new WasmVm(instrumented, inspectModule(instrumented), {}, { deadlineMs: 0 });
const vmWatched = new WasmVm(instrumented, inspectModule(instrumented), {}, { deadlineMs: 1000 });

function nsPer(fn: () => void, units: number, rounds: number): number {
  for (let i = 0; i < 3; i++) fn(); // tier up
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < rounds; i++) {
    const t = process.hrtime.bigint();
    fn();
    best = Math.min(best, Number(process.hrtime.bigint() - t) / units);
  }
  return +best.toFixed(3);
}

const N = quick ? 20_000_000 : 100_000_000;
const rounds = quick ? 5 : 10;
const perIteration = {
  tight: {
    before: nsPer(() => vmPlain.call('tight', N), N, rounds),
    after: nsPer(() => vmInstr.call('tight', N), N, rounds),
  },
  memory: {
    before: nsPer(() => vmPlain.call('memory_loop', N), N, rounds),
    after: nsPer(() => vmInstr.call('memory_loop', N), N, rounds),
  },
};
const FIB = quick ? 27 : 30;
const fibCalls = (() => {
  let a = 1;
  let b = 1;
  for (let i = 1; i < FIB; i++) [a, b] = [b, a + b];
  return 2 * b - 1; // calls made by fib(FIB)
})();
const perFunctionCall = {
  before: nsPer(() => vmPlain.call('fib', FIB), fibCalls, rounds),
  after: nsPer(() => vmInstr.call('fib', FIB), fibCalls, rounds),
};
const CALLS = quick ? 1_000_000 : 5_000_000;
const perHostCall = {
  noDeadline: nsPer(
    () => {
      for (let i = 0; i < CALLS; i++) vmInstr.call('empty', i);
    },
    CALLS,
    rounds,
  ),
  deadline: nsPer(
    () => {
      for (let i = 0; i < CALLS; i++) vmWatched.call('empty', i);
    },
    CALLS,
    rounds,
  ),
};
vmWatched.close();

const result = {
  date: new Date().toISOString(),
  node: process.version,
  loadMs: load,
  nsPerLoopIteration: perIteration,
  nsPerFunctionCall: perFunctionCall,
  nsPerGuestCallFromHost: perHostCall,
};
console.log(JSON.stringify(result, null, 2));
if (!quick)
  writeFileSync(
    new URL(`results/watchdog-${result.date.slice(0, 10)}.json`, import.meta.url),
    `${JSON.stringify(result, null, 2)}\n`,
  );
