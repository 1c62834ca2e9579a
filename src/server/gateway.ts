// Assembles a running proxy from loaded configuration: plugins, per-listener filter chains,
// routes and clusters, listeners, and the access log.
import { createWriteStream, type WriteStream } from 'node:fs';
import pino from 'pino';
import type {
  AuthorizationPolicySpec,
  LoadedConfig,
  RequestAuthenticationSpec,
  Resource,
  WasmPluginSpec,
} from '../config/types.ts';
import { AuthnFilterFactory } from '../filters/authn/authn-filter.ts';
import { AuthzFilterFactory } from '../filters/authz/authz-filter.ts';
import { IstioMetrics } from '../filters/stats/istio-metrics.ts';
import { StatsFilterFactory, serviceOfCluster } from '../filters/stats/stats-filter.ts';
import { TcpMetrics } from '../filters/stats/tcp-metrics.ts';
import { buildL4, httpNetworkFilters, l4Summary, planL4 } from '../l4/gateway-l4.ts';
import { planTcpListeners } from '../l4/plan.ts';
import { type TcpListenerConfig, TcpListeners } from '../l4/tcp-listener.ts';
import { HttpListener, type ListenerConfig } from '../listener/http-listener.ts';
import type { ListenerLimits } from '../listener/limits.ts';
import { httpsRedirect, listenerTls } from '../listener/tls.ts';
import { formatAccessLog } from '../observability/access-log.ts';
import type { Logger, LogLevels } from '../observability/logger.ts';
import type { FilterFactory } from '../pipeline/filter.ts';
import { ClusterCallouts } from '../router/callouts.ts';
import { Http2GrpcCallouts } from '../router/grpc-callouts.ts';
import { RouteTable } from '../router/route-table.ts';
import { WasmFilterFactory } from '../wasm/plugin/http-filter.ts';
import { WasmNetworkFilterFactory } from '../wasm/plugin/network-filter.ts';
import { type LoadedModule, loadModule, moduleKey, Plugin } from '../wasm/plugin/plugin.ts';
import { type ChainEntry, entryName, httpChain, httpFilterChain, type ProxyIdentity, pluginApplies } from './chain.ts';
import { buildRoutes, ClusterSet, type ListenerPlan, planListeners, resolveCluster, upstreamRoute } from './routes.ts';

export interface GatewayOptions {
  host: string;
  /** Overrides the Gateway ports: one listener on this port. */
  port?: number;
  upstream?: string;
  namespace: string;
  labels: Record<string, string>;
  rootNamespace: string;
  /** 'stdout', 'off', or a file path. */
  accessLog: string;
  /** Istio's standard request metrics (the istio.stats filter); default on. */
  stats?: boolean;
  /** Listen with SO_REUSEPORT (several workers on one port). */
  reusePort?: boolean;
  /** Envoy's xff_num_trusted_hops (--xff-num-trusted-hops); default 0. */
  xffNumTrustedHops?: number;
  /** Deadline for one Wasm plugin callback, ms (--wasm-deadline; 0: none; default 1 s). */
  wasmDeadlineMs?: number;
  /** Memory cap per Wasm VM, bytes (--wasm-memory-limit; default 1 GiB or a quarter of RAM). */
  wasmMemoryLimitBytes?: number;
  /** Downstream header, body, timeout and connection limits (--max-connections, --headers-timeout, …). */
  limits?: Partial<ListenerLimits>;
}

export interface ListenerSummary {
  name: string;
  port: number;
  /** The filters in the order bytes meet them: NETWORK plugins first, then the HTTP filters (or tcp_proxy). */
  chain: string[];
  /** How many of `chain`'s first entries are NETWORK plugins (absent: none). */
  network?: number;
  routes: string[];
}

export interface ProxyPlan {
  plans: ListenerPlan[];
  /** Per listener: the HTTP filter chain before the router, WasmPlugins and built-ins in order. */
  chains: ChainEntry[][];
  /** The RequestAuthentications and AuthorizationPolicies that select this proxy. */
  authn: Resource<RequestAuthenticationSpec>[];
  authz: Resource<AuthorizationPolicySpec>[];
}

