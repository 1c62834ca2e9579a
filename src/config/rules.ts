// Istio's own validation beyond the schema (istio/istio pkg/config/validation: ValidateWasmPlugin,
// ValidateGateway, ValidateVirtualService, ValidateServiceEntry and the CRDs' x-kubernetes-validations),
// run on the resource as parsed. Every check tolerates values of the wrong type: the schema reports those.
import { isIP } from 'node:net';
import type { Anchor, Path } from './position.ts';
import { re2Problem } from './re2.ts';
import { ENUMS } from './schemas.ts';
import type { Issue } from './validate.ts';
import { checkUrl, enumName, urlDigest } from './wasmplugin.ts';

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const text = (v: unknown): string => (typeof v === 'string' ? v : '');

export class Issues {
  readonly all: Issue[] = [];
  error(path: Path, message: string, anchor: Anchor = 'value'): void {
    this.all.push({ path, anchor, message, severity: 'error' });
  }
  warn(path: Path, message: string, anchor: Anchor = 'value'): void {
    this.all.push({ path, anchor, message, severity: 'warning' });
  }
}

const C_IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const HOST_LABEL = '[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?';
const WILDCARD_HOST = new RegExp(`^(\\*|(\\*\\.)?${HOST_LABEL}(\\.${HOST_LABEL})*\\.?)$`);

export function selectorRules(out: Issues, path: Path, labels: unknown, what: string): void {
  if (!isObj(labels) || Object.keys(labels).length === 0) {
    out.warn(path, `workload selector specified without labels: ${what}`, 'key');
    return;
  }
  for (const [k, v] of Object.entries(labels)) {
    if (k === '') out.error([...path, k], 'empty key is not supported in selector', 'key');
    else if (k.includes('*') || text(v).includes('*'))
      out.error([...path, k], `wildcard is not supported in selector: "${k}=${text(v)}"`, 'key');
  }
}

// ---------------------------------------------------------------- WasmPlugin

const TARGET_KINDS = [
  { kind: 'Gateway', group: 'gateway.networking.k8s.io' },
  { kind: 'GatewayClass', group: 'gateway.networking.k8s.io' },
  { kind: 'Service', group: 'core' },
  { kind: 'ServiceEntry', group: 'networking.istio.io' },
];

function targetRefRules(out: Issues, path: Path, ref: unknown): void {
  if (!isObj(ref)) return;
  if (text(ref.namespace) !== '')
    out.error(
      [...path, 'namespace'],
      'cross namespace referencing is not supported: remove namespace (the target is in the WasmPlugin namespace)',
      'key',
    );
  if (typeof ref.kind !== 'string' || ref.kind === '') return;
  const group = text(ref.group) === '' ? 'core' : text(ref.group);
  if (TARGET_KINDS.some((t) => t.kind === ref.kind && t.group === group)) return;
  const expected = TARGET_KINDS.find((t) => t.kind === ref.kind);
  out.error(
    [...path, 'kind'],
    expected
      ? `a ${ref.kind} targetRef needs group: ${expected.group === 'core' ? '"" (or core)' : expected.group}, not ${group}`
      : `targetRef must be to one of ${TARGET_KINDS.map((t) => `${t.kind} (${t.group})`).join(', ')}, but was ${group}/${ref.kind}`,
  );
}

/** The path of the first number in a JSON-like value that JSON cannot hold (YAML's .inf, .nan). */
function findNonFinite(v: unknown, path: Path): Path | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? undefined : path;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const found = findNonFinite(v[i], [...path, i]);
      if (found) return found;
    }
  } else if (isObj(v)) {
    for (const [k, child] of Object.entries(v)) {
      const found = findNonFinite(child, [...path, k]);
      if (found) return found;
    }
  }
  return undefined;
}

/**
 * Shared by WasmPlugin, RequestAuthentication and AuthorizationPolicy: selector and targetRef(s)
 * are exclusive, and a selector needs labels. `what` names the resource in the empty-selector warning.
 */
export function selectorOrTargetRules(out: Issues, spec: Obj, what: string): void {
  const at = (...p: Path): Path => ['spec', ...p];
  const set = (['selector', 'targetRef', 'targetRefs'] as const).filter((k) =>
    k === 'targetRefs' ? list(spec.targetRefs).length > 0 : spec[k] !== undefined,
  );
  if (set.length > 1)
    out.error(at(set[1]!), `only one of targetRefs or selector can be set (found ${set.join(' and ')})`, 'key');
  if (isObj(spec.selector))
    selectorRules(
      out,
      isObj(spec.selector.matchLabels) ? at('selector', 'matchLabels') : at('selector'),
      spec.selector.matchLabels,
      `the ${what} applies to every workload in the namespace`,
    );
}

