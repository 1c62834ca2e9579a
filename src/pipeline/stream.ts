// Per-request state that filters, the Wasm host and the access log read.
import type { HeaderMap } from './headers.ts';

export interface StreamInfo {
  startTime: number;
  startHr: bigint;
  requestId: string;
  protocol: string;
  downstreamRemoteAddress: string;
  downstreamRemotePort: number;
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
>;

export function newStreamInfo(downstream: DownstreamInfo): StreamInfo {
  return {
    ...downstream,
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

  constructor(requestHeaders: HeaderMap, info: StreamInfo) {
    this.requestHeaders = requestHeaders;
    this.info = info;
  }
}
