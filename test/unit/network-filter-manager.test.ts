// The L4 filter chain's iteration rules (Envoy's Network::FilterManagerImpl): read filters in order,
// write filters in reverse, StopIteration holds the bytes and later bytes grow the held buffer,
// continue resumes after the filter that stopped, end of stream once. And the SNI parser.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { connect } from 'node:tls';
import {
  type ConnectionInfo,
  type DataBuffer,
  type NetworkFilter,
  type NetworkFilterCallbacks,
  NetworkFilterManager,
  NetworkStatus,
  Peer,
} from '../../src/l4/network-filter-manager.ts';
import { parseSni } from '../../src/l4/sni.ts';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

function info(): ConnectionInfo {
  return {
    id: 1,
    listenerName: 'l',
    startTime: 0,
    sourceAddress: '127.0.0.1',
    sourcePort: 1,
    destinationAddress: '127.0.0.1',
    destinationPort: 2,
    bytesReceived: 0,
    bytesSent: 0,
    responseFlags: [],
    properties: new Map(),
  };
}

function setup(behaviours: Partial<NetworkFilter>[]) {
  const events: string[] = [];
  const callbacks: NetworkFilterCallbacks[] = [];
  const up: string[] = [];
  const down: string[] = [];
  const factories = behaviours.map((b, i) => ({
    name: `f${i}`,
    create(cb: NetworkFilterCallbacks): NetworkFilter {
      callbacks.push(cb);
      const log = (what: string) => events.push(`f${i}:${what}`);
      return {
        onNewConnection: () => {
          log('new');
          return b.onNewConnection?.() ?? NetworkStatus.Continue;
        },
        onData: (buf: DataBuffer, end: boolean) => {
          log(`data(${dec(buf.bytes())},${end})`);
          return b.onData?.(buf, end) ?? NetworkStatus.Continue;
        },
        onWrite: (buf: DataBuffer, end: boolean) => {
          log(`write(${dec(buf.bytes())},${end})`);
          return b.onWrite?.(buf, end) ?? NetworkStatus.Continue;
        },
        onDownstreamClose: (p) => log(`downclose(${p})`),
        onUpstreamClose: (p) => log(`upclose(${p})`),
        onDestroy: () => log('destroy'),
      };
    },
  }));
  const m = new NetworkFilterManager(
    factories,
    info(),
    {
      onNewConnection: () => events.push('terminal:new'),
      onData: (d, end) => up.push(`${dec(d)}${end ? '|FIN' : ''}`),
      onWrite: (d, end) => down.push(`${dec(d)}${end ? '|FIN' : ''}`),
    },
    () => events.push('close'),
  );
  return { m, events, callbacks, up, down };
}

test('read filters run in order, write filters in reverse; bytes pass unchanged', () => {
  const { m, events, up, down } = setup([{}, {}]);
  m.start();
  m.onRead(enc('ab'), false);
  m.onUpstreamData(enc('xy'), true);
  m.onRead(enc(''), true);
  assert.deepEqual(up, ['ab', '|FIN']);
  assert.deepEqual(down, ['xy|FIN']);
  assert.deepEqual(events, [
    'f0:new',
    'f1:new',
    'terminal:new',
    'f0:data(ab,false)',
    'f1:data(ab,false)',
    'f1:write(xy,true)',
    'f0:write(xy,true)',
    'f0:data(,true)',
    'f1:data(,true)',
  ]);
});

test('StopIteration holds the bytes; more bytes grow the buffer; continue resumes after the filter', () => {
  let hold = true;
  const { m, events, callbacks, up } = setup([
    {},
    { onData: () => (hold ? NetworkStatus.StopIteration : NetworkStatus.Continue) },
    {
      onData: (buf) => {
        buf.replace(enc(dec(buf.bytes()).toUpperCase()));
        return NetworkStatus.Continue;
      },
    },
  ]);
  m.start();
  m.onRead(enc('ab'), false);
  m.onRead(enc('cd'), false);
  assert.deepEqual(up, []);
  hold = false;
  callbacks[1]!.continueReading();
  assert.deepEqual(up, ['ABCD']);
  assert.deepEqual(events.slice(-5), [
    'f0:data(ab,false)',
    'f1:data(ab,false)',
    'f0:data(abcd,false)',
    'f1:data(abcd,false)',
    'f2:data(abcd,false)',
  ]);
  // The end of stream passes once.
  m.onRead(enc(''), true);
  m.onRead(enc('late'), true);
  assert.deepEqual(up, ['ABCD', '|FIN']);
});

test('a paused new connection holds the terminal until continue', () => {
  const { m, events, callbacks } = setup([{ onNewConnection: () => NetworkStatus.StopIteration }, {}]);
  m.start();
  assert.deepEqual(events, ['f0:new']);
  callbacks[0]!.continueReading();
  assert.deepEqual(events, ['f0:new', 'f1:new', 'terminal:new']);
});

test('close callbacks once each, then destroy; filters never started get destroy only', () => {
  const { m, events } = setup([{ onNewConnection: () => NetworkStatus.StopIteration }, {}]);
  m.start();
  m.upstreamClosed(Peer.UNKNOWN);
  m.downstreamClosed(Peer.REMOTE);
  m.destroy();
  assert.deepEqual(events, ['f0:new', 'f0:upclose(0)', 'f0:downclose(2)', 'f0:destroy', 'f1:destroy']);
});

test('parseSni reads the server name of a real ClientHello', async () => {
  const server = createServer();
  const hello = new Promise<Buffer>((resolve) =>
    server.on('connection', (s) =>
      s.once('data', (d: Buffer) => {
        resolve(d);
        s.destroy();
      }),
    ),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const c = connect({ port, host: '127.0.0.1', servername: 'db.example.com', rejectUnauthorized: false });
  c.on('error', () => {});
  const bytes = await hello;
  server.close();
  assert.equal(parseSni(bytes), 'db.example.com');
  assert.equal(parseSni(bytes.subarray(0, 20)), 'more');
  assert.equal(parseSni(enc('GET / HTTP/1.1\r\n\r\n')), undefined);
});
