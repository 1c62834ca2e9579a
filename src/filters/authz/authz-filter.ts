// The built-in authorization filter (istio.authz): AuthorizationPolicy evaluated as Istio's RBAC
// filters are, on the request headers.
//
//   1. DENY policies: any matching rule denies (403);
//   2. ALLOW policies: when at least one applies, the request must match a rule of one of them (an
//      ALLOW policy without rules matches nothing, so it alone denies every request);
//   3. AUDIT policies: matches are logged and never change the decision.
// CUSTOM policies are rejected by the loader and never reach this filter. Policies annotated
// istio.io/dry-run: "true" are evaluated and logged ("would deny") but not enforced, as Istio's
// shadow rules.
//
// A denial is Envoy's RBAC reply: 403 "RBAC: access denied", with response_code_details
// rbac_access_denied_matched_policy[<policy id>], where the id is Istio's
// ns[<namespace>]-policy[<name>]-rule[<index>] for a DENY match and "none" when no ALLOW rule matched.
import { parseGoBool } from '../../config/security.ts';
import type { AuthorizationPolicySpec, Resource } from '../../config/types.ts';
import type { Logger } from '../../observability/logger.ts';
import {
  type FilterCallbacks,
  type FilterFactory,
  HeadersStatus,
  type HeadersStatusValue,
  type HttpFilter,
} from '../../pipeline/filter.ts';
import type { HeaderMap } from '../../pipeline/headers.ts';
import type { HttpStream } from '../../pipeline/stream.ts';
import { type AuthzRequest, type CompileOptions, compileRule, type Predicate, unmapIp } from './matchers.ts';

export const RBAC_DENIED_BODY = 'RBAC: access denied';

/** Envoy's RBAC::responseDetail: whitespace in the policy id becomes "_". */
export function responseDetail(policyId: string): string {
  return `rbac_access_denied_matched_policy[${policyId.replace(/\s/g, '_')}]`;
}

/** Istio's RBAC policy name for a rule of an AuthorizationPolicy. */
export function policyId(namespace: string, name: string, rule: number): string {
  return `ns[${namespace}]-policy[${name}]-rule[${rule}]`;
}

interface CompiledRule {
  id: string;
  policy: string;
  matches: Predicate;
}

interface Engine {
  /** Whether any policy of this action applies (an ALLOW policy with no rules still counts). */
  present: boolean;
  rules: CompiledRule[];
}

function engine(policies: readonly Resource<AuthorizationPolicySpec>[], options: CompileOptions): Engine {
  const rules = policies.flatMap((p) =>
    p.spec.rules.map((rule, i) => ({
      id: policyId(p.metadata.namespace, p.metadata.name, i),
      policy: `${p.metadata.namespace}/${p.metadata.name}`,
      matches: compileRule(rule, options),
    })),
  );
  // Envoy keeps RBAC policies in a map ordered by id: the first match in that order is reported.
  rules.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { present: policies.length > 0, rules };
}

const firstMatch = (e: Engine, req: AuthzRequest): CompiledRule | undefined => e.rules.find((r) => r.matches(req));

export interface AuthzOptions extends CompileOptions {
  logger: Logger;
  /** The TLS server name of the stream's connection, "" for plain HTTP (connection.sni). */
  sni?: (stream: HttpStream) => string;
}

/** What a policy decides for one request. */
export type AuthzDecision = { allow: true } | { allow: false; policy: string; details: string };

export class AuthzFilterFactory implements FilterFactory {
  readonly name = 'istio.authz';
  readonly #deny: Engine;
  readonly #allow: Engine;
  readonly #audit: Engine;
  readonly #shadowDeny: Engine;
  readonly #shadowAllow: Engine;
  readonly #logger: Logger;
  readonly #sni: (stream: HttpStream) => string;

