// The filter pipeline: WasmPlugins interleaved with the built-in filters by phase and priority,
// which plugins apply to this proxy, failStrategy counters, and Istio's standard metrics.
// The chain-marker plugin (Go SDK) appends its plugin_name to x-chain on the request and to
// x-chain-response on the response, so the upstream and the client see the order.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { exampleConfig, ROOT, runCli, startProxy, tempConfig, wasmPluginYaml } from '../helpers/proxy.ts';
import { startEmbeddedHttpbin, type Upstream } from '../helpers/upstreams.ts';

const MARKER = `file://${join(ROOT, 'plugins/chain-marker-go/plugin.wasm')}`;

let upstream: Upstream;
before(async () => {
  upstream = await startEmbeddedHttpbin();
});
after(async () => {
  await upstream?.close();
});

async function upstreamHeaders(url: string, init?: RequestInit) {
  const res = await fetch(url, init);
  const body = (await res.json()) as { headers: Record<string, string[]> };
  return { res, headers: body.headers };
}

function marker(opts: Omit<Parameters<typeof wasmPluginYaml>[0], 'url'>): string {
  return wasmPluginYaml({ ...opts, url: MARKER });
}

describe('chain order', () => {
  test("Istio's documented three-plugin chain, with ties broken by namespace then name", async () => {
    const dir = tempConfig({
      'chain.yaml': [
        marker({ name: 'check-header', phase: 'AUTHZ', priority: 10 }),
        marker({ name: 'openid-connect', phase: 'AUTHN' }),
        marker({ name: 'acl-check', phase: 'AUTHZ', priority: 1000 }),
        marker({ name: 'zeta', phase: 'STATS' }),
        marker({ name: 'alpha', phase: 'STATS' }),
        marker({ name: 'alpha', phase: 'STATS', namespace: 'a-first' }),
        marker({ name: 'last' }),
      ].join('---\n'),
    });
    // A plugin in a namespace that is neither the proxy's nor the root namespace applies only
    // through targetRef, so a-first.alpha is out unless the proxy runs in a-first.
    const v = await runCli(['validate', '-c', dir]);
    assert.equal(v.code, 0, v.stderr);
    assert.match(
      v.stdout,
      /listener :8080: istio-system\.openid-connect \(AUTHN, priority 0\) -> istio-system\.acl-check \(AUTHZ, priority 1000\) -> istio-system\.check-header \(AUTHZ, priority 10\) -> istio-system\.alpha \(STATS, priority 0\) -> istio-system\.zeta \(STATS, priority 0\) -> istio\.stats -> istio-system\.last \(UNSPECIFIED_PHASE, priority 0\) -> router\n/,
    );

    const proxy = await startProxy(['-c', dir, '--upstream', upstream.url, '--namespace', 'a-first']);
    try {
      const { res, headers } = await upstreamHeaders(`${proxy.url}/headers`);
      assert.equal(res.status, 200);
      const order = [
        'istio-system.openid-connect',
        'istio-system.acl-check',
        'istio-system.check-header',
        'a-first.alpha',
        'istio-system.alpha',
        'istio-system.zeta',
        'istio-system.last',
      ];
      assert.deepEqual(headers['X-Chain'], [order.join(',')]);
      assert.equal(res.headers.get('x-chain-response'), [...order].reverse().join(','));
      // The config dump shows the same chain, built-ins in place.
      const dump = (await (await fetch(`http://127.0.0.1:${proxy.adminPort}/config_dump`)).json()) as {
        listeners: { http_filters: string[] }[];
      };
      assert.deepEqual(dump.listeners[0]!.http_filters, [
        ...order.slice(0, 6),
        'istio.stats',
        'istio-system.last',
        'envoy.filters.http.router',
      ]);
    } finally {
      await proxy.stop();
    }
  });

  test('selector, namespace, targetRef and match[] decide which plugins apply', async () => {
    const gateway = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: apps}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
`;
    const dir = tempConfig({
      'gw.yaml': gateway,
      'p.yaml': [
        marker({ name: 'root-wide', namespace: 'istio-system' }),
        marker({ name: 'own-ns', namespace: 'apps' }),
        marker({ name: 'other-ns', namespace: 'elsewhere' }),
        // selector that does not match this proxy's labels
        wasmPluginYaml({ name: 'wrong-labels', namespace: 'apps', url: MARKER }).replace(
          'istio: ingressgateway',
          'istio: egressgateway',
        ),
        // targetRef to the Gateway, from its namespace, with no selector
        `apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: by-ref, namespace: apps}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: edge}]
  url: ${MARKER}
