// JSON Schemas (ajv) of the kinds wasmgate reads, field for field after Istio's CRDs
// (istio/api kubernetes/customresourcedefinitions.gen.yaml). Every object lists its fields and
// rejects unknown ones. Custom keywords (see validate.ts):
//   protoEnum: [names]   a protobuf enum: one of the names, or its number (0-based, in proto order)
//   exclusive: [fields]  at most one of these fields may be set (a proto oneof)
//   duration: true       a Go duration string ("10s", "1m30s", "250ms"), at least 1ms
//   patternMessage       the message to show when `pattern` fails
export type Schema = { [keyword: string]: unknown };

const str: Schema = { type: 'string' };
const bool: Schema = { type: 'boolean' };
const int32: Schema = { type: 'integer', minimum: -2147483648, maximum: 2147483647 };
const uint32: Schema = { type: 'integer', minimum: 0, maximum: 4294967295 };
const port: Schema = { type: 'integer', minimum: 1, maximum: 65535 };
const strList: Schema = { type: 'array', items: str };
const strMap: Schema = { type: 'object', additionalProperties: str };
const struct: Schema = { type: 'object' };
const duration: Schema = { type: 'string', duration: true };
const percent: Schema = { type: 'number', minimum: 0, maximum: 100 };

export function obj(properties: Record<string, Schema>, required: string[] = [], extra: Schema = {}): Schema {
  return {
    type: 'object',
    properties,
    additionalProperties: false,
    ...(required.length > 0 ? { required } : {}),
    ...extra,
  };
}
const list = (items: Schema, extra: Schema = {}): Schema => ({ type: 'array', items, ...extra });
const mapOf = (values: Schema, extra: Schema = {}): Schema => ({
  type: 'object',
  additionalProperties: values,
  ...extra,
});
const protoEnum = (names: readonly string[]): Schema => ({ type: ['string', 'integer'], protoEnum: names });
const enumOf = (names: readonly string[]): Schema => ({ type: 'string', enum: names });

/** Enum names in proto order: a number N in YAML means ENUMS.x[N]. */
export const ENUMS = {
  phase: ['UNSPECIFIED_PHASE', 'AUTHN', 'AUTHZ', 'STATS'],
  imagePullPolicy: ['UNSPECIFIED_POLICY', 'IfNotPresent', 'Always'],
  failStrategy: ['FAIL_CLOSE', 'FAIL_OPEN', 'FAIL_RELOAD'],
  type: ['UNSPECIFIED_PLUGIN_TYPE', 'HTTP', 'NETWORK'],
  mode: ['UNDEFINED', 'CLIENT', 'SERVER', 'CLIENT_AND_SERVER'],
  valueFrom: ['INLINE', 'HOST'],
} as const;

const DNS1123_SUBDOMAIN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
const DNS1123_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';

export const metadataSchema = obj(
  {
    name: {
      type: 'string',
      minLength: 1,
      maxLength: 253,
      pattern: DNS1123_SUBDOMAIN,
      patternMessage: 'must be lower-case letters, digits, "-" and ".", starting and ending with a letter or digit',
    },
    namespace: {
      type: 'string',
      minLength: 1,
      maxLength: 63,
      pattern: DNS1123_LABEL,
      patternMessage: 'must be lower-case letters, digits and "-", starting and ending with a letter or digit',
    },
    labels: strMap,
    annotations: strMap,
    generateName: str,
    uid: str,
    resourceVersion: str,
    generation: { type: 'integer' },
    creationTimestamp: str,
    deletionTimestamp: str,
    deletionGracePeriodSeconds: { type: 'integer' },
    finalizers: strList,
    ownerReferences: list({ type: 'object' }),
    managedFields: list({ type: 'object' }),
    selfLink: str,
  },
  ['name'],
);

// ---------------------------------------------------------------- WasmPlugin (extensions.istio.io/v1alpha1)

const policyTargetReference = obj(
  {
    group: {
      type: 'string',
      maxLength: 253,
      pattern: `^$|${DNS1123_SUBDOMAIN}`,
      patternMessage: 'must be an API group such as gateway.networking.k8s.io, or empty for the core group',
    },
    kind: {
      type: 'string',
      minLength: 1,
      maxLength: 63,
      pattern: '^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$',
      patternMessage: 'must be a kind such as Gateway',
    },
    name: { type: 'string', minLength: 1, maxLength: 253 },
    namespace: str,
  },
  ['kind', 'name'],
);

