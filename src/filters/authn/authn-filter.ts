// The built-in `istio.authn` filter: Istio's RequestAuthentication as the Envoy jwt_authn
// configuration istiod generates for it. Every JWTRule is a provider; the requirement is
// "any provider, or all of {provider or allow_missing}", so
//   - a request without a token in any rule's locations passes unauthenticated (stream.auth unset);
//   - a request passes when one rule verifies all the tokens found in its locations;
//   - otherwise it is rejected: 401 (403 for a disallowed audience, as Envoy) with Envoy's message
//     as the body and `www-authenticate: Bearer realm="<url>", error="invalid_token"`.
// Rules are taken in issuer order (istiod sorts them); a rule's tokens are checked last-found first,
// and a token's `iss` must be the rule's issuer ("Jwt issuer is not configured" otherwise).
// Verification is asynchronous (WebCrypto), so the filter stops the request headers and resumes
// the stream (or replies) when done; a stream that went away meanwhile is left alone.

import { parseDurationMs } from '../../config/duration.ts';
import type { JWTRule, RequestAuthenticationSpec, Resource } from '../../config/types.ts';
import type { Logger } from '../../observability/logger.ts';
import { type FilterCallbacks, type FilterFactory, HeadersStatus, type HttpFilter } from '../../pipeline/filter.ts';
import type { HeaderMap } from '../../pipeline/headers.ts';
import type { RequestAuth } from '../../pipeline/stream.ts';
import { type ExtractedToken, removeQueryParam, TokenExtractor } from './extract.ts';
import {
  DEFAULT_REMOTE_OPTIONS,
  InlineKeySource,
  type KeySet,
  type KeySource,
  type RemoteJwksOptions,
  RemoteKeySource,
} from './jwks.ts';
import { AudienceChecker, checkTime, claimAt, claimHeaderValue, type ParsedJwt, parseJwt } from './jwt.ts';
import { type AuthnStatus, rcDetails, Status } from './status.ts';

/** Istio's default JWKS fetch timeout. */
const DEFAULT_TIMEOUT_MS = 5_000;
/** Claims Istio always normalizes from space-delimited strings to lists. */
const DEFAULT_SPACE_DELIMITED = ['scope', 'permission'];
/** Envoy cuts the path in the realm to this length. */
const MAX_REALM_PATH = 256;

export interface AuthnFilterOptions {
  logger: Logger;
  /** Remote JWKS refresh, cooldown and size settings (defaults: 20 min, 30 s, 1 s, 1 MiB). */
  jwks?: Partial<Omit<RemoteJwksOptions, 'timeoutMs'>>;
}

interface CompiledRule {
  issuer: string;
  rule: JWTRule;
  extractor: TokenExtractor;
  audiences: AudienceChecker;
  keys: KeySource;
  spaceDelimited: string[];
  /** Where the rule's policy came from, for logs. */
  policy: string;
}

type Outcome = { ok: true; auth: RequestAuth | undefined } | { ok: false; status: AuthnStatus };

interface Cancel {
  cancelled: boolean;
}

export class AuthnFilterFactory implements FilterFactory {
  readonly name = 'istio.authn';
  readonly #rules: CompiledRule[];
  readonly #sources = new Map<string, KeySource>();
  /** Output headers of every rule: removed from incoming requests so that clients cannot forge them. */
  readonly #sanitize: string[];
  readonly #logger: Logger;

  constructor(policies: readonly Resource<RequestAuthenticationSpec>[], options: AuthnFilterOptions) {
    this.#logger = options.logger;
    const remote = { ...DEFAULT_REMOTE_OPTIONS, ...options.jwks };
    const rules: CompiledRule[] = [];
    for (const policy of policies) {
      const name = `${policy.metadata.namespace}/${policy.metadata.name}`;
      for (const rule of policy.spec.jwtRules) {
        rules.push({
          issuer: rule.issuer,
          rule,
          extractor: new TokenExtractor(rule),
          audiences: new AudienceChecker(rule.audiences),
          keys: this.#source(rule, remote),
          spaceDelimited: [...new Set([...(rule.spaceDelimitedClaims ?? []), ...DEFAULT_SPACE_DELIMITED])],
          policy: name,
        });
      }
    }
    // istiod sorts the merged rules by issuer (stable) before generating the providers.
    rules.sort((a, b) => (a.issuer < b.issuer ? -1 : a.issuer > b.issuer ? 1 : 0));
    this.#rules = rules;
    const sanitize = new Set<string>();
    for (const { rule } of rules) {
      if (rule.outputPayloadToHeader) sanitize.add(rule.outputPayloadToHeader.toLowerCase());
      for (const c of rule.outputClaimToHeaders) sanitize.add(c.header.toLowerCase());
    }
    this.#sanitize = [...sanitize];
  }

