// istio.authn through the real proxy: a RequestAuthentication YAML, a JWKS server on port 0 for
// jwksUri, and the embedded httpbin, whose /headers shows what reached the upstream.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { type RunningProxy, startProxy, tempConfig } from '../helpers/proxy.ts';
import { startEmbeddedHttpbin, type Upstream } from '../helpers/upstreams.ts';

const ISS = 'https://issuer.example.com';
const now = () => Math.floor(Date.now() / 1000);

const pair = await generateKeyPair('RS256', { extractable: true });
const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'RS256' };
const sign = (claims: Record<string, unknown>) =>
  new SignJWT({ iss: ISS, sub: 'alice', exp: now() + 600, ...claims })
    .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
    .sign(pair.privateKey);

let upstream: Upstream;
let jwks: http.Server;
let jwksHits = 0;
let proxy: RunningProxy;

before(async () => {
  upstream = await startEmbeddedHttpbin();
  jwks = http.createServer((_req, res) => {
    jwksHits++;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', () => r()));
  const jwksUri = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks`;
  const dir = tempConfig({
    'authn.yaml': `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata:
  name: jwt
  namespace: istio-system
spec:
  selector:
    matchLabels:
      istio: ingressgateway
  jwtRules:
  - issuer: ${ISS}
    jwksUri: ${jwksUri}
    audiences: [api]
    outputClaimToHeaders:
    - header: x-jwt-sub
      claim: sub
    - header: x-jwt-team
      claim: org.team
`,
  });
  proxy = await startProxy(['-c', dir, '--upstream', upstream.url]);
});

after(async () => {
  await proxy?.stop();
  jwks?.closeAllConnections();
  await new Promise<void>((r) => (jwks ? jwks.close(() => r()) : r()));
  await upstream?.close();
});

async function get(path: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${proxy.url}${path}`, { headers });
  const text = await res.text();
  return { res, text };
}

test('a valid token: 200, the claim headers reach the upstream and the token does not', async () => {
  const { res, text } = await get('/headers', {
    authorization: `Bearer ${await sign({ aud: 'api', org: { team: 'pay' } })}`,
  });
  assert.equal(res.status, 200, text);
  const headers = (JSON.parse(text) as { headers: Record<string, string[]> }).headers;
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  assert.deepEqual(lower['x-jwt-sub'], ['alice']);
  assert.deepEqual(lower['x-jwt-team'], ['pay']);
  assert.equal(lower.authorization, undefined);
  assert.equal(jwksHits, 1, 'the JWKS was fetched once');
});

test("an expired token: 401 with Envoy's body and www-authenticate", async () => {
  const { res, text } = await get('/headers?q=1', {
    authorization: `Bearer ${await sign({ aud: 'api', exp: now() - 600 })}`,
  });
  assert.equal(res.status, 401);
  assert.equal(text, 'Jwt is expired');
  assert.match(
    res.headers.get('www-authenticate') ?? '',
    /^Bearer realm="http:\/\/127\.0\.0\.1:\d+\/headers\?q=1", error="invalid_token"$/,
  );
  const logs = await proxy.accessLogs(2);
  assert.equal(logs.at(-1)?.response_code_details, 'jwt_authn_access_denied{Jwt_is_expired}');
});

test('no token: 200, unauthenticated; a forged claim header is dropped', async () => {
  const { res, text } = await get('/headers', { 'x-jwt-sub': 'root' });
  assert.equal(res.status, 200, text);
  const headers = (JSON.parse(text) as { headers: Record<string, string[]> }).headers;
  assert.equal(
    Object.keys(headers).find((k) => k.toLowerCase() === 'x-jwt-sub'),
    undefined,
  );
});
