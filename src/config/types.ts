// The domain types every other module imports (types only).

export interface Problem {
  severity: 'error' | 'warning';
  /** The file as the user named it (relative if they passed a relative path). */
  file: string;
  /** 1-based. */
  line: number;
  /** 1-based. */
  col: number;
  /** The resource's kind, or "-" for YAML syntax errors, unreadable files and documents without a kind. */
  kind: string;
  /** "namespace/name", or "-" when the document has no name (yet). */
  name: string;
  /** e.g. "spec.phse" or "spec.vmConfig.env[0].name"; "(file)" or "(yaml)" for file and syntax problems. */
  field: string;
  message: string;
}

export interface Meta {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export interface Resource<S> {
  apiVersion: string;
  kind: string;
  metadata: Meta;
  spec: S;
  file: string;
  /** Where the resource's mapping starts (1-based). */
  line: number;
  col: number;
  /** Absolute folder of the file, against which relative file:// URLs resolve. */
  dir: string;
}

export type Phase = 'UNSPECIFIED_PHASE' | 'AUTHN' | 'AUTHZ' | 'STATS';
export type FailStrategy = 'FAIL_CLOSE' | 'FAIL_OPEN' | 'FAIL_RELOAD';
export type PullPolicy = 'UNSPECIFIED_POLICY' | 'IfNotPresent' | 'Always';
export type PluginType = 'HTTP' | 'NETWORK';
export type WorkloadMode = 'UNDEFINED' | 'CLIENT' | 'SERVER' | 'CLIENT_AND_SERVER';
export type EnvValueSource = 'INLINE' | 'HOST';

export interface EnvVar {
  name: string;
  valueFrom: EnvValueSource;
  value: string;
}

export interface TargetRef {
  /** "" means the core group. */
  group: string;
  kind: string;
  name: string;
  namespace?: string;
}

export interface TrafficSelector {
  /** UNDEFINED (and absent) normalize to CLIENT_AND_SERVER, as Istio documents. */
  mode: WorkloadMode;
  ports: number[];
}

/** A WasmPlugin spec with Istio's defaults applied. */
export interface WasmPluginSpec {
  selector?: { matchLabels: Record<string, string> };
  targetRef?: TargetRef;
  targetRefs?: TargetRef[];
  /**
   * Normalized: no scheme means oci://; a relative file:// path (file://./x.wasm, file://x.wasm)
   * is resolved against Resource.dir to an absolute file:// URL; schemes are lower-cased.
   */
  url: string;
  sha256?: string;
  /** As written (UNSPECIFIED_POLICY when absent); see effectivePullPolicy() for what it means. */
  imagePullPolicy: PullPolicy;
  imagePullSecret?: string;
  /** Hidden in Istio's docs; accepted and kept, never used. */
  verificationKey?: string;
  /** google.protobuf.Struct: any JSON object. */
  pluginConfig?: Record<string, unknown>;
  pluginName?: string;
  phase: Phase;
  /** Default 0; higher runs first within a phase. */
  priority: number;
  /** Default FAIL_CLOSE. */
  failStrategy: FailStrategy;
  /** env[].valueFrom defaults to INLINE, env[].value to "". */
  vmConfig?: { env: EnvVar[] };
  /** [] when absent (matches all traffic). */
  match: TrafficSelector[];
  /** UNSPECIFIED_PLUGIN_TYPE (and absent) normalize to HTTP. */
  type: PluginType;
}

// Gateway, VirtualService and ServiceEntry are validated against Istio's full field set and kept
// as written (after dropping null-valued fields, as the Kubernetes API server does). The interfaces
// name the fields wasmgate reads; the index signatures keep the rest reachable.

export interface StringMatch {
  exact?: string;
  prefix?: string;
  regex?: string;
}

export interface PortSpec {
  number: number;
  name: string;
  protocol: string;
  targetPort?: number;
}

export type TLSMode = 'PASSTHROUGH' | 'SIMPLE' | 'MUTUAL' | 'AUTO_PASSTHROUGH' | 'ISTIO_MUTUAL' | 'OPTIONAL_MUTUAL';
export type TLSProtocolVersion = 'TLS_AUTO' | 'TLSV1_0' | 'TLSV1_1' | 'TLSV1_2' | 'TLSV1_3';

export interface ServerTLSSettings {
  httpsRedirect?: boolean;
  mode?: TLSMode;
  serverCertificate?: string;
  privateKey?: string;
  caCertificates?: string;
  caCrl?: string;
  credentialName?: string;
  credentialNames?: string[];
  tlsCertificates?: { serverCertificate?: string; privateKey?: string; caCertificates?: string }[];
  subjectAltNames?: string[];
  minProtocolVersion?: TLSProtocolVersion;
  maxProtocolVersion?: TLSProtocolVersion;
  cipherSuites?: string[];
  [field: string]: unknown;
}

export interface GatewayServer {
  port: PortSpec;
  hosts: string[];
  bind?: string;
  tls?: ServerTLSSettings;
  name?: string;
  defaultEndpoint?: string;
}

export interface GatewaySpec {
  selector?: Record<string, string>;
  servers: GatewayServer[];
  [field: string]: unknown;
}

export interface Destination {
  host: string;
  subset?: string;
  port?: { number: number };
}

export interface HeaderOperations {
  set?: Record<string, string>;
  add?: Record<string, string>;
  remove?: string[];
}

export interface Headers {
  request?: HeaderOperations;
  response?: HeaderOperations;
}

export interface HTTPMatchRequest {
  name?: string;
  uri?: StringMatch;
  scheme?: StringMatch;
  method?: StringMatch;
  authority?: StringMatch;
  headers?: Record<string, StringMatch>;
  port?: number;
  sourceLabels?: Record<string, string>;
  gateways?: string[];
  queryParams?: Record<string, StringMatch>;
  ignoreUriCase?: boolean;
  withoutHeaders?: Record<string, StringMatch>;
  sourceNamespace?: string;
  statPrefix?: string;
}

export interface HTTPRoute {
  name?: string;
  match?: HTTPMatchRequest[];
  route?: { destination: Destination; weight?: number; headers?: Headers }[];
  redirect?: {
    uri?: string;
    authority?: string;
    port?: number;
    derivePort?: 'FROM_PROTOCOL_DEFAULT' | 'FROM_REQUEST_PORT';
    scheme?: string;
    redirectCode?: number;
  };
  directResponse?: { status: number; body?: { string?: string; bytes?: string } };
  rewrite?: { uri?: string; authority?: string; uriRegexRewrite?: { match?: string; rewrite?: string } };
  /** A Go duration string, e.g. "10s". */
  timeout?: string;
  retries?: Record<string, unknown>;
  fault?: Record<string, unknown>;
  mirror?: Destination;
  headers?: Headers;
  corsPolicy?: Record<string, unknown>;
  [field: string]: unknown;
}

export interface VirtualServiceSpec {
  hosts?: string[];
  gateways?: string[];
  http?: HTTPRoute[];
  tcp?: Record<string, unknown>[];
  tls?: Record<string, unknown>[];
  exportTo?: string[];
  [field: string]: unknown;
}

export interface ServiceEntrySpec {
  hosts: string[];
  addresses?: string[];
  ports?: PortSpec[];
  location?: 'MESH_EXTERNAL' | 'MESH_INTERNAL';
  resolution?: 'NONE' | 'STATIC' | 'DNS' | 'DNS_ROUND_ROBIN' | 'DYNAMIC_DNS';
  endpoints?: {
    address?: string;
    ports?: Record<string, number>;
    labels?: Record<string, string>;
    network?: string;
    locality?: string;
    weight?: number;
    serviceAccount?: string;
  }[];
  [field: string]: unknown;
}

// DestinationRule (networking.istio.io), kept as written; src/config/destination-rule.ts validates it.

export interface LoadBalancerSettings {
  simple?: string | number;
  consistentHash?: {
    httpHeaderName?: string;
    httpCookie?: { name: string; path?: string; ttl?: string; attributes?: { name: string; value?: string }[] };
    useSourceIp?: boolean;
    httpQueryParameterName?: string;
    ringHash?: { minimumRingSize?: number };
    maglev?: { tableSize?: number };
    minimumRingSize?: number;
  };
  [field: string]: unknown;
}

export interface ConnectionPoolSettings {
  tcp?: { maxConnections?: number; connectTimeout?: string; idleTimeout?: string; [field: string]: unknown };
  http?: {
    http1MaxPendingRequests?: number;
    http2MaxRequests?: number;
    maxRequestsPerConnection?: number;
    maxRetries?: number;
    idleTimeout?: string;
    [field: string]: unknown;
  };
}

export interface OutlierDetection {
  consecutiveGatewayErrors?: number;
  consecutive5xxErrors?: number;
  consecutiveErrors?: number;
  interval?: string;
  baseEjectionTime?: string;
  maxEjectionPercent?: number;
  minHealthPercent?: number;
  [field: string]: unknown;
}

export interface ClientTLSSettings {
  mode?: string | number;
  clientCertificate?: string;
  privateKey?: string;
  caCertificates?: string;
  credentialName?: string;
  subjectAltNames?: string[];
  sni?: string;
  insecureSkipVerify?: boolean;
  caCrl?: string;
}

export interface PortTrafficPolicy {
  port?: { number: number };
  loadBalancer?: LoadBalancerSettings;
  connectionPool?: ConnectionPoolSettings;
  outlierDetection?: OutlierDetection;
  tls?: ClientTLSSettings;
}

export interface TrafficPolicy extends PortTrafficPolicy {
  portLevelSettings?: PortTrafficPolicy[];
  [field: string]: unknown;
}

export interface DestinationRuleSpec {
  host: string;
  trafficPolicy?: TrafficPolicy;
  subsets?: { name: string; labels?: Record<string, string>; trafficPolicy?: TrafficPolicy }[];
  exportTo?: string[];
  workloadSelector?: { matchLabels?: Record<string, string> };
}

// RequestAuthentication and AuthorizationPolicy (security.istio.io/v1, v1beta1), with defaults applied
// by the loader: absent lists are [], action defaults to ALLOW.

/** Selects workloads as WasmPlugin does: selector, or targetRef(s) to a Gateway in the same namespace. */
export interface PolicyTargeting {
  selector?: { matchLabels: Record<string, string> };
  targetRef?: TargetRef;
  targetRefs?: TargetRef[];
}

export interface JwtHeader {
  name: string;
  /** Stripped from the header value before the token is read, e.g. "Bearer ". */
  prefix?: string;
}

export interface ClaimToHeader {
  header: string;
  /** A claim name; nested claims are dot-separated ("a.b"). */
  claim: string;
}

export interface JWTRule {
  issuer: string;
  /** [] means any audience. */
  audiences: string[];
  jwksUri?: string;
  /** Inline JWKS, a JSON string. */
  jwks?: string;
  /** [] means the default: Authorization with prefix "Bearer ". */
  fromHeaders: JwtHeader[];
  /** [] means the default: the access_token query parameter (only when fromHeaders is also []). */
  fromParams: string[];
  fromCookies: string[];
  outputPayloadToHeader?: string;
  forwardOriginalToken: boolean;
  outputClaimToHeaders: ClaimToHeader[];
  /** JWKS fetch timeout, a Go duration (default 5s). */
  timeout?: string;
  /** As written (OPTIONAL or REQUIRED); Istio's own control plane does not use it yet. */
  presence?: 'OPTIONAL' | 'REQUIRED';
  /**
   * Claims to split on spaces into lists (for authz), in addition to "scope" and "permission",
   * which Istio always splits. Absent when not written.
   */
  spaceDelimitedClaims?: string[];
}

export interface RequestAuthenticationSpec extends PolicyTargeting {
  jwtRules: JWTRule[];
}

export interface AuthzSource {
  principals?: string[];
  notPrincipals?: string[];
  requestPrincipals?: string[];
  notRequestPrincipals?: string[];
  namespaces?: string[];
  notNamespaces?: string[];
  ipBlocks?: string[];
  notIpBlocks?: string[];
  remoteIpBlocks?: string[];
  notRemoteIpBlocks?: string[];
  serviceAccounts?: string[];
  notServiceAccounts?: string[];
  /** The peer's SPIFFE trust domain (mTLS); newer Istio field. */
  trustDomains?: string[];
  notTrustDomains?: string[];
}

export interface AuthzOperation {
  hosts?: string[];
  notHosts?: string[];
  ports?: string[];
  notPorts?: string[];
  methods?: string[];
  notMethods?: string[];
  paths?: string[];
  notPaths?: string[];
}

export interface AuthzCondition {
  key: string;
  values?: string[];
  notValues?: string[];
}

export interface AuthzRule {
  from: { source: AuthzSource }[];
  to: { operation: AuthzOperation }[];
  when: AuthzCondition[];
}

export type AuthzAction = 'ALLOW' | 'DENY' | 'AUDIT' | 'CUSTOM';

export interface AuthorizationPolicySpec extends PolicyTargeting {
  /**
   * [] (rules absent) matches nothing: an ALLOW policy without rules denies every request, as
   * Istio's "allow-nothing" policy does; a rule `{}` matches every request.
   */
  rules: AuthzRule[];
  action: AuthzAction;
  provider?: { name: string };
}

export interface LoadedConfig {
  /** Every file read, as named (folders expanded), in load order. */
  files: string[];
  /** Only resources without errors are listed; problems holds the rest. */
  wasmPlugins: Resource<WasmPluginSpec>[];
  gateways: Resource<GatewaySpec>[];
  virtualServices: Resource<VirtualServiceSpec>[];
  serviceEntries: Resource<ServiceEntrySpec>[];
  destinationRules: Resource<DestinationRuleSpec>[];
  requestAuthentications: Resource<RequestAuthenticationSpec>[];
  authorizationPolicies: Resource<AuthorizationPolicySpec>[];
  /** Errors and warnings, in file order then position. */
  problems: Problem[];
  /** The TLS secret files and folders tried for credentialName (found or not), for the watcher. */
  secretPaths?: string[];
}
