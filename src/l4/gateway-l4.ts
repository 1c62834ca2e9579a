// What the Gateway asks of L4: the TCP listeners a configuration opens, the NETWORK plugins on
// each (so the Gateway loads them with the HTTP ones), and their listener configurations.
import type { LoadedConfig, Resource, WasmPluginSpec } from '../config/types.ts';
import { type ChainEntry, networkChain, type ProxyIdentity } from '../server/chain.ts';
import type { ClusterSet } from '../server/routes.ts';
import type { NetworkFilterFactory } from './network-filter-manager.ts';
import { buildTcpRoutes, planTcpListeners, type TcpListenerPlan } from './plan.ts';
import type { TcpListenerConfig } from './tcp-listener.ts';

export interface L4Plan {
  listeners: { plan: TcpListenerPlan; plugins: Resource<WasmPluginSpec>[] }[];
  /** Every NETWORK plugin of every L4 listener, as chain entries (the Gateway loads them). */
  entries: ChainEntry[];
}

export function planL4(
  config: LoadedConfig,
  options: { namespace: string; labels: Record<string, string>; rootNamespace: string },
): L4Plan {
  const plans = planTcpListeners(config, options.labels);
  const identity: ProxyIdentity = {
    namespace: options.namespace,
    labels: options.labels,
    rootNamespace: options.rootNamespace,
    gateways: [...new Set(plans.flatMap((p) => p.gateways))],
  };
  const listeners = plans.map((plan) => ({ plan, plugins: networkChain(config.wasmPlugins, identity, plan.port) }));
  const entries = listeners.flatMap((l) => l.plugins.map((plugin): ChainEntry => ({ kind: 'wasm', plugin })));
  return { listeners, entries };
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
    sni: plan.servers.some((s) => String(s.server.port.protocol).toUpperCase() === 'TLS'),
    filters: plugins.map((plugin) => filterFor({ kind: 'wasm', plugin })),
    routes: buildTcpRoutes(config, plan.gateways, plan.port, clusters),
    reusePort: options.reusePort,
  }));
}

/** The listener summary (validate, the run log, the admin page) of an L4 listener. */
export function l4Summary(c: TcpListenerConfig, port: number) {
  return {
    name: c.name,
    port,
    chain: [...c.filters.map((f) => f.name), 'tcp_proxy'],
    routes: c.routes.map((r) => r.name),
  };
}
