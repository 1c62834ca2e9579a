// deploy/: the Kubernetes manifests are schema-valid (kustomize build | kubeconform, through
// .ci/validate-deploy.sh; the tools come from .ci/install-kubeconform.sh), agree with the image
// (ports, uid, drain vs grace period) and ship the tutorial's configuration.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { parseDurationMs } from '../../src/config/duration.ts';
import { ROOT, runCli } from '../helpers/proxy.ts';

const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');
const docs = (p: string) => parseAllDocuments(read(p)).map((d) => d.toJS());

function toolsInstalled(): boolean {
  const gopath = spawnSync('go', ['env', 'GOPATH'], { encoding: 'utf8' }).stdout?.trim().split(':')[0];
  return !!gopath && existsSync(join(gopath, 'bin/kubeconform')) && existsSync(join(gopath, 'bin/kustomize'));
}

describe('deploy/ (Kubernetes)', () => {
  test('kustomize build | kubeconform -strict: every resource valid for Kubernetes 1.29 and 1.37', {
    skip: !process.env.CI && !toolsInstalled() && 'run bash .ci/install-kubeconform.sh first',
  }, () => {
    execFileSync('bash', [join(ROOT, '.ci/install-kubeconform.sh')], { stdio: 'ignore' });
    const r = spawnSync('bash', [join(ROOT, '.ci/validate-deploy.sh')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(
      r.stdout,
      /kubernetes 1\.37\.0: Summary: 5 resources found .* Valid: 5, Invalid: 0, Errors: 0, Skipped: 0/,
    );
  });

  test('the Deployment matches the image: uid 1337, read-only root, probes on 15021, grace > drain', () => {
    const [d] = docs('deploy/deployment.yaml');
    const pod = d.spec.template.spec;
    const c = pod.containers[0];
    assert.equal(pod.securityContext.runAsUser, 1337);
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    for (const probe of [c.startupProbe, c.readinessProbe])
      assert.deepEqual(probe.httpGet, { path: '/healthz/ready', port: 15021 });
    const env = Object.fromEntries(c.env.map((e: { name: string; value: string }) => [e.name, e.value]));
    assert.equal(env.WASMGATE_CONFIG, '/etc/wasmgate');
    const drainS = parseDurationMs(env.WASMGATE_DRAIN_TIME)! / 1000;
    assert.ok(pod.terminationGracePeriodSeconds > drainS, 'terminationGracePeriodSeconds covers the drain');
    const mounts = Object.fromEntries(c.volumeMounts.map((m: { name: string; mountPath: string }) => [m.mountPath, m]));
    assert.ok(mounts['/etc/wasmgate'] && mounts['/var/cache/wasmgate'] && mounts['/tmp']);
    assert.equal(d.spec.template.metadata.labels.istio, 'ingressgateway', 'WasmPlugin selectors match the pods');
    const dockerfile = read('Dockerfile');
    assert.match(dockerfile, /^USER 1337:1337$/m);
    assert.match(dockerfile, /^EXPOSE 8080 15000 15021$/m);
    assert.match(dockerfile, /^STOPSIGNAL SIGTERM$/m);
    assert.match(dockerfile, /HEALTHCHECK .*CMD \["node", "bin\/wasmgate.js", "health"\]/);
    assert.match(dockerfile, /WASMGATE_CONFIG=\/etc\/wasmgate/);
  });

  test('deploy/config is config/ with the module path inside the image, and validates', async () => {
    for (const name of ['gateway.yaml', 'httpbin.yaml'])
      assert.equal(read(`deploy/config/${name}`), read(`config/${name}`), `deploy/config/${name} differs from config/`);
    const [mine] = docs('deploy/config/header-authorization.yaml');
    const [theirs] = docs('config/header-authorization.yaml');
    assert.equal(mine.spec.url, 'file:///opt/wasmgate/plugins/header-authorization-rust/plugin.wasm');
    assert.deepEqual({ ...mine, spec: { ...mine.spec, url: '' } }, { ...theirs, spec: { ...theirs.spec, url: '' } });
    assert.match(
      read('Dockerfile'),
      /plugins\/header-authorization-rust\/plugin.wasm .\/plugins\/header-authorization-rust/,
    );
    const r = await runCli(['validate', '-c', 'deploy/config']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /listener :8080: istio-system.header-authorization \(AUTHN, priority 0\) -> .*router/);
  });
});
