// Assembles a running proxy from loaded configuration: plugins, per-listener filter chains,
// routes and clusters, listeners, and the access log.
import { createWriteStream, type WriteStream } from 'node:fs';
import type { AuthorizationPolicySpec, LoadedConfig, RequestAuthenticationSpec, Resource } from '../config/types.ts';
import { AuthnFilterFactory } from '../filters/authn/authn-filter.ts';
import { AuthzFilterFactory } from '../filters/authz/authz-filter.ts';
import { IstioMetrics } from '../filters/stats/istio-metrics.ts';
import { StatsFilterFactory, serviceOfCluster } from '../filters/stats/stats-filter.ts';
import { HttpListener } from '../listener/http-listener.ts';
import { httpsRedirect, listenerTls } from '../listener/tls.ts';
import { formatAccessLog } from '../observability/access-log.ts';
import type { Logger, LogLevels } from '../observability/logger.ts';
import type { FilterFactory } from '../pipeline/filter.ts';
import { ClusterCallouts } from '../router/callouts.ts';
import { Http2GrpcCallouts } from '../router/grpc-callouts.ts';
import { RouteTable } from '../router/route-table.ts';
import { WasmFilterFactory } from '../wasm/plugin/http-filter.ts';
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
}

export interface ListenerSummary {
  name: string;
  port: number;
  chain: string[];
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
  if (plans.length === 0) plans = [{ port: 8080, gateways: [], servers: [] }];
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

export class Gateway {
  readonly listeners: HttpListener[] = [];
  readonly plugins = new Map<string, Plugin>();
  readonly summaries: ListenerSummary[] = [];
  readonly #clusters = new ClusterSet();
  readonly #logger: Logger;
  #accessLog: ((line: string) => void) | undefined;
  #accessStream: WriteStream | undefined;
  #grpc: Http2GrpcCallouts | undefined;
  #authn: AuthnFilterFactory | undefined;
  /** Istio's standard metrics, served by the admin port. */
  readonly metrics = new IstioMetrics();

  private constructor(logger: Logger) {
    this.#logger = logger;
  }

  get clusters(): ClusterSet {
    return this.#clusters;
  }

  static async start(
    config: LoadedConfig,
    options: GatewayOptions,
    logger: Logger,
    levels: LogLevels,
  ): Promise<Gateway> {
    const gw = new Gateway(logger);
    gw.#openAccessLog(options.accessLog);
    const { plans, chains, authn, authz } = planProxy(config, options);
    const builtins = new Map<string, FilterFactory>();
    if (authn.length > 0) {
      gw.#authn = new AuthnFilterFactory(authn, { logger });
      builtins.set('istio.authn', gw.#authn);
    }
    if (authz.length > 0) {
      const spaceDelimitedClaims = authn.flatMap((r) => r.spec.jwtRules.flatMap((j) => j.spaceDelimitedClaims ?? []));
      builtins.set('istio.authz', new AuthzFilterFactory(authz, { logger, spaceDelimitedClaims }));
    }
    builtins.set(
      'istio.stats',
      new StatsFilterFactory(
        gw.metrics,
        { namespace: options.namespace, labels: options.labels, workload: 'wasmgate', cluster: 'Kubernetes' },
        (cluster) => serviceOfCluster(cluster, (host) => serviceEntryNamespace(config, host)),
      ),
    );
    const callouts = new ClusterCallouts((name) => resolveCluster(config, gw.#clusters, name));
    gw.#grpc = new Http2GrpcCallouts((name) => resolveCluster(config, gw.#clusters, name));
    // One Plugin per WasmPlugin resource; modules fetched and compiled once per moduleKey.
    const modules = new Map<string, Promise<LoadedModule>>();
    for (const entry of chains.flat()) {
      if (entry.kind !== 'wasm') continue;
      const resource = entry.plugin;
      const key = `${resource.metadata.namespace}.${resource.metadata.name}`;
      if (gw.plugins.has(key)) continue;
      const plugin = new Plugin(
        resource,
        logger,
        levels,
        callouts,
        { namespace: options.namespace, labels: options.labels },
        gw.#grpc,
      );
      gw.plugins.set(key, plugin);
      let loading = modules.get(moduleKey(resource));
      if (!loading) {
        loading = loadModule(resource);
        loading.catch(() => {});
        modules.set(moduleKey(resource), loading);
      }
      await plugin.init(loading);
    }
    for (const [i, plan] of plans.entries()) {
      const routes = options.upstream
        ? [upstreamRoute(options.upstream, gw.#clusters)]
        : buildRoutes(config, plan.gateways, gw.#clusters);
      const chain: FilterFactory[] = chains[i]!.map((e) =>
        e.kind === 'wasm' ? new WasmFilterFactory(gw.plugins.get(entryName(e))!) : builtins.get(e.name)!,
      );
      const name = `0.0.0.0_${plan.port}`;
      const listener = new HttpListener(
        {
          name,
          host: options.host,
          port: plan.port,
          chain,
          routes: new RouteTable(routes),
          tls: listenerTls(plan.port, plan.servers),
          httpsRedirect: httpsRedirect(plan.servers),
        },
        {
          onComplete: (s) => gw.#accessLog?.(formatAccessLog(s)),
          onError: (message, err) => logger.error({ err }, message),
        },
      );
      gw.listeners.push(listener);
      gw.summaries.push({ name, port: plan.port, chain: chain.map((f) => f.name), routes: routes.map((r) => r.name) });
    }
    try {
      for (const [i, l] of gw.listeners.entries()) gw.summaries[i]!.port = await l.listen();
    } catch (err) {
      await gw.close();
      throw err;
    }
    return gw;
  }

  #openAccessLog(target: string): void {
    if (target === 'off') return;
    if (target === 'stdout') {
      this.#accessLog = (line) => process.stdout.write(line);
      return;
    }
    this.#accessStream = createWriteStream(target, { flags: 'a' });
    this.#accessStream.on('error', (err) => this.#logger.error(`access log ${target}: ${err.message}`));
    this.#accessLog = (line) => this.#accessStream?.write(line);
  }

  async close(): Promise<void> {
    await Promise.all(this.listeners.map((l) => l.close()));
    for (const p of this.plugins.values()) p.close();
    this.#grpc?.close();
    this.#authn?.close();
    await this.#clusters.close();
    this.#accessStream?.end();
  }
}

/** The namespace of the ServiceEntry that declares `host` (Istio's destination_service_namespace). */
function serviceEntryNamespace(config: LoadedConfig, host: string): string | undefined {
  return config.serviceEntries.find((s) => s.spec.hosts?.includes(host))?.metadata.namespace;
}
