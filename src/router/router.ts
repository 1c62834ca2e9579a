// The router: the terminal of the request path. Picks the route's upstream request, or answers
// locally (no route: 404 NR; directResponse).
import type { FilterManager, UpstreamRequest } from '../pipeline/filter-manager.ts';
import type { Route } from './route-table.ts';
import { type DownstreamFlow, RouterUpstreamRequest } from './upstream-request.ts';

class LocalAnswer implements UpstreamRequest {
  readonly #answer: () => void;
  constructor(answer: () => void) {
    this.#answer = answer;
  }
  sendHeaders(): void {
    this.#answer();
  }
  sendData(): void {}
  sendTrailers(): void {}
  abort(): void {}
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
    return new LocalAnswer(() => manager.sendLocalReply({ status, body, details: 'direct_response' }));
  }
  if (!route.cluster) {
    return new LocalAnswer(() => {
      manager.stream.info.responseFlags.push('UH');
      manager.sendLocalReply({ status: 503, body: 'no healthy upstream', details: 'no_healthy_upstream' });
    });
  }
  return new RouterUpstreamRequest(manager, route.cluster, flow);
}
