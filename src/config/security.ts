// RequestAuthentication and AuthorizationPolicy (security.istio.io/v1, v1beta1): Istio's validation
// beyond the schema (istio/istio pkg/config/validation ValidateRequestAuthentication,
// ValidateAuthorizationPolicy and pkg/config/security), wasmgate's own limits, and the normalization
// into the typed specs. Every check tolerates values of the wrong type: the schema reports those.
import { isIP } from 'node:net';
import type { Path } from './position.ts';
import { Issues, selectorOrTargetRules } from './rules.ts';
import type {
  AuthorizationPolicySpec,
  AuthzAction,
  AuthzCondition,
  AuthzOperation,
  AuthzRule,
  AuthzSource,
  JWTRule,
  PolicyTargeting,
  RequestAuthenticationSpec,
} from './types.ts';
import type { Issue } from './validate.ts';
import { targetRef } from './wasmplugin.ts';

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const text = (v: unknown): string => (typeof v === 'string' ? v : '');
const strings = (v: unknown): string[] => list(v).filter((x): x is string => typeof x === 'string');

export const DRY_RUN_ANNOTATION = 'istio.io/dry-run';

// ---------------------------------------------------------------- shared helpers

/** An IP address or CIDR block as Go's netip parses it, or undefined. IPv4-mapped IPv6 stays IPv6. */
export function parseCidr(value: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const slash = value.indexOf('/');
  const address = slash >= 0 ? value.slice(0, slash) : value;
  const bits = slash >= 0 ? value.slice(slash + 1) : undefined;
  if (address.includes('%')) return undefined; // zones mean nothing to a CIDR match
  const v = isIP(address);
  if (v === 0) return undefined;
  const max = v === 4 ? 32 : 128;
  if (bits !== undefined && !(/^(0|[1-9]\d{0,2})$/.test(bits) && Number(bits) <= max)) return undefined;
  return { address, prefix: bits === undefined ? max : Number(bits), family: v === 4 ? 'ipv4' : 'ipv6' };
}

/** Go's strconv.ParseUint(v, 10, 32) <= 65535, as Istio's ValidatePorts. */
export function isPortString(v: string): boolean {
  return /^\d{1,10}$/.test(v) && Number(v) <= 65535;
}

/** Go's strconv.ParseBool, for the istio.io/dry-run annotation. */
export function parseGoBool(v: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  return undefined;
}

/** The policy targets wasmgate can apply: a Gateway, of the Gateway API or of Istio. */
const GATEWAY_GROUPS = ['gateway.networking.k8s.io', 'networking.istio.io'];
/** What else Istio accepts, which wasmgate cannot apply (it has no Services or GatewayClasses). */
const ISTIO_ONLY_TARGETS = [
  { kind: 'GatewayClass', group: 'gateway.networking.k8s.io' },
  { kind: 'Service', group: 'core' },
  { kind: 'ServiceEntry', group: 'networking.istio.io' },
];

function targetRefRules(out: Issues, path: Path, ref: unknown, kind: string): void {
  if (!isObj(ref)) return;
  if (text(ref.namespace) !== '')
    out.error(
      [...path, 'namespace'],
      `cross namespace referencing is not supported: remove namespace (the target is in the ${kind} namespace)`,
      'key',
    );
  if (typeof ref.kind !== 'string' || ref.kind === '') return;
  const group = text(ref.group) === '' ? 'core' : text(ref.group);
  if (ref.kind === 'Gateway') {
    if (!GATEWAY_GROUPS.includes(group))
      out.error(
        [...path, 'kind'],
        `a Gateway targetRef needs group: gateway.networking.k8s.io (or networking.istio.io), not ${group}`,
      );
    return;
  }
  const istioOnly = ISTIO_ONLY_TARGETS.some((t) => t.kind === ref.kind && t.group === group);
  out.error(
    [...path, 'kind'],
    istioOnly
      ? `a targetRef to a ${ref.kind} is not supported by wasmgate: only a Gateway can be the target of a policy (one wasmgate cannot apply would be silently ignored)`
      : `targetRef must be to a Gateway (gateway.networking.k8s.io or networking.istio.io), but was ${group}/${ref.kind}`,
  );
}

