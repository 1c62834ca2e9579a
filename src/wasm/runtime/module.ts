// Reads what a compiled module declares: its Proxy-Wasm ABI version, entry points, allocator.
import { ABI_MARKERS, type AbiVersion } from '../abi/result.ts';
import { InstrumentError, type InstrumentOptions, type InstrumentResult, instrument } from './instrument.ts';

export interface ModuleInfo {
  abiVersion: AbiVersion | undefined;
  /** The exported marker name, e.g. proxy_abi_version_0_2_1, or undefined. */
  abiMarker: string | undefined;
  exports: ReadonlySet<string>;
  imports: readonly WebAssembly.ModuleImportDescriptor[];
  /** Problems that make the module unusable as a Proxy-Wasm plugin (missing marker, allocator, memory). */
  problems: string[];
}

export function inspectModule(module: WebAssembly.Module): ModuleInfo {
  const exportList = WebAssembly.Module.exports(module);
  const exports = new Set(exportList.map((e) => e.name));
  let abiVersion: AbiVersion | undefined;
  let abiMarker: string | undefined;
  // As cpp-host: the first function export whose name is a known marker decides.
  for (const e of exportList) {
    if (e.kind === 'function' && ABI_MARKERS[e.name]) {
      abiVersion = ABI_MARKERS[e.name];
      abiMarker = e.name;
      break;
    }
  }
  const problems: string[] = [];
  if (!abiVersion) {
    const unknown = exportList.find((e) => e.name.startsWith('proxy_abi_version_'));
    problems.push(
      unknown
        ? `unknown Proxy-Wasm ABI version marker "${unknown.name}"`
        : 'missing Proxy-Wasm ABI version marker (export proxy_abi_version_0_2_1, _0_2_0 or _0_1_0)',
    );
  }
  if (!exports.has('memory')) problems.push('module does not export its memory');
  if (!exports.has('proxy_on_memory_allocate') && !exports.has('malloc'))
    problems.push('module exports no allocator (proxy_on_memory_allocate or malloc)');
  return { abiVersion, abiMarker, exports, imports: WebAssembly.Module.imports(module), problems };
}

/** Compiles bytes, turning V8's errors into one readable line. */
export async function compileModule(bytes: Uint8Array): Promise<WebAssembly.Module> {
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw new Error('not a WebAssembly module (bad magic number)');
  }
  try {
    return await WebAssembly.compile(bytes);
  } catch (err) {
    throw new Error(`invalid WebAssembly module: ${(err as Error).message}`);
  }
}

export interface CompiledPlugin {
  module: WebAssembly.Module;
  /** What the instrumentation did, or why the module runs uninstrumented (no deadline, no grow cap). */
  instrumentation: InstrumentResult | { error: string };
  /** Time spent instrumenting, ms. */
  instrumentMs: number;
}

/**
 * Instruments (instrument.ts: interrupt checks for the watchdog, memory cap) and compiles. A
 * module the instrumentation cannot handle is compiled as it is, with the reason in
 * `instrumentation.error`; invalid bytes throw as compileModule does.
 */
export async function compilePlugin(bytes: Uint8Array, options: InstrumentOptions = {}): Promise<CompiledPlugin> {
  const t0 = performance.now();
  let result: InstrumentResult;
  try {
    result = instrument(bytes, options);
  } catch (err) {
    if (err instanceof InstrumentError && /over the memory limit/.test(err.message)) throw err;
    return {
      module: await compileModule(bytes),
      instrumentation: { error: (err as Error).message },
      instrumentMs: performance.now() - t0,
    };
  }
  const instrumentMs = performance.now() - t0;
  try {
    return {
      module: await WebAssembly.compile(result.bytes as Uint8Array<ArrayBuffer>),
      instrumentation: result,
      instrumentMs,
    };
  } catch (err) {
    // The original decides: if it is invalid, say so as compileModule does; if it is valid, the
    // instrumentation is at fault and the module runs without it.
    const module = await compileModule(bytes);
    return {
      module,
      instrumentation: { error: `instrumented module rejected: ${(err as Error).message}` },
      instrumentMs,
    };
  }
}
