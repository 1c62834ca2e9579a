// The istio.authn filter driven through a real FilterManager: real keys (RS256, ES256, EdDSA,
// HS256), real signatures, and real JWKS servers on port 0 for jwksUri.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { exportJWK, generateKeyPair, generateSecret, type JWK, SignJWT } from 'jose';
import pino from 'pino';
import type { JWTRule, RequestAuthenticationSpec, Resource } from '../../src/config/types.ts';
import { AuthnFilterFactory, type AuthnFilterOptions } from '../../src/filters/authn/authn-filter.ts';
import { parseJwt } from '../../src/filters/authn/jwt.ts';
import { type FilterCallbacks, type FilterFactory, HeadersStatus } from '../../src/pipeline/filter.ts';
import { type DownstreamSink, FilterManager } from '../../src/pipeline/filter-manager.ts';
import { HeaderMap } from '../../src/pipeline/headers.ts';
import { HttpStream, newStreamInfo } from '../../src/pipeline/stream.ts';

const ISS = 'https://issuer.example.com';
const now = () => Math.floor(Date.now() / 1000);

// ---- keys ----

type KeyPair = Awaited<ReturnType<typeof generateKeyPair>>;
interface Signer {
  alg: string;
  kid?: string;
  key: KeyPair['privateKey'] | Uint8Array;
  jwk: JWK;
}

async function asymmetric(alg: 'RS256' | 'ES256' | 'EdDSA', kid: string | undefined): Promise<Signer> {
  const pair = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(pair.publicKey);
  if (kid !== undefined) jwk.kid = kid;
  jwk.alg = alg;
  return { alg, kid, key: pair.privateKey, jwk };
}

async function hmac(kid: string): Promise<Signer> {
  const secret = await generateSecret('HS256', { extractable: true });
  const jwk = await exportJWK(secret);
  jwk.kid = kid;
  jwk.alg = 'HS256';
  return { alg: 'HS256', kid, key: secret, jwk };
}

const rsa = await asymmetric('RS256', 'rsa-1');
const ec = await asymmetric('ES256', 'ec-1');
const ed = await asymmetric('EdDSA', 'ed-1');
const hs = await hmac('hs-1');
/** Same kid as `rsa`, different key: a forged signature. */
const rsaImpostor = await asymmetric('RS256', 'rsa-1');
const rsaRotated = await asymmetric('RS256', 'rsa-2');
const rsaNew = await asymmetric('RS256', 'rsa-3');

const jwks = (...signers: Signer[]) => JSON.stringify({ keys: signers.map((s) => s.jwk) });

function sign(signer: Signer, claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}) {
  const jwt = new SignJWT({ iss: ISS, sub: 'alice', exp: now() + 600, ...claims }).setProtectedHeader({
    alg: signer.alg,
    ...(signer.kid !== undefined ? { kid: signer.kid } : {}),
    ...header,
  });
  return jwt.sign(signer.key as Parameters<SignJWT['sign']>[0]);
}

// ---- config ----

function rule(partial: Partial<JWTRule> = {}): JWTRule {
  return {
    issuer: ISS,
    audiences: [],
    fromHeaders: [],
    fromParams: [],
    fromCookies: [],
    outputClaimToHeaders: [],
    forwardOriginalToken: false,
    ...partial,
  };
}

function policy(...jwtRules: JWTRule[]): Resource<RequestAuthenticationSpec> {
  return {
    apiVersion: 'security.istio.io/v1',
    kind: 'RequestAuthentication',
    metadata: { name: 'jwt', namespace: 'istio-system', labels: {}, annotations: {} },
    spec: { jwtRules },
    file: 'test.yaml',
    line: 1,
    col: 1,
    dir: '/',
  };
}

interface Logs {
  lines: Record<string, unknown>[];
  logger: AuthnFilterOptions['logger'];
}
function logs(): Logs {
  const lines: Record<string, unknown>[] = [];
  return {
    lines,
    logger: pino({ level: 'debug', base: undefined }, { write: (s: string) => lines.push(JSON.parse(s)) }),
  };
}

const factories: AuthnFilterFactory[] = [];
after(() => {
  for (const f of factories) f.close();
});
function authn(rules: JWTRule[], options: Partial<AuthnFilterOptions> = {}): AuthnFilterFactory {
  const f = new AuthnFilterFactory([policy(...rules)], { logger: pino({ level: 'silent' }), ...options });
  factories.push(f);
  return f;
}

// ---- driving a stream ----

interface Result {
  /** 0 when the request went upstream. */
  status: number;
  body: string;
  reply: HeaderMap | undefined;
  /** What the router received. */
  upstream: HeaderMap | undefined;
  stream: HttpStream;
  /** decodeHeaders answered synchronously (Continue). */
  sync: boolean;
}

