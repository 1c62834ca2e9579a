// The load-time instrumentation (src/wasm/runtime/instrument.ts): real SDK plugins round-trip
// (every other section byte for byte, code still valid), every instruction family is decoded,
// interrupt checks trap once the flag is set, grows past the cap fail, start functions move.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import wabtInit from 'wabt';
import {
  FLAG_MEMORY,
  INTERRUPT_EXPORT,
  InstrumentError,
  instrument,
  START_EXPORT,
} from '../../src/wasm/runtime/instrument.ts';
import { parseByteSize } from '../../src/wasm/runtime/limits.ts';
import { ROOT } from '../helpers/proxy.ts';

const wabt = await wabtInit();
const FEATURES = {
  multi_memory: true,
  threads: true,
  simd: true,
  exceptions: true,
  tail_call: true,
  reference_types: true,
  bulk_memory: true,
  sat_float_to_int: true,
  sign_extension: true,
  mutable_globals: true,
  function_references: true,
};
function wat(text: string): Uint8Array {
  const m = wabt.parseWat('t.wat', text, FEATURES);
  try {
    return m.toBinary({}).buffer;
  } finally {
    m.destroy();
  }
}

/** The sections of a module: [id, bytes] in order. */
function sections(bytes: Uint8Array): [number, string][] {
  const out: [number, string][] = [];
  let p = 8;
  while (p < bytes.length) {
    const id = bytes[p++]!;
    let size = 0;
    let shift = 0;
    for (;;) {
      const b = bytes[p++]!;
      size |= (b & 0x7f) << shift;
      shift += 7;
      if (!(b & 0x80)) break;
    }
    out.push([id, Buffer.from(bytes.subarray(p, p + size)).toString('hex')]);
    p += size;
  }
  return out;
}

