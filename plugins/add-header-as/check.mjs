// Plain-node check of plugin.wasm (no wasmgate needed): lists the module's imports and exports,
// then drives it through a minimal Proxy-Wasm 0.2.0 host stub: root context + configure, a plain
// request (response header added), a denied request (local 403), context deletion, repeated.
// Usage: node check.mjs [path/to/plugin.wasm] [--quiet]

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const file = process.argv.slice(2).find((a) => !a.startsWith('--')) ?? join(here, 'plugin.wasm');
const quiet = process.argv.includes('--quiet');
const bytes = readFileSync(file);
const module = new WebAssembly.Module(bytes);
const imports = WebAssembly.Module.imports(module);
const exports = WebAssembly.Module.exports(module);
console.log(`${file}: ${bytes.length} bytes`);
console.log(`imports (${imports.length}): ${imports.map((i) => `${i.module}.${i.name}`).join(', ')}`);
console.log(`exports (${exports.length}): ${exports.map((e) => e.name).join(', ')}`);

// ---- a tiny host ----
const enc = new TextEncoder();
const dec = new TextDecoder();
const config = process.env.PLUGIN_CONFIG ?? '{"header": "x-as", "value": "hello"}';
const rootId = process.env.PLUGIN_ROOT_ID ?? 'add_header';
const logs = [];
let inst;
let request = new Map();
let response = new Map();
let local = null;

const mem = () => new DataView(inst.exports.memory.buffer);
const read = (ptr, len) => new Uint8Array(inst.exports.memory.buffer, ptr, len).slice();
const str = (ptr, len) => dec.decode(read(ptr, len));
/** Copies `data` into a guest malloc'ed block and stores its address and size at ptrPtr / sizePtr. */
function give(data, ptrPtr, sizePtr) {
  const p = inst.exports.malloc(data.length);
  new Uint8Array(inst.exports.memory.buffer, p, data.length).set(data);
  mem().setUint32(ptrPtr, p, true);
  mem().setUint32(sizePtr, data.length, true);
  return 0;
}
function pairs(map) {
  const list = [...map].map(([k, v]) => [enc.encode(k), enc.encode(v)]);
  const size = 4 + list.reduce((n, [k, v]) => n + 8 + k.length + v.length + 2, 0);
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, list.length, true);
  let off = 4;
  for (const [k, v] of list) {
    dv.setUint32(off, k.length, true);
    dv.setUint32(off + 4, v.length, true);
    off += 8;
  }
  for (const [k, v] of list) {
    out.set(k, off);
    off += k.length + 1;
    out.set(v, off);
    off += v.length + 1;
  }
  return out;
}
function unpairs(buf) {
  if (buf.length === 0) return new Map();
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = dv.getUint32(0, true);
  const out = new Map();
  let off = 4 + 8 * n;
  for (let i = 0; i < n; i++) {
    const kn = dv.getUint32(4 + 8 * i, true);
    const vn = dv.getUint32(8 + 8 * i, true);
    const k = dec.decode(buf.subarray(off, off + kn));
    off += kn + 1;
    out.set(k, dec.decode(buf.subarray(off, off + vn)));
    off += vn + 1;
  }
  return out;
}
const mapOf = (t) => (t === 0 ? request : t === 2 ? response : null);
class Exit extends Error {}
const env = {
  proxy_log(level, p, n) {
    logs.push([level, str(p, n)]);
    if (!quiet && level >= 2) console.log(`  guest log[${level}]: ${str(p, n)}`);
    return 0;
  },
  proxy_get_buffer_bytes(type, start, len, ptrPtr, sizePtr) {
    if (type !== 7) return 1; // NotFound: only the plugin configuration exists here
    return give(enc.encode(config).subarray(start, start + len), ptrPtr, sizePtr);
  },
  proxy_get_property(p, n, ptrPtr, sizePtr) {
    const path = str(p, n).split('\0').filter(Boolean).join('.');
    if (path === 'plugin_root_id') return give(enc.encode(rootId), ptrPtr, sizePtr);
    return 1;
  },
  proxy_set_effective_context: () => 0,
  proxy_get_header_map_pairs(type, ptrPtr, sizePtr) {
    const m = mapOf(type);
    return m ? give(pairs(m), ptrPtr, sizePtr) : 1;
  },
  proxy_add_header_map_value(type, kp, kn, vp, vn) {
    const m = mapOf(type);
    if (!m) return 1;
    const k = str(kp, kn);
    m.set(k, m.has(k) ? `${m.get(k)},${str(vp, vn)}` : str(vp, vn));
    return 0;
  },
  proxy_send_local_response(code, dp, dn, bp, bn, hp, hn, grpc) {
    local = { code, details: str(dp, dn), body: str(bp, bn), headers: unpairs(read(hp, hn)), grpc };
    return 0;
  },
};
const stub = new Proxy({}, { get: (_, name) => () => assert.fail(`unexpected host call ${String(name)}`) });
const importObject = {
  env: new Proxy(env, { get: (t, k) => t[k] ?? stub[k] }),
  wasi_unstable: {
    proc_exit(code) {
      throw new Exit(`proc_exit(${code}): ${logs.at(-1)?.[1]}`);
    },
  },
};
inst = new WebAssembly.Instance(module, importObject); // the start section runs here
const x = inst.exports;
const ROOT = 1;
x.proxy_on_context_create(ROOT, 0);
assert.equal(x.proxy_on_vm_start(ROOT, 0), 1);
assert.equal(x.proxy_on_configure(ROOT, enc.encode(config).length), 1);
const configured = logs.find(([l, m]) => l === 2 && m.startsWith('add_header configured: '));
assert.ok(configured, 'info log "add_header configured: ..."');
const expected = config ? JSON.parse(config) : {};
const header = (typeof expected.header === 'string' && expected.header.trim().toLowerCase()) || 'x-as';
const value = typeof expected.value === 'string' ? expected.value : 'assemblyscript';
assert.equal(configured[1], `add_header configured: ${header}=${value}`);