/** A filter after authn that records whether the request got to it (and when). */
function probe(seen: { at: number }): FilterFactory {
  return {
    name: 'probe',
    create: (_cb: FilterCallbacks) => ({
      decodeHeaders: () => {
        seen.at++;
        return HeadersStatus.Continue;
      },
    }),
  };
}

function send(
  factory: AuthnFilterFactory,
  path: string,
  extra: [string, string][] = [],
  options: { method?: string; abortAfterHeaders?: boolean } = {},
): Promise<Result> {
  return new Promise((resolve) => {
    const headers = new HeaderMap([
      [':authority', 'api.example.com'],
      [':path', path],
      [':method', options.method ?? 'GET'],
      [':scheme', 'http'],
      ...extra,
    ]);
    const stream = new HttpStream(
      headers,
      newStreamInfo({
        requestId: 'req-1',
        protocol: 'HTTP/1.1',
        downstreamRemoteAddress: '127.0.0.1',
        downstreamRemotePort: 40000,
        downstreamLocalAddress: '127.0.0.1',
        downstreamLocalPort: 8080,
        connectionId: 1,
      }),
    );
    const seen = { at: 0 };
    const result: Result = { status: 0, body: '', reply: undefined, upstream: undefined, stream, sync: false };
    const chunks: Buffer[] = [];
    const sink: DownstreamSink = {
      writeHeaders(status, h, end) {
        result.status = status;
        result.reply = h;
        if (end) resolve(result);
      },
      writeData(chunk, end) {
        chunks.push(Buffer.from(chunk));
        if (end) {
          result.body = Buffer.concat(chunks).toString();
          resolve(result);
        }
      },
      writeTrailers() {},
      reset() {},
    };
    const manager = new FilterManager(
      stream,
      [factory, probe(seen)],
      sink,
      () => ({
        sendHeaders(h) {
          result.upstream = h;
          resolve(result);
        },
        sendData() {},
        sendTrailers() {},
        abort() {},
      }),
      { requestBufferLimit: 1 << 20, responseBufferLimit: 1 << 20 },
    );
    manager.decodeHeaders(true);
    result.sync = seen.at === 1;
    if (options.abortAfterHeaders) {
      manager.downstreamAborted();
      // Give the verification time to finish; nothing may happen afterwards.
      setTimeout(() => resolve(result), 300);
    }
  });
}

const bearer = (token: string): [string, string] => ['authorization', `Bearer ${token}`];

async function rejected(result: Result, status: number, message: string) {
  assert.equal(result.upstream, undefined, 'the request must not reach the upstream');
  assert.equal(result.status, status);
  assert.equal(result.body, message);
  assert.equal(
    result.reply?.get('www-authenticate'),
    `Bearer realm="http://api.example.com${result.stream.requestHeaders.get(':path')}", error="invalid_token"`,
  );
  assert.equal(result.stream.info.responseCodeDetails, `jwt_authn_access_denied{${message.replace(/ /g, '_')}}`);
  assert.equal(result.stream.auth, undefined);
}

// ---- JWKS servers ----

interface JwksServer {
  url: string;
  hits: string[];
  /** What the server answers now. */
  respond: (req: http.IncomingMessage, res: http.ServerResponse) => void;
  close(): Promise<void>;
}

