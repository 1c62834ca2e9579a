// One plugin's VM on one worker: the host side of the ABI (contexts, effective context, logging,
// timers) on top of the runtime wrapper. Start-up follows Envoy: entry point, then the root
// context's on_context_create -> on_vm_start -> on_configure.
import type { Callouts } from '../../router/callouts.ts';
import type { GrpcCallouts, GrpcStreamHandle } from '../../router/grpc-callouts.ts';
import { sharedState } from '../../shared-state/backend.ts';
import type { QueueOwner } from '../../shared-state/shared-queues.ts';
import { LiveSet } from '../../util/live-set.ts';
import type { AbiContext, AbiHost, CallResponse } from '../abi/host-api.ts';
import { buildImports } from '../abi/imports.ts';
import { MetricRegistry } from '../abi/metrics.ts';
import { type Pairs, pairsLayout, writePairs } from '../abi/pairs.ts';
import { type AbiVersion, BufferType, Status, type StatusCode } from '../abi/result.ts';
import type { GuestMemory } from '../runtime/memory.ts';
import type { ModuleInfo } from '../runtime/module.ts';
import { type VmLimits, WasmVm } from '../runtime/vm.ts';
import { BaseContext, readOnlyBuffer } from './context.ts';
import { map, str } from './properties.ts';
import { encodeNode } from './proto.ts';

export interface PluginIdentity {
  /** `<namespace>.<name>`, Envoy's plugin name (property plugin_name). */
  name: string;
  /** spec.pluginName (property plugin_root_id). */
  rootId: string;
  vmId: string;
  /** Plugin configuration (JSON text of pluginConfig). */
  configuration: Uint8Array;
  vmConfiguration: Uint8Array;
  env: [string, string][];
  /** Envoy's node: id, cluster and metadata (the ISTIO_META_* values Istio sets). */
  node?: { id: string; cluster: string; metadata: Record<string, string | Record<string, string>> };
}

export interface PluginLogSink {
  log(level: number, message: string): void;
  level(): number;
  /** Host-side problems (unimplemented imports, host errors). */
  warn(message: string): void;
}

export class PluginStartError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PluginStartError';
  }
}

class RootContext extends BaseContext {
  readonly #vm: PluginVm;
  /** Which configuration buffer is readable now (Envoy: only during the matching callback). */
  available: number | undefined;
  tick: ReturnType<typeof setInterval> | undefined;

  constructor(vm: PluginVm, id: number) {
    super(id, id);
    this.#vm = vm;
  }