export function wasmPluginRules(spec: Obj): Issue[] {
  const out = new Issues();
  const at = (...p: Path): Path => ['spec', ...p];

  selectorOrTargetRules(out, spec, 'plugin');
  if (spec.targetRef !== undefined) targetRefRules(out, at('targetRef'), spec.targetRef);
  list(spec.targetRefs).forEach((r, i) => {
    targetRefRules(out, at('targetRefs', i), r);
  });

  if (typeof spec.url === 'string' && spec.url !== '') {
    const { error, warning } = checkUrl(spec.url);
    if (error) out.error(at('url'), error);
    if (warning) out.warn(at('url'), warning);
    const digest = urlDigest(spec.url);
    if (digest && typeof spec.sha256 === 'string' && /^[a-f0-9]{64}$/.test(spec.sha256) && spec.sha256 !== digest)
      out.error(at('sha256'), `does not match the digest in url (sha256:${digest.slice(0, 12)}…)`);
  }

  const nonFinite = findNonFinite(spec.pluginConfig, ['pluginConfig']);
  if (nonFinite) out.error(at(...nonFinite), 'must be a JSON value: .inf and .nan cannot be passed to the plugin');

  const env = isObj(spec.vmConfig) ? list(spec.vmConfig.env) : [];
  const names = new Map<string, number>();
  env.forEach((e, i) => {
    if (!isObj(e)) return;
    if (typeof e.name === 'string' && e.name !== '') {
      if (!C_IDENTIFIER.test(e.name))
        out.error(
          at('vmConfig', 'env', i, 'name'),
          `"${e.name}" is not a valid environment variable name: it must be a C identifier (letters, digits and _, not starting with a digit)`,
        );
      const first = names.get(e.name);
      if (first !== undefined)
        out.error(at('vmConfig', 'env', i, 'name'), `duplicate env "${e.name}" (also spec.vmConfig.env[${first}])`);
      else names.set(e.name, i);
    }
    const from = enumName<string>(ENUMS.valueFrom, e.valueFrom, 'INLINE');
    if (from === 'HOST' && typeof e.value === 'string' && e.value !== '')
      out.error(at('vmConfig', 'env', i, 'value'), 'value may only be set when valueFrom is INLINE');
  });

  list(spec.match).forEach((m, i) => {
    if (!isObj(m)) return;
    const seen = new Map<number, number>();
    list(m.ports).forEach((p, j) => {
      if (!isObj(p) || typeof p.number !== 'number') return;
      const first = seen.get(p.number);
      if (first !== undefined)
        out.error(
          at('match', i, 'ports', j, 'number'),
          `duplicate port ${p.number} (also spec.match[${i}].ports[${first}])`,
        );
      else seen.set(p.number, j);
    });
  });
  return out.all;
}

// ---------------------------------------------------------------- Gateway

const PROTOCOLS = [
  'HTTP',
  'HTTPS',
  'HTTP2',
  'GRPC',
  'GRPC-WEB',
  'TCP',
  'TLS',
  'UDP',
  'MONGO',
  'REDIS',
  'MYSQL',
  'HTTP_PROXY',
];
const HTTP_PROTOCOLS = ['HTTP', 'HTTP2', 'GRPC', 'GRPC-WEB', 'HTTP_PROXY'];
const TLS_PROTOCOLS = ['HTTPS', 'TLS'];

function gatewayHostRules(out: Issues, path: Path, host: string): void {
  const slash = host.indexOf('/');
  const ns = slash >= 0 ? host.slice(0, slash) : undefined;
  const name = slash >= 0 ? host.slice(slash + 1) : host;
  if (ns !== undefined && ns !== '*' && ns !== '.' && !DNS1123_LABEL.test(ns))
    out.error(path, `invalid namespace "${ns}" in host "${host}": use namespace/host, ./host or */host`);
  else if (name === '' || (!WILDCARD_HOST.test(name) && isIP(name) === 0))
    out.error(path, `invalid host "${host}": use a DNS name, optionally with a leading "*." wildcard, or "*"`);
}

