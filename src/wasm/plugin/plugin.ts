// One configured WasmPlugin on one worker: loads and compiles its module, starts its VM, reports
// failures in one line, and applies failStrategy (FAIL_CLOSE, FAIL_OPEN, FAIL_RELOAD).
import { createHash } from 'node:crypto';
import type { Resource, WasmPluginSpec } from '../../config/types.ts';
import { fetchModule, type ModuleSource } from '../../fetch/index.ts';
import type { Logger, LogLevels } from '../../observability/logger.ts';
import { PINO_METHOD } from '../../observability/logger.ts';
import type { Callouts } from '../../router/callouts.ts';
import type { GrpcCallouts } from '../../router/grpc-callouts.ts';
import { type PluginIdentity, PluginStartError, PluginVm } from '../host/plugin-vm.ts';
import { type CompiledPlugin, compilePlugin, inspectModule, type ModuleInfo } from '../runtime/module.ts';
import { DEFAULT_MEMORY_LIMIT_BYTES, type VmLimits, WasmTrap } from '../runtime/vm.ts';
import type { PluginHandle } from './http-filter.ts';

const RELOAD_BACKOFF_MS = [100, 200, 500, 1000, 2000, 5000];

export interface LoadedModule {
  module: WebAssembly.Module;
  info: ModuleInfo;
  /** sha256 of the module bytes (hex): a reload keeps a plugin's VM only when this is unchanged. */
  digest: string;
  /** What the watchdog instrumentation did, or why the module runs without it. */
  instrumentation?: CompiledPlugin['instrumentation'];
}

/** What fetchModule needs from a WasmPlugin (a bare string is a url with Istio's defaults). */
function moduleSource(source: string | Resource<WasmPluginSpec>): ModuleSource {
  if (typeof source === 'string') return { url: source };
  const { spec, metadata } = source;
  const out: ModuleSource = {
    url: spec.url,
    name: `${metadata.namespace}.${metadata.name}`,
    namespace: metadata.namespace,
    imagePullPolicy: spec.imagePullPolicy,
  };
  if (spec.sha256) out.sha256 = spec.sha256;
  if (spec.imagePullSecret) out.imagePullSecret = spec.imagePullSecret;
  return out;
}

/** Plugins whose modules are the same fetch (same url, checksum, policy and pull secret) share a key. */
export function moduleKey(resource: Resource<WasmPluginSpec>): string {
  const s = resource.spec;
  const secret = s.imagePullSecret ? `${resource.metadata.namespace}/${s.imagePullSecret}` : '';
  return JSON.stringify([s.url, s.sha256 ?? '', s.imagePullPolicy, secret]);
}

/**
 * Fetches (file://, http(s)://, oci://: see src/fetch), compiles and inspects a module; throws one
 * readable line naming the URL and the cause.
 */
export async function loadModule(
  source: string | Resource<WasmPluginSpec>,
  limits: VmLimits = {},
): Promise<LoadedModule> {
  const { bytes } = await fetchModule(moduleSource(source));
  // Instrumented for the watchdog (interrupt checks) and capped at the memory limit.
  const { module, instrumentation } = await compilePlugin(bytes, {
    memoryLimitBytes: limits.memoryLimitBytes || DEFAULT_MEMORY_LIMIT_BYTES,
  });
  const info = inspectModule(module);
  if (info.problems.length > 0) throw new Error(info.problems.join('; '));
  return { module, info, digest: createHash('sha256').update(bytes).digest('hex'), instrumentation };
}

export interface ProxyNode {
  namespace: string;
  labels: Record<string, string>;
}