export const wasmPluginSpec = obj(
  {
    selector: obj({ matchLabels: mapOf({ type: 'string', maxLength: 63 }, { maxProperties: 4096 }) }),
    targetRef: policyTargetReference,
    targetRefs: list(policyTargetReference, { maxItems: 16 }),
    url: { type: 'string', minLength: 1 },
    sha256: {
      type: 'string',
      pattern: '^([a-f0-9]{64})?$',
      patternMessage: 'must be 64 lower-case hexadecimal characters ([a-f0-9]{64})',
    },
    imagePullPolicy: protoEnum(ENUMS.imagePullPolicy),
    imagePullSecret: { type: 'string', minLength: 1, maxLength: 253 },
    verificationKey: str,
    pluginConfig: struct,
    pluginName: { type: 'string', minLength: 1, maxLength: 256 },
    phase: protoEnum(ENUMS.phase),
    priority: int32,
    failStrategy: protoEnum(ENUMS.failStrategy),
    vmConfig: obj({
      env: list(
        obj(
          {
            name: { type: 'string', minLength: 1, maxLength: 256 },
            valueFrom: protoEnum(ENUMS.valueFrom),
            value: { type: 'string', maxLength: 2048 },
          },
          ['name'],
        ),
        { maxItems: 256 },
      ),
    }),
    match: list(obj({ mode: protoEnum(ENUMS.mode), ports: list(obj({ number: port }, ['number'])) })),
    type: protoEnum(ENUMS.type),
  },
  ['url'],
);

// ---------------------------------------------------------------- Gateway (networking.istio.io)

export const TLS_MODES = ['PASSTHROUGH', 'SIMPLE', 'MUTUAL', 'AUTO_PASSTHROUGH', 'ISTIO_MUTUAL', 'OPTIONAL_MUTUAL'];
const TLS_VERSIONS = ['TLS_AUTO', 'TLSV1_0', 'TLSV1_1', 'TLSV1_2', 'TLSV1_3'];

const serverTLSSettings = obj(
  {
    httpsRedirect: bool,
    mode: enumOf(TLS_MODES),
    serverCertificate: str,
    privateKey: str,
    caCertificates: str,
    caCrl: str,
    caCertCredentialName: str,
    credentialName: str,
    credentialNames: list(str, { minItems: 1, maxItems: 2 }),
    tlsCertificates: list(obj({ serverCertificate: str, privateKey: str, caCertificates: str }), {
      minItems: 1,
      maxItems: 2,
    }),
    subjectAltNames: strList,
    verifyCertificateSpki: strList,
    verifyCertificateHash: strList,
    minProtocolVersion: enumOf(TLS_VERSIONS),
    maxProtocolVersion: enumOf(TLS_VERSIONS),
    cipherSuites: strList,
    insecureSkipVerify: bool,
  },
  [],
  { exclusive: ['credentialName', 'credentialNames', 'tlsCertificates'] },
);

const gatewayPort = obj(
  { number: { type: 'integer', minimum: 0, maximum: 65535 }, protocol: str, name: str, targetPort: uint32 },
  ['number', 'protocol', 'name'],
);

export const gatewaySpec = obj(
  {
    selector: strMap,
    servers: list(
      obj({ port: gatewayPort, bind: str, hosts: strList, tls: serverTLSSettings, defaultEndpoint: str, name: str }, [
        'port',
        'hosts',
      ]),
    ),
  },
  ['servers'],
);

// ---------------------------------------------------------------- VirtualService (networking.istio.io)

const stringMatch = obj({ exact: str, prefix: str, regex: str }, [], { exclusive: ['exact', 'prefix', 'regex'] });
const portSelector = obj({ number: uint32 });
const destination = obj({ host: str, subset: str, port: portSelector }, ['host']);
const headerOperations = obj({ set: strMap, add: strMap, remove: strList });
const headers = obj({ request: headerOperations, response: headerOperations });
const percentage = obj({ value: percent });

