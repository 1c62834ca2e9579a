// Hop-by-hop headers (RFC 9110 7.6.1) never cross the proxy.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** The fixed set plus `close`, for the common `Connection: close` (never mutated). */
const HOP_BY_HOP_CLOSE = new Set([...HOP_BY_HOP, 'close']);

/** Names to drop: the fixed set plus whatever the Connection header lists (the result is shared: never mutate it). */
export function hopByHopNames(connectionValues: readonly string[]): Set<string> {
  if (connectionValues.length === 0) return HOP_BY_HOP;
  let names: Set<string> | undefined;
  let close = false;
  for (const v of connectionValues) {
    for (const t of v.split(',')) {
      const name = t.trim().toLowerCase();
      if (!name || HOP_BY_HOP.has(name)) continue;
      if (name === 'close') {
        close = true;
        continue;
      }
      names ??= new Set(HOP_BY_HOP);
      names.add(name);
    }
  }
  if (names) {
    if (close) names.add('close');
    return names;
  }
  return close ? HOP_BY_HOP_CLOSE : HOP_BY_HOP;
}

export function isHopByHop(name: string): boolean {
  return HOP_BY_HOP.has(name);
}

/**
 * For an upgrade request or its 101 answer: the hop-by-hop names to drop, except `Upgrade` and
 * `Connection` themselves, which Envoy keeps (Connection reduced to `upgrade`) so that the
 * upgrade reaches the upstream and the 101 reaches the client.
 */
export function upgradeHopByHopNames(connectionValues: readonly string[]): Set<string> {
  const names = new Set(hopByHopNames(connectionValues));
  names.delete('upgrade');
  names.delete('connection');
  return names;
}

/** Whether Connection lists `upgrade` and Upgrade names `websocket` (the only upgrade Istio configures). */
export function isWebSocketUpgrade(connectionValues: readonly string[], upgrade: string | undefined): boolean {
  if (upgrade?.trim().toLowerCase() !== 'websocket') return false;
  return connectionValues.some((v) => v.split(',').some((t) => t.trim().toLowerCase() === 'upgrade'));
}
