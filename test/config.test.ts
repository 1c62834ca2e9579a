// Configuration loading: WasmPlugin schema and Istio rules, positions, normalization, files and folders.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { formatProblem } from '../src/config/format.ts';
import { loadConfig, locate } from '../src/config/load.ts';
import type { LoadedConfig, Problem } from '../src/config/types.ts';
import { effectivePullPolicy } from '../src/config/wasmplugin.ts';

const here = dirname(fileURLToPath(import.meta.url));
const FIXTURES = join(here, 'fixtures', 'config');
const fixture = (...p: string[]) => join(FIXTURES, ...p);

let scratch = '';
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'wasmgate-config-'));
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

let counter = 0;
/** Writes `text` to a fresh file and loads it. */
async function loadYaml(
  text: string,
  opts?: { defaultNamespace?: string },
): Promise<{ config: LoadedConfig; file: string }> {
  const dir = join(scratch, String(++counter));
  await mkdir(dir, { recursive: true });
  const file = join(dir, 'config.yaml');
  await writeFile(file, text);
  return { config: await loadConfig([file], opts), file };
}

const brief = (p: Problem) => `${p.line}:${p.col} ${p.field}: ${p.message}`;

const PLUGIN_HEAD = `apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: p
  namespace: istio-system
spec:
`;

test('a misspelt field is exactly one error, at its key, formatted file:line:col  Kind ns/name  field: message', async () => {
  const file = fixture('misspelt.yaml');
  const config = await loadConfig([file]);
  assert.equal(config.problems.length, 1);
  const [p] = config.problems as [Problem];
  assert.deepEqual(
    { severity: p.severity, line: p.line, col: p.col, kind: p.kind, name: p.name, field: p.field },
    { severity: 'error', line: 12, col: 3, kind: 'WasmPlugin', name: 'istio-system/typo', field: 'spec.phse' },
  );
  assert.equal(
    formatProblem(p),
    `${file}:12:3  WasmPlugin istio-system/typo  spec.phse: unknown field "phse" (did you mean "phase"?)`,
  );
  assert.match(
    formatProblem(p),
    /^.+misspelt\.yaml:12:3 {2}WasmPlugin istio-system\/typo {2}spec\.phse: unknown field "phse"/,
  );
  assert.equal(config.wasmPlugins.length, 0, 'a resource with errors is not loaded');
});

test('formatProblem keeps the file as the user named it', () => {
  const p: Problem = {
    severity: 'warning',
    file: 'config/x.yaml',
    line: 3,
    col: 7,
    kind: 'Gateway',
    name: 'default/gw',
    field: 'spec.servers[0].tls.httpsRedirect',
    message: 'm',
  };
  assert.equal(formatProblem(p), 'config/x.yaml:3:7  Gateway default/gw  spec.servers[0].tls.httpsRedirect: m');
});

test('a relative path stays relative in files and problems', async () => {
  const rel = join('test', 'fixtures', 'config', 'misspelt.yaml');
  const config = await loadConfig([rel]);
  assert.deepEqual(config.files, [rel]);
  assert.equal(config.problems[0]?.file, rel);
});

test('a wrong type names the field and points at the value', async () => {
  const config = await loadConfig([fixture('wrong-type.yaml')]);
  assert.deepEqual(config.problems.map(brief), [
    '8:13 spec.priority: must be an integer, got string "high"',
    '9:17 spec.pluginConfig: must be a mapping, got string "just-a-string"',
  ]);
});

test('selector and targetRef together are an error at the second one', async () => {
  const config = await loadConfig([fixture('selector-and-targetref.yaml')]);
  assert.deepEqual(config.problems.map(brief), [
    '10:3 spec.targetRef: only one of targetRefs or selector can be set (found selector and targetRef)',
  ]);
  const { config: refs } = await loadYaml(`${PLUGIN_HEAD}  url: x/y
  targetRef: {group: gateway.networking.k8s.io, kind: Gateway, name: a}
  targetRefs:
  - {group: gateway.networking.k8s.io, kind: Gateway, name: b}
`);
  assert.deepEqual(refs.problems.map(brief), [
    '9:3 spec.targetRefs: only one of targetRefs or selector can be set (found targetRef and targetRefs)',
  ]);
});

