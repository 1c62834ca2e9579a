// What the Gateway asks of L4: the TCP listeners a configuration opens, the NETWORK plugins on
// each and beneath each HTTP listener (so the Gateway loads them with the HTTP ones), and their
// listener configurations.
import type { LoadedConfig, Resource, WasmPluginSpec } from '../config/types.ts';
import { listenerTls } from '../listener/tls.ts';
import { type ChainEntry, networkChain, type ProxyIdentity } from '../server/chain.ts';
import type { ClusterSet, ListenerPlan } from '../server/routes.ts';
import type { NetworkFilterFactory } from './network-filter-manager.ts';
import { buildTcpRoutes, l4TlsMode, planTcpListeners, type TcpListenerPlan } from './plan.ts';
import type { TcpListenerConfig, TcpTlsTermination } from './tcp-listener.ts';

export interface L4Plan {
  listeners: { plan: TcpListenerPlan; plugins: Resource<WasmPluginSpec>[] }[];
  /** NETWORK plugins beneath the HTTP listeners, by port (ports without any are absent). */
  http: Map<number, Resource<WasmPluginSpec>[]>;
  /** Every NETWORK plugin of every listener, as chain entries (the Gateway loads them). */
  entries: ChainEntry[];
}

/**
 * The L4 listeners and the NETWORK plugins of every listener. `httpPlans` are the HTTP listeners
 * (planProxy's): a plugin selecting one of their Gateways and admitting the port runs beneath HTTP.
 */
export function planL4(
  config: LoadedConfig,
  options: { namespace: string; labels: Record<string, string>; rootNamespace: string },
  httpPlans: readonly ListenerPlan[] = [],
): L4Plan {
  const plans = planTcpListeners(config, options.labels);
  portConflicts(plans, httpPlans);
  const identity = (of: readonly ListenerPlan[]): ProxyIdentity => ({
    namespace: options.namespace,
    labels: options.labels,
    rootNamespace: options.rootNamespace,
    gateways: [...new Set(of.flatMap((p) => p.gateways))],
  });
  const tcpId = identity(plans);
  const listeners = plans.map((plan) => ({ plan, plugins: networkChain(config.wasmPlugins, tcpId, plan.port) }));
  const httpId = identity(httpPlans);
  const http = new Map<number, Resource<WasmPluginSpec>[]>();
  for (const plan of httpPlans) {
    const plugins = networkChain(config.wasmPlugins, httpId, plan.port);
    if (plugins.length > 0) http.set(plan.port, plugins);
  }
  const entries = [...listeners.map((l) => l.plugins), ...http.values()].flatMap((list) =>
    list.map((plugin): ChainEntry => ({ kind: 'wasm', plugin })),
  );
  return { listeners, http, entries };
}

/** A server by its protocol, with the TLS mode of an HTTPS or TLS server (absent: PASSTHROUGH). */
function serverLabel(server: ListenerPlan['servers'][number]['server']): string {
  const protocol = String(server.port.protocol).toUpperCase();
  return protocol === 'HTTPS' || protocol === 'TLS' ? `${protocol} ${server.tls?.mode ?? 'PASSTHROUGH'}` : protocol;
}

/**
 * One port, one listener: a port that both an HTTP listener (HTTP, HTTPS terminated, ...) and an
 * L4 listener (TCP, TLS, HTTPS PASSTHROUGH) would open is an error, thrown here so that `validate`,
 * the start and a reload all refuse it. (Istio can split such a port by SNI into filter chains of
 * both kinds; wasmgate cannot, and two sockets on one port would share its connections at random.)
 */
