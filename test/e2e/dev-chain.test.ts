// `wasmgate dev` with several plugins names exactly the filter that answered and the filters it
// cut off: three committed plugins (chain-marker-go, header-authorization-go, chain-marker-go),
// the second answering 403 without `allow: true`, the third 412 without `x-third`.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { answeredBy, requestLine } from '../../src/dev/dev.ts';
import { accessLogEntry } from '../../src/observability/access-log.ts';
import { HeaderMap } from '../../src/pipeline/headers.ts';
import { HttpStream, newStreamInfo } from '../../src/pipeline/stream.ts';
import { ROOT, wasmPluginYaml } from '../helpers/proxy.ts';
import { type DevProcess, startDev } from './dev-helpers.ts';

const MARKER = `file://${join(ROOT, 'plugins/chain-marker-go/plugin.wasm')}`;
const AUTHZ = `file://${join(ROOT, 'plugins/header-authorization-go/plugin.wasm')}`;
const CHAIN = 'istio-system.first -> istio-system.second -> istio-system.third -> istio.stats -> router';

describe('wasmgate dev with three plugins', () => {
  let dir: string;
  let dev: DevProcess;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wasmgate-dev-chain-'));
    const yaml = [
      // Written out of order: phase and priority decide (first 30, second 20, third 10).
      wasmPluginYaml({
        name: 'third',
        url: MARKER,
        phase: 'AUTHN',
        priority: 10,
        extra: '  pluginConfig:\n    requireHeader: x-third\n',
      }),
      wasmPluginYaml({ name: 'second', url: AUTHZ, phase: 'AUTHN', priority: 20 }),
      wasmPluginYaml({ name: 'first', url: MARKER, phase: 'AUTHN', priority: 30 }),
    ].join('---\n');
    writeFileSync(join(dir, 'plugins.yaml'), yaml);
    dev = await startDev([join(dir, 'plugins.yaml')]);
  });
  after(async () => {
    await dev?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the chain is printed in execution order', () => {
    assert.match(dev.output(), new RegExp(`chain: ${CHAIN.replaceAll('.', '\\.')}`));
  });

  test('the second plugin answers 403: the line names it, and the third did not run', async () => {
    const mark = dev.output().length;
    const res = await fetch(`${dev.url}/status/418`);
    assert.equal(res.status, 403);
    assert.equal(await res.text(), 'Forbidden by ASM Wasm Plugin');
    // Ground truth: only `first` saw the reply on its way out (the reply runs back from `second`).
    assert.equal(res.headers.get('x-chain-response'), 'istio-system.first');
    const m = await dev.waitFor(/GET \/status\/418 -> 403 {2}(.*)\n/, mark);
    assert.equal(
      m[1]!.replace(/ {2}\d+ms$/, ''),
      'answered by istio-system.second (local reply: wasm_local_reply); ran istio-system.first -> istio-system.second; ' +
        'not run: istio-system.third -> istio.stats -> router',
    );
  });

  test('the third plugin answers 412: the line names the third, not the second', async () => {
    const mark = dev.output().length;
    const res = await fetch(`${dev.url}/headers`, { headers: { allow: 'true' } });
    assert.equal(res.status, 412);
    assert.equal(await res.text(), 'istio-system.third: missing x-third');
    const m = await dev.waitFor(/GET \/headers -> 412 {2}(.*)\n/, mark);
    assert.match(
      m[1]!,
      /^answered by istio-system\.third \(local reply: \S+\); ran istio-system\.first -> istio-system\.second -> istio-system\.third; not run: istio\.stats -> router {2}\d+ms$/,
    );
  });

  test('a request every plugin lets through is shown passing the whole chain', async () => {
    const mark = dev.output().length;
    const res = await fetch(`${dev.url}/headers`, { headers: { allow: 'true', 'x-third': '1' } });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { headers: Record<string, string | string[]> };
    assert.match(String(body.headers['X-Chain']), /istio-system\.first,istio-system\.third/);
    await dev.waitFor(new RegExp(`GET /headers -> 200 {2}passed ${CHAIN.replaceAll('.', '\\.')} -> upstream`), mark);
  });
});

describe('answeredBy', () => {
  const chain = ['istio-system.a', 'istio-system.b', 'istio.stats'];

  test('a reply from a response callback: every request callback ran', () => {
    assert.equal(
      answeredBy('wasm_local_reply', chain, 'istio-system.b', true),
      'passed istio-system.a -> istio-system.b -> istio.stats -> router -> upstream; answered by istio-system.b on the response (local reply: wasm_local_reply)',
    );
  });

  test('failStrategy names the failed plugin', () => {
    assert.match(
      answeredBy('wasm_fail_stream', chain, 'istio-system.a'),
      /^answered by istio-system\.a \(plugin failed, failStrategy answered: wasm_fail_stream\); ran istio-system\.a; not run: istio-system\.b/,
    );
  });

  test('the proxy itself ("-") is the router; without the field several plugins stay ambiguous', () => {
    assert.equal(answeredBy('route_not_found', chain, '-'), 'answered by router (route_not_found)');
    assert.equal(
      answeredBy('wasm_local_reply', chain),
      'answered by one of istio-system.a, istio-system.b (local reply: wasm_local_reply)',
    );
    assert.match(
      requestLine(
        {
          method: 'GET',
          path: '/x',
          response_code: 503,
          response_flags: 'UF',
          response_code_details: 'upstream_reset_before_response_started{connection_failure}',
          upstream_host: '127.0.0.1:1',
          wasmgate_local_reply_filter: '-',
          duration: 3,
        },
        chain,
      ),
      /^GET \/x -> 503 \[UF\] {2}answered by router \(upstream_reset/,
    );
  });

  test('outside dev the access log keeps Istio fields only', () => {
    const s = new HttpStream(
      new HeaderMap([
        [':method', 'GET'],
        [':path', '/'],
      ]),
      newStreamInfo({
        requestId: 'r',
        protocol: 'HTTP/1.1',
        downstreamRemoteAddress: '127.0.0.1',
        downstreamRemotePort: 1,
        downstreamLocalAddress: '127.0.0.1',
        downstreamLocalPort: 2,
        connectionId: 1,
      }),
    );
    s.localReplyFilter = 'istio-system.a';
    assert.equal(process.env.WASMGATE_DEV_ACCESS_LOG, undefined);
    assert.ok(!('wasmgate_local_reply_filter' in accessLogEntry(s)));
  });
});
