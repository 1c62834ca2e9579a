// Load-time instrumentation that makes a guest stoppable from another thread (the watchdog) and
// holds its memory under a cap. V8 cannot pre-empt Wasm running on the thread that serves traffic,
// so the guest is made to check an interrupt word itself:
//
// - a shared memory of one page is appended to the module's memories (a new index after every
//   existing one, so no index shifts) and exported as `__wasmgate_interrupt`; word 0 is the
//   interrupt flag, the rest belongs to the host (see watchdog.ts);
// - at every function entry and at the head of every `loop` body,
//   `i32.const 0; i32.atomic.load <flag>; if; unreachable; end` traps once the flag is set;
// - every defined 32-bit memory whose maximum is absent or above the cap gets the cap as its
//   maximum, and its `memory.grow` calls go through an appended helper that sets the flag to 2
//   and traps when a grow fails, so a guest that tries to pass the cap is failed at once;
// - a start function is no longer run by instantiation (the host cannot watch that call): it is
//   exported as `__wasmgate_start` and the host calls it right after instantiation.
//
// Only the type, function, memory, export, start and code sections change; every other section
// (custom sections included) is copied byte for byte. Instructions are decoded only to find
// their ends: immediates are copied as they are.

export const INTERRUPT_EXPORT = '__wasmgate_interrupt';
export const START_EXPORT = '__wasmgate_start';
/** Values of the flag word (word 0 of the interrupt memory). */
export const FLAG_DEADLINE = 1;
export const FLAG_MEMORY = 2;
const PAGE = 65536;

export interface InstrumentOptions {
  /** Cap for every defined memory, in bytes (rounded down to whole pages); 0 or undefined: none. */
  memoryLimitBytes?: number;
}

export interface InstrumentResult {
  bytes: Uint8Array;
  functions: number;
  loops: number;
  /** memory.grow sites routed through the cap helper. */
  grows: number;
  /** Defined memories whose maximum was lowered to the cap. */
  cappedMemories: number;
  /** The exported start function, when the module had a start section. */
  startMoved: boolean;
}

export class InstrumentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InstrumentError';
  }
}

// ---- byte reading and writing ----

class Reader {
  readonly b: Uint8Array;
  pos: number;
  readonly end: number;
  constructor(b: Uint8Array, pos = 0, end = b.length) {
    this.b = b;
    this.pos = pos;
    this.end = end;
  }
  byte(): number {
    if (this.pos >= this.end) throw new InstrumentError(`unexpected end of data at ${this.pos}`);
    return this.b[this.pos++]!;
  }
  u32(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      const byte = this.byte();
      if (shift < 32) result |= (byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return result >>> 0;
      shift += 7;
      if (shift > 35) throw new InstrumentError(`LEB128 too long at ${this.pos}`);
    }
  }
  /** A signed LEB128 of up to 33 bits (block types, heap types). */
  s33(): number {
    let result = 0;
    let shift = 0;
    let byte: number;
    do {
      byte = this.byte();
      result += (byte & 0x7f) * 2 ** shift;
      shift += 7;
      if (shift > 35) throw new InstrumentError(`LEB128 too long at ${this.pos}`);
    } while (byte & 0x80);
    if (shift < 64 && byte & 0x40) result -= 2 ** shift;
    return result;
  }
  /** Skips one LEB128 of any width (u32, u64, s32, s64). */
  skipLeb(): void {
    for (let i = 0; i < 10; i++) if ((this.byte() & 0x80) === 0) return;
    throw new InstrumentError(`LEB128 too long at ${this.pos}`);
  }
  skip(n: number): void {
    if (this.pos + n > this.end) throw new InstrumentError(`unexpected end of data at ${this.pos}`);
    this.pos += n;
  }
}

class Writer {
  #buf = new Uint8Array(1024);
  length = 0;
  #grow(n: number): void {
    if (this.length + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.length));
    this.#buf = next;
  }
  byte(v: number): void {
    this.#grow(1);
    this.#buf[this.length++] = v;
  }
  bytes(v: Uint8Array): void {
    this.#grow(v.length);
    this.#buf.set(v, this.length);
    this.length += v.length;
  }
  u32(v: number): void {
    v >>>= 0;
    do {
      let byte = v & 0x7f;
      v >>>= 7;
      if (v !== 0) byte |= 0x80;
      this.byte(byte);
    } while (v !== 0);
  }
  name(s: string): void {
    const b = new TextEncoder().encode(s);
    this.u32(b.length);
    this.bytes(b);
  }
  get result(): Uint8Array {
    return this.#buf.subarray(0, this.length);
  }
}

