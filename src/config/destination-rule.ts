// DestinationRule (networking.istio.io): the schema, field for field after Istio's CRD, and
// Istio's validation (ValidateDestinationRule in istio/istio pkg/config/validation).
import type { Anchor, Path } from './position.ts';
import { obj, type Schema } from './schemas.ts';
import type { Issue } from './validate.ts';

const str: Schema = { type: 'string' };
const bool: Schema = { type: 'boolean' };
const int32: Schema = { type: 'integer', minimum: -2147483648, maximum: 2147483647 };
const uint32: Schema = { type: 'integer', minimum: 0, maximum: 4294967295 };
const duration: Schema = { type: 'string', duration: true };
const strList: Schema = { type: 'array', items: str };
const strMap: Schema = { type: 'object', additionalProperties: str };
const list = (items: Schema, extra: Schema = {}): Schema => ({ type: 'array', items, ...extra });
const protoEnum = (names: readonly string[]): Schema => ({ type: ['string', 'integer'], protoEnum: names });

export const LB_SIMPLE = ['UNSPECIFIED', 'RANDOM', 'PASSTHROUGH', 'ROUND_ROBIN', 'LEAST_REQUEST', 'LEAST_CONN'];
export const CLIENT_TLS_MODES = ['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL'];

const localityLbSetting = obj({
  distribute: list(obj({ from: str, to: { type: 'object', additionalProperties: uint32 } })),
  failover: list(obj({ from: str, to: str })),
  failoverPriority: strList,
  enabled: bool,
});

const loadBalancer = obj(
  {
    simple: protoEnum(LB_SIMPLE),
    consistentHash: obj(
      {
        httpHeaderName: str,
        httpCookie: obj({
          name: str,
          path: str,
          ttl: { type: 'string' },
          attributes: list(obj({ name: str, value: str })),
        }),
        useSourceIp: bool,
        httpQueryParameterName: str,
        ringHash: obj({ minimumRingSize: uint32 }),
        maglev: obj({ tableSize: uint32 }),
        minimumRingSize: uint32,
      },
      [],
      { exclusive: ['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName'] },
    ),
    localityLbSetting,
    warmupDurationSecs: duration,
    warmup: obj({ duration, minimumPercent: { type: 'number' }, aggression: { type: 'number' } }),
  },
  [],
  { exclusive: ['simple', 'consistentHash'] },
);

const connectionPool = obj({
  tcp: obj({
    maxConnections: int32,
    connectTimeout: duration,
    tcpKeepalive: obj({ probes: uint32, time: duration, interval: duration }),
    maxConnectionDuration: duration,
    idleTimeout: duration,
  }),
  http: obj({
    http1MaxPendingRequests: int32,
    http2MaxRequests: int32,
    maxRequestsPerConnection: int32,
    maxRetries: int32,
    idleTimeout: duration,
    h2UpgradePolicy: protoEnum(['DEFAULT', 'DO_NOT_UPGRADE', 'UPGRADE']),
    useClientProtocol: bool,
    maxConcurrentStreams: int32,
  }),
});

const outlierDetection = obj({
  splitExternalLocalOriginErrors: bool,
  consecutiveLocalOriginFailures: uint32,
  consecutiveGatewayErrors: uint32,
  consecutive5xxErrors: uint32,
  interval: duration,
  baseEjectionTime: duration,
  maxEjectionPercent: int32,
  minHealthPercent: int32,
  consecutiveErrors: int32,
});

const clientTls = obj({
  mode: protoEnum(CLIENT_TLS_MODES),
  clientCertificate: str,
  privateKey: str,
  caCertificates: str,
  credentialName: str,
  subjectAltNames: strList,
  sni: str,
  insecureSkipVerify: bool,
  caCrl: str,
});

const policyFields = { loadBalancer, connectionPool, outlierDetection, tls: clientTls };

