// Micro-benchmarks of the Proxy-Wasm host's own cost, in one process, no sockets:
// - nanoseconds per host call (a guest loop calling proxy_get_header_map_value / proxy_log),
// - nanoseconds per request through the pipeline with 0 plugins and with 1 empty plugin,
// - CPU per request with 50 requests in flight (phases on later macrotasks): 0 plugins, 1 empty
//   plugin, the Rust header plugin, the AssemblyScript plugin.
// Usage: node bench/host-cost.ts [--quick]   (writes bench/results/host-cost-<date>.json)
import { readFileSync, writeFileSync } from 'node:fs';
import wabtInit from 'wabt';
import type { FilterFactory } from '../src/pipeline/filter.ts';
import { FilterManager, type UpstreamRequest } from '../src/pipeline/filter-manager.ts';
import { HeaderMap } from '../src/pipeline/headers.ts';
import { HttpStream, newStreamInfo } from '../src/pipeline/stream.ts';
import { PluginVm } from '../src/wasm/host/plugin-vm.ts';
import { WasmFilterFactory } from '../src/wasm/plugin/http-filter.ts';
import { inspectModule } from '../src/wasm/runtime/module.ts';

const quick = process.argv.includes('--quick');
const wabt = await wabtInit();
const compile = (text: string) => new WebAssembly.Module(wabt.parseWat('b.wat', text).toBinary({}).buffer);

const MODULE = compile(`
(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 4096))
  (data (i32.const 16) "x-bench")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    ;; a ring allocator: the benchmark allocates forever
    (if (i32.gt_u (global.get $heap) (i32.const 100000)) (then (global.set $heap (i32.const 4096))))
    (global.set $heap (i32.add (global.get $heap) (i32.and (i32.add (local.get $size) (i32.const 7)) (i32.const -8))))
    (local.get $p))
  (func (export "loop_get") (param $n i32)
    (loop $l
      (drop (call $get (i32.const 0) (i32.const 16) (i32.const 7) (i32.const 1024) (i32.const 1028)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (i32.gt_s (local.get $n) (i32.const 0)))))
  (func (export "loop_log") (param $n i32)
    (loop $l
      (drop (call $log (i32.const 0) (i32.const 16) (i32.const 7)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (i32.gt_s (local.get $n) (i32.const 0)))))
  (func (export "loop_empty") (param $n i32)
    (loop $l
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (i32.gt_s (local.get $n) (i32.const 0)))))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32)))
`);

const identity = {
  name: 'bench.empty',
  rootId: '',
  vmId: '',
  configuration: new Uint8Array(0),
  vmConfiguration: new Uint8Array(0),
  env: [] as [string, string][],
};
const sink = { log: () => {}, level: () => 2, warn: () => {} };
const vm = new PluginVm(MODULE, inspectModule(MODULE), identity, sink);
vm.start();

function time(fn: () => void): number {
  const t = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t);
}

// ---- host calls ----
const calls = quick ? 200_000 : 2_000_000;
const request = new HeaderMap([
  [':method', 'GET'],
  [':path', '/'],
  ['x-bench', 'value'],
]);
const ctx = {
  id: 99,
  rootId: 1,
  headerMap: () => request,
  buffer: () => undefined,
  sendLocalResponse: () => 0,
  continueStream: () => 0,
  closeStream: () => 0,
  getProperty: () => undefined,
  setProperty: () => 0,
  done: () => 0,
} as const;
vm.register(ctx as never);
const perCall = (name: string) => {
  vm.callIn(ctx as never, name, 1000); // warm-up
  return time(() => vm.callIn(ctx as never, name, calls)) / calls;
};
const emptyNs = perCall('loop_empty');
const getNs = perCall('loop_get') - emptyNs;
const logNs = perCall('loop_log') - emptyNs;

// ---- requests through the pipeline ----
const requests = quick ? 20_000 : 200_000;
const plugin = {
  name: 'bench.empty',
  acquire: () => vm,
  failOpen: false,
  trapped: () => {},
  skipped: () => {},
  rejected: () => {},
};
/** A small GET as the listener makes it (`allow: true` lets the Rust header plugin pass it). */
function newStream(): HttpStream {
  return new HttpStream(
    new HeaderMap([
      [':method', 'GET'],
      [':path', '/get'],
      [':authority', 'bench'],
      ['user-agent', 'bench'],
      ['allow', 'true'],
    ]),
    newStreamInfo({
      requestId: 'r',
      protocol: 'HTTP/1.1',
      downstreamRemoteAddress: '127.0.0.1',
      downstreamRemotePort: 1,
      downstreamLocalAddress: '127.0.0.1',
      downstreamLocalPort: 2,
      connectionId: 1,
    }),
  );
}

function runRequests(chain: FilterFactory[]): number {
  const run = () => {
    const stream = newStream();
    let manager: FilterManager;
    const upstream: UpstreamRequest = {
      sendHeaders: () => manager.encodeHeaders(200, new HeaderMap([['content-length', '0']]), true),
      sendData: () => {},
      sendTrailers: () => {},
      abort: () => {},
    };
    manager = new FilterManager(
      stream,
      chain,
      { writeHeaders: () => {}, writeData: () => {}, writeTrailers: () => {}, reset: () => {} },
      () => upstream,
      { requestBufferLimit: 1 << 20, responseBufferLimit: 1 << 20 },
    );
    manager.decodeHeaders(true);
  };
  for (let i = 0; i < 2000; i++) run();
  return (
    time(() => {
      for (let i = 0; i < requests; i++) run();
    }) / requests
  );
}
const noPluginNs = runRequests([]);
const onePluginNs = runRequests([new WasmFilterFactory(plugin)]);