function tlsRules(out: Issues, path: Path, tls: Obj): void {
  const mode = text(tls.mode) || 'PASSTHROUGH';
  const has = (k: string) => text(tls[k]) !== '';
  if (mode === 'ISTIO_MUTUAL') {
    for (const [k, what] of [
      ['serverCertificate', 'server certificate'],
      ['privateKey', 'private key'],
      ['caCertificates', 'CA bundle'],
      ['credentialName', 'credentialName'],
    ] as const)
      if (has(k)) out.error([...path, k], `ISTIO_MUTUAL TLS cannot have associated ${what}`, 'key');
    // wasmgate's own limit (Istio accepts it): the listener could not be built.
    out.error(
      [...path, 'mode'],
      "tls.mode ISTIO_MUTUAL needs Istio's mesh certificates, which wasmgate does not have; use SIMPLE or MUTUAL with files",
    );
    return;
  }
  if (mode === 'PASSTHROUGH' || mode === 'AUTO_PASSTHROUGH') {
    if (['caCrl', 'serverCertificate', 'privateKey', 'caCertificates', 'credentialName'].some(has))
      out.warn([...path, 'mode'], `${mode} mode does not use certificates, they will be ignored`, 'key');
    return;
  }
  // credentialName / credentialNames are read from --secrets-dir (src/config/credentials.ts).
  // wasmgate's own limit (Istio accepts it): tlsCertificates are not read.
  if (list(tls.tlsCertificates).length > 0 && !(has('serverCertificate') && has('privateKey')))
    out.error(
      [...path, 'tlsCertificates'],
      'tls.tlsCertificates is not read by wasmgate; give serverCertificate and privateKey file paths',
      'key',
    );
  const remote = has('credentialName') || list(tls.credentialNames).length > 0 || list(tls.tlsCertificates).length > 0;
  if (!remote) {
    if (!has('serverCertificate'))
      out.error([...path, 'mode'], `${mode} TLS requires a server certificate (or a credentialName)`);
    if (!has('privateKey')) out.error([...path, 'mode'], `${mode} TLS requires a private key (or a credentialName)`);
    if (mode !== 'SIMPLE' && !has('caCertificates'))
      out.error([...path, 'mode'], `${mode} TLS requires a client CA bundle`);
  }
  if (has('caCrl')) {
    if (has('credentialName'))
      out.error([...path, 'caCrl'], 'CRL is not supported with credentialName: put the CRL in the credential', 'key');
    else if (mode === 'SIMPLE') out.error([...path, 'caCrl'], 'CRL is not supported with SIMPLE TLS', 'key');
  }
}

