// `wasmgate dev`: a bare .wasm in front of the embedded httpbin, plugin logs at debug, one line
// per request naming who answered, and a rebuilt module reloads in place.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ROOT, runCli } from '../helpers/proxy.ts';
import { type DevProcess, startDev } from './dev-helpers.ts';

describe('wasmgate dev PLUGIN.wasm', () => {
  let dir: string;
  let dev: DevProcess;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wasmgate-dev-test-'));
    copyFileSync(join(ROOT, 'plugins/header-authorization-go/plugin.wasm'), join(dir, 'authz.wasm'));
    dev = await startDev([join(dir, 'authz.wasm')]);
  });
  after(async () => {
    await dev?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('prints the chain, the plugin debug logs and one line per request', async () => {
    assert.match(dev.output(), /chain: istio-system\.authz -> .*router/);
    const denied = await fetch(`${dev.url}/status/418`);
    assert.equal(denied.status, 403);
    await denied.text();
    await dev.waitFor(/GET \/status\/418 -> 403 {2}answered by istio-system\.authz \(local reply: \S+\)/);
    await dev.waitFor(/\[debug\] istio-system\.authz: request header: 'allow' is , only true can passthrough/);
    const ok = await fetch(`${dev.url}/headers`, { headers: { allow: 'true' } });
    assert.equal(ok.status, 200);
    await ok.text();
    await dev.waitFor(/GET \/headers -> 200 {2}passed istio-system\.authz -> .*router -> upstream/);
  });

  test('a rebuilt module is reloaded: the new one answers', async () => {
    const mark = dev.output().length;
    copyFileSync(join(ROOT, 'plugins/header-authorization-rust/plugin.wasm'), join(dir, 'authz.wasm'));
    await dev.waitFor(/reloaded \(changed: .*authz\.wasm\): plugins kept 0, replaced 1/, mark);
    const res = await fetch(`${dev.url}/status/418`);
    assert.equal(await res.text(), 'Forbidden by ASM Wasm Plugin, rust version\n');
  });

  test('usage errors exit 2', async () => {
    const r = await runCli(['dev', 'README.md']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /expected a \.wasm module or a WasmPlugin \.yaml file/);
  });
});
