// JSON Web Key Sets for the authn filter: parsing with the rules of Envoy's jwt_verify_lib (invalid
// keys are skipped; a set without a usable key is an error), key selection by kid and alg as Envoy
// does, signature checks through jose, and the sources a JWTRule names: inline `jwks`, a `jwksUri`
// fetched, cached and refreshed, or (neither given) the issuer's OpenID discovery document, as
// istiod resolves it.
import { type CryptoKey, compactVerify, importJWK, type JWK } from 'jose';
import type { Logger } from '../../observability/logger.ts';
import { type AuthnStatus, Status } from './status.ts';

const RSA_ALGS = new Set(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512']);
const EC_ALGS: Record<string, string> = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' };
const HMAC_ALGS = new Set(['HS256', 'HS384', 'HS512']);

/** One usable key of a set, with its imported forms per algorithm (imported on first use). */
export interface KeyEntry {
  readonly jwk: JWK;
  readonly kty: string;
  /** "" when the JWK has none. */
  readonly kid: string;
  /** "" when the JWK has none. */
  readonly alg: string;
  readonly crv: string;
  readonly imported: Map<string, Promise<CryptoKey | Uint8Array | undefined>>;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** Envoy's per-key checks (jwt_verify_lib extractJwk); a Status when the key is not usable. */
function checkJwk(k: Record<string, unknown>): AuthnStatus | undefined {
  if (!('kty' in k)) return Status.JwksMissingKty;
  const kty = str(k.kty);
  if (kty === undefined) return Status.JwksBadKty;
  const alg = str(k.alg) ?? '';
  switch (kty) {
    case 'RSA':
      if (alg !== '' && !alg.startsWith('RS') && !alg.startsWith('PS')) return Status.JwksRSAKeyBadAlg;
      if (!('n' in k)) return Status.JwksRSAKeyMissingN;
      if (str(k.n) === undefined) return Status.JwksRSAKeyBadN;
      if (!('e' in k)) return Status.JwksRSAKeyMissingE;
      if (str(k.e) === undefined) return Status.JwksRSAKeyBadE;
      return undefined;
    case 'EC': {
      if (alg !== '' && !alg.startsWith('ES')) return Status.JwksECKeyBadAlg;
      if ('crv' in k && str(k.crv) === undefined) return Status.JwksECKeyBadCrv;
      const crv = str(k.crv) ?? '';
      if (alg !== '' && crv !== '' && EC_ALGS[alg] !== crv) return Status.JwksECKeyAlgNotCompatibleWithCrv;
      if (ecCurve(alg, crv) === undefined) return Status.JwksECKeyAlgOrCrvUnsupported;
      if (!('x' in k)) return Status.JwksECKeyMissingX;
      if (str(k.x) === undefined) return Status.JwksECKeyBadX;
      if (!('y' in k)) return Status.JwksECKeyMissingY;
      if (str(k.y) === undefined) return Status.JwksECKeyBadY;
      return undefined;
    }
    case 'oct':
      if (alg !== '' && !HMAC_ALGS.has(alg)) return Status.JwksHMACKeyBadAlg;
      if (!('k' in k)) return Status.JwksHMACKeyMissingK;
      if (str(k.k) === undefined) return Status.JwksHMACKeyBadK;
      return undefined;
    case 'OKP':
      if (alg !== '' && alg !== 'EdDSA') return Status.JwksOKPKeyBadAlg;
      if (!('crv' in k)) return Status.JwksOKPKeyMissingCrv;
      if (str(k.crv) === undefined) return Status.JwksOKPKeyBadCrv;
      if (k.crv !== 'Ed25519') return Status.JwksOKPKeyCrvUnsupported;
      if (!('x' in k)) return Status.JwksOKPKeyMissingX;
      if (str(k.x) === undefined) return Status.JwksOKPKeyBadX;
      return undefined;
    default:
      return Status.JwksNotImplementedKty;
  }
}

/** Envoy's EC curve choice: from alg, else from crv, P-256 when neither is given. */
function ecCurve(alg: string, crv: string): string | undefined {
  if (alg === '' && crv === '') return 'P-256';
  const fromAlg = EC_ALGS[alg];
  if (fromAlg) return fromAlg;
  return Object.values(EC_ALGS).includes(crv) ? crv : undefined;
}

/** Can a key of this type (and curve) verify a signature made with `alg`? */
function keyFitsAlg(key: KeyEntry, alg: string): boolean {
  switch (key.kty) {
    case 'RSA':
      return RSA_ALGS.has(alg);
    case 'EC':
      return EC_ALGS[alg] === key.crv;
    case 'oct':
      return HMAC_ALGS.has(alg);
    case 'OKP':
      return alg === 'EdDSA' && key.crv === 'Ed25519';
    default:
      return false;
  }
}

export class KeySet {
  readonly keys: readonly KeyEntry[];

  private constructor(keys: KeyEntry[]) {
    this.keys = keys;
  }

  /** Parses a JWKS document; the Status says why no key set came out of it. */
  static parse(text: string): KeySet | AuthnStatus {
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      return Status.JwksParseError;
    }
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return Status.JwksParseError;
    if (!('keys' in doc)) return Status.JwksNoKeys;
    const list = (doc as { keys: unknown }).keys;
    if (!Array.isArray(list)) return Status.JwksBadKeys;
    const keys: KeyEntry[] = [];
    for (const k of list) {
      if (k === null || typeof k !== 'object' || Array.isArray(k)) continue;
      const rec = k as Record<string, unknown>;
      if (checkJwk(rec) !== undefined) continue;
      const alg = str(rec.alg) ?? '';
      let crv = str(rec.crv) ?? '';
      if (rec.kty === 'EC') crv = ecCurve(alg, crv)!;
      keys.push({
        jwk: (rec.kty === 'EC' ? { ...rec, crv } : rec) as JWK,
        kty: rec.kty as string,
        kid: str(rec.kid) ?? '',
        alg,
        crv,
        imported: new Map(),
      });
    }
    return keys.length === 0 ? Status.JwksNoValidKeys : new KeySet(keys);
  }

  hasKid(kid: string): boolean {
    return this.keys.some((k) => k.kid === kid);
  }

  /**
   * Envoy's verifyJwtWithoutTimeChecking: a key whose kid differs (both present) or whose alg
   * differs (when the key names one) is skipped; the others are tried in order.
   */
  async verify(token: string, kid: string, alg: string, signatureLength: number): Promise<AuthnStatus> {
    let matched = false;
    for (const key of this.keys) {
      if (kid !== '' && key.kid !== '' && key.kid !== kid) continue;
      if (key.alg !== '' && key.alg !== alg) continue;
      matched = true;
      if (!keyFitsAlg(key, alg)) continue;
      if (key.kty === 'OKP' && signatureLength !== 64) return Status.JwtEd25519SignatureWrongLength;
      const imported = await importFor(key, alg);
      if (imported === undefined) continue;
      try {
        await compactVerify(token, imported, { algorithms: [alg] });
        return Status.Ok;
      } catch {
        // Try the next key, as Envoy does.
      }
    }
    return matched ? Status.JwtVerificationFail : Status.JwksKidAlgMismatch;
  }
}

function importFor(key: KeyEntry, alg: string): Promise<CryptoKey | Uint8Array | undefined> {
  let p = key.imported.get(alg);
  if (!p) {
    // Only the public parts: a JWKS that (wrongly) carries private members still verifies.
    const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, oth: _oth, key_ops: _ops, ext: _ext, ...pub } = key.jwk;
    p = importJWK(key.kty === 'oct' ? key.jwk : pub, alg).then(
      (k) => k,
      () => undefined,
    );
    key.imported.set(alg, p);
  }
  return p;
}