export function pluginIdentity(resource: Resource<WasmPluginSpec>, proxy?: ProxyNode): PluginIdentity {
  const spec = resource.spec;
  const env: [string, string][] = [];
  for (const v of spec.vmConfig?.env ?? []) {
    if (v.valueFrom === 'HOST') {
      const value = process.env[v.name];
      if (value !== undefined) env.push([v.name, value]);
    } else env.push([v.name, v.value ?? '']);
  }
  // As Istio injects them.
  env.push(['ISTIO_META_WASM_IMAGE_PULL_POLICY', spec.imagePullPolicy ?? 'UNSPECIFIED_POLICY']);
  if (spec.imagePullSecret) env.push(['ISTIO_META_WASM_IMAGE_PULL_SECRET', spec.imagePullSecret]);
  const config = spec.pluginConfig === undefined ? '' : JSON.stringify(spec.pluginConfig);
  return {
    name: `${resource.metadata.namespace}.${resource.metadata.name}`,
    rootId: spec.pluginName ?? '',
    vmId: '',
    configuration: new TextEncoder().encode(config),
    vmConfiguration: new Uint8Array(0),
    env,
    node: proxy && {
      id: `router~127.0.0.1~wasmgate.${proxy.namespace}~${proxy.namespace}.svc.cluster.local`,
      cluster: `wasmgate.${proxy.namespace}`,
      metadata: {
        NAMESPACE: proxy.namespace,
        NAME: 'wasmgate',
        WORKLOAD_NAME: 'wasmgate',
        CLUSTER_ID: 'Kubernetes',
        MESH_ID: 'cluster.local',
        ISTIO_VERSION: 'wasmgate',
        LABELS: proxy.labels,
      },
    },
  };
}

export class Plugin implements PluginHandle {
  readonly name: string;
  readonly resource: Resource<WasmPluginSpec>;
  readonly identity: PluginIdentity;
  readonly #logger: Logger;
  /** Plugin log lines: filtered by the run-time wasm levels, not by the proxy's level. */
  readonly #wasmLogger: Logger;
  readonly #levels: LogLevels;
  #loaded: LoadedModule | undefined;
  #vm: PluginVm | undefined;
  /** Why the plugin cannot serve (load or start failure, trap). */
  failure: string | undefined;
  #reloadAttempt = 0;
  #nextReloadAt = 0;
  /** Requests that skipped this failed plugin (FAIL_OPEN). */
  skippedCount = 0;
  /** Requests answered 503 because this plugin failed (FAIL_CLOSE). */
  rejectedCount = 0;
  trapCount = 0;
  /** VMs recreated after a failure (FAIL_RELOAD, watchdog, memory cap). */
  restartCount = 0;

  readonly #callouts: Callouts | undefined;
  readonly #grpc: GrpcCallouts | undefined;
  /** Callback deadline and memory cap for this plugin's VMs. */
  readonly limits: VmLimits;

  constructor(
    resource: Resource<WasmPluginSpec>,
    logger: Logger,
    levels: LogLevels,
    callouts?: Callouts,
    proxy?: ProxyNode,
    grpc?: GrpcCallouts,
    limits: VmLimits = {},
  ) {
    this.limits = limits;
    this.#callouts = callouts;
    this.#grpc = grpc;
    this.resource = resource;
    this.identity = pluginIdentity(resource, proxy);
    this.name = this.identity.name;
    this.#logger = logger;
    this.#wasmLogger = logger.child({}, { level: 'trace' });
    this.#levels = levels;
  }

  get failOpen(): boolean {
    return this.resource.spec.failStrategy === 'FAIL_OPEN';
  }