export function gatewayRules(spec: Obj, name: string): Issue[] {
  const out = new Issues();
  if (name !== '' && !DNS1123_LABEL.test(name))
    out.error(['metadata', 'name'], `invalid gateway name "${name}": it must be a DNS label (no dots)`);
  if (isObj(spec.selector) && Object.keys(spec.selector).length === 0)
    out.warn(['spec', 'selector'], 'empty selector: the gateway applies to every workload', 'key');
  if (Array.isArray(spec.servers) && spec.servers.length === 0)
    out.error(['spec', 'servers'], 'gateway must have at least one server', 'key');
  const portNames = new Map<string, number>();
  list(spec.servers).forEach((server, i) => {
    if (!isObj(server)) return;
    const at = (...p: Path): Path => ['spec', 'servers', i, ...p];
    if (Array.isArray(server.hosts)) {
      if (server.hosts.length === 0) out.error(at('hosts'), 'server config must contain at least one host', 'key');
      server.hosts.forEach((h, j) => {
        if (typeof h === 'string') gatewayHostRules(out, at('hosts', j), h);
      });
    }
    const bind = text(server.bind);
    const unix = bind.startsWith('unix://');
    if (bind !== '' && !unix && isIP(bind) === 0)
      out.error(at('bind'), `bind must be an IP address or unix:///path, got "${bind}"`);
    const port = server.port;
    if (!isObj(port)) return;
    if (typeof port.number === 'number') {
      if (unix && port.number !== 0)
        out.error(at('port', 'number'), 'port number must be 0 for a unix domain socket bind');
      if (!unix && port.number === 0) out.error(at('port', 'number'), 'must be between 1 and 65535, got 0');
    }
    if (typeof port.targetPort === 'number' && port.targetPort > 0)
      out.error(at('port', 'targetPort'), 'targetPort has no impact on Gateways', 'key');
    if (typeof port.name === 'string') {
      if (port.name === '') out.error(at('port', 'name'), 'port name must be set');
      const first = portNames.get(port.name);
      if (first !== undefined)
        out.error(
          at('port', 'name'),
          `port names in servers must be unique: duplicate name "${port.name}" (also spec.servers[${first}])`,
        );
      else portNames.set(port.name, i);
    }
    if (typeof port.protocol !== 'string') return;
    const protocol = port.protocol.toUpperCase();
    if (!PROTOCOLS.includes(protocol)) {
      out.error(
        at('port', 'protocol'),
        `invalid protocol "${port.protocol}", supported protocols are ${PROTOCOLS.filter((p) => p !== 'HTTP_PROXY').join(', ')}`,
      );
      return;
    }
    const tls = server.tls;
    if (TLS_PROTOCOLS.includes(protocol)) {
      if (tls === undefined) out.error(at('port', 'protocol'), `server must have TLS settings (tls) for ${protocol}`);
    } else if (isObj(tls)) {
      const passthrough = ['', 'PASSTHROUGH', 'AUTO_PASSTHROUGH'].includes(text(tls.mode));
      const certs = ['caCertificates', 'privateKey', 'serverCertificate'].some((k) => text(tls[k]) !== '');
      if (!HTTP_PROTOCOLS.includes(protocol))
        out.error(at('tls'), `server cannot have TLS settings for ${protocol} ports (only HTTPS and TLS)`, 'key');
      else if (!passthrough || certs)
        out.error(at('tls'), 'server cannot have TLS settings for plain text HTTP ports (only httpsRedirect)', 'key');
    }
    if (isObj(tls)) {
      if (tls.httpsRedirect === true && !HTTP_PROTOCOLS.includes(protocol))
        out.warn(at('tls', 'httpsRedirect'), 'tls.httpsRedirect should only be used with http servers', 'key');
      if (TLS_PROTOCOLS.includes(protocol)) tlsRules(out, at('tls'), tls);
    }
  });
  return out.all;
}

// ---------------------------------------------------------------- VirtualService

function regexRule(out: Issues, path: Path, m: unknown): void {
  if (!isObj(m) || typeof m.regex !== 'string') return;
  const problem = re2Problem(m.regex);
  if (problem !== undefined) out.error([...path, 'regex'], `invalid regex: ${problem}`);
}

function destinationRules(out: Issues, path: Path, d: unknown): void {
  if (!isObj(d)) return;
  if (typeof d.host === 'string' && d.host === '') out.error([...path, 'host'], 'destination host must not be empty');
  const port = isObj(d.port) ? d.port.number : undefined;
  if (typeof port === 'number' && (port < 1 || port > 65535))
    out.error([...path, 'port', 'number'], `must be between 1 and 65535, got ${port}`);
}

function gatewayNameRules(out: Issues, path: Path, gateways: unknown): void {
  list(gateways).forEach((g, i) => {
    if (typeof g !== 'string') return;
    const parts = g.split('/');
    const ok =
      g === 'mesh' ||
      (parts.length === 1 && /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(g)) ||
      (parts.length === 2 && DNS1123_LABEL.test(parts[0]!) && /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(parts[1]!));
    if (!ok) out.error([...path, i], `invalid gateway "${g}": use name, namespace/name or mesh`);
  });
}

