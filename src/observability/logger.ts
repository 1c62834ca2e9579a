// Process logs (pino JSON on stderr) and the run-time log levels: one for the proxy, one for the
// `wasm` component (plugin logs), and optional per-plugin overrides, changeable while running.
import pino from 'pino';
import { LOG_LEVEL_NAMES, type LogLevelName } from '../wasm/abi/result.ts';

export type Logger = pino.Logger;

export function createLogger(level: string, destination: number | string = 2): Logger {
  return pino(
    { level: level === 'critical' ? 'fatal' : level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ dest: destination, sync: true }),
  );
}

/** Proxy-Wasm level number <-> name; 'off' is 6. */
export function levelNumber(name: string): number | undefined {
  if (name === 'off') return 6;
  if (name === 'warning') return 3;
  if (name === 'fatal') return 5;
  const i = LOG_LEVEL_NAMES.indexOf(name as (typeof LOG_LEVEL_NAMES)[number]);
  return i < 0 ? undefined : i;
}

export const PINO_METHOD = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;

/** LogLevels as plain data, to hand to worker threads. */
export interface LogLevelsState {
  wasm: number;
  perPlugin: [string, number][];
}

export class LogLevels {
  /** Level of the `wasm` component (all plugins), as a Proxy-Wasm number. */
  wasm: number;
  readonly #perPlugin = new Map<string, number>();

  constructor(wasm: LogLevelName | string = 'info') {
    this.wasm = levelNumber(wasm) ?? 2;
  }

  pluginLevel(name: string): number {
    return this.#perPlugin.get(name) ?? this.wasm;
  }

  setPlugin(name: string, level: string): boolean {
    const n = levelNumber(level);
    if (n === undefined) return false;
    this.#perPlugin.set(name, n);
    return true;
  }

  state(): LogLevelsState {
    return { wasm: this.wasm, perPlugin: [...this.#perPlugin] };
  }

  restore(state: LogLevelsState): void {
    this.wasm = state.wasm;
    this.#perPlugin.clear();
    for (const [k, v] of state.perPlugin) this.#perPlugin.set(k, v);
  }

  setWasm(level: string): boolean {
    const n = levelNumber(level);
    if (n === undefined) return false;
    this.wasm = n;
    this.#perPlugin.clear();
    return true;
  }
}
