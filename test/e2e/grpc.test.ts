// gRPC callouts (proxy_grpc_call) over HTTP/2 to a real gRPC server (@grpc/grpc-js).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { type RunningProxy, startProxy, tempConfig, wasmPluginYaml } from '../helpers/proxy.ts';
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
