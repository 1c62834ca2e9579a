// Maps a field path (["spec", "vmConfig", "env", 0, "name"]) to the line:col of its YAML node.
import {
  type Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  type LineCounter,
  type Node,
  type Pair,
  type YAMLMap,
} from 'yaml';

export type Path = (string | number)[];

/**
 * Where to point for a path: its key (unknown fields), its value (wrong values), or, for a missing
 * field, the key of the mapping that lacks it (the document start for top-level fields).
 */
export type Anchor = 'key' | 'value' | 'parent';

export interface SourceDoc {
  doc: Document.Parsed;
  lc: LineCounter;
  text: string;
}

export interface Pos {
  line: number;
  col: number;
}

/**
 * "spec.vmConfig.env[0].name" from ["spec", "vmConfig", "env", 0, "name"]; keys that are not plain
 * words are quoted: metadata.labels["istio.io/rev"].
 */
export function fieldPath(path: Path): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (!/^[A-Za-z0-9_$@:/-]+$/.test(seg)) out += `[${JSON.stringify(seg)}]`;
    else out += out ? `.${seg}` : seg;
  }
  return out;
}

/** The inverse of fieldPath. */
export function parseFieldPath(field: string): Path {
  const out: Path = [];
  for (const m of field.matchAll(/\[("(?:[^"\\]|\\.)*")\]|\[(\d+)\]|([^.[\]]+)/g)) {
    if (m[1] !== undefined) out.push(JSON.parse(m[1]) as string);
    else if (m[2] !== undefined) out.push(Number(m[2]));
    else out.push(m[3]!);
  }
  return out;
}

function deref(src: SourceDoc, node: unknown): unknown {
  return isAlias(node) ? node.resolve(src.doc) : node;
}

function isMergeKey(key: unknown): boolean {
  return isScalar(key) && (key.value === '<<' || key.source === '<<');
}

function findPair(src: SourceDoc, map: YAMLMap, key: string, depth = 0): Pair | undefined {
  for (const item of map.items) if (isScalar(item.key) && String(item.key.value) === key) return item;
  if (depth > 8) return undefined;
  // `<<: *base` merge keys: the field may come from the merged mapping(s).
  for (const item of map.items) {
    if (!isMergeKey(item.key)) continue;
    const merged = deref(src, item.value);
    for (const m of isSeq(merged) ? merged.items.map((n) => deref(src, n)) : [merged]) {
      if (!isMap(m)) continue;
      const found = findPair(src, m as YAMLMap, key, depth + 1);
      if (found) return found;
    }
  }
  return undefined;
}

interface Found {
  /** The value node at the deepest segment reached. */
  value: Node | undefined;
  /** The key node of that segment, when it was a mapping entry. */
  key: Node | undefined;
  /** Whether the whole path was found. */
  complete: boolean;
}

function walk(src: SourceDoc, path: Path): Found {
  let value: unknown = src.doc.contents;
  let key: Node | undefined;
  for (const seg of path) {
    value = deref(src, value);
    if (isMap(value)) {
      const pair = findPair(src, value as YAMLMap, String(seg));
      if (!pair) return { value: value as Node, key, complete: false };
      key = pair.key as Node;
      value = pair.value ?? undefined;
      if (value === undefined) return { value: undefined, key, complete: true };
    } else if (isSeq(value) && typeof seg === 'number' && seg < value.items.length) {
      key = undefined;
      value = value.items[seg];
    } else {
      return { value: value as Node | undefined, key, complete: false };
    }
  }
  return { value: deref(src, value) as Node | undefined, key, complete: true };
}

function startOf(node: Node | undefined): number | undefined {
  const r = node?.range;
  return r ? r[0] : undefined;
}

/** The offset of the document's first node (after any `---` and comments). */
export function docStart(src: SourceDoc): number {
  return startOf(src.doc.contents as Node | undefined) ?? src.doc.range[0];
}

/** Line and column (1-based) of the node a problem at `path` should point at. */
export function positionOf(src: SourceDoc, path: Path, anchor: Anchor = 'value'): Pos {
  let offset: number | undefined;
  if (anchor === 'parent') {
    // A missing field: point at the mapping that lacks it (its key, when it has one), or at the
    // document start for a top-level field.
    const parent = path.slice(0, -1);
    if (parent.length === 0) offset = docStart(src);
    else {
      const f = walk(src, parent);
      offset = f.complete ? (startOf(f.key) ?? startOf(f.value)) : startOf(f.value);
    }
  } else {
    const f = walk(src, path);
    if (f.complete)
      offset = anchor === 'key' ? (startOf(f.key) ?? startOf(f.value)) : (startOf(f.value) ?? startOf(f.key));
    else offset = startOf(f.value) ?? startOf(f.key);
  }
  return src.lc.linePos(offset ?? docStart(src));
}

/** The source text of the scalar at `path` (for hints such as "quote it"), if there is one. */
export function sourceTextOf(src: SourceDoc, path: Path): string | undefined {
  const f = walk(src, path);
  if (!f.complete || !isScalar(f.value) || !f.value.range) return undefined;
  return src.text.slice(f.value.range[0], f.value.range[1]);
}

/** The offset of a field's key (or value) in the text; Infinity when it is not there. */
export function offsetOf(src: SourceDoc, path: Path): number {
  const f = walk(src, path);
  if (!f.complete) return Number.POSITIVE_INFINITY;
  return startOf(f.key) ?? startOf(f.value) ?? Number.POSITIVE_INFINITY;
}
