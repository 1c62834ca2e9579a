// Builds small Proxy-Wasm modules from WebAssembly text for host tests (hostile and edge cases
// that no SDK produces on purpose). Real SDK-built plugins live in plugins/.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import wabtInit from 'wabt';

const wabt = await wabtInit();

export function wat(text: string): Uint8Array {
  const mod = wabt.parseWat('test.wat', text);
  try {
    return mod.toBinary({}).buffer;
  } finally {
    mod.destroy();
  }
}

/** Writes bytes to a fresh temp file and returns its file:// URL. */
export function tempModule(bytes: Uint8Array | string, name = 'plugin.wasm'): { url: string; path: string } {
  const dir = mkdtempSync(join(tmpdir(), 'wasmgate-'));
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return { url: pathToFileURL(path).href, path };
}

/**
 * What every test module needs to be a Proxy-Wasm plugin: the ABI marker and a bump allocator
 * over the global $heap (each module declares $heap with its own start).
 */
const PLUGIN_BASICS = `  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (i32.and (i32.add (local.get $size) (i32.const 7)) (i32.const -8))))
    (local.get $p))`;

/**
 * A header plugin in WAT: requests without `allow` get 403 "denied by wat"; a request with a
 * `trap` header traps; responses get `x-wat: 1`. Logs "wat: request headers" at info.
 */
export const HEADER_PLUGIN_WAT = `
(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 4096))
  (data (i32.const 16) "allow")
  (data (i32.const 32) "trap")
  (data (i32.const 48) "denied by wat")
  (data (i32.const 64) "x-wat")
  (data (i32.const 80) "1")
  (data (i32.const 96) "wat: request headers")
${PLUGIN_BASICS}
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (drop (call $log (i32.const 2) (i32.const 96) (i32.const 20)))
    (if (i32.eqz (call $get (i32.const 0) (i32.const 32) (i32.const 4) (i32.const 1024) (i32.const 1028)))
      (then unreachable))
    (if (call $get (i32.const 0) (i32.const 16) (i32.const 5) (i32.const 1024) (i32.const 1028))
      (then
        (drop (call $reply (i32.const 403) (i32.const 0) (i32.const 0) (i32.const 48) (i32.const 13)
                           (i32.const 0) (i32.const 0) (i32.const -1)))
        (return (i32.const 1))))
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (drop (call $add (i32.const 2) (i32.const 64) (i32.const 5) (i32.const 80) (i32.const 1)))
    (i32.const 0))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32)))
`;

/**
 * A hostile module: on request headers it makes bad host calls and answers 200 with one letter
 * per returned status ('A' + status). `x-exit` makes it call proc_exit(3); `x-grow` grows its
 * memory past the host's cap; `x-loop-reply` sends two local replies.
 */
