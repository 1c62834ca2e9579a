// Gateway server TLS settings wasmgate cannot serve as written: a `credentialName` /
// `credentialNames` without --secrets-dir (the Kubernetes secrets are read from that folder:
// test/e2e/tls-credentials.test.ts), `ISTIO_MUTUAL` (mesh certificates), `tlsCertificates` without
// `serverCertificate` and `privateKey`. `wasmgate validate` reports each as an error at
// file:line:col with the field, and `wasmgate run` refuses to start with the same line (before,
// validate passed and only the start failed). PASSTHROUGH servers do not use certificates: a
// credentialName there stays a warning.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { gatewayServersYaml, runCli, tempConfig } from '../helpers/proxy.ts';

/** The Gateway's server is on lines 7 to 9 (`tls:`), its `tls` fields from line 10. */
function gateway(protocol: string, tls: string): string {
  return gatewayServersYaml(
    'gw',
    `  - port: {number: 8443, name: tls-port, protocol: ${protocol}}
    hosts: ["*"]
    tls:
${tls}`,
  );
}

const NO_DIR = (name: string) =>
  `secret "${name}" cannot be read: no --secrets-dir was given. Start with --secrets-dir DIR (or WASMGATE_SECRETS_DIR) where DIR/istio-system/${name} or DIR/${name} is a folder holding tls.crt and tls.key (and ca.crt for MUTUAL), or a Kubernetes Secret file (YAML or JSON) with those keys under data (base64) or stringData`;

const cases: { name: string; yaml: string; expected: string }[] = [
  {
    name: 'HTTPS SIMPLE with credentialName, no --secrets-dir',
    yaml: gateway('HTTPS', '      mode: SIMPLE\n      credentialName: example-com-cert\n'),
    expected: `:11:23  Gateway istio-system/gw  spec.servers[0].tls.credentialName: ${NO_DIR('example-com-cert')}`,
  },
  {
    name: 'TLS MUTUAL with credentialNames, no --secrets-dir',
    yaml: gateway('TLS', '      mode: MUTUAL\n      credentialNames: [a, b]\n'),
    expected: `:11:28  Gateway istio-system/gw  spec.servers[0].tls.credentialNames[1]: ${NO_DIR('b')}`,
  },
  {
    name: 'HTTPS ISTIO_MUTUAL',
    yaml: gateway('HTTPS', '      mode: ISTIO_MUTUAL\n'),
    expected:
      ":10:13  Gateway istio-system/gw  spec.servers[0].tls.mode: tls.mode ISTIO_MUTUAL needs Istio's mesh certificates, which wasmgate does not have; use SIMPLE or MUTUAL with files",
  },
  {
    name: 'HTTPS SIMPLE with tlsCertificates only',
    yaml: gateway(
      'HTTPS',
      '      mode: SIMPLE\n      tlsCertificates:\n      - {serverCertificate: a.crt, privateKey: a.key}\n',
    ),
    expected:
      ':11:7  Gateway istio-system/gw  spec.servers[0].tls.tlsCertificates: tls.tlsCertificates is not read by wasmgate; give serverCertificate and privateKey file paths',
  },
];

describe('Gateway TLS settings that need Kubernetes secrets or the mesh', () => {
  for (const c of cases)
    test(`${c.name}: validate reports it at file:line:col; run refuses with the same line`, async () => {
      const dir = tempConfig({ 'gateway.yaml': c.yaml });
      const file = join(dir, 'gateway.yaml');
      const v = await runCli(['validate', '-c', file]);
      assert.equal(v.code, 1, `validate should fail; stdout:\n${v.stdout}`);
      assert.ok(v.stderr.split('\n').includes(`${file}${c.expected}`), v.stderr);
      assert.doesNotMatch(v.stdout, /^valid:/m);
      const r = await runCli(['run', '-c', file, '--port', '0', '--admin-port=-1', '--health-port=-1']);
      assert.equal(r.code, 1, r.stderr);
      assert.ok(r.stderr.split('\n').includes(`${file}${c.expected}`), r.stderr);
      assert.match(r.stderr, /configuration is invalid; not starting/);
      assert.doesNotMatch(r.stderr, /listening on/);
    });

  test('a credentialName on a PASSTHROUGH server is only a warning: it is not used', async () => {
    const dir = tempConfig({ 'gateway.yaml': gateway('TLS', '      mode: PASSTHROUGH\n      credentialName: x\n') });
    const file = join(dir, 'gateway.yaml');
    const v = await runCli(['validate', '-c', file]);
    assert.equal(v.code, 0, v.stderr);
    assert.match(
      v.stderr,
      /:10:7 {2}Gateway istio-system\/gw {2}spec\.servers\[0\]\.tls\.mode: PASSTHROUGH mode does not use certificates, they will be ignored \(warning\)/,
    );
    assert.doesNotMatch(v.stderr, /secrets-dir/);
    assert.match(v.stdout, /^listener :8443 \(TLS passthrough\): tcp_proxy$/m);
  });
});
