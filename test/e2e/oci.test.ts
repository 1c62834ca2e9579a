// oci:// against a real registry (Debian's docker-registry, the CNCF distribution server) on
// loopback: the three image formats Istio accepts and an image index, tag and digest references,
// anonymous, htpasswd and Bearer token auth with pull secrets from --secrets-dir, sha256, the
// cache when the registry is down, and failStrategy when the fetch fails. The plugin is the
// tutorial's header-authorization (Rust), so "it runs" means 403 without `allow: true`.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ROOT, type RunningProxy, startProxy, tempConfig, wasmPluginYaml } from '../helpers/proxy.ts';
import {
  dockerImage,
  ociArtifactImage,
  ociCompatImage,
  ociIndex,
  pushImage,
  type Registry,
  secretsDir,
  startRegistry,
} from '../helpers/registry.ts';
import { startEmbeddedHttpbin, type Upstream } from '../helpers/upstreams.ts';

const WASM = readFileSync(join(ROOT, 'plugins/header-authorization-rust/plugin.wasm'));
const DENIED = 'Forbidden by ASM Wasm Plugin, rust version\n';

let upstream: Upstream;
before(async () => {
  upstream = await startEmbeddedHttpbin();
});
after(async () => {
  await upstream?.close();
});

const tempDir = (prefix: string) => mkdtempSync(join(tmpdir(), prefix));

interface PluginOpts {
  url: string;
  name?: string;
  failStrategy?: string;
  sha256?: string;
  imagePullPolicy?: string;
  imagePullSecret?: string;
}

function pluginYaml(o: PluginOpts): string {
  let extra = '';
  if (o.sha256) extra += `  sha256: ${o.sha256}\n`;
  if (o.imagePullPolicy) extra += `  imagePullPolicy: ${o.imagePullPolicy}\n`;
  if (o.imagePullSecret) extra += `  imagePullSecret: ${o.imagePullSecret}\n`;
  return wasmPluginYaml({
    name: o.name ?? 'header-authorization',
    url: o.url,
    phase: 'AUTHN',
    ...(o.failStrategy ? { failStrategy: o.failStrategy } : {}),
    extra,
  });
}

async function withProxy(
  plugin: PluginOpts,
  args: string[],
  body: (proxy: RunningProxy) => Promise<void>,
): Promise<RunningProxy> {
  const dir = tempConfig({ 'plugin.yaml': pluginYaml(plugin) });
  const proxy = await startProxy(['-c', dir, '--upstream', upstream.url, ...args], 60_000);
  try {
    await body(proxy);
  } finally {
    await proxy.stop();
  }
  return proxy;
}

/** The plugin runs: 403 with its body without the header, upstream's 200 with it. */
async function assertPluginRuns(proxy: RunningProxy): Promise<void> {
  const denied = await fetch(`${proxy.url}/get`);
  assert.equal(denied.status, 403, proxy.stderr());
  assert.equal(await denied.text(), DENIED);
  const allowed = await fetch(`${proxy.url}/get`, { headers: { allow: 'true' } });
  assert.equal(allowed.status, 200);
  await allowed.text();
}

async function assertFailClosed(proxy: RunningProxy, pattern: RegExp): Promise<void> {
  const res = await fetch(`${proxy.url}/get`, { headers: { allow: 'true' } });
  assert.equal(res.status, 503, proxy.stderr());
  await res.text();
  assert.match(proxy.stderr(), pattern);
  assert.doesNotMatch(proxy.stderr(), /\n\s+at /);
}

