// Renders docs/abi.md from the host function table (npm run docs:abi; a test keeps them equal).
import { HOST_FUNCTIONS } from './table.ts';

const CALLBACKS: [string, string][] = [
  [
    '_initialize / main / _start',
    'start-up: _initialize then main (or __main_void); else _start, where proc_exit(0) ends start-up; an AssemblyScript start section runs at instantiation',
  ],
  ['proxy_on_memory_allocate / malloc', 'to copy every returned value into the guest (never with size 0)'],
  [
    'proxy_on_context_create',
    'root: at start-up (plugin configuration readable); stream: lazily at request headers, or in the log phase',
  ],
  ['proxy_on_vm_start', 'once per root context, with the root id; false fails the plugin'],
  ['proxy_on_configure', 'with the JSON text of pluginConfig; false fails the plugin'],
  [
    'proxy_on_request_headers / _body / _trailers',
    'as the request arrives; bodies chunk by chunk, the whole buffer again after Pause',
  ],
  [
    'proxy_on_response_headers / _body / _trailers',
    'as the response arrives, filters in reverse order; local replies too',
  ],
  ['proxy_on_log', 'access-log phase, every filter, before on_done (Envoy HTTP order)'],
  ['proxy_on_done / proxy_on_delete', 'stream end; on_done=false waits for proxy_done'],
  ['proxy_on_tick', 'every proxy_set_tick_period_milliseconds, on the root context'],
  ['proxy_on_queue_ready', 'after an enqueue, on the registering root context'],
  [
    'proxy_on_http_call_response',
    'on the root context (SDKs re-target with set_effective_context); 0 headers = failure',
  ],
  [
    'proxy_on_grpc_receive_initial_metadata / _receive / _receive_trailing_metadata / _close',
    'gRPC callouts, on the root context; the AssemblyScript spelling proxy_on_grpc_trailing_metadata is honoured',
  ],
  [
    'proxy_on_new_connection',
    'NETWORK plugins on TCP listeners: after on_context_create, when a client connects (Pause holds the connect until continue)',
  ],
  [
    'proxy_on_downstream_data / proxy_on_upstream_data',
    'bytes from the client (filters in order) / from the upstream (reverse order); Pause holds them, and more bytes grow the held buffer, presented again whole; end_of_stream on a FIN',
  ],
  [
    'proxy_on_downstream_connection_close / proxy_on_upstream_connection_close',
    'client side closed (REMOTE, or LOCAL when the proxy closed it) / upstream FIN seen on the write path (UNKNOWN, as Envoy), REMOTE on an upstream error',
  ],
  [
    'proxy_on_done / proxy_on_log / proxy_on_delete (L4)',
    'once both sides of a connection are closed, in this order (Envoy TCP)',
  ],
  ['proxy_on_foreign_function', 'not called: no host events are registered'],
];

export function renderAbiDoc(): string {
  const counts = { implemented: 0, partial: 0, unimplemented: 0 };
  for (const f of HOST_FUNCTIONS) counts[f.support]++;
  const lines = [
    '# Proxy-Wasm ABI support',
    '',
    '<!-- Generated from src/wasm/abi/table.ts by `npm run docs:abi`. Do not edit by hand. -->',
    '',
    'Every host function a Proxy-Wasm module may import, and what wasmgate does with it.',
    'Any other import a module declares in `env` or WASI is linked to a stub that logs once and',
    'answers UNIMPLEMENTED (12) or NOSYS (52), so no module fails to load for lack of an import.',
    'WASI functions are registered under both `wasi_snapshot_preview1` and `wasi_unstable`.',
    '',
    `Totals: ${counts.implemented} implemented, ${counts.partial} partial, ${counts.unimplemented} not yet implemented.`,
    '',
    '| import | module | area | since | status | notes |',
    '|---|---|---|---|---|---|',
  ];
  for (const f of HOST_FUNCTIONS) {
    const module = f.module === 'wasi' ? 'wasi_snapshot_preview1' : 'env';
    lines.push(
      `| \`${f.name}\` | ${module} | ${f.area} | ${f.since} | ${f.support} | ${f.note.replaceAll('|', '\\|')} |`,
    );
  }
  lines.push('', '## Callbacks (module exports)', '', '| export | when wasmgate calls it |', '|---|---|');
  for (const [name, when] of CALLBACKS) lines.push(`| \`${name}\` | ${when} |`);
  lines.push('');
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { writeFileSync } = await import('node:fs');
  writeFileSync(new URL('../../../docs/abi.md', import.meta.url), renderAbiDoc());
}
