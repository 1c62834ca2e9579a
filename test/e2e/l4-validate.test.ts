// `wasmgate validate` lists the TCP listeners (TCP, TLS passthrough, TLS terminated) with their
// NETWORK plugins and the tcp_proxy, next to the HTTP listeners, whose line starts with the
// NETWORK plugins that run beneath HTTP; `match.ports` and priorities decide which and in what order.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { makePki } from '../helpers/certs.ts';
import { ROOT, runCli, tempConfig, wasmPluginYaml } from '../helpers/proxy.ts';

const GO_PLUGIN = join(ROOT, 'plugins/network-go/plugin.wasm');
const RUST_PLUGIN = join(ROOT, 'plugins/network-rust/plugin.wasm');

test('validate prints every listener: HTTP with the NETWORK plugins beneath it, then TCP and TLS', async () => {
  const pki = makePki();
  const gateway = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 8081, name: http-plain, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 9000, name: tcp, protocol: TCP}
    hosts: ["*"]
  - port: {number: 9001, name: mongo, protocol: MONGO}
    hosts: ["*"]
  - port: {number: 9443, name: tls-pass, protocol: TLS}
    hosts: ["*.example.com"]
    tls: {mode: PASSTHROUGH}
  - port: {number: 9444, name: tls-term, protocol: TLS}
    hosts: ["*"]
    tls: {mode: MUTUAL, serverCertificate: ${pki.serverCert}, privateKey: ${pki.serverKey}, caCertificates: ${pki.caCert}}
`;
  const network = (name: string, url: string, ports: number[], priority: number) =>
    `---\n${wasmPluginYaml({
      name,
      url: `file://${url}`,
      priority,
      extra: `  type: NETWORK\n  match:\n  - ports: [${ports.map((p) => `{number: ${p}}`).join(', ')}]\n`,
    })}`;
  const dir = tempConfig({
    'gateway.yaml': gateway,
    'plugins.yaml':
      network('counter', GO_PLUGIN, [8080, 9000, 9443, 9444], 10) +
      network('rewriter', RUST_PLUGIN, [8080, 9000], 20) +
      network('mongo-only', RUST_PLUGIN, [9001], 0),
  });
  const r = await runCli(['validate', '-c', dir]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.deepEqual(lines, [
    'listener :8080: istio-system.rewriter (NETWORK, priority 20) -> istio-system.counter (NETWORK, priority 10) -> istio.stats -> router',
    'listener :8081: istio.stats -> router',
    'listener :9000 (TCP): istio-system.rewriter (NETWORK, priority 20) -> istio-system.counter (NETWORK, priority 10) -> tcp_proxy',
    'listener :9001 (MONGO): istio-system.mongo-only (NETWORK, priority 0) -> tcp_proxy',
    'listener :9443 (TLS passthrough): istio-system.counter (NETWORK, priority 10) -> tcp_proxy',
    'listener :9444 (TLS MUTUAL terminated): istio-system.counter (NETWORK, priority 10) -> tcp_proxy',
    'valid: 2 file(s), 3 WasmPlugin(s)',
  ]);
});

test('validate of a configuration with only TCP listeners opens no default HTTP listener', async () => {
  const dir = tempConfig({
    'tcp.yaml': `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: tcp, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 6379, name: redis, protocol: REDIS}
    hosts: ["*"]
`,
  });
  const r = await runCli(['validate', '-c', dir]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'listener :6379 (REDIS): tcp_proxy\nvalid: 1 file(s), 0 WasmPlugin(s)\n');
});