/**
 * The listeners this proxy opens (the selected Gateways' ports, or `port`, or 8080) and the
 * filter chain on each, in execution order. `run` starts exactly what `validate` prints.
 */
export function planProxy(
  config: LoadedConfig,
  options: Pick<GatewayOptions, 'port' | 'namespace' | 'labels' | 'rootNamespace' | 'stats'>,
): ProxyPlan {
  let plans = planListeners(config, options.labels);
  if (options.port !== undefined)
    plans = [
      { port: options.port, gateways: plans.flatMap((p) => p.gateways), servers: plans.flatMap((p) => p.servers) },
    ];
  if (plans.length === 0 && planTcpListeners(config, options.labels).length === 0)
    plans = [{ port: 8080, gateways: [], servers: [] }];
  const identity: ProxyIdentity = {
    namespace: options.namespace,
    labels: options.labels,
    rootNamespace: options.rootNamespace,
    gateways: [...new Set(plans.flatMap((p) => p.gateways))],
  };
  const authn = config.requestAuthentications.filter((r) => pluginApplies(r, identity));
  const authz = config.authorizationPolicies.filter((r) => pluginApplies(r, identity));
  const builtins = { authn: authn.length > 0, authz: authz.length > 0, stats: options.stats !== false };
  const chains = plans.map((plan) => httpFilterChain(httpChain(config.wasmPlugins, identity, plan.port), builtins));
  return { plans, chains, authn, authz };
}

/** What one configuration builds: everything a reload replaces as a whole. */
interface Generation {
  config: LoadedConfig;
  clusters: ClusterSet;
  authn: AuthnFilterFactory | undefined;
  listeners: { plan: ListenerPlan; config: ListenerConfig; summary: ListenerSummary }[];
  /** L4 listeners (Gateway TCP / TLS passthrough servers), src/l4. */
  tcp: TcpListenerConfig[];
}

/** What a reload changed, for the log and the admin answer. */
export interface ReloadResult {
  listeners: { added: number[]; removed: number[]; updated: number[] };
  plugins: { kept: string[]; replaced: string[]; added: string[]; removed: string[] };
}

export class Gateway {
  readonly listeners: HttpListener[] = [];
  readonly plugins = new Map<string, Plugin>();
  readonly summaries: ListenerSummary[] = [];
  readonly #options: GatewayOptions;
  readonly #logger: Logger;
  readonly #levels: LogLevels;
  #gen: Generation | undefined;
  #accessLog: ((line: string) => void) | undefined;
  #accessStream: WriteStream | undefined;
  #flushAccessLog: (() => void) | undefined;
  readonly #grpc: Http2GrpcCallouts;
  readonly #callouts: ClusterCallouts;
  /** Istio's standard metrics, served by the admin port. */
  readonly metrics = new IstioMetrics();
  #reloading: Promise<unknown> = Promise.resolve();
  /** L4 listeners: TCP proxying with NETWORK plugins (src/l4). */
  readonly #tcp: TcpListeners;
  #draining = false;

  private constructor(options: GatewayOptions, logger: Logger, levels: LogLevels) {
    this.#options = options;
    this.#logger = logger;
    this.#levels = levels;
    // Callouts resolve clusters in the configuration current when they are made.
    const resolve = (name: string) =>
      this.#gen ? resolveCluster(this.#gen.config, this.#gen.clusters, name) : undefined;
    this.#callouts = new ClusterCallouts(resolve);
    this.#grpc = new Http2GrpcCallouts(resolve);
    this.#tcp = new TcpListeners({
      metrics: new TcpMetrics(
        this.metrics.registry,
        { namespace: options.namespace, labels: options.labels, workload: 'wasmgate', cluster: 'Kubernetes' },
        (cluster) => serviceOfCluster(cluster, (host) => serviceEntryNamespace(this.#gen!.config, host)),
      ),
      accessLog: (line) => this.#accessLog?.(line),
      onError: (message, err) => this.#logger.error({ err }, message),
    });
  }

