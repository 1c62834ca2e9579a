// Adapts one plugin to the pipeline's HttpFilter: one HTTP context per stream, Action <-> status,
// local replies and continues deferred until the guest call returns, failStrategy on failure.

import type { BodyBuffer } from '../../pipeline/filter.ts';
import {
  DataStatus,
  type FilterCallbacks,
  type FilterFactory,
  HeadersStatus,
  type HttpFilter,
} from '../../pipeline/filter.ts';
import type { HeaderMap } from '../../pipeline/headers.ts';
import type { BufferAccess, HeaderMapAccess, LocalResponse } from '../abi/host-api.ts';
import { BufferType, MapType, Status, type StatusCode, StreamType } from '../abi/result.ts';
import type { PluginVm } from '../host/plugin-vm.ts';
import { PluginStreamContext } from './stream-context.ts';
import { streamProperty } from './stream-properties.ts';

/** What the filter needs from the plugin runtime (VM lifecycle and failStrategy live there). */
export interface PluginHandle {
  readonly name: string;
  /** A usable VM, or undefined when the plugin failed (then `failOpen` decides). */
  acquire(): PluginVm | undefined;
  readonly failOpen: boolean;
  /** Reports a trap during a stream callback. */
  trapped(err: Error): void;
  /** Counts a request that skipped this plugin under FAIL_OPEN. */
  skipped(): void;
  /** Counts a request answered 503 because this plugin failed under FAIL_CLOSE. */
  rejected(): void;
  /** A stream started or finished using this plugin (a retired plugin closes when none is left). */
  streamOpened?(): void;
  streamClosed?(): void;
}

export class WasmFilterFactory implements FilterFactory {
  readonly name: string;
  readonly #plugin: PluginHandle;

  constructor(plugin: PluginHandle) {
    this.name = plugin.name;
    this.#plugin = plugin;
  }

  create(callbacks: FilterCallbacks): HttpFilter {
    this.#plugin.streamOpened?.();
    return new WasmHttpFilter(this.#plugin, callbacks);
  }
}

function bodyAccess(body: BodyBuffer): BufferAccess {
  return {
    bytes: () => body.bytes(),
    set: (start, size, data) => {
      const current = body.bytes();
      if (start === 0 && size === 0) body.replace(Buffer.concat([data, current]));
      else if (start >= current.length) body.replace(Buffer.concat([current, data]));
      else if (start === 0 && size >= current.length) body.replace(data);
      else return Status.BAD_ARGUMENT; // Envoy supports only prepend, append and replace-all.
      return Status.OK;
    },
  };
}

class WasmHttpFilter extends PluginStreamContext implements HttpFilter {
  readonly #cb: FilterCallbacks;
  #requestBody: BodyBuffer | undefined;
  #responseBody: BodyBuffer | undefined;
  #localReplied = false;
  /** Set when the current callback sent a local response: its answer is then forced to stop. */
  #repliedInCall = false;

  constructor(plugin: PluginHandle, callbacks: FilterCallbacks) {
    super(plugin);
    this.#cb = callbacks;
  }

  protected reject(): void {
    this.#cb.sendLocalReply({ status: 503, body: 'Service Unavailable', details: 'wasm_fail_stream' });
  }

  protected resume(): void {
    this.#cb.continueDecoding();
    this.#cb.continueEncoding();
  }

  protected override call(name: string, ...args: number[]): number | undefined {
    this.#repliedInCall = false;
    return super.call(name, ...args);
  }

  #headersCall(name: string, headers: HeaderMap, endStream: boolean) {
    // A failed plugin passes everything on: under FAIL_CLOSE its 503 has already replaced the
    // request, and that reply must still flow out through this filter.
    if (!this.ensure()) return HeadersStatus.Continue;
    const args =
      this.pluginVm!.abiVersion === '0.1.0' ? [this.id, headers.size] : [this.id, headers.size, endStream ? 1 : 0];
    const action = this.call(name, ...args);
    if (action === undefined) return HeadersStatus.Continue;
    return action === 0 && !this.#repliedInCall ? HeadersStatus.Continue : HeadersStatus.StopIteration;
  }

