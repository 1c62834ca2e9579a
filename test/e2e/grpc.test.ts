// gRPC callouts (proxy_grpc_call) over HTTP/2 to a real gRPC server (@grpc/grpc-js).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { ROOT, type RunningProxy, startProxy, tempConfig, wasmPluginYaml } from '../helpers/proxy.ts';
import { startEmbeddedHttpbin } from '../helpers/upstreams.ts';
import { GRPC_CLIENT_WAT, tempModule, wat } from '../helpers/wat.ts';

const raw = (b: Buffer) => b;
const ECHO = {
  Echo: {
    path: '/test.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: raw,
    requestDeserialize: raw,
    responseSerialize: raw,
    responseDeserialize: raw,
  },
};

describe('gRPC callouts', () => {
  let server: grpc.Server;
  let upstream: Awaited<ReturnType<typeof startEmbeddedHttpbin>>;
  let proxy: RunningProxy;
  const seenMetadata: string[] = [];
  before(async () => {
    server = new grpc.Server();
    server.addService(ECHO, {
      Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        seenMetadata.push(String(call.metadata.get('content-type')[0] ?? ''));
        const text = call.request.toString();
        if (text === 'fail') cb({ code: grpc.status.NOT_FOUND, details: 'no such thing' });
        else cb(null, Buffer.from(`echo:${text}`));
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    upstream = await startEmbeddedHttpbin();
    const dir = tempConfig({
      'p.yaml': wasmPluginYaml({ name: 'grpc-client', url: tempModule(wat(GRPC_CLIENT_WAT)).url }),
      'se.yaml': `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: grpc-echo, namespace: istio-system}
spec:
  hosts: [grpc-echo]
  resolution: STATIC
  ports: [{number: ${port}, name: grpc, protocol: GRPC}]
  endpoints: [{address: 127.0.0.1}]
`,
    });
    proxy = await startProxy(['-c', dir, '--upstream', upstream.url]);
  });
  after(async () => {
    await proxy?.stop();
    await upstream?.close();
    server?.forceShutdown();
  });

  test('a unary call pauses the request and its reply answers it', async () => {
    const res = await fetch(`${proxy.url}/get`, { headers: { 'x-grpc-msg': 'hello' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-grpc-status'), '0');
    assert.equal(await res.text(), 'echo:hello');
  });

  test('a gRPC error status reaches proxy_on_grpc_close', async () => {
    const res = await fetch(`${proxy.url}/get`, { headers: { 'x-grpc-msg': 'fail' } });
    assert.equal(res.headers.get('x-grpc-status'), '5');
    assert.equal(await res.text(), '');
  });

  test('requests without the header pass through', async () => {
    const res = await fetch(`${proxy.url}/get`);
    assert.equal(res.status, 200);
    await res.text();
  });
});

describe('gRPC streams from the Rust SDK (hostcalls-rust)', () => {
  const CHAT = {
    Chat: {
      path: '/test.Echo/Chat',
      requestStream: true,
      responseStream: true,
      requestSerialize: raw,
      requestDeserialize: raw,
      responseSerialize: raw,
      responseDeserialize: raw,
    },
  };
  let server: grpc.Server;
  let upstream: Awaited<ReturnType<typeof startEmbeddedHttpbin>>;
  let proxy: RunningProxy;
  const clients: string[] = [];
  let cancelled = 0;
  before(async () => {
    server = new grpc.Server();
    server.addService(CHAT, {
      Chat: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        clients.push(String(call.metadata.get('x-client')[0] ?? ''));
        const md = new grpc.Metadata();
        md.set('x-server', 'grpc-js');
        call.sendMetadata(md);
        call.on('cancelled', () => cancelled++);
        call.on('data', (m: Buffer) => {
          if (m.toString() === 'fail') call.emit('error', { code: grpc.status.ABORTED, details: 'asked to fail' });
          else call.write(Buffer.from(`echo:${m}`));
        });
        call.on('end', () => call.end());
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    upstream = await startEmbeddedHttpbin();
    const url = pathToFileURL(join(ROOT, 'plugins/hostcalls-rust/plugin.wasm')).href;
    const dir = tempConfig({
      'p.yaml': wasmPluginYaml({ name: 'hostcalls-rust', url }),
      'se.yaml': `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: grpc-chat, namespace: istio-system}
spec:
  hosts: [grpc-chat]
  resolution: STATIC
  ports: [{number: ${port}, name: grpc, protocol: GRPC}]
  endpoints: [{address: 127.0.0.1}]
`,
    });
    proxy = await startProxy(['-c', dir, '--upstream', upstream.url]);
  });
  after(async () => {
    await proxy?.stop();
    await upstream?.close();
    server?.forceShutdown();
  });

  const chat = (msgs: string, mode = 'grpc-stream', cluster = 'grpc-chat') =>
    fetch(`${proxy.url}/get`, { headers: { 'x-test': mode, 'x-grpc-cluster': cluster, 'x-grpc-msgs': msgs } });

  test('open, send three messages (the last ends the stream), receive each reply, close with OK', async () => {
    const res = await chat('a,b,c');
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'echo:a,echo:b,echo:c');
    assert.equal(res.headers.get('x-grpc-status'), '0');
    assert.equal(res.headers.get('x-grpc-server'), 'grpc-js', 'initial metadata reached the plugin');
    assert.ok(clients.includes('rust'), 'the plugin sent its initial metadata');
  });

  test('a server error closes the stream with its status and message', async () => {
    const res = await chat('x,fail');
    assert.equal(res.headers.get('x-grpc-status'), String(grpc.status.ABORTED));
    assert.equal(res.headers.get('x-grpc-message'), 'asked to fail');
    assert.equal(await res.text(), 'echo:x');
  });

  test('an unknown cluster fails open_grpc_stream with a status the SDK reports', async () => {
    const res = await chat('a', 'grpc-stream', 'no-such-cluster');
    assert.equal(res.status, 502);
    assert.match(await res.text(), /^open_grpc_stream failed: /);
  });

  test('cancel_grpc_stream resets the stream: the server sees the cancellation', async () => {
    const before = cancelled;
    const res = await fetch(`${proxy.url}/get`, {
      headers: { 'x-test': 'grpc-cancel', 'x-grpc-cluster': 'grpc-chat', 'x-grpc-msgs': 'a' },
    });
    assert.equal(await res.text(), 'cancelled');
    for (let i = 0; i < 100 && cancelled === before; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(cancelled, before + 1);
  });
});
