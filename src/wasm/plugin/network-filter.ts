// Adapts one plugin to the L4 network filter chain (WasmPlugin `type: NETWORK`): one stream context
// per downstream connection, as Envoy's Wasm network filter: on_context_create + on_new_connection,
// on_downstream_data / on_upstream_data with the DOWNSTREAM_DATA / UPSTREAM_DATA buffers,
// the two connection-close callbacks, then on_done, on_log and on_delete once both sides closed.
import type {
  ConnectionInfo,
  DataBuffer,
  NetworkFilter,
  NetworkFilterCallbacks,
  NetworkFilterFactory,
  NetworkStatusValue,
  PeerValue,
} from '../../l4/network-filter-manager.ts';
import { NetworkStatus } from '../../l4/network-filter-manager.ts';
import type { BufferAccess } from '../abi/host-api.ts';
import { BufferType, Status, type StatusCode, StreamType } from '../abi/result.ts';
import { int, str } from '../host/properties.ts';
import type { PluginHandle } from './http-filter.ts';
import { PluginStreamContext } from './stream-context.ts';

export class WasmNetworkFilterFactory implements NetworkFilterFactory {
  readonly name: string;
  readonly #plugin: PluginHandle;

  constructor(plugin: PluginHandle) {
    this.name = plugin.name;
    this.#plugin = plugin;
  }

  create(callbacks: NetworkFilterCallbacks): NetworkFilter {
    this.#plugin.streamOpened?.();
    return new WasmNetworkFilter(this.#plugin, callbacks);
  }
}

/** Envoy accepts only prepend (0, 0), append (start >= length) and replace-all (0, >= length). */
function dataAccess(buffer: DataBuffer): BufferAccess {
  return {
    bytes: () => buffer.bytes(),
    set: (start, size, data) => {
      const current = buffer.bytes();
      if (start === 0 && size === 0) buffer.replace(Buffer.concat([data, current]));
      else if (start >= current.length) buffer.replace(Buffer.concat([current, data]));
      else if (start === 0 && size >= current.length) buffer.replace(data.slice());
      else return Status.BAD_ARGUMENT;
      return Status.OK;
    },
  };
}

/** Envoy's attributes of a connection (source.*, destination.*, connection.*, upstream.*). */
export function connectionProperty(c: ConnectionInfo, path: string[]): Uint8Array | undefined {
  const [head, second] = path;
  switch (head) {
    case 'source':
      if (second === 'address') return str(`${c.sourceAddress}:${c.sourcePort}`);
      if (second === 'port') return int(c.sourcePort);
      return undefined;
    case 'destination':
      if (second === 'address') return str(`${c.destinationAddress}:${c.destinationPort}`);
      if (second === 'port') return int(c.destinationPort);
      return undefined;
    case 'upstream':
      if (c.upstreamAddress === undefined) return undefined;
      if (second === 'address') return str(`${c.upstreamAddress}:${c.upstreamPort}`);
      if (second === 'port') return int(c.upstreamPort ?? 0);
      return undefined;
    case 'connection':
      switch (second) {
        case 'id':
          return int(c.id);
        case 'mtls':
          return Uint8Array.of(c.tls?.subjectPeerCertificate ? 1 : 0);
        case 'requested_server_name':
          return str(c.requestedServerName ?? '');
        case 'tls_version':
          return c.tls?.version ? str(c.tls.version) : undefined;
        case 'subject_peer_certificate':
          return c.tls?.subjectPeerCertificate ? str(c.tls.subjectPeerCertificate) : undefined;
        case 'termination_details':
          return undefined;
        default:
          return undefined;
      }
    default: {
      const key = head === 'xds' ? second : path.length === 1 ? head : undefined;
      if (key === 'cluster_name') return c.upstreamCluster ? str(c.upstreamCluster) : undefined;
      if (key === 'route_name') return c.routeName ? str(c.routeName) : undefined;
      if (key === 'listener_direction') return int(2); // OUTBOUND, as Istio's gateway listeners
      return undefined;
    }
  }
}

class WasmNetworkFilter extends PluginStreamContext implements NetworkFilter {
  readonly #cb: NetworkFilterCallbacks;
  #closing = false;
  #read: DataBuffer | undefined;
  #write: DataBuffer | undefined;

  constructor(plugin: PluginHandle, callbacks: NetworkFilterCallbacks) {
    super(plugin);
    this.#cb = callbacks;
  }