async function jwksServer(body: string): Promise<JwksServer> {
  const hits: string[] = [];
  const srv: JwksServer = {
    url: '',
    hits,
    respond: (_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(body);
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  const server = http.createServer((req, res) => {
    hits.push(req.url ?? '');
    srv.respond(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  srv.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return srv;
}

const servers: JwksServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});
async function serve(body: string): Promise<JwksServer> {
  const s = await jwksServer(body);
  servers.push(s);
  return s;
}

// ======================================================================================

describe('the verification matrix (inline JWKS)', () => {
  const f = authn([rule({ jwks: jwks(rsa, ec, ed, hs) })]);

  test('a valid RS256 token passes, sets stream.auth and is removed before the upstream', async () => {
    const token = await sign(rsa, { aud: 'api', azp: 'web', scope: 'read write' });
    const r = await send(f, '/get', [bearer(token)]);
    assert.ok(r.upstream, `expected the request upstream, got ${r.status} ${r.body}`);
    assert.equal(r.sync, false, 'verification is asynchronous');
    assert.equal(r.upstream.get('authorization'), undefined);
    assert.deepEqual(
      { ...r.stream.auth, claims: undefined },
      {
        principal: `${ISS}/alice`,
        issuer: ISS,
        subject: 'alice',
        audiences: ['api'],
        presenter: 'web',
        claims: undefined,
      },
    );
    assert.deepEqual(r.stream.auth?.claims.scope, ['read', 'write'], 'scope split as Istio normalizes it');
    assert.equal(r.stream.auth?.claims.azp, 'web');
  });

  for (const signer of [ec, ed, hs]) {
    test(`a valid ${signer.alg} token passes`, async () => {
      const r = await send(f, '/get', [bearer(await sign(signer))]);
      assert.ok(r.upstream, `${r.status} ${r.body}`);
      assert.equal(r.stream.auth?.principal, `${ISS}/alice`);
    });
  }

  test('no token at all: continues at once, unauthenticated', async () => {
    const r = await send(f, '/get');
    assert.ok(r.upstream);
    assert.equal(r.sync, true);
    assert.equal(r.stream.auth, undefined);
  });

  test('an Authorization header of another scheme is no token', async () => {
    const r = await send(f, '/get', [['authorization', 'Basic YWxpY2U6c2VjcmV0']]);
    assert.ok(r.upstream);
    assert.equal(r.sync, true);
    assert.equal(r.upstream.get('authorization'), 'Basic YWxpY2U6c2VjcmV0');
  });

  test('expired (beyond the 60 s skew): 401 "Jwt is expired"', async () => {
    const r = await send(f, '/get?x=1', [bearer(await sign(rsa, { exp: now() - 120 }))]);
    await rejected(r, 401, 'Jwt is expired');
    assert.equal(r.reply?.get('content-type'), 'text/plain');
  });

  test('expired within the 60 s clock skew still passes', async () => {
    const r = await send(f, '/get', [bearer(await sign(rsa, { exp: now() - 30 }))]);
    assert.ok(r.upstream, `${r.status} ${r.body}`);
  });

  test('not yet valid (nbf beyond the skew): 401 "Jwt not yet valid"', async () => {
    await rejected(await send(f, '/get', [bearer(await sign(rsa, { nbf: now() + 300 }))]), 401, 'Jwt not yet valid');
    const within = await send(f, '/get', [bearer(await sign(rsa, { nbf: now() + 30 }))]);
    assert.ok(within.upstream);
  });

  test('a token without exp does not expire (as Envoy)', async () => {
    const r = await send(f, '/get', [bearer(await sign(rsa, { exp: undefined }))]);
    assert.ok(r.upstream, `${r.status} ${r.body}`);
  });

  test('another issuer: 401 "Jwt issuer is not configured"', async () => {
    const r = await send(f, '/get', [bearer(await sign(rsa, { iss: 'https://evil.example.com' }))]);
    await rejected(r, 401, 'Jwt issuer is not configured');
  });

  test('a signature by another key with the same kid: 401 "Jwt verification fails"', async () => {
    await rejected(await send(f, '/get', [bearer(await sign(rsaImpostor))]), 401, 'Jwt verification fails');
  });

  test('a tampered payload: 401 "Jwt verification fails"', async () => {
    const [h, , s] = (await sign(rsa)).split('.');
    const payload = Buffer.from(JSON.stringify({ iss: ISS, sub: 'admin', exp: now() + 600 })).toString('base64url');
    await rejected(await send(f, '/get', [bearer(`${h}.${payload}.${s}`)]), 401, 'Jwt verification fails');
  });

  test('an unknown kid with an inline JWKS: 401 "Jwks doesn\'t have key to match kid or alg from Jwt"', async () => {
    await rejected(
      await send(f, '/get', [bearer(await sign(rsaRotated))]),
      401,
      "Jwks doesn't have key to match kid or alg from Jwt",
    );
  });

  test('HS256 signed with the RSA public key (algorithm confusion) is refused', async () => {
    const secret = new TextEncoder().encode(JSON.stringify(rsa.jwk));
    const forged = await new SignJWT({ iss: ISS, sub: 'alice' })
      .setProtectedHeader({ alg: 'HS256', kid: 'rsa-1' })
      .sign(secret);
    await rejected(await send(f, '/get', [bearer(forged)]), 401, "Jwks doesn't have key to match kid or alg from Jwt");
  });

  const malformed: [string, string][] = [
    ['abc', 'Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections'],
    ['a.b', 'Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections'],
    ['a.b.c', 'Jwt header is an invalid Base64url encoded'],
    [`${b64('not json')}.e30.c2ln`, 'Jwt header is an invalid JSON'],
    [`${b64('{"typ":"JWT"}')}.e30.c2ln`, 'Jwt header [alg] field is required and must be a string'],
    [`${b64('{"alg":"none"}')}.e30.c2ln`, 'Jwt header [alg] is not supported'],
    [`${b64('{"alg":"RS256","kid":7}')}.e30.c2ln`, 'Jwt header [kid] field is not a string'],
    [`${b64('{"alg":"RS256"}')}.${b64('[1]')}.c2ln`, 'Jwt payload is an invalid JSON'],
    [`${b64('{"alg":"RS256"}')}.${b64('{"exp":"soon"}')}.c2ln`, 'Jwt payload [exp] field is not an integer'],
    [`${b64('{"alg":"RS256"}')}.${b64('{"aud":[1]}')}.c2ln`, 'Jwt payload [aud] field is not a string or string list'],
    [`${b64('{"alg":"RS256"}')}.e30.c2l*`, 'Jwt signature is an invalid Base64url encoded'],
  ];
  for (const [token, message] of malformed) {
    test(`malformed ${JSON.stringify(token.slice(0, 24))}: 401 "${message}"`, async () => {
      await rejected(await send(f, '/get', [bearer(token)]), 401, message);
    });
  }

  test('EdDSA with a signature of the wrong length: 401 "Jwt ED25519 signature is wrong length"', async () => {
    const [h, p] = (await sign(ed)).split('.');
    await rejected(
      await send(f, '/get', [bearer(`${h}.${p}.${b64('short')}`)]),
      401,
      'Jwt ED25519 signature is wrong length',
    );
  });

  test('a stream reset while verifying gets neither a reply nor an upstream request', async () => {
    const r = await send(f, '/get', [bearer(await sign(rsa))], { abortAfterHeaders: true });
    assert.equal(r.upstream, undefined);
    assert.equal(r.status, 0);
  });

  test('a CORS preflight is not checked (istiod sets bypass_cors_preflight)', async () => {
    const r = await send(
      f,
      '/get',
      [bearer('garbage'), ['origin', 'https://app'], ['access-control-request-method', 'GET']],
      {
        method: 'OPTIONS',
      },
    );
    assert.ok(r.upstream);
    assert.equal(r.sync, true);
  });
});

function b64(s: string): string {
  return Buffer.from(s).toString('base64url');
}

describe('JWKS documents (jwt_verify_lib rules)', () => {
  test('unusable keys are skipped; an EC key without crv or alg is taken as P-256', async () => {
    const { crv: _crv, alg: _alg, ...bare } = ec.jwk;
    const doc = JSON.stringify({
      keys: [
        { kty: 'RSA', kid: 'broken' },
        'not a key',
        { kty: 'XYZ' },
        { kty: 'EC', alg: 'ES384', crv: 'P-256' },
        bare,
      ],
    });
    const f = authn([rule({ jwks: doc })]);
    const r = await send(f, '/get', [bearer(await sign(ec))]);
    assert.ok(r.upstream, `${r.status} ${r.body}`);
  });

  test('a key without kid verifies tokens with any kid; a token without kid tries every key', async () => {
    const { kid: _kid, ...noKid } = rsa.jwk;
    const f = authn([rule({ jwks: JSON.stringify({ keys: [ec.jwk, noKid] }) })]);
    assert.ok((await send(f, '/get', [bearer(await sign(rsa))])).upstream);
    assert.ok((await send(f, '/get', [bearer(await sign({ ...rsa, kid: undefined }))])).upstream);
  });

  for (const [what, doc] of [
    ['not JSON', 'nope'],
    ['no keys field', '{}'],
    ['keys not a list', '{"keys": 1}'],
    ['no usable key', '{"keys": [{"kty": "RSA"}]}'],
  ]) {
    test(`an inline JWKS with ${what}: 401 "Jwks doesn't have any valid public key"`, async () => {
      const f = authn([rule({ jwks: doc })]);
      await rejected(await send(f, '/get', [bearer(await sign(rsa))]), 401, "Jwks doesn't have any valid public key");
    });
  }
});

describe('audiences', () => {
  const f = authn([rule({ jwks: jwks(rsa), audiences: ['https://api.example.com/', 'other'] })]);

  test('a token for another audience: 403 "Audiences in Jwt are not allowed" (Envoy answers 403 here)', async () => {
    await rejected(
      await send(f, '/get', [bearer(await sign(rsa, { aud: 'billing' }))]),
      403,
      'Audiences in Jwt are not allowed',
    );
  });

  test('a token without aud is refused when audiences are listed', async () => {
    await rejected(await send(f, '/get', [bearer(await sign(rsa))]), 403, 'Audiences in Jwt are not allowed');
  });

  test('one matching audience is enough; scheme and trailing slash do not count (jwt_verify_lib)', async () => {
    for (const aud of [['billing', 'api.example.com'], 'http://api.example.com', 'other/']) {
      const r = await send(f, '/get', [bearer(await sign(rsa, { aud }))]);
      assert.ok(r.upstream, `aud ${JSON.stringify(aud)}: ${r.status} ${r.body}`);
    }
  });
});

describe('token locations', () => {
  test('default locations: Authorization Bearer and ?access_token=, which is removed from the path', async () => {
    const f = authn([rule({ jwks: jwks(rsa) })]);
    const token = await sign(rsa);
    const r = await send(f, `/get?a=1&access_token=${token}&b=2`);
    assert.ok(r.upstream, `${r.status} ${r.body}`);
    assert.equal(r.upstream.get(':path'), '/get?a=1&b=2');
    assert.equal(r.stream.auth?.subject, 'alice');
    const only = await send(f, `/get?access_token=${token}`);
    assert.equal(only.upstream?.get(':path'), '/get');
    const bad = await send(f, '/get?access_token=x.y.z');
    await rejected(bad, 401, 'Jwt header is an invalid Base64url encoded');
  });

  test('the Bearer prefix may be anywhere in the value; the token starts at the next base64url character', async () => {
    const f = authn([rule({ jwks: jwks(rsa) })]);
    const r = await send(f, '/get', [['authorization', `Bearer   ${await sign(rsa)}`]]);
    assert.ok(r.upstream, `${r.status} ${r.body}`);
  });

  test('a custom header with a prefix; the default locations are then not read', async () => {
    const f = authn([rule({ jwks: jwks(rsa), fromHeaders: [{ name: 'X-Jwt-Assertion', prefix: 'Token ' }] })]);
    const token = await sign(rsa);
    const r = await send(f, '/get', [['x-jwt-assertion', `Token ${token}`]]);
    assert.ok(r.upstream, `${r.status} ${r.body}`);
    assert.equal(r.upstream.get('x-jwt-assertion'), undefined, 'removed');
    const ignored = await send(f, '/get', [bearer('garbage')]);
    assert.ok(ignored.upstream, 'Authorization is not a location of this rule');
    assert.equal(ignored.sync, true);
    assert.equal(ignored.stream.auth, undefined);
    const noPrefix = await send(f, '/get', [['x-jwt-assertion', token]]);
    assert.ok(noPrefix.upstream);
    assert.equal(noPrefix.stream.auth, undefined, 'a value without the prefix holds no token');
  });

  test('a header without a prefix takes the whole value', async () => {
    const f = authn([rule({ jwks: jwks(rsa), fromHeaders: [{ name: 'x-token' }] })]);
    const r = await send(f, '/get', [['x-token', await sign(rsa)]]);
    assert.ok(r.upstream, `${r.status} ${r.body}`);
  });

  test('fromParams only: ?token= is read, Authorization is not', async () => {
    const f = authn([rule({ jwks: jwks(rsa), fromParams: ['token'] })]);
    const token = await sign(rsa);
    const r = await send(f, `/get?token=${encodeURIComponent(token)}`);
    assert.ok(r.upstream, `${r.status} ${r.body}`);
    assert.equal(r.upstream.get(':path'), '/get');
    const ignored = await send(f, '/get', [bearer('garbage')]);
    assert.equal(ignored.sync, true);
    assert.ok(ignored.upstream);
  });

  test('a cookie: read (quotes removed) and left in place, as Envoy', async () => {
    const f = authn([rule({ jwks: jwks(rsa), fromCookies: ['session'] })]);
    const token = await sign(rsa);
    const r = await send(f, '/get', [['cookie', `theme=dark; session="${token}"; x=y`]]);
    assert.ok(r.upstream, `${r.status} ${r.body}`);
    assert.equal(r.stream.auth?.subject, 'alice');
    assert.match(r.upstream.get('cookie') ?? '', /session=/);
    await rejected(
      await send(f, '/get', [['cookie', 'session=garbage']]),
      401,
      'Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections',
    );
  });

  test('forwardOriginalToken keeps the token', async () => {
    const f = authn([rule({ jwks: jwks(rsa), forwardOriginalToken: true })]);
    const token = await sign(rsa);
    const r = await send(f, `/get?access_token=${token}`, [bearer(token)]);
    assert.ok(r.upstream, `${r.status} ${r.body}`);
    assert.equal(r.upstream.get('authorization'), `Bearer ${token}`);
    assert.equal(r.upstream.get(':path'), `/get?access_token=${token}`);
  });

  test('every token found must be valid: a good header token and a bad query token fail', async () => {
    const f = authn([rule({ jwks: jwks(rsa) })]);
    const r = await send(f, `/get?access_token=${await sign(rsa, { exp: now() - 600 })}`, [bearer(await sign(rsa))]);
    assert.equal(r.status, 401);
    assert.equal(r.body, 'Jwt is expired');
  });
});

describe('several rules (issuers)', () => {
  const ISS2 = 'https://other.example.com';

  test('tokens in a shared location are matched to a rule by iss', async () => {
    const f = authn([rule({ issuer: ISS2, jwks: jwks(ec) }), rule({ jwks: jwks(rsa) })]);
    const one = await send(f, '/get', [bearer(await sign(rsa))]);
    assert.equal(one.stream.auth?.issuer, ISS, `${one.status} ${one.body}`);
    const two = await send(f, '/get', [bearer(await sign(ec, { iss: ISS2, sub: 'bob' }))]);
    assert.equal(two.stream.auth?.principal, `${ISS2}/bob`, `${two.status} ${two.body}`);
    await rejected(
      await send(f, '/get', [bearer(await sign(rsa, { iss: 'https://third.example.com' }))]),
      401,
      'Jwt issuer is not configured',
    );
    // The real error wins over the other rule's "issuer is not configured".
    await rejected(
      await send(f, '/get', [bearer(await sign(ec, { iss: ISS2, exp: now() - 600 }))]),
      401,
      'Jwt is expired',
    );
  });

  test('rules with their own headers: one valid token is enough', async () => {
    const f = authn([
      rule({ jwks: jwks(rsa), fromHeaders: [{ name: 'x-a' }] }),
      rule({ issuer: ISS2, jwks: jwks(ec), fromHeaders: [{ name: 'x-b' }] }),
    ]);
    const r = await send(f, '/get', [['x-b', await sign(ec, { iss: ISS2 })]]);
    assert.equal(r.stream.auth?.issuer, ISS2, `${r.status} ${r.body}`);
    const wrongPlace = await send(f, '/get', [['x-a', await sign(ec, { iss: ISS2 })]]);
    await rejected(wrongPlace, 401, 'Jwt issuer is not configured');
  });

  test('rules from several policies are merged', async () => {
    const f = new AuthnFilterFactory(
      [policy(rule({ jwks: jwks(rsa) })), policy(rule({ issuer: ISS2, jwks: jwks(ec) }))],
      {
        logger: pino({ level: 'silent' }),
      },
    );
    factories.push(f);
    const r = await send(f, '/get', [bearer(await sign(ec, { iss: ISS2 }))]);
    assert.equal(r.stream.auth?.issuer, ISS2, `${r.status} ${r.body}`);
  });
});

describe('outputs', () => {
  const f = authn([
    rule({
      jwks: jwks(rsa),
      outputPayloadToHeader: 'X-Jwt-Payload',
      outputClaimToHeaders: [
        { header: 'x-sub', claim: 'sub' },
        { header: 'x-team', claim: 'org.team' },
        { header: 'x-level', claim: 'level' },
        { header: 'x-ratio', claim: 'ratio' },
        { header: 'x-admin', claim: 'admin' },
        { header: 'x-groups', claim: 'groups' },
        { header: 'x-missing', claim: 'nope' },
        { header: 'x-deep-missing', claim: 'org.nope' },
      ],
      spaceDelimitedClaims: ['roles'],
    }),
  ]);

  test('the payload (base64url as in the token) and claims reach the upstream; the token does not', async () => {
    const claims = {
      org: { team: 'payments' },
      level: 3,
      ratio: 1.5,
      admin: false,
      groups: ['a', 'b'],
      roles: 'x y',
    };
    const token = await sign(rsa, claims);
    const r = await send(f, '/get', [bearer(token)]);
    assert.ok(r.upstream, `${r.status} ${r.body}`);
    const up = r.upstream;
    assert.equal(up.get('x-jwt-payload'), token.split('.')[1]);
    assert.deepEqual(JSON.parse(Buffer.from(up.get('x-jwt-payload')!, 'base64url').toString()), {
      iss: ISS,
      sub: 'alice',
      exp: (parseJwt(token) as { exp: number }).exp,
      ...claims,
    });
    assert.equal(up.get('x-sub'), 'alice');
    assert.equal(up.get('x-team'), 'payments');
    assert.equal(up.get('x-level'), '3');
    assert.equal(up.get('x-ratio'), '1.500000');
    assert.equal(up.get('x-admin'), 'false');
    assert.equal(Buffer.from(up.get('x-groups')!, 'base64').toString(), '["a","b"]');
    assert.equal(up.has('x-missing'), false);
    assert.equal(up.has('x-deep-missing'), false);
    assert.equal(up.has('authorization'), false);
    assert.deepEqual(r.stream.auth?.claims.roles, ['x', 'y']);
  });

  test('output headers sent by the client are removed, with or without a token', async () => {
    const forged: [string, string][] = [
      ['x-sub', 'root'],
      ['x-jwt-payload', 'e30'],
    ];
    const none = await send(f, '/get', forged);
    assert.ok(none.upstream);
    assert.equal(none.upstream.has('x-sub'), false);
    assert.equal(none.upstream.has('x-jwt-payload'), false);
    const withToken = await send(f, '/get', [...forged, bearer(await sign(rsa))]);
    assert.deepEqual(withToken.upstream?.getAll('x-sub'), ['alice']);
  });
});

describe('jwksUri', () => {
  test('fetched once at construction, cached for later requests', async () => {
    const srv = await serve(jwks(rsa));
    const f = authn([rule({ jwksUri: `${srv.url}/jwks` })]);
    await f.ready();
    assert.deepEqual(srv.hits, ['/jwks']);
    for (let i = 0; i < 3; i++) {
      const r = await send(f, '/get', [bearer(await sign(rsa))]);
      assert.ok(r.upstream, `${r.status} ${r.body}`);
    }
    assert.equal(srv.hits.length, 1);
  });

  test('a request arriving before the first fetch completes waits for it', async () => {
    const srv = await serve(jwks(rsa));
    const base = srv.respond;
    srv.respond = (req, res) => setTimeout(() => base(req, res), 150);
    const f = authn([rule({ jwksUri: `${srv.url}/jwks` })]);
    const r = await send(f, '/get', [bearer(await sign(rsa))]);
    assert.ok(r.upstream, `${r.status} ${r.body}`);
    assert.equal(srv.hits.length, 1);
  });

  test('rules sharing a jwksUri share one fetch', async () => {
    const srv = await serve(jwks(rsa, ec));
    const f = authn([
      rule({ jwksUri: `${srv.url}/jwks` }),
      rule({ issuer: 'https://other.example.com', jwksUri: `${srv.url}/jwks` }),
    ]);
    await f.ready();
    assert.equal(srv.hits.length, 1);
  });

  test('an unknown kid fetches again (key rotation), then the cooldown stops further fetches', async () => {
    const srv = await serve(jwks(rsa));
    const f = authn([rule({ jwksUri: `${srv.url}/jwks` })], { jwks: { kidRefetchCooldownMs: 0 } });
    await f.ready();
    // Rotation: the server now also has rsa-2.
    srv.respond = (_req, res) => res.end(jwks(rsa, rsaRotated));
    const f2 = authn([rule({ jwksUri: `${srv.url}/jwks` })], { jwks: { kidRefetchCooldownMs: 60_000 } });
    await f2.ready();
    const hits = srv.hits.length;
    // f2 fetched after the rotation: rsa-2 is known, no refetch.
    assert.ok((await send(f2, '/get', [bearer(await sign(rsaRotated))])).upstream);
    assert.equal(srv.hits.length, hits);
    // f has the old set: an unknown kid makes it fetch again, and the token passes.
    const rotated = await send(f, '/get', [bearer(await sign(rsaRotated))]);
    assert.ok(rotated.upstream, `${rotated.status} ${rotated.body}`);
    assert.equal(srv.hits.length, hits + 1);
    // f2 fetched less than a cooldown ago: a token with yet another kid gets no fetch.
    srv.respond = (_req, res) => res.end(jwks(rsa, rsaRotated, rsaNew));
    for (let i = 0; i < 5; i++) {
      await rejected(
        await send(f2, '/get', [bearer(await sign(rsaNew))]),
        401,
        "Jwks doesn't have key to match kid or alg from Jwt",
      );
    }
    assert.equal(srv.hits.length, hits + 1, 'no fetch within the cooldown');
  });

  test('the kid cooldown runs out', async () => {
    const srv = await serve(jwks(rsa));
    const f = authn([rule({ jwksUri: `${srv.url}/jwks` })], { jwks: { kidRefetchCooldownMs: 200 } });
    await f.ready();
    srv.respond = (_req, res) => res.end(jwks(rsa, rsaRotated));
    const token = await sign(rsaRotated);
    assert.equal((await send(f, '/get', [bearer(token)])).status, 401);
    assert.equal(srv.hits.length, 1);
    await new Promise((r) => setTimeout(r, 250));
    const r = await send(f, '/get', [bearer(token)]);
    assert.ok(r.upstream, `${r.status} ${r.body}`);
    assert.equal(srv.hits.length, 2);
  });

  test('server failing: 401 "Jwks remote fetch is failed", logged once per failed fetch with the URI; recovers', async () => {
    const srv = await serve(jwks(rsa));
    srv.respond = (_req, res) => {
      res.statusCode = 500;
      res.end('oops');
    };
    const log = logs();
    const f = authn([rule({ jwksUri: `${srv.url}/jwks` })], { logger: log.logger, jwks: { failureRetryMs: 300 } });
    await f.ready();
    const token = await sign(rsa);
    for (let i = 0; i < 3; i++)
      await rejected(await send(f, '/get', [bearer(token)]), 401, 'Jwks remote fetch is failed');
    assert.equal(srv.hits.length, 1, 'no fetch per request within the retry interval');
    const warnings = log.lines.filter((l) => l.msg === 'JWKS fetch failed');
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]!.jwksUri, `${srv.url}/jwks`);
    assert.match(String(warnings[0]!.err), /HTTP 500/);
    // A request without a token is not affected.
    assert.ok((await send(f, '/get')).upstream);
    // After the retry interval a token makes it fetch again; the same failure is not warned again.
    await new Promise((r) => setTimeout(r, 350));
    await rejected(await send(f, '/get', [bearer(token)]), 401, 'Jwks remote fetch is failed');
    assert.equal(srv.hits.length, 2);
    assert.equal(log.lines.filter((l) => l.msg === 'JWKS fetch failed' && l.level === 40).length, 1);
    assert.equal(log.lines.filter((l) => l.msg === 'JWKS fetch failed').length, 2);
    srv.respond = (_req, res) => res.end(jwks(rsa));
    await new Promise((r) => setTimeout(r, 350));
    const ok = await send(f, '/get', [bearer(token)]);
    assert.ok(ok.upstream, `${ok.status} ${ok.body}`);
    assert.equal(srv.hits.length, 3);
    assert.ok(log.lines.some((l) => l.msg === 'JWKS fetch succeeded again after a failure'));
  });

  test('an invalid JWKS document counts as a failed fetch', async () => {
    const srv = await serve('{"nokeys": true}');
    const f = authn([rule({ jwksUri: `${srv.url}/jwks` })]);
    await f.ready();
    await rejected(await send(f, '/get', [bearer(await sign(rsa))]), 401, 'Jwks remote fetch is failed');
  });

  test('server down (connection refused): 401 "Jwks remote fetch is failed"', async () => {
    const srv = await jwksServer(jwks(rsa));
    const url = `${srv.url}/jwks`;
    await srv.close();
    const f = authn([rule({ jwksUri: url })]);
    await f.ready();
    await rejected(await send(f, '/get', [bearer(await sign(rsa))]), 401, 'Jwks remote fetch is failed');
  });

  test('the rule timeout bounds the fetch', async () => {
    const srv = await serve(jwks(rsa));
    srv.respond = () => {}; // never answers
    const f = authn([rule({ jwksUri: `${srv.url}/jwks`, timeout: '200ms' })]);
    const started = Date.now();
    await rejected(await send(f, '/get', [bearer(await sign(rsa))]), 401, 'Jwks remote fetch is failed');
    const took = Date.now() - started;
    assert.ok(took >= 150 && took < 2_000, `took ${took} ms`);
  });

  test('a failed refresh keeps the last good keys; the periodic refresh runs until close()', async () => {
    const srv = await serve(jwks(rsa));
    const f = authn([rule({ jwksUri: `${srv.url}/jwks` })], { jwks: { refreshMs: 100 } });
    await f.ready();
    srv.respond = (_req, res) => {
      res.statusCode = 503;
      res.end();
    };
    await new Promise((r) => setTimeout(r, 260));
    assert.ok(srv.hits.length >= 3, `${srv.hits.length} fetches`);
    const r = await send(f, '/get', [bearer(await sign(rsa))]);
    assert.ok(r.upstream, `${r.status} ${r.body}`);
    f.close();
    const after = srv.hits.length;
    await new Promise((r) => setTimeout(r, 250));
    assert.equal(srv.hits.length, after, 'no fetch after close()');
  });

  test('close() aborts a fetch under way; requests then fail', async () => {
    const srv = await serve(jwks(rsa));
    srv.respond = () => {}; // hangs
    const f = authn([rule({ jwksUri: `${srv.url}/jwks`, timeout: '30s' })]);
    const pending = send(f, '/get', [bearer(await sign(rsa))]);
    await new Promise((r) => setTimeout(r, 50));
    f.close();
    await rejected(await pending, 401, 'Jwks remote fetch is failed');
  });

  test('a stream reset while the JWKS is being fetched is left alone', async () => {
    const srv = await serve(jwks(rsa));
    const base = srv.respond;
    srv.respond = (req, res) => setTimeout(() => base(req, res), 100);
    const f = authn([rule({ jwksUri: `${srv.url}/jwks` })]);
    const r = await send(f, '/get', [bearer(await sign(rsa))], { abortAfterHeaders: true });
    assert.equal(r.upstream, undefined);
    assert.equal(r.status, 0);
  });

  test("neither jwks nor jwksUri: jwks_uri from the issuer's OpenID discovery document", async () => {
    const srv = await serve('');
    srv.respond = (req, res) => {
      if (req.url === '/.well-known/openid-configuration') res.end(JSON.stringify({ jwks_uri: `${srv.url}/keys` }));
      else if (req.url === '/keys') res.end(jwks(ec));
      else {
        res.statusCode = 404;
        res.end();
      }
    };
    const f = authn([rule({ issuer: srv.url })]);
    await f.ready();
    assert.deepEqual(srv.hits, ['/.well-known/openid-configuration', '/keys']);
    const r = await send(f, '/get', [bearer(await sign(ec, { iss: srv.url }))]);
    assert.equal(r.stream.auth?.issuer, srv.url, `${r.status} ${r.body}`);
  });
});
