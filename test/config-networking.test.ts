// Configuration loading: Gateway, VirtualService and ServiceEntry (networking.istio.io), and helpers.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseDurationMs } from '../src/config/duration.ts';
import { loadConfig } from '../src/config/load.ts';
import { fieldPath, parseFieldPath } from '../src/config/position.ts';
import type { LoadedConfig, Problem } from '../src/config/types.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

let scratch = '';
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'wasmgate-config-net-'));
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

let counter = 0;
async function loadYaml(text: string): Promise<LoadedConfig> {
  const dir = join(scratch, String(++counter));
  await mkdir(dir, { recursive: true });
  const file = join(dir, 'config.yaml');
  await writeFile(file, text);
  return loadConfig([file]);
}

const brief = (p: Problem) => `${p.severity === 'warning' ? 'W ' : ''}${p.line}:${p.col} ${p.field}: ${p.message}`;

test('Gateway: Istio rules for servers, ports, protocols and TLS', async () => {
  const config = await loadYaml(`apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*.example.com"]
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: ["ns/a.example.com"]
    tls: {mode: SIMPLE}
  - port: {number: 80, name: http, protocol: HTTP, targetPort: 8080}
    hosts: []
    tls: {mode: SIMPLE, credentialName: x}
  - port: {number: 9000, name: tcp, protocol: TCP}
    hosts: ["*"]
    tls: {httpsRedirect: true}
  - port: {number: 9001, name: quic, protocol: QUIC}
    hosts: ["*"]
  - port: {number: 9443, name: tls, protocol: TLS}
    hosts: ["*"]
    tls:
      mode: MUTUAL
      serverCertificate: /certs/cert.pem
      privateKey: /certs/key.pem
      minProtocolVersion: TLSV1_4
      credentialNames: [a]
      credentialName: b
`);
  assert.deepEqual(config.problems.map(brief), [
    '8:48 spec.servers[0].port.protocol: server must have TLS settings (tls) for HTTPS',
    '10:32 spec.servers[1].port.name: port names in servers must be unique: duplicate name "https" (also spec.servers[0])',
    '12:17 spec.servers[1].tls.mode: SIMPLE TLS requires a server certificate (or a credentialName)',
    '12:17 spec.servers[1].tls.mode: SIMPLE TLS requires a private key (or a credentialName)',
    '13:52 spec.servers[2].port.targetPort: targetPort has no impact on Gateways',
    '14:5 spec.servers[2].hosts: server config must contain at least one host',
    '15:5 spec.servers[2].tls: server cannot have TLS settings for plain text HTTP ports (only httpsRedirect)',
    '18:5 spec.servers[3].tls: server cannot have TLS settings for TCP ports (only HTTPS and TLS)',
    'W 18:11 spec.servers[3].tls.httpsRedirect: tls.httpsRedirect should only be used with http servers',
    '19:48 spec.servers[4].port.protocol: invalid protocol "QUIC", supported protocols are HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, TCP, TLS, UDP, MONGO, REDIS, MYSQL',
    '27:27 spec.servers[5].tls.minProtocolVersion: "TLSV1_4" is not one of TLS_AUTO, TLSV1_0, TLSV1_1, TLSV1_2, TLSV1_3 (did you mean "TLSV1_0"?)',
    '29:7 spec.servers[5].tls.credentialName: only one of credentialName, credentialNames or tlsCertificates can be set (found credentialNames and credentialName)',
  ]);
  assert.ok(config.problems.every((p) => p.kind === 'Gateway' && p.name === 'default/gw'));
  assert.equal(config.gateways.length, 0);
});

test('Gateway: servers and port fields are required; the name is a DNS label', async () => {
  const config = await loadYaml(`apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: {name: my.gateway, namespace: istio-system}
spec:
  servers:
  - hosts: ["*"]
  - port: {number: 80}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: {name: none}
spec:
  selector: {istio: ingressgateway}
`);
  assert.deepEqual(config.problems.map(brief), [
    '3:18 metadata.name: invalid gateway name "my.gateway": it must be a DNS label (no dots)',
    '6:5 spec.servers[0].port: missing required field "port"',
    '7:5 spec.servers[1].port.protocol: missing required field "protocol"',
    '7:5 spec.servers[1].port.name: missing required field "name"',
    '13:1 spec.servers: missing required field "servers"',
  ]);
  assert.equal(config.problems.at(-1)?.name, 'default/none');
});

