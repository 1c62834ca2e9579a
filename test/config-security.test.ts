// Configuration loading: RequestAuthentication and AuthorizationPolicy (security.istio.io v1, v1beta1).
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadConfig, locate } from '../src/config/load.ts';
import type { LoadedConfig, Problem } from '../src/config/types.ts';

const here = dirname(fileURLToPath(import.meta.url));

let scratch = '';
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'wasmgate-config-sec-'));
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

test("Istio's documented examples load, with defaults applied", async () => {
  const config = await loadConfig([join(here, 'fixtures', 'istio-docs-security.yaml')]);
  assert.deepEqual(config.problems.map(brief), []);
  assert.deepEqual(
    config.authorizationPolicies.map(
      (p) => `${p.apiVersion} ${p.metadata.namespace}/${p.metadata.name} ${p.spec.action}`,
    ),
    [
      'security.istio.io/v1 foo/httpbin ALLOW',
      'security.istio.io/v1 foo/httpbin-deny DENY',
      'security.istio.io/v1 foo/allow-nothing ALLOW',
      'security.istio.io/v1 foo/allow-all ALLOW',
      'security.istio.io/v1beta1 foo/require-jwt ALLOW',
      'security.istio.io/v1 istio-system/ingress-policy ALLOW',
      'security.istio.io/v1 foo/audit-posts AUDIT',
      'security.istio.io/v1 foo/dry-run-deny DENY',
    ],
  );
  const [httpbin, , nothing, all, , ingress] = config.authorizationPolicies;
  assert.deepEqual(nothing?.spec, { rules: [], action: 'ALLOW' });
  assert.deepEqual(all?.spec, { rules: [{ from: [], to: [], when: [] }], action: 'ALLOW' });
  assert.deepEqual(httpbin?.spec.rules[0]?.from, [
    { source: { principals: ['cluster.local/ns/default/sa/sleep'] } },
    { source: { namespaces: ['test'] } },
  ]);
  assert.deepEqual(httpbin?.spec.rules[0]?.when, [
    { key: 'request.auth.claims[iss]', values: ['https://accounts.google.com'] },
  ]);
  assert.deepEqual(ingress?.spec.targetRefs, [
    { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'example-ingress' },
  ]);
  assert.equal(ingress?.spec.selector, undefined);

  assert.equal(config.requestAuthentications.length, 1);
  const ra = config.requestAuthentications[0]!;
  assert.deepEqual(ra.spec.selector, { matchLabels: { istio: 'ingressgateway' } });
  assert.deepEqual(ra.spec.jwtRules[0], {
    issuer: 'issuer-foo',
    audiences: [],
    jwksUri: 'https://example.com/.well-known/jwks.json',
    fromHeaders: [],
    fromParams: [],
    fromCookies: [],
    forwardOriginalToken: false,
    outputClaimToHeaders: [],
  });
  assert.deepEqual(ra.spec.jwtRules[1], {
    issuer: 'issuer-bar',
    audiences: ['bookstore_android.apps.example.com', 'bookstore_web.apps.example.com'],
    jwksUri: 'https://bar.example.com/jwks.json', // jwks_uri, the older spelling
    fromHeaders: [{ name: 'x-jwt-assertion', prefix: 'Bearer ' }],
    fromParams: ['my_token'],
    fromCookies: ['session'],
    outputPayloadToHeader: 'x-jwt-payload',
    outputClaimToHeaders: [{ header: 'x-jwt-iss', claim: 'iss' }],
    forwardOriginalToken: true,
    timeout: '10s',
    spaceDelimitedClaims: ['roles'],
  });
  assert.equal(ra.spec.jwtRules[2]?.jwks, '{"keys":[{"kty":"RSA","e":"AQAB","n":"xyz","kid":"k1"}]}');
  assert.deepEqual(locate(ra, 'spec.jwtRules[1].issuer'), { line: 135, col: 13 });
});