function httpRouteRules(out: Issues, route: Obj, at: (...p: Path) => Path, delegate: boolean): void {
  const has = (k: string) => route[k] !== undefined;
  const routes = list(route.route);
  if (has('delegate')) {
    if (has('redirect')) out.error(at('redirect'), 'an HTTP route with delegate must not specify redirect', 'key');
    if (has('route')) out.error(at('route'), 'an HTTP route with delegate must not specify route', 'key');
  } else if (has('redirect')) {
    for (const k of ['route', 'fault', 'rewrite', 'directResponse'])
      if (has(k) && (k !== 'route' || routes.length > 0))
        out.error(at(k), `HTTP route cannot contain both ${k} and redirect`, 'key');
  } else if (has('directResponse')) {
    for (const k of ['route', 'fault', 'rewrite'])
      if (has(k) && (k !== 'route' || routes.length > 0))
        out.error(at(k), `HTTP route cannot contain both ${k} and directResponse`, 'key');
  } else if (routes.length === 0 && (route.route === undefined || Array.isArray(route.route))) {
    out.error(at(), 'HTTP route, redirect or directResponse is required', 'key');
  }
  if (delegate && has('delegate')) out.error(at('delegate'), 'a delegate HTTP route cannot contain delegate', 'key');
  if (has('mirror') && list(route.mirrors).length > 0)
    out.error(at('mirrors'), 'HTTP route cannot contain both mirror and mirrors', 'key');

  list(route.match).forEach((m, i) => {
    if (!isObj(m)) return;
    for (const k of ['uri', 'scheme', 'method', 'authority']) regexRule(out, at('match', i, k), m[k]);
    for (const k of ['headers', 'queryParams', 'withoutHeaders'])
      if (isObj(m[k]))
        for (const [name, sm] of Object.entries(m[k] as Obj)) {
          if (k !== 'queryParams' && !/^[-_A-Za-z0-9]+$/.test(name) && !name.startsWith('@request.auth.claims.'))
            out.error(at('match', i, k, name), `header name "${name}" is not a valid header name`, 'key');
          if (!(k === 'withoutHeaders' && isObj(sm) && sm.regex === '*')) regexRule(out, at('match', i, k, name), sm);
        }
    if (typeof m.port === 'number' && (m.port < 1 || m.port > 65535))
      out.error(at('match', i, 'port'), `must be between 1 and 65535, got ${m.port}`);
    if (typeof m.sourceNamespace === 'string' && m.sourceNamespace !== '' && !DNS1123_LABEL.test(m.sourceNamespace))
      out.error(at('match', i, 'sourceNamespace'), `sourceNamespace match "${m.sourceNamespace}" is invalid`);
    gatewayNameRules(out, at('match', i, 'gateways'), m.gateways);
  });

  routes.forEach((r, i) => {
    if (!isObj(r)) return;
    destinationRules(out, at('route', i, 'destination'), r.destination);
    if (typeof r.weight === 'number' && r.weight < 0) out.error(at('route', i, 'weight'), `weight ${r.weight} < 0`);
  });
  if (routes.length > 1 && routes.every((r) => isObj(r) && typeof r.weight === 'number')) {
    const total = routes.reduce<number>((sum, r) => sum + ((r as Obj).weight as number), 0);
    if (total === 0) out.error(at('route'), 'the destination weights add up to 0: no traffic can be routed', 'key');
  }
  if (has('mirror')) destinationRules(out, at('mirror'), route.mirror);
  list(route.mirrors).forEach((m, i) => {
    if (isObj(m)) destinationRules(out, at('mirrors', i, 'destination'), m.destination);
  });
  if (route.mirrorPercent !== undefined || route.mirror_percent !== undefined) {
    const key = route.mirrorPercent !== undefined ? 'mirrorPercent' : 'mirror_percent';
    const value = route[key];
    if (typeof value === 'number' && value > 100) out.error(at(key), `must have a max value of 100 (it has ${value})`);
    out.warn(at(key), `using deprecated setting "${key}", use "mirrorPercentage" instead`, 'key');
  }
  if (isObj(route.directResponse) && typeof route.directResponse.status === 'number') {
    const status = route.directResponse.status;
    if (status < 200 || status > 599)
      out.error(at('directResponse', 'status'), `must be between 200 and 599, got ${status}`);
  }
  if (isObj(route.redirect)) {
    const code = route.redirect.redirectCode;
    if (typeof code === 'number' && code !== 0 && (code < 300 || code > 399))
      out.error(at('redirect', 'redirectCode'), `must be a 3xx status, got ${code}`);
    if (typeof route.redirect.port === 'number' && (route.redirect.port < 1 || route.redirect.port > 65535))
      out.error(at('redirect', 'port'), `must be between 1 and 65535, got ${route.redirect.port}`);
  }
  if (isObj(route.rewrite)) {
    const rr = route.rewrite.uriRegexRewrite;
    if (route.rewrite.uri !== undefined && rr !== undefined)
      out.error(at('rewrite', 'uriRegexRewrite'), 'only one of uri or uriRegexRewrite can be set', 'key');
    if (isObj(rr)) {
      if (typeof rr.match !== 'string' || rr.match === '')
        out.error(at('rewrite', 'uriRegexRewrite'), 'uriRegexRewrite needs a match', 'key');
      else regexRule(out, at('rewrite', 'uriRegexRewrite'), { regex: rr.match });
      if (rr.rewrite === undefined)
        out.error(at('rewrite', 'uriRegexRewrite'), 'uriRegexRewrite needs a rewrite', 'key');
    }
  }
  if (isObj(route.retries) && typeof route.retries.attempts === 'number' && route.retries.attempts < 0)
    out.error(at('retries', 'attempts'), 'attempts cannot be negative');
  if (isObj(route.fault)) {
    const { delay, abort } = route.fault;
    if (isObj(delay) && delay.fixedDelay === undefined && delay.exponentialDelay === undefined)
      out.error(at('fault', 'delay'), 'delay needs fixedDelay', 'key');
    if (isObj(abort)) {
      if (abort.httpStatus === undefined && abort.grpcStatus === undefined && abort.http2Error === undefined)
        out.error(at('fault', 'abort'), 'abort needs httpStatus, grpcStatus or http2Error', 'key');
      if (typeof abort.httpStatus === 'number' && (abort.httpStatus < 200 || abort.httpStatus > 599))
        out.error(at('fault', 'abort', 'httpStatus'), `must be between 200 and 599, got ${abort.httpStatus}`);
    }
  }
  for (const side of ['request', 'response'] as const) {
    const ops = isObj(route.headers) ? route.headers[side] : undefined;
    if (!isObj(ops)) continue;
    for (const op of ['set', 'add'] as const)
      if (isObj(ops[op]))
        for (const name of Object.keys(ops[op] as Obj)) {
          const authority = /^(:authority|host)$/i.test(name);
          if (name.startsWith(':') ? !(side === 'request' && authority) : side === 'response' && /^host$/i.test(name))
            out.error(at('headers', side, op, name), `invalid header "${name}": cannot be modified`, 'key');
        }
    list(ops.remove).forEach((name, i) => {
      if (typeof name === 'string' && (name.startsWith(':') || /^host$/i.test(name)))
        out.error(at('headers', side, 'remove', i), `invalid header "${name}": cannot be removed`);
    });
  }
}

