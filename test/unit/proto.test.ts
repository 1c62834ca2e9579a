// The protobuf messages wasmgate hands to plugins as property values, decoded by protobufjs
// (a real protobuf implementation) to prove the wire format.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import protobuf from 'protobufjs';
import { encodeMetadata, encodeNode, encodeStruct } from '../../src/wasm/host/proto.ts';

const root = protobuf.Root.fromJSON(protobuf.common.get('google/protobuf/struct.proto')!);
root.add(
  protobuf.Type.fromJSON('Node', {
    fields: {
      id: { type: 'string', id: 1 },
      cluster: { type: 'string', id: 2 },
      metadata: { type: 'google.protobuf.Struct', id: 3 },
    },
  }),
);
root.add(
  protobuf.Type.fromJSON('Metadata', {
    fields: { filterMetadata: { keyType: 'string', type: 'google.protobuf.Struct', id: 1 } as protobuf.IMapField },
  }),
);
const Struct = root.lookupType('google.protobuf.Struct');
const Node = root.lookupType('Node');
const Metadata = root.lookupType('Metadata');
const plain = (type: protobuf.Type, bytes: Uint8Array) => type.toObject(type.decode(bytes), { defaults: false });

test('Struct with every Value kind round-trips', () => {
  const value = { s: 'text', n: 1.5, big: 300, t: true, f: false, nil: null, list: ['a', 2], nested: { k: 'v' } };
  const decoded = plain(Struct, encodeStruct(value)) as { fields: Record<string, Record<string, unknown>> };
  assert.deepEqual(decoded.fields.s, { stringValue: 'text' });
  assert.deepEqual(decoded.fields.n, { numberValue: 1.5 });
  assert.deepEqual(decoded.fields.big, { numberValue: 300 });
  assert.deepEqual(decoded.fields.t, { boolValue: true });
  assert.deepEqual(decoded.fields.f, { boolValue: false });
  assert.deepEqual(decoded.fields.nil, { nullValue: 0 });
  assert.deepEqual(decoded.fields.list, { listValue: { values: [{ stringValue: 'a' }, { numberValue: 2 }] } });
  assert.deepEqual(decoded.fields.nested, { structValue: { fields: { k: { stringValue: 'v' } } } });
});

test('Node and Metadata decode as Envoy would read them', () => {
  const node = plain(
    Node,
    encodeNode({ id: 'router~1', cluster: 'gw.ns', metadata: { NAMESPACE: 'ns', LABELS: { app: 'edge' } } }),
  );
  assert.deepEqual(node, {
    id: 'router~1',
    cluster: 'gw.ns',
    metadata: {
      fields: {
        NAMESPACE: { stringValue: 'ns' },
        LABELS: { structValue: { fields: { app: { stringValue: 'edge' } } } },
      },
    },
  });
  const meta = plain(Metadata, encodeMetadata({ istio: { services: [{ host: 'h' }] } }));
  assert.deepEqual(meta, {
    filterMetadata: {
      istio: {
        fields: {
          services: { listValue: { values: [{ structValue: { fields: { host: { stringValue: 'h' } } } }] } },
        },
      },
    },
  });
});