describe('oci:// from an anonymous registry', () => {
  let reg: Registry;
  const digests: Record<string, string> = {};
  before(async () => {
    reg = await startRegistry('none');
    digests.docker = await pushImage(reg, 'wasm/docker', 'v1', dockerImage(WASM));
    digests.compat = await pushImage(reg, 'wasm/compat', 'v1', ociCompatImage(WASM));
    digests.artifact = await pushImage(reg, 'wasm/artifact', 'v1', ociArtifactImage(WASM));
    // The index's arm64 entry holds a module that is not Wasm: picking it would fail to load.
    const index = ociIndex(ociCompatImage(WASM), dockerImage(Buffer.from('not wasm')));
    digests.index = await pushImage(reg, 'wasm/multiarch', 'v1', index);
    digests.indexAmd64 = index.children![1]!.digest;
  });
  after(async () => {
    await reg?.close();
  });

  for (const [format, repo] of [
    ['Docker image manifest v2 schema 2 (layer tar.gz with plugin.wasm)', 'docker'],
    ['OCI "compat" image (OCI media types)', 'compat'],
    ['OCI Wasm artifact (application/vnd.module.wasm.content.layer.v1+wasm)', 'artifact'],
    ['OCI image index: the linux/amd64 image is chosen', 'multiarch'],
  ] as const) {
    test(`${format}, by tag`, async () => {
      await withProxy({ url: `oci://${reg.host}/wasm/${repo}:v1` }, ['--cache-dir', tempDir('wg-cache-')], (p) =>
        assertPluginRuns(p),
      );
    });
  }

  test('by digest (oci://host/repo@sha256:...), and a URL with no scheme means oci://', async () => {
    await withProxy(
      { url: `oci://${reg.host}/wasm/docker@sha256:${digests.docker}` },
      ['--cache-dir', tempDir('wg-cache-')],
      assertPluginRuns,
    );
    await withProxy(
      { url: `${reg.host}/wasm/artifact@sha256:${digests.artifact}` },
      ['--cache-dir', tempDir('wg-cache-')],
      assertPluginRuns,
    );
  });

  test('an index pinned by digest', async () => {
    await withProxy(
      { url: `oci://${reg.host}/wasm/multiarch@sha256:${digests.index}` },
      ['--cache-dir', tempDir('wg-cache-')],
      assertPluginRuns,
    );
  });

  test('sha256 is the manifest digest (for an index, the linux/amd64 image manifest, as Istio)', async () => {
    await withProxy(
      { url: `oci://${reg.host}/wasm/compat:v1`, sha256: digests.compat },
      ['--cache-dir', tempDir('wg-cache-')],
      assertPluginRuns,
    );
    await withProxy(
      { url: `oci://${reg.host}/wasm/multiarch:v1`, sha256: digests.indexAmd64 },
      ['--cache-dir', tempDir('wg-cache-')],
      assertPluginRuns,
    );
  });

  test('a wrong sha256 is a fetch failure naming plugin, URL, expected and actual (FAIL_CLOSE: 503)', async () => {
    const wrong = 'a'.repeat(64);
    await withProxy(
      { url: `oci://${reg.host}/wasm/compat:v1`, sha256: wrong },
      ['--cache-dir', tempDir('wg-cache-')],
      (p) =>
        assertFailClosed(
          p,
          new RegExp(
            `wasm plugin istio-system\\.header-authorization failed to load: cannot fetch oci://${reg.host}/wasm/compat:v1: sha256 mismatch: expected ${wrong}, got ${digests.compat}`,
          ),
        ),
    );
  });

  test('a missing tag names the registry answer', async () => {
    await withProxy({ url: `oci://${reg.host}/wasm/compat:nope` }, ['--cache-dir', tempDir('wg-cache-')], (p) =>
      assertFailClosed(
        p,
        /cannot fetch oci:\/\/\S+\/wasm\/compat:nope: GET \/v2\/wasm\/compat\/manifests\/nope: HTTP 404/,
      ),
    );
  });
});

