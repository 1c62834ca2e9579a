// Assembles the import object for one VM from the ABI areas. Every name in HOST_FUNCTIONS is
// linked; any other `env` or WASI import a module declares gets a stub that logs once and answers
// UNIMPLEMENTED / NOSYS, so an unknown vendor import never stops a module from loading.
import type { ImportObject } from '../runtime/vm.ts';
import { wasiFunctions } from '../wasi/preview1.ts';
import { bufferFunctions } from './buffers.ts';
import { contextFunctions } from './context.ts';
import { foreignFunctions } from './foreign.ts';
import { grpcFunctions } from './grpc.ts';
import { guarded } from './guard.ts';
import { headerFunctions } from './headers.ts';
import type { AbiHost, ImportFunctions } from './host-api.ts';
import { httpCallFunctions } from './http-calls.ts';
import { logFunctions } from './log.ts';
import { type MetricRegistry, metricFunctions } from './metrics.ts';
import { propertyFunctions } from './properties.ts';
import { Errno } from './result.ts';
import { sharedDataFunctions } from './shared-data.ts';
import { sharedQueueFunctions } from './shared-queues.ts';
import { streamFunctions } from './stream.ts';
import { timerFunctions } from './timers.ts';

export const WASI_MODULES = ['wasi_snapshot_preview1', 'wasi_unstable'] as const;

export function buildImports(
  h: AbiHost,
  metrics: MetricRegistry,
  declared: readonly WebAssembly.ModuleImportDescriptor[],
  onError: (name: string, err: unknown) => void,
): ImportObject {
  const env: ImportFunctions = guarded(
    {
      ...contextFunctions(h),
      ...logFunctions(h),
      ...headerFunctions(h),
      ...bufferFunctions(h),
      ...streamFunctions(h),
      ...propertyFunctions(h),
      ...timerFunctions(h),
      ...sharedDataFunctions(h),
      ...sharedQueueFunctions(h),
      ...httpCallFunctions(h),
      ...foreignFunctions(h),
      ...(metricFunctions(h, metrics) as unknown as Record<string, (...args: number[]) => number>),
      ...(grpcFunctions(h) as unknown as Record<string, (...args: number[]) => number>),
      emscripten_notify_memory_growth: () => 0,
      pthread_equal: (a: number, b: number) => (a === b ? 1 : 0),
    },
    onError,
  );
  const wasi = wasiFunctions(h, onError);
  const imports: ImportObject = { env };
  for (const m of WASI_MODULES) imports[m] = wasi;
  for (const d of declared) {
    if (d.kind !== 'function') continue;
    if (d.module === 'env' && !env[d.name]) {
      env[d.name] = () => h.unimplemented(d.name);
    } else if ((WASI_MODULES as readonly string[]).includes(d.module) && !wasi[d.name]) {
      wasi[d.name] = () => {
        h.unimplemented(`${d.module}.${d.name}`);
        return Errno.NOSYS;
      };
    }
  }
  return imports;
}