  /** FAIL_CLOSE: the connection is closed. */
  protected reject(): void {
    this.#closeConnection('wasm_fail_stream');
  }

  protected resume(): void {
    this.#cb.continueReading();
    this.#cb.continueWriting();
  }

  #closeConnection(details: string): void {
    if (this.#closing) return;
    this.#closing = true;
    queueMicrotask(() => this.#cb.close(details));
  }

  /** FAIL_CLOSE failures stop the data (the connection is closing); FAIL_OPEN passes it on. */
  #status(action: number | undefined): NetworkStatusValue {
    if (action === undefined) return this.plugin.failOpen ? NetworkStatus.Continue : NetworkStatus.StopIteration;
    return action === 0 ? NetworkStatus.Continue : NetworkStatus.StopIteration;
  }

  // ---- NetworkFilter ----

  onNewConnection(): NetworkStatusValue {
    if (!this.ensure()) return this.skip && !this.plugin.failOpen ? NetworkStatus.StopIteration : 0;
    return this.#status(this.call('proxy_on_new_connection', this.id));
  }

  onData(buffer: DataBuffer, endStream: boolean): NetworkStatusValue {
    if (this.skip) return this.plugin.failOpen ? NetworkStatus.Continue : NetworkStatus.StopIteration;
    if (!this.created) return NetworkStatus.Continue;
    this.#read = buffer;
    try {
      return this.#status(this.call('proxy_on_downstream_data', this.id, buffer.length, endStream ? 1 : 0));
    } finally {
      this.#read = undefined;
    }
  }

  onWrite(buffer: DataBuffer, endStream: boolean): NetworkStatusValue {
    if (this.skip) return this.plugin.failOpen ? NetworkStatus.Continue : NetworkStatus.StopIteration;
    if (!this.created) return NetworkStatus.Continue;
    this.#write = buffer;
    try {
      return this.#status(this.call('proxy_on_upstream_data', this.id, buffer.length, endStream ? 1 : 0));
    } finally {
      this.#write = undefined;
    }
  }

  onDownstreamClose(peer: PeerValue): void {
    if (this.skip || !this.created) return;
    this.call('proxy_on_downstream_connection_close', this.id, peer);
  }

  onUpstreamClose(peer: PeerValue): void {
    if (this.skip || !this.created) return;
    this.call('proxy_on_upstream_connection_close', this.id, peer);
  }

  onDestroy(): void {
    try {
      if (this.created && this.pluginVm) {
        const vm = this.pluginVm;
        // Envoy's order for a TCP context: on_done, on_log, on_delete.
        if (!vm.failed) this.call('proxy_on_done', this.id);
        if (!vm.failed) this.call('proxy_on_log', this.id);
        if (!vm.failed) this.call('proxy_on_delete', this.id);
        vm.unregister(this);
      }
    } finally {
      this.plugin.streamClosed?.();
    }
  }

  // ---- AbiContext ----

  override buffer(bufferType: number): BufferAccess | undefined {
    if (bufferType === BufferType.DOWNSTREAM_DATA && this.#read) return dataAccess(this.#read);
    if (bufferType === BufferType.UPSTREAM_DATA && this.#write) return dataAccess(this.#write);
    return undefined;
  }

  override continueStream(streamType: number): StatusCode {
    if (streamType === StreamType.DOWNSTREAM) {
      this.pluginVm!.vm.defer(() => this.#cb.continueReading());
      return Status.OK;
    }
    if (streamType === StreamType.UPSTREAM) {
      this.pluginVm!.vm.defer(() => this.#cb.continueWriting());
      return Status.OK;
    }
    return Status.BAD_ARGUMENT;
  }

  override closeStream(streamType: number): StatusCode {
    if (streamType !== StreamType.DOWNSTREAM && streamType !== StreamType.UPSTREAM) return Status.BAD_ARGUMENT;
    this.pluginVm!.vm.defer(() => this.#closeConnection('wasm_close_stream'));
    return Status.OK;
  }

  override done(): StatusCode {
    return Status.NOT_FOUND;
  }

  override getProperty(path: string[]): Uint8Array | undefined {
    const stored = this.#cb.connection.properties.get(path.join('\0'));
    if (stored) return stored;
    return connectionProperty(this.#cb.connection, path) ?? this.pluginVm?.pluginProperty(path);
  }

  override setProperty(path: string[], value: Uint8Array): StatusCode {
    this.#cb.connection.properties.set(path.join('\0'), value);
    return Status.OK;
  }
}