function portConflicts(l4: readonly ListenerPlan[], http: readonly ListenerPlan[]): void {
  for (const plan of l4) {
    const other = http.find((h) => h.port === plan.port && h.port !== 0);
    if (!other) continue;
    const names = (p: ListenerPlan) => [...new Set(p.servers.map((s) => serverLabel(s.server)))].join(', ');
    throw new Error(
      `port ${plan.port}: Gateway servers for HTTP (${names(other)}) and for TCP (${names(plan)}) on one port; wasmgate opens one listener per port: move one of them to another port (gateways ${[...new Set([...other.gateways, ...plan.gateways])].join(', ')})`,
    );
  }
}

/** The NETWORK filters beneath the HTTP listener on `port`, or undefined when it has none. */
export function httpNetworkFilters(
  l4: L4Plan,
  port: number,
  filterFor: (entry: ChainEntry) => NetworkFilterFactory,
): NetworkFilterFactory[] | undefined {
  return l4.http.get(port)?.map((plugin) => filterFor({ kind: 'wasm', plugin }));
}

export function buildL4(
  l4: L4Plan,
  config: LoadedConfig,
  clusters: ClusterSet,
  options: { host: string; reusePort?: boolean },
  filterFor: (entry: ChainEntry) => NetworkFilterFactory,
): TcpListenerConfig[] {
  return l4.listeners.map(({ plan, plugins }) => ({
    name: `0.0.0.0_${plan.port}`,
    host: options.host,
    port: plan.port,
    sni: plan.servers.some((s) => l4TlsMode(s.server) === 'passthrough'),
    terminate: tlsTermination(plan),
    filters: plugins.map((plugin) => filterFor({ kind: 'wasm', plugin })),
    routes: buildTcpRoutes(config, plan.gateways, plan.port, clusters),
    reusePort: options.reusePort,
  }));
}

/** TLS termination for the port's `protocol: TLS` servers with mode SIMPLE / MUTUAL, if any. */
function tlsTermination(plan: TcpListenerPlan): TcpTlsTermination | undefined {
  const terminating = plan.servers.filter((s) => l4TlsMode(s.server) === 'terminate');
  const t = listenerTls(plan.port, terminating);
  if (!t) return undefined;
  // Not HTTP: no ALPN. Certificates, client verification and SNI selection as for HTTPS.
  const { ALPNProtocols: _alpn, ...options } = t.options;
  return {
    options,
    passthroughHosts: plan.servers.filter((s) => l4TlsMode(s.server) === 'passthrough').flatMap((s) => s.server.hosts),
  };
}

/** How `validate` prints a NETWORK plugin in a chain. */
export function networkEntryLabel(p: Resource<WasmPluginSpec>): string {
  return `${p.metadata.namespace}.${p.metadata.name} (NETWORK, priority ${p.spec.priority})`;
}

/**
 * What an L4 listener's servers speak: TCP (or MONGO, ...), TLS or HTTPS passthrough, TLS SIMPLE /
 * MUTUAL (terminated).
 */
function l4Protocols(plan: TcpListenerPlan): string {
  const names = plan.servers.map(({ server }) => {
    const mode = l4TlsMode(server);
    if (mode === 'passthrough') return `${String(server.port.protocol).toUpperCase()} passthrough`;
    if (mode === 'terminate') return `TLS ${String(server.tls?.mode)} terminated`;
    return String(server.port.protocol).toUpperCase();
  });
  return [...new Set(names)].join(', ');
}

/** `validate`'s lines for the L4 listeners: port, protocols, NETWORK plugins, tcp_proxy. */
export function l4ValidateLines(l4: L4Plan): string[] {
  return l4.listeners.map(
    ({ plan, plugins }) =>
      `listener :${plan.port} (${l4Protocols(plan)}): ${[...plugins.map(networkEntryLabel), 'tcp_proxy'].join(' -> ')}`,
  );
}

/** The listener summary (validate, the run log, the admin page) of an L4 listener. */
export function l4Summary(c: TcpListenerConfig, port: number) {
  return {
    name: c.name,
    port,
    chain: [...c.filters.map((f) => f.name), 'tcp_proxy'],
    network: c.filters.length,
    routes: c.routes.map((r) => r.name),
  };
}