  override buffer(type: number) {
    if (type !== this.available) return undefined;
    if (type === BufferType.VM_CONFIGURATION) return readOnlyBuffer(this.#vm.identity.vmConfiguration);
    if (type === BufferType.PLUGIN_CONFIGURATION) return readOnlyBuffer(this.#vm.identity.configuration);
    return undefined;
  }

  override getProperty(path: string[]) {
    return this.#vm.pluginProperty(path);
  }
}

/** A context that wants to hear when a callback delivered to it (or for it) trapped. */
export interface TrapAware {
  onTrap(err: Error): void;
}

const NO_CALLOUTS: Callouts = { httpCall: () => false };
const NO_GRPC: GrpcCallouts = { open: () => undefined };

type GrpcDelivery = { message?: Uint8Array; initial?: Pairs; trailing?: Pairs };

interface GrpcCall {
  handle: GrpcStreamHandle;
  owner: number;
}

export class PluginVm implements AbiHost {
  readonly identity: PluginIdentity;
  readonly vm: WasmVm;
  readonly metrics = new MetricRegistry();
  readonly #log: PluginLogSink;
  /**
   * The live contexts. Every stream adds one and removes it, so neither a Map (V8 rehashes it under
   * that churn into a new table that its dead predecessor, in the old generation, links to with the
   * contexts live at that moment: ~50 finished requests kept alive per rehash until a full GC; with
   * one empty plugin 18 mark-compacts instead of 1 and 3.7x the CPU per request) nor an object used
   * as a dictionary (~1.3 µs per add and delete) is right: a LiveSet, looked up by id by scanning,
   * which only callouts, traps and set_effective_context do (a few hundred contexts at most).
   */
  readonly #contexts = new LiveSet<AbiContext>();
  #effective: AbiContext | undefined;
  #nextContextId = 1;
  readonly #unimplementedSeen = new Set<string>();
  readonly root: RootContext;
  #closed = false;
  readonly #callouts: Callouts;
  #nextHttpToken = 0;
  /** Pending callouts: token -> id of the context that made the call. */
  readonly #pendingCalls = new Map<number, number>();
  #callResponse: CallResponse | undefined;
  #callStatus: { code: number; message: string } | undefined;
  readonly #queueOwners = new Map<number, QueueOwner>();
  readonly #grpc: GrpcCallouts;
  readonly #grpcCalls = new Map<number, GrpcCall>();
  #nextGrpcCall = 1;
  #nextGrpcStream = 2;
  #grpcDelivery: GrpcDelivery | undefined;

  constructor(
    module: WebAssembly.Module,
    info: ModuleInfo,
    identity: PluginIdentity,
    log: PluginLogSink,
    callouts: Callouts = NO_CALLOUTS,
    grpc: GrpcCallouts = NO_GRPC,
    limits: VmLimits = {},
  ) {
    this.#grpc = grpc;
    if (info.problems.length > 0) throw new PluginStartError(info.problems.join('; '));
    this.identity = identity;
    this.#log = log;
    this.#callouts = callouts;
    const imports = buildImports(this, this.metrics, info.imports, (name, err) =>
      log.warn(`host function ${name} failed: ${err instanceof Error ? err.message : String(err)}`),
    );
    this.vm = new WasmVm(module, info, imports, limits);
    this.root = new RootContext(this, this.#nextContextId++);
    this.#contexts.add(this.root);
  }

  /** Entry point and root context start-up. Throws PluginStartError with a one-line cause. */
  start(): void {
    try {
      this.vm.start();
    } catch (err) {
      throw new PluginStartError(`start-up failed: ${(err as Error).message}`, { cause: err });
    }
    const root = this.root;
    try {
      root.available = BufferType.PLUGIN_CONFIGURATION;
      this.callIn(root, 'proxy_on_context_create', root.id, 0);
      root.available = BufferType.VM_CONFIGURATION;
      const vmOk = this.callIn(root, 'proxy_on_vm_start', root.id, this.identity.vmConfiguration.length);
      if (this.vm.has('proxy_on_vm_start') && vmOk === 0)
        throw new PluginStartError('proxy_on_vm_start returned false');
      root.available = BufferType.PLUGIN_CONFIGURATION;
      const cfgOk = this.callIn(root, 'proxy_on_configure', root.id, this.identity.configuration.length);
      if (this.vm.has('proxy_on_configure') && cfgOk === 0)
        throw new PluginStartError('proxy_on_configure returned false (plugin rejected its configuration)');
    } catch (err) {
      if (err instanceof PluginStartError) throw err;
      throw new PluginStartError(`start-up failed: ${(err as Error).message}`, { cause: err });
    } finally {
      root.available = undefined;
    }
  }

  get failed(): Error | undefined {
    return this.vm.failure;
  }

  get abiVersion(): AbiVersion {
    return this.vm.info.abiVersion ?? '0.2.1';
  }

  // ---- contexts ----

  newContextId(): number {
    return this.#nextContextId++;
  }

  #context(id: number): AbiContext | undefined {
    return this.#contexts.find((c) => c.id === id);
  }

  register(ctx: AbiContext): void {
    this.#contexts.add(ctx);
  }

  unregister(ctx: AbiContext): void {
    this.#contexts.delete(ctx);
    const id = ctx.id;
    // Callouts of a context that went away are forgotten, as Envoy cancels them.
    if (this.#pendingCalls.size > 0)
      for (const [token, owner] of this.#pendingCalls) if (owner === id) this.#pendingCalls.delete(token);
    if (this.#grpcCalls.size === 0) return;
    for (const [token, call] of this.#grpcCalls) {
      if (call.owner !== id) continue;
      call.handle.cancel();
      this.#grpcCalls.delete(token);
    }
  }

  /** Tells the context that a callback delivered for it trapped (so its stream can fail). */
  #trappedFor(contextId: number, err: Error): void {
    const ctx = this.#context(contextId) as Partial<TrapAware> | undefined;
    if (ctx?.onTrap) ctx.onTrap(err);
    else this.#log.warn(`trap outside a stream: ${err.message}`);
  }

  // ---- callouts ----

  httpCall(upstream: string, headers: Pairs, body: Uint8Array, trailers: Pairs, timeoutMs: number) {
    const has = (name: string) => headers.some(([k, v]) => k === name && v !== '');
    if (!has(':method') || !has(':path') || !has(':authority')) return { status: Status.BAD_ARGUMENT, token: 0 };
    const ctx = this.#effective;
    if (!ctx) return { status: Status.NOT_FOUND, token: 0 };
    this.#nextHttpToken = (this.#nextHttpToken + 4) >>> 0 || 4;
    const token = this.#nextHttpToken;
    const started = this.#callouts.httpCall(upstream, headers, body, trailers, timeoutMs, (result) =>
      this.#deliverCall(token, result),
    );
    if (!started) return { status: Status.BAD_ARGUMENT, token: 0 };
    this.#pendingCalls.set(token, ctx.id);
    return { status: Status.OK, token };
  }

  #deliverCall(token: number, result: Parameters<Parameters<Callouts['httpCall']>[5]>[0]): void {
    const owner = this.#pendingCalls.get(token);
    this.#pendingCalls.delete(token);
    if (owner === undefined || this.vm.failure || this.#closed) return;
    if (result.kind === 'response') {
      this.#callResponse = { headers: result.headers, body: result.body, trailers: result.trailers };
      this.#callStatus = { code: Status.OK, message: '' };
    } else {
      this.#callResponse = undefined;
      this.#callStatus = { code: Status.BROKEN_CONNECTION, message: 'reset' };
    }
    const r = this.#callResponse;
    try {
      // Envoy delivers callouts to the root context; SDKs re-target with set_effective_context.
      this.callIn(
        this.root,
        'proxy_on_http_call_response',
        this.root.id,
        token,
        r ? r.headers.length : 0,
        r ? r.body.length : 0,
        r ? r.trailers.length : 0,
      );
    } catch (err) {
      this.#trappedFor(owner, err as Error);
    } finally {
      this.#callResponse = undefined;
    }
  }

  // ---- gRPC ----

  grpcOpen(
    cluster: string,
    service: string,
    method: string,
    metadata: Pairs,
    timeoutMs: number,
    message: Uint8Array | undefined,
  ): { status: StatusCode; token: number } {
    const ctx = this.#effective;
    if (!ctx) return { status: Status.NOT_FOUND, token: 0 };
    const stream = message === undefined;
    const token = stream ? this.#nextGrpcStream : this.#nextGrpcCall;
    if (stream) this.#nextGrpcStream += 4;
    else this.#nextGrpcCall += 4;
    const deliver = (name: string, args: number[], delivery?: GrpcDelivery) => {
      const call = this.#grpcCalls.get(token);
      if (!call || this.vm.failure || this.#closed) return;
      this.#grpcDelivery = delivery;
      try {
        this.callIn(this.root, name, this.root.id, token, ...args);
      } catch (err) {
        this.#grpcCalls.get(token)?.handle.cancel();
        this.#grpcCalls.delete(token);
        this.#trappedFor(call.owner, err as Error);
      } finally {
        this.#grpcDelivery = undefined;
      }
    };
    const trailingExport = this.vm.has('proxy_on_grpc_receive_trailing_metadata')
      ? 'proxy_on_grpc_receive_trailing_metadata'
      : 'proxy_on_grpc_trailing_metadata'; // the AssemblyScript SDK's spelling
    const handle = this.#grpc.open(cluster, service, method, metadata, timeoutMs, {
      initialMetadata: (md) => deliver('proxy_on_grpc_receive_initial_metadata', [md.length], { initial: md }),
      message: (bytes) => deliver('proxy_on_grpc_receive', [bytes.length], { message: bytes }),
      trailingMetadata: (md) => deliver(trailingExport, [md.length], { trailing: md }),
      close: (status, msg) => {
        this.#callStatus = { code: status, message: msg };
        deliver('proxy_on_grpc_close', [status]);
        this.#grpcCalls.delete(token);
      },
    });
    if (!handle) return { status: Status.PARSE_FAILURE, token: 0 };
    this.#grpcCalls.set(token, { handle, owner: ctx.id });
    if (message !== undefined) handle.send(message, true);
    return { status: Status.OK, token };
  }

  grpcSend(token: number, message: Uint8Array, endStream: boolean): StatusCode {
    if (token % 4 !== 2) return Status.BAD_ARGUMENT;
    const call = this.#grpcCalls.get(token);
    if (!call) return Status.NOT_FOUND;
    call.handle.send(message, endStream);
    return Status.OK;
  }

  grpcCancel(token: number): StatusCode {
    const call = this.#grpcCalls.get(token);
    if (!call) return Status.NOT_FOUND;
    call.handle.cancel();
    this.#grpcCalls.delete(token);
    return Status.OK;
  }

  grpcClose(token: number): StatusCode {
    const call = this.#grpcCalls.get(token);
    if (!call) return Status.NOT_FOUND;
    // Half-close: the call stays until the server's status arrives.
    call.handle.close();
    return Status.OK;
  }

  grpcDelivery() {
    return this.#grpcDelivery;
  }

  callResponse(): CallResponse | undefined {
    return this.#callResponse;
  }

  callStatus(): { code: number; message: string } | undefined {
    return this.#callStatus;
  }

  // ---- shared queues ----

  queueOwner(rootId: number): QueueOwner {
    let owner = this.#queueOwners.get(rootId);
    if (!owner) {
      owner = {
        ready: (queueId) => {
          const root = this.#context(rootId);
          if (!root || this.vm.failure || this.#closed) return;
          try {
            this.callIn(root, 'proxy_on_queue_ready', rootId, queueId);
          } catch (err) {
            this.#log.warn(`proxy_on_queue_ready failed: ${(err as Error).message}`);
          }
        },
      };
      this.#queueOwners.set(rootId, owner);
    }
    return owner;
  }

  /** Calls a guest export with `ctx` as the effective context for the duration of the call. */
  callIn(ctx: AbiContext, name: string, ...args: number[]): number {
    const previous = this.#effective;
    this.#effective = ctx;
    try {
      return this.vm.call(name, ...args);
    } finally {
      this.#effective = previous;
    }
  }

  // ---- AbiHost ----

  get memory(): GuestMemory {
    return this.vm.memory;
  }

  get starting(): boolean {
    return this.vm.starting;
  }

  get env(): readonly [string, string][] {
    return this.identity.env;
  }

  copyOut(bytes: Uint8Array, retPtrPtr: number, retSizePtr: number): StatusCode {
    if (bytes.length === 0) {
      this.memory.setU32(retPtrPtr, 0);
      this.memory.setU32(retSizePtr, 0);
      return Status.OK;
    }
    // A view of guest memory must be copied first: the allocator may grow memory and detach it.
    const copy = bytes.buffer === this.memory.buffer ? bytes.slice() : bytes;
    const ptr = this.vm.allocate(copy.length);
    if (ptr === 0) return Status.INVALID_MEMORY_ACCESS;
    this.memory.write(ptr, copy);
    this.memory.setU32(retPtrPtr, ptr);
    this.memory.setU32(retSizePtr, copy.length);
    return Status.OK;
  }

  copyOutString(value: string, retPtrPtr: number, retSizePtr: number): StatusCode {
    // Encoded straight into guest memory, with no intermediate byte array.
    const size = Buffer.byteLength(value, 'utf8');
    if (size === 0) return this.copyOut(new Uint8Array(0), retPtrPtr, retSizePtr);
    const ptr = this.vm.allocate(size);
    if (ptr === 0) return Status.INVALID_MEMORY_ACCESS;
    this.memory.writeString(ptr, value, size);
    this.memory.setU32(retPtrPtr, ptr);
    this.memory.setU32(retSizePtr, size);
    return Status.OK;
  }

  copyOutPairs(pairs: readonly (readonly [string, string])[], retPtrPtr: number, retSizePtr: number): StatusCode {
    // Serialized straight into guest memory, as copyOutString.
    const { lens, size } = pairsLayout(pairs);
    const ptr = this.vm.allocate(size);
    if (ptr === 0) return Status.INVALID_MEMORY_ACCESS;
    writePairs(this.memory.writable(ptr, size), pairs, lens);
    this.memory.setU32(retPtrPtr, ptr);
    this.memory.setU32(retSizePtr, size);
    return Status.OK;
  }

  effectiveContext(): AbiContext | undefined {
    return this.#effective;
  }

  setEffectiveContext(id: number): StatusCode {
    const ctx = this.#context(id);
    if (!ctx) return Status.BAD_ARGUMENT;
    this.#effective = ctx;
    return Status.OK;
  }

  log(level: number, message: string): void {
    if (level >= this.#log.level()) this.#log.log(level, message);
  }

  logLevel(): number {
    return this.#log.level();
  }

  setTickPeriod(rootId: number, periodMs: number): StatusCode {
    const root = this.#context(rootId);
    if (!(root instanceof RootContext)) return Status.BAD_ARGUMENT;
    if (root.tick) clearInterval(root.tick);
    root.tick = undefined;
    if (periodMs > 0 && !this.#closed) {
      root.tick = setInterval(() => {
        if (this.vm.failure) {
          clearInterval(root.tick);
          return;
        }
        try {
          this.callIn(root, 'proxy_on_tick', root.id);
        } catch (err) {
          this.#log.warn(`proxy_on_tick failed: ${(err as Error).message}`);
        }
      }, periodMs);
      root.tick.unref();
    }
    return Status.OK;
  }

  unimplemented(name: string): StatusCode {
    if (!this.#unimplementedSeen.has(name)) {
      this.#unimplementedSeen.add(name);
      this.#log.warn(`${name} is not implemented by wasmgate yet (returned UNIMPLEMENTED)`);
    }
    return Status.UNIMPLEMENTED;
  }

  /** Properties that any context of this plugin can read. */
  pluginProperty(path: string[]): Uint8Array | undefined {
    const key = path.join('.');
    switch (key) {
      case 'plugin_name':
      case 'xds.plugin_name':
        return str(this.identity.name);
      case 'plugin_root_id':
      case 'xds.plugin_root_id':
        return str(this.identity.rootId);
      case 'plugin_vm_id':
      case 'xds.plugin_vm_id':
        return str(this.identity.vmId);
      case 'node':
      case 'xds.node':
        return this.identity.node ? encodeNode(this.identity.node) : undefined;
      case 'node.id':
        return this.identity.node ? str(this.identity.node.id) : undefined;
      case 'node.cluster':
        return this.identity.node ? str(this.identity.node.cluster) : undefined;
      default: {
        if (path[0] !== 'node' || path[1] !== 'metadata' || !this.identity.node) return undefined;
        const value = this.identity.node.metadata[path[2] ?? ''];
        if (value === undefined) return undefined;
        if (typeof value === 'string') return path.length === 3 ? str(value) : undefined;
        if (path.length === 4) return value[path[3]!] === undefined ? undefined : str(value[path[3]!]!);
        return path.length === 3 ? map(Object.entries(value)) : undefined;
      }
    }
  }

  /** Root context shutdown: on_done, on_delete; timers stop. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.root.tick) clearInterval(this.root.tick);
    try {
      this.#closeContexts();
    } finally {
      this.vm.close(); // the watchdog stops watching it
    }
  }

  #closeContexts(): void {
    for (const owner of this.#queueOwners.values()) {
      try {
        sharedState().queues.release(owner);
      } catch (err) {
        this.#log.warn(`shared queues not released: ${(err as Error).message}`);
      }
    }
    this.#pendingCalls.clear();
    for (const call of this.#grpcCalls.values()) call.handle.cancel();
    this.#grpcCalls.clear();
    if (this.vm.failure) return;
    try {
      this.callIn(this.root, 'proxy_on_done', this.root.id);
      this.callIn(this.root, 'proxy_on_delete', this.root.id);
    } catch {
      // A VM that traps while shutting down has nothing left to say.
    }
  }
}