test('VirtualService: Istio route rules, matches, durations and regexes', async () => {
  const config = await loadYaml(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs, namespace: default}
spec:
  hosts: ["*"]
  gateways: [istio-system/ingressgateway, "bad gateway"]
  http:
  - match:
    - uri: {prefix: /a, exact: /a}
      headers:
        "x debug": {exact: "1"}
    - uri: {regex: "(open"}
      port: 70000
    route:
    - destination: {hots: httpbin}
    redirect: {uri: /b, redirectCode: 200}
  - timeout: 10
    retries: {attempts: 2, perTryTimeout: 0.5}
    route:
    - destination: {host: httpbin, port: {number: 8000}}
  - directResponse: {status: 99, body: {string: a, bytes: YQ==}}
    fault: {abort: {httpStatus: 503, percentage: {value: 150}}}
  - mirror: {host: m}
    mirrors: [{destination: {host: n}}]
    timeout: 2 seconds
  - name: empty
`);
  assert.deepEqual(config.problems.map(brief), [
    '6:43 spec.gateways[1]: invalid gateway "bad gateway": use name, namespace/name or mesh',
    '9:25 spec.http[0].match[0].uri.exact: only one of exact, prefix or regex can be set (found prefix and exact)',
    '11:9 spec.http[0].match[0].headers["x debug"]: header name "x debug" is not a valid header name',
    '12:20 spec.http[0].match[1].uri.regex: invalid regex: /(open/: Unterminated group',
    '13:13 spec.http[0].match[1].port: must be between 1 and 65535, got 70000',
    '14:5 spec.http[0].route: HTTP route cannot contain both route and redirect',
    '15:7 spec.http[0].route[0].destination.host: missing required field "host"',
    '15:21 spec.http[0].route[0].destination.hots: unknown field "hots" (did you mean "host"?)',
    '16:39 spec.http[0].redirect.redirectCode: must be a 3xx status, got 200',
    '17:14 spec.http[1].timeout: must be a duration such as "10s" or "250ms", got number 10 (write "10s" for seconds)',
    '18:43 spec.http[1].retries.perTryTimeout: must be a duration such as "10s" or "250ms", got number 0.5 (write "0.5s" for seconds)',
    '21:30 spec.http[2].directResponse.status: must be between 200 and 599, got 99',
    '21:52 spec.http[2].directResponse.body.bytes: only one of string or bytes can be set (found string and bytes)',
    '22:5 spec.http[2].fault: HTTP route cannot contain both fault and directResponse',
    '22:58 spec.http[2].fault.abort.percentage.value: must be between 0 and 100, got 150',
    '23:5 spec.http[3]: HTTP route, redirect or directResponse is required',
    '24:5 spec.http[3].mirrors: HTTP route cannot contain both mirror and mirrors',
    '25:14 spec.http[3].timeout: must be a duration such as "10s", "1.5s" or "250ms", of at least 1ms, got string "2 seconds"',
    '26:5 spec.http[4]: HTTP route, redirect or directResponse is required',
  ]);
});

test('VirtualService: a full-featured route table is valid and kept as written', async () => {
  const config = await loadYaml(`apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: full}
spec:
  hosts: [httpbin.example.com, "*.svc.local", 10.0.0.1]
  gateways: [mesh, ingressgateway, istio-system/ingressgateway]
  exportTo: ["."]
  http:
  - name: main
    match:
    - uri: {regex: "^/api/v[0-9]+/"}
      method: {exact: GET}
      authority: {prefix: httpbin}
      scheme: {exact: https}
      queryParams: {debug: {exact: "1"}}
      withoutHeaders: {x-skip: {regex: "*"}}
      ignoreUriCase: true
      sourceLabels: {app: web}
      statPrefix: api
    rewrite: {uriRegexRewrite: {match: "^/api/(.*)", rewrite: "/\\\\1"}}
    route:
    - destination: {host: httpbin, subset: v1}
      weight: 75
      headers: {response: {remove: [server]}}
    - destination: {host: httpbin, subset: v2}
      weight: 25
    timeout: 1m30s
    retries: {attempts: 3, perTryTimeout: 250ms, retryOn: "5xx,connect-failure", backoff: 25ms}
    fault: {delay: {fixedDelay: 5s, percentage: {value: 0.1}}}
    mirror: {host: shadow}
    mirrorPercentage: {value: 5}
    corsPolicy:
      allowOrigins: [{exact: "https://example.com"}]
      allowMethods: [GET, POST]
      allowCredentials: true
      maxAge: 24h
      unmatchedPreflights: IGNORE
    headers:
      request: {set: {x-env: prod}, add: {x-trace: "1"}, remove: [cookie]}
  - name: moved
    redirect: {uri: /new, derivePort: FROM_REQUEST_PORT, redirectCode: 308}
  tcp:
  - match: [{port: 3306, sourceSubnet: 10.0.0.0/8}]
    route: [{destination: {host: mysql, port: {number: 3306}}}]
  tls:
  - match: [{sniHosts: [secure.example.com], port: 443}]
    route: [{destination: {host: secure}}]
`);
  assert.deepEqual(config.problems.map(brief), []);
  const spec = config.virtualServices[0]?.spec;
  assert.equal(spec?.http?.[0]?.timeout, '1m30s');
  assert.deepEqual(spec?.http?.[0]?.match?.[0]?.uri, { regex: '^/api/v[0-9]+/' });
  assert.deepEqual(spec?.http?.[1]?.redirect, { uri: '/new', derivePort: 'FROM_REQUEST_PORT', redirectCode: 308 });
  assert.equal(spec?.tcp?.length, 1);
});

test('ServiceEntry: Istio rules for hosts, addresses, ports, resolution and endpoints', async () => {
  const config = await loadYaml(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: se}
spec:
  hosts: ["*", api.example.com]
  addresses: [10.0.0.0/8, not-an-ip]
  location: MESH_OUTSIDE
  resolution: DNS
  ports:
  - {number: 80, name: http, protocol: HTTP}
  - {number: 80, name: Web_2, protocol: SCTP}
  - {number: 0, name: zero}
  endpoints:
  - address: 1.2.3.4
    ports: {grpc: 9000}
  - {labels: {a: b}}
  workloadSelector: {labels: {app: x}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: none-with-endpoints}
spec:
  hosts: [a.example.com]
  endpoints: [{address: 1.1.1.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: no-hosts}
spec:
  hosts: []
`);
  assert.deepEqual(config.problems.map(brief), [
    '5:11 spec.hosts[0]: hostname cannot be wildcard "*"',
    '6:27 spec.addresses[1]: invalid address "not-an-ip": use an IP address or CIDR block',
    '7:13 spec.location: "MESH_OUTSIDE" is not one of MESH_EXTERNAL, MESH_INTERNAL',
    '8:15 spec.resolution: CIDR addresses are allowed only for NONE/STATIC resolution types',
    '11:14 spec.ports[1].number: service entry port 80 already defined (spec.ports[0])',
    '11:24 spec.ports[1].name: invalid port name "Web_2"',
    '11:41 spec.ports[1].protocol: unsupported protocol: SCTP',
    '12:14 spec.ports[2].number: must be between 1 and 65535, got 0',
    '15:13 spec.endpoints[0].ports.grpc: endpoint port "grpc" is not defined by the service entry',
    '16:5 spec.endpoints[1]: Address is required',
    '17:3 spec.workloadSelector: only one of workloadSelector or endpoints can be set',
    '24:3 spec.endpoints: no endpoints should be provided for resolution type NONE',
    '30:10 spec.hosts: must not be empty',
  ]);
});

