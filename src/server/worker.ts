// A worker thread: its own listeners (sharing the ports through SO_REUSEPORT), its own Wasm VMs
// (one per plugin, as Envoy's worker threads), its own clusters. The supervisor talks to it by
// messages: snapshot (admin), reload, drain, connections, levels, close; and, only when the
// process runs with WASMGATE_TEST_FAULTS=1 (tests), fault: die on purpose (docs/design.md).
import { parentPort, workerData } from 'node:worker_threads';
import { formatProblem } from '../config/format.ts';
import { loadConfig } from '../config/load.ts';
import { configureFetch, type FetchOptions } from '../fetch/index.ts';
import { createLogger, LogLevels, type LogLevelsState } from '../observability/logger.ts';
import { useSharedState } from '../shared-state/backend.ts';
import { connectSharedState, type SharedStateInit } from '../shared-state/cross-thread.ts';
import { Gateway, type GatewayOptions } from './gateway.ts';
import { snapshotOf } from './snapshot.ts';
import { TEST_FAULTS_ENV, testFaultsEnabled } from './supervisor.ts';

export interface WorkerInit {
  index: number;
  paths: string[];
  options: GatewayOptions;
  logLevel: string;
  levels: LogLevelsState;
  fetch: Omit<FetchOptions, 'log'>;
  /** The supervisor's shared data and queues (shared memory and a notification port). */
  sharedState: SharedStateInit;
  /** The proxy is draining (a replacement started during a drain): drain from the start. */
  draining: boolean;
}

/** Test-only faults (WASMGATE_TEST_FAULTS=1): how the worker dies, and when. */
export interface WorkerFault {
  /** throw: an uncaught exception; exit: process.exit() in the worker. */
  kind: 'throw' | 'exit';
  /** now, or when the supervisor next asks this worker to drain or to close. */
  at: 'now' | 'drain' | 'close';
}

export type WorkerRequest =
  | { op: 'snapshot' }
  | { op: 'reload' }
  | { op: 'drain' }
  | { op: 'connections' }
  | { op: 'levels'; levels: LogLevelsState }
  | { op: 'close' }
  | { op: 'fault'; fault: WorkerFault };

export type WorkerMessage =
  | { type: 'ready'; ports: number[] }
  | { type: 'failed'; message: string }
  | { type: 'reply'; id: number; ok: true; result: unknown }
  | { type: 'reply'; id: number; ok: false; error: string };

async function main(): Promise<void> {
  const port = parentPort!;
  const init = workerData as WorkerInit;
  const logger = createLogger(init.logLevel).child({ worker: init.index });
  const levels = new LogLevels('info');
  levels.restore(init.levels);
  configureFetch({ ...init.fetch, log: (level, message) => logger[level](message) });
  useSharedState(connectSharedState(init.sharedState, (m) => logger.warn(m)));
  // A replacement reads the files as they are now: if they have become invalid (a rejected
  // reload), it refuses to start and the supervisor tries again later, as for any failed start.
  const config = await loadConfig(init.paths, { secretsDir: init.fetch.secretsDir });
  const errors = config.problems.filter((p) => p.severity === 'error');
  if (errors.length > 0) {
    const message = `${errors.length} configuration error(s), first: ${formatProblem(errors[0]!)}`;
    port.postMessage({ type: 'failed', message } satisfies WorkerMessage);
    return;
  }
  let gateway: Gateway;
  try {
    gateway = await Gateway.start(config, init.options, logger, levels);
  } catch (err) {
    port.postMessage({ type: 'failed', message: (err as Error).message } satisfies WorkerMessage);
    return;
  }
  if (init.draining) gateway.drain();
  const armed = new Map<WorkerFault['at'], WorkerFault['kind']>();
  const fire = (at: WorkerFault['at']) => {
    const kind = armed.get(at);
    if (kind === undefined) return;
    logger.warn({ fault: kind, at }, `${TEST_FAULTS_ENV}: injected fault: ${kind}`);
    crash(kind);
  };
  const handle = async (req: WorkerRequest): Promise<unknown> => {
    switch (req.op) {
      case 'snapshot':
        return snapshotOf(gateway, init.index);
      case 'reload': {
        const next = await loadConfig(init.paths, { secretsDir: init.fetch.secretsDir });
        const errors = next.problems.filter((p) => p.severity === 'error');
        if (errors.length > 0) throw new Error(`${errors.length} configuration error(s)`);
        return gateway.reload(next);
      }
      case 'drain':
        gateway.drain();
        fire('drain');
        return true;
      case 'connections':
        return gateway.connections;
      case 'levels':
        levels.restore(req.levels);
        return true;
      case 'close': {
        const closing = gateway.close();
        fire('close');
        await closing;
        return true;
      }
      case 'fault':
        if (!testFaultsEnabled()) throw new Error(`fault injection is off (${TEST_FAULTS_ENV} is not 1)`);
        if (req.fault.at === 'now') setImmediate(() => crash(req.fault.kind));
        else armed.set(req.fault.at, req.fault.kind);
        return true;
    }
  };
  port.on('message', (msg: { id: number; req: WorkerRequest }) => {
    handle(msg.req).then(
      (result) => port.postMessage({ type: 'reply', id: msg.id, ok: true, result } satisfies WorkerMessage),
      (err: Error) =>
        port.postMessage({ type: 'reply', id: msg.id, ok: false, error: err.message } satisfies WorkerMessage),
    );
  });
  port.postMessage({ type: 'ready', ports: gateway.summaries.map((s) => s.port) } satisfies WorkerMessage);
}

/** Dies the way a real bug would: nothing here catches it. */
function crash(kind: WorkerFault['kind']): void {
  switch (kind) {
    case 'throw':
      setImmediate(() => {
        throw new Error(`injected fault: uncaught exception (${TEST_FAULTS_ENV})`);
      });
      return;
    case 'exit':
      process.exit(70);
  }
}

main().catch((err: Error) => {
  parentPort?.postMessage({ type: 'failed', message: err.message } satisfies WorkerMessage);
});