// ---- requests in flight: 50 at a time, each phase on a later macrotask, as through sockets ----
// The synchronous loop above cannot see what outlives a request (objects kept reachable past a
// scavenge are promoted and cost a full GC later): this one can. It found the plugin contexts'
// Map, whose rehashing under per-stream churn cost 3.7x the CPU per request.
const RUST = new WebAssembly.Module(
  readFileSync(new URL('../plugins/header-authorization-rust/plugin.wasm', import.meta.url)),
);
const rustVm = new PluginVm(RUST, inspectModule(RUST), { ...identity, name: 'bench.rust' }, sink);
rustVm.start();
const rustPlugin = { ...plugin, name: 'bench.rust', acquire: () => rustVm };
// The AssemblyScript plugin reads every request header as pairs (proxy_get_header_map_pairs).
const AS = new WebAssembly.Module(readFileSync(new URL('../plugins/add-header-as/plugin.wasm', import.meta.url)));
const asIdentity = {
  ...identity,
  name: 'bench.as',
  rootId: 'add_header',
  configuration: new TextEncoder().encode('{"header":"x-as","value":"bench"}'),
};
const asVm = new PluginVm(AS, inspectModule(AS), asIdentity, sink);
asVm.start();
const asPlugin = { ...plugin, name: 'bench.as', acquire: () => asVm };
function inFlight(chain: FilterFactory[], total: number): Promise<{ ns: number; cpuNs: number }> {
  return new Promise((resolve) => {
    let started = 0;
    let done = 0;
    const t0 = process.hrtime.bigint();
    const c0 = process.cpuUsage();
    const one = () => {
      started++;
      const stream = newStream();
      let manager: FilterManager;
      const upstream: UpstreamRequest = {
        sendHeaders: () =>
          setImmediate(() => {
            manager.encodeHeaders(200, new HeaderMap([['content-length', '5']]), false);
            setImmediate(() => manager.encodeData(Buffer.from('hello'), true));
          }),
        sendData: () => {},
        sendTrailers: () => {},
        abort: () => {},
      };
      const finished = () => {
        done++;
        if (started < total) one();
        else if (done === total) {
          const cpu = process.cpuUsage(c0);
          resolve({
            ns: Number(process.hrtime.bigint() - t0) / total,
            cpuNs: ((cpu.user + cpu.system) * 1000) / total,
          });
        }
      };
      manager = new FilterManager(
        stream,
        chain,
        {
          writeHeaders: () => {},
          writeData: (_data, endStream) => {
            if (endStream) setImmediate(finished);
          },
          writeTrailers: () => {},
          reset: () => {},
        },
        () => upstream,
        { requestBufferLimit: 1 << 20, responseBufferLimit: 1 << 20 },
      );
      setImmediate(() => manager.decodeHeaders(true));
    };
    for (let i = 0; i < 50; i++) one();
  });
}
const flying = quick ? 20_000 : 200_000;
await inFlight([], 20_000); // warm-up
const flightNone = await inFlight([], flying);
await inFlight([new WasmFilterFactory(plugin)], 20_000);
const flightEmpty = await inFlight([new WasmFilterFactory(plugin)], flying);
await inFlight([new WasmFilterFactory(rustPlugin)], 20_000);
const flightRust = await inFlight([new WasmFilterFactory(rustPlugin)], flying);
await inFlight([new WasmFilterFactory(asPlugin)], 20_000);
const flightAs = await inFlight([new WasmFilterFactory(asPlugin)], flying);

const results = {
  date: new Date().toISOString(),
  node: process.version,
  quick,
  host_call_ns: { proxy_get_header_map_value: round(getNs), proxy_log_filtered: round(logNs) },
  request_ns: {
    no_plugins: round(noPluginNs),
    one_empty_plugin: round(onePluginNs),
    plugin_cost: round(onePluginNs - noPluginNs),
  },
  in_flight_cpu_ns: {
    no_plugins: round(flightNone.cpuNs),
    one_empty_plugin: round(flightEmpty.cpuNs),
    rust_header_plugin: round(flightRust.cpuNs),
    rust_plugin_cost: round(flightRust.cpuNs - flightNone.cpuNs),
    assemblyscript_plugin: round(flightAs.cpuNs),
    assemblyscript_plugin_cost: round(flightAs.cpuNs - flightNone.cpuNs),
  },
};
function round(n: number): number {
  return Math.round(n * 10) / 10;
}
const file = new URL(`./results/host-cost-${results.date.slice(0, 10)}.json`, import.meta.url);
writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
console.log(`| measure | ns |
|---|---|
| host call: proxy_get_header_map_value (found, copied out) | ${results.host_call_ns.proxy_get_header_map_value} |
| host call: proxy_log below the level | ${results.host_call_ns.proxy_log_filtered} |
| request through the pipeline, no plugins | ${results.request_ns.no_plugins} |
| request through the pipeline, 1 empty plugin | ${results.request_ns.one_empty_plugin} |
| cost of the empty plugin per request | ${results.request_ns.plugin_cost} |
| 50 requests in flight, CPU per request, no plugins | ${results.in_flight_cpu_ns.no_plugins} |
| 50 requests in flight, CPU per request, 1 empty plugin | ${results.in_flight_cpu_ns.one_empty_plugin} |
| 50 requests in flight, CPU per request, the Rust header plugin | ${results.in_flight_cpu_ns.rust_header_plugin} |
| cost of the Rust header plugin per request, in flight | ${results.in_flight_cpu_ns.rust_plugin_cost} |
| 50 requests in flight, CPU per request, the AssemblyScript plugin | ${results.in_flight_cpu_ns.assemblyscript_plugin} |
| cost of the AssemblyScript plugin per request, in flight | ${results.in_flight_cpu_ns.assemblyscript_plugin_cost} |`);