test("the project's own config/ folder loads without problems", async () => {
  const config = await loadConfig([join(root, 'config')]);
  assert.deepEqual(config.problems, []);
  assert.ok(config.files.length >= 1);
  assert.ok(config.wasmPlugins.length + config.gateways.length >= 1);
});

test('parseDurationMs reads Go durations', () => {
  assert.equal(parseDurationMs('10s'), 10_000);
  assert.equal(parseDurationMs('1.5s'), 1500);
  assert.equal(parseDurationMs('1m30s'), 90_000);
  assert.equal(parseDurationMs('250ms'), 250);
  assert.equal(parseDurationMs('1h'), 3_600_000);
  assert.equal(parseDurationMs('500us'), 0.5);
  assert.equal(parseDurationMs('0'), 0);
  assert.equal(parseDurationMs('-2s'), -2000);
  assert.equal(parseDurationMs('10'), undefined);
  assert.equal(parseDurationMs('5 sec'), undefined);
  assert.equal(parseDurationMs(''), undefined);
});

test('fieldPath and parseFieldPath round-trip, quoting keys that are not plain words', () => {
  const paths = [
    ['spec', 'vmConfig', 'env', 0, 'name'],
    ['metadata', 'labels', 'istio.io/rev'],
    ['spec', 'http', 1, 'match', 0, 'headers', 'x debug'],
  ];
  assert.deepEqual(paths.map(fieldPath), [
    'spec.vmConfig.env[0].name',
    'metadata.labels["istio.io/rev"]',
    'spec.http[1].match[0].headers["x debug"]',
  ]);
  assert.deepEqual(paths.map(fieldPath).map(parseFieldPath), paths);
});