describe('oci:// with htpasswd (Basic) auth and a pull secret from --secrets-dir', () => {
  let reg: Registry;
  before(async () => {
    reg = await startRegistry('htpasswd');
    await pushImage(reg, 'private/plugin', 'v1', ociCompatImage(WASM));
  });
  after(async () => {
    await reg?.close();
  });

  test('DIR/<namespace>/<name> holding .dockerconfigjson: the plugin runs; the password is never printed', async () => {
    const dir = secretsDir(reg, 'istio-system', 'regcred');
    const proxy = await withProxy(
      { url: `oci://${reg.host}/private/plugin:v1`, imagePullSecret: 'regcred' },
      ['--cache-dir', tempDir('wg-cache-'), '--secrets-dir', dir],
      async (p) => {
        await assertPluginRuns(p);
        const dump = await (await fetch(`http://127.0.0.1:${p.adminPort}/config_dump`)).text();
        assert.ok(!dump.includes(reg.password!));
      },
    );
    assert.ok(!proxy.stderr().includes(reg.password!));
    assert.ok(!proxy.stdout().includes(reg.password!));
  });

  test('no pull secret: 401 names the cause (FAIL_CLOSE: 503)', async () => {
    await withProxy({ url: `oci://${reg.host}/private/plugin:v1` }, ['--cache-dir', tempDir('wg-cache-')], (p) =>
      assertFailClosed(p, /requires credentials \(set imagePullSecret\)/),
    );
  });

  test('a pull secret that is not in --secrets-dir names the paths looked at', async () => {
    const dir = tempDir('wg-secrets-');
    await withProxy(
      { url: `oci://${reg.host}/private/plugin:v1`, imagePullSecret: 'absent' },
      ['--cache-dir', tempDir('wg-cache-'), '--secrets-dir', dir],
      (p) =>
        assertFailClosed(p, /imagePullSecret \\"absent\\" not found: no file \S+\/istio-system\/absent or \S+\/absent/),
    );
  });
});

describe('oci:// with Bearer token auth (WWW-Authenticate challenge, token server, JWT)', () => {
  let reg: Registry;
  before(async () => {
    reg = await startRegistry('token');
    await pushImage(reg, 'private/plugin', 'v2', dockerImage(WASM));
  });
  after(async () => {
    await reg?.close();
  });

  for (const form of ['k8s-yaml', 'k8s-json'] as const) {
    test(`pull secret as a Kubernetes Secret (${form}): a token is fetched and the plugin runs`, async () => {
      const dir = secretsDir(reg, 'istio-system', 'regcred', form);
      const before = reg.tokensIssued();
      const proxy = await withProxy(
        { url: `oci://${reg.host}/private/plugin:v2`, imagePullSecret: 'regcred' },
        ['--cache-dir', tempDir('wg-cache-'), '--secrets-dir', dir],
        assertPluginRuns,
      );
      assert.ok(reg.tokensIssued() > before, 'the token server issued a token');
      assert.ok(!proxy.stderr().includes(reg.password!));
    });
  }

  test('no credentials: the token server refuses (FAIL_CLOSE: 503)', async () => {
    await withProxy({ url: `oci://${reg.host}/private/plugin:v2` }, ['--cache-dir', tempDir('wg-cache-')], (p) =>
      assertFailClosed(p, /cannot fetch oci:\/\/\S+: token server http:\/\/127\.0\.0\.1:\d+ refused the credentials/),
    );
  });
});

