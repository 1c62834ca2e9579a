// The attack checklist run twice from one table (test/helpers/attack-cases.ts): against wasmgate,
// where every item's property holds with the checklist's answer, and against the naive
// http-proxy-3 setup a Node user would write (test/helpers/naive-proxy.ts), where it fails for
// exactly the items the table says. Both stand in front of the same recording upstream and refuse
// /admin*, so "the naive setup fails" means a request or header the checklist keeps away from the
// upstream reached it there. docs/security.md shows the table; the last test checks it is current.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  ATTACK_CASES,
  type AttackUpstream,
  attackTableMarkdown,
  runAttack,
  startAttackUpstream,
} from '../helpers/attack-cases.ts';
import { type NaiveProxy, startNaiveProxy } from '../helpers/naive-proxy.ts';
import { gatewayYaml, ROOT, type RunningProxy, startProxy, tempConfig } from '../helpers/proxy.ts';
import { denyAdminPolicy } from './hardening-helpers.ts';

const POLICY = denyAdminPolicy();

let up: AttackUpstream;
let proxy: RunningProxy;
let naive: NaiveProxy;
before(async () => {
  up = await startAttackUpstream();
  proxy = await startProxy(['-c', tempConfig({ 'gw.yaml': gatewayYaml(up.port, POLICY) })]);
  naive = await startNaiveProxy(up.port);
});
after(async () => {
  await proxy?.stop();
  await naive?.close();
  await up?.close();
});

const short = (bytes: string) => JSON.stringify(bytes.length > 90 ? `${bytes.slice(0, 90)}…` : bytes);

describe('wasmgate: every item of the table holds, with the checklist answer', () => {
  for (const c of ATTACK_CASES) {
    test(`${c.item} ${c.title} -> ${c.wasmgate}`, async () => {
      for (const bytes of c.requests) {
        const o = await runAttack(proxy.port, up, bytes, c.timeoutMs);
        assert.equal(o.status, c.wasmgate, `${short(bytes)} answered: ${o.raw.slice(0, 160)}`);
        assert.equal(c.violation(o), undefined, short(bytes));
      }
    });
  }
});

describe('naive http-proxy-3: fails exactly the items the table says', () => {
  for (const c of ATTACK_CASES) {
    test(`${c.item} ${c.title}: ${c.naive === 'violates' ? 'fails' : 'holds'}`, async (t) => {
      const found: string[] = [];
      for (const bytes of c.requests) {
        const o = await runAttack(naive.port, up, bytes, c.timeoutMs);
        const v = c.violation(o);
        if (v) found.push(`${short(bytes)}: ${v}`);
      }
      for (const f of found) t.diagnostic(f);
      if (c.naive === 'violates') assert.ok(found.length > 0, `expected the naive setup to fail: ${c.naiveNote}`);
      else assert.deepEqual(found, [], `expected the naive setup to hold: ${c.naiveNote}`);
    });
  }
});

test('docs/security.md shows the current table', () => {
  const doc = readFileSync(join(ROOT, 'docs/security.md'), 'utf8');
  assert.ok(doc.includes(attackTableMarkdown()), `docs/security.md should contain:\n${attackTableMarkdown()}`);
});