/** A vector's element count and where its elements start. */
function vecHead(body: Uint8Array): { count: number; rest: Uint8Array } {
  const r = new Reader(body);
  const count = r.u32();
  return { count, rest: body.subarray(r.pos) };
}

// ---- types that appear in immediates ----

/** A value type: one byte, or 0x63/0x64 followed by a heap type (typed function references, GC). */
function skipValType(r: Reader): void {
  const t = r.byte();
  if (t === 0x63 || t === 0x64) r.s33();
}

/** A block type: empty (0x40), a value type, or a type index (s33). */
function skipBlockType(r: Reader): void {
  const v = r.s33();
  if (v === -0x1d || v === -0x1c) r.s33(); // 0x63 / 0x64 ref types carry a heap type
}

function skipMemarg(r: Reader): void {
  const align = r.u32();
  if (align & 0x40) r.u32(); // multi-memory: memory index
  r.skipLeb(); // offset (u64 for memory64)
}

function skipLimits(r: Reader): void {
  const flags = r.byte();
  r.skipLeb();
  if (flags & 1) r.skipLeb();
}

// ---- instructions ----

/**
 * Decodes one instruction at r.pos, leaving r after its immediates. Returns the opcode byte (the
 * prefix for 0xfb..0xfe); for memory.grow, its memory index is left in growMemidx.
 */
/** The memory index of the last memory.grow decoded by skipInstruction. */
let growMemidx = 0;

function skipInstruction(r: Reader): number {
  const op = r.byte();
  switch (op) {
    case 0x02: // block
    case 0x03: // loop
    case 0x04: // if
    case 0x06: // try (legacy exceptions)
      skipBlockType(r);
      return op;
    case 0x07: // catch tag
    case 0x08: // throw tag
    case 0x09: // rethrow label
    case 0x0c: // br
    case 0x0d: // br_if
    case 0x10: // call
    case 0x12: // return_call
    case 0x14: // call_ref
    case 0x15: // return_call_ref
    case 0x18: // delegate
    case 0x20: // local.get
    case 0x21: // local.set
    case 0x22: // local.tee
    case 0x23: // global.get
    case 0x24: // global.set
    case 0x25: // table.get
    case 0x26: // table.set
    case 0xd2: // ref.func
    case 0xd5: // br_on_null
    case 0xd6: // br_on_non_null
      r.u32();
      return op;
    case 0x0e: {
      // br_table
      const n = r.u32();
      for (let i = 0; i <= n; i++) r.u32();
      return op;
    }
    case 0x11: // call_indirect
    case 0x13: // return_call_indirect
      r.u32();
      r.u32();
      return op;
    case 0x1c: {
      // select t*
      const n = r.u32();
      for (let i = 0; i < n; i++) skipValType(r);
      return op;
    }
    case 0x1f: {
      // try_table
      skipBlockType(r);
      const n = r.u32();
      for (let i = 0; i < n; i++) {
        const kind = r.byte();
        if (kind === 0x00 || kind === 0x01)
          r.u32(); // catch / catch_ref: tag
        else if (kind !== 0x02 && kind !== 0x03) throw new InstrumentError(`unknown try_table catch kind ${kind}`);
        r.u32(); // label
      }
      return op;
    }
    case 0x3f: // memory.size
      r.u32();
      return op;
    case 0x40: // memory.grow
      growMemidx = r.u32();
      return op;
    case 0x41: // i32.const
    case 0x42: // i64.const
      r.skipLeb();
      return op;
    case 0x43: // f32.const
      r.skip(4);
      return op;
    case 0x44: // f64.const
      r.skip(8);
      return op;
    case 0xd0: // ref.null heaptype
      r.s33();
      return op;
    case 0xfb:
      skipGc(r);
      return op;
    case 0xfc:
      skipFc(r);
      return op;
    case 0xfd:
      skipSimd(r);
      return op;
    case 0xfe:
      skipAtomic(r);
      return op;
    default:
      if (op >= 0x28 && op <= 0x3e) {
        skipMemarg(r); // loads and stores
        return op;
      }
      // No immediates: control (unreachable, nop, else, end, return, catch_all, throw_ref, drop,
      // select), numeric 0x45..0xc4, ref.is_null, ref.eq, ref.as_non_null.
      if (
        op === 0x00 ||
        op === 0x01 ||
        op === 0x05 ||
        op === 0x0a ||
        op === 0x0b ||
        op === 0x0f ||
        op === 0x19 ||
        op === 0x1a ||
        op === 0x1b ||
        (op >= 0x45 && op <= 0xc4) ||
        op === 0xd1 ||
        op === 0xd3 ||
        op === 0xd4
      )
        return op;
      throw new InstrumentError(`unknown opcode 0x${op.toString(16)} at ${r.pos - 1}`);
  }
}