const trafficPolicy = obj({
  ...policyFields,
  portLevelSettings: list(obj({ port: obj({ number: uint32 }), ...policyFields })),
  tunnel: obj({ protocol: str, targetHost: str, targetPort: uint32 }),
  proxyProtocol: obj({ version: protoEnum(['V1', 'V2']) }),
  retryBudget: obj({ percent: obj({ value: { type: 'number' } }), minRetryConcurrency: uint32 }),
});

export const destinationRuleSpec = obj(
  {
    host: str,
    trafficPolicy,
    subsets: list(obj({ name: str, labels: strMap, trafficPolicy }, ['name'])),
    exportTo: strList,
    workloadSelector: obj({ matchLabels: strMap }),
  },
  ['host'],
);

// ---------------------------------------------------------------- Istio's rules

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const enumName = (v: unknown, names: readonly string[]): string | undefined =>
  typeof v === 'number' ? names[v] : typeof v === 'string' ? v : undefined;

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const HOST_LABEL = '[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?';
const WILDCARD_HOST = new RegExp(`^(\\*|(\\*\\.)?${HOST_LABEL}(\\.${HOST_LABEL})*\\.?)$`);

class Out {
  readonly all: Issue[] = [];
  error(path: Path, message: string, anchor: Anchor = 'value'): void {
    this.all.push({ path, anchor, message, severity: 'error' });
  }
  warn(path: Path, message: string, anchor: Anchor = 'value'): void {
    this.all.push({ path, anchor, message, severity: 'warning' });
  }
}

function isPrime(n: number): boolean {
  if (n < 2) return false;
  for (let i = 2; i * i <= n; i++) if (n % i === 0) return false;
  return true;
}

function nonNegative(out: Out, at: Path, o: Obj, fields: string[]): void {
  for (const f of fields)
    if (typeof o[f] === 'number' && (o[f] as number) < 0) out.error([...at, f], `${f} must be >= 0`);
}

