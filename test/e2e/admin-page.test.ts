// The admin page (GET / on the admin port) in a real browser: Debian's headless Chromium driven
// by playwright-core. It draws the documented three-plugin chain in order with the built-ins in
// place, every plugin's VM state per worker (FAILED with the reason for a module that cannot be
// fetched), module digests, clusters and counters; it loads nothing but itself; a screenshot is
// saved beside the test's config.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import { exampleConfig, ROOT, type RunningProxy, startProxy, tempConfig, wasmPluginYaml } from '../helpers/proxy.ts';
import { startEmbeddedHttpbin, type Upstream } from '../helpers/upstreams.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const MARKER_PATH = join(ROOT, 'plugins/chain-marker-go/plugin.wasm');

let upstream: Upstream;
let browser: Browser | undefined;
before(async () => {
  upstream = await startEmbeddedHttpbin();
});
after(async () => {
  await browser?.close();
  await upstream?.close();
});

/** Debian's chromium, headless; a missing one fails the test (never skips) and says how to get it. */
async function launched(): Promise<Browser> {
  if (!existsSync(CHROMIUM))
    throw new Error(`no Chromium at ${CHROMIUM}: run \`bash .ci/install-chromium.sh\` (or set CHROMIUM_PATH)`);
  browser ??= await chromium.launch({ executablePath: CHROMIUM, headless: true });
  return browser;
}

interface Loaded {
  page: Page;
  requests: string[];
  problems: string[];
  close(): Promise<void>;
}

/** Opens the admin page, recording every request the page makes and every console error. */
async function openAdmin(proxy: RunningProxy): Promise<Loaded> {
  const context = await (await launched()).newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  const requests: string[] = [];
  const problems: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(m.text());
  });
  page.on('pageerror', (err) => problems.push(err.message));
  const res = await page.goto(`http://127.0.0.1:${proxy.adminPort}/`, { waitUntil: 'load' });
  assert.equal(res?.status(), 200);
  assert.match(res?.headers()['content-type'] ?? '', /^text\/html/);
  return { page, requests, problems, close: () => context.close() };
}

/** The chain of the first listener as drawn: [data-filter, data-kind, visible name]. */
async function drawnChain(page: Page): Promise<string[][]> {
  return page
    .locator('article.listener')
    .first()
    .locator('ol.chain > li')
    .evaluateAll((items) =>
      items.map((li) => [
        li.getAttribute('data-filter') ?? '',
        li.getAttribute('data-kind') ?? '',
        li.querySelector('.name')?.textContent?.trim() ?? '',
      ]),
    );
}

/** Per plugin row: the VM states by worker column. */
async function vmStates(page: Page, plugin: string): Promise<{ worker: string; state: string; text: string }[]> {
  return page.locator(`tr[data-plugin="${plugin}"] td.vm`).evaluateAll((cells) =>
    cells.map((c) => ({
      worker: c.getAttribute('data-worker') ?? '',
      state: c.getAttribute('data-state') ?? '',
      text: c.textContent ?? '',
    })),
  );
}

function onlyAdmin(requests: string[], adminPort: number): void {
  const origin = `http://127.0.0.1:${adminPort}/`;
  const other = requests.filter((u) => !u.startsWith(origin) && !u.startsWith('data:'));
  assert.deepEqual(other, [], 'the page loads nothing from anywhere but the admin port');
  assert.ok(requests.length >= 1);
}