test("Istio's validation rules, each at its file:line:col and field", async () => {
  const config = await loadYaml(BAD);
  assert.deepEqual(config.problems.map(brief), [
    '6:23 metadata.annotations["istio.io/dry-run"]: invalid value "maybe" for annotation istio.io/dry-run: use "true" or "false"',
    '9:19 spec.selector.matchLabels.app: wildcard is not supported in selector: "app=web-*"',
    '10:3 spec.targetRef: only one of targetRefs or selector can be set (found selector and targetRef)',
    '12:3 spec.provider: provider is only allowed with action CUSTOM, found action DENY',
    '15:7 spec.rules[0].from[0].source: `from.source` must not be empty, found at rule 0: set at least one of principals, notPrincipals, requestPrincipals, notRequestPrincipals, namespaces, notNamespaces, serviceAccounts, notServiceAccounts, trustDomains, notTrustDomains, ipBlocks, notIpBlocks, remoteIpBlocks, notRemoteIpBlocks',
    '16:7 spec.rules[0].from[1].source: `from.source` must not be nil, found at rule 0',
    '18:22 spec.rules[0].from[2].source.principals[0]: empty value not allowed (in principals)',
    '19:9 spec.rules[0].from[2].source.serviceAccounts: cannot set serviceAccounts with namespaces or principals, found at rule 0',
    '19:27 spec.rules[0].from[2].source.serviceAccounts[0]: expected format "serviceAccount" or "namespace/serviceAccount", found "a/b/c" (in serviceAccounts)',
    '20:20 spec.rules[0].from[2].source.ipBlocks[0]: bad IP address "10.0.0.256" (in ipBlocks)',
    '20:48 spec.rules[0].from[2].source.ipBlocks[2]: bad CIDR range "fe80::/129" (in ipBlocks)',
    '21:24 spec.rules[0].from[2].source.trustDomains[0]: wildcard is only allowed at the start or end, found "a*b" (in trustDomains)',
    '24:7 spec.rules[0].to[0].operation: `to.operation` must not be empty, found at rule 0: set at least one of hosts, notHosts, ports, notPorts, methods, notMethods, paths, notPaths',
    '26:23 spec.rules[0].to[1].operation.ports[1]: bad port "http": must be a number from 0 to 65535 (in ports)',
    '26:31 spec.rules[0].to[1].operation.ports[2]: bad port "65536": must be a number from 0 to 65535 (in ports)',
    '27:17 spec.rules[0].to[1].operation.paths[0]: invalid path template "/a/{*}x": "{" or "}" is only allowed in the whole-segment operators {*} and {**} (in paths)',
    '27:28 spec.rules[0].to[1].operation.paths[1]: invalid path template "/{**}/{*}": {**} must be the last operator (in paths)',
    '27:41 spec.rules[0].to[1].operation.paths[2]: empty value not allowed (in paths)',
    'W 28:17 spec.rules[0].to[1].operation.hosts[0]: "admin.example.com" matches the Host header exactly, port included: a request to "admin.example.com:<port>" is not matched; add "admin.example.com:*" as well',
    '29:9 spec.rules[0].to[1].operation.method: unknown field "method" (did you mean "methods"?)',
    '31:7 spec.rules[0].when[0].key: at least one of values or notValues must be set for key request.headers[x]',
    '33:12 spec.rules[0].when[1].key: attribute destination.labels[app] is replaced by the workload selector',
    '35:12 spec.rules[0].when[2].key: attribute experimental.envoy.filters.a.b[c] reads Envoy dynamic metadata, which wasmgate does not have: not supported by wasmgate',
    '38:19 spec.rules[0].when[3].notValues[0]: bad IP address "1.2.3" (in source.ip)',
    '39:12 spec.rules[0].when[4].key: bad key "request.auth.claims[]": should have the format request.auth.claims[<claim>] or request.auth.claims[<claim>][<nested claim>]',
    '41:5 spec.rules[1].to: `to` must not be empty, found at rule 1: remove it to match any request',
    '42:5 spec.rules[1].when: `when` must not be empty, found at rule 1: remove it to match any request',
    '49:11 spec.action: CUSTOM action is not supported by wasmgate: it has no external authorization providers (use ALLOW, DENY or AUDIT)',
    '57:1 spec.rules: DENY action without rules is meaningless as it will never be triggered: add an empty rule {} to deny every request',
    '65:11 spec.action: "Allow" is not one of ALLOW, DENY, AUDIT, CUSTOM (did you mean "ALLOW"?)',
    '67:12 spec.targetRefs[0].kind: a targetRef to a Service is not supported by wasmgate: only a Gateway can be the target of a policy (one wasmgate cannot apply would be silently ignored)',
    '68:12 spec.targetRefs[1].kind: a Gateway targetRef needs group: gateway.networking.k8s.io (or networking.istio.io), not apps',
    '69:58 spec.targetRefs[2].namespace: cross namespace referencing is not supported: remove namespace (the target is in the AuthorizationPolicy namespace)',
    '76:5 metadata.annotations["istio.io/dry-run"]: unsupported annotation istio.io/dry-run (only AuthorizationPolicy takes it): remove it',
    '79:13 spec.jwtRules[0].issuer: must not be empty',
    '80:17 spec.jwtRules[0].audiences[0]: must not be empty',
    '81:14 spec.jwtRules[0].jwksUri: invalid jwksUri "not a url": use an http:// or https:// URL',
    '83:11 spec.jwtRules[1].jwks: jwks parse error: EC key 0 lacks "y"',
    'W 85:11 spec.jwtRules[2].jwks: jwks key at index 0 contains private key material; only public keys are used for verification',
    '87:16 spec.jwtRules[2].outputClaimToHeaders[0].header: must be a header name: letters, digits, "-" and "_", got string "x jwt"',
    '89:7 spec.jwtRules[2].fromHeaders[0].name: missing required field "name"',
    '90:14 spec.jwtRules[2].timeout: must be a duration such as "10s", "1.5s" or "250ms", of at least 1ms, got string "0s"',
    '91:15 spec.jwtRules[2].presence: "SOMETIMES" is not one of OPTIONAL, REQUIRED',
    '93:11 spec.jwtRules[3].jwks: jwks parse error: not JSON (Unexpected token \'o\', "not json" is not valid JSON)',
  ]);
  assert.ok(config.problems.every((p) => p.file.endsWith('config.yaml')));
  assert.deepEqual(
    [...new Set(config.problems.map((p) => `${p.kind} ${p.name}`))],
    [
      'AuthorizationPolicy default/bad',
      'AuthorizationPolicy default/custom',
      'AuthorizationPolicy default/deny-without-rules',
      'AuthorizationPolicy default/wrong-action',
      'RequestAuthentication default/jwt',
    ],
  );
  assert.equal(config.authorizationPolicies.length, 0);
  assert.equal(config.requestAuthentications.length, 0);
});