test('an env name that is not a C identifier is an error', async () => {
  const config = await loadConfig([fixture('bad-env.yaml')]);
  assert.equal(config.problems.length, 1);
  assert.equal(config.problems[0]?.field, 'spec.vmConfig.env[1].name');
  assert.equal(config.problems[0]?.severity, 'error');
  assert.equal(`${config.problems[0]?.line}:${config.problems[0]?.col}`, '12:15');
  assert.match(
    config.problems[0]!.message,
    /"2FAST" is not a valid environment variable name: it must be a C identifier/,
  );
});

test('env: duplicate names and a value with valueFrom HOST are errors (Istio)', async () => {
  const { config } = await loadYaml(`${PLUGIN_HEAD}  url: x/y
  vmConfig:
    env:
    - {name: A, value: "1"}
    - {name: A, value: "2"}
    - name: B
      valueFrom: HOST
      value: from-host
    - name: C
      valueFrom: 1
`);
  assert.deepEqual(config.problems.map(brief), [
    '11:14 spec.vmConfig.env[1].name: duplicate env "A" (also spec.vmConfig.env[0])',
    '14:14 spec.vmConfig.env[2].value: value may only be set when valueFrom is INLINE',
  ]);
});

test('url normalization: no scheme is oci://, relative file:// resolves against the YAML folder', async () => {
  const config = await loadConfig([fixture('urls', 'plugins.yaml')]);
  assert.deepEqual(config.problems, []);
  const urls = Object.fromEntries(config.wasmPlugins.map((p) => [p.metadata.name, p.spec.url]));
  const folder = fixture('urls');
  assert.deepEqual(urls, {
    'no-scheme': 'oci://ghcr.io/example/plugin:1.0',
    'relative-file': pathToFileURL(join(folder, 'plugins', 'auth.wasm')).href,
    'parent-file': pathToFileURL(join(FIXTURES, 'shared', 'auth.wasm')).href,
    'absolute-file': 'file:///opt/filters/openid.wasm',
    https: 'https://example.com/filters/openid.wasm',
  });
  assert.equal(config.wasmPlugins[0]?.dir, folder);
});

test('url: Istio schemes only; host:port without a scheme is an unsupported scheme', async () => {
  const { config } = await loadYaml(`${PLUGIN_HEAD}  url: localhost:5000/plugin:1
---
${PLUGIN_HEAD.replace('name: p', 'name: q')}  url: ftp://example.com/x.wasm
---
${PLUGIN_HEAD.replace('name: p', 'name: r')}  url: ./local.wasm
`);
  assert.deepEqual(config.problems.map(brief), [
    '7:8 spec.url: url contains unsupported scheme: localhost (an OCI registry with a port needs the scheme: oci://localhost:5000/plugin:1)',
    '15:8 spec.url: url contains unsupported scheme: ftp (use oci://, file://, http:// or https://)',
    '23:8 spec.url: url has no scheme, so it names an OCI image (oci://./local.wasm); for a local .wasm file write file://./local.wasm',
  ]);
  assert.deepEqual(
    config.problems.map((p) => p.severity),
    ['error', 'error', 'warning'],
  );
  assert.deepEqual(
    config.wasmPlugins.map((p) => p.spec.url),
    ['oci://./local.wasm'],
    'a warning does not stop the resource from loading',
  );
});