/** Where a rule's keys come from. */
export interface KeySource {
  /** The current key set, waiting for a fetch under way (or starting one when allowed). */
  keys(): Promise<KeySet | AuthnStatus>;
  /**
   * A token names a kid the current set lacks: fetch again unless one ran within the cooldown.
   * Resolves to the new set, or undefined when no fetch was made or it failed.
   */
  refetchForKid(kid: string): Promise<KeySet | undefined>;
  close(): void;
}

export class InlineKeySource implements KeySource {
  readonly #set: KeySet | AuthnStatus;

  constructor(text: string) {
    const parsed = KeySet.parse(text);
    // Envoy drops an unusable inline JWKS; tokens then fail with "doesn't have any valid public key".
    this.#set = typeof parsed === 'string' ? Status.JwksNoValidKeys : parsed;
  }

  keys(): Promise<KeySet | AuthnStatus> {
    return Promise.resolve(this.#set);
  }

  refetchForKid(): Promise<KeySet | undefined> {
    return Promise.resolve(undefined);
  }

  close(): void {}
}

export interface RemoteJwksOptions {
  /** Per-fetch timeout. */
  timeoutMs: number;
  /** Periodic refresh while running (istiod: PILOT_JWT_PUB_KEY_REFRESH_INTERVAL, 20 min). */
  refreshMs: number;
  /** Least time between fetches caused by tokens with an unknown kid. */
  kidRefetchCooldownMs: number;
  /** After a failed fetch, requests within this time fail at once instead of fetching again. */
  failureRetryMs: number;
  /** Largest JWKS document accepted. */
  maxBytes: number;
}

export const DEFAULT_REMOTE_OPTIONS: Omit<RemoteJwksOptions, 'timeoutMs'> = {
  refreshMs: 20 * 60_000,
  kidRefetchCooldownMs: 30_000,
  failureRetryMs: 1_000,
  maxBytes: 1 << 20,
};

/**
 * A JWKS fetched over HTTP(S): fetched at once (warm), refreshed every `refreshMs`, fetched again
 * on an unknown kid (at most once per cooldown). A failed refresh keeps the last good set, as
 * istiod does; with no good set yet, tokens of the issuer fail with "Jwks remote fetch is failed".
 * An `{ issuer }` target instead of `{ uri }` resolves jwks_uri from `<issuer>/.well-known/openid-configuration`.
 */
export class RemoteKeySource implements KeySource {
  readonly #target: { uri: string } | { issuer: string };
  readonly #options: RemoteJwksOptions;
  readonly #logger: Logger;
  readonly #abort = new AbortController();
  #set: KeySet | undefined;
  #inflight: Promise<KeySet | undefined> | undefined;
  /** When the last fetch started, and when the last one failed (0 = never). */
  #lastFetchAt = 0;
  #lastFailureAt = 0;
  #lastError = '';
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #resolvedUri: string | undefined;