`,
        marker({ name: 'server-only', namespace: 'apps', extra: '  match: [{mode: SERVER}]\n' }),
        marker({ name: 'other-port', namespace: 'apps', extra: '  match: [{ports: [{number: 9999}]}]\n' }),
        marker({
          name: 'this-port',
          namespace: 'apps',
          extra: '  match: [{mode: CLIENT, ports: [{number: 8080}]}]\n',
        }),
      ].join('---\n'),
    });
    const r = await runCli(['validate', '-c', dir, '--namespace', 'apps']);
    assert.equal(r.code, 0, r.stderr);
    const chain = /listener :8080: (.*)\n/.exec(r.stdout)?.[1] ?? '';
    const names = chain.split(' -> ').map((s) => s.replace(/ \(.*\)$/, ''));
    assert.deepEqual(names, [
      'istio.stats',
      'apps.by-ref',
      'apps.own-ns',
      'apps.this-port',
      'istio-system.root-wide',
      'router',
    ]);
  });

  test('an AUTHN plugin runs before the built-ins and a failed FAIL_OPEN plugin is skipped and counted', async () => {
    const dir = tempConfig({
      'p.yaml': [
        marker({ name: 'first', phase: 'AUTHN' }),
        wasmPluginYaml({
          name: 'broken',
          url: 'file:///nonexistent/x.wasm',
          phase: 'AUTHZ',
          failStrategy: 'FAIL_OPEN',
        }),
        marker({ name: 'needs-first', phase: 'STATS', extra: '  pluginConfig: {requireHeader: x-chain}\n' }),
      ].join('---\n'),
    });
    const proxy = await startProxy(['-c', dir, '--upstream', upstream.url]);
    try {
      for (let i = 0; i < 3; i++) {
        const { res, headers } = await upstreamHeaders(`${proxy.url}/headers`);
        assert.equal(res.status, 200);
        assert.deepEqual(headers['X-Chain'], ['istio-system.first,istio-system.needs-first']);
      }
      const text = await (await fetch(`http://127.0.0.1:${proxy.adminPort}/stats/prometheus`)).text();
      assert.match(text, /^wasmgate_wasm_plugin_failed\{plugin="istio-system\.broken"\} 1$/m);
      assert.match(text, /^wasmgate_wasm_plugin_failed\{plugin="istio-system\.first"\} 0$/m);
      assert.match(text, /^wasmgate_wasm_plugin_fail_open_total\{plugin="istio-system\.broken"\} 3$/m);
      assert.match(text, /^wasmgate_wasm_plugin_fail_close_total\{plugin="istio-system\.broken"\} 0$/m);
      assert.match(
        text,
        /^wasmgate_wasm_plugin_callbacks_total\{plugin="istio-system\.first",callback="proxy_on_request_headers"\} 3$/m,
      );
      assert.match(text, /^wasmgate_wasm_plugin_vm_restarts_total\{plugin="istio-system\.first"\} 0$/m);
      assert.match(
        text,
        /^wasmgate_wasm_plugin_callback_duration_microseconds_bucket\{plugin="istio-system\.first",le="\+Inf"\} \d+$/m,
      );
    } finally {
      await proxy.stop();
    }
  });
});