const httpMatchRequest = obj({
  name: str,
  uri: stringMatch,
  scheme: stringMatch,
  method: stringMatch,
  authority: stringMatch,
  headers: mapOf(stringMatch),
  port: uint32,
  sourceLabels: strMap,
  gateways: strList,
  queryParams: mapOf(stringMatch),
  ignoreUriCase: bool,
  withoutHeaders: mapOf(stringMatch),
  sourceNamespace: str,
  statPrefix: str,
});

const httpRoute = obj({
  name: str,
  match: list(httpMatchRequest),
  route: list(obj({ destination, weight: int32, headers }, ['destination'])),
  redirect: obj(
    {
      uri: str,
      authority: str,
      port: uint32,
      derivePort: enumOf(['FROM_PROTOCOL_DEFAULT', 'FROM_REQUEST_PORT']),
      scheme: str,
      redirectCode: uint32,
      prefixRewrite: str,
    },
    [],
    { exclusive: ['port', 'derivePort'] },
  ),
  directResponse: obj(
    {
      status: uint32,
      body: obj(
        {
          string: str,
          bytes: {
            type: 'string',
            pattern: '^[A-Za-z0-9+/]*={0,2}$',
            patternMessage: 'must be base64 (A-Z, a-z, 0-9, +, / and = padding)',
          },
        },
        [],
        { exclusive: ['string', 'bytes'] },
      ),
    },
    ['status'],
  ),
  delegate: obj({ name: str, namespace: str }),
  rewrite: obj({ uri: str, authority: str, uriRegexRewrite: obj({ match: str, rewrite: str }) }),
  timeout: duration,
  retries: obj({
    attempts: int32,
    perTryTimeout: duration,
    retryOn: str,
    retryRemoteLocalities: bool,
    retryIgnorePreviousHosts: bool,
    backoff: duration,
  }),
  fault: obj({
    delay: obj({ fixedDelay: duration, exponentialDelay: duration, percentage, percent: int32 }, [], {
      exclusive: ['fixedDelay', 'exponentialDelay'],
    }),
    abort: obj({ httpStatus: int32, grpcStatus: str, http2Error: str, percentage }, [], {
      exclusive: ['httpStatus', 'grpcStatus', 'http2Error'],
    }),
  }),
  mirror: destination,
  mirrors: list(obj({ destination, percentage }, ['destination'])),
  mirrorPercent: uint32,
  mirror_percent: uint32,
  mirrorPercentage: percentage,
  corsPolicy: obj({
    allowOrigins: list(stringMatch),
    allowOrigin: strList,
    allowMethods: strList,
    allowHeaders: strList,
    exposeHeaders: strList,
    maxAge: duration,
    allowCredentials: bool,
    unmatchedPreflights: enumOf(['UNSPECIFIED', 'FORWARD', 'IGNORE']),
  }),
  headers,
});

const routeDestination = obj({ destination, weight: int32 }, ['destination']);

const tlsRoute = obj(
  {
    match: list(
      obj(
        {
          sniHosts: strList,
          destinationSubnets: strList,
          port: uint32,
          sourceLabels: strMap,
          gateways: strList,
          sourceNamespace: str,
        },
        ['sniHosts'],
      ),
    ),
    route: list(routeDestination),
  },
  ['match'],
);

const tcpRoute = obj({
  match: list(
    obj({
      destinationSubnets: strList,
      port: uint32,
      sourceSubnet: str,
      sourceLabels: strMap,
      gateways: strList,
      sourceNamespace: str,
    }),
  ),
  route: list(routeDestination),
});

export const virtualServiceSpec = obj({
  hosts: strList,
  gateways: strList,
  http: list(httpRoute),
  tls: list(tlsRoute),
  tcp: list(tcpRoute),
  exportTo: strList,
});

// ---------------------------------------------------------------- ServiceEntry (networking.istio.io)

