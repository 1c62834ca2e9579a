// Parsing a JWT as Envoy's jwt_verify_lib does (Jwt::parseFromString), so that malformed tokens
// get its exact status; the time, audience and claim rules Envoy applies after parsing.
import { type AuthnStatus, Status } from './status.ts';

const IMPLEMENTED_ALGS = new Set([
  'ES256',
  'ES384',
  'ES512',
  'HS256',
  'HS384',
  'HS512',
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'EdDSA',
]);

/** Envoy's default clock skew for exp and nbf (jwt_verify_lib kClockSkewInSecond). */
export const CLOCK_SKEW_SECONDS = 60;

export interface ParsedJwt {
  /** The token as extracted. */
  token: string;
  alg: string;
  /** "" when absent. */
  kid: string;
  /** "" when absent. */
  iss: string;
  sub: string;
  /** 0 when absent. */
  nbf: number;
  exp: number;
  audiences: string[];
  payload: Record<string, unknown>;
  /** The payload segment exactly as in the token (base64url, as Envoy forwards it). */
  payloadB64: string;
  signatureLength: number;
}

const B64URL = /^[A-Za-z0-9_-]*={0,2}$/;

/** absl::WebSafeBase64Unescape: the URL-safe alphabet, padding optional; undefined when invalid. */
function unbase64url(s: string): Buffer | undefined {
  if (!B64URL.test(s)) return undefined;
  const body = s.replace(/=+$/, '');
  if (body.length % 4 === 1) return undefined;
  if (s.length !== body.length && s.length % 4 !== 0) return undefined;
  return Buffer.from(body, 'base64url');
}

function jsonObject(bytes: Buffer): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(bytes.toString('utf8'));
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

type U64 = { value: number } | 'missing' | 'wrong' | 'range';

function u64(obj: Record<string, unknown>, name: string): U64 {
  if (!(name in obj)) return 'missing';
  const v = obj[name];
  if (typeof v !== 'number') return 'wrong';
  if (v < 0 || v >= 2 ** 64) return 'range';
  return { value: Math.trunc(v) };
}

export function parseJwt(token: string): ParsedJwt | AuthnStatus {
  const parts = token.split('.').filter((p) => p !== '');
  if (parts.length !== 3) return Status.JwtBadFormat;
  const [h, p, s] = parts as [string, string, string];

  const headerBytes = unbase64url(h);
  if (!headerBytes) return Status.JwtHeaderParseErrorBadBase64;
  const header = jsonObject(headerBytes);
  if (!header) return Status.JwtHeaderParseErrorBadJson;
  if (typeof header.alg !== 'string') return Status.JwtHeaderBadAlg;
  if (!IMPLEMENTED_ALGS.has(header.alg)) return Status.JwtHeaderNotImplementedAlg;
  if ('kid' in header && typeof header.kid !== 'string') return Status.JwtHeaderBadKid;

  const payloadBytes = unbase64url(p);
  if (!payloadBytes) return Status.JwtPayloadParseErrorBadBase64;
  const payload = jsonObject(payloadBytes);
  if (!payload) return Status.JwtPayloadParseErrorBadJson;
  if ('iss' in payload && typeof payload.iss !== 'string') return Status.JwtPayloadParseErrorIssNotString;
  if ('sub' in payload && typeof payload.sub !== 'string') return Status.JwtPayloadParseErrorSubNotString;
  const iat = u64(payload, 'iat');
  if (iat === 'wrong') return Status.JwtPayloadParseErrorIatNotInteger;
  if (iat === 'range') return Status.JwtPayloadParseErrorIatOutOfRange;
  const nbf = u64(payload, 'nbf');
  if (nbf === 'wrong') return Status.JwtPayloadParseErrorNbfNotInteger;
  if (nbf === 'range') return Status.JwtPayloadParseErrorNbfOutOfRange;
  const exp = u64(payload, 'exp');
  if (exp === 'wrong') return Status.JwtPayloadParseErrorExpNotInteger;
  if (exp === 'range') return Status.JwtPayloadParseErrorExpOutOfRange;
  if ('jti' in payload && typeof payload.jti !== 'string') return Status.JwtPayloadParseErrorJtiNotString;
  let audiences: string[] = [];
  if ('aud' in payload) {
    const aud = payload.aud;
    if (typeof aud === 'string') audiences = [aud];
    else if (Array.isArray(aud) && aud.every((a) => typeof a === 'string')) audiences = aud as string[];
    else return Status.JwtPayloadParseErrorAudNotString;
  }

  const signature = unbase64url(s);
  if (!signature) return Status.JwtSignatureParseErrorBadBase64;

  return {
    token,
    alg: header.alg,
    kid: typeof header.kid === 'string' ? header.kid : '',
    iss: typeof payload.iss === 'string' ? payload.iss : '',
    sub: typeof payload.sub === 'string' ? payload.sub : '',
    nbf: typeof nbf === 'object' ? nbf.value : 0,
    exp: typeof exp === 'object' ? exp.value : 0,
    audiences,
    payload,
    payloadB64: p,
    signatureLength: signature.length,
  };
}

/** jwt_verify_lib's Jwt::verifyTimeConstraint. */
export function checkTime(jwt: ParsedJwt, nowSeconds: number, skew = CLOCK_SKEW_SECONDS): AuthnStatus {
  if (nowSeconds + skew < jwt.nbf) return Status.JwtNotYetValid;
  if (jwt.exp !== 0 && nowSeconds > jwt.exp + skew) return Status.JwtExpired;
  return Status.Ok;
}

/** jwt_verify_lib's audience sanitizing: http:// or https:// and one trailing slash do not count. */
function sanitizeAudience(aud: string): string {
  if (aud === '') return aud;
  let begin = 0;
  if (aud.startsWith('http://')) begin = 7;
  else if (aud.startsWith('https://')) begin = 8;
  const end = aud.endsWith('/') ? aud.length - 1 : aud.length;
  return aud.slice(begin, end);
}

export class AudienceChecker {
  readonly #allowed: Set<string>;

  constructor(audiences: readonly string[]) {
    this.#allowed = new Set(audiences.map(sanitizeAudience));
  }

  /** No configured audience allows any token. */
  allows(audiences: readonly string[]): boolean {
    if (this.#allowed.size === 0) return true;
    return audiences.some((a) => this.#allowed.has(sanitizeAudience(a)));
  }
}

/** A claim by dot-separated path (StructUtils::GetValue): undefined when absent or not reachable. */
export function claimAt(payload: Record<string, unknown>, path: string): unknown {
  let cur: unknown = payload;
  for (const name of path.split('.')) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) return undefined;
    if (!Object.hasOwn(cur, name)) return undefined;
    cur = (cur as Record<string, unknown>)[name];
  }
  return cur;
}

/**
 * A claim as a header value, as Envoy's addJWTClaimToHeader: strings as they are, numbers as an
 * unsigned integer when they are one (else C's %f), booleans as true/false, objects and lists as
 * base64 of their JSON; "" (no header) for null, absent or empty.
 */
export function claimHeaderValue(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return value;
    case 'number':
      if (value >= 0 && value < 2 ** 64 && Number.isInteger(value)) return BigInt(value).toString();
      return Number.isFinite(value) ? value.toFixed(6) : '';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      return value === null ? '' : Buffer.from(JSON.stringify(value)).toString('base64');
    default:
      return '';
  }
}