  constructor(policies: readonly Resource<AuthorizationPolicySpec>[], options: AuthzOptions) {
    for (const p of policies)
      if (p.spec.action === 'CUSTOM')
        throw new Error(
          `AuthorizationPolicy ${p.metadata.namespace}/${p.metadata.name}: CUSTOM action is not supported by wasmgate`,
        );
    this.#logger = options.logger;
    this.#sni = options.sni ?? (() => '');
    const dryRun = (p: Resource<AuthorizationPolicySpec>) =>
      parseGoBool(p.metadata.annotations['istio.io/dry-run'] ?? '') === true;
    const of = (action: string, shadow: boolean) =>
      engine(
        policies.filter((p) => p.spec.action === action && dryRun(p) === shadow),
        options,
      );
    this.#deny = of('DENY', false);
    this.#allow = of('ALLOW', false);
    this.#audit = engine(
      policies.filter((p) => p.spec.action === 'AUDIT'),
      options,
    );
    this.#shadowDeny = of('DENY', true);
    this.#shadowAllow = of('ALLOW', true);
  }

  /** The facts a request is matched on. */
  static request(stream: HttpStream, sni = ''): AuthzRequest {
    const h = stream.requestHeaders;
    const rawPath = h.get(':path') ?? '';
    const q = rawPath.indexOf('?');
    const peer = unmapIp(stream.info.downstreamRemoteAddress);
    return {
      method: h.get(':method'),
      path: q >= 0 ? rawPath.slice(0, q) : rawPath,
      authority: h.get(':authority') ?? h.get('host'),
      headers: h,
      peerIp: peer,
      remoteIp: unmapIp(stream.info.remoteAddress),
      localIp: unmapIp(stream.info.downstreamLocalAddress),
      localPort: stream.info.downstreamLocalPort,
      auth: stream.auth,
      sni,
    };
  }

  /** Evaluates the policies for a request, logging AUDIT and dry-run matches. */
  decide(stream: HttpStream): AuthzDecision {
    const req = AuthzFilterFactory.request(stream, this.#sni(stream));
    const log = { requestId: stream.info.requestId, method: req.method, path: req.path };

    for (const r of this.#audit.rules.filter((rule) => rule.matches(req)))
      this.#logger.info({ ...log, policy: r.policy, rule: r.id }, `authz AUDIT policy ${r.policy} matched`);

    const shadowDeny = firstMatch(this.#shadowDeny, req);
    if (shadowDeny)
      this.#logger.info(
        { ...log, policy: shadowDeny.policy, rule: shadowDeny.id },
        `authz dry-run: DENY policy ${shadowDeny.policy} would deny`,
      );
    if (this.#shadowAllow.present && !firstMatch(this.#shadowAllow, req))
      this.#logger.info(log, 'authz dry-run: no dry-run ALLOW policy matched, they would deny');

    const denied = firstMatch(this.#deny, req);
    if (denied) {
      this.#logger.debug({ ...log, policy: denied.policy }, `authz denied: matched DENY policy ${denied.id}`);
      return { allow: false, policy: denied.policy, details: responseDetail(denied.id) };
    }
    if (this.#allow.present && !firstMatch(this.#allow, req)) {
      this.#logger.debug(log, 'authz denied: no ALLOW policy matched');
      return { allow: false, policy: 'none', details: responseDetail('none') };
    }
    return { allow: true };
  }

  create(callbacks: FilterCallbacks): HttpFilter {
    return new AuthzFilter(this, callbacks);
  }
}

class AuthzFilter implements HttpFilter {
  readonly #factory: AuthzFilterFactory;
  readonly #callbacks: FilterCallbacks;

  constructor(factory: AuthzFilterFactory, callbacks: FilterCallbacks) {
    this.#factory = factory;
    this.#callbacks = callbacks;
  }

  decodeHeaders(_headers: HeaderMap, _endStream: boolean): HeadersStatusValue {
    const decision = this.#factory.decide(this.#callbacks.stream);
    if (decision.allow) return HeadersStatus.Continue;
    this.#callbacks.sendLocalReply({
      status: 403,
      body: RBAC_DENIED_BODY,
      headers: [['content-type', 'text/plain']],
      details: decision.details,
    });
    return HeadersStatus.StopIteration;
  }
}