  constructor(target: { uri: string } | { issuer: string }, options: RemoteJwksOptions, logger: Logger) {
    this.#target = target;
    this.#options = options;
    this.#logger = logger;
    void this.#fetch('warm');
    this.#timer = setInterval(() => void this.#fetch('refresh'), options.refreshMs);
    this.#timer.unref();
  }

  get uri(): string {
    return 'uri' in this.#target ? this.#target.uri : (this.#resolvedUri ?? discoveryUrl(this.#target.issuer));
  }

  async keys(): Promise<KeySet | AuthnStatus> {
    if (this.#set) return this.#set;
    if (!this.#inflight) {
      if (this.#closed || Date.now() - this.#lastFailureAt < this.#options.failureRetryMs) return Status.JwksFetchFail;
      void this.#fetch('request');
    }
    const set = await this.#inflight;
    return set ?? this.#set ?? Status.JwksFetchFail;
  }

  async refetchForKid(kid: string): Promise<KeySet | undefined> {
    if (this.#inflight) {
      const set = await this.#inflight;
      if (set?.hasKid(kid)) return set;
    }
    if (this.#closed || Date.now() - this.#lastFetchAt < this.#options.kidRefetchCooldownMs) return undefined;
    this.#logger.debug({ jwksUri: this.uri, kid }, 'JWKS fetched again for an unknown kid');
    return this.#fetch('unknown kid');
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#abort.abort();
  }

  #fetch(reason: string): Promise<KeySet | undefined> {
    if (this.#inflight) return this.#inflight;
    if (this.#closed) return Promise.resolve(undefined);
    this.#lastFetchAt = Date.now();
    const run = this.#load().then(
      (set) => {
        if (this.#lastFailureAt !== 0)
          this.#logger.info({ jwksUri: this.uri }, 'JWKS fetch succeeded again after a failure');
        this.#set = set;
        this.#lastFailureAt = 0;
        this.#lastError = '';
        return set;
      },
      (err: unknown) => {
        if (this.#closed) return undefined;
        this.#lastFailureAt = Date.now();
        const message = errorMessage(err);
        // One warning per failure (a new outage, or a new cause); repeats of the same one at debug.
        const level = message === this.#lastError ? 'debug' : 'warn';
        this.#lastError = message;
        this.#logger[level](
          { jwksUri: this.uri, reason, err: message, keptPreviousKeys: this.#set !== undefined },
          'JWKS fetch failed',
        );
        return undefined;
      },
    );
    this.#inflight = run.finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  async #load(): Promise<KeySet> {
    let uri: string;
    if ('uri' in this.#target) uri = this.#target.uri;
    else {
      const doc = await this.#get(discoveryUrl(this.#target.issuer));
      let jwksUri: unknown;
      try {
        jwksUri = (JSON.parse(doc) as { jwks_uri?: unknown }).jwks_uri;
      } catch {
        jwksUri = undefined;
      }
      if (typeof jwksUri !== 'string') throw new Error('invalid jwks_uri in the OpenID discovery document');
      this.#resolvedUri = uri = jwksUri;
    }
    const body = await this.#get(uri);
    const set = KeySet.parse(body);
    if (typeof set === 'string') throw new Error(`invalid JWKS: ${set}`);
    return set;
  }

  async #get(url: string): Promise<string> {
    const signal = AbortSignal.any([this.#abort.signal, AbortSignal.timeout(this.#options.timeoutMs)]);
    const res = await fetch(url, { signal, headers: { accept: 'application/json' }, redirect: 'follow' });
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new Error(`HTTP ${res.status} from ${url}`);
    }
    const chunks: Uint8Array[] = [];
    let size = 0;
    if (res.body) {
      for await (const chunk of res.body) {
        size += chunk.length;
        if (size > this.#options.maxBytes) {
          await res.body.cancel().catch(() => {});
          throw new Error(`response larger than ${this.#options.maxBytes} bytes from ${url}`);
        }
        chunks.push(chunk);
      }
    }
    return Buffer.concat(chunks).toString('utf8');
  }
}

function errorMessage(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // fetch() reports "fetch failed" with the real reason (ECONNREFUSED, timeout...) as the cause.
  const cause = (err as { cause?: unknown }).cause;
  if (err.name === 'TimeoutError') return `timed out (${err.message})`;
  return cause instanceof Error ? `${err.message}: ${cause.message}` : err.message;
}

function discoveryUrl(issuer: string): string {
  return `${issuer.endsWith('/') ? issuer.slice(0, -1) : issuer}/.well-known/openid-configuration`;
}