function skipFc(r: Reader): void {
  const sub = r.u32();
  if (sub <= 7) return; // saturating truncations
  switch (sub) {
    case 8: // memory.init data mem
    case 10: // memory.copy mem mem
    case 12: // table.init elem table
    case 14: // table.copy table table
      r.u32();
      r.u32();
      return;
    case 9: // data.drop
    case 11: // memory.fill mem
    case 13: // elem.drop
    case 15: // table.grow
    case 16: // table.size
    case 17: // table.fill
      r.u32();
      return;
    default:
      throw new InstrumentError(`unknown 0xfc opcode ${sub} at ${r.pos}`);
  }
}

function skipSimd(r: Reader): void {
  const sub = r.u32();
  if (sub <= 11 || sub === 92 || sub === 93) {
    skipMemarg(r); // v128.load*, v128.store, v128.load32_zero, v128.load64_zero
    return;
  }
  if (sub === 12 || sub === 13) {
    r.skip(16); // v128.const, i8x16.shuffle
    return;
  }
  if (sub >= 21 && sub <= 34) {
    r.skip(1); // extract_lane / replace_lane: lane index
    return;
  }
  if (sub >= 84 && sub <= 91) {
    skipMemarg(r); // v128.load*_lane / store*_lane
    r.skip(1);
    return;
  }
  // Everything else (arithmetic, comparisons, relaxed SIMD 0x100..0x113) has no immediates.
  if (sub <= 0xff || (sub >= 0x100 && sub <= 0x113)) return;
  throw new InstrumentError(`unknown 0xfd opcode ${sub} at ${r.pos}`);
}

function skipAtomic(r: Reader): void {
  const sub = r.u32();
  if (sub === 3) {
    r.byte(); // atomic.fence: reserved 0x00
    return;
  }
  if (sub <= 2 || (sub >= 0x10 && sub <= 0x4e)) {
    skipMemarg(r);
    return;
  }
  throw new InstrumentError(`unknown 0xfe opcode ${sub} at ${r.pos}`);
}

function skipGc(r: Reader): void {
  const sub = r.u32();
  switch (sub) {
    case 2: // struct.get t f
    case 3:
    case 4:
    case 5: // struct.set t f
    case 8: // array.new_fixed t n
    case 9: // array.new_data t d
    case 10: // array.new_elem t e
    case 17: // array.copy t t
    case 18: // array.init_data t d
    case 19: // array.init_elem t e
      r.u32();
      r.u32();
      return;
    case 0: // struct.new t
    case 1:
    case 6: // array.new t
    case 7:
    case 11: // array.get t
    case 12:
    case 13:
    case 14: // array.set t
    case 16: // array.fill t
      r.u32();
      return;
    case 15: // array.len
    case 26: // any.convert_extern
    case 27: // extern.convert_any
    case 28: // ref.i31
    case 29:
    case 30:
      return;
    case 20: // ref.test ht
    case 21:
    case 22: // ref.cast ht
    case 23:
      r.s33();
      return;
    case 24: // br_on_cast flags l ht ht
    case 25:
      r.byte();
      r.u32();
      r.s33();
      r.s33();
      return;
    default:
      throw new InstrumentError(`unknown 0xfb opcode ${sub} at ${r.pos}`);
  }
}

// ---- module structure ----

interface Section {
  id: number;
  /** The whole section, header included. */
  raw: Uint8Array;
  /** The payload. */
  body: Uint8Array;
}

