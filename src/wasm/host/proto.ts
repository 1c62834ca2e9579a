// The few protobuf messages Envoy hands to plugins as property values (node, xds.*_metadata):
// google.protobuf.Struct/Value/ListValue, envoy.config.core.v3.Metadata and Node, in wire format.

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

const encoder = new TextEncoder();

function varint(n: number): number[] {
  const out: number[] = [];
  let v = n >>> 0;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
  return out;
}

/** A length-delimited field (wire type 2). */
function bytesField(field: number, bytes: Uint8Array): Uint8Array {
  const head = [...varint((field << 3) | 2), ...varint(bytes.length)];
  const out = new Uint8Array(head.length + bytes.length);
  out.set(head, 0);
  out.set(bytes, head.length);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  return Buffer.concat(parts);
}

function stringField(field: number, value: string): Uint8Array {
  return bytesField(field, encoder.encode(value));
}

/** google.protobuf.Value. */
export function encodeValue(v: JsonValue): Uint8Array {
  if (v === null) return Uint8Array.of(0x08, 0x00); // null_value = NULL_VALUE
  if (typeof v === 'string') return stringField(3, v);
  if (typeof v === 'boolean') return Uint8Array.of(0x20, v ? 1 : 0);
  if (typeof v === 'number') {
    const out = new Uint8Array(9);
    out[0] = 0x11; // field 2, wire type 1 (64-bit)
    new DataView(out.buffer).setFloat64(1, v, true);
    return out;
  }
  if (Array.isArray(v)) return bytesField(6, concat(v.map((item) => bytesField(1, encodeValue(item)))));
  return bytesField(5, encodeStruct(v));
}

/** google.protobuf.Struct: map<string, Value> fields = 1. */
export function encodeStruct(obj: { [key: string]: JsonValue }): Uint8Array {
  return concat(
    Object.entries(obj).map(([k, v]) => bytesField(1, concat([stringField(1, k), bytesField(2, encodeValue(v))]))),
  );
}

/** envoy.config.core.v3.Metadata: map<string, Struct> filter_metadata = 1. */
export function encodeMetadata(filterMetadata: { [filter: string]: { [key: string]: JsonValue } }): Uint8Array {
  return concat(
    Object.entries(filterMetadata).map(([k, v]) =>
      bytesField(1, concat([stringField(1, k), bytesField(2, encodeStruct(v))])),
    ),
  );
}

/** envoy.config.core.v3.Node: id = 1, cluster = 2, metadata = 3. */
export function encodeNode(node: { id: string; cluster: string; metadata: { [key: string]: JsonValue } }): Uint8Array {
  return concat([stringField(1, node.id), stringField(2, node.cluster), bytesField(3, encodeStruct(node.metadata))]);
}