export const HOSTILE_WAT = `
(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $getbuf (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_header_map_pairs" (func $setpairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $cont (param i32) (result i32)))
  (import "env" "proxy_get_property" (func $prop (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_tick_period_milliseconds" (func $tick (param i32) (result i32)))
  (import "env" "proxy_get_shared_data" (func $shget (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_dequeue_shared_queue" (func $deq (param i32 i32 i32) (result i32)))
  (import "env" "proxy_http_call" (func $call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_call_foreign_function" (func $ffi (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 8192))
  (data (i32.const 16) "allow")
  (data (i32.const 32) "x-exit")
  (data (i32.const 48) "x-grow")
  (data (i32.const 64) "nope")
  (data (i32.const 80) "x-loop-reply")
  (data (i32.const 96) "first")
  (data (i32.const 112) "second")
${PLUGIN_BASICS}
  (func $put (param $i i32) (param $status i32)
    (i32.store8 (i32.add (i32.const 512) (local.get $i)) (i32.add (i32.const 65) (local.get $status))))
  (func $has (param $ptr i32) (param $len i32) (result i32)
    (i32.eqz (call $get (i32.const 0) (local.get $ptr) (local.get $len) (i32.const 1024) (i32.const 1028))))
  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (if (call $has (i32.const 32) (i32.const 6)) (then (call $exit (i32.const 3))))
    (if (call $has (i32.const 48) (i32.const 6))
      (then (drop (memory.grow (i32.const 20000))) (return (i32.const 0))))
    (if (call $has (i32.const 80) (i32.const 12))
      (then
        (drop (call $reply (i32.const 200) (i32.const 0) (i32.const 0) (i32.const 96) (i32.const 5) (i32.const 0) (i32.const 0) (i32.const -1)))
        (drop (call $reply (i32.const 500) (i32.const 0) (i32.const 0) (i32.const 112) (i32.const 6) (i32.const 0) (i32.const 0) (i32.const -1)))
        (return (i32.const 0))))
    (call $put (i32.const 0) (call $log (i32.const 2) (i32.const -256) (i32.const 1000)))
    (call $put (i32.const 1) (call $get (i32.const 0) (i32.const 16) (i32.const 0x7fffffff) (i32.const 1024) (i32.const 1028)))
    (call $put (i32.const 2) (call $get (i32.const 99) (i32.const 16) (i32.const 5) (i32.const 1024) (i32.const 1028)))
    (call $put (i32.const 3) (call $getbuf (i32.const 0) (i32.const 0) (i32.const 10) (i32.const 1024) (i32.const 1028)))
    (call $put (i32.const 4) (call $setpairs (i32.const 0) (i32.const -16) (i32.const 64)))
    (call $put (i32.const 5) (call $cont (i32.const 7)))
    (call $put (i32.const 6) (call $prop (i32.const 64) (i32.const 4) (i32.const 1024) (i32.const 1028)))
    (call $put (i32.const 7) (call $log (i32.const 9) (i32.const 16) (i32.const 5)))
    (call $put (i32.const 8) (call $shget (i32.const 64) (i32.const 4) (i32.const 1024) (i32.const 1028) (i32.const 1032)))
    (call $put (i32.const 9) (call $deq (i32.const 12345) (i32.const 1024) (i32.const 1028)))
    (call $put (i32.const 10) (call $call (i32.const 64) (i32.const 4) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const 1024)))
    (call $put (i32.const 11) (call $ffi (i32.const 64) (i32.const 4) (i32.const 0) (i32.const 0) (i32.const 1024) (i32.const 1028)))
    (call $put (i32.const 12) (call $getbuf (i32.const 42) (i32.const 0) (i32.const 10) (i32.const 1024) (i32.const 1028)))
    (drop (call $reply (i32.const 200) (i32.const 0) (i32.const 0) (i32.const 512) (i32.const 13) (i32.const 0) (i32.const 0) (i32.const -1)))
    (i32.const 1)))
`;

/**
 * A gRPC client module: a request's `x-grpc-msg` header is sent as a unary call to
 * grpc-echo / test.Echo/Echo; the request waits, and the reply is a local response carrying
 * the received message as body and the grpc status in `x-grpc-status`.
 */
