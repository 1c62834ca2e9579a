// The built-in authz filter (istio.authz), driven through a real FilterManager: DENY, then ALLOW,
// AUDIT only logs; every rule field in its positive and not- form.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import type { AuthorizationPolicySpec, AuthzRule, Resource } from '../../src/config/types.ts';
import { AuthzFilterFactory, policyId, responseDetail } from '../../src/filters/authz/authz-filter.ts';
import { pathTemplate } from '../../src/filters/authz/matchers.ts';
import { type FilterFactory, HeadersStatus } from '../../src/pipeline/filter.ts';
import { FilterManager } from '../../src/pipeline/filter-manager.ts';
import { HeaderMap } from '../../src/pipeline/headers.ts';
import { HttpStream, newStreamInfo, type RequestAuth } from '../../src/pipeline/stream.ts';

type Action = AuthorizationPolicySpec['action'];

function policy(
  name: string,
  action: Action,
  rules: Partial<AuthzRule>[] | undefined,
  annotations: Record<string, string> = {},
): Resource<AuthorizationPolicySpec> {
  return {
    apiVersion: 'security.istio.io/v1',
    kind: 'AuthorizationPolicy',
    metadata: { name, namespace: 'foo', labels: {}, annotations },
    spec: { action, rules: (rules ?? []).map((r) => ({ from: [], to: [], when: [], ...r })) },
    file: 'test.yaml',
    line: 1,
    col: 1,
    dir: '/',
  };
}

interface Req {
  method?: string;
  path?: string;
  authority?: string;
  headers?: [string, string][];
  peer?: string;
  local?: string;
  port?: number;
  auth?: Partial<RequestAuth>;
}

function jwt(iss: string, sub: string, claims: Record<string, unknown> = {}): Partial<RequestAuth> {
  return { issuer: iss, subject: sub, principal: `${iss}/${sub}`, claims: { iss, sub, ...claims } };
}

function run(policies: Resource<AuthorizationPolicySpec>[], req: Req = {}) {
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug', base: undefined }, { write: (s: string) => logs.push(JSON.parse(s)) });
  const factory = new AuthzFilterFactory(policies, { logger });
  const headers = new HeaderMap([
    [':authority', req.authority ?? 'example.com'],
    [':path', req.path ?? '/'],
    [':method', req.method ?? 'GET'],
    ...(req.headers ?? []),
  ]);
  const stream = new HttpStream(
    headers,
    newStreamInfo({
      requestId: 'r1',
      protocol: 'HTTP/1.1',
      downstreamRemoteAddress: req.peer ?? '10.1.2.3',
      downstreamRemotePort: 40000,
      downstreamLocalAddress: req.local ?? '192.168.0.1',
      downstreamLocalPort: req.port ?? 8080,
      connectionId: 1,
    }),
  );
  if (req.auth)
    stream.auth = { principal: '', issuer: '', subject: '', audiences: [], presenter: '', claims: {}, ...req.auth };
  const out = { status: 0, body: '', upstream: false, after: false };
  // A filter after authz: it must not see a denied request.
  const after: FilterFactory = {
    name: 'after',
    create: () => ({
      decodeHeaders: () => {
        out.after = true;
        return HeadersStatus.Continue;
      },
    }),
  };
  const manager = new FilterManager(
    stream,
    [factory, after],
    {
      writeHeaders: (status) => {
        out.status = status;
      },
      writeData: (chunk) => {
        out.body += Buffer.from(chunk).toString();
      },
      writeTrailers: () => {},
      reset: () => {},
    },
    () => {
      out.upstream = true;
      return { sendHeaders: () => {}, sendData: () => {}, sendTrailers: () => {}, abort: () => {} };
    },
    { requestBufferLimit: 1024, responseBufferLimit: 1024 },
  );
  manager.decodeHeaders(true);
  const allowed = out.upstream && out.after && out.status === 0;
  if (!allowed) {
    assert.equal(out.status, 403);
    assert.equal(out.body, 'RBAC: access denied');
    assert.equal(stream.responseHeaders?.get('content-type'), 'text/plain');
    assert.equal(out.after, false, 'a denied request goes no further');
    assert.equal(out.upstream, false);
  }
  return { allowed, details: stream.info.responseCodeDetails, logs, stream };
}