test('defaults are applied', async () => {
  const config = await loadConfig([fixture('defaults.yaml')]);
  assert.deepEqual(config.problems, []);
  const [plugin] = config.wasmPlugins;
  assert.ok(plugin);
  assert.deepEqual(plugin.metadata, { name: 'minimal', namespace: 'default', labels: {}, annotations: {} });
  assert.deepEqual(plugin.spec, {
    url: 'oci://ghcr.io/example/plugin:1.0',
    imagePullPolicy: 'UNSPECIFIED_POLICY',
    phase: 'UNSPECIFIED_PHASE',
    priority: 0,
    failStrategy: 'FAIL_CLOSE',
    match: [{ mode: 'CLIENT_AND_SERVER', ports: [8080] }],
    type: 'HTTP',
    vmConfig: { env: [{ name: 'TRUST_DOMAIN', valueFrom: 'INLINE', value: '' }] },
  });
  assert.equal(effectivePullPolicy(plugin.spec), 'IfNotPresent');
  assert.equal(
    effectivePullPolicy({ url: 'oci://ghcr.io/x/y:latest', imagePullPolicy: 'UNSPECIFIED_POLICY' }),
    'Always',
  );
  assert.equal(effectivePullPolicy({ url: 'oci://ghcr.io/x/y', imagePullPolicy: 'UNSPECIFIED_POLICY' }), 'Always');
  assert.equal(
    effectivePullPolicy({ url: 'oci://ghcr.io/x/y:latest', imagePullPolicy: 'IfNotPresent' }),
    'IfNotPresent',
  );
});

test('defaultNamespace names resources without metadata.namespace', async () => {
  const { config } = await loadYaml(
    `apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: p}
spec: {url: x/y}
`,
    { defaultNamespace: 'istio-system' },
  );
  assert.equal(config.wasmPlugins[0]?.metadata.namespace, 'istio-system');
});

test('enums accept names and numbers; numbers map to names', async () => {
  const { config } = await loadYaml(`${PLUGIN_HEAD}  url: x/y
  phase: 2
  failStrategy: 2
  imagePullPolicy: 1
  type: 2
  priority: -5
  match:
  - mode: 1
  - mode: SERVER
    ports: [{number: 80}, {number: 443}]
`);
  assert.deepEqual(config.problems, []);
  const spec = config.wasmPlugins[0]?.spec;
  assert.deepEqual(
    [spec?.phase, spec?.failStrategy, spec?.imagePullPolicy, spec?.type, spec?.priority],
    ['AUTHZ', 'FAIL_RELOAD', 'IfNotPresent', 'NETWORK', -5],
  );
  assert.deepEqual(spec?.match, [
    { mode: 'CLIENT', ports: [] },
    { mode: 'SERVER', ports: [80, 443] },
  ]);
});

test('schema errors: enums, ranges, patterns, required fields, all at once', async () => {
  const { config } = await loadYaml(`${PLUGIN_HEAD}  phase: AUTHM
  failStrategy: 9
  sha256: 1EF0C9A92B0420CF25F7FE5D481B231464BC88F486CA3B9C83ED5CC21D2F6210
  imagePullSecret: ""
  match:
  - ports:
    - number: 0
    - {}
  vmConfig:
    env:
    - value: x
`);
  assert.deepEqual(config.problems.map(brief), [
    '6:1 spec.url: missing required field "url"',
    '7:10 spec.phase: "AUTHM" is not one of UNSPECIFIED_PHASE, AUTHN, AUTHZ, STATS (did you mean "AUTHN"?)',
    '8:17 spec.failStrategy: 9 is not a valid value: use one of FAIL_CLOSE, FAIL_OPEN, FAIL_RELOAD or its number, 0-2',
    '9:11 spec.sha256: must be 64 lower-case hexadecimal characters ([a-f0-9]{64}), got string "1EF0C9A92B0420CF25F7FE5D481B231464BC88F486CA3B9C83ED5CC21D2…"',
    '10:20 spec.imagePullSecret: must not be empty',
    '13:15 spec.match[0].ports[0].number: must be between 1 and 65535, got 0',
    '14:7 spec.match[0].ports[1].number: missing required field "number"',
    '17:7 spec.vmConfig.env[0].name: missing required field "name"',
  ]);
  assert.ok(config.problems.every((p) => p.kind === 'WasmPlugin' && p.name === 'istio-system/p'));
});