describe('istio.stats', () => {
  test('a scrape after a known set of requests shows the exact counts per label set', async () => {
    const dir = tempConfig({
      'se.yaml': `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: apps}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: apps}
spec:
  hosts: [httpbin.example]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: ${upstream.port}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin, namespace: apps}
spec:
  hosts: ["*"]
  gateways: [edge]
  http:
  - route: [{destination: {host: httpbin.example, port: {number: 80}}}]
`,
      'p.yaml': marker({ name: 'gate', phase: 'AUTHZ', extra: '  pluginConfig: {requireHeader: x-pass}\n' }),
    });
    const proxy = await startProxy(['-c', dir, '--label', 'app=edge', '--label', 'istio=ingressgateway']);
    try {
      const get = async (path: string, pass: boolean) => {
        const res = await fetch(`${proxy.url}${path}`, { headers: pass ? { 'x-pass': '1' } : {} });
        await res.arrayBuffer();
        return res.status;
      };
      assert.equal(await get('/status/200', true), 200);
      assert.equal(await get('/status/200', true), 200);
      assert.equal(await get('/status/418', true), 418);
      assert.equal(await get('/status/200', false), 412);
      const text = await (await fetch(`http://127.0.0.1:${proxy.adminPort}/stats/prometheus`)).text();
      const counts = new Map<string, number>();
      for (const line of text.split('\n')) {
        const m = /^istio_requests_total\{(.*)\} (\d+)$/.exec(line);
        if (!m) continue;
        const labels = Object.fromEntries([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
        assert.equal(labels.reporter, 'source');
        assert.equal(labels.source_workload_namespace, 'istio-system');
        assert.equal(labels.source_app, 'edge');
        assert.equal(labels.request_protocol, 'http');
        counts.set(
          `${labels.response_code} ${labels.destination_service} ${labels.destination_service_namespace}`,
          Number(m[2]),
        );
      }
      assert.deepEqual(Object.fromEntries(counts), {
        '200 httpbin.example apps': 2,
        '418 httpbin.example apps': 1,
        // The plugin answered before routing: no upstream cluster.
        '412 unknown unknown': 1,
      });
      assert.match(text, /^istio_request_duration_milliseconds_count\{.*response_code="200".*\} 2$/m);
      assert.match(text, /^istio_request_bytes_count\{.*response_code="418".*\} 1$/m);
      assert.match(text, /^istio_response_bytes_bucket\{le="\+Inf",.*response_code="412".*\} 1$/m);
    } finally {
      await proxy.stop();
    }
  });
});

describe('config/examples/chain: the documented chain with JWT authn and policy', () => {
  test('openid-connect writes a JWT that istio.authn validates; authz allows it and denies /admin', async () => {
    const dir = exampleConfig('chain', upstream.port);
    const v = await runCli(['validate', '-c', dir, '--namespace', 'istio-ingress']);
    assert.match(
      v.stdout,
      /istio-ingress\.openid-connect \(AUTHN, priority 0\) -> istio\.authn -> istio-ingress\.acl-check \(AUTHZ, priority 1000\) -> istio-ingress\.check-header \(AUTHZ, priority 10\) -> istio\.authz -> istio\.stats -> router/,
    );
    const proxy = await startProxy(['-c', dir, '--namespace', 'istio-ingress']);
    try {
      const { res, headers } = await upstreamHeaders(`${proxy.url}/headers`);
      assert.equal(res.status, 200);
      assert.deepEqual(headers['X-Chain'], [
        'istio-ingress.openid-connect,istio-ingress.acl-check,istio-ingress.check-header',
      ]);
      assert.deepEqual(headers['X-User'], ['alice'], 'outputClaimToHeaders from the validated JWT');
      assert.equal(headers.Authorization, undefined, 'the token is not forwarded (forwardOriginalToken: false)');
      for (const path of ['/admin/x', '/admin', '//admin/x', '/a/../admin/x', '/%61dmin/x', '/./admin']) {
        const denied = await fetch(`${proxy.url}${path}`);
        assert.equal(denied.status, 403, path);
        assert.equal(await denied.text(), 'RBAC: access denied');
      }
      const escaped = await fetch(`${proxy.url}/a/..%2Fadmin`);
      assert.equal(escaped.status, 400, 'escaped slashes are refused before any filter');
      await escaped.text();
      const logs = await proxy.accessLogs(8);
      assert.match(
        String(logs[1]!.response_code_details),
        /^rbac_access_denied_matched_policy\[ns\[istio-ingress\]-policy\[deny-admin\]-rule\[0\]\]$/,
      );
    } finally {
      await proxy.stop();
    }
  });
});
