// A bounded soak (about 60 s; SOAK_SECONDS overrides): mixed traffic through two workers with
// autocannon (GET and POST allowed by the tutorial's Rust Wasm plugin, GETs the plugin denies, GETs
// an AuthorizationPolicy denies), while the configuration is reloaded (POST /reload on the admin
// port), the YAML is rewritten (the plugin gets a new VM) and the upstream is restarted between
// phases. Every response must be the expected one (no error, no timeout, no other status), and the
// proxy's memory (VmRSS) and open file descriptors (/proc/<pid>/fd) must stay flat. The numbers
// are printed for the record.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import autocannon from 'autocannon';
import { startHttpbin } from '../../src/upstream/httpbin.ts';
import { gatewayYaml, ROOT, type RunningProxy, startProxy, tempConfig } from '../helpers/proxy.ts';
import { adminStats, eventually } from './hardening-helpers.ts';

const TOTAL_S = Number(process.env.SOAK_SECONDS ?? 60);
const PHASES = 6;
const PHASE_S = Math.max(3, Math.floor(TOTAL_S / PHASES));

type Httpbin = Awaited<ReturnType<typeof startHttpbin>>;
let httpbin: Httpbin;
let upstreamPort: number;
let proxy: RunningProxy;
let dir: string;

function files(generation: number): Record<string, string> {
  return {
    'gw.yaml': gatewayYaml(
      upstreamPort,
      `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/deny*"]}}]
`,
    ),
    'plugin.yaml': `apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: header-authorization, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  url: file://${join(ROOT, 'plugins/header-authorization-rust/plugin.wasm')}
  phase: AUTHN
  pluginConfig: {generation: ${generation}}
`,
  };
}

function rssMiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
}
function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

before(async () => {
  httpbin = await startHttpbin({ host: '127.0.0.1', port: 0 });
  upstreamPort = Number(new URL(httpbin.url).port);
  dir = tempConfig(files(0));
  proxy = await startProxy(['-c', dir, '--concurrency', '2', '--access-log', 'off']);
});
after(async () => {
  await proxy?.stop();
  await httpbin?.close();
});

interface Traffic {
  name: string;
  opts: autocannon.Options;
  /** The only status this traffic may get. */
  expect: number;
}

function run(t: Traffic, seconds: number): Promise<{ name: string; ok: number; bad: string[] }> {
  return new Promise((resolve, reject) => {
    autocannon({ ...t.opts, duration: seconds }, (err, result) => {
      if (err) return reject(err);
      const stats = (result as unknown as { statusCodeStats: Record<string, { count: number }> }).statusCodeStats;
      const bad: string[] = [];
      let ok = 0;
      for (const [code, { count }] of Object.entries(stats)) {
        if (Number(code) === t.expect) ok += count;
        else bad.push(`${count} x ${code}`);
      }
      if (result.errors > 0) bad.push(`${result.errors} errors`);
      if (result.timeouts > 0) bad.push(`${result.timeouts} timeouts`);
      resolve({ name: t.name, ok, bad });
    });
  });
}

test(`soak: ${PHASES} phases of ${PHASE_S}s of mixed traffic with reloads and upstream restarts`, {
  timeout: (TOTAL_S + 60) * 1000,
}, async (t) => {
  const pid = proxy.child.pid!;
  const url = proxy.url;
  const traffic: Traffic[] = [
    { name: 'GET allowed', expect: 200, opts: { url: `${url}/get`, connections: 8, headers: { allow: 'true' } } },
    {
      name: 'POST allowed',
      expect: 200,
      opts: {
        url: `${url}/post`,
        connections: 4,
        method: 'POST',
        headers: { allow: 'true', 'content-type': 'application/json' },
        body: JSON.stringify({ payload: 'x'.repeat(2048) }),
      },
    },
    { name: 'GET denied by the plugin', expect: 403, opts: { url: `${url}/get`, connections: 2 } },
    {
      name: 'GET denied by authz',
      expect: 403,
      opts: { url: `${url}/deny/x`, connections: 2, headers: { allow: 'true' } },
    },
  ];
  const samples: { phase: number; rssMiB: number; fds: number; requests: number }[] = [];
  const problems: string[] = [];
  let generation = 0;
  for (let phase = 1; phase <= PHASES; phase++) {
    const runs = Promise.all(traffic.map((tr) => run(tr, PHASE_S)));
    // Something changes in the middle of each phase, under traffic.
    await new Promise((r) => setTimeout(r, (PHASE_S * 1000) / 2));
    if (phase % 2 === 0) {
      const res = await fetch(`http://127.0.0.1:${proxy.adminPort}/reload`, { method: 'POST' });
      assert.equal(res.status, 200, await res.text());
    } else if (phase % 3 === 0) {
      writeFileSync(join(dir, 'plugin.yaml'), files(++generation)['plugin.yaml']!);
      await proxy.waitForLog(`reloaded (changed`, 10_000).catch(() => problems.push('YAML rewrite not reloaded'));
    }
    const results = await runs;
    let requests = 0;
    for (const r of results) {
      requests += r.ok;
      if (r.bad.length > 0) problems.push(`phase ${phase} ${r.name}: ${r.bad.join(', ')}`);
    }
    samples.push({ phase, rssMiB: Math.round(rssMiB(pid)), fds: fdCount(pid), requests });
    // Between phases, the upstream restarts on the same port (no traffic in flight).
    if (phase === 2 || phase === 4) {
      await httpbin.close();
      httpbin = await startHttpbin({ host: '127.0.0.1', port: upstreamPort });
    }
  }
  await eventually(async () => (await adminStats(proxy.adminPort)).get('server.downstream_cx_active') === 0, 5000);
  const end = { rssMiB: Math.round(rssMiB(pid)), fds: fdCount(pid) };
  const report = `soak: ${JSON.stringify(samples)} idle after: ${JSON.stringify(end)}`;
  t.diagnostic(report);
  process.stderr.write(`${report}\n`);
  assert.deepEqual(problems, [], 'unexpected answers');
  // Flat: after the warm-up phase, memory and descriptors do not keep growing. V8 sizes its heaps
  // by the allocation rate, so RSS rises with the request rate (lower while another test file
  // shares the cores): the end is compared with the highest of the middle phases, and with the
  // warm-up phase only loosely. (A leak of one finished request per request would grow by
  // gigabytes over these phases.)
  const warm = samples[1]!;
  const last = samples[samples.length - 1]!;
  const plateau = Math.max(...samples.slice(1, -2).map((s) => s.rssMiB));
  assert.ok(last.rssMiB - plateau < 48, `RSS kept growing: ${samples.map((s) => s.rssMiB).join(' -> ')} MiB`);
  assert.ok(last.rssMiB - warm.rssMiB < 192, `RSS grew from ${warm.rssMiB} to ${last.rssMiB} MiB`);
  assert.ok(end.fds - warm.fds < 16, `fds grew from ${warm.fds} to ${end.fds}`);
  assert.ok(
    samples.every((s) => s.requests > 100),
    'every phase carried traffic',
  );
});
