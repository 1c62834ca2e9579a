// Bounds-checked access to a guest's linear memory. Views are re-acquired whenever the memory
// has grown (growth detaches the old ArrayBuffer), so callers never hold a stale view.

export class MemoryAccessError extends Error {
  constructor(ptr: number, len: number, size: number) {
    super(`guest memory access out of bounds: [${ptr}, ${ptr + len}) of ${size}`);
    this.name = 'MemoryAccessError';
  }
}

export class GuestMemory {
  readonly #memory: WebAssembly.Memory;
  /** A Buffer over the whole memory (no copy): its native UTF-8 encoding and decoding are the fastest. */
  #u8: Buffer;
  #view: DataView;

  constructor(memory: WebAssembly.Memory) {
    this.#memory = memory;
    this.#u8 = Buffer.from(memory.buffer as ArrayBuffer);
    this.#view = new DataView(memory.buffer);
  }

  #refresh(): void {
    // Growth detaches the old buffer, and a view of a detached buffer has length 0. (Reading
    // memory.buffer costs a runtime call; the length check does not. A zero-page memory is
    // re-read each time, which is correct, merely slower.)
    if (this.#u8.length === 0) {
      this.#u8 = Buffer.from(this.#memory.buffer as ArrayBuffer);
      this.#view = new DataView(this.#memory.buffer);
    }
  }

  /** The current backing buffer (changes when memory grows). */
  get buffer(): ArrayBufferLike {
    return this.#memory.buffer;
  }

  get size(): number {
    this.#refresh();
    return this.#u8.length;
  }

  #check(ptr: number, len: number): void {
    this.#refresh();
    // Pointers arrive as signed i32: reinterpret as unsigned.
    if (ptr < 0 || len < 0 || ptr + len > this.#u8.length)
      throw new MemoryAccessError(ptr >>> 0, len >>> 0, this.#u8.length);
  }

  /** A view of guest bytes; valid only until the next call into the guest. */
  view(ptr: number, len: number): Uint8Array {
    ptr >>>= 0;
    len >>>= 0;
    this.#check(ptr, len);
    // A plain Uint8Array, not a Buffer: Buffer's slice() would not copy.
    return new Uint8Array(this.#u8.buffer, ptr, len);
  }

  /** A copy of guest bytes. */
  copy(ptr: number, len: number): Uint8Array {
    return this.view(ptr, len).slice();
  }

  string(ptr: number, len: number): string {
    ptr >>>= 0;
    len >>>= 0;
    this.#check(ptr, len);
    return this.#u8.toString('utf8', ptr, ptr + len);
  }

  /** Writes `value` as UTF-8 at `ptr`; `byteLength` must be Buffer.byteLength(value). */
  writeString(ptr: number, value: string, byteLength: number): void {
    ptr >>>= 0;
    this.#check(ptr, byteLength);
    this.#u8.write(value, ptr, byteLength, 'utf8');
  }

  /** A Buffer over guest bytes for the host to write into; valid only until the next call into the guest. */
  writable(ptr: number, len: number): Buffer {
    ptr >>>= 0;
    len >>>= 0;
    this.#check(ptr, len);
    return this.#u8.subarray(ptr, ptr + len);
  }

  write(ptr: number, bytes: Uint8Array): void {
    ptr >>>= 0;
    this.#check(ptr, bytes.length);
    this.#u8.set(bytes, ptr);
  }

  u32(ptr: number): number {
    ptr >>>= 0;
    this.#check(ptr, 4);
    return this.#view.getUint32(ptr, true);
  }

  setU32(ptr: number, value: number): void {
    ptr >>>= 0;
    this.#check(ptr, 4);
    this.#view.setUint32(ptr, value >>> 0, true);
  }

  setU64(ptr: number, value: bigint): void {
    ptr >>>= 0;
    this.#check(ptr, 8);
    this.#view.setBigUint64(ptr, BigInt.asUintN(64, value), true);
  }

  setU16(ptr: number, value: number): void {
    ptr >>>= 0;
    this.#check(ptr, 2);
    this.#view.setUint16(ptr, value, true);
  }

  setU8(ptr: number, value: number): void {
    ptr >>>= 0;
    this.#check(ptr, 1);
    this.#u8[ptr] = value;
  }
}