  get clusters(): ClusterSet {
    return this.#gen!.clusters;
  }

  get config(): LoadedConfig {
    return this.#gen!.config;
  }

  static async start(
    config: LoadedConfig,
    options: GatewayOptions,
    logger: Logger,
    levels: LogLevels,
  ): Promise<Gateway> {
    const gw = new Gateway(options, logger, levels);
    gw.#openAccessLog(options.accessLog);
    const { gen, plugins } = await gw.#build(config, new Map());
    for (const [k, p] of plugins) gw.plugins.set(k, p);
    gw.#gen = gen;
    for (const l of gen.listeners) gw.listeners.push(gw.#listener(l.config));
    gw.summaries.push(...gen.listeners.map((l) => l.summary));
    try {
      for (const [i, l] of gw.listeners.entries()) gw.summaries[i]!.port = await l.listen();
      const tcp = await gw.#tcp.apply(gen.tcp);
      gw.summaries.push(...gen.tcp.map((c, i) => l4Summary(c, tcp.ports[i]!)));
    } catch (err) {
      await gw.close();
      throw err;
    }
    return gw;
  }

  #listener(config: ListenerConfig): HttpListener {
    return new HttpListener(config, {
      onComplete: (s) => this.#accessLog?.(formatAccessLog(s)),
      onError: (message, err) => this.#logger.error({ err }, message),
    });
  }