test('other apiVersions are ignored with a warning; warnings alone do not stop a policy', async () => {
  const config = await loadYaml(`apiVersion: security.istio.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: old}
spec: {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin}
spec:
  selector: {}
  action: DENY
  rules:
  - to:
    - operation: {hosts: [admin.example.com]}
`);
  assert.deepEqual(config.problems.map(brief), [
    'W 1:13 apiVersion: AuthorizationPolicy security.istio.io/v1alpha1 is not read by wasmgate (it reads security.istio.io/v1, security.istio.io/v1beta1); ignored',
    'W 10:3 spec.selector: workload selector specified without labels: the AuthorizationPolicy applies to every workload in the namespace',
    'W 14:27 spec.rules[0].to[0].operation.hosts[0]: "admin.example.com" matches the Host header exactly, port included: a request to "admin.example.com:<port>" is not matched; add "admin.example.com:*" as well',
  ]);
  assert.equal(config.authorizationPolicies.length, 1);
});

const BAD = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: bad
  annotations:
    istio.io/dry-run: "maybe"
spec:
  selector:
    matchLabels: {app: "web-*"}
  targetRef: {kind: Gateway, group: gateway.networking.k8s.io, name: gw}
  action: DENY
  provider: {name: ext}
  rules:
  - from:
    - source: {}
    - {}
    - source:
        principals: [""]
        serviceAccounts: ["a/b/c"]
        ipBlocks: ["10.0.0.256", "10.0.0.0/8", "fe80::/129"]
        trustDomains: ["a*b"]
        notRequestPrincipals: ["*"]
    to:
    - operation: {}
    - operation:
        ports: ["80", "http", "65536"]
        paths: ["/a/{*}x", "/{**}/{*}", ""]
        hosts: ["admin.example.com", "admin.example.com:*"]
        method: [GET]
    when:
    - key: request.headers[x]
      values: []
    - key: destination.labels[app]
      values: [x]
    - key: experimental.envoy.filters.a.b[c]
      values: [x]
    - key: source.ip
      notValues: ["1.2.3"]
    - key: request.auth.claims[]
      values: [x]
  - to: []
    when: []
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: custom
spec:
  action: CUSTOM
  provider: {name: my-ext-authz}
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-without-rules
spec:
  action: DENY
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: wrong-action
spec:
  action: Allow
  targetRefs:
  - {kind: Service, name: httpbin}
  - {kind: Gateway, group: apps, name: x}
  - {kind: Gateway, group: networking.istio.io, name: y, namespace: other}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata:
  name: jwt
  annotations:
    istio.io/dry-run: "true"
spec:
  jwtRules:
  - issuer: ""
    audiences: [""]
    jwksUri: "not a url"
  - issuer: a
    jwks: '{"keys":[{"kty":"EC","crv":"P-256","x":"a"}]}'
  - issuer: b
    jwks: '{"keys":[{"kty":"RSA","n":"a","e":"AQAB","d":"secret"}]}'
    outputClaimToHeaders:
    - {header: "x jwt", claim: sub}
    fromHeaders:
    - {prefix: "Bearer "}
    timeout: 0s
    presence: SOMETIMES
  - issuer: c
    jwks: 'not json'
`;
