// NETWORK plugins in the listener summaries, through the real CLI (two workers): the run log's
// "listening on" line of an HTTP listener starts with its NETWORK plugins, then the HTTP filters
// and the router, in the order `validate` prints; the admin page (in headless Chromium) draws them
// first in the listener's chain as NETWORK plugins, and draws a TCP listener's chain as its
// NETWORK plugins then tcp_proxy (not the HTTP router).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Browser, chromium } from 'playwright-core';
import {
  gatewayYaml,
  ROOT,
  type RunningProxy,
  runCli,
  startProxy,
  tempConfig,
  wasmPluginYaml,
} from '../helpers/proxy.ts';
import { startEmbeddedHttpbin, type Upstream } from '../helpers/upstreams.ts';
import { freePort } from './tcp-helpers.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const NETWORK_PLUGIN = join(ROOT, 'plugins/network-rust/plugin.wasm');
const MARKER = join(ROOT, 'plugins/chain-marker-go/plugin.wasm');

function networkPlugin(name: string, priority: number, ports: number[]): string {
  return `---\n${wasmPluginYaml({
    name,
    url: `file://${NETWORK_PLUGIN}`,
    priority,
    extra: `  type: NETWORK\n  match:\n  - ports: [${ports.map((p) => `{number: ${p}}`).join(', ')}]\n`,
  })}`;
}

describe('NETWORK plugins in the run log and on the admin page', () => {
  let upstream: Upstream;
  let proxy: RunningProxy;
  let browser: Browser | undefined;
  let dir: string;
  let httpPort: number;
  let tcpPort: number;

  before(async () => {
    for (const f of [NETWORK_PLUGIN, MARKER]) assert.ok(existsSync(f), `${f} is built`);
    upstream = await startEmbeddedHttpbin();
    httpPort = await freePort();
    do tcpPort = await freePort();
    while (tcpPort === httpPort);
    const servers = [
      `  - port: {number: ${httpPort}, name: http, protocol: HTTP}\n    hosts: ["*"]`,
      `  - port: {number: ${tcpPort}, name: tcp, protocol: TCP}\n    hosts: ["*"]`,
    ].join('\n');
    dir = tempConfig({
      'gateway.yaml':
        gatewayYaml(upstream.port, '', { servers }) +
        // Two NETWORK plugins on the HTTP port (higher priority first), one of them on the TCP port too.
        networkPlugin('net-low', 5, [httpPort]) +
        networkPlugin('net-high', 20, [httpPort, tcpPort]) +
        `---\n${wasmPluginYaml({ name: 'marker', url: `file://${MARKER}`, phase: 'AUTHN' })}`,
    });
    proxy = await startProxy(['-c', dir, '--concurrency', '2'], 30_000, { gatewayPorts: true });
    await proxy.waitForLog(`listening on 127.0.0.1:${tcpPort}:`);
  });
  after(async () => {
    await browser?.close();
    await proxy?.stop();
    await upstream?.close();
  });

  test('the run log lists the NETWORK plugins first, as validate does', async () => {
    const http = ['istio-system.net-high', 'istio-system.net-low', 'istio-system.marker', 'istio.stats', 'router'];
    await proxy.waitForLog(`listening on 127.0.0.1:${httpPort}: ${http.join(' -> ')}`);
    await proxy.waitForLog(`listening on 127.0.0.1:${tcpPort}: istio-system.net-high -> tcp_proxy`);
    // The structured log line carries the same chain.
    const line = proxy
      .stderr()
      .split('\n')
      .find((l) => l.includes(`listening on 127.0.0.1:${httpPort}:`));
    assert.deepEqual((JSON.parse(line!) as { chain: string[] }).chain, http.slice(0, -1));

    const v = await runCli(['validate', '-c', dir]);
    assert.equal(v.code, 0, v.stderr);
    const validated = /^listener :(\d+): (.*)$/m.exec(v.stdout);
    assert.equal(Number(validated?.[1]), httpPort, v.stdout);
    // validate labels each entry ("... (NETWORK, priority 20)"): the names, in order, are the run log's.
    assert.deepEqual(
      validated![2]!.split(' -> ').map((e) => e.replace(/ \(.*\)$/, '')),
      http,
    );
    assert.match(
      validated![2]!,
      /^istio-system\.net-high \(NETWORK, priority 20\) -> istio-system\.net-low \(NETWORK, priority 5\) -> /,
    );
  });

  test('the admin page draws the NETWORK plugins first in the chain; a TCP listener ends in tcp_proxy', async () => {
    // Traffic, so the page shows running VMs.
    const res = await fetch(`http://127.0.0.1:${httpPort}/get`, { signal: AbortSignal.timeout(5000) });
    await res.text();
    if (!existsSync(CHROMIUM))
      throw new Error(`no Chromium at ${CHROMIUM}: run \`bash .ci/install-chromium.sh\` (or set CHROMIUM_PATH)`);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const loaded = await page.goto(`http://127.0.0.1:${proxy.adminPort}/`, { waitUntil: 'load' });
      assert.equal(loaded?.status(), 200);
      const drawn = (port: number) =>
        page.locator(`article.listener[data-port="${port}"] ol.chain > li`).evaluateAll((items) =>
          items.map((li) => {
            const tag = li.querySelector('.tag')?.textContent?.trim() ?? '';
            return `${li.getAttribute('data-filter')} ${li.getAttribute('data-kind')} ${tag}`;
          }),
        );
      assert.deepEqual(await drawn(httpPort), [
        'istio-system.net-high network NETWORK plugin',
        'istio-system.net-low network NETWORK plugin',
        'istio-system.marker wasm Wasm plugin',
        'istio.stats builtin built-in',
        'envoy.filters.http.router router router',
      ]);
      assert.deepEqual(await drawn(tcpPort), [
        'istio-system.net-high network NETWORK plugin',
        'envoy.filters.network.tcp_proxy tcp_proxy tcp proxy',
      ]);
      const net = page.locator(`article.listener[data-port="${httpPort}"] li[data-filter="istio-system.net-high"]`);
      assert.equal(await net.getAttribute('data-state'), 'ACTIVE');
      assert.match(await net.innerText(), /NETWORK · priority 20 · FAIL_CLOSE/);
      assert.match(
        await page.locator(`article.listener[data-port="${httpPort}"] .legend`).innerText(),
        /NETWORK plugin/,
      );
      // The plugins table gives NETWORK for their phase (they have none).
      assert.equal(await page.locator('tr[data-plugin="istio-system.net-low"] td').nth(1).innerText(), 'NETWORK');
      assert.equal(await page.locator('tr[data-plugin="istio-system.marker"] td').nth(1).innerText(), 'AUTHN');
      await page.screenshot({ path: join(dir, 'admin-network.png'), fullPage: true });
    } finally {
      await context.close();
    }
  });
});
