// L4 listeners from Istio config: Gateway servers with protocol TCP, TLS passthrough (routed by
// SNI; also HTTPS with mode PASSTHROUGH, as Istio builds the same filter chain for it) and TLS
// terminated here (SIMPLE / MUTUAL, then routed as TCP), and the VirtualService
// `tcp[]` / `tls[]` routes bound to them, to clusters.
import { parseDurationMs } from '../config/duration.ts';
import type { LoadedConfig, Resource } from '../config/types.ts';
import type { Cluster } from '../router/cluster.ts';
import {
  type ClusterSet,
  destinationCluster,
  findDestinationRule,
  fqdn,
  type ListenerPlan,
  passesTlsThrough,
  planGatewayPorts,
} from '../server/routes.ts';

type AnyRecord = Record<string, unknown>;

/** Server protocols served by the L4 listener (and HTTPS with a passthrough mode: isL4Server). */
export const L4_PROTOCOLS = new Set(['TCP', 'TLS', 'MONGO', 'REDIS', 'MYSQL']);

/** Same shape as the HTTP listener plan: a port, its gateways and their servers. */
export type TcpListenerPlan = ListenerPlan;

/**
 * Whether a Gateway server belongs to an L4 listener: TCP (and MONGO, ...), TLS, and HTTPS whose
 * mode passes TLS through (Istio routes it by `tls[]` and SNI, exactly as TLS PASSTHROUGH).
 */
export function isL4Server(protocol: string, server: { tls?: unknown }): boolean {
  const p = protocol.toUpperCase();
  return L4_PROTOCOLS.has(p) || (p === 'HTTPS' && passesTlsThrough(server));
}

/** Gateways whose selector picks this proxy, and the TCP / TLS ports their servers open. */
export function planTcpListeners(config: LoadedConfig, labels: Record<string, string>): TcpListenerPlan[] {
  return planGatewayPorts(config, labels, isL4Server);
}

/** The TLS mode of an L4 server: undefined (plain TCP), 'passthrough', or 'terminate' (SIMPLE, MUTUAL, ...). */
export function l4TlsMode(server: {
  port: { protocol?: unknown };
  tls?: { mode?: unknown };
}): 'passthrough' | 'terminate' | undefined {
  const protocol = String(server.port.protocol).toUpperCase();
  if (protocol === 'HTTPS') return passesTlsThrough(server) ? 'passthrough' : undefined;
  if (protocol !== 'TLS') return undefined;
  return passesTlsThrough({ tls: server.tls ?? {} }) ? 'passthrough' : 'terminate';
}

export interface TcpDestination {
  cluster: Cluster;
  weight: number;
}

export interface TcpRoute {
  name: string;
  /** TLS routes: the SNI names this route takes (`*.example.com` wildcards); absent for TCP. */
  sniHosts?: string[];
  destinations: TcpDestination[];
  /** Idle timeout of the TCP proxy (DestinationRule connectionPool.tcp.idleTimeout; Istio: 1 h). */
  idleTimeoutMs: number;
}

export const DEFAULT_TCP_IDLE_TIMEOUT_MS = 3_600_000;

function boundTo(vs: Resource<unknown>, gateways: string[]): boolean {
  const list = ((vs.spec as AnyRecord).gateways as string[] | undefined) ?? [];
  return list.some((g) => gateways.includes(g.includes('/') ? g : `${vs.metadata.namespace}/${g}`));
}

function matchGatewaysApply(m: AnyRecord, ns: string, gateways: string[]): boolean {
  const gw = m.gateways as string[] | undefined;
  return !gw || gw.length === 0 || gw.some((g) => gateways.includes(g.includes('/') ? g : `${ns}/${g}`));
}

/**
 * The routes of one L4 listener, in file order: VirtualService `tcp[]` routes whose match admits
 * this port (and gateway), and `tls[]` routes with their sniHosts. The first that matches wins.
 */