test('unknown fields are reported wherever they are, with a hint', async () => {
  const { config } = await loadYaml(`apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: p
  namespce: x
url: x/y
spec:
  url: x/y
  matchLabels: {a: b}
  vmConfig:
    env:
    - name: A
      valeu: b
`);
  assert.deepEqual(config.problems.map(brief), [
    '5:3 metadata.namespce: unknown field "namespce" (did you mean "namespace"?)',
    '6:1 url: unknown field "url" (url belongs at spec.url)',
    '9:3 spec.matchLabels: unknown field "matchLabels" (matchLabels belongs at spec.selector.matchLabels)',
    '13:7 spec.vmConfig.env[0].valeu: unknown field "valeu" (did you mean "value"?)',
  ]);
});

test('a number where text is expected suggests quoting it, with the text as written', async () => {
  const { config } = await loadYaml(`apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: p
  labels:
    version: 1.10
spec:
  url: x/y
`);
  assert.deepEqual(config.problems.map(brief), [
    '6:14 metadata.labels.version: must be a string, got number 1.1 (quote it to keep it text: "1.10")',
  ]);
});

test('null-valued fields are dropped, as the Kubernetes API server does', async () => {
  const { config } = await loadYaml(`${PLUGIN_HEAD}  url: x/y
  priority:
  phase: ~
  pluginConfig:
    kept: null
`);
  assert.deepEqual(config.problems, []);
  assert.equal(config.wasmPlugins[0]?.spec.priority, 0);
  assert.equal(config.wasmPlugins[0]?.spec.phase, 'UNSPECIFIED_PHASE');
  assert.deepEqual(config.wasmPlugins[0]?.spec.pluginConfig, { kept: null });
});

test('sha256 must match a digest pinned in the url', async () => {
  const a = 'a'.repeat(64);
  const b = 'b'.repeat(64);
  const { config } = await loadYaml(`${PLUGIN_HEAD}  url: oci://ghcr.io/x/y@sha256:${a}
  sha256: ${b}
`);
  assert.deepEqual(config.problems.map(brief), [
    '8:11 spec.sha256: does not match the digest in url (sha256:aaaaaaaaaaaa…)',
  ]);
});

test('targetRef: allowed kinds and groups, and no cross-namespace references (Istio)', async () => {
  const { config } = await loadYaml(`${PLUGIN_HEAD}  url: x/y
  targetRefs:
  - {kind: Gateway, name: a}
  - {group: "", kind: Service, name: b}
  - {group: networking.istio.io, kind: ServiceEntry, name: c}
  - {group: gateway.networking.k8s.io, kind: GatewayClass, name: d}
  - {group: apps, kind: Deployment, name: e}
  - {group: gateway.networking.k8s.io, kind: Gateway, name: f, namespace: other}
`);
  assert.deepEqual(config.problems.map(brief), [
    '9:12 spec.targetRefs[0].kind: a Gateway targetRef needs group: gateway.networking.k8s.io, not core',
    '13:25 spec.targetRefs[4].kind: targetRef must be to one of Gateway (gateway.networking.k8s.io), GatewayClass (gateway.networking.k8s.io), Service (core), ServiceEntry (networking.istio.io), but was apps/Deployment',
    '14:64 spec.targetRefs[5].namespace: cross namespace referencing is not supported: remove namespace (the target is in the WasmPlugin namespace)',
  ]);
});

test('selector: wildcards are errors, no labels is a warning', async () => {
  const { config } = await loadYaml(`${PLUGIN_HEAD}  url: x/y
  selector:
    matchLabels:
      app: "web-*"
---
${PLUGIN_HEAD.replace('name: p', 'name: q')}  url: x/y
  selector: {}
`);
  assert.deepEqual(config.problems.map(brief), [
    '10:7 spec.selector.matchLabels.app: wildcard is not supported in selector: "app=web-*"',
    '19:3 spec.selector: workload selector specified without labels: the plugin applies to every workload in the namespace',
  ]);
  assert.deepEqual(
    config.wasmPlugins.map((p) => p.metadata.name),
    ['q'],
  );
});