let id = 2;
const rounds = Number(process.env.ROUNDS ?? 2000);
for (let round = 0; round < rounds; round++) {
  // allowed
  request = new Map([
    [':method', 'GET'],
    [':path', `/get?n=${round}`],
    [':authority', 'example'],
    ['user-agent', 'check'],
  ]);
  response = new Map([
    [':status', '200'],
    ['content-type', 'application/json'],
  ]);
  local = null;
  let ctx = id++;
  x.proxy_on_context_create(ctx, ROOT);
  assert.equal(x.proxy_on_request_headers(ctx, request.size, 0), 0, 'Continue');
  assert.equal(local, null);
  assert.equal(x.proxy_on_response_headers(ctx, response.size, 0), 0, 'Continue');
  assert.equal(response.get(header), value);
  x.proxy_on_done(ctx);
  x.proxy_on_log(ctx);
  x.proxy_on_delete(ctx);
  // denied (empty value still counts: presence is what matters)
  request = new Map([
    [':method', 'GET'],
    [':path', '/get'],
    ['x-as-deny', round % 2 ? '' : 'yes'],
  ]);
  local = null;
  ctx = id++;
  x.proxy_on_context_create(ctx, ROOT);
  assert.equal(x.proxy_on_request_headers(ctx, request.size, 0), 1, 'StopIteration');
  assert.equal(local?.code, 403);
  assert.equal(local.body, 'denied by assemblyscript');
  assert.equal(local.headers.get('content-type'), 'text/plain');
  assert.equal(local.grpc, -1); // -1: not a gRPC reply
  x.proxy_on_done(ctx);
  x.proxy_on_log(ctx);
  x.proxy_on_delete(ctx);
}
const pages = x.memory.buffer.byteLength / 65536;
// A leak of one reference per callback (what asc 0.14's checked downcasts in the SDK cause without
// --noAssert) grows memory to ~4 pages by 2000 rounds; a sound build stays at 1.
assert.ok(rounds < 1000 || pages <= 2, `guest memory grew to ${pages} pages: leak`);
console.log(
  `ok: ${configured[1]}; ${rounds} allowed (+${header}: ${value}) and ${rounds} denied (403) requests; memory ${pages} pages`,
);