function targetingRules(out: Issues, spec: Obj, kind: string): void {
  const at = (...p: Path): Path => ['spec', ...p];
  selectorOrTargetRules(out, spec, kind);
  if (spec.targetRef !== undefined) targetRefRules(out, at('targetRef'), spec.targetRef, kind);
  list(spec.targetRefs).forEach((r, i) => {
    targetRefRules(out, at('targetRefs', i), r, kind);
  });
}

function annotation(meta: Obj, name: string): string | undefined {
  const annotations = meta.annotations;
  if (!isObj(annotations) || !Object.hasOwn(annotations, name)) return undefined;
  return text(annotations[name]);
}

function normalizeTargeting(spec: Obj): PolicyTargeting {
  const out: PolicyTargeting = {};
  if (isObj(spec.selector))
    out.selector = { matchLabels: { ...((spec.selector.matchLabels as Record<string, string> | undefined) ?? {}) } };
  if (isObj(spec.targetRef)) out.targetRef = targetRef(spec.targetRef);
  if (Array.isArray(spec.targetRefs)) out.targetRefs = (spec.targetRefs as Obj[]).map(targetRef);
  return out;
}

// ---------------------------------------------------------------- RequestAuthentication

const JWK_MEMBERS: Record<string, string[]> = { RSA: ['n', 'e'], EC: ['crv', 'x', 'y'], OKP: ['crv', 'x'], oct: ['k'] };

/** Parses an inline JWKS as Istio (lestrrat-go/jwx jwk.Parse) does: a key set or a single key. */
export function checkJwks(jwks: string): { error?: string; privateKeys: number[] } {
  let value: unknown;
  try {
    value = JSON.parse(jwks);
  } catch (err) {
    return { error: `jwks parse error: not JSON (${(err as Error).message})`, privateKeys: [] };
  }
  if (!isObj(value))
    return { error: 'jwks parse error: expected a JSON object (a JWK or {"keys": [...]})', privateKeys: [] };
  const keys = Object.hasOwn(value, 'keys') ? value.keys : [value];
  if (!Array.isArray(keys)) return { error: 'jwks parse error: "keys" must be a list of JWKs', privateKeys: [] };
  const privateKeys: number[] = [];
  for (const [i, key] of keys.entries()) {
    if (!isObj(key)) return { error: `jwks parse error: key ${i} is not a JSON object`, privateKeys };
    const kty = key.kty;
    if (typeof kty !== 'string' || !Object.hasOwn(JWK_MEMBERS, kty))
      return {
        error: `jwks parse error: key ${i} has ${typeof kty === 'string' ? `unsupported kty "${kty}"` : 'no "kty"'} (RSA, EC, OKP or oct)`,
        privateKeys,
      };
    const missing = JWK_MEMBERS[kty]!.filter((m) => typeof key[m] !== 'string' || key[m] === '');
    if (missing.length > 0)
      return {
        error: `jwks parse error: ${kty} key ${i} lacks ${missing.map((m) => `"${m}"`).join(', ')}`,
        privateKeys,
      };
    if (kty === 'oct' || key.d !== undefined) privateKeys.push(i);
  }
  return { privateKeys };
}

function jwksUriRule(out: Issues, path: Path, uri: unknown): void {
  if (typeof uri !== 'string' || uri === '') return;
  let scheme = '';
  try {
    scheme = new URL(uri).protocol;
  } catch {
    out.error(path, `invalid jwksUri "${uri}": use an http:// or https:// URL`);
    return;
  }
  if (scheme !== 'http:' && scheme !== 'https:')
    out.error(path, `URI scheme "${scheme.slice(0, -1)}" is not supported: jwksUri must be http:// or https://`);
}

export function requestAuthenticationRules(spec: Obj, _name: string, meta: Obj = {}): Issue[] {
  const out = new Issues();
  if (annotation(meta, DRY_RUN_ANNOTATION) !== undefined)
    out.error(
      ['metadata', 'annotations', DRY_RUN_ANNOTATION],
      `unsupported annotation ${DRY_RUN_ANNOTATION} (only AuthorizationPolicy takes it): remove it`,
      'key',
    );
  targetingRules(out, spec, 'RequestAuthentication');
  list(spec.jwtRules).forEach((rule, i) => {
    if (!isObj(rule)) return;
    const at = (...p: Path): Path => ['spec', 'jwtRules', i, ...p];
    if (text(rule.issuer) === '' && text(rule.jwksUri) === '' && text(rule.jwks_uri) === '')
      out.error(at('issuer'), 'issuer or jwksUri must be set', 'parent');
    jwksUriRule(out, at('jwksUri'), rule.jwksUri);
    jwksUriRule(out, at('jwks_uri'), rule.jwks_uri);
    if (typeof rule.jwks === 'string' && rule.jwks !== '') {
      const { error, privateKeys } = checkJwks(rule.jwks);
      if (error) out.error(at('jwks'), error);
      for (const k of privateKeys)
        out.warn(
          at('jwks'),
          `jwks key at index ${k} contains private key material; only public keys are used for verification`,
        );
    }
  });
  return out.all;
}

