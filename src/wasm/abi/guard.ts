// Wraps host functions so that a bad guest pointer answers INVALID_MEMORY_ACCESS and an
// unexpected host error answers INTERNAL_FAILURE: a host function never throws into the guest,
// except to unwind it on purpose (proc_exit, a trapped allocator).
import { MemoryAccessError } from '../runtime/memory.ts';
import { ProcExit, WasmTrap } from '../runtime/vm.ts';
import type { HostFunction, ImportFunctions } from './host-api.ts';
import { Status } from './result.ts';

export function guarded(
  fns: Record<string, (...args: number[]) => number>,
  onError: (name: string, err: unknown) => void,
  memoryFault: number = Status.INVALID_MEMORY_ACCESS,
  internalFailure: number = Status.INTERNAL_FAILURE,
): ImportFunctions {
  const out: ImportFunctions = {};
  for (const [name, fn] of Object.entries(fns)) {
    out[name] = ((...args: number[]) => {
      try {
        return fn(...args);
      } catch (err) {
        if (err instanceof MemoryAccessError) return memoryFault;
        if (err instanceof ProcExit || err instanceof WasmTrap) throw err;
        onError(name, err);
        return internalFailure;
      }
    }) as HostFunction;
  }
  return out;
}