export function virtualServiceRules(spec: Obj): Issue[] {
  const out = new Issues();
  const hosts = list(spec.hosts);
  const delegate = hosts.length === 0;
  if (delegate) {
    if (list(spec.gateways).length > 0)
      out.error(['spec', 'gateways'], 'a delegate VirtualService (no hosts) must have no gateways', 'key');
    if (list(spec.tls).length > 0)
      out.error(['spec', 'tls'], 'a delegate VirtualService (no hosts) must have no tls routes', 'key');
  }
  hosts.forEach((h, i) => {
    if (typeof h !== 'string') return;
    const slash = h.indexOf('/');
    if (slash >= 0)
      out.error(['spec', 'hosts', i], `invalid host "${h}": a VirtualService host has no namespace/ part`);
    else if (h === '' || (!WILDCARD_HOST.test(h) && isIP(h.replace(/\/\d+$/, '')) === 0))
      out.error(['spec', 'hosts', i], `invalid host "${h}"`);
  });
  gatewayNameRules(out, ['spec', 'gateways'], spec.gateways);
  const names = new Map<string, number>();
  list(spec.http).forEach((route, i) => {
    if (!isObj(route)) return;
    httpRouteRules(out, route, (...p) => ['spec', 'http', i, ...p], delegate);
    if (typeof route.name === 'string' && route.name !== '') {
      const first = names.get(route.name);
      if (first !== undefined)
        out.warn(['spec', 'http', i, 'name'], `duplicate route name "${route.name}" (also spec.http[${first}])`);
      else names.set(route.name, i);
    }
  });
  for (const kind of ['tcp', 'tls'] as const)
    list(spec[kind]).forEach((route, i) => {
      if (!isObj(route)) return;
      list(route.route).forEach((r, j) => {
        if (isObj(r)) destinationRules(out, ['spec', kind, i, 'route', j, 'destination'], r.destination);
      });
      list(route.match).forEach((m, j) => {
        if (isObj(m)) gatewayNameRules(out, ['spec', kind, i, 'match', j, 'gateways'], m.gateways);
      });
    });
  return out.all;
}

// ---------------------------------------------------------------- ServiceEntry