describe('admin page', () => {
  test("draws the seed's three-plugin chain in order, per-worker VM states, clusters and counters", async (t) => {
    const dir = exampleConfig('chain', upstream.port);
    const proxy = await startProxy(['-c', dir, '--namespace', 'istio-ingress', '--concurrency', '2']);
    try {
      for (let i = 0; i < 3; i++) {
        const r = await fetch(`${proxy.url}/headers`);
        assert.equal(r.status, 200);
        await r.text();
      }
      await proxy.accessLogs(3);
      const { page, requests, problems, close } = await openAdmin(proxy);
      try {
        assert.equal(await page.title(), 'wasmgate admin');
        const chain = await drawnChain(page);
        assert.deepEqual(chain, [
          ['istio-ingress.openid-connect', 'wasm', 'istio-ingress.openid-connect'],
          ['istio.authn', 'builtin', 'istio.authn'],
          ['istio-ingress.acl-check', 'wasm', 'istio-ingress.acl-check'],
          ['istio-ingress.check-header', 'wasm', 'istio-ingress.check-header'],
          ['istio.authz', 'builtin', 'istio.authz'],
          ['istio.stats', 'builtin', 'istio.stats'],
          ['envoy.filters.http.router', 'router', 'envoy.filters.http.router'],
        ]);
        // The plugins' order as it reads on screen, and each shows its kind, phase and priority.
        const chainText = await page.locator('article.listener ol.chain').first().innerText();
        const at = (s: string) => chainText.indexOf(s);
        assert.ok(
          at('istio-ingress.openid-connect') < at('istio-ingress.acl-check') &&
            at('istio-ingress.acl-check') < at('istio-ingress.check-header'),
          chainText,
        );
        const details = (await page.locator('ol.chain > li[data-kind="wasm"]').allInnerTexts()).map((d) =>
          d.replace(/\s+/g, ' '),
        );
        assert.match(details[0]!, /WASM PLUGIN.*AUTHN · priority 0 · FAIL_CLOSE.*ACTIVE/i);
        assert.match(details[1]!, /AUTHZ · priority 1000/);
        assert.match(details[2]!, /AUTHZ · priority 10 /);
        const builtins = await page.locator('ol.chain > li[data-kind="builtin"]').allInnerTexts();
        assert.ok(builtins.every((b) => /built-in/i.test(b)));
        assert.match(builtins[0]!, /JWT authentication/);

        // Every plugin: module URL, sha256 of the module, one ACTIVE VM per worker.
        const digest = createHash('sha256').update(readFileSync(MARKER_PATH)).digest('hex');
        for (const name of ['istio-ingress.openid-connect', 'istio-ingress.acl-check', 'istio-ingress.check-header']) {
          const row = page.locator(`tr[data-plugin="${name}"]`);
          const module = await row.locator('td.module').innerText();
          assert.match(module, /chain-marker-go\/plugin\.wasm/);
          assert.match(module, new RegExp(`sha256:${digest}`));
          const vms = await vmStates(page, name);
          assert.deepEqual(
            vms.map((v) => v.state),
            ['ACTIVE', 'ACTIVE'],
          );
          assert.equal(new Set(vms.map((v) => v.worker)).size, 2, 'one column per worker');
        }

        // The cluster and its endpoint, healthy, with the requests sent.
        const endpoint = page.locator(`tr.endpoint[data-endpoint="127.0.0.1:${upstream.port}"]`);
        assert.equal(await endpoint.getAttribute('data-health'), 'healthy');
        assert.match(await endpoint.innerText(), /healthy\s+0\s+3/);
        assert.equal(await page.locator('#requests-total').innerText(), '3');

        const shot = join(dir, 'admin-page.png');
        await page.screenshot({ path: shot, fullPage: true });
        assert.ok(statSync(shot).size > 10_000);
        assert.deepEqual([...readFileSync(shot).subarray(1, 4)], [...Buffer.from('PNG')]);
        t.diagnostic(`screenshot: ${shot}`);
        console.log(`admin page screenshot: ${shot}`);

        onlyAdmin(requests, proxy.adminPort);
        assert.deepEqual(problems, [], 'no console errors (a CSP violation would be one)');

        // ?refresh=N reloads the page by itself (no script); junk is ignored.
        await page.goto(`http://127.0.0.1:${proxy.adminPort}/?refresh=5`);
        assert.equal(await page.locator('meta[http-equiv="refresh"]').getAttribute('content'), '5');
        await page.goto(`http://127.0.0.1:${proxy.adminPort}/?refresh=5;url=http://example.com`);
        assert.equal(await page.locator('meta[http-equiv="refresh"]').count(), 0);
      } finally {
        await close();
      }
    } finally {
      await proxy.stop();
    }
  });

  test('a plugin whose module cannot be fetched shows FAILED with the reason on every worker (FAIL_OPEN)', async (t) => {
    const missing = join(ROOT, 'plugins/no-such-plugin/<b>missing</b>.wasm');
    const dir = tempConfig({
      'plugins.yaml': [
        wasmPluginYaml({ name: 'marker', url: `file://${MARKER_PATH}`, phase: 'AUTHN' }),
        wasmPluginYaml({ name: 'missing', url: `file://${missing}`, phase: 'AUTHZ', failStrategy: 'FAIL_OPEN' }),
      ].join('---\n'),
    });
    const proxy = await startProxy(['-c', dir, '--upstream', upstream.url, '--concurrency', '2']);
    try {
      const r = await fetch(`${proxy.url}/get`);
      assert.equal(r.status, 200, 'FAIL_OPEN: the failed plugin is skipped');
      await r.text();
      const { page, requests, problems, close } = await openAdmin(proxy);
      try {
        const chain = await drawnChain(page);
        assert.deepEqual(
          chain.map(([name, kind]) => `${name} ${kind}`),
          [
            'istio-system.marker wasm',
            'istio-system.missing wasm',
            'istio.stats builtin',
            'envoy.filters.http.router router',
          ],
        );
        const failedBox = page.locator('ol.chain > li[data-filter="istio-system.missing"]');
        assert.equal(await failedBox.getAttribute('data-state'), 'FAILED');
        assert.match(await failedBox.innerText(), /FAILED/);
        assert.equal(
          await page.locator('ol.chain > li[data-filter="istio-system.marker"]').getAttribute('data-state'),
          'ACTIVE',
        );
        const vms = await vmStates(page, 'istio-system.missing');
        assert.equal(vms.length, 2);
        for (const vm of vms) {
          assert.equal(vm.state, 'FAILED');
          assert.match(vm.text, /FAILED/);
          // The reason names the module, shown as text: the markup in the file name is escaped.
          assert.match(vm.text, /no-such-plugin\/<b>missing<\/b>\.wasm/);
        }
        assert.equal(await page.locator('tr[data-plugin="istio-system.missing"] b').count(), 0);
        assert.deepEqual(
          (await vmStates(page, 'istio-system.marker')).map((v) => v.state),
          ['ACTIVE', 'ACTIVE'],
        );
        const shot = join(dir, 'admin-page-failed.png');
        await page.screenshot({ path: shot, fullPage: true });
        t.diagnostic(`screenshot: ${shot}`);
        onlyAdmin(requests, proxy.adminPort);
        assert.deepEqual(problems, []);
      } finally {
        await close();
      }
    } finally {
      await proxy.stop();
    }
  });
});
