// Per-request state that filters, the Wasm host and the access log read.
import type { HeaderMap } from './headers.ts';

export interface StreamInfo {
  startTime: number;
  startHr: bigint;
  requestId: string;
  protocol: string;
  /** The direct peer of the downstream connection (authz source.ip / ipBlocks). */
  downstreamRemoteAddress: string;
  downstreamRemotePort: number;
  /**
   * The trusted client address: the peer, or with --xff-num-trusted-hops N the Nth address from
   * the right of the incoming X-Forwarded-For (Envoy's remote address; authz remote.ip /
   * remoteIpBlocks, the access log's downstream_remote_address, x-envoy-external-address).
   */
  remoteAddress: string;
  downstreamLocalAddress: string;
  downstreamLocalPort: number;
  bytesReceived: number;
  bytesSent: number;
  responseCode: number;
  responseCodeDetails: string;
  responseFlags: string[];
  upstreamHost: string;
  upstreamCluster: string;
  upstreamServiceTimeMs: number | undefined;
  routeName: string;
  /** Per-process downstream connection number (property connection.id). */
  connectionId: number;
}

/** What the listener knows when a request arrives; the rest of StreamInfo starts empty. */
export type DownstreamInfo = Pick<
  StreamInfo,
  | 'requestId'
  | 'protocol'
  | 'downstreamRemoteAddress'
  | 'downstreamRemotePort'
  | 'downstreamLocalAddress'
  | 'downstreamLocalPort'
  | 'connectionId'
> & {
  /** Defaults to the peer (downstreamRemoteAddress). */
  remoteAddress?: string;
};

export function newStreamInfo(downstream: DownstreamInfo): StreamInfo {
  return {
    ...downstream,
    remoteAddress: downstream.remoteAddress ?? downstream.downstreamRemoteAddress,
    startTime: Date.now(),
    startHr: process.hrtime.bigint(),
    bytesReceived: 0,
    bytesSent: 0,
    responseCode: 0,
    responseCodeDetails: '',
    responseFlags: [],
    upstreamHost: '',
    upstreamCluster: '',
    upstreamServiceTimeMs: undefined,
    routeName: '',
  };
}

/** What the built-in authn filter established about the request's JWT, for authz and properties. */
export interface RequestAuth {
  /** `<iss>/<sub>`, as Istio's request.auth.principal. */
  principal: string;
  issuer: string;
  subject: string;
  audiences: string[];
  /** The azp claim, or "". */
  presenter: string;
  /** The verified token's payload. */
  claims: Record<string, unknown>;
}

export class HttpStream {
  readonly requestHeaders: HeaderMap;
  requestTrailers: HeaderMap | undefined;
  responseHeaders: HeaderMap | undefined;
  responseTrailers: HeaderMap | undefined;
  readonly info: StreamInfo;
  /** Values set by plugins through proxy_set_property, keyed by the NUL-joined path. */
  readonly properties = new Map<string, Uint8Array>();
  /** Set by the authn filter when a request carried a valid JWT; absent means unauthenticated. */
  auth: RequestAuth | undefined;
  /** True once response headers went to the client: no local reply can replace them now. */
  responseStarted = false;
  /** True when the response is a local reply (filter or proxy generated). */
  localReply = false;
  /** The filter that sent the local reply (`<namespace>.<name>`, `istio.authz`…); "" for the proxy's own. */
  localReplyFilter = '';

  constructor(requestHeaders: HeaderMap, info: StreamInfo) {
    this.requestHeaders = requestHeaders;
    this.info = info;
  }
}
