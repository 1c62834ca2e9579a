// Which WasmPlugins apply to this proxy and in which order they run (phase, then priority
// descending, then namespace and name), as Istio computes the chain for a workload.
import type { Phase, PolicyTargeting, Resource, WasmPluginSpec } from '../config/types.ts';

export interface ProxyIdentity {
  namespace: string;
  labels: Record<string, string>;
  rootNamespace: string;
  /** Names of the Gateways (namespace/name) this proxy serves, for targetRef. */
  gateways: string[];
}

export const PHASE_ORDER: readonly Phase[] = ['AUTHN', 'AUTHZ', 'STATS', 'UNSPECIFIED_PHASE'];

/** Every selector label present with the same value (an absent selector matches everything). */
export function labelsMatch(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  return Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);
}

/**
 * Whether a WasmPlugin, RequestAuthentication or AuthorizationPolicy selects this proxy: targetRef(s)
 * to one of its Gateways, else its namespace or the root namespace, narrowed by selector.matchLabels.
 */
export function pluginApplies(p: Resource<PolicyTargeting>, id: ProxyIdentity): boolean {
  const ns = p.metadata.namespace;
  const refs = [...(p.spec.targetRefs ?? []), ...(p.spec.targetRef ? [p.spec.targetRef] : [])];
  if (refs.length > 0) {
    return refs.some((r) => r.kind === 'Gateway' && id.gateways.includes(`${r.namespace ?? ns}/${r.name}`));
  }
  if (ns !== id.namespace && ns !== id.rootNamespace) return false;
  return labelsMatch(p.spec.selector?.matchLabels ?? {}, id.labels);
}

/** Whether a plugin's match[] admits traffic on this listener port (a gateway is CLIENT). */
export function pluginMatchesPort(p: Resource<WasmPluginSpec>, port: number): boolean {
  if (p.spec.match.length === 0) return true;
  return p.spec.match.some(
    (m) =>
      (m.mode === 'UNDEFINED' || m.mode === 'CLIENT' || m.mode === 'CLIENT_AND_SERVER') &&
      (m.ports.length === 0 || m.ports.includes(port)),
  );
}

export function comparePlugins(a: Resource<WasmPluginSpec>, b: Resource<WasmPluginSpec>): number {
  const pa = PHASE_ORDER.indexOf(a.spec.phase);
  const pb = PHASE_ORDER.indexOf(b.spec.phase);
  if (pa !== pb) return pa - pb;
  if (a.spec.priority !== b.spec.priority) return b.spec.priority - a.spec.priority;
  if (a.metadata.namespace !== b.metadata.namespace) return a.metadata.namespace < b.metadata.namespace ? -1 : 1;
  return a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0;
}

/** HTTP plugins for this proxy and listener port, in execution order. */
export function httpChain(
  plugins: readonly Resource<WasmPluginSpec>[],
  id: ProxyIdentity,
  port: number,
): Resource<WasmPluginSpec>[] {
  return plugins
    .filter((p) => p.spec.type === 'HTTP' && pluginApplies(p, id) && pluginMatchesPort(p, port))
    .sort(comparePlugins);
}

/** Istio's own HTTP filters, in the places the phases name. */
export const BUILTIN = { authn: 'istio.authn', authz: 'istio.authz', stats: 'istio.stats' } as const;
export type BuiltinName = (typeof BUILTIN)[keyof typeof BUILTIN];

export type ChainEntry = { kind: 'wasm'; plugin: Resource<WasmPluginSpec> } | { kind: 'builtin'; name: BuiltinName };

/** Which built-in filters are on for this proxy (authn and authz only when a policy selects it). */
export interface Builtins {
  authn: boolean;
  authz: boolean;
  stats: boolean;
}

/**
 * The full HTTP filter chain of a listener, before the router: AUTHN plugins, istio.authn, AUTHZ
 * plugins, istio.authz, STATS plugins, istio.stats, then plugins with no phase — as Istio inserts
 * WasmPlugins around its own filters.
 */
export function httpFilterChain(plugins: readonly Resource<WasmPluginSpec>[], builtins: Builtins): ChainEntry[] {
  const out: ChainEntry[] = [];
  const after: Record<Phase, BuiltinName | undefined> = {
    AUTHN: builtins.authn ? BUILTIN.authn : undefined,
    AUTHZ: builtins.authz ? BUILTIN.authz : undefined,
    STATS: builtins.stats ? BUILTIN.stats : undefined,
    UNSPECIFIED_PHASE: undefined,
  };
  for (const phase of PHASE_ORDER) {
    for (const p of plugins) if (p.spec.phase === phase) out.push({ kind: 'wasm', plugin: p });
    const b = after[phase];
    if (b) out.push({ kind: 'builtin', name: b });
  }
  return out;
}

/** How a chain entry prints in `validate`, the run log and the config dump. */
export function entryName(e: ChainEntry): string {
  return e.kind === 'builtin' ? e.name : `${e.plugin.metadata.namespace}.${e.plugin.metadata.name}`;
}

/** NETWORK plugins for this proxy and listener port, in execution order (phase, then priority). */
export function networkChain(
  plugins: readonly Resource<WasmPluginSpec>[],
  id: ProxyIdentity,
  port: number,
): Resource<WasmPluginSpec>[] {
  return plugins
    .filter((p) => p.spec.type === 'NETWORK' && pluginApplies(p, id) && pluginMatchesPort(p, port))
    .sort(comparePlugins);
}