const allowed = (policies: Resource<AuthorizationPolicySpec>[], req: Req = {}) => run(policies, req).allowed;

test('no policy, or only AUDIT/DENY policies that do not match: allowed', () => {
  assert.equal(allowed([]), true);
  assert.equal(allowed([policy('d', 'DENY', [{ to: [{ operation: { paths: ['/admin'] } }] }])]), true);
  assert.equal(allowed([policy('a', 'AUDIT', [{}])]), true);
});

test('an ALLOW policy without rules denies everything; the rule {} allows everything', () => {
  const r = run([policy('allow-nothing', 'ALLOW', undefined)]);
  assert.equal(r.allowed, false);
  assert.equal(r.details, 'rbac_access_denied_matched_policy[none]');
  assert.equal(allowed([policy('allow-all', 'ALLOW', [{}])]), true);
  // ALLOW policies are OR'ed: the empty one does not stop another from allowing.
  assert.equal(allowed([policy('allow-nothing', 'ALLOW', undefined), policy('allow-all', 'ALLOW', [{}])]), true);
});

test('DENY wins over ALLOW and names the matched policy and rule', () => {
  const deny = policy('deny-admin', 'DENY', [
    { to: [{ operation: { paths: ['/nope'] } }] },
    { to: [{ operation: { paths: ['/admin*'] } }] },
  ]);
  const r = run([policy('allow-all', 'ALLOW', [{}]), deny], { path: '/admin/users?x=1' });
  assert.equal(r.allowed, false);
  assert.equal(r.details, 'rbac_access_denied_matched_policy[ns[foo]-policy[deny-admin]-rule[1]]');
  assert.equal(allowed([policy('allow-all', 'ALLOW', [{}]), deny], { path: '/public' }), true);
});

test('DENY: the first matching rule in Envoy order (by id) is reported', () => {
  const r = run([policy('zz', 'DENY', [{}]), policy('aa', 'DENY', [{}])]);
  assert.equal(r.details, responseDetail(policyId('foo', 'aa', 0)));
});

test('AUDIT policies only log, with the policy name, and never change the decision', () => {
  const audit = policy('audit-posts', 'AUDIT', [{ to: [{ operation: { methods: ['POST'] } }] }]);
  const a = run([audit], { method: 'POST' });
  assert.equal(a.allowed, true);
  const line = a.logs.find((l) => l.level === 30 && String(l.msg).includes('AUDIT'));
  assert.ok(line, 'an info line for the AUDIT match');
  assert.equal(line.policy, 'foo/audit-posts');
  assert.equal(run([audit], { method: 'GET' }).logs.filter((l) => String(l.msg).includes('AUDIT')).length, 0);
  // Audited and denied: AUDIT does not rescue a request an ALLOW policy refuses.
  const b = run([audit, policy('allow-get', 'ALLOW', [{ to: [{ operation: { methods: ['GET'] } }] }])], {
    method: 'POST',
  });
  assert.equal(b.allowed, false);
  assert.ok(b.logs.some((l) => l.policy === 'foo/audit-posts'));
});

test('dry-run policies are logged and not enforced', () => {
  const r = run([policy('deny-all', 'DENY', [{}], { 'istio.io/dry-run': 'true' })]);
  assert.equal(r.allowed, true);
  assert.ok(r.logs.some((l) => String(l.msg).includes('would deny')));
  assert.equal(allowed([policy('deny-all', 'DENY', [{}], { 'istio.io/dry-run': 'false' })]), false);
  assert.equal(allowed([policy('allow-nothing', 'ALLOW', undefined, { 'istio.io/dry-run': 'true' })]), true);
});

test('CUSTOM policies are refused at construction', () => {
  assert.throws(
    () => new AuthzFilterFactory([policy('ext', 'CUSTOM', [{}])], { logger: pino({ level: 'silent' }) }),
    /CUSTOM action is not supported by wasmgate/,
  );
});

// One ALLOW policy with one rule; the matrix lists requests it must allow and must deny.
interface Case {
  name: string;
  rule: Partial<AuthzRule>;
  allow: Req[];
  deny: Req[];
}