function normalizeJwtRule(r: Obj): JWTRule {
  const rule: JWTRule = {
    issuer: text(r.issuer),
    audiences: strings(r.audiences),
    fromHeaders: list(r.fromHeaders)
      .filter(isObj)
      .map((h) => (typeof h.prefix === 'string' ? { name: text(h.name), prefix: h.prefix } : { name: text(h.name) })),
    fromParams: strings(r.fromParams),
    fromCookies: strings(r.fromCookies),
    forwardOriginalToken: r.forwardOriginalToken === true,
    outputClaimToHeaders: list(r.outputClaimToHeaders)
      .filter(isObj)
      .map((c) => ({ header: text(c.header), claim: text(c.claim) })),
  };
  const uri = text(r.jwksUri) || text(r.jwks_uri);
  if (uri !== '') rule.jwksUri = uri;
  if (typeof r.jwks === 'string' && r.jwks !== '') rule.jwks = r.jwks;
  if (typeof r.outputPayloadToHeader === 'string' && r.outputPayloadToHeader !== '')
    rule.outputPayloadToHeader = r.outputPayloadToHeader;
  if (typeof r.timeout === 'string') rule.timeout = r.timeout;
  if (r.presence === 'OPTIONAL' || r.presence === 'REQUIRED') rule.presence = r.presence;
  if (Array.isArray(r.spaceDelimitedClaims)) rule.spaceDelimitedClaims = strings(r.spaceDelimitedClaims);
  return rule;
}

/** A schema-valid RequestAuthentication spec with defaults applied (jwks_uri is read as jwksUri). */
export function normalizeRequestAuthentication(spec: Obj): RequestAuthenticationSpec {
  return { ...normalizeTargeting(spec), jwtRules: list(spec.jwtRules).filter(isObj).map(normalizeJwtRule) };
}

// ---------------------------------------------------------------- AuthorizationPolicy

const SOURCE_FIELDS = [
  'principals',
  'notPrincipals',
  'requestPrincipals',
  'notRequestPrincipals',
  'namespaces',
  'notNamespaces',
  'serviceAccounts',
  'notServiceAccounts',
  'trustDomains',
  'notTrustDomains',
  'ipBlocks',
  'notIpBlocks',
  'remoteIpBlocks',
  'notRemoteIpBlocks',
] as const;

const OPERATION_FIELDS = [
  'hosts',
  'notHosts',
  'ports',
  'notPorts',
  'methods',
  'notMethods',
  'paths',
  'notPaths',
] as const;

/** The `when` keys with no [name] part. */
const PLAIN_KEYS = [
  'source.ip',
  'remote.ip',
  'source.namespace',
  'source.serviceAccount',
  'source.principal',
  'source.trustDomain',
  'request.auth.principal',
  'request.auth.audiences',
  'request.auth.presenter',
  'destination.ip',
  'destination.port',
  'connection.sni',
] as const;

export const HEADER_KEY = /^request\.headers\[([^[\]]+)\]$/;
export const CLAIM_KEY = /^request\.auth\.claims((?:\[[^[\]]+\])+)$/;

/** The claim path of a request.auth.claims key: [a][b] -> ["a", "b"]. */
export function claimPath(key: string): string[] | undefined {
  const m = CLAIM_KEY.exec(key);
  if (!m) return undefined;
  return m[1]!.slice(1, -1).split('][');
}

/** Istio's CheckServiceAccount, one value. */
function serviceAccountProblem(v: string): string | undefined {
  if (v === '') return 'empty value not allowed';
  if (v.includes('*')) return 'wildcard not allowed in a service account';
  const slashes = v.split('/').length - 1;
  if (slashes > 1 || (slashes === 1 && (v.startsWith('/') || v.endsWith('/'))))
    return `expected format "serviceAccount" or "namespace/serviceAccount", found "${v}"`;
  return undefined;
}