function loadBalancerRules(out: Out, at: Path, lb: unknown): void {
  if (!isObj(lb)) return;
  if (enumName(lb.simple, LB_SIMPLE) === 'LEAST_CONN')
    out.warn([...at, 'simple'], 'LEAST_CONN is deprecated, use LEAST_REQUEST (wasmgate treats it as LEAST_REQUEST)');
  const ch = lb.consistentHash;
  if (isObj(ch)) {
    const cookie = ch.httpCookie;
    if (isObj(cookie)) {
      if (typeof cookie.name !== 'string' || cookie.name === '')
        out.error([...at, 'consistentHash', 'httpCookie'], 'name required for HttpCookie', 'key');
      if (cookie.ttl === undefined)
        out.error([...at, 'consistentHash', 'httpCookie'], 'ttl required for HttpCookie', 'key');
      else if (typeof cookie.ttl === 'string' && !/^(0|([0-9]+(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+)$/.test(cookie.ttl))
        out.error([...at, 'consistentHash', 'httpCookie', 'ttl'], `invalid duration "${cookie.ttl}"`);
    }
    if (ch.ringHash !== undefined && ch.maglev !== undefined)
      out.error([...at, 'consistentHash', 'maglev'], 'only one of ringHash or maglev can be set', 'key');
    const table = isObj(ch.maglev) ? ch.maglev.tableSize : undefined;
    if (typeof table === 'number' && table !== 0 && !isPrime(table))
      out.error([...at, 'consistentHash', 'maglev', 'tableSize'], `tableSize must be a prime number, got ${table}`);
    if (
      ch.httpHeaderName === undefined &&
      ch.httpCookie === undefined &&
      ch.useSourceIp === undefined &&
      ch.httpQueryParameterName === undefined
    )
      out.error(
        [...at, 'consistentHash'],
        'consistentHash needs a hash key (httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName)',
        'key',
      );
  }
  const locality = lb.localityLbSetting;
  if (isObj(locality) && locality.distribute !== undefined && locality.failover !== undefined)
    out.error([...at, 'localityLbSetting'], 'can not simultaneously specify distribute and failover', 'key');
}

function connectionPoolRules(out: Out, at: Path, cp: unknown): void {
  if (!isObj(cp)) return;
  if (cp.http === undefined && cp.tcp === undefined)
    out.error(at, 'connection pool must have at least one field', 'key');
  if (isObj(cp.http))
    nonNegative(out, [...at, 'http'], cp.http, [
      'http1MaxPendingRequests',
      'http2MaxRequests',
      'maxRequestsPerConnection',
      'maxRetries',
      'maxConcurrentStreams',
    ]);
  if (isObj(cp.tcp)) nonNegative(out, [...at, 'tcp'], cp.tcp, ['maxConnections']);
}

function outlierRules(out: Out, at: Path, od: unknown): void {
  if (!isObj(od)) return;
  nonNegative(out, at, od, ['consecutiveErrors']);
  for (const f of ['maxEjectionPercent', 'minHealthPercent'])
    if (typeof od[f] === 'number' && ((od[f] as number) < 0 || (od[f] as number) > 100))
      out.error([...at, f], `${f} must be in range [0, 100]`);
  if (od.consecutiveErrors !== undefined)
    out.warn([...at, 'consecutiveErrors'], 'consecutiveErrors is deprecated, use consecutive5xxErrors', 'key');
}

function tlsRules(out: Out, at: Path, tls: unknown): void {
  if (!isObj(tls)) return;
  const mode = enumName(tls.mode, CLIENT_TLS_MODES) ?? 'DISABLE';
  const certs = ['clientCertificate', 'privateKey', 'caCertificates'].filter(
    (f) => tls[f] !== undefined && tls[f] !== '',
  );
  if (mode === 'ISTIO_MUTUAL') {
    if (certs.length > 0 || tls.credentialName)
      out.error(
        [...at, 'mode'],
        'cannot specify client certificates, CA certificate or credentialName with ISTIO_MUTUAL',
      );
    return;
  }
  if (mode === 'DISABLE') return;
  if (typeof tls.credentialName === 'string' && tls.credentialName !== '') {
    if (certs.length > 0)
      out.error(
        [...at, 'credentialName'],
        'cannot specify client certificates or CA certificate if credentialName is set',
      );
    return;
  }
  if (mode === 'MUTUAL') {
    if (!tls.clientCertificate) out.error([...at, 'mode'], 'client certificate required for mutual tls');
    if (!tls.privateKey) out.error([...at, 'mode'], 'private key required for mutual tls');
  }
  if (mode === 'SIMPLE' && (tls.clientCertificate || tls.privateKey))
    out.warn([...at, 'mode'], 'clientCertificate and privateKey are ignored with SIMPLE TLS (use MUTUAL)');
}

function policyRules(out: Out, at: Path, policy: unknown, subset: boolean): void {
  if (!isObj(policy)) return;
  if (Object.keys(policy).length === 0) out.error(at, 'traffic policy must have at least one field', 'key');
  loadBalancerRules(out, [...at, 'loadBalancer'], policy.loadBalancer);
  connectionPoolRules(out, [...at, 'connectionPool'], policy.connectionPool);
  outlierRules(out, [...at, 'outlierDetection'], policy.outlierDetection);
  tlsRules(out, [...at, 'tls'], policy.tls);
  const ports = new Map<number, number>();
  arr(policy.portLevelSettings).forEach((p, i) => {
    if (!isObj(p)) return;
    const pat: Path = [...at, 'portLevelSettings', i];
    const number = isObj(p.port) ? p.port.number : undefined;
    if (typeof number !== 'number') out.error(pat, 'port must be specified', 'key');
    else if (number < 1 || number > 65535)
      out.error([...pat, 'port', 'number'], `must be between 1 and 65535, got ${number}`);
    else {
      const first = ports.get(number);
      if (first !== undefined)
        out.error(
          [...pat, 'port', 'number'],
          `duplicate port-level settings for port ${number} (also portLevelSettings[${first}])`,
        );
      else ports.set(number, i);
    }
    loadBalancerRules(out, [...pat, 'loadBalancer'], p.loadBalancer);
    connectionPoolRules(out, [...pat, 'connectionPool'], p.connectionPool);
    outlierRules(out, [...pat, 'outlierDetection'], p.outlierDetection);
    tlsRules(out, [...pat, 'tls'], p.tls);
  });
  if (isObj(policy.tunnel)) {
    const t = policy.tunnel;
    if (subset) out.error([...at, 'tunnel'], 'tunnel is not supported in a subset traffic policy', 'key');
    const protocol = typeof t.protocol === 'string' ? t.protocol : 'CONNECT';
    if (protocol !== 'CONNECT' && protocol !== 'POST')
      out.error([...at, 'tunnel', 'protocol'], `tunnel protocol must be CONNECT or POST, got "${protocol}"`);
    if (typeof t.targetHost !== 'string' || t.targetHost === '')
      out.error([...at, 'tunnel'], 'tunnel target host must be specified', 'key');
    if (typeof t.targetPort !== 'number' || t.targetPort < 1 || t.targetPort > 65535)
      out.error([...at, 'tunnel'], 'tunnel target port must be between 1 and 65535', 'key');
  }
}

function exportToRules(out: Out, exportTo: unknown): void {
  const seen = new Set<string>();
  const all = arr(exportTo);
  all.forEach((e, i) => {
    if (typeof e !== 'string') return;
    if (seen.has(e)) out.error(['spec', 'exportTo', i], `duplicate entry in exportTo: ${e}`);
    seen.add(e);
    if (e !== '.' && e !== '*' && e !== '~' && !DNS1123_LABEL.test(e))
      out.error(['spec', 'exportTo', i], `invalid exportTo "${e}": use ".", "*" or a namespace`);
  });
  if (seen.has('*') && all.length > 1)
    out.error(['spec', 'exportTo'], 'cannot have both public (*) and non-public exportTo values', 'key');
}

export function destinationRuleRules(spec: Obj): Issue[] {
  const out = new Out();
  if (typeof spec.host === 'string') {
    const h = spec.host;
    if (h === '') out.error(['spec', 'host'], 'host must not be empty');
    else if (h.includes('/'))
      out.error(['spec', 'host'], `invalid host "${h}": a DestinationRule host has no namespace/ part`);
    else if (!WILDCARD_HOST.test(h)) out.error(['spec', 'host'], `invalid host "${h}"`);
  }
  policyRules(out, ['spec', 'trafficPolicy'], spec.trafficPolicy, false);
  const names = new Map<string, number>();
  arr(spec.subsets).forEach((s, i) => {
    if (!isObj(s)) return;
    const at: Path = ['spec', 'subsets', i];
    if (typeof s.name === 'string') {
      if (s.name === '') out.error([...at, 'name'], 'name is required');
      else if (!DNS1123_LABEL.test(s.name))
        out.error([...at, 'name'], `subset name is invalid: "${s.name}" (a DNS label)`);
      const first = names.get(s.name);
      if (first !== undefined)
        out.error([...at, 'name'], `duplicate subset names: "${s.name}" (also spec.subsets[${first}])`);
      else names.set(s.name, i);
    }
    if (isObj(s.labels))
      for (const [k, v] of Object.entries(s.labels)) {
        if (k === '' || k.includes('*') || String(v).includes('*'))
          out.error([...at, 'labels', k], `invalid label "${k}=${String(v)}"`, 'key');
      }
    policyRules(out, [...at, 'trafficPolicy'], s.trafficPolicy, true);
  });
  exportToRules(out, spec.exportTo);
  if (isObj(spec.workloadSelector)) {
    const labels = spec.workloadSelector.matchLabels;
    if (!isObj(labels) || Object.keys(labels).length === 0)
      out.warn(
        ['spec', 'workloadSelector'],
        'workload selector specified without labels: it selects every workload',
        'key',
      );
  }
  return out.all;
}
