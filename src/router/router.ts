// The router: the terminal of the request path. Answers locally (no route: 404 NR; directResponse;
// redirect), injects the route's faults (delay DI, abort FI, as Envoy's fault filter), or sends the
// request upstream through the route's weighted clusters.
import type { FilterManager, UpstreamRequest } from '../pipeline/filter-manager.ts';
import { HeaderMap } from '../pipeline/headers.ts';
import { redirectLocation, responseHeaderOps } from './route-actions.ts';
import { matches, type Route, type RouteMatch } from './route-table.ts';
import { type DownstreamFlow, RouterUpstreamRequest } from './upstream-request.ts';

class LocalAnswer implements UpstreamRequest {
  readonly #answer: (headers: HeaderMap) => void;
  constructor(answer: (headers: HeaderMap) => void) {
    this.#answer = answer;
  }
  sendHeaders(headers: HeaderMap): void {
    this.#answer(headers);
  }
  sendData(): void {}
  sendTrailers(): void {}
  abort(): void {}
}

/** Holds the request for the fault's delay, then aborts it or hands it to the upstream request. */
class FaultInjected implements UpstreamRequest {
  readonly #calls: ((u: UpstreamRequest) => void)[] = [];
  #inner: UpstreamRequest | undefined;
  #timer: NodeJS.Timeout | undefined;
  #aborted = false;

  constructor(manager: FilterManager, delayMs: number, then: () => UpstreamRequest | undefined) {
    const go = () => {
      this.#timer = undefined;
      if (this.#aborted) return;
      const inner = then();
      if (!inner) return;
      this.#inner = inner;
      for (const call of this.#calls.splice(0)) call(inner);
    };
    if (delayMs > 0) {
      manager.stream.info.responseFlags.push('DI');
      this.#timer = setTimeout(go, delayMs);
    } else queueMicrotask(go);
  }

  #call(fn: (u: UpstreamRequest) => void): void {
    if (this.#inner) fn(this.#inner);
    else this.#calls.push(fn);
  }
  sendHeaders(headers: HeaderMap, endStream: boolean): void {
    this.#call((u) => u.sendHeaders(headers, endStream));
  }
  sendData(chunk: Uint8Array, endStream: boolean, modified: boolean): void {
    this.#call((u) => u.sendData(chunk, endStream, modified));
  }
  sendTrailers(trailers: HeaderMap): void {
    this.#call((u) => u.sendTrailers(trailers));
  }
  abort(): void {
    this.#aborted = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#inner?.abort();
  }
}

const hit = (percent: number) => percent >= 100 || Math.random() * 100 < percent;

function responseHeaders(route: Route, extra: [string, string][] = []): [string, string][] {
  const map = new HeaderMap(extra.slice());
  responseHeaderOps(map, route, undefined);
  return map.pairs;
}

/** The match entry that selected `route` (port aside: the listener knows its own port). */
function entryFor(route: Route, headers: HeaderMap): RouteMatch | undefined {
  return route.matches.find((m) => matches({ ...m, port: undefined }, headers, 0));
}

export function createUpstreamRequest(
  manager: FilterManager,
  route: Route | undefined,
  flow: DownstreamFlow,
): UpstreamRequest {
  if (!route) {
    return new LocalAnswer(() => {
      manager.stream.info.responseFlags.push('NR');
      manager.sendLocalReply({ status: 404, details: 'route_not_found' });
    });
  }
  manager.stream.info.routeName = route.name;
  if (route.directResponse) {
    const { status, body } = route.directResponse;
    return new LocalAnswer(() =>
      manager.sendLocalReply({ status, body, headers: responseHeaders(route), details: 'direct_response' }),
    );
  }
  if (route.redirect) {
    const r = route.redirect;
    return new LocalAnswer((headers) =>
      manager.sendLocalReply({
        status: r.code,
        headers: responseHeaders(route, [
          ['location', redirectLocation(headers, r, manager.stream.info.downstreamLocalPort)],
        ]),
        details: 'direct_response',
      }),
    );
  }
  const upstream = () =>
    new RouterUpstreamRequest(manager, route, entryFor(route, manager.stream.requestHeaders), flow);
  const fault = route.fault;
  if (fault) {
    const delay = fault.delay && hit(fault.delay.percent) ? fault.delay.ms : 0;
    const abort = fault.abort && hit(fault.abort.percent) ? fault.abort : undefined;
    if (delay > 0 || abort)
      return new FaultInjected(manager, delay, () => {
        if (abort) {
          manager.stream.info.responseFlags.push('FI');
          manager.sendLocalReply({ status: abort.status, body: 'fault filter abort', details: 'fault_filter_abort' });
          return undefined;
        }
        return upstream();
      });
  }
  return upstream();
}