const anyJwt = jwt('https://issuer.example.com', 'alice');

const cases: Case[] = [
  {
    name: 'hosts: exact, case-insensitive, port included',
    rule: { to: [{ operation: { hosts: ['api.example.com'] } }] },
    allow: [{ authority: 'api.example.com' }, { authority: 'API.Example.COM' }],
    deny: [{ authority: 'api.example.com:8080' }, { authority: 'other.example.com' }],
  },
  {
    name: 'hosts: prefix, suffix and presence',
    rule: { to: [{ operation: { hosts: ['api.example.com:*', '*.internal'] } }] },
    allow: [{ authority: 'api.example.com:8080' }, { authority: 'db.INTERNAL' }],
    deny: [{ authority: 'api.example.com' }, { authority: 'internal' }],
  },
  {
    name: 'notHosts',
    rule: { to: [{ operation: { notHosts: ['admin.example.com', 'admin.example.com:*'] } }] },
    allow: [{ authority: 'www.example.com' }],
    deny: [{ authority: 'ADMIN.example.com' }, { authority: 'admin.example.com:443' }],
  },
  {
    name: 'methods and notMethods (case-sensitive)',
    rule: { to: [{ operation: { methods: ['GET', 'HEAD'], notMethods: ['HEAD'] } }] },
    allow: [{ method: 'GET' }],
    deny: [{ method: 'HEAD' }, { method: 'POST' }, { method: 'get' }],
  },
  {
    name: 'paths: exact, prefix, suffix; the query is ignored',
    rule: { to: [{ operation: { paths: ['/exact', '/api/*', '*.png'] } }] },
    allow: [{ path: '/exact' }, { path: '/exact?x=1' }, { path: '/api/v1' }, { path: '/img/a.png' }],
    deny: [{ path: '/exact/' }, { path: '/api' }, { path: '/Exact' }, { path: '/a.png.txt' }],
  },
  {
    name: 'paths: presence',
    rule: { to: [{ operation: { paths: ['*'] } }] },
    allow: [{ path: '/' }, { path: '/anything' }],
    deny: [],
  },
  {
    name: 'notPaths',
    rule: { to: [{ operation: { notPaths: ['/admin', '/admin/*'] } }] },
    allow: [{ path: '/public' }, { path: '/administrator' }],
    deny: [{ path: '/admin' }, { path: '/admin/x' }, { path: '/admin?x' }],
  },
  {
    name: 'paths: {*} and {**} templates',
    rule: { to: [{ operation: { paths: ['/users/{*}/profile', '/files/{**}'] } }] },
    allow: [{ path: '/users/42/profile' }, { path: '/files/' }, { path: '/files/a/b/c.txt' }],
    deny: [{ path: '/users/profile' }, { path: '/users/a/b/profile' }, { path: '/users//profile' }, { path: '/files' }],
  },
  {
    name: 'ports and notPorts (the listener port)',
    rule: { to: [{ operation: { ports: ['8080', '8443'], notPorts: ['8443'] } }] },
    allow: [{ port: 8080 }],
    deny: [{ port: 8443 }, { port: 9090 }],
  },
  {
    name: 'several operations: any of them',
    rule: { to: [{ operation: { methods: ['GET'] } }, { operation: { paths: ['/write'] } }] },
    allow: [
      { method: 'GET', path: '/x' },
      { method: 'POST', path: '/write' },
    ],
    deny: [{ method: 'POST', path: '/x' }],
  },
  {
    name: 'all fields of one operation must match',
    rule: { to: [{ operation: { methods: ['GET'], paths: ['/read'] } }] },
    allow: [{ method: 'GET', path: '/read' }],
    deny: [
      { method: 'GET', path: '/write' },
      { method: 'POST', path: '/read' },
    ],
  },
  {
    name: 'ipBlocks: IPs and CIDRs, IPv4, IPv6 and IPv4-mapped IPv6',
    rule: { from: [{ source: { ipBlocks: ['10.0.0.0/8', '192.168.1.7', '2001:db8::/32'] } }] },
    allow: [{ peer: '10.9.9.9' }, { peer: '::ffff:10.1.1.1' }, { peer: '192.168.1.7' }, { peer: '2001:db8::1' }],
    deny: [{ peer: '11.0.0.1' }, { peer: '192.168.1.8' }, { peer: '2001:db9::1' }, { peer: '::1' }],
  },
  {
    name: 'IPv4-mapped IPv6 CIDR in a policy',
    rule: { from: [{ source: { ipBlocks: ['::ffff:10.0.0.0/104'] } }] },
    allow: [{ peer: '10.2.3.4' }, { peer: '::ffff:10.2.3.4' }],
    deny: [{ peer: '11.2.3.4' }],
  },
  {
    name: 'notIpBlocks',
    rule: { from: [{ source: { notIpBlocks: ['10.0.0.0/8'] } }] },
    allow: [{ peer: '172.16.0.1' }],
    deny: [{ peer: '10.0.0.1' }, { peer: '::ffff:10.0.0.1' }],
  },
  {
    name: 'remoteIpBlocks and notRemoteIpBlocks: the peer (no trusted X-Forwarded-For hops)',
    rule: { from: [{ source: { remoteIpBlocks: ['10.0.0.0/8'], notRemoteIpBlocks: ['10.0.0.66'] } }] },
    allow: [{ peer: '10.0.0.1', headers: [['x-forwarded-for', '8.8.8.8']] }],
    deny: [{ peer: '8.8.8.8', headers: [['x-forwarded-for', '10.0.0.1']] }, { peer: '10.0.0.66' }],
  },
  {
    name: 'principals, namespaces, serviceAccounts, trustDomains: no mTLS identity, never match',
    rule: {
      from: [
        { source: { principals: ['*'] } },
        { source: { namespaces: ['*'] } },
        { source: { serviceAccounts: ['default/sleep'] } },
        { source: { trustDomains: ['*'] } },
      ],
    },
    allow: [],
    deny: [{}, { auth: anyJwt }],
  },
  {
    name: 'notPrincipals, notNamespaces, notServiceAccounts, notTrustDomains: always match',
    rule: {
      from: [
        {
          source: {
            notPrincipals: ['cluster.local/ns/x/sa/y'],
            notNamespaces: ['x'],
            notTrustDomains: ['*'],
          },
        },
      ],
    },
    allow: [{}],
    deny: [],
  },
  {
    name: 'requestPrincipals "*": any authenticated request',
    rule: { from: [{ source: { requestPrincipals: ['*'] } }] },
    allow: [{ auth: anyJwt }],
    deny: [{}, { auth: jwt('https://issuer.example.com', '') }],
  },
  {
    name: 'requestPrincipals: exact, issuer/*, prefix and suffix',
    rule: {
      from: [
        {
          source: {
            requestPrincipals: [
              'https://a.example.com/alice',
              'https://b.example.com/*',
              '*@example.org',
              'issuer-c*',
              'https://d*',
            ],
          },
        },
      ],
    },
    allow: [
      { auth: jwt('https://a.example.com', 'alice') },
      { auth: jwt('https://b.example.com', 'anyone') },
      { auth: jwt('https://x.example.com', 'bob@example.org') },
      { auth: jwt('issuer-cx', 'carol') },
      // Istio splits at the last "/": https://d* is issuer "https:/" and a subject starting with "d".
      { auth: jwt('https:/', 'dave') },
    ],
    deny: [
      { auth: jwt('https://a.example.com', 'mallory') },
      { auth: jwt('https://a.example.com/alice', 'x') },
      { auth: jwt('https://b.example.com.evil', 'anyone') },
      { auth: jwt('https://d.example.com', 'dave') },
      {},
    ],
  },
  {
    name: 'notRequestPrincipals "*": only unauthenticated requests',
    rule: { from: [{ source: { notRequestPrincipals: ['*'] } }] },
    allow: [{}],
    deny: [{ auth: anyJwt }],
  },
  {
    name: 'all fields of one source must match',
    rule: { from: [{ source: { requestPrincipals: ['*'], ipBlocks: ['10.0.0.0/8'] } }] },
    allow: [{ auth: anyJwt, peer: '10.0.0.5' }],
    deny: [{ peer: '10.0.0.5' }, { auth: anyJwt, peer: '8.8.8.8' }],
  },
  {
    name: 'from, to and when together must all match',
    rule: {
      from: [{ source: { ipBlocks: ['10.0.0.0/8'] } }],
      to: [{ operation: { methods: ['GET'] } }],
      when: [{ key: 'request.headers[x-team]', values: ['blue'] }],
    },
    allow: [{ peer: '10.0.0.1', method: 'GET', headers: [['x-team', 'blue']] }],
    deny: [
      { peer: '8.8.8.8', method: 'GET', headers: [['x-team', 'blue']] },
      { peer: '10.0.0.1', method: 'PUT', headers: [['x-team', 'blue']] },
      { peer: '10.0.0.1', method: 'GET', headers: [['x-team', 'red']] },
    ],
  },
  {
    name: 'when request.headers: exact, prefix, suffix, presence; names case-insensitive',
    rule: {
      when: [
        { key: 'request.headers[X-Version]', values: ['v1', 'beta-*', '*-rc'] },
        { key: 'request.headers[x-present]', values: ['*'] },
      ],
    },
    allow: [
      {
        headers: [
          ['x-version', 'v1'],
          ['x-present', ''],
        ],
      },
      {
        headers: [
          ['x-version', 'beta-2'],
          ['x-present', 'y'],
        ],
      },
      {
        headers: [
          ['x-version', '3-rc'],
          ['x-present', 'y'],
        ],
      },
    ],
    deny: [
      { headers: [['x-version', 'v1']] },
      {
        headers: [
          ['x-version', 'V1'],
          ['x-present', 'y'],
        ],
      },
    ],
  },
  {
    name: 'when request.headers notValues (several values are joined with ",")',
    rule: { when: [{ key: 'request.headers[x-user]', notValues: ['admin'] }] },
    allow: [
      {},
      { headers: [['x-user', 'bob']] },
      {
        headers: [
          ['x-user', 'admin'],
          ['x-user', 'bob'],
        ],
      },
    ],
    deny: [{ headers: [['x-user', 'admin']] }],
  },
  {
    name: 'when source.ip / remote.ip / destination.ip / destination.port',
    rule: {
      when: [
        { key: 'source.ip', values: ['10.0.0.0/8'] },
        { key: 'remote.ip', notValues: ['10.6.6.6'] },
        { key: 'destination.ip', values: ['192.168.0.0/16'] },
        { key: 'destination.port', values: ['8080'] },
      ],
    },
    allow: [{ peer: '10.0.0.1' }],
    deny: [
      { peer: '11.0.0.1' },
      { peer: '10.6.6.6' },
      { peer: '10.0.0.1', local: '127.0.0.1' },
      { peer: '10.0.0.1', port: 80 },
    ],
  },
  {
    name: 'when source.namespace / source.principal: values never match',
    rule: { when: [{ key: 'source.principal', values: ['*'] }] },
    allow: [],
    deny: [{}],
  },
  {
    name: 'when source.namespace notValues: always match',
    rule: { when: [{ key: 'source.namespace', notValues: ['evil'] }] },
    allow: [{}],
    deny: [],
  },
  {
    name: 'when request.auth.principal',
    rule: {
      when: [
        {
          key: 'request.auth.principal',
          values: ['https://issuer.example.com/*'],
          notValues: ['https://issuer.example.com/eve'],
        },
      ],
    },
    allow: [{ auth: anyJwt }],
    deny: [{}, { auth: jwt('https://issuer.example.com', 'eve') }, { auth: jwt('https://other', 'alice') }],
  },
  {
    name: 'when request.auth.audiences and presenter (string or list)',
    rule: {
      when: [
        { key: 'request.auth.audiences', values: ['api', 'web*'] },
        { key: 'request.auth.presenter', values: ['client-1'] },
      ],
    },
    allow: [
      { auth: jwt('i', 's', { aud: 'api', azp: 'client-1' }) },
      { auth: jwt('i', 's', { aud: ['x', 'webapp'], azp: 'client-1' }) },
    ],
    deny: [{ auth: jwt('i', 's', { aud: 'other', azp: 'client-1' }) }, { auth: jwt('i', 's', { aud: 'api' }) }, {}],
  },
  {
    name: 'when request.auth.claims: strings, lists, nested, non-strings never match',
    rule: {
      when: [
        { key: 'request.auth.claims[groups]', values: ['admins'] },
        { key: 'request.auth.claims[realm_access][roles]', values: ['ops*'] },
      ],
    },
    allow: [
      { auth: jwt('i', 's', { groups: ['dev', 'admins'], realm_access: { roles: ['opsadmin'] } }) },
      { auth: jwt('i', 's', { groups: 'admins', realm_access: { roles: 'ops' } }) },
    ],
    deny: [
      { auth: jwt('i', 's', { groups: ['dev'], realm_access: { roles: ['ops'] } }) },
      { auth: jwt('i', 's', { groups: ['admins'] }) },
      { auth: jwt('i', 's', { groups: ['admins'], realm_access: { roles: [1] } }) },
      { auth: jwt('i', 's', { groups: true, realm_access: { roles: ['ops'] } }) },
      {},
    ],
  },
  {
    name: 'when request.auth.claims[scope]: space-delimited, matched per scope',
    rule: { when: [{ key: 'request.auth.claims[scope]', values: ['write'] }] },
    allow: [{ auth: jwt('i', 's', { scope: 'read write' }) }],
    deny: [{ auth: jwt('i', 's', { scope: 'read' }) }, { auth: jwt('i', 's', { other: 'write' }) }],
  },
  {
    name: 'when request.auth.claims notValues: an unauthenticated request has no claim',
    rule: { when: [{ key: 'request.auth.claims[role]', notValues: ['guest'] }] },
    allow: [{}, { auth: jwt('i', 's', { role: 'admin' }) }],
    deny: [{ auth: jwt('i', 's', { role: 'guest' }) }],
  },
  {
    name: 'when connection.sni: empty for plain HTTP',
    rule: { when: [{ key: 'connection.sni', notValues: ['*'] }] },
    allow: [{}],
    deny: [],
  },
];