export const serviceEntrySpec = obj(
  {
    hosts: list(str, { minItems: 1, maxItems: 256 }),
    addresses: list({ type: 'string', maxLength: 64 }, { maxItems: 256 }),
    ports: list(
      obj(
        {
          number: port,
          protocol: { type: 'string', maxLength: 256 },
          name: { type: 'string', maxLength: 256 },
          targetPort: port,
        },
        ['number', 'name'],
      ),
      { maxItems: 256 },
    ),
    location: enumOf(['MESH_EXTERNAL', 'MESH_INTERNAL']),
    resolution: enumOf(['NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN', 'DYNAMIC_DNS']),
    endpoints: list(
      obj({
        address: { type: 'string', maxLength: 256 },
        ports: mapOf(port, { maxProperties: 128 }),
        labels: mapOf(str, { maxProperties: 256 }),
        network: { type: 'string', maxLength: 2048 },
        locality: { type: 'string', maxLength: 2048 },
        weight: uint32,
        serviceAccount: { type: 'string', maxLength: 253 },
      }),
      { maxItems: 4096 },
    ),
    workloadSelector: obj({ labels: mapOf({ type: 'string', maxLength: 63 }, { maxProperties: 256 }) }),
    exportTo: strList,
    subjectAltNames: strList,
  },
  ['hosts'],
);

// ---------------------------------------------------------------- security.istio.io (v1, v1beta1)

const workloadSelector = obj({ matchLabels: mapOf({ type: 'string', maxLength: 63 }, { maxProperties: 4096 }) });
const nonEmpty: Schema = { type: 'string', minLength: 1 };

export const jwtRule = obj(
  {
    issuer: nonEmpty,
    audiences: list(nonEmpty),
    jwksUri: { type: 'string', minLength: 1, maxLength: 2048 },
    jwks_uri: { type: 'string', minLength: 1, maxLength: 2048 },
    jwks: str,
    fromHeaders: list(obj({ name: nonEmpty, prefix: str }, ['name'])),
    fromParams: list(nonEmpty),
    fromCookies: list(nonEmpty),
    outputPayloadToHeader: str,
    forwardOriginalToken: bool,
    outputClaimToHeaders: list(
      obj(
        {
          header: {
            type: 'string',
            minLength: 1,
            pattern: '^[-_A-Za-z0-9]+$',
            patternMessage: 'must be a header name: letters, digits, "-" and "_"',
          },
          claim: nonEmpty,
        },
        ['header', 'claim'],
      ),
    ),
    presence: enumOf(['OPTIONAL', 'REQUIRED']),
    spaceDelimitedClaims: list(nonEmpty, { maxItems: 64 }),
    timeout: duration,
  },
  [],
  { exclusive: ['jwksUri', 'jwks_uri', 'jwks'] },
);

export const requestAuthenticationSpec = obj({
  selector: workloadSelector,
  targetRef: policyTargetReference,
  targetRefs: list(policyTargetReference, { maxItems: 16 }),
  jwtRules: list(jwtRule, { maxItems: 4096 }),
});

const serviceAccountList = list({ type: 'string', maxLength: 320 }, { maxItems: 16 });

const authzSource = obj({
  principals: strList,
  notPrincipals: strList,
  requestPrincipals: strList,
  notRequestPrincipals: strList,
  namespaces: strList,
  notNamespaces: strList,
  serviceAccounts: serviceAccountList,
  notServiceAccounts: serviceAccountList,
  trustDomains: strList,
  notTrustDomains: strList,
  ipBlocks: strList,
  notIpBlocks: strList,
  remoteIpBlocks: strList,
  notRemoteIpBlocks: strList,
});

const authzOperation = obj({
  hosts: strList,
  notHosts: strList,
  ports: strList,
  notPorts: strList,
  methods: strList,
  notMethods: strList,
  paths: strList,
  notPaths: strList,
});

export const AUTHZ_ACTIONS = ['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'] as const;

export const authorizationPolicySpec = obj({
  selector: workloadSelector,
  targetRef: policyTargetReference,
  targetRefs: list(policyTargetReference, { maxItems: 16 }),
  rules: list(
    obj({
      from: list(obj({ source: authzSource }), { maxItems: 512 }),
      to: list(obj({ operation: authzOperation })),
      when: list(obj({ key: str, values: strList, notValues: strList }, ['key'])),
    }),
    { maxItems: 512 },
  ),
  action: enumOf(AUTHZ_ACTIONS),
  provider: obj({ name: str }),
});

/** The whole resource: apiVersion, kind, metadata, spec (and status, ignored). */
export function resourceSchema(spec: Schema): Schema {
  return obj({ apiVersion: str, kind: str, metadata: metadataSchema, spec, status: { type: 'object' } }, [
    'apiVersion',
    'kind',
    'metadata',
    'spec',
  ]);
}