test('a folder loads its *.yaml and *.yml files by name, and a multi-document file loads every document', async () => {
  const folder = fixture('folder');
  const config = await loadConfig([folder]);
  assert.deepEqual(config.problems, []);
  assert.deepEqual(config.files, [join(folder, 'a-gateway.yaml'), join(folder, 'b-routes.yml')]);
  assert.deepEqual(
    config.wasmPlugins.map((p) => `${p.metadata.namespace}/${p.metadata.name}@${p.line}:${p.col}`),
    ['istio-system/auth@2:1', 'istio-system/stats@14:1'],
  );
  assert.deepEqual(
    config.gateways.map((g) => g.metadata.name),
    ['ingressgateway'],
  );
  assert.deepEqual(
    config.virtualServices.map((v) => `${v.metadata.namespace}/${v.metadata.name}@${v.line}`),
    ['default/httpbin@30'],
  );
  assert.deepEqual(
    config.serviceEntries.map((s) => `${s.apiVersion} ${s.metadata.name}`),
    ['networking.istio.io/v1alpha3 httpbin'],
  );
  assert.equal(config.wasmPlugins[0]?.spec.url, pathToFileURL(join(folder, 'auth.wasm')).href);
  assert.deepEqual(config.wasmPlugins[1]?.spec.targetRefs, [
    { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'ingressgateway' },
  ]);
  assert.equal(config.gateways[0]?.spec.servers[1]?.tls?.serverCertificate, 'certs/example-com.crt');
  assert.equal(config.virtualServices[0]?.spec.http?.[0]?.route?.[1]?.destination.subset, 'canary');
  assert.deepEqual(config.serviceEntries[0]?.spec.endpoints, [{ address: '127.0.0.1', ports: { http: 8002 } }]);
});

test('files and folders together load in the order named; a file named twice is read once', async () => {
  const config = await loadConfig([fixture('defaults.yaml'), fixture('folder'), fixture('folder', 'b-routes.yml')]);
  assert.equal(config.files.length, 3);
  assert.equal(config.files[0], fixture('defaults.yaml'));
  assert.deepEqual(
    config.wasmPlugins.map((p) => p.metadata.name),
    ['minimal', 'auth', 'stats'],
  );
  assert.deepEqual(
    config.problems.map((p) => `${p.severity} ${p.file} ${p.message}`),
    [`warning ${fixture('folder', 'b-routes.yml')} already loaded (named twice); skipped`],
  );
});

test('a YAML syntax error is reported with the parser line:col; other documents still load', async () => {
  // (written at test time: a fixture file with a syntax error would break `biome check`)
  const { config, file } = await loadYaml(`apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: fine
spec:
  url: oci://ghcr.io/example/plugin:1.0
---
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: broken
spec:
  url: oci://ghcr.io/example/plugin:1.0
  pluginConfig: {a: 1
  phase: AUTHN
`);
  assert.equal(config.problems.length, 1);
  const [p] = config.problems as [Problem];
  assert.deepEqual(
    { severity: p.severity, file: p.file, line: p.line, col: p.col, kind: p.kind, name: p.name, field: p.field },
    { severity: 'error', file, line: 15, col: 3, kind: '-', name: '-', field: '(yaml)' },
  );
  assert.equal(p.message, 'Flow map in block collection must be sufficiently indented and end with a }');
  assert.equal(formatProblem(p), `${file}:15:3  - -  (yaml): ${p.message}`);
  assert.deepEqual(
    config.wasmPlugins.map((w) => w.metadata.name),
    ['fine'],
  );
});

test('other YAML errors: duplicate keys and tabs', async () => {
  const { config } = await loadYaml(`${PLUGIN_HEAD}  url: x/y
  url: x/z
---
a:
\tb: 1
`);
  assert.deepEqual(
    config.problems.map((p) => `${p.line}:${p.col} ${p.kind} ${p.field}: ${p.message}`),
    ['8:3 - (yaml): Map keys must be unique', '11:1 - (yaml): Tabs are not allowed as indentation'],
  );
});

