// A worker thread: its own listeners (sharing the ports through SO_REUSEPORT), its own Wasm VMs
// (one per plugin, as Envoy's worker threads), its own clusters. The supervisor talks to it by
// messages: snapshot (admin), reload, drain, connections, levels, close.
import { parentPort, workerData } from 'node:worker_threads';
import { loadConfig } from '../config/load.ts';
import { configureFetch, type FetchOptions } from '../fetch/index.ts';
import { createLogger, LogLevels, type LogLevelsState } from '../observability/logger.ts';
import { useSharedState } from '../shared-state/backend.ts';
import { connectSharedState, type SharedStateInit } from '../shared-state/cross-thread.ts';
import { Gateway, type GatewayOptions } from './gateway.ts';
import { snapshotOf } from './snapshot.ts';

export interface WorkerInit {
  index: number;
  paths: string[];
  options: GatewayOptions;
  logLevel: string;
  levels: LogLevelsState;
  fetch: Omit<FetchOptions, 'log'>;
  /** The supervisor's shared data and queues (shared memory and a notification port). */
  sharedState: SharedStateInit;
}

export type WorkerRequest =
  | { op: 'snapshot' }
  | { op: 'reload' }
  | { op: 'drain' }
  | { op: 'connections' }
  | { op: 'levels'; levels: LogLevelsState }
  | { op: 'close' };

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
  const config = await loadConfig(init.paths);
  let gateway: Gateway;
  try {
    gateway = await Gateway.start(config, init.options, logger, levels);
  } catch (err) {
    port.postMessage({ type: 'failed', message: (err as Error).message } satisfies WorkerMessage);
    return;
  }
  const handle = async (req: WorkerRequest): Promise<unknown> => {
    switch (req.op) {
      case 'snapshot':
        return snapshotOf(gateway, init.index);
      case 'reload': {
        const next = await loadConfig(init.paths);
        const errors = next.problems.filter((p) => p.severity === 'error');
        if (errors.length > 0) throw new Error(`${errors.length} configuration error(s)`);
        return gateway.reload(next);
      }
      case 'drain':
        gateway.drain();
        return true;
      case 'connections':
        return gateway.connections;
      case 'levels':
        levels.restore(req.levels);
        return true;
      case 'close':
        await gateway.close();
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

main().catch((err: Error) => {
  parentPort?.postMessage({ type: 'failed', message: err.message } satisfies WorkerMessage);
});