function readSections(bytes: Uint8Array): Section[] {
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d)
    throw new InstrumentError('not a WebAssembly module');
  if (bytes[4] !== 1 || bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0)
    throw new InstrumentError('not a WebAssembly core module, version 1');
  const r = new Reader(bytes, 8);
  const out: Section[] = [];
  while (r.pos < r.end) {
    const start = r.pos;
    const id = r.byte();
    const size = r.u32();
    const bodyStart = r.pos;
    r.skip(size);
    out.push({ id, raw: bytes.subarray(start, r.pos), body: bytes.subarray(bodyStart, r.pos) });
  }
  return out;
}

function section(id: number, body: Uint8Array): Uint8Array {
  const w = new Writer();
  w.byte(id);
  w.u32(body.length);
  w.bytes(body);
  return w.result.slice();
}

/** Position in the canonical section order (custom sections have none). */
const ORDER: Record<number, number> = {
  1: 1,
  2: 2,
  3: 3,
  4: 4,
  5: 5,
  13: 6,
  6: 7,
  7: 8,
  8: 9,
  9: 10,
  12: 11,
  10: 12,
  11: 13,
};

const SEC_TYPE = 1;
const SEC_IMPORT = 2;
const SEC_FUNCTION = 3;
const SEC_MEMORY = 5;
const SEC_EXPORT = 7;
const SEC_START = 8;
const SEC_CODE = 10;

/**
 * Instruments a module (see the file comment). Throws InstrumentError on a module it cannot
 * decode; the caller then decides whether to run it uninstrumented.
 */