for (const c of cases) {
  test(`ALLOW ${c.name}`, () => {
    const p = [policy('p', 'ALLOW', [c.rule])];
    for (const req of c.allow) assert.equal(allowed(p, req), true, `should allow ${JSON.stringify(req)}`);
    for (const req of c.deny) {
      const r = run(p, req);
      assert.equal(r.allowed, false, `should deny ${JSON.stringify(req)}`);
      assert.equal(r.details, 'rbac_access_denied_matched_policy[none]');
    }
  });
  // The same rule in a DENY policy denies exactly what the ALLOW policy allowed.
  test(`DENY ${c.name}`, () => {
    const p = [policy('p', 'DENY', [c.rule])];
    for (const req of c.allow) {
      const r = run(p, req);
      assert.equal(r.allowed, false, `should deny ${JSON.stringify(req)}`);
      assert.equal(r.details, 'rbac_access_denied_matched_policy[ns[foo]-policy[p]-rule[0]]');
    }
    for (const req of c.deny) assert.equal(allowed(p, req), true, `should allow ${JSON.stringify(req)}`);
  });
  test(`AUDIT ${c.name}`, () => {
    const p = [policy('p', 'AUDIT', [c.rule])];
    for (const req of c.allow) {
      const r = run(p, req);
      assert.equal(r.allowed, true);
      assert.ok(
        r.logs.some((l) => l.policy === 'foo/p'),
        `should audit ${JSON.stringify(req)}`,
      );
    }
    for (const req of c.deny) {
      const r = run(p, req);
      assert.equal(r.allowed, true);
      assert.ok(!r.logs.some((l) => l.policy === 'foo/p'), `should not audit ${JSON.stringify(req)}`);
    }
  });
}

test('path templates compile to anchored regexes once', () => {
  assert.equal(pathTemplate('/a/{*}/b').source, "^\\/a\\/[a-zA-Z0-9\\-._~%!$&'()+,;:@]+\\/b$".replace(/\\\//g, '\\/'));
  assert.ok(pathTemplate('/a.b/{**}').test('/a.b/x/y'));
  assert.ok(!pathTemplate('/a.b/{**}').test('/aXb/x'));
});
