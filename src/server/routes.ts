// Istio routing kinds -> listeners, routes and clusters (the subset this release reads; see docs/config.md).
import type { LoadedConfig, Resource } from '../config/types.ts';
import { Cluster, type Endpoint } from '../router/cluster.ts';
import type { Route, RouteMatch, StringMatch } from '../router/route-table.ts';
import { labelsMatch } from './chain.ts';

type AnyRecord = Record<string, unknown>;

export interface ListenerPlan {
  port: number;
  /** Gateways (namespace/name) with a server on this port. */
  gateways: string[];
}

/** Gateways whose selector picks this proxy, and the HTTP ports their servers open. */
export function planListeners(config: LoadedConfig, labels: Record<string, string>): ListenerPlan[] {
  const byPort = new Map<number, ListenerPlan>();
  for (const gw of config.gateways) {
    const spec = gw.spec as AnyRecord;
    if (!labelsMatch(spec.selector as Record<string, string> | undefined, labels)) continue;
    for (const server of (spec.servers as AnyRecord[] | undefined) ?? []) {
      const port = server.port as AnyRecord | undefined;
      const number = Number(port?.number);
      const protocol = String(port?.protocol ?? 'HTTP').toUpperCase();
      if (!Number.isInteger(number) || (protocol !== 'HTTP' && protocol !== 'HTTP2')) continue;
      const plan = byPort.get(number) ?? { port: number, gateways: [] };
      const key = `${gw.metadata.namespace}/${gw.metadata.name}`;
      if (!plan.gateways.includes(key)) plan.gateways.push(key);
      byPort.set(number, plan);
    }
  }
  return [...byPort.values()].sort((a, b) => a.port - b.port);
}

function stringMatch(m: unknown): StringMatch | undefined {
  if (!m || typeof m !== 'object') return undefined;
  const o = m as AnyRecord;
  if (typeof o.exact === 'string') return { exact: o.exact };
  if (typeof o.prefix === 'string') return { prefix: o.prefix };
  if (typeof o.regex === 'string') return { regex: new RegExp(`^(?:${o.regex})$`) };
  return undefined;
}

export class ClusterSet {
  readonly clusters = new Map<string, Cluster>();

  get(name: string, endpoints: () => Endpoint[]): Cluster {
    let c = this.clusters.get(name);
    if (!c) {
      c = new Cluster(name, endpoints());
      this.clusters.set(name, c);
    }
    return c;
  }

  async close(): Promise<void> {
    await Promise.all([...this.clusters.values()].map((c) => c.close()));
  }
}

/** The cluster for a VirtualService destination: a ServiceEntry's endpoints, else the host itself. */
function destinationCluster(
  config: LoadedConfig,
  clusters: ClusterSet,
  host: string,
  port: number | undefined,
): Cluster {
  const se = config.serviceEntries.find((s) => ((s.spec as AnyRecord).hosts as string[] | undefined)?.includes(host));
  const sePorts = ((se?.spec as AnyRecord | undefined)?.ports as AnyRecord[] | undefined) ?? [];
  const servicePort = port ?? (sePorts[0] ? Number(sePorts[0].number) : 80);
  const name = `outbound|${servicePort}||${host}`;
  return clusters.get(name, () => {
    if (!se) return [{ host, port: servicePort, tls: false }];
    const portSpec = sePorts.find((p) => Number(p.number) === servicePort);
    const endpoints = ((se.spec as AnyRecord).endpoints as AnyRecord[] | undefined) ?? [];
    if (endpoints.length === 0) return [{ host, port: Number(portSpec?.targetPort ?? servicePort), tls: false }];
    return endpoints.map((e) => {
      const named = portSpec?.name
        ? (e.ports as Record<string, number> | undefined)?.[String(portSpec.name)]
        : undefined;
      return {
        host: String(e.address),
        port: Number(named ?? portSpec?.targetPort ?? servicePort),
        tls: false,
      };
    });
  });
}

function boundTo(vs: Resource<unknown>, gateways: string[]): boolean {
  const list = ((vs.spec as AnyRecord).gateways as string[] | undefined) ?? [];
  return list.some((g) => gateways.includes(g.includes('/') ? g : `${vs.metadata.namespace}/${g}`));
}

/**
 * A cluster by the name a plugin gives in proxy_http_call: an existing cluster, Istio's
 * `outbound|PORT|SUBSET|HOST`, or a plain ServiceEntry host.
 */
export function resolveCluster(config: LoadedConfig, clusters: ClusterSet, name: string): Cluster | undefined {
  const existing = clusters.clusters.get(name);
  if (existing) return existing;
  const m = /^outbound\|(\d+)\|[^|]*\|(.+)$/.exec(name);
  if (m) return destinationCluster(config, clusters, m[2]!, Number(m[1]));
  const se = config.serviceEntries.find((s) => ((s.spec as AnyRecord).hosts as string[] | undefined)?.includes(name));
  if (se) return destinationCluster(config, clusters, name, undefined);
  for (const c of clusters.clusters.values()) if (c.name.endsWith(`||${name}`)) return c;
  return undefined;
}

/** Routes of the VirtualServices bound to these gateways, in file order. */
export function buildRoutes(config: LoadedConfig, gateways: string[], clusters: ClusterSet): Route[] {
  const routes: Route[] = [];
  for (const vs of config.virtualServices) {
    if (!boundTo(vs as Resource<unknown>, gateways)) continue;
    const spec = vs.spec as AnyRecord;
    const hosts = (spec.hosts as string[] | undefined) ?? [];
    ((spec.http as AnyRecord[] | undefined) ?? []).forEach((http, i) => {
      const matches: RouteMatch[] = ((http.match as AnyRecord[] | undefined) ?? []).map((m) => ({
        uri: stringMatch(m.uri),
        method: stringMatch(m.method),
        authority: stringMatch(m.authority),
        port: m.port === undefined ? undefined : Number(m.port),
        headers: m.headers
          ? Object.entries(m.headers as AnyRecord).flatMap(([k, v]) => {
              const sm = stringMatch(v);
              return sm ? [[k.toLowerCase(), sm] as [string, StringMatch]] : [];
            })
          : undefined,
      }));
      const route: Route = { name: String(http.name ?? `${vs.metadata.name}.${i}`), matches, hosts };
      const direct = http.directResponse as AnyRecord | undefined;
      const dest = ((http.route as AnyRecord[] | undefined) ?? [])[0]?.destination as AnyRecord | undefined;
      if (direct) {
        const body = direct.body as AnyRecord | undefined;
        route.directResponse = { status: Number(direct.status), body: String(body?.string ?? '') };
      } else if (dest) {
        const port = (dest.port as AnyRecord | undefined)?.number;
        route.cluster = destinationCluster(
          config,
          clusters,
          String(dest.host),
          port === undefined ? undefined : Number(port),
        );
      }
      routes.push(route);
    });
  }
  return routes;
}

/** A catch-all route to one URL (`--upstream`). */
export function upstreamRoute(url: string, clusters: ClusterSet): Route {
  const u = new URL(url);
  const tls = u.protocol === 'https:';
  const port = Number(u.port || (tls ? 443 : 80));
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const cluster = clusters.get(`outbound|${port}||${host}`, () => [{ host, port, tls }]);
  return { name: 'upstream', matches: [], hosts: [], cluster };
}