export function serviceEntryRules(spec: Obj): Issue[] {
  const out = new Issues();
  const resolution = text(spec.resolution) || 'NONE';
  const endpoints = list(spec.endpoints);
  if (spec.workloadSelector !== undefined && spec.endpoints !== undefined)
    out.error(['spec', 'workloadSelector'], 'only one of workloadSelector or endpoints can be set', 'key');
  if (isObj(spec.workloadSelector))
    selectorRules(
      out,
      ['spec', 'workloadSelector', 'labels'],
      spec.workloadSelector.labels,
      'it selects every workload',
    );
  list(spec.hosts).forEach((h, i) => {
    if (typeof h !== 'string') return;
    if (h === '*') out.error(['spec', 'hosts', i], 'hostname cannot be wildcard "*"');
    else if (!WILDCARD_HOST.test(h)) out.error(['spec', 'hosts', i], `invalid host "${h}"`);
  });
  let cidr = false;
  list(spec.addresses).forEach((a, i) => {
    if (typeof a !== 'string') return;
    const [ip, bits, ...rest] = a.split('/');
    const family = isIP(ip ?? '');
    const max = family === 6 ? 128 : 32;
    if (bits !== undefined) cidr = true;
    if (family === 0 || rest.length > 0 || (bits !== undefined && !(/^\d+$/.test(bits) && Number(bits) <= max)))
      out.error(['spec', 'addresses', i], `invalid address "${a}": use an IP address or CIDR block`);
  });
  if (cidr && resolution !== 'NONE' && resolution !== 'STATIC')
    out.error(['spec', 'resolution'], 'CIDR addresses are allowed only for NONE/STATIC resolution types');

  const portNames = new Map<string, number>();
  const portNumbers = new Map<number, number>();
  list(spec.ports).forEach((p, i) => {
    if (!isObj(p)) return;
    if (typeof p.name === 'string') {
      if (!DNS1123_LABEL.test(p.name)) out.error(['spec', 'ports', i, 'name'], `invalid port name "${p.name}"`);
      const first = portNames.get(p.name);
      if (first !== undefined)
        out.error(
          ['spec', 'ports', i, 'name'],
          `service entry port name "${p.name}" already defined (spec.ports[${first}])`,
        );
      else portNames.set(p.name, i);
    }
    if (typeof p.number === 'number') {
      const first = portNumbers.get(p.number);
      if (first !== undefined)
        out.error(
          ['spec', 'ports', i, 'number'],
          `service entry port ${p.number} already defined (spec.ports[${first}])`,
        );
      else portNumbers.set(p.number, i);
    }
    if (typeof p.protocol === 'string' && p.protocol !== '' && !PROTOCOLS.includes(p.protocol.toUpperCase()))
      out.error(['spec', 'ports', i, 'protocol'], `unsupported protocol: ${p.protocol}`);
  });

  if (resolution === 'NONE' && endpoints.length > 0)
    out.error(['spec', 'endpoints'], 'no endpoints should be provided for resolution type NONE', 'key');
  if (resolution === 'DNS_ROUND_ROBIN' && endpoints.length > 1)
    out.error(['spec', 'endpoints'], 'there must only be 0 or 1 endpoint for resolution mode DNS_ROUND_ROBIN', 'key');
  if ((resolution === 'DNS' || resolution === 'DNS_ROUND_ROBIN') && endpoints.length === 0)
    list(spec.hosts).forEach((h, i) => {
      if (typeof h === 'string' && h.startsWith('*'))
        out.error(
          ['spec', 'hosts', i],
          `hosts must be FQDN if no endpoints are provided for resolution mode ${resolution}`,
        );
    });
  endpoints.forEach((e, i) => {
    if (!isObj(e)) return;
    const at = (...p: Path): Path => ['spec', 'endpoints', i, ...p];
    const address = text(e.address);
    if (address === '') out.error(at(), 'Address is required', 'key');
    else if (address.startsWith('unix://')) {
      if (!/^unix:\/\/(\/.*[^/]|@.+)$/.test(address))
        out.error(at('address'), 'UDS must be an absolute path or abstract socket, and not a folder');
      if (e.ports !== undefined) out.error(at('ports'), 'UDS may not include ports', 'key');
    } else if (resolution === 'STATIC' && isIP(address) === 0)
      out.error(at('address'), `endpoint address "${address}" is not a valid IP address (resolution STATIC)`);
    else if (isIP(address) === 0 && !WILDCARD_HOST.test(address))
      out.error(at('address'), `endpoint address "${address}" is not a valid FQDN or an IP address`);
    if (isObj(e.ports))
      for (const name of Object.keys(e.ports))
        if (!portNames.has(name))
          out.error(at('ports', name), `endpoint port "${name}" is not defined by the service entry`, 'key');
  });
  return out.all;
}