/** Istio's CheckWildcardValues / CheckTrustDomainValues, one value. */
function wildcardProblem(v: string, trustDomain: boolean): string | undefined {
  if (v === '') return 'empty value not allowed';
  const stars = v.split('*').length - 1;
  if (stars > 1) return `at most one wildcard is allowed, found "${v}"`;
  if (stars === 1 && v !== '*' && !v.startsWith('*') && !v.endsWith('*'))
    return `wildcard is only allowed at the start or end, found "${v}"`;
  if (trustDomain && v.includes('/')) return `trust domain must not contain "/", found "${v}"`;
  return undefined;
}

const ipProblem = (v: string): string | undefined =>
  v === ''
    ? 'empty value not allowed'
    : parseCidr(v)
      ? undefined
      : v.includes('/')
        ? `bad CIDR range "${v}"`
        : `bad IP address "${v}"`;

const portProblem = (v: string): string | undefined =>
  v === ''
    ? 'empty value not allowed'
    : isPortString(v)
      ? undefined
      : `bad port "${v}": must be a number from 0 to 65535`;

const emptyProblem = (v: string): string | undefined => (v === '' ? 'empty value not allowed' : undefined);

const MATCH_ONE = '{*}';
const MATCH_ANY = '{**}';
/** Valid pchar (RFC 3986), as Istio's CheckValidPathTemplate. */
const TEMPLATE_LITERAL = /^[a-zA-Z0-9\-._~%!$&'()+,;:@=]+$/;

export const hasPathTemplate = (p: string): boolean => p.includes(MATCH_ONE) || p.includes(MATCH_ANY);

/** Istio's CheckValidPathTemplate, one value. */
function pathProblem(p: string): string | undefined {
  if (p === '') return 'empty value not allowed';
  const template = hasPathTemplate(p);
  let sawAny = false;
  for (const glob of p.replace(/^\/+|\/+$/g, '').split('/')) {
    if ((glob === MATCH_ONE || glob === MATCH_ANY) && !sawAny) {
      if (glob === MATCH_ANY) sawAny = true;
      continue;
    }
    if (glob === MATCH_ONE || glob === MATCH_ANY) return `invalid path template "${p}": {**} must be the last operator`;
    if (/[{}]/.test(glob))
      return `invalid path template "${p}": "{" or "}" is only allowed in the whole-segment operators {*} and {**}`;
    if (template && !TEMPLATE_LITERAL.test(glob))
      return `invalid path template "${p}": segment "${glob}" has characters a path template cannot match`;
  }
  if (template && !p.startsWith('/')) return `invalid path template "${p}": it must start with "/"`;
  return undefined;
}

function valuesRule(
  out: Issues,
  path: Path,
  values: unknown,
  check: (v: string) => string | undefined,
  name: string,
): void {
  list(values).forEach((v, i) => {
    if (typeof v !== 'string') return;
    const problem = check(v);
    if (problem) out.error([...path, i], `${problem} (in ${name})`);
  });
}

/** What Istio's ValidateAttribute says of a `when` key, or undefined when wasmgate evaluates it. */
function keyProblem(key: string): string | undefined {
  if ((PLAIN_KEYS as readonly string[]).includes(key) || HEADER_KEY.test(key) || CLAIM_KEY.test(key)) return undefined;
  if (key.startsWith('request.headers'))
    return `bad key "${key}": should have the format request.headers[<header name>]`;
  if (key.startsWith('request.auth.claims'))
    return `bad key "${key}": should have the format request.auth.claims[<claim>] or request.auth.claims[<claim>][<nested claim>]`;
  if (key.startsWith('experimental.envoy.filters.'))
    return `attribute ${key} reads Envoy dynamic metadata, which wasmgate does not have: not supported by wasmgate`;
  if (key === 'destination.namespace') return `attribute ${key} is replaced by the metadata.namespace`;
  if (key.startsWith('destination.labels')) return `attribute ${key} is replaced by the workload selector`;
  if (key === 'destination.name' || key === 'destination.user')
    return `deprecated attribute ${key}: only supported in v1alpha1`;
  return `unknown attribute: ${key} (supported: request.headers[<name>], ${PLAIN_KEYS.join(', ')}, request.auth.claims[<name>])`;
}

function valueCheck(key: string): (v: string) => string | undefined {
  switch (key) {
    case 'source.ip':
    case 'remote.ip':
    case 'destination.ip':
      return ipProblem;
    case 'destination.port':
      return portProblem;
    case 'source.serviceAccount':
      return serviceAccountProblem;
    case 'source.trustDomain':
      return (v) => wildcardProblem(v, false);
    default:
      return emptyProblem;
  }
}

/** An exact host without a port, which a request naming the port (Host: x:8080) does not match. */
const portlessExact = (h: string): boolean => !h.includes('*') && !/:\d*$/.test(h) && !h.endsWith(']');

function sourceRules(out: Issues, at: (...p: Path) => Path, src: Obj, rule: number): void {
  const has = (k: string) => list(src[k]).length > 0;
  if (!SOURCE_FIELDS.some(has))
    out.error(
      at(),
      `\`from.source\` must not be empty, found at rule ${rule}: set at least one of ${SOURCE_FIELDS.join(', ')}`,
      'key',
    );
  const sa = ['serviceAccounts', 'notServiceAccounts'].find((k) => src[k] !== undefined);
  if (sa && ['principals', 'notPrincipals', 'namespaces', 'notNamespaces'].some((k) => src[k] !== undefined))
    out.error(at(sa), `cannot set serviceAccounts with namespaces or principals, found at rule ${rule}`, 'key');
  for (const k of ['ipBlocks', 'notIpBlocks', 'remoteIpBlocks', 'notRemoteIpBlocks'])
    valuesRule(out, at(k), src[k], ipProblem, k);
  for (const k of [
    'principals',
    'notPrincipals',
    'requestPrincipals',
    'notRequestPrincipals',
    'namespaces',
    'notNamespaces',
  ])
    valuesRule(out, at(k), src[k], emptyProblem, k);
  for (const k of ['serviceAccounts', 'notServiceAccounts']) valuesRule(out, at(k), src[k], serviceAccountProblem, k);
  for (const k of ['trustDomains', 'notTrustDomains'])
    valuesRule(out, at(k), src[k], (v) => wildcardProblem(v, true), k);
}

function operationRules(out: Issues, at: (...p: Path) => Path, op: Obj, rule: number, action: string): void {
  if (!OPERATION_FIELDS.some((k) => list(op[k]).length > 0))
    out.error(
      at(),
      `\`to.operation\` must not be empty, found at rule ${rule}: set at least one of ${OPERATION_FIELDS.join(', ')}`,
      'key',
    );
  for (const k of ['ports', 'notPorts']) valuesRule(out, at(k), op[k], portProblem, k);
  for (const k of ['hosts', 'notHosts', 'methods', 'notMethods']) valuesRule(out, at(k), op[k], emptyProblem, k);
  for (const k of ['paths', 'notPaths']) valuesRule(out, at(k), op[k], pathProblem, k);
  // Hosts match :authority exactly, port included (Istio): a DENY on hosts, or an ALLOW on notHosts,
  // is bypassed by writing the port in the Host header.
  const bypassable = action === 'DENY' ? 'hosts' : action === 'ALLOW' ? 'notHosts' : undefined;
  if (bypassable)
    list(op[bypassable]).forEach((h, i) => {
      if (typeof h === 'string' && h !== '' && portlessExact(h))
        out.warn(
          at(bypassable, i),
          `"${h}" matches the Host header exactly, port included: a request to "${h}:<port>" is not matched; add "${h}:*" as well`,
        );
    });
}

export function authorizationPolicyRules(spec: Obj, _name: string, meta: Obj = {}): Issue[] {
  const out = new Issues();
  const action = text(spec.action) || 'ALLOW';
  const dryRun = annotation(meta, DRY_RUN_ANNOTATION);
  if (dryRun !== undefined) {
    const path = ['metadata', 'annotations', DRY_RUN_ANNOTATION];
    if (action !== 'ALLOW' && action !== 'DENY')
      out.error(
        path,
        `the annotation ${DRY_RUN_ANNOTATION} only supports action ALLOW or DENY, found ${action}`,
        'key',
      );
    else if (parseGoBool(dryRun) === undefined)
      out.error(path, `invalid value "${dryRun}" for annotation ${DRY_RUN_ANNOTATION}: use "true" or "false"`);
  }
  targetingRules(out, spec, 'AuthorizationPolicy');

  if (action === 'CUSTOM')
    out.error(
      ['spec', 'action'],
      'CUSTOM action is not supported by wasmgate: it has no external authorization providers (use ALLOW, DENY or AUDIT)',
    );
  else if (spec.provider !== undefined)
    out.error(['spec', 'provider'], `provider is only allowed with action CUSTOM, found action ${action}`, 'key');

  const rules = list(spec.rules);
  if (action === 'DENY' && rules.length === 0)
    out.error(
      ['spec', 'rules'],
      'DENY action without rules is meaningless as it will never be triggered: add an empty rule {} to deny every request',
      spec.rules === undefined ? 'parent' : 'key',
    );

  rules.forEach((rule, i) => {
    if (!isObj(rule)) return;
    const at = (...p: Path): Path => ['spec', 'rules', i, ...p];
    for (const part of ['from', 'to', 'when'] as const)
      if (Array.isArray(rule[part]) && rule[part].length === 0)
        out.error(at(part), `\`${part}\` must not be empty, found at rule ${i}: remove it to match any request`, 'key');
    list(rule.from).forEach((f, j) => {
      if (!isObj(f)) return;
      if (f.source === undefined)
        out.error(at('from', j, 'source'), `\`from.source\` must not be nil, found at rule ${i}`, 'parent');
      else if (isObj(f.source)) sourceRules(out, (...p) => at('from', j, 'source', ...p), f.source, i);
    });
    list(rule.to).forEach((t, j) => {
      if (!isObj(t)) return;
      if (t.operation === undefined)
        out.error(at('to', j, 'operation'), `\`to.operation\` must not be nil, found at rule ${i}`, 'parent');
      else if (isObj(t.operation))
        operationRules(out, (...p) => at('to', j, 'operation', ...p), t.operation, i, action);
    });
    list(rule.when).forEach((c, j) => {
      if (!isObj(c) || typeof c.key !== 'string') return;
      const key = c.key;
      if (key === '') {
        out.error(at('when', j, 'key'), '`key` must not be empty');
        return;
      }
      if (list(c.values).length === 0 && list(c.notValues).length === 0) {
        out.error(at('when', j, 'key'), `at least one of values or notValues must be set for key ${key}`, 'key');
        return;
      }
      const problem = keyProblem(key);
      if (problem) {
        out.error(at('when', j, 'key'), problem);
        return;
      }
      const check = valueCheck(key);
      valuesRule(out, at('when', j, 'values'), c.values, check, key);
      valuesRule(out, at('when', j, 'notValues'), c.notValues, check, key);
    });
  });
  return out.all;
}

function pick<K extends string>(from: Obj, fields: readonly K[]): Partial<Record<K, string[]>> {
  const out: Partial<Record<K, string[]>> = {};
  for (const k of fields) if (Array.isArray(from[k])) out[k] = strings(from[k]);
  return out;
}

/** A schema-valid AuthorizationPolicy spec with defaults applied: absent lists are [], action ALLOW. */
export function normalizeAuthorizationPolicy(spec: Obj): AuthorizationPolicySpec {
  const rules: AuthzRule[] = list(spec.rules)
    .filter(isObj)
    .map((r) => ({
      from: list(r.from)
        .filter(isObj)
        .map((f) => ({ source: pick(isObj(f.source) ? f.source : {}, SOURCE_FIELDS) as AuthzSource })),
      to: list(r.to)
        .filter(isObj)
        .map((t) => ({ operation: pick(isObj(t.operation) ? t.operation : {}, OPERATION_FIELDS) as AuthzOperation })),
      when: list(r.when)
        .filter(isObj)
        .map((c) => {
          const cond: AuthzCondition = { key: text(c.key) };
          if (Array.isArray(c.values)) cond.values = strings(c.values);
          if (Array.isArray(c.notValues)) cond.notValues = strings(c.notValues);
          return cond;
        }),
    }));
  const out: AuthorizationPolicySpec = {
    ...normalizeTargeting(spec),
    rules,
    action: (text(spec.action) || 'ALLOW') as AuthzAction,
  };
  if (isObj(spec.provider)) out.provider = { name: text(spec.provider.name) };
  return out;
}