test('a path that does not exist is an error naming it, at 1:1', async () => {
  const missing = join(scratch, 'nope', 'missing.yaml');
  const config = await loadConfig([missing, fixture('defaults.yaml')]);
  assert.deepEqual(config.problems, [
    {
      severity: 'error',
      file: missing,
      line: 1,
      col: 1,
      kind: '-',
      name: '-',
      field: '(file)',
      message: 'no such file or folder',
    },
  ]);
  assert.equal(formatProblem(config.problems[0]!), `${missing}:1:1  - -  (file): no such file or folder`);
  assert.deepEqual(config.files, [fixture('defaults.yaml')]);
  assert.equal(config.wasmPlugins.length, 1);
});

test('an empty folder is a warning', async () => {
  const empty = join(scratch, 'empty-folder');
  await mkdir(empty, { recursive: true });
  const config = await loadConfig([empty]);
  assert.deepEqual(
    config.problems.map((p) => `${p.severity} ${p.file} ${p.message}`),
    [`warning ${empty} no *.yaml or *.yml files in this folder`],
  );
});

test('unknown kinds and apiVersions are warnings; empty documents are skipped', async () => {
  const { config } = await loadYaml(`---
# nothing here
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: dr}
spec: {host: x}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: k8s-gw}
spec: {}
---
null
---
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: ok}
spec: {url: x/y}
`);
  assert.deepEqual(
    config.problems.map((p) => `${p.severity} ${p.line}:${p.col} ${p.kind} ${p.name} ${p.field}`),
    ['warning 5:7 Sidecar default/dr kind', 'warning 9:13 Gateway default/k8s-gw apiVersion'],
  );
  assert.equal(config.problems[0]?.message, 'Sidecar (networking.istio.io/v1) is not read by wasmgate; ignored');
  assert.equal(config.gateways.length, 0);
  assert.deepEqual(
    config.wasmPlugins.map((p) => `${p.metadata.name}@${p.line}`),
    ['ok@16'],
  );
});

test('documents that are not resources: missing kind/apiVersion, a list, a scalar', async () => {
  const { config } = await loadYaml(`metadata: {name: a}
spec: {}
---
- a
---
just text
`);
  assert.deepEqual(
    config.problems.map((p) => `${p.line}:${p.col} ${p.kind} ${p.field}: ${p.message}`),
    [
      '1:1 - apiVersion: missing required field "apiVersion"',
      '1:1 - kind: missing required field "kind"',
      '4:1 - (document): expected a Kubernetes resource: a mapping with apiVersion, kind, metadata and spec',
      '6:1 - (document): expected a Kubernetes resource: a mapping with apiVersion, kind, metadata and spec',
    ],
  );
});

test('the same kind/namespace/name twice is an error on the second', async () => {
  const { config, file } = await loadYaml(`${PLUGIN_HEAD}  url: x/y
---
${PLUGIN_HEAD}  url: x/z
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: p, namespace: istio-system}
spec:
  hosts: [a.example.com]
  http:
  - route:
    - destination: {host: a.example.com}
`);
  assert.deepEqual(config.problems.map(brief), [
    `12:9 metadata.name: duplicate WasmPlugin istio-system/p: first defined at ${file}:1:1`,
  ]);
  assert.deepEqual(
    config.wasmPlugins.map((p) => p.spec.url),
    ['oci://x/y'],
  );
  assert.equal(config.virtualServices.length, 1, 'another kind may share the name');
});

test('a v1 List is read item by item', async () => {
  const { config } = await loadYaml(`apiVersion: v1
kind: List
items:
- apiVersion: extensions.istio.io/v1alpha1
  kind: WasmPlugin
  metadata: {name: a}
  spec: {url: x/a}
- apiVersion: extensions.istio.io/v1alpha1
  kind: WasmPlugin
  metadata: {name: b}
  spec: {url: x/b, phase: AUTH}
`);
  assert.deepEqual(config.problems.map(brief), [
    '11:27 items[1].spec.phase: "AUTH" is not one of UNSPECIFIED_PHASE, AUTHN, AUTHZ, STATS (did you mean "AUTHN"?)',
  ]);
  assert.deepEqual(
    config.wasmPlugins.map((p) => `${p.metadata.name}@${p.line}:${p.col}`),
    ['a@4:3'],
  );
});