const plugins = readdirSync(join(ROOT, 'plugins'), { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => join(ROOT, 'plugins', d.name, 'plugin.wasm'))
  .filter((p) => {
    try {
      readFileSync(p);
      return true;
    } catch {
      return false;
    }
  });

describe('instrument: real SDK plugins', () => {
  test('there are plugins to check', () => assert.ok(plugins.length >= 5));
  for (const path of plugins) {
    test(path.slice(ROOT.length), async () => {
      const bytes = new Uint8Array(readFileSync(path));
      const r = instrument(bytes, { memoryLimitBytes: 256 * 1024 * 1024 });
      const module = await WebAssembly.compile(r.bytes as Uint8Array<ArrayBuffer>);
      const original = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
      assert.deepEqual(WebAssembly.Module.imports(module), WebAssembly.Module.imports(original));
      const exports = WebAssembly.Module.exports(module).filter(
        (e) => e.name !== INTERRUPT_EXPORT && e.name !== START_EXPORT,
      );
      assert.deepEqual(exports, WebAssembly.Module.exports(original));
      assert.ok(r.loops > 0 && r.functions > 0);
      // Everything but the sections the instrumentation owns is unchanged, in order.
      const owned = new Set([1, 3, 5, 7, 8, 10]);
      const keep = (s: [number, string][]) => s.filter(([id]) => !owned.has(id));
      assert.deepEqual(keep(sections(r.bytes)), keep(sections(bytes)));
      // Custom sections (names, producers) included.
      assert.deepEqual(
        WebAssembly.Module.customSections(module, 'name').map((b) => Buffer.from(b).toString('hex')),
        WebAssembly.Module.customSections(original, 'name').map((b) => Buffer.from(b).toString('hex')),
      );
    });
  }
});

describe('instrument: instructions', () => {
  const EVERYTHING = `(module
    (type $t (func (param i32) (result i32)))
    (import "env" "f" (func $f (param i32) (result i32)))
    (memory $m 1 2)
    (memory $shared 1 1 shared)
    (table $tab 4 funcref)
    (tag $e (param i32))
    (global $g (mut i32) (i32.const 0))
    (elem (table $tab) (i32.const 0) func $id)
    (data $d "abcdefgh")
    (func $id (type $t) (local.get 0))
    (func (export "run") (param $n i32) (result i32)
      (local $acc i32) (local $v v128) (local $r funcref)
      (block $out
        (loop $l
          (br_if $out (i32.eqz (local.get $n)))
          (local.set $acc (i32.add (local.get $acc) (call_indirect (type $t) (local.get $n) (i32.const 0))))
          (local.set $n (i32.sub (local.get $n) (i32.const 1)))
          (br $l)))
      ;; SIMD: const, shuffle, lanes, loads and stores with lanes
      (local.set $v (v128.const i32x4 1 2 3 4))
      (local.set $v (i8x16.shuffle 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 (local.get $v) (local.get $v)))
      (local.set $v (i32x4.replace_lane 1 (local.get $v) (i32.const 40)))
      (v128.store offset=16 (i32.const 0) (local.get $v))
      (local.set $v (v128.load32_lane 2 (i32.const 16) (local.get $v)))
      (local.set $v (v128.load64_zero (i32.const 16)))
      (local.set $acc (i32.add (local.get $acc) (i32x4.extract_lane 1 (local.get $v))))
      ;; atomics on the shared memory, a fence
      (drop (i32.atomic.rmw.add $shared (i32.const 8) (i32.const 5)))
      (atomic.fence)
      (local.set $acc (i32.add (local.get $acc) (i32.atomic.load $shared (i32.const 8))))
      ;; bulk memory, memory.size on two memories, saturating truncation, sign extension
      (memory.init $d (i32.const 100) (i32.const 0) (i32.const 8))
      (memory.copy (i32.const 200) (i32.const 100) (i32.const 8))
      (memory.fill (i32.const 300) (i32.const 7) (i32.const 4))
      (data.drop $d)
      (local.set $acc (i32.add (local.get $acc) (i32.load8_u (i32.const 203))))
      (local.set $acc (i32.add (local.get $acc) (i32.trunc_sat_f32_s (f32.const 2.5))))
      (local.set $acc (i32.add (local.get $acc) (i32.extend8_s (i32.const 0x7f))))
      (local.set $acc (i32.add (local.get $acc) (i32.add (memory.size $m) (memory.size $shared))))
      ;; reference types, tables, select t, f64 constants
      (local.set $r (ref.func $id))
      (table.set $tab (i32.const 1) (local.get $r))
      (drop (table.grow $tab (ref.null func) (i32.const 1)))
      (local.set $acc (i32.add (local.get $acc) (table.size $tab)))
      (local.set $acc (select (result i32) (local.get $acc) (i32.const 0) (i32.const 1)))
      (local.set $acc (i32.add (local.get $acc) (i32.trunc_f64_s (f64.const 1.5))))
      ;; exceptions (legacy try/catch)
      (try (do (throw $e (i32.const 11))) (catch $e (local.set $acc (i32.add (local.get $acc)))))
      ;; a memory.grow on a capped memory goes through the helper
      (local.set $acc (i32.add (local.get $acc) (memory.grow (i32.const 0))))
      (global.set $g (local.get $acc))
      (local.get $acc))
    (func (export "tail") (param i32) (result i32) (return_call $id (local.get 0))))`;

  test('a module using every instruction family computes the same after instrumentation', async () => {
    const bytes = wat(EVERYTHING);
    const r = instrument(bytes, { memoryLimitBytes: 65536 });
    const imports = { env: { f: (x: number) => x } };
    const before = new WebAssembly.Instance(new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>), imports);
    const after = new WebAssembly.Instance(new WebAssembly.Module(r.bytes as Uint8Array<ArrayBuffer>), imports);
    const run = (i: WebAssembly.Instance) => (i.exports.run as (n: number) => number)(10);
    assert.equal(run(after), run(before));
    assert.equal((after.exports.tail as (n: number) => number)(7), 7);
    assert.equal(r.loops, 1);
    assert.equal(r.grows, 1);
    assert.equal(r.cappedMemories, 1);
    assert.ok(after.exports[INTERRUPT_EXPORT] instanceof WebAssembly.Memory);
  });

  test('a set flag traps at the next loop head and at function entry', () => {
    const bytes = wat(`(module (memory (export "memory") 1)
      (func (export "count") (param $n i32) (result i32) (local $i i32)
        (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1))) (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
        (local.get $i))
      (func (export "leaf") (result i32) (i32.const 42)))`);
    const inst = new WebAssembly.Instance(new WebAssembly.Module(instrument(bytes).bytes as Uint8Array<ArrayBuffer>));
    const flag = new Int32Array((inst.exports[INTERRUPT_EXPORT] as WebAssembly.Memory).buffer);
    assert.equal((inst.exports.count as (n: number) => number)(1000), 1000);
    assert.equal((inst.exports.leaf as () => number)(), 42);
    Atomics.store(flag, 0, 1);
    assert.throws(() => (inst.exports.count as (n: number) => number)(1000), /unreachable/);
    assert.throws(() => (inst.exports.leaf as () => number)(), /unreachable/);
  });

  test('memories are capped; a grow past the cap sets flag 2 and traps', () => {
    const bytes = wat(`(module (memory (export "memory") 1)
      (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))`);
    const r = instrument(bytes, { memoryLimitBytes: 4 * 65536 });
    const inst = new WebAssembly.Instance(new WebAssembly.Module(r.bytes as Uint8Array<ArrayBuffer>));
    const grow = inst.exports.grow as (n: number) => number;
    assert.equal(grow(2), 1);
    assert.equal(grow(1), 3);
    assert.throws(() => grow(1), /unreachable/);
    assert.equal(
      Atomics.load(new Int32Array((inst.exports[INTERRUPT_EXPORT] as WebAssembly.Memory).buffer), 0),
      FLAG_MEMORY,
    );
    // A module whose own maximum is under the cap keeps its semantics: grow returns -1.
    const own = wat(`(module (memory (export "memory") 1 2)
      (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))`);
    const r2 = instrument(own, { memoryLimitBytes: 4 * 65536 });
    assert.equal(r2.grows, 0);
    const i2 = new WebAssembly.Instance(new WebAssembly.Module(r2.bytes as Uint8Array<ArrayBuffer>));
    assert.equal((i2.exports.grow as (n: number) => number)(5), -1);
    // Initial memory over the cap: refused at load.
    assert.throws(
      () => instrument(wat('(module (memory 10))'), { memoryLimitBytes: 4 * 65536 }),
      /over the memory limit/,
    );
  });

  test('a start function is exported instead of run by instantiation', () => {
    const bytes = wat(`(module (global $g (export "g") (mut i32) (i32.const 0))
      (func $init (global.set $g (i32.const 7))) (start $init))`);
    const r = instrument(bytes);
    assert.ok(r.startMoved);
    const inst = new WebAssembly.Instance(new WebAssembly.Module(r.bytes as Uint8Array<ArrayBuffer>));
    assert.equal((inst.exports.g as unknown as { value: number }).value, 0);
    (inst.exports[START_EXPORT] as () => void)();
    assert.equal((inst.exports.g as unknown as { value: number }).value, 7);
  });

  test('modules without memory, exports or code; imported memories; already instrumented', async () => {
    for (const text of [
      '(module)',
      '(module (func (export "f")))',
      '(module (import "env" "memory" (memory 1)) (func (export "f") (drop (memory.grow (i32.const 1)))))',
    ]) {
      const r = instrument(wat(text), { memoryLimitBytes: 65536 });
      await WebAssembly.compile(r.bytes as Uint8Array<ArrayBuffer>);
    }
    const once = instrument(wat('(module (func (export "f")))')).bytes;
    assert.throws(() => instrument(once), InstrumentError);
    assert.throws(() => instrument(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])), /not a WebAssembly module/);
  });
});

test('parseByteSize', () => {
  assert.equal(parseByteSize('512Mi'), 512 * 1024 * 1024);
  assert.equal(parseByteSize('1Gi'), 1024 ** 3);
  assert.equal(parseByteSize('64Ki'), 65536);
  assert.equal(parseByteSize('500M'), 500e6);
  assert.equal(parseByteSize('1048576'), 1048576);
  assert.equal(parseByteSize('lots'), undefined);
  assert.equal(parseByteSize('-1Mi'), undefined);
});