export const GRPC_CLIENT_WAT = `
(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_grpc_call" (func $call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $getbuf (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_effective_context" (func $effective (param i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 8192))
  (global $ctx (mut i32) (i32.const 0))
  (global $msg (mut i32) (i32.const 0))
  (global $msglen (mut i32) (i32.const 0))
  (data (i32.const 16) "x-grpc-msg")
  (data (i32.const 32) "grpc-echo")
  (data (i32.const 48) "test.Echo")
  (data (i32.const 64) "Echo")
  ;; serialized pairs: 1 header, "x-grpc-status" (13) = value (1 or 2 chars) at 200
${PLUGIN_BASICS}
  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (if (call $get (i32.const 0) (i32.const 16) (i32.const 10) (i32.const 1024) (i32.const 1028))
      (then (return (i32.const 0))))
    (global.set $ctx (local.get $ctx))
    (drop (call $call (i32.const 32) (i32.const 9) (i32.const 48) (i32.const 9) (i32.const 64) (i32.const 4)
      (i32.const 0) (i32.const 0) (i32.load (i32.const 1024)) (i32.load (i32.const 1028)) (i32.const 5000) (i32.const 1040)))
    (i32.const 1))
  (func (export "proxy_on_grpc_receive_initial_metadata") (param i32 i32 i32))
  (func (export "proxy_on_grpc_receive_trailing_metadata") (param i32 i32 i32))
  (func (export "proxy_on_grpc_receive") (param $root i32) (param $token i32) (param $size i32)
    (drop (call $getbuf (i32.const 5) (i32.const 0) (local.get $size) (i32.const 1100) (i32.const 1104)))
    (global.set $msg (i32.load (i32.const 1100)))
    (global.set $msglen (i32.load (i32.const 1104))))
  (func (export "proxy_on_grpc_close") (param $root i32) (param $token i32) (param $status i32)
    (local $vlen i32)
    ;; pairs buffer at 300: count=1, keylen=13, vallen, "x-grpc-status\\0", value, "\\0"
    (i32.store (i32.const 300) (i32.const 1))
    (i32.store (i32.const 304) (i32.const 13))
    (i32.store8 (i32.const 312) (i32.const 120)) ;; x
    (i32.store8 (i32.const 313) (i32.const 45))  ;; -
    (i32.store8 (i32.const 314) (i32.const 103)) ;; g
    (i32.store8 (i32.const 315) (i32.const 114)) ;; r
    (i32.store8 (i32.const 316) (i32.const 112)) ;; p
    (i32.store8 (i32.const 317) (i32.const 99))  ;; c
    (i32.store8 (i32.const 318) (i32.const 45))  ;; -
    (i32.store8 (i32.const 319) (i32.const 115)) ;; s
    (i32.store8 (i32.const 320) (i32.const 116)) ;; t
    (i32.store8 (i32.const 321) (i32.const 97))  ;; a
    (i32.store8 (i32.const 322) (i32.const 116)) ;; t
    (i32.store8 (i32.const 323) (i32.const 117)) ;; u
    (i32.store8 (i32.const 324) (i32.const 115)) ;; s
    (i32.store8 (i32.const 325) (i32.const 0))
    (if (i32.ge_u (local.get $status) (i32.const 10))
      (then
        (i32.store8 (i32.const 326) (i32.const 49))
        (i32.store8 (i32.const 327) (i32.add (i32.const 38) (local.get $status)))
        (i32.store8 (i32.const 328) (i32.const 0))
        (local.set $vlen (i32.const 2)))
      (else
        (i32.store8 (i32.const 326) (i32.add (i32.const 48) (local.get $status)))
        (i32.store8 (i32.const 327) (i32.const 0))
        (local.set $vlen (i32.const 1))))
    (i32.store (i32.const 308) (local.get $vlen))
    (drop (call $effective (global.get $ctx)))
    (drop (call $reply (i32.const 200) (i32.const 0) (i32.const 0) (global.get $msg) (global.get $msglen)
      (i32.const 300) (i32.add (i32.const 27) (local.get $vlen)) (i32.const -1)))
    (global.set $msglen (i32.const 0))))
`;

/**
 * Calls made in the wrong context or phase, and re-entrant ones. on_configure (root context)
 * records one letter ('A' + status) per call at 600: request header read, local reply,
 * continue_stream, tick period 0. on_request_headers records at 620: response headers before there
 * is a response, set_effective_context to an unknown id, the callout body without a callout,
 * continue_stream from inside the callback (re-entrant), proxy_done from a stream; then answers
 * 200 with the root letters, '/', the stream letters. on_log tries a local reply after the
 * response and logs `wrong-phase on_log reply: <letter>`.
 */
