// `wasmgate init plugin`: the scaffolded Go and Rust projects build with this machine's
// toolchains (Go >= 1.24; Debian's rustc/cargo 1.63+ for wasm32-wasi) and load in `wasmgate dev`
// from their own WasmPlugin YAML (relative file:// URL). The Rust build runs offline from crates
// vendored from plugins/header-authorization-rust/vendor when that exists (same Cargo.lock pins);
// otherwise the scaffold's build.sh vendors them from crates.io first.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ROOT, runCli } from '../helpers/proxy.ts';
import { startDev } from './dev-helpers.ts';

const hasGo = spawnSync('go', ['version']).status === 0;
const hasDebianRust = existsSync('/usr/bin/cargo') && existsSync('/usr/lib/rustlib/wasm32-wasi');

describe('wasmgate init plugin', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'wasmgate-init-test-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  async function buildAndDev(lang: string, name: string, header: string) {
    const r = await runCli(['init', 'plugin', '--lang', lang, name, '--dir', join(dir, name)]);
    assert.equal(r.code, 0, r.stderr);
    const project = join(dir, name);
    assert.match(readFileSync(join(project, 'wasmplugin.yaml'), 'utf8'), /url: file:\/\/\.\/plugin\.wasm/);
    if (lang === 'rust' && existsSync(join(ROOT, 'plugins/header-authorization-rust/vendor')))
      cpSync(join(ROOT, 'plugins/header-authorization-rust/vendor'), join(project, 'vendor'), { recursive: true });
    execFileSync('bash', [join(project, 'build.sh')], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 240_000 });
    const dev = await startDev(['wasmplugin.yaml'], project);
    try {
      const ok = await fetch(`${dev.url}/headers`);
      assert.equal(ok.status, 200);
      assert.equal(ok.headers.get(`x-${name}`), header);
      await ok.text();
      const denied = await fetch(`${dev.url}/headers`, { headers: { 'x-deny': '1' } });
      assert.equal(denied.status, 403);
      assert.equal(await denied.text(), `denied by ${name}\n`);
      await dev.waitFor(new RegExp(`\\[debug\\] istio-system\\.${name}: #\\d+ ${name}: request /headers`));
      await dev.waitFor(new RegExp(`GET /headers -> 403  answered by istio-system\\.${name}`));
    } finally {
      assert.equal(await dev.stop(), 0);
    }
  }

  test('go: builds with the machine Go and loads in wasmgate dev', () => {
    // CI has Go (it builds go-httpbin); a machine without it fails here rather than skipping.
    assert.ok(hasGo, 'Go >= 1.24 is needed on the PATH (see .ci/install-go-httpbin.sh)');
    return buildAndDev('go', 'hello-go', 'go');
  });

  test(
    "rust: builds with Debian's cargo and loads in wasmgate dev",
    {
      skip:
        !hasDebianRust && 'no Debian rustc/cargo with wasm32-wasi (apt-get install rustc cargo libstd-rust-dev-wasm32)',
    },
    () => buildAndDev('rust', 'hello-rust', 'rust'),
  );

  test('assemblyscript: scaffolds the project (build: npm ci in it, not run here)', async () => {
    const r = await runCli(['init', 'plugin', '--lang', 'assemblyscript', 'hello-as', '--dir', join(dir, 'hello-as')]);
    assert.equal(r.code, 0, r.stderr);
    const yaml = readFileSync(join(dir, 'hello-as/wasmplugin.yaml'), 'utf8');
    assert.match(yaml, /pluginName: hello_as/);
    assert.match(readFileSync(join(dir, 'hello-as/assembly/index.ts'), 'utf8'), /"hello_as"\);/);
    assert.ok(existsSync(join(dir, 'hello-as/package-lock.json')));
  });

  test('bad names, languages and non-empty folders are refused', async () => {
    assert.equal((await runCli(['init', 'plugin', '--lang', 'go', 'Bad_Name'])).code, 2);
    assert.equal((await runCli(['init', 'plugin', '--lang', 'cobol', 'x'])).code, 2);
    const again = await runCli(['init', 'plugin', '--lang', 'go', 'hello-go', '--dir', join(dir, 'hello-as')]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /exists and is not empty/);
  });
});
