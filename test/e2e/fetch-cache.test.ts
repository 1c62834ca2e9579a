// fetchModule() in process against a real registry: concurrent starts sharing one cache folder,
// a corrupted cache entry, reference parsing and pull-secret formats.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fetchModule } from '../../src/fetch/index.ts';
import { parseOciReference } from '../../src/fetch/oci.ts';
import { credentialFor, dockerConfigFromSecretFile } from '../../src/fetch/secrets.ts';
import { ROOT } from '../helpers/proxy.ts';
import { ociCompatImage, pushImage, type Registry, startRegistry } from '../helpers/registry.ts';

const WASM = readFileSync(join(ROOT, 'plugins/header-authorization-rust/plugin.wasm'));
const tempDir = (prefix: string) => mkdtempSync(join(tmpdir(), prefix));

describe('the module cache against a real registry', () => {
  let reg: Registry;
  let digest: string;
  before(async () => {
    reg = await startRegistry('none');
    digest = await pushImage(reg, 'wasm/shared', 'v1', ociCompatImage(WASM));
  });
  after(async () => {
    await reg?.close();
  });

  test('eight concurrent fetches into one cache folder all get the module; no temp file is left', async () => {
    const cacheDir = tempDir('wg-cache-');
    const results = await Promise.all(
      Array.from({ length: 8 }, () =>
        fetchModule({ url: `oci://${reg.host}/wasm/shared:v1`, imagePullPolicy: 'Always' }, { cacheDir }),
      ),
    );
    for (const r of results) {
      assert.ok(r.bytes.equals(WASM));
      assert.equal(r.checksum, digest);
    }
    const [moduleDir] = readdirSync(join(cacheDir, 'modules'));
    assert.deepEqual(readdirSync(join(cacheDir, 'modules', moduleDir!)).sort(), [`${digest}.json`, `${digest}.wasm`]);
  });

  test('a corrupted cached module is ignored and fetched again', async () => {
    const cacheDir = tempDir('wg-cache-');
    const source = { url: `oci://${reg.host}/wasm/shared:v1`, imagePullPolicy: 'IfNotPresent' as const };
    assert.equal((await fetchModule(source, { cacheDir })).from, 'remote');
    assert.equal((await fetchModule(source, { cacheDir })).from, 'cache');
    const [moduleDir] = readdirSync(join(cacheDir, 'modules'));
    writeFileSync(join(cacheDir, 'modules', moduleDir!, `${digest}.wasm`), WASM.subarray(0, 100));
    const again = await fetchModule(source, { cacheDir });
    assert.equal(again.from, 'remote');
    assert.ok(again.bytes.equals(WASM));
  });
});

describe('references and pull secrets', () => {
  test('oci references: registry, Docker Hub defaults, tag and digest', () => {
    const d = 'a'.repeat(64);
    assert.deepEqual(parseOciReference('oci://private-registry:5000/openid-connect/openid:latest'), {
      registry: 'private-registry:5000',
      repository: 'openid-connect/openid',
      tag: 'latest',
    });
    assert.deepEqual(parseOciReference('ghcr.io/team/plugin'), {
      registry: 'ghcr.io',
      repository: 'team/plugin',
      tag: 'latest',
    });
    assert.deepEqual(parseOciReference('nginx:1.2'), {
      registry: 'index.docker.io',
      repository: 'library/nginx',
      tag: '1.2',
    });
    assert.deepEqual(parseOciReference(`oci://localhost/p@sha256:${d}`), {
      registry: 'localhost',
      repository: 'p',
      digest: `sha256:${d}`,
    });
    assert.throws(() => parseOciReference('oci://host.io/Upper/case'), /invalid repository name/);
  });

  test('Docker config JSON and Kubernetes Secrets; keys matched by host[:port]', () => {
    const config = JSON.stringify({
      auths: {
        'https://index.docker.io/v1/': { username: 'hub', password: 'p1' },
        'registry.example.com:5000': { auth: Buffer.from('u:p:2').toString('base64') },
      },
    });
    const auths = dockerConfigFromSecretFile(config, 'test');
    assert.deepEqual(credentialFor(auths, 'index.docker.io'), { username: 'hub', password: 'p1' });
    assert.deepEqual(credentialFor(auths, 'registry.example.com:5000'), { username: 'u', password: 'p:2' });
    assert.equal(credentialFor(auths, 'other.example.com'), undefined);
    const yaml = `apiVersion: v1\nkind: Secret\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: ${Buffer.from(config).toString('base64')}\n`;
    assert.deepEqual(credentialFor(dockerConfigFromSecretFile(yaml, 'test'), 'registry.example.com:5000'), {
      username: 'u',
      password: 'p:2',
    });
    assert.throws(
      () => dockerConfigFromSecretFile('kind: Secret\ntype: Opaque\ndata: {}\n', 'test'),
      /Secret type is Opaque/,
    );
    // A malformed secret is reported without echoing its content.
    assert.throws(
      () => dockerConfigFromSecretFile('{"auths": "hunter2"', 'x'),
      (e: Error) => !e.message.includes('hunter2'),
    );
  });
});