  #dataCall(name: string, body: BodyBuffer, endStream: boolean, request: boolean) {
    if (!this.ensure()) return DataStatus.Continue;
    if (request) this.#requestBody = body;
    else this.#responseBody = body;
    const action = this.call(name, this.id, body.length, endStream ? 1 : 0);
    if (action === undefined) return DataStatus.Continue;
    if (action === 0 && !this.#repliedInCall) {
      if (request) this.#requestBody = undefined;
      else this.#responseBody = undefined;
      return DataStatus.Continue;
    }
    return DataStatus.StopAndBuffer;
  }

  #trailersCall(name: string, trailers: HeaderMap) {
    if (!this.ensure()) return HeadersStatus.Continue;
    const action = this.call(name, this.id, trailers.size);
    return action === 0 || action === undefined ? HeadersStatus.Continue : HeadersStatus.StopIteration;
  }

  // ---- HttpFilter ----

  decodeHeaders(headers: HeaderMap, endStream: boolean) {
    return this.#headersCall('proxy_on_request_headers', headers, endStream);
  }
  decodeData(body: BodyBuffer, endStream: boolean) {
    return this.#dataCall('proxy_on_request_body', body, endStream, true);
  }
  decodeTrailers(trailers: HeaderMap) {
    return this.#trailersCall('proxy_on_request_trailers', trailers);
  }
  encodeHeaders(headers: HeaderMap, endStream: boolean) {
    return this.#headersCall('proxy_on_response_headers', headers, endStream);
  }
  encodeData(body: BodyBuffer, endStream: boolean) {
    return this.#dataCall('proxy_on_response_body', body, endStream, false);
  }
  encodeTrailers(trailers: HeaderMap) {
    return this.#trailersCall('proxy_on_response_trailers', trailers);
  }

  onLog(): void {
    // Envoy creates the context in the log phase if the request never reached the filter.
    if (this.skip || !this.ensure()) return;
    this.call('proxy_on_log', this.id);
  }

  onDestroy(): void {
    try {
      this.#destroy();
    } finally {
      this.plugin.streamClosed?.();
    }
  }

  #destroy(): void {
    if (!this.created || !this.pluginVm) return;
    const vm = this.pluginVm;
    if (!vm.failed && vm.vm.has('proxy_on_done')) {
      // false: the plugin finishes later with proxy_done (e.g. after a callout); keep the context.
      if (this.call('proxy_on_done', this.id) === 0 && !vm.failed) {
        this.#awaitingDone = true;
        return;
      }
    }
    this.#delete();
  }

  #awaitingDone = false;

  #delete(): void {
    const vm = this.pluginVm!;
    if (!vm.failed) this.call('proxy_on_delete', this.id);
    vm.unregister(this);
  }

  override done(): StatusCode {
    if (!this.#awaitingDone) return Status.NOT_FOUND;
    this.#awaitingDone = false;
    this.pluginVm!.vm.defer(() => this.#delete());
    return Status.OK;
  }

  // ---- AbiContext ----

  override headerMap(mapType: number): HeaderMapAccess | undefined {
    const s = this.#cb.stream;
    switch (mapType) {
      case MapType.HTTP_REQUEST_HEADERS:
        return s.requestHeaders;
      case MapType.HTTP_REQUEST_TRAILERS:
        return s.requestTrailers;
      case MapType.HTTP_RESPONSE_HEADERS:
        return s.responseHeaders;
      case MapType.HTTP_RESPONSE_TRAILERS:
        return s.responseTrailers;
      default:
        return undefined;
    }
  }

  override buffer(bufferType: number): BufferAccess | undefined {
    if (bufferType === BufferType.HTTP_REQUEST_BODY && this.#requestBody) return bodyAccess(this.#requestBody);
    if (bufferType === BufferType.HTTP_RESPONSE_BODY && this.#responseBody) return bodyAccess(this.#responseBody);
    return undefined;
  }

  override sendLocalResponse(reply: LocalResponse): StatusCode {
    this.#repliedInCall = true;
    if (this.#localReplied) return Status.OK; // only the first one matters, as Envoy
    this.#localReplied = true;
    const details = reply.details.replace(/\s/g, '_') || 'wasm_local_reply';
    this.pluginVm!.vm.defer(() =>
      this.#cb.sendLocalReply({
        status: reply.status,
        body: reply.body,
        headers: reply.headers,
        details,
        grpcStatus: reply.grpcStatus,
      }),
    );
    return Status.OK;
  }

  override continueStream(streamType: number): StatusCode {
    if (streamType === StreamType.HTTP_REQUEST) {
      this.pluginVm!.vm.defer(() => {
        this.#requestBody = undefined;
        this.#cb.continueDecoding();
      });
      return Status.OK;
    }
    if (streamType === StreamType.HTTP_RESPONSE) {
      this.pluginVm!.vm.defer(() => {
        this.#responseBody = undefined;
        this.#cb.continueEncoding();
      });
      return Status.OK;
    }
    return Status.UNIMPLEMENTED;
  }

  override closeStream(streamType: number): StatusCode {
    if (streamType !== StreamType.HTTP_REQUEST && streamType !== StreamType.HTTP_RESPONSE) return Status.BAD_ARGUMENT;
    this.pluginVm!.vm.defer(() => this.#cb.resetStream('wasm_close_stream'));
    return Status.OK;
  }

  override getProperty(path: string[]): Uint8Array | undefined {
    const stored = this.#cb.stream.properties.get(path.join('\0'));
    if (stored) return stored;
    return streamProperty(this.#cb.stream, path) ?? this.pluginVm?.pluginProperty(path);
  }

  override setProperty(path: string[], value: Uint8Array): StatusCode {
    this.#cb.stream.properties.set(path.join('\0'), value);
    return Status.OK;
  }
}