  /**
   * Loads the module (or takes the one being loaded for it) and starts the VM. Never throws:
   * failures are logged once and remembered.
   */
  async init(loaded?: LoadedModule | Promise<LoadedModule>): Promise<void> {
    try {
      this.#loaded = await (loaded ?? loadModule(this.resource, this.limits));
      const inst = this.#loaded.instrumentation;
      if (inst && 'error' in inst)
        this.#logger.warn(
          { plugin: this.name },
          `wasm plugin ${this.name} runs without the watchdog (no callback deadline): ${inst.error}`,
        );
      this.#vm = this.#startVm(this.#loaded);
      this.failure = undefined;
    } catch (err) {
      this.failure = (err as Error).message;
      this.#logger.error(
        { plugin: this.name, failStrategy: this.resource.spec.failStrategy },
        `wasm plugin ${this.name} failed to load: ${this.failure}`,
      );
    }
  }

  #startVm(loaded: LoadedModule): PluginVm {
    const vm = new PluginVm(
      loaded.module,
      loaded.info,
      this.identity,
      {
        log: (level, message) => {
          const method = PINO_METHOD[Math.min(level, 5)]!;
          this.#wasmLogger[method](`wasm log ${this.name}: ${message}`);
        },
        level: () => this.#levels.pluginLevel(this.name),
        warn: (message) => this.#logger.warn(`wasm ${this.name}: ${message}`),
      },
      this.#callouts,
      this.#grpc,
      this.limits,
    );
    try {
      vm.start();
    } catch (err) {
      vm.vm.close(); // no longer watched
      throw err;
    }
    return vm;
  }

  /** Set when the watchdog or the memory cap stopped a VM, until a new one has started. */
  #recovering = false;

  acquire(): PluginVm | undefined {
    const failed = this.#vm?.failed;
    if (this.#vm && !failed) return this.#vm;
    if (!this.#loaded) return undefined;
    // A VM stopped by the watchdog or the memory cap (its state is undefined) is recreated for
    // the next request, whatever the failStrategy; if that fails, retried with the backoff.
    if (failed instanceof WasmTrap && failed.limit !== undefined) {
      this.#recovering = true;
      return this.#reload(this.#loaded, true);
    }
    if (this.#recovering || this.resource.spec.failStrategy === 'FAIL_RELOAD') return this.#reload(this.#loaded);
    return undefined;
  }

  #reload(loaded: LoadedModule, immediate = false): PluginVm | undefined {
    const now = Date.now();
    if (!immediate && now < this.#nextReloadAt) return undefined;
    const delay = RELOAD_BACKOFF_MS[Math.min(this.#reloadAttempt, RELOAD_BACKOFF_MS.length - 1)]!;
    this.#reloadAttempt++;
    this.#nextReloadAt = now + delay;
    try {
      this.#vm?.close();
      this.#vm = undefined;
      this.#vm = this.#startVm(loaded);
      this.restartCount++;
      this.#recovering = false;
      this.failure = undefined;
      this.#logger.warn({ plugin: this.name }, `wasm plugin ${this.name} reloaded after a failure`);
      return this.#vm;
    } catch (err) {
      this.failure = err instanceof PluginStartError ? err.message : String(err);
      this.#logger.error({ plugin: this.name }, `wasm plugin ${this.name} reload failed: ${this.failure}`);
      return undefined;
    }
  }

  trapped(err: Error): void {
    this.trapCount++;
    this.failure = err.message;
    this.#logger.error(
      { plugin: this.name, failStrategy: this.resource.spec.failStrategy },
      `wasm plugin ${this.name} trapped: ${err.message}`,
    );
  }

  skipped(): void {
    this.skippedCount++;
  }

  rejected(): void {
    this.rejectedCount++;
  }

  /** Streams using this plugin now; a retired plugin closes its VM when the last one ends. */
  #activeStreams = 0;
  #retired = false;

  streamOpened(): void {
    this.#activeStreams++;
  }

  streamClosed(): void {
    this.#activeStreams--;
    if (this.#retired && this.#activeStreams <= 0) this.close();
  }

  /** Replaced by a reload: close now if idle, else when the last in-flight stream ends. */
  retire(): void {
    this.#retired = true;
    if (this.#activeStreams <= 0) this.close();
  }

  get vm(): PluginVm | undefined {
    return this.#vm;
  }

  /** sha256 of the loaded module, undefined when it failed to load. */
  get digest(): string | undefined {
    return this.#loaded?.digest;
  }

  close(): void {
    this.#vm?.close();
  }
}