  #source(rule: JWTRule, remote: Omit<RemoteJwksOptions, 'timeoutMs'>): KeySource {
    if (rule.jwks !== undefined && rule.jwks !== '') return new InlineKeySource(rule.jwks);
    const timeoutMs = (rule.timeout !== undefined ? parseDurationMs(rule.timeout) : undefined) ?? DEFAULT_TIMEOUT_MS;
    const target = rule.jwksUri ? { uri: rule.jwksUri } : { issuer: rule.issuer };
    const key = `${'uri' in target ? `uri:${target.uri}` : `issuer:${target.issuer}`}|${timeoutMs}`;
    let source = this.#sources.get(key);
    if (!source) {
      source = new RemoteKeySource(
        target,
        { ...remote, timeoutMs: timeoutMs > 0 ? timeoutMs : DEFAULT_TIMEOUT_MS },
        this.#logger,
      );
      this.#sources.set(key, source);
    }
    return source;
  }

  /** Resolves once every remote key set has been fetched (or failed) once. */
  async ready(): Promise<void> {
    await Promise.all([...this.#sources.values()].map((s) => s.keys()));
  }

  create(callbacks: FilterCallbacks): HttpFilter {
    return new AuthnFilter(this, callbacks);
  }

  /** Stops refresh timers and aborts fetches under way. */
  close(): void {
    for (const s of this.#sources.values()) s.close();
  }

  get logger(): Logger {
    return this.#logger;
  }

  /** Called by the filter for each request's headers: false when nothing needs to be checked. */
  prepare(headers: HeaderMap): boolean {
    if (isCorsPreflight(headers)) return false;
    for (const h of this.#sanitize) headers.remove(h);
    return this.#rules.some((r) => r.extractor.extract(headers).length > 0);
  }

  /** Envoy's verifier tree, as istiod builds it, evaluated in order. */
  async authenticate(headers: HeaderMap, cancel: Cancel): Promise<Outcome> {
    const statuses: AuthnStatus[] = [];
    for (const rule of this.#rules) {
      // Extracted now, not up front: an earlier rule may have removed a token it verified.
      const tokens = rule.extractor.extract(headers);
      if (tokens.length === 0) {
        statuses.push(Status.JwtMissed);
        continue;
      }
      let status: AuthnStatus = Status.Ok;
      let auth: RequestAuth | undefined;
      // Envoy takes the tokens from the back of the list.
      for (let i = tokens.length - 1; i >= 0; i--) {
        const result = await this.#verify(rule, tokens[i]!, headers, cancel);
        if (cancel.cancelled) return { ok: false, status: Status.JwtVerificationFail };
        if (typeof result === 'string') {
          status = result;
          this.#logger.debug({ issuer: rule.issuer, policy: rule.policy, status }, 'JWT rejected');
          break;
        }
        auth = result;
      }
      if (status === Status.Ok) return { ok: true, auth };
      statuses.push(status);
    }
    if (statuses.every((s) => s === Status.JwtMissed)) return { ok: true, auth: undefined };
    // Envoy's RequireAny prefers real errors over "missing" and "unknown issuer".
    const real = statuses.find((s) => s !== Status.JwtMissed && s !== Status.JwtUnknownIssuer);
    return { ok: false, status: real ?? Status.JwtUnknownIssuer };
  }

  async #verify(
    rule: CompiledRule,
    extracted: ExtractedToken,
    headers: HeaderMap,
    cancel: Cancel,
  ): Promise<RequestAuth | AuthnStatus> {
    const jwt = parseJwt(extracted.token);
    if (typeof jwt === 'string') return jwt;
    // An empty issuer in a provider allows every issuer (Envoy's JwtIssuerChecker).
    if (rule.issuer !== '' && jwt.iss !== rule.issuer) return Status.JwtUnknownIssuer;
    const time = checkTime(jwt, Math.floor(Date.now() / 1000));
    if (time !== Status.Ok) return time;
    if (!rule.audiences.allows(jwt.audiences)) return Status.JwtAudienceNotAllowed;

    const keys = await rule.keys.keys();
    if (typeof keys === 'string') return keys;
    let status = await verifyWith(keys, jwt);
    if (status === Status.JwksKidAlgMismatch && jwt.kid !== '' && !keys.hasKid(jwt.kid) && !cancel.cancelled) {
      const fresh = await rule.keys.refetchForKid(jwt.kid);
      if (fresh) status = await verifyWith(fresh, jwt);
    }
    if (status !== Status.Ok) return status;
    if (cancel.cancelled) return Status.JwtVerificationFail;
    applyOutputs(rule.rule, jwt, extracted, headers);
    return requestAuth(jwt, rule.spaceDelimited);
  }
}

function verifyWith(keys: KeySet, jwt: ParsedJwt): Promise<AuthnStatus> {
  return keys.verify(jwt.token, jwt.kid, jwt.alg, jwt.signatureLength);
}

/** The headers Envoy adds for a good token, and the token removed unless forwarded. */
function applyOutputs(rule: JWTRule, jwt: ParsedJwt, extracted: ExtractedToken, headers: HeaderMap): void {
  if (rule.outputPayloadToHeader) headers.add(rule.outputPayloadToHeader.toLowerCase(), jwt.payloadB64);
  for (const { header, claim } of rule.outputClaimToHeaders) {
    const value = claimHeaderValue(claimAt(jwt.payload, claim));
    if (value !== '') headers.add(header.toLowerCase(), value);
  }
  if (rule.forwardOriginalToken) return;
  const loc = extracted.location;
  if (loc.kind === 'header') headers.remove(loc.name);
  else if (loc.kind === 'param') {
    const path = headers.get(':path');
    if (path !== undefined) headers.replace(':path', removeQueryParam(path, loc.name));
  }
  // Envoy leaves a token in a cookie where it is.
}

/** What authz and the Wasm properties see (request.auth.*); claims as Envoy's payload metadata. */
function requestAuth(jwt: ParsedJwt, spaceDelimited: readonly string[]): RequestAuth {
  const claims: Record<string, unknown> = { ...jwt.payload };
  for (const name of spaceDelimited) {
    const v = jwt.payload[name];
    if (typeof v !== 'string') continue;
    const list = v.split(' ').filter((s) => s !== '');
    if (list.length > 0) claims[name] = list;
  }
  const azp = jwt.payload.azp;
  return {
    principal: `${jwt.iss}/${jwt.sub}`,
    issuer: jwt.iss,
    subject: jwt.sub,
    audiences: jwt.audiences,
    presenter: typeof azp === 'string' ? azp : '',
    claims,
  };
}

function isCorsPreflight(headers: HeaderMap): boolean {
  // istiod sets bypass_cors_preflight.
  return (
    headers.get(':method') === 'OPTIONS' &&
    (headers.get('origin') ?? '') !== '' &&
    (headers.get('access-control-request-method') ?? '') !== ''
  );
}

/** Envoy's Http::Utility::buildOriginalUri with its 256-character path limit. */
function realm(headers: HeaderMap): string {
  const path = headers.get('x-envoy-original-path') ?? headers.get(':path');
  if (path === undefined) return '';
  return `${headers.get(':scheme') ?? 'http'}://${headers.get(':authority') ?? ''}${path.slice(0, MAX_REALM_PATH)}`;
}

class AuthnFilter implements HttpFilter {
  readonly #factory: AuthnFilterFactory;
  readonly #cb: FilterCallbacks;
  readonly #cancel: Cancel = { cancelled: false };

  constructor(factory: AuthnFilterFactory, callbacks: FilterCallbacks) {
    this.#factory = factory;
    this.#cb = callbacks;
  }

  decodeHeaders(headers: HeaderMap): (typeof HeadersStatus)[keyof typeof HeadersStatus] {
    if (!this.#factory.prepare(headers)) return HeadersStatus.Continue;
    // The realm is the URL as received, before a token in the query is removed.
    const uri = realm(headers);
    this.#factory.authenticate(headers, this.#cancel).then(
      (outcome) => this.#finish(outcome, uri),
      (err: unknown) => {
        this.#factory.logger.error({ err }, 'JWT authentication failed unexpectedly');
        this.#finish({ ok: false, status: Status.JwtVerificationFail }, uri);
      },
    );
    return HeadersStatus.StopIteration;
  }

  #finish(outcome: Outcome, uri: string): void {
    if (this.#cancel.cancelled) return;
    this.#cancel.cancelled = true;
    if (outcome.ok) {
      if (outcome.auth) this.#cb.stream.auth = outcome.auth;
      this.#cb.continueDecoding();
      return;
    }
    this.#cb.sendLocalReply({
      status: outcome.status === Status.JwtAudienceNotAllowed ? 403 : 401,
      body: outcome.status,
      headers: [['www-authenticate', `Bearer realm="${uri}", error="invalid_token"`]],
      details: rcDetails(outcome.status),
    });
  }

  onDestroy(): void {
    this.#cancel.cancelled = true;
  }
}