describe('cache and pull policy when the registry is down', () => {
  let reg: Registry;
  let digest: string;
  before(async () => {
    reg = await startRegistry('none');
    digest = await pushImage(reg, 'wasm/cached', 'v1', ociArtifactImage(WASM));
    await pushImage(reg, 'wasm/cached', 'latest', ociArtifactImage(WASM));
  });
  after(async () => {
    await reg?.close();
  });

  test('IfNotPresent with a cached copy loads it; without one FAIL_CLOSE 503s and FAIL_OPEN skips', async () => {
    const cache = tempDir('wg-cache-');
    const url = `oci://${reg.host}/wasm/cached:v1`;
    await withProxy({ url, imagePullPolicy: 'IfNotPresent' }, ['--cache-dir', cache], assertPluginRuns);
    await reg.stop();
    try {
      const cached = await withProxy(
        { url, imagePullPolicy: 'IfNotPresent' },
        ['--cache-dir', cache],
        assertPluginRuns,
      );
      assert.match(cached.stderr(), new RegExp(`wasm module ${url}: cached sha256:${digest.slice(0, 12)}`));
      // The default policy for a tag other than latest is IfNotPresent too; by digest, always cached.
      await withProxy({ url }, ['--cache-dir', cache], assertPluginRuns);
      await withProxy(
        { url: `oci://${reg.host}/wasm/cached@sha256:${digest}` },
        ['--cache-dir', cache],
        assertPluginRuns,
      );

      const empty = tempDir('wg-cache-');
      await withProxy({ url }, ['--cache-dir', empty], (p) =>
        assertFailClosed(
          p,
          new RegExp(
            `wasm plugin istio-system\\.header-authorization failed to load: cannot fetch ${url}: ECONNREFUSED`,
          ),
        ),
      );
      await withProxy({ url, failStrategy: 'FAIL_OPEN' }, ['--cache-dir', empty], async (p) => {
        const res = await fetch(`${p.url}/get`);
        assert.equal(res.status, 200, 'FAIL_OPEN skips the plugin: no 403');
        await res.text();
      });
    } finally {
      await reg.restart();
    }
  });

  test(':latest pulls again (Always) and an unchanged tag reuses the cached module', async () => {
    const cache = tempDir('wg-cache-');
    const url = `oci://${reg.host}/wasm/cached:latest`;
    await withProxy({ url }, ['--cache-dir', cache], assertPluginRuns);
    const again = await withProxy({ url }, ['--cache-dir', cache], assertPluginRuns);
    assert.match(again.stderr(), /fetching image wasm\/cached from http:\/\/127\.0\.0\.1:\d+ \(latest\)/);
    await reg.stop();
    try {
      await withProxy({ url }, ['--cache-dir', cache], (p) =>
        assertFailClosed(p, /cannot fetch \S+:latest: ECONNREFUSED/),
      );
    } finally {
      await reg.restart();
    }
  });
});

describe("Istio's documentation examples, with only the registry host changed", () => {
  let reg: Registry;
  before(async () => {
    reg = await startRegistry('token');
    await pushImage(reg, 'openid-connect/openid', 'latest', ociCompatImage(WASM));
    await pushImage(reg, 'acl-check/acl', 'latest', dockerImage(WASM));
    await pushImage(reg, 'check-header', 'latest', ociArtifactImage(WASM));
  });
  after(async () => {
    await reg?.close();
  });

  test('the three ordered WasmPlugins (openid-connect, acl-check, check-header) load and run', async () => {
    const yaml = readFileSync(join(ROOT, 'test/fixtures/istio-docs-wasmplugins.yaml'), 'utf8').replaceAll(
      'private-registry:5000',
      reg.host,
    );
    const dir = tempConfig({ 'plugins.yaml': yaml });
    const secrets = secretsDir(reg, 'istio-ingress', 'private-registry-pull-secret', 'k8s-yaml');
    const proxy = await startProxy(
      [
        '-c',
        dir,
        '--upstream',
        upstream.url,
        '--namespace',
        'istio-ingress',
        '--cache-dir',
        tempDir('wg-cache-'),
        '--secrets-dir',
        secrets,
      ],
      60_000,
    );
    try {
      await assertPluginRuns(proxy);
      for (const name of ['openid-connect', 'acl-check', 'check-header'])
        assert.doesNotMatch(proxy.stderr(), new RegExp(`istio-ingress\\.${name} failed`));
      assert.match(
        proxy.stderr(),
        /istio-ingress\.openid-connect.*istio-ingress\.acl-check.*istio-ingress\.check-header/,
      );
    } finally {
      await proxy.stop();
    }
  });
});
