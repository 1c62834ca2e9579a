// Bad input gets a clear answer: validate errors with file:line, module problems as warnings,
// failStrategy for modules that cannot load or trap, CLI usage errors.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli, startProxy, tempConfig, wasmPluginYaml } from '../helpers/proxy.ts';
import { startEmbeddedHttpbin } from '../helpers/upstreams.ts';
import { HEADER_PLUGIN_WAT, tempModule, wat } from '../helpers/wat.ts';

let upstream: Awaited<ReturnType<typeof startEmbeddedHttpbin>>;
before(async () => {
  upstream = await startEmbeddedHttpbin();
});
after(async () => {
  await upstream?.close();
});

describe('wasmgate validate', () => {
  test('a misspelt field exits 1 and names its file, line and column', async () => {
    const dir = tempConfig({
      'bad.yaml': `apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: typo
  namespace: istio-system
spec:
  url: oci://registry/typo:v1
  phse: AUTHN
`,
    });
    const r = await runCli(['validate', '-c', dir]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `${join(dir, 'bad.yaml').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:8:3  WasmPlugin istio-system/typo  spec.phse: `,
      ),
    );
  });

  test('a missing module, a file that is not Wasm and a module without exports are warnings (exit 0)', async () => {
    const notWasm = tempModule('hello', 'not.wasm');
    const empty = tempModule(wat('(module)'), 'empty.wasm');
    const dir = tempConfig({
      'a.yaml': wasmPluginYaml({ name: 'missing', url: 'file:///nonexistent/missing.wasm' }),
      'b.yaml': wasmPluginYaml({ name: 'notwasm', url: notWasm.url }),
      'c.yaml': wasmPluginYaml({ name: 'noexports', url: empty.url }),
    });
    const r = await runCli(['validate', '-c', dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /a\.yaml:\d+:\d+ {2}WasmPlugin istio-system\/missing {2}spec\.url: module file not found: \/nonexistent\/missing\.wasm \(warning\)/,
    );
    assert.match(r.stderr, /WasmPlugin istio-system\/notwasm {2}spec\.url: not a WebAssembly module/);
    assert.match(r.stderr, /WasmPlugin istio-system\/noexports {2}spec\.url: missing Proxy-Wasm ABI version marker/);
    assert.match(r.stdout, /listener :8080: istio\.stats -> istio-system\.missing .* -> router/);
  });

  test('prints the effective chain in phase and priority order', async () => {
    const url = tempModule(wat(HEADER_PLUGIN_WAT)).url;
    const dir = tempConfig({
      'p.yaml': [
        wasmPluginYaml({ name: 'check-header', url, phase: 'AUTHZ', priority: 10 }),
        wasmPluginYaml({ name: 'openid-connect', url, phase: 'AUTHN' }),
        wasmPluginYaml({ name: 'acl-check', url, phase: 'AUTHZ', priority: 1000 }),
        wasmPluginYaml({ name: 'last', url }),
      ].join('---\n'),
    });
    const r = await runCli(['validate', '-c', dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /istio-system\.openid-connect \(AUTHN, priority 0\) -> istio-system\.acl-check \(AUTHZ, priority 1000\) -> istio-system\.check-header \(AUTHZ, priority 10\) -> istio\.stats -> istio-system\.last \(UNSPECIFIED_PHASE, priority 0\) -> router/,
    );
  });
});

describe('wasmgate command line', () => {
  test('--version and --help', async () => {
    const v = await runCli(['--version']);
    assert.equal(v.code, 0);
    assert.match(v.stdout, /^wasmgate \d+\.\d+\.\d+\n$/);
    const h = await runCli(['--help']);
    assert.equal(h.code, 0);
    assert.match(h.stdout, /wasmgate run -c PATH/);
  });

  test('an unknown flag is an error', async () => {
    const r = await runCli(['run', '-c', 'config', '--bogus']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /Unknown option '--bogus'/);
  });

  test('run refuses an invalid configuration without a stack trace', async () => {
    const dir = tempConfig({
      'x.yaml':
        'apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {name: x}\nspec: {priority: high}\n',
    });
    const r = await runCli(['run', '-c', dir, '--port', '0', '--admin-port=-1']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /spec\.priority/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });
});

describe('failStrategy', () => {
  test('FAIL_CLOSE (default): a missing module answers 503 and is logged in one line', async () => {
    const dir = tempConfig({ 'p.yaml': wasmPluginYaml({ name: 'gone', url: 'file:///nonexistent/gone.wasm' }) });
    const proxy = await startProxy(['-c', dir, '--upstream', upstream.url]);
    try {
      const res = await fetch(`${proxy.url}/get`);
      assert.equal(res.status, 503);
      await res.text();
      assert.match(
        proxy.stderr(),
        /wasm plugin istio-system\.gone failed to load: module file not found: \/nonexistent\/gone\.wasm/,
      );
      assert.doesNotMatch(proxy.stderr(), /\n\s+at /);
    } finally {
      await proxy.stop();
    }
  });

  test('FAIL_OPEN: a module that is not Wasm is skipped and traffic flows', async () => {
    const dir = tempConfig({
      'p.yaml': wasmPluginYaml({ name: 'junk', url: tempModule('junk').url, failStrategy: 'FAIL_OPEN' }),
    });
    const proxy = await startProxy(['-c', dir, '--upstream', upstream.url]);
    try {
      const res = await fetch(`${proxy.url}/get`);
      assert.equal(res.status, 200);
      await res.text();
      assert.match(proxy.stderr(), /wasm plugin istio-system\.junk failed to load: not a WebAssembly module/);
    } finally {
      await proxy.stop();
    }
  });

  for (const [strategy, afterTrap] of [
    ['FAIL_CLOSE', 503],
    ['FAIL_OPEN', 200],
  ] as const) {
    test(`${strategy}: a plugin that traps mid-request`, async () => {
      const url = tempModule(wat(HEADER_PLUGIN_WAT)).url;
      const dir = tempConfig({ 'p.yaml': wasmPluginYaml({ name: 'trapper', url, failStrategy: strategy }) });
      const proxy = await startProxy(['-c', dir, '--upstream', upstream.url]);
      try {
        const ok = await fetch(`${proxy.url}/get`, { headers: { allow: '1' } });
        assert.equal(ok.status, 200);
        assert.equal(ok.headers.get('x-wat'), '1');
        await ok.text();
        const trapped = await fetch(`${proxy.url}/get`, { headers: { allow: '1', trap: '1' } });
        assert.equal(trapped.status, afterTrap);
        await trapped.text();
        const next = await fetch(`${proxy.url}/get`, { headers: { allow: '1' } });
        assert.equal(next.status, afterTrap, 'the trapped VM stays failed');
        await next.text();
        assert.match(
          proxy.stderr(),
          /wasm plugin istio-system\.trapper trapped: proxy_on_request_headers: trap: unreachable/,
        );
      } finally {
        await proxy.stop();
      }
    });
  }

  test('FAIL_RELOAD: a trapped VM is recreated and serves again', async () => {
    const url = tempModule(wat(HEADER_PLUGIN_WAT)).url;
    const dir = tempConfig({ 'p.yaml': wasmPluginYaml({ name: 'reloader', url, failStrategy: 'FAIL_RELOAD' }) });
    const proxy = await startProxy(['-c', dir, '--upstream', upstream.url]);
    try {
      const trapped = await fetch(`${proxy.url}/get`, { headers: { allow: '1', trap: '1' } });
      assert.equal(trapped.status, 503);
      await trapped.text();
      const next = await fetch(`${proxy.url}/get`, { headers: { allow: '1' } });
      assert.equal(next.status, 200);
      assert.equal(next.headers.get('x-wat'), '1');
      await next.text();
      const denied = await fetch(`${proxy.url}/get`);
      assert.equal(denied.status, 403);
      assert.equal(await denied.text(), 'denied by wat');
      assert.match(proxy.stderr(), /wasm plugin istio-system\.reloader reloaded after a failure/);
    } finally {
      await proxy.stop();
    }
  });
});