  /**
   * Builds plugins, filter chains, routes and clusters for `config`. Plugins of `current` whose
   * spec and module bytes are unchanged are reused (their VMs and state survive); others are new.
   */
  async #build(
    config: LoadedConfig,
    current: ReadonlyMap<string, Plugin>,
  ): Promise<{ gen: Generation; plugins: Map<string, Plugin> }> {
    const options = this.#options;
    const logger = this.#logger;
    const { plans, chains, authn, authz } = planProxy(config, options);
    const l4 = planL4(config, options, plans);
    const networkFilter = (e: ChainEntry) => new WasmNetworkFilterFactory(plugins.get(entryName(e))!);
    const builtins = new Map<string, FilterFactory>();
    const authnFactory = authn.length > 0 ? new AuthnFilterFactory(authn, { logger }) : undefined;
    if (authnFactory) builtins.set('istio.authn', authnFactory);
    if (authz.length > 0) {
      const spaceDelimitedClaims = authn.flatMap((r) => r.spec.jwtRules.flatMap((j) => j.spaceDelimitedClaims ?? []));
      builtins.set('istio.authz', new AuthzFilterFactory(authz, { logger, spaceDelimitedClaims }));
    }
    builtins.set(
      'istio.stats',
      new StatsFilterFactory(
        this.metrics,
        { namespace: options.namespace, labels: options.labels, workload: 'wasmgate', cluster: 'Kubernetes' },
        (cluster) => serviceOfCluster(cluster, (host) => serviceEntryNamespace(config, host)),
      ),
    );
    // One Plugin per WasmPlugin resource; modules fetched and compiled once per moduleKey.
    const modules = new Map<string, Promise<LoadedModule>>();
    const plugins = new Map<string, Plugin>();
    for (const entry of [...chains.flat(), ...l4.entries]) {
      if (entry.kind !== 'wasm') continue;
      const resource = entry.plugin;
      const key = entryName(entry);
      if (plugins.has(key)) continue;
      let loading = modules.get(moduleKey(resource));
      if (!loading) {
        loading = loadModule(resource, { memoryLimitBytes: options.wasmMemoryLimitBytes });
        loading.catch(() => {});
        modules.set(moduleKey(resource), loading);
      }
      const old = current.get(key);
      if (old && old.digest !== undefined && sameSpec(old.resource, resource)) {
        const digest = await loading.then(
          (m) => m.digest,
          () => undefined,
        );
        if (digest === old.digest) {
          plugins.set(key, old);
          continue;
        }
      }
      const plugin = new Plugin(
        resource,
        logger,
        this.#levels,
        this.#callouts,
        { namespace: options.namespace, labels: options.labels },
        this.#grpc,
        { deadlineMs: options.wasmDeadlineMs, memoryLimitBytes: options.wasmMemoryLimitBytes },
      );
      plugins.set(key, plugin);
      await plugin.init(loading);
    }
    const clusters = new ClusterSet();
    const listeners = plans.map((plan, i) => {
      const routes = options.upstream
        ? [upstreamRoute(options.upstream, clusters)]
        : buildRoutes(config, plan.gateways, clusters);
      const chain: FilterFactory[] = chains[i]!.map((e) =>
        e.kind === 'wasm' ? new WasmFilterFactory(plugins.get(entryName(e))!) : builtins.get(e.name)!,
      );
      const name = `0.0.0.0_${plan.port}`;
      const listenerConfig: ListenerConfig = {
        name,
        host: options.host,
        port: plan.port,
        chain,
        routes: new RouteTable(routes, options.upstream ? [] : plan.servers.flatMap((s) => s.server.hosts)),
        tls: listenerTls(plan.port, plan.servers),
        httpsRedirect: httpsRedirect(plan.servers),
        reusePort: options.reusePort,
        xffNumTrustedHops: options.xffNumTrustedHops,
        limits: options.limits,
        network: httpNetworkFilters(l4, plan.port, networkFilter),
      };
      // The run log and the admin page show the NETWORK plugins first, as `validate` does.
      const network = (listenerConfig.network ?? []).map((f) => f.name);
      const summary: ListenerSummary = {
        name,
        port: plan.port,
        chain: [...network, ...chain.map((f) => f.name)],
        network: network.length,
        routes: routes.map((r) => r.name),
      };
      return { plan, config: listenerConfig, summary };
    });
    const tcp = buildL4(l4, config, clusters, options, networkFilter);
    return { gen: { config, clusters, authn: authnFactory, listeners, tcp }, plugins };
  }

  /**
   * Applies a new, already validated configuration without dropping a request: unchanged plugins
   * keep their VMs; listeners on the same port swap chain and routes atomically (in-flight
   * requests finish on what they started with); new ports open, removed ports drain and close.
   * Reloads run one at a time. If building fails, nothing changes and the error is thrown.
   */
  reload(config: LoadedConfig): Promise<ReloadResult> {
    const run = this.#reloading.then(() => this.#reload(config));
    this.#reloading = run.catch(() => {});
    return run;
  }

  async #reload(config: LoadedConfig): Promise<ReloadResult> {
    const old = this.#gen!;
    const { gen, plugins } = await this.#build(config, this.plugins);
    const result: ReloadResult = {
      listeners: { added: [], removed: [], updated: [] },
      plugins: { kept: [], replaced: [], added: [], removed: [] },
    };
    // Open new ports first: a failure to listen leaves the running configuration as it was.
    const byPort = new Map(this.listeners.map((l) => [l.config.port, l]));
    const next: HttpListener[] = [];
    const opened: HttpListener[] = [];
    let tcpSummaries: ListenerSummary[] = [];
    try {
      for (const l of gen.listeners) {
        const existing = this.#options.port !== undefined ? this.listeners[0] : byPort.get(l.plan.port);
        if (existing?.canUpdate(l.config)) {
          next.push(existing);
          continue;
        }
        const fresh = this.#listener(l.config);
        if (existing) {
          // TLS turned on or off on a port: the old server must let go of it first.
          await existing.close();
          byPort.delete(existing.config.port);
        }
        l.summary.port = await fresh.listen();
        opened.push(fresh);
        next.push(fresh);
        result.listeners.added.push(l.summary.port);
      }
      // L4 listeners: new ports open (or all fail), kept ports take the new config, others close.
      const tcp = await this.#tcp.apply(gen.tcp);
      tcpSummaries = gen.tcp.map((c, i) => l4Summary(c, tcp.ports[i]!));
      result.listeners.added.push(...tcp.added);
      result.listeners.removed.push(...tcp.removed);
      result.listeners.updated.push(...gen.tcp.map((c) => c.port).filter((p) => !tcp.added.includes(p)));
    } catch (err) {
      await Promise.all(opened.map((l) => l.close()));
      for (const [k, p] of plugins) if (this.plugins.get(k) !== p) p.close();
      gen.authn?.close();
      await gen.clusters.close();
      throw err;
    }
    for (const [i, l] of gen.listeners.entries()) {
      const listener = next[i]!;
      l.summary.port = listener.boundPort;
      if (!opened.includes(listener)) {
        listener.update(l.config);
        result.listeners.updated.push(l.summary.port);
      }
      if (this.#draining) listener.drain();
    }
    const retired = this.listeners.filter((l) => !next.includes(l));
    for (const l of retired) {
      result.listeners.removed.push(l.config.port);
      l.drain();
      void l.close();
    }
    // Plugins: keep, replace (retire the old VM once its streams end), add, remove.
    for (const [key, p] of plugins) {
      const before = this.plugins.get(key);
      if (before === p) result.plugins.kept.push(key);
      else if (before) result.plugins.replaced.push(key);
      else result.plugins.added.push(key);
    }
    for (const [key, p] of this.plugins) {
      if (plugins.get(key) === p) continue;
      if (!plugins.has(key)) result.plugins.removed.push(key);
      p.retire();
    }
    this.plugins.clear();
    for (const [k, p] of plugins) this.plugins.set(k, p);
    this.listeners.splice(0, this.listeners.length, ...next);
    this.summaries.splice(0, this.summaries.length, ...gen.listeners.map((l) => l.summary), ...tcpSummaries);
    this.#gen = gen;
    // The old generation's clusters finish their in-flight requests, then close.
    void old.clusters.close();
    if (old.authn) setTimeout(() => old.authn?.close(), 30_000).unref();
    return result;
  }

  /** Graceful drain: responses say Connection: close, HTTP/2 sessions get GOAWAY. */
  drain(): void {
    this.#draining = true;
    for (const l of this.listeners) l.drain();
    this.#tcp.drain();
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** Open downstream connections across listeners. */
  get connections(): number {
    return this.listeners.reduce((n, l) => n + l.connections, 0) + this.#tcp.connections;
  }

  #openAccessLog(target: string): void {
    if (target === 'off') return;
    if (target === 'stdout') {
      // Straight to fd 1 (also from worker threads, whose process.stdout goes through the main
      // thread), buffered and written asynchronously.
      const out = pino.destination({ dest: 1, sync: false });
      this.#accessLog = (line) => out.write(line);
      this.#flushAccessLog = () => out.flushSync();
      return;
    }
    this.#accessStream = createWriteStream(target, { flags: 'a' });
    this.#accessStream.on('error', (err) => this.#logger.error(`access log ${target}: ${err.message}`));
    this.#accessLog = (line) => this.#accessStream?.write(line);
  }

  async close(): Promise<void> {
    await Promise.all([...this.listeners.map((l) => l.close()), this.#tcp.close()]);
    for (const p of this.plugins.values()) p.close();
    this.#grpc.close();
    this.#gen?.authn?.close();
    await this.#gen?.clusters.close();
    this.#accessStream?.end();
    try {
      this.#flushAccessLog?.();
    } catch {
      // Nothing buffered, or stdout is gone.
    }
  }
}

/** Same WasmPlugin spec (the module bytes are compared separately). */
function sameSpec(a: Resource<WasmPluginSpec>, b: Resource<WasmPluginSpec>): boolean {
  return JSON.stringify(a.spec) === JSON.stringify(b.spec);
}

/** The namespace of the ServiceEntry that declares `host` (Istio's destination_service_namespace). */
function serviceEntryNamespace(config: LoadedConfig, host: string): string | undefined {
  return config.serviceEntries.find((s) => s.spec.hosts?.includes(host))?.metadata.namespace;
}