export function buildTcpRoutes(
  config: LoadedConfig,
  gateways: string[],
  port: number,
  clusters: ClusterSet,
): TcpRoute[] {
  const routes: TcpRoute[] = [];
  for (const vs of config.virtualServices) {
    if (!boundTo(vs as Resource<unknown>, gateways)) continue;
    const spec = vs.spec as AnyRecord;
    const ns = vs.metadata.namespace;
    const destinations = (list: AnyRecord[] | undefined): { dests: TcpDestination[]; idle: number } => {
      let idle: number | undefined;
      const dests = (list ?? []).map((r): TcpDestination => {
        const d = (r.destination ?? {}) as AnyRecord;
        const host = String(d.host);
        const p = (d.port as AnyRecord | undefined)?.number;
        const cluster = destinationCluster(
          config,
          clusters,
          host,
          typeof p === 'number' ? p : undefined,
          typeof d.subset === 'string' ? d.subset : '',
          ns,
        );
        const dr = findDestinationRule(config, fqdn(host, ns));
        const t = dr?.spec.trafficPolicy?.connectionPool?.tcp?.idleTimeout;
        if (idle === undefined && typeof t === 'string') idle = parseDurationMs(t);
        return { cluster, weight: typeof r.weight === 'number' ? r.weight : list!.length === 1 ? 100 : 0 };
      });
      if (dests.length > 0 && dests.every((d) => d.weight === 0)) for (const d of dests) d.weight = 1;
      return { dests, idle: idle ?? DEFAULT_TCP_IDLE_TIMEOUT_MS };
    };
    ((spec.tcp as AnyRecord[] | undefined) ?? []).forEach((tcp, i) => {
      const written = (tcp.match as AnyRecord[] | undefined) ?? [];
      const admits = (m: AnyRecord) =>
        matchGatewaysApply(m, ns, gateways) && (typeof m.port !== 'number' || m.port === port);
      if (written.length > 0 && !written.some(admits)) return;
      const { dests, idle } = destinations(tcp.route as AnyRecord[] | undefined);
      routes.push({ name: `${vs.metadata.name}.tcp.${i}`, destinations: dests, idleTimeoutMs: idle });
    });
    ((spec.tls as AnyRecord[] | undefined) ?? []).forEach((tls, i) => {
      const written = (tls.match as AnyRecord[] | undefined) ?? [];
      const admitted = written.filter(
        (m) => matchGatewaysApply(m, ns, gateways) && (typeof m.port !== 'number' || m.port === port),
      );
      if (admitted.length === 0) return;
      const sniHosts = admitted.flatMap((m) => (m.sniHosts as string[] | undefined) ?? []);
      const { dests, idle } = destinations(tls.route as AnyRecord[] | undefined);
      routes.push({ name: `${vs.metadata.name}.tls.${i}`, sniHosts, destinations: dests, idleTimeoutMs: idle });
    });
  }
  return routes;
}

/** Whether an SNI host pattern (`*`, `*.example.com`, a name; Gateway hosts may say `ns/host`) covers `name`. */
export function sniCovers(pattern: string, name: string): boolean {
  const p = pattern.slice(pattern.indexOf('/') + 1).toLowerCase();
  const n = name.toLowerCase();
  if (p === '*') return true;
  return p === n || (p.startsWith('*.') && n.endsWith(p.slice(1)));
}

/** The first route for a connection: TCP routes take any; TLS routes need a matching SNI. */
export function selectTcpRoute(routes: readonly TcpRoute[], sni: string | undefined): TcpRoute | undefined {
  return routes.find((r) =>
    r.sniHosts === undefined ? true : sni !== undefined && r.sniHosts.some((h) => sniCovers(h, sni)),
  );
}

/** A destination by weight. */
export function pickDestination(route: TcpRoute): TcpDestination | undefined {
  const total = route.destinations.reduce((n, d) => n + d.weight, 0);
  if (total <= 0) return route.destinations[0];
  let x = Math.random() * total;
  for (const d of route.destinations) {
    x -= d.weight;
    if (x < 0) return d;
  }
  return route.destinations.at(-1);
}