export function instrument(bytes: Uint8Array, options: InstrumentOptions = {}): InstrumentResult {
  const sections = readSections(bytes);
  const find = (id: number) => sections.find((s) => s.id === id);
  const exportBody = find(SEC_EXPORT)?.body;
  if (exportBody && Buffer.from(exportBody).includes(INTERRUPT_EXPORT))
    throw new InstrumentError('module is already instrumented');
  const capPages =
    options.memoryLimitBytes && options.memoryLimitBytes > 0
      ? Math.max(1, Math.floor(options.memoryLimitBytes / PAGE))
      : undefined;

  // Imports: how many functions and memories come first in their index spaces.
  let importedFuncs = 0;
  let importedMems = 0;
  const imp = find(SEC_IMPORT);
  if (imp) {
    const r = new Reader(imp.body);
    const n = r.u32();
    for (let i = 0; i < n; i++) {
      r.skip(r.u32()); // module
      r.skip(r.u32()); // name
      const kind = r.byte();
      if (kind === 0x00) {
        r.u32();
        importedFuncs++;
      } else if (kind === 0x01) {
        skipValType(r);
        skipLimits(r);
      } else if (kind === 0x02) {
        skipLimits(r);
        importedMems++;
      } else if (kind === 0x03) {
        skipValType(r);
        r.byte();
      } else if (kind === 0x04) {
        r.byte();
        r.u32();
      } else throw new InstrumentError(`unknown import kind ${kind}`);
    }
  }

  // Memories: cap the defined ones, append the interrupt memory.
  const mem = find(SEC_MEMORY);
  let definedMems = 0;
  let cappedMemories = 0;
  /** Memory indexes whose grows are routed through the helper. */
  const capped = new Set<number>();
  const memOut = new Writer();
  if (mem) {
    const r = new Reader(mem.body);
    definedMems = r.u32();
    memOut.u32(definedMems + 1);
    for (let i = 0; i < definedMems; i++) {
      const entryStart = r.pos;
      const flags = r.byte();
      if ((flags & ~0x03) !== 0 || capPages === undefined) {
        // memory64 or custom page sizes (left uncapped: the post-call check remains), or no cap.
        r.pos = entryStart;
        skipLimits(r);
        if (flags & 0x08) r.u32(); // custom page size log2
        memOut.bytes(mem.body.subarray(entryStart, r.pos));
        continue;
      }
      const min = r.u32();
      const max = flags & 1 ? r.u32() : undefined;
      if (max !== undefined && max <= capPages) {
        memOut.bytes(mem.body.subarray(entryStart, r.pos)); // already under the cap
        continue;
      }
      if (min > capPages)
        throw new InstrumentError(
          `memory ${importedMems + i} declares ${min} initial pages (${min * PAGE} bytes), over the memory limit of ${capPages * PAGE} bytes`,
        );
      memOut.byte(flags | 1);
      memOut.u32(min);
      memOut.u32(capPages);
      capped.add(importedMems + i);
      cappedMemories++;
    }
  } else memOut.u32(1);
  const flagMem = importedMems + definedMems;
  memOut.byte(0x03); // shared, with a maximum
  memOut.u32(1);
  memOut.u32(1);
  const newMem = section(SEC_MEMORY, memOut.result);

  // Types and functions, for the grow helper: (i32) -> i32.
  const typeSec = find(SEC_TYPE);
  const funcSec = find(SEC_FUNCTION);
  let definedFuncs = 0;
  if (funcSec) definedFuncs = new Reader(funcSec.body).u32();
  let helperType: number | undefined;
  let typeCount = 0;
  let typesPlain = true;
  if (typeSec) {
    const r = new Reader(typeSec.body);
    typeCount = r.u32();
    for (let i = 0; i < typeCount; i++) {
      const form = r.byte();
      if (form !== 0x60) {
        typesPlain = false; // GC type forms: leave grow uninstrumented (the post-call check remains)
        break;
      }
      const start = r.pos;
      const np = r.u32();
      for (let k = 0; k < np; k++) skipValType(r);
      const nr = r.u32();
      for (let k = 0; k < nr; k++) skipValType(r);
      const sig = typeSec.body.subarray(start, r.pos);
      if (
        helperType === undefined &&
        sig.length === 4 &&
        sig[0] === 1 &&
        sig[1] === 0x7f &&
        sig[2] === 1 &&
        sig[3] === 0x7f
      )
        helperType = i;
    }
  }
  if (!typesPlain) capped.clear();
  const growHelpers = new Map<number, number>(); // memidx -> function index
  let nextFunc = importedFuncs + definedFuncs;
  for (const m of [...capped].sort((a, b) => a - b)) growHelpers.set(m, nextFunc++);
  let newType: Uint8Array | undefined;
  if (growHelpers.size > 0 && helperType === undefined) {
    helperType = typeCount;
    const w = new Writer();
    w.u32(typeCount + 1);
    if (typeSec) w.bytes(vecHead(typeSec.body).rest);
    w.bytes(new Uint8Array([0x60, 1, 0x7f, 1, 0x7f]));
    newType = section(SEC_TYPE, w.result);
  }
  let newFunc: Uint8Array | undefined;
  if (growHelpers.size > 0) {
    const w = new Writer();
    w.u32(definedFuncs + growHelpers.size);
    if (funcSec) w.bytes(vecHead(funcSec.body).rest);
    for (let i = 0; i < growHelpers.size; i++) w.u32(helperType!);
    newFunc = section(SEC_FUNCTION, w.result);
  }

  // The interrupt check: i32.const 0; i32.atomic.load (memory flagMem); if; unreachable; end.
  const check = new Writer();
  check.bytes(new Uint8Array([0x41, 0x00, 0xfe, 0x10, 0x42]));
  check.u32(flagMem);
  check.bytes(new Uint8Array([0x00, 0x04, 0x40, 0x00, 0x0b]));
  const CHECK = check.result.slice();

  // Code: rewrite every body.
  let loops = 0;
  let grows = 0;
  const code = find(SEC_CODE);
  const codeOut = new Writer();
  let functions = 0;
  if (code || growHelpers.size > 0) {
    const r = code ? new Reader(code.body) : new Reader(new Uint8Array([0]));
    const n = r.u32();
    if (n !== definedFuncs) throw new InstrumentError(`function and code sections disagree (${definedFuncs} vs ${n})`);
    codeOut.u32(n + growHelpers.size);
    const body = new Writer();
    for (let i = 0; i < n; i++) {
      const size = r.u32();
      const end = r.pos + size;
      const br = new Reader(r.b, r.pos, end);
      body.length = 0;
      // Locals: copied as they are.
      const localsStart = br.pos;
      const groups = br.u32();
      for (let g = 0; g < groups; g++) {
        br.u32();
        skipValType(br);
      }
      body.bytes(br.b.subarray(localsStart, br.pos));
      body.bytes(CHECK);
      let copied = br.pos;
      while (br.pos < end) {
        const at = br.pos;
        const op = skipInstruction(br);
        if (op === 0x03) {
          body.bytes(br.b.subarray(copied, br.pos));
          body.bytes(CHECK);
          copied = br.pos;
          loops++;
        } else if (op === 0x40 && growHelpers.has(growMemidx)) {
          body.bytes(br.b.subarray(copied, at));
          body.byte(0x10);
          body.u32(growHelpers.get(growMemidx)!);
          copied = br.pos;
          grows++;
        }
      }
      body.bytes(br.b.subarray(copied, end));
      if (br.pos !== end) throw new InstrumentError(`function ${importedFuncs + i} body overruns its size`);
      codeOut.u32(body.length);
      codeOut.bytes(body.result);
      r.pos = end;
      functions++;
    }
    for (const [memidx] of growHelpers) {
      // (local $r i32)
      // local.set $r (memory.grow memidx (local.get 0))
      // if (local.get $r == -1): flag := 2; unreachable
      // local.get $r
      const h = new Writer();
      h.bytes(new Uint8Array([0x01, 0x01, 0x7f])); // one local i32 (index 1)
      h.bytes(new Uint8Array([0x20, 0x00, 0x40]));
      h.u32(memidx);
      h.bytes(new Uint8Array([0x21, 0x01, 0x20, 0x01, 0x41, 0x7f, 0x46, 0x04, 0x40]));
      h.bytes(new Uint8Array([0x41, 0x00, 0x41, FLAG_MEMORY, 0xfe, 0x17, 0x42])); // i32.atomic.store
      h.u32(flagMem);
      h.bytes(new Uint8Array([0x00, 0x00, 0x0b, 0x20, 0x01, 0x0b]));
      codeOut.u32(h.length);
      codeOut.bytes(h.result);
    }
  }
  const newCode = code || growHelpers.size > 0 ? section(SEC_CODE, codeOut.result) : undefined;

  // Start: moved to an export the host calls.
  const start = find(SEC_START);
  const startFunc = start ? new Reader(start.body).u32() : undefined;

  // Exports: the interrupt memory (and the start function).
  const exp = find(SEC_EXPORT);
  const expOut = new Writer();
  const expCount = exp ? new Reader(exp.body).u32() : 0;
  expOut.u32(expCount + 1 + (startFunc === undefined ? 0 : 1));
  if (exp) expOut.bytes(vecHead(exp.body).rest);
  expOut.name(INTERRUPT_EXPORT);
  expOut.byte(0x02);
  expOut.u32(flagMem);
  if (startFunc !== undefined) {
    expOut.name(START_EXPORT);
    expOut.byte(0x00);
    expOut.u32(startFunc);
  }
  const newExport = section(SEC_EXPORT, expOut.result);

  // Reassemble: replaced sections in place, new ones where the order puts them.
  const replacement = new Map<number, Uint8Array | null>([
    [SEC_MEMORY, newMem],
    [SEC_EXPORT, newExport],
    [SEC_START, null],
  ]);
  if (newType) replacement.set(SEC_TYPE, newType);
  if (newFunc) replacement.set(SEC_FUNCTION, newFunc);
  if (newCode) replacement.set(SEC_CODE, newCode);
  const out = new Writer();
  out.bytes(bytes.subarray(0, 8));
  const placed = new Set<number>();
  const missing = [...replacement]
    .filter(([id, sec]) => sec !== null && !find(id))
    .sort(([a], [b]) => ORDER[a]! - ORDER[b]!);
  const placeMissingBefore = (order: number) => {
    for (const [id, sec] of missing) {
      if (placed.has(id) || ORDER[id]! >= order) continue;
      out.bytes(sec!);
      placed.add(id);
    }
  };
  for (const s of sections) {
    if (s.id !== 0) placeMissingBefore(ORDER[s.id] ?? 0);
    if (replacement.has(s.id)) {
      const sec = replacement.get(s.id);
      if (sec) out.bytes(sec);
      placed.add(s.id);
    } else out.bytes(s.raw);
  }
  placeMissingBefore(Number.POSITIVE_INFINITY);
  return {
    bytes: out.result.slice(),
    functions,
    loops,
    grows,
    cappedMemories,
    startMoved: startFunc !== undefined,
  };
}
