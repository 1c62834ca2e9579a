// DestinationRule: schema and Istio's validation rules, with file:line:col problems.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { loadConfig } from '../src/config/load.ts';
import type { LoadedConfig, Problem } from '../src/config/types.ts';

let scratch = '';
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'wasmgate-dr-'));
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});
let n = 0;
async function loadYaml(text: string): Promise<LoadedConfig> {
  const file = join(scratch, `${++n}.yaml`);
  await writeFile(file, text);
  return loadConfig([file]);
}
const brief = (p: Problem) => `${p.severity === 'warning' ? 'W ' : ''}${p.line}:${p.col} ${p.field}: ${p.message}`;

test('a full DestinationRule loads in every networking apiVersion', async () => {
  for (const version of ['v1', 'v1beta1', 'v1alpha3']) {
    const config = await loadYaml(`apiVersion: networking.istio.io/${version}
kind: DestinationRule
metadata: {name: reviews, namespace: prod}
spec:
  host: reviews
  exportTo: ["."]
  trafficPolicy:
    loadBalancer: {simple: LEAST_REQUEST}
    connectionPool:
      tcp: {maxConnections: 100, connectTimeout: 30ms}
      http: {http1MaxPendingRequests: 10, maxRequestsPerConnection: 10, idleTimeout: 1h, maxRetries: 3}
    outlierDetection: {consecutive5xxErrors: 7, interval: 5m, baseEjectionTime: 15m, maxEjectionPercent: 50}
    tls: {mode: SIMPLE, caCertificates: /etc/ca.pem, sni: reviews.prod}
    portLevelSettings:
    - port: {number: 80}
      loadBalancer: {consistentHash: {httpCookie: {name: user, ttl: 0s}, ringHash: {minimumRingSize: 2048}}}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer: {simple: ROUND_ROBIN}
`);
    assert.deepEqual(config.problems.map(brief), [], version);
    assert.equal(config.destinationRules.length, 1);
    assert.equal(config.destinationRules[0]!.spec.subsets?.[1]?.name, 'v2');
  }
});

test("Istio's rules: hosts, load balancer, pools, outlier, TLS, subsets, port-level settings", async () => {
  const config = await loadYaml(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: bad}
spec:
  host: ns/reviews
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
      consistentHash: {httpCookie: {path: /}, maglev: {tableSize: 1000}}
    connectionPool: {}
    outlierDetection: {maxEjectionPercent: 150, consecutive5xxErrors: -1}
    tls: {mode: MUTUAL}
    portLevelSettings:
    - {loadBalancer: {simple: RANDOM}}
    - port: {number: 80}
    - port: {number: 80}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v1}
  - {name: Bad_Name, trafficPolicy: {tls: {mode: ISTIO_MUTUAL, caCertificates: x}}}
  - labels: {a: b}
  - {name: ok, trafficPolicy: {loadBalancer: {simple: LEAST_CONN}}}
  exportTo: ["*", "."]
`);
  assert.deepEqual(config.problems.map(brief), [
    '5:9 spec.host: invalid host "ns/reviews": a DestinationRule host has no namespace/ part',
    '9:7 spec.trafficPolicy.loadBalancer.consistentHash: only one of simple or consistentHash can be set (found simple and consistentHash)',
    '9:24 spec.trafficPolicy.loadBalancer.consistentHash.httpCookie: name required for HttpCookie',
    '9:24 spec.trafficPolicy.loadBalancer.consistentHash.httpCookie: ttl required for HttpCookie',
    '9:67 spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize: tableSize must be a prime number, got 1000',
    '10:5 spec.trafficPolicy.connectionPool: connection pool must have at least one field',
    '11:44 spec.trafficPolicy.outlierDetection.maxEjectionPercent: maxEjectionPercent must be in range [0, 100]',
    '11:71 spec.trafficPolicy.outlierDetection.consecutive5xxErrors: must be between 0 and 4294967295, got -1',
    '12:17 spec.trafficPolicy.tls.mode: client certificate required for mutual tls',
    '12:17 spec.trafficPolicy.tls.mode: private key required for mutual tls',
    '14:7 spec.trafficPolicy.portLevelSettings[0]: port must be specified',
    '16:22 spec.trafficPolicy.portLevelSettings[2].port.number: duplicate port-level settings for port 80 (also portLevelSettings[1])',
    '19:12 spec.subsets[1].name: duplicate subset names: "v1" (also spec.subsets[0])',
    '20:12 spec.subsets[2].name: subset name is invalid: "Bad_Name" (a DNS label)',
    '20:50 spec.subsets[2].trafficPolicy.tls.mode: cannot specify client certificates, CA certificate or credentialName with ISTIO_MUTUAL',
    '21:5 spec.subsets[3].name: missing required field "name"',
    'W 22:55 spec.subsets[4].trafficPolicy.loadBalancer.simple: LEAST_CONN is deprecated, use LEAST_REQUEST (wasmgate treats it as LEAST_REQUEST)',
    '23:3 spec.exportTo: cannot have both public (*) and non-public exportTo values',
  ]);
  assert.ok(config.problems.every((p) => p.kind === 'DestinationRule' && p.name === 'default/bad'));
  assert.equal(config.destinationRules.length, 0);
});

test('an unknown field is an error with a suggestion; VirtualService regexes must be RE2', async () => {
  const config = await loadYaml(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: typo}
spec:
  host: a.example.com
  trafficPolicy:
    loadBalancr: {simple: RANDOM}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: re}
spec:
  hosts: [a.example.com]
  http:
  - match: [{uri: {regex: "/a(?=b)"}}, {headers: {x: {regex: "(x)\\\\1"}}}]
    route: [{destination: {host: a.example.com}}]
`);
  assert.deepEqual(config.problems.map(brief), [
    '7:5 spec.trafficPolicy.loadBalancr: unknown field "loadBalancr" (did you mean "loadBalancer"?)',
    '15:27 spec.http[0].match[0].uri.regex: invalid regex: look-around assertions (?=, (?!, (?<=, (?<! are not RE2 syntax',
    '15:62 spec.http[0].match[1].headers.x.regex: invalid regex: backreference \\1 is not RE2 syntax',
  ]);
});
