// Reads what a compiled module declares: its Proxy-Wasm ABI version, entry points, allocator.
import { ABI_MARKERS, type AbiVersion } from '../abi/result.ts';

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