test('anchors, aliases and merge keys are resolved within a document', async () => {
  const { config } = await loadYaml(`${PLUGIN_HEAD}  url: x/y
  selector:
    matchLabels: &labels
      istio: ingressgateway
  pluginConfig:
    labels: *labels
    <<: {mode: strict}
---
${PLUGIN_HEAD.replace('name: p', 'name: q')}  url: x/z
  pluginConfig: *labels
`);
  assert.deepEqual(config.problems.map(brief), [
    '22:17 (yaml): unknown alias *labels: an anchor &labels must come before it in the same document',
  ]);
  assert.deepEqual(config.wasmPlugins[0]?.spec.pluginConfig, { labels: { istio: 'ingressgateway' }, mode: 'strict' });
  assert.equal(config.wasmPlugins.length, 1, 'anchors do not cross documents');
});

test('locate() finds the line:col of a field of a loaded resource', async () => {
  const config = await loadConfig([fixture('folder')]);
  const stats = config.wasmPlugins.find((p) => p.metadata.name === 'stats')!;
  assert.deepEqual(locate(stats, 'spec.url'), { line: 24, col: 8 });
  assert.deepEqual(locate(stats, 'spec.targetRefs[0].name'), { line: 23, col: 13 });
  assert.deepEqual(locate(stats, 'spec.priority', 'key'), { line: 26, col: 3 });
});

test('every WasmPlugin example of the Istio and OpenShift references validates without problems', async () => {
  const folder = fixture('istio-examples');
  const files = (await readdir(folder)).filter((f) => f.endsWith('.yaml')).sort();
  assert.equal(files.length, 8);
  let plugins = 0;
  for (const f of files) {
    const config = await loadConfig([join(folder, f)]);
    assert.deepEqual(config.problems.map(formatProblem), [], f);
    assert.ok(config.wasmPlugins.length > 0, f);
    plugins += config.wasmPlugins.length;
  }
  assert.equal(plugins, 10);
});

test('the Istio examples normalize as documented', async () => {
  const vm = await loadConfig([fixture('istio-examples', 'istio-3-openid-connect-vmconfig.yaml')]);
  const spec = vm.wasmPlugins[0]?.spec;
  assert.equal(spec?.phase, 'AUTHN');
  assert.equal(spec?.imagePullPolicy, 'IfNotPresent');
  assert.equal(spec?.imagePullSecret, 'private-registry-pull-secret');
  assert.deepEqual(spec?.selector, { matchLabels: { istio: 'ingressgateway' } });
  assert.deepEqual(spec?.pluginConfig, { openid_server: 'authn', openid_realm: 'ingress' });
  assert.deepEqual(spec?.vmConfig?.env, [
    { name: 'POD_NAME', valueFrom: 'HOST', value: '' },
    { name: 'TRUST_DOMAIN', valueFrom: 'INLINE', value: 'cluster.local' },
  ]);
  const chain = await loadConfig([fixture('istio-examples', 'istio-5-phase-priority-chain.yaml')]);
  assert.deepEqual(
    chain.wasmPlugins.map((p) => `${p.metadata.name} ${p.spec.phase} ${p.spec.priority} ${p.spec.imagePullPolicy}`),
    ['openid-connect AUTHN 0 IfNotPresent', 'acl-check AUTHZ 1000 Always', 'check-header AUTHZ 10 IfNotPresent'],
  );
  const file = await loadConfig([fixture('istio-examples', 'istio-1-openid-connect-file.yaml')]);
  assert.equal(file.wasmPlugins[0]?.spec.url, 'file:///opt/filters/openid.wasm');
  assert.equal(file.wasmPlugins[0]?.spec.sha256, '1ef0c9a92b0420cf25f7fe5d481b231464bc88f486ca3b9c83ed5cc21d2f6210');
  assert.equal(file.wasmPlugins[0]?.dir, resolve(FIXTURES, 'istio-examples'));
});