export const WRONG_PHASE_WAT = `
(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $getbuf (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $cont (param i32) (result i32)))
  (import "env" "proxy_set_effective_context" (func $effective (param i32) (result i32)))
  (import "env" "proxy_set_tick_period_milliseconds" (func $tick (param i32) (result i32)))
  (import "env" "proxy_done" (func $done (result i32)))
  (import "env" "proxy_send_local_response" (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 8192))
  (data (i32.const 16) "host")
  (data (i32.const 32) "root")
  (data (i32.const 600) "????/")
  (data (i32.const 700) "wrong-phase on_log reply: ?")
${PLUGIN_BASICS}
  (func $put (param $at i32) (param $status i32)
    (i32.store8 (local.get $at) (i32.add (i32.const 65) (local.get $status))))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (call $put (i32.const 600) (call $get (i32.const 0) (i32.const 16) (i32.const 4) (i32.const 1024) (i32.const 1028)))
    (call $put (i32.const 601) (call $reply (i32.const 403) (i32.const 0) (i32.const 0) (i32.const 32) (i32.const 4) (i32.const 0) (i32.const 0) (i32.const -1)))
    (call $put (i32.const 602) (call $cont (i32.const 0)))
    (call $put (i32.const 603) (call $tick (i32.const 0)))
    (i32.const 1))
  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (call $put (i32.const 605) (call $get (i32.const 2) (i32.const 16) (i32.const 4) (i32.const 1024) (i32.const 1028)))
    (call $put (i32.const 606) (call $effective (i32.const 99999)))
    (call $put (i32.const 607) (call $getbuf (i32.const 4) (i32.const 0) (i32.const 10) (i32.const 1024) (i32.const 1028)))
    (call $put (i32.const 608) (call $cont (i32.const 0)))
    (call $put (i32.const 609) (call $done))
    (drop (call $reply (i32.const 200) (i32.const 0) (i32.const 0) (i32.const 600) (i32.const 10) (i32.const 0) (i32.const 0) (i32.const -1)))
    (i32.const 1))
  (func (export "proxy_on_log") (param i32)
    (call $put (i32.const 726) (call $reply (i32.const 500) (i32.const 0) (i32.const 0) (i32.const 32) (i32.const 4) (i32.const 0) (i32.const 0) (i32.const -1)))
    (drop (call $log (i32.const 2) (i32.const 700) (i32.const 27))))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32)))
`;

/**
 * A runaway plugin for the watchdog: `x-spin` loops forever in proxy_on_request_headers,
 * `x-recurse` runs an exponential recursion with no loop (fib(60)), `x-bomb` grows memory 1 MiB
 * at a time, touching every page, ignores a failed grow and spins on; any other request passes
 * (and gets `x-runaway: ok` on the response).
 */
export const RUNAWAY_WAT = `
(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 4096))
  (data (i32.const 16) "x-spin")
  (data (i32.const 32) "x-recurse")
  (data (i32.const 48) "x-bomb")
  (data (i32.const 64) "x-runaway")
  (data (i32.const 80) "ok")
${PLUGIN_BASICS}
  (func $has (param $ptr i32) (param $len i32) (result i32)
    (i32.eqz (call $get (i32.const 0) (local.get $ptr) (local.get $len) (i32.const 1024) (i32.const 1028))))
  (func $fib (param $n i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $n) (i32.const 2))
      (then (local.get $n))
      (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1))) (call $fib (i32.sub (local.get $n) (i32.const 2)))))))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (local $page i32)
    (if (call $has (i32.const 16) (i32.const 6)) (then (loop $spin (br $spin))))
    (if (call $has (i32.const 32) (i32.const 9)) (then (drop (call $fib (i32.const 60)))))
    (if (call $has (i32.const 48) (i32.const 6))
      (then
        (loop $bomb
          (local.set $page (memory.grow (i32.const 16)))
          (if (i32.ge_s (local.get $page) (i32.const 0))
            (then (i32.store (i32.mul (local.get $page) (i32.const 65536)) (i32.const 1))))
          (br $bomb))))
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (drop (call $add (i32.const 2) (i32.const 64) (i32.const 9) (i32.const 80) (i32.const 2)))
    (i32.const 0))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32)))
`;
